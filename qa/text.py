"""Words: the retrieval vocabulary and answer normalisation, shared by every stage.

``tokenize`` is what BM25 matches on, in both index backends (the local FTS5 index cuts a
question with it; Milvus's analyzer leaves out the same ``STOPWORDS``), what the answer decision
counts question words with, and what follow-up detection reads. ``normalize_answer`` decides
which spans are "the same answer" and is what exact match and F1 compare. A leaf: it imports
nothing of ``qa``.
"""
from __future__ import annotations

import re
import string

WORD = re.compile(r"\w+")
STOPWORDS = frozenset(
    """a about after again all also an and any are as at be been before being between both but by
    can could did do does doing during each few for from had has have having he her here hers him
    his how i if in into is it its itself just me more most my no nor not of off on once only or
    other our ours out over own same she should so some such than that the their theirs them then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours""".split()
)
_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def tokenize(text: str) -> list[str]:
    """Lower-cased words without English stopwords: the BM25 vocabulary."""
    return [word for word in WORD.findall(text.lower()) if word not in STOPWORDS]


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze whitespace.

    The official SQuAD v1.1 normalisation, step for step, so exact match and F1 computed with it
    are comparable with published numbers; it also decides which spans are "the same answer".
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())
