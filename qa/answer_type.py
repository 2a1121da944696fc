"""The kind of answer a question asks for, and whether a span is of that kind.

"How many ..." wants a number, "When ..." a date, "Who ..." a name, "Where ..." a place. A
reader trained on SQuAD often picks a fluent span of the wrong kind on news ("Geneva Motor Show"
for a "How many" question's neighbour sentence), so the answer decision (``qa.decide``) weighs
whether each candidate fits (``fits``). Small rules over the question's wh-phrase and the span's
surface: a span quoted from an article keeps its capitals and digits, which is what names,
places, numbers and dates show. The evaluation reports F1 by the same ``question_type``.
"""
from __future__ import annotations

import re

from qa.recency import MONTHS, WEEKDAYS
from qa.text import STOPWORDS

QUESTION_TYPES = ("who", "what", "when", "where", "how many", "other")

# Phrases that make a question of one type; checked at the first wh-word, longest phrase first,
# so "In what year ..." is a "when" question and "How much ..." a "how many" one.
_TYPE_PHRASES: dict[str, str] = {
    "how many": "how many", "how much": "how many", "how old": "how many",
    **{f"{wh} {unit}": "when" for wh in ("what", "which")
       for unit in ("year", "years", "date", "day", "month", "time", "century", "decade", "era")},
    **{f"{wh} {place}": "where" for wh in ("what", "which")
       for place in ("country", "city", "town", "place", "region", "state", "continent",
                     "location")},
    "who": "who", "whom": "who", "whose": "who",
    "what": "what", "which": "what",
    "when": "when",
    "where": "where",
    "why": "other", "how": "other",
}
_WORD = re.compile(r"[a-z]+")

# The words a number is written with and their values ("twenty" is 20), and the scales that
# multiply them ("3.5 billion"): ``fits`` looks for them, the app's charts read the value.
NUMBER_VALUES = {word: value for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
NUMBER_VALUES |= {word: 10 * value for value, word in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
SCALES = {"thousand": 1e3, "million": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9,
          "trillion": 1e12}
# The calendar's names, whole and abbreviated (``qa.recency`` has the whole ones): a span that
# holds one names a day or a month, not an amount.
CALENDAR = frozenset([*(month.lower() for month in MONTHS), *WEEKDAYS,
                      *"jan feb mar apr jun jul aug sep sept oct nov dec".split()])
_NUMBER_WORDS = frozenset(NUMBER_VALUES) | frozenset(
    """hundred hundreds thousand thousands million millions billion billions trillion dozen
    dozens half quarter third""".split())
_DATE_WORDS = CALENDAR | frozenset(
    """today yesterday tomorrow tonight morning afternoon evening night week weekend month year
    years decade century ago spring summer autumn fall winter christmas easter""".split())
_CAPITALISED = re.compile(r"\b[A-Z][\w'&.-]*")
_DIGIT = re.compile(r"\d")


def question_type(question: str) -> str:
    """The question's type from its first wh-word: one of ``QUESTION_TYPES``."""
    words = _WORD.findall(question.lower())
    for i, word in enumerate(words):
        for phrase in (" ".join(words[i:i + 2]), word):
            if phrase in _TYPE_PHRASES:
                return _TYPE_PHRASES[phrase]
    return "other"


def fits(question: str, span: str) -> float:
    """1.0 when ``span`` is the kind of answer ``question`` asks for, -1.0 when it is not, and
    0.0 when the question asks for no particular kind ("What ...", "Why ...")."""
    kind = question_type(question)
    words = set(_WORD.findall(span.lower()))
    if kind == "how many":
        found = bool(_DIGIT.search(span) or words & _NUMBER_WORDS)
    elif kind == "when":
        found = bool(_DIGIT.search(span) or words & _DATE_WORDS)
    elif kind in ("who", "where"):
        found = any(name.lower() not in STOPWORDS for name in _CAPITALISED.findall(span))
    else:
        return 0.0
    return 1.0 if found else -1.0
