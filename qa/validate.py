"""The facade's input checks: what a caller passes to ``NewsQA`` (or the evaluation reads from
a data file) is refused here, with one line, before any work; each returns the value as the
pipeline uses it."""
from __future__ import annotations

import numbers
import re
from datetime import date, datetime
from typing import Iterable, Sequence

from qa.errors import IngestError, NewsQAError, QuestionError, clip
from qa.ingest.documents import check_document
from qa.recency import parse_day
from qa.retrieve import CONTEXT_TURNS
from qa.types import Document, Filter, whole_number

MAX_QUESTION_CHARS = 500  # a question, not a document: longer input is almost surely a paste error


def validate_question(question: str) -> str:
    """Return the stripped question, or raise ``QuestionError`` for input that is not one: not
    text, empty, over-long, not valid Unicode, or without a letter or digit (NUL or control
    characters only), which would still be "answered" with some span."""
    if not isinstance(question, str):
        raise QuestionError(f"The question must be text, not {type(question).__name__}.")
    text = question.strip()
    if not text:
        raise QuestionError("The question is empty.")
    if len(text) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"The question is {len(text)} characters long; the limit is {MAX_QUESTION_CHARS}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:  # lone surrogates: bytes that were not UTF-8, or bad JSON
        raise QuestionError(f"The question is not valid Unicode (a lone surrogate at "
                            f"character {err.start}; was it typed in an encoding other than "
                            "UTF-8?).") from None
    if not any(char.isalnum() for char in text):
        raise QuestionError("The question has no letters or digits.")
    return text


def validate_top_k(top_k: int) -> int:
    """``top_k`` if it is a whole number of at least 1 (not a bool, a float or a string)."""
    return whole_number(top_k, "top_k", 1)


def validate_threshold(threshold: float | None) -> float | None:
    """None (the decision's own threshold) or a confidence from 0 to 1. NaN is refused above all:
    every comparison with it is false, so it would pass any answer as found."""
    if threshold is None:
        return None
    if (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
            or not 0 <= threshold <= 1):
        raise NewsQAError(f"The threshold must be a number from 0 to 1, "
                          f"not {clip(repr(threshold))}.")
    return float(threshold)


def validate_as_of(as_of: str | date | None) -> date | None:
    """The day "now" is for recency: None (today), a date, or "YYYY-MM-DD" text."""
    if as_of is None or (isinstance(as_of, date) and not isinstance(as_of, datetime)):
        return as_of
    if isinstance(as_of, datetime):
        return as_of.date()
    text = as_of.strip() if isinstance(as_of, str) else ""
    day = parse_day(text) if len(text) == 10 else None
    if day is None:
        raise NewsQAError(f"as_of must be a date as YYYY-MM-DD, not {clip(repr(as_of))}.")
    return day


# Date bounds: a year, year-month, date or ISO datetime; stores compare them as text prefixes.
_DATE_BOUND = re.compile(r"\d{4}(-\d{2}(-\d{2}([T ]\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?)?)?)?")
_EARLIEST = "0001-01-01T00:00:00"  # completes a bound's missing parts to check it as a datetime


def validate_filter(sources: Sequence[str] | None, date_from: str | None, date_to: str | None,
                    include_undated: bool) -> Filter:
    """The articles a search may return: source names (matched case-insensitively by the store)
    and inclusive date bounds that are ISO prefixes (``date_to="2024-05"`` keeps all of May) of
    a day the calendar has (no month 13, no 30 February, no year 0)."""
    if isinstance(sources, str) or not all(isinstance(s, str) for s in sources or ()):
        raise NewsQAError(f"sources must be a list of source names, not {clip(repr(sources))}.")
    for name, bound in (("date_from", date_from), ("date_to", date_to)):
        if bound is None:
            continue
        if not (isinstance(bound, str) and _DATE_BOUND.fullmatch(bound)):
            raise NewsQAError(f"{name} {clip(repr(bound))} is not an ISO date such as "
                              "2024-05-31 (or 2024-05, 2024).")
        try:
            datetime.fromisoformat(bound + _EARLIEST[len(bound):])
        except ValueError:
            raise NewsQAError(f"{name} {clip(repr(bound))} is not a date on the "
                              "calendar.") from None
    return Filter(tuple(sources or ()), date_from, date_to, bool(include_undated))


def validate_history(history: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The conversation so far as (question, answer) pairs of text, oldest first, only its last
    ``CONTEXT_TURNS`` kept: no follow-up borrows from older ones (``contextualize``), so a
    long chat neither slows a question down nor makes another cached answer."""
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise NewsQAError("history must be a list of (question, answer) pairs, "
                          f"not {type(history).__name__}.")
    for n, turn in enumerate(history, 1):
        if (isinstance(turn, (str, bytes)) or not isinstance(turn, Sequence) or len(turn) != 2
                or not all(isinstance(text, str) for text in turn)):
            raise NewsQAError(f"history turn {n} is not a (question, answer) pair of text: "
                              f"{clip(repr(turn))}.")
        try:
            "".join(turn).encode("utf-8")
        except UnicodeEncodeError:
            raise NewsQAError(f"history turn {n} is not valid Unicode (a lone "
                              "surrogate).") from None
    return tuple((question, answer) for question, answer in history[-CONTEXT_TURNS:])


def validate_documents(documents: Iterable[Document]) -> list[Document]:
    """Every document checked as a file's are (``qa.ingest.documents.check_document``), its date
    read as ISO 8601. One that cannot be indexed refuses them all, before anything is written, with
    one line naming it by its title or its place in the list."""
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Iterable):
        raise IngestError(f"add() takes a list of documents, not {type(documents).__name__}.")
    checked = []
    for n, doc in enumerate(documents, 1):
        if not isinstance(doc, Document):
            raise IngestError(f"Document {n} is a {type(doc).__name__}, not a Document.")
        title = doc.title.strip() if isinstance(doc.title, str) else ""
        named = f"Document {n}" + (f" ({clip(repr(title))})" if title else "")
        try:
            checked.append(check_document(doc))
        except IngestError as err:
            raise IngestError(f"{named} cannot be indexed: {err}") from None
        if not doc.id.strip():
            raise IngestError(f"{named} has an empty id (qa.ingest.documents.document_id makes one "
                              "from its text).")
    return checked


def validate_follow_id(follow_id: str) -> str:
    """A followed question's id (``f1``, as ``follow list`` shows it), stripped."""
    if not isinstance(follow_id, str):
        raise NewsQAError(f"A followed question's id must be text, such as f1, not "
                          f"{type(follow_id).__name__}.")
    return follow_id.strip()


def validate_feed_url(url: str) -> str:
    """The URL without surrounding blanks; what it names is for the fetcher to judge."""
    if not isinstance(url, str):
        raise NewsQAError(f"A feed URL must be text, not {type(url).__name__}.")
    return url.strip()
