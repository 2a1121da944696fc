"""Documents: every format ends in ``make_document``, so text normalisation, ids and dates are
handled in one place, and ``check_document`` is the one check of every document, read from a
file or given to ``NewsQA.add``. Bad input raises ``IngestError`` with one sentence.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, time
from typing import Any

from dateutil import parser as dateutil_parser

from qa.errors import IngestError, clip
from qa.types import Document, document_key

log = logging.getLogger(__name__)

_NO_DATE = datetime(1, 1, 1)  # dateutil fills missing parts from this; year 1 means "no year given"
# Limits that keep one hostile or mistaken file from exhausting memory; settable at run time.
# A long news feature is about 100k characters: a document 20 times longer is not an article.
MAX_DOCUMENT_CHARS = 2_000_000


class _UnreadableDate(IngestError):
    """A date that is not a calendar date; corpus loaders drop it instead of the record."""


def document_id(text: str) -> str:
    """Hash of the text with whitespace collapsed, so re-adding the same article is a no-op."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def make_document(text: str, *, title: str = "", source: str = "", url: str = "",
                  published: str = "", date_source: str = "", external_id: str = "") -> Document:
    """Build a ``Document`` with normalised text and an ISO 8601 ``published`` date, which
    ``date_source`` says where it was read (see ``qa.types.DATE_SOURCES``).

    Raises ``IngestError`` as ``check_document`` does (callers add the path).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    doc = check_document(Document(id="", text=text, title=" ".join(title.split()),
                                  source=source.strip(), url=url.strip(), published=published,
                                  date_source=date_source, external_id=external_id.strip()))
    return dataclasses.replace(doc, id=document_id(text))  # hashed once the text is known good


def check_document(doc: Document) -> Document:
    """``doc`` with its date read as ISO 8601, and a ``key`` from its external id or URL when it
    was given none (``qa.types.document_key``), if it can be indexed: the one check of every
    document, read from a file (``make_document``) or given to ``NewsQA.add``. Its id is the
    caller's to give.

    Raises ``IngestError`` for a field that is not text or not valid Unicode, empty or
    over-long text, or a date that cannot be read, which is checked last.
    """
    for name in (f.name for f in dataclasses.fields(Document)):
        value = getattr(doc, name)
        if not isinstance(value, str):
            raise IngestError(f"The document {name} must be text, not {type(value).__name__}.")
        _check_unicode(name, value)
    if not doc.text.strip():
        raise IngestError("The document text is empty.")
    if len(doc.text) > MAX_DOCUMENT_CHARS:
        raise IngestError(f"The document is {len(doc.text):,} characters long; the limit is "
                          f"{MAX_DOCUMENT_CHARS:,} (qa.ingest.documents.MAX_DOCUMENT_CHARS).")
    published = _iso_date(doc.published)
    return dataclasses.replace(doc, published=published,
                               date_source=doc.date_source if published else "",
                               key=doc.key or document_key(doc.external_id, doc.url))


def _check_unicode(name: str, value: str) -> None:
    """Refuse lone surrogates (from JSON escapes such as "\\ud800", or file names that are not
    UTF-8): they cannot be stored, hashed or shown, so they would fail far from their cause."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise IngestError(f"The {name} is not valid Unicode (a lone surrogate, "
                          f"{value[err.start]!r}, at character {err.start}).") from None


def _iso_date(value: str) -> str:
    """``YYYY-MM-DD`` for a bare date, a full ISO datetime otherwise, "" for no date."""
    value = value.strip()
    if not value:
        return ""
    try:
        parsed = dateutil_parser.parse(value, default=_NO_DATE)
    except (ValueError, ArithmeticError):  # overflows, and decimal errors on long digit runs
        parsed = _NO_DATE
    if parsed.year == _NO_DATE.year:
        raise _UnreadableDate(f"The date {clip(repr(value))} cannot be read as a calendar date.")
    if parsed.tzinfo is None and parsed.time() == time(0):
        return parsed.date().isoformat()
    return parsed.isoformat(timespec="seconds")


def readable_date(value: str) -> str:
    """``value`` as an ISO date, or "" when it is not a calendar date (metadata is often junk)."""
    try:
        return _iso_date(value)
    except _UnreadableDate:
        return ""


def records_to_documents(items: Iterable[tuple[str, object]],
               fields_of: Callable[[Any], dict[str, str] | None],
               where: str, kind: str) -> list[Document]:
    """One document per item (a JSON record, a feed entry), from the ``make_document`` arguments
    that ``fields_of`` reads from it: None when it has no text.

    ``IngestError`` from ``fields_of`` (say, a record without a text field) fails the file: it is
    not what it seems. Otherwise one bad item of a 21k-article corpus should not lose the corpus:
    an item with empty text, or text that ``make_document`` refuses (too long, not valid
    Unicode), is skipped and an unreadable date dropped, each kind with one warning.
    """
    docs, empty, refused, bad_dates = [], [], [], []
    for label, item in items:
        try:
            fields = fields_of(item)
        except IngestError as err:
            raise IngestError(f"{where}, {label}: {err}") from None
        if fields is None:
            empty.append(label)
            continue
        try:
            docs.append(make_document(**fields))
        except _UnreadableDate:
            bad_dates.append(f"{label}: {clip(repr(fields['published']))}")
            docs.append(make_document(**{**fields, "published": ""}))  # the date is checked last
        except IngestError as err:
            refused.append(f"{label}: {err}")
    if not docs:
        raise IngestError(f"{where}, {refused[0]}" if refused
                          else f"{where} has no {kind} with text.")
    if empty:
        log.warning("Skipped %d %s(s) with empty text in %s (first at %s).",
                    len(empty), kind, where, empty[0])
    if refused:
        log.warning("Skipped %d %s(s) that cannot be indexed in %s (first at %s)",
                    len(refused), kind, where, refused[0])
    if bad_dates:
        log.warning("Ignored %d unreadable date(s) in %s (first at %s).",
                    len(bad_dates), where, bad_dates[0])
    return docs
