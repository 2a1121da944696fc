"""Turn files, folders, feeds and URLs into ``Document``s.

Every format ends in ``make_document``, so text normalisation, ids and dates are handled in one
place. Bad input raises ``IngestError`` with one sentence naming the path or URL.
"""
from __future__ import annotations

import collections
import dataclasses
import errno
import functools
import gzip
import hashlib
import http.client
import io
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import stat
import threading
import urllib.parse
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from html.parser import HTMLParser
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import feedparser
import trafilatura
from dateutil import parser as dateutil_parser

from qa.errors import IngestError, clip
from qa.types import Document

if TYPE_CHECKING:
    from lxml.html import HtmlElement

log = logging.getLogger(__name__)

TITLE_MAX_CHARS = 120  # a longer first line is the article's opening paragraph, not its headline
# "context" lets SQuAD-style question files index as their passages (duplicates are no-ops).
TEXT_FIELDS = ("text", "content", "body", "context")
DATE_FIELDS = ("published", "date")
URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # any scheme, so ftp:// is refused clearly
USER_AGENT = "newsqa/0.1"
_NO_DATE = datetime(1, 1, 1)  # dateutil fills missing parts from this; year 1 means "no year given"
# Limits that keep one hostile or mistaken file from exhausting memory; settable at run time.
# A long news feature is about 100k characters: a document 20 times longer is not an article.
MAX_DOCUMENT_CHARS = 2_000_000
# A file of many documents (JSON, JSON Lines, a feed), after gunzipping: about 4 times the largest
# corpus used here (Reuters-21578, 22 MB of JSON Lines).
MAX_FILE_BYTES = 100_000_000
# Formats that hold one document a file. Their limit is 4 bytes (the most UTF-8 takes for one
# character) a character of MAX_DOCUMENT_CHARS: a bigger text file cannot fit, so it is not read.
_ARTICLE_FORMATS = (".txt", ".md", ".html", ".htm")


class _RefusedFile(IngestError):
    """A file that turned out, once open, not to be one to read: not a regular file, or outside
    the folder being indexed. In a folder it is an error, never a skipped format."""


class _UnreadableDate(IngestError):
    """A date that is not a calendar date; corpus loaders drop it instead of the record."""


def document_id(text: str) -> str:
    """Hash of the text with whitespace collapsed, so re-adding the same article is a no-op."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def make_document(text: str, *, title: str = "", source: str = "", url: str = "",
                  published: str = "", date_source: str = "") -> Document:
    """Build a ``Document`` with normalised text and an ISO 8601 ``published`` date, which
    ``date_source`` says where it was read (see ``qa.types.DATE_SOURCES``).

    Raises ``IngestError`` as ``check_document`` does (callers add the path).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    doc = check_document(Document(id="", text=text, title=" ".join(title.split()),
                                  source=source.strip(), url=url.strip(), published=published,
                                  date_source=date_source))
    return dataclasses.replace(doc, id=document_id(text))  # hashed once the text is known good


def check_document(doc: Document) -> Document:
    """``doc`` with its date read as ISO 8601, if it can be indexed: the one check of every
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
                          f"{MAX_DOCUMENT_CHARS:,} (qa.ingest.files.MAX_DOCUMENT_CHARS).")
    published = _iso_date(doc.published)
    return dataclasses.replace(doc, published=published,
                               date_source=doc.date_source if published else "")


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


# --- targets ---------------------------------------------------------------------------------

_T = TypeVar("_T")
Errors = list[str] | None  # where to note a bad target and go on; None: raise at the first


def load(targets: Iterable[str | Path], *, fetcher: Fetcher | None = None,
         errors: Errors = None) -> list[Document]:
    """Load every target: a file, a folder (recursively) or an http(s) URL.

    With an ``errors`` list, a target (or a file in a folder) that cannot be loaded adds its one
    line there and the others still load; without, the first one raises ``IngestError``.
    """
    return _each(_listed(targets, "load"), lambda t: _load_target(t, fetcher, errors), errors)


def load_urls(urls: Iterable[str], fetcher: Fetcher | None = None, *,
              errors: Errors = None) -> list[Document]:
    """Fetch http(s) URLs only: an address typed into a web page must never name a local file,
    so anything else is refused by the fetcher's guard before the disk is touched."""
    return _each(_listed(urls, "load_urls"), lambda url: load_url(str(url), fetcher), errors)


def load_uploads(paths: Iterable[str | Path], *, errors: Errors = None) -> list[Document]:
    """Exactly the given uploaded files: never a folder or a symbolic link. Errors name a file by
    its name alone, because the app must not reveal where the server keeps uploads."""
    return _each(_listed(paths, "load_uploads"), lambda path: _load_upload(Path(path)), errors)


def _listed(targets: Iterable[str | Path], caller: str) -> Iterable[str | Path]:
    if isinstance(targets, (str, Path)):  # iterating it would load one path per character
        raise TypeError(f"{caller}() takes a list of targets, not the single target {targets!r}.")
    return targets


def _each(items: Iterable[_T], load_one: Callable[[_T], list[Document]],
          errors: Errors) -> list[Document]:
    """The documents of every item; a failing item is noted in ``errors`` (or raises)."""
    docs: list[Document] = []
    for item in items:
        try:
            docs += load_one(item)
        except IngestError as err:
            if errors is None:
                raise
            errors.append(str(err))
    return docs


def _load_target(target: str | Path, fetcher: Fetcher | None, errors: Errors) -> list[Document]:
    if isinstance(target, str) and URL_PATTERN.match(target):
        return load_url(target, fetcher)
    path = Path(target)
    try:
        is_folder = stat.S_ISDIR(path.stat().st_mode)
    except OSError as err:  # Path.exists() would raise some, such as a name too long
        raise _cannot_read(path, err) from None
    if is_folder:
        return _load_folder(path, errors)
    return _load_file(path, named=True)


def _load_upload(path: Path) -> list[Document]:
    """One uploaded file, its server path replaced by its name in any error."""
    try:
        if path.is_symlink() or not path.is_file():
            raise IngestError(f"{path} is not a regular file.")
        return _load_file(path, named=True)
    except IngestError as err:
        raise IngestError(str(err).replace(str(path), path.name)) from None


def _load_folder(folder: Path, errors: Errors = None) -> list[Document]:
    """Every supported file under ``folder``, in sorted order, skipping hidden files and folders.

    Links never lead out of ``folder``: one that points outside is skipped with a warning. Linked
    folders are not entered (a link cycle cannot loop), and a linked file inside is read once.
    Only regular files are read: a FIFO, device or socket is skipped with a warning. Each file is
    checked again once it is open (``_open``): a file swapped for a link out or a FIFO after the
    listing is refused too. A folder that cannot be listed fails like a file that cannot be read.
    """
    root = folder.resolve()
    found: list[Path] = []
    unlisted: list[OSError] = []  # os.walk passes over a folder it cannot list without a word
    for where, dirs, names in os.walk(folder, onerror=unlisted.append):  # links not entered
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        # os.path.islink, unlike Path.is_symlink, is False where lstat fails (a name too long):
        # os.walk then fails to list that folder, and says so through ``unlisted``
        for linked in [Path(where, d) for d in dirs if os.path.islink(Path(where, d))]:
            _real_inside(linked, root)  # only to warn: files inside are read where they are
        found += [Path(where, name) for name in names if not name.startswith(".")]
    files: list[Path] = []
    seen: set[Path] = set()
    for path in sorted(found):
        real = _real_inside(path, root)
        if real is None or real in seen:
            continue
        try:
            mode = real.stat().st_mode
        except OSError as err:  # a link to nothing, or a file gone since the listing
            log.warning("Skipping: %s", _cannot_read(path, err))
            continue
        if not stat.S_ISREG(mode):
            log.warning("Skipping: %s", _not_regular(path, mode))
            continue
        seen.add(real)
        files.append(path)
    noted = len(errors or [])
    docs = _each(unlisted, _refuse_unlisted, errors)
    docs += _each(files, lambda path: _load_file(path, named=False, root=root), errors)
    if not docs and len(errors or []) == noted:  # no file failed: there was nothing to read
        raise IngestError(f"{folder} contains no supported files.")
    return docs


def _real_inside(path: Path, root: Path) -> Path | None:
    """The real path of ``path`` if it is under ``root``; None, with a warning, for a link out."""
    real = Path(os.path.realpath(path))  # Path.resolve raises RuntimeError for a link loop
    if real.is_relative_to(root):
        return real
    log.warning("Skipping %s: it links to outside the folder being indexed.", path)
    return None


def _refuse_unlisted(err: OSError) -> list[Document]:
    """Raises the one line for a folder that ``os.walk`` could not list."""
    raise _cannot_read(err.filename, err)


def _cannot_read(path: Path | str, err: OSError) -> IngestError:
    """The one line for a file or folder that the system would not open, list or look up."""
    if isinstance(err, (FileNotFoundError, NotADirectoryError)):
        return IngestError(f"{path} does not exist.")
    reason = "permission denied" if isinstance(err, PermissionError) else err.strerror
    return IngestError(f"{path} cannot be read ({reason}).")


# What a path that is not a regular file is, for the line that refuses it
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a folder"))


def _not_regular(path: Path, mode: int) -> _RefusedFile:
    """The one line refusing ``path``, whose ``st_mode`` is ``mode``: reading a FIFO waits for a
    writer, perhaps forever, and a device such as /dev/zero never ends."""
    kind = next((f" but {name}" for is_kind, name in _KINDS if is_kind(mode)), "")
    return _RefusedFile(f"{path} is not a regular file{kind}; only regular files are read.")


def _load_file(path: Path, *, named: bool, root: Path | None = None) -> list[Document]:
    """Dispatch on the suffix; an unknown suffix is still accepted when the file is a feed.
    ``root``: the real folder being indexed, which the file must be in once it is open."""
    loader = LOADERS.get(_format_of(path))
    if loader is not None:
        return loader(_read(path, root), path)
    if _starts_like_xml(path, root):
        try:
            return _feed_documents(parse_feed(_read(path, root), str(path)), str(path))
        except IngestError as err:
            if named or isinstance(err, _RefusedFile):
                raise
            log.warning("Skipping: %s", err)  # in a folder, XML that is no feed; err names it
            return []
    if named:
        raise IngestError(f"{path} is not a supported file type "
                          f"(supported: {', '.join(sorted(LOADERS))}, optionally gzipped).")
    log.warning("Skipping %s: not a supported file type.", path)
    return []


def _format_of(path: Path) -> str:
    """The suffix that names the format: ``.jsonl`` for ``corpus.jsonl.gz``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _stem(path: Path) -> str:
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    # a name that is not UTF-8 (surrogate escapes) is shown with U+FFFD, as file managers do
    return os.fsencode(Path(name).stem).decode("utf-8", "replace")


def _open(path: Path, root: Path | None) -> BinaryIO:
    """``path`` open for reading if it is a regular file; with ``root``, only if the file opened
    is inside it.

    The checks are made on the open file (``fstat``, and its path from ``/proc/self/fd``; where
    there is no such folder, the path resolved after opening), so nothing can swap the file for
    a FIFO, a device or a link out between the check and the read. It is opened without waiting:
    opening a FIFO to read would otherwise wait for a writer, perhaps forever."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.ENXIO:  # a socket cannot be opened at all: say what it is
            raise _not_regular(path, os.stat(path).st_mode) from None
        raise
    file = os.fdopen(fd, "rb")
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        os.set_blocking(fd, True)  # O_NONBLOCK was for the open alone
        if root is not None:
            proc = Path(f"/proc/self/fd/{fd}")
            real = Path(os.readlink(proc)) if proc.is_symlink() else path.resolve()
            if not real.is_relative_to(root):
                raise _RefusedFile(f"{path} links to outside the folder being indexed; skipped.")
    except BaseException:
        file.close()
        raise
    return file


def _read(path: Path, root: Path | None = None) -> bytes:
    """The file's bytes (gunzipped), refusing unreadable, oversized, empty and binary files, and
    (``_open``) what is not a regular file and, with ``root``, files outside it.

    At most one byte over the limit is read, or inflated from a gzip stream, so a huge file or a
    gzip bomb costs no more memory than the limit.
    """
    gzipped = path.suffix.lower() == ".gz"
    article = _format_of(path) in _ARTICLE_FORMATS
    limit = 4 * MAX_DOCUMENT_CHARS if article else MAX_FILE_BYTES
    try:
        with _open(path, root) as file:
            raw = _inflate(file, limit, path) if gzipped else file.read(limit + 1)
    except OSError as err:
        raise _cannot_read(path, err) from None
    if len(raw) > limit:
        setting = "MAX_DOCUMENT_CHARS" if article else "MAX_FILE_BYTES"
        raise IngestError(f"{path} {'unpacks to' if gzipped else 'is'} more than {limit:,} bytes, "
                          f"the limit for {'one article' if article else 'a file'} "
                          f"(set by qa.ingest.{setting}).")
    if not raw.strip():
        raise IngestError(f"{path} is empty.")
    if b"\0" in raw:
        raise IngestError(f"{path} is a binary file, not text.")
    return raw


def _inflate(file: BinaryIO, limit: int, path: Path) -> bytes:
    """At most ``limit + 1`` bytes of a gzip stream: it is never inflated further."""
    try:
        return gzip.GzipFile(fileobj=file).read(limit + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error):
        raise IngestError(f"{path} is not a valid gzip file.") from None


def _decode(raw: bytes, where: str | Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise IngestError(
            f"{where} is not UTF-8 text (invalid byte at offset {err.start}).") from None


# --- formats ---------------------------------------------------------------------------------

def _load_text(raw: bytes, path: Path) -> list[Document]:
    return [_plain_document(_decode(raw, path), path, heading_marks="")]


def _load_markdown(raw: bytes, path: Path) -> list[Document]:
    return [_plain_document(_decode(raw, path), path, heading_marks="#")]


def _plain_document(text: str, path: Path, heading_marks: str) -> Document:
    """The whole file is the text (offsets refer to it); the first line gives the title.

    A first line longer than a headline is the opening paragraph: its start, cut at a word, reads
    better in a source list than a file name would.
    """
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = first_line.lstrip(heading_marks).strip()
    if len(title) > TITLE_MAX_CHARS:
        title = title[:TITLE_MAX_CHARS].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"
    try:
        return make_document(text, title=title or _stem(path))
    except IngestError as err:
        raise IngestError(f"{path}: {err}") from None


def _load_html(raw: bytes, path: Path) -> list[Document]:
    return [_html_document(raw, str(path), url="", fallback_title=_stem(path))]


def _html_document(raw: bytes, where: str, *, url: str, fallback_title: str,
                   last_modified: str = "") -> Document:
    """The page's main text and metadata, as trafilatura extracts them, but its date read from
    metadata only (``_html_date``); else the HTTP ``last_modified`` header, flagged as such."""
    tree = trafilatura.load_html(raw)
    published, date_source = _html_date(tree) if tree is not None else ("", "")
    if not published and last_modified:
        published, date_source = _readable_date(last_modified), "http-last-modified"
    # trafilatura's own date (htmldate) is not used: it may be read from the article's text
    page = trafilatura.bare_extraction(tree, url=url or None, with_metadata=True,
                                       date_extraction_params={"extensive_search": False})
    if page is None or not (page.text or "").strip():
        raise IngestError(f"{where} has no article text that could be extracted.")
    try:
        return make_document(page.text, title=page.title or fallback_title,
                             source=page.sitename or page.author or page.hostname or "",
                             url=url or page.url or "", published=published,
                             date_source=date_source)
    except IngestError as err:
        raise IngestError(f"{where}: {err}") from None


# <meta> names and properties that hold the publication date (Open Graph, schema.org
# microdata, Dublin Core and newsroom conventions), most specific first.
_META_DATE_KEYS = ("article:published_time", "og:article:published_time", "datepublished",
                   "publishdate", "publish-date", "publish_date", "pubdate",
                   "publication_date", "parsely-pub-date", "sailthru.date", "dc.date.issued",
                   "dcterms.issued", "dcterms.created", "dc.date", "dcterms.date", "date")
_JSON_LD_DATE_KEYS = ("datePublished", "dateCreated")


def _html_date(tree: HtmlElement) -> tuple[str, str]:
    """The page's publication date and where it was found: ``<meta>`` tags (and elements
    marked ``itemprop="datePublished"``), then JSON-LD; ("", "") without one. Never the
    visible text, where "in 2001" is what a story is about, not when it was written."""
    found: dict[str, str] = {}
    for element in tree.iter("meta", "time"):
        key = (element.get("property") or element.get("name") or element.get("itemprop")
               or "").strip().lower()
        value = element.get("content") or element.get("datetime") or ""
        if key in _META_DATE_KEYS and (element.tag == "meta" or key == "datepublished"):
            found.setdefault(key, value)
    for key in _META_DATE_KEYS:
        date = _readable_date(found.get(key, ""))
        if date:
            return date, "html-meta"
    for script in tree.iter("script"):
        if (script.get("type") or "").strip().lower() == "application/ld+json":
            date = _json_ld_date(script.text or "")
            if date:
                return date, "json-ld"
    return "", ""


def _json_ld_date(text: str) -> str:
    """``datePublished`` (else ``dateCreated``) of a JSON-LD block, searched breadth first so
    that the article's own date comes before those of things it mentions; "" if none."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # broken or hostile JSON-LD is common: no date
        return ""
    nodes: list[dict] = []
    queue = collections.deque([data])
    while queue:
        node = queue.popleft()
        if isinstance(node, dict):
            nodes.append(node)
            queue.extend(node.values())
        elif isinstance(node, list):
            queue.extend(node)
    for key in _JSON_LD_DATE_KEYS:
        for node in nodes:
            value = node.get(key)
            date = _readable_date(value) if isinstance(value, str) else ""
            if date:
                return date
    return ""


def _readable_date(value: str) -> str:
    """``value`` as an ISO date, or "" when it is not a calendar date (metadata is often junk)."""
    try:
        return _iso_date(value)
    except _UnreadableDate:
        return ""


def _load_json(raw: bytes, path: Path) -> list[Document]:
    data = _parse_json(_decode(raw, path), path)
    records = data if isinstance(data, list) else [data]
    numbered = ((f"record {n}", r) for n, r in enumerate(records, 1))
    return records_to_documents(numbered, _record_fields, str(path), "record")


def _load_jsonl(raw: bytes, path: Path) -> list[Document]:
    return records_to_documents(_jsonl_records(raw, path), _record_fields, str(path), "record")


def _jsonl_records(raw: bytes, path: Path) -> Iterator[tuple[str, object]]:
    """Each line's record, decoded one line at a time: never the whole file as one string."""
    # split on b"\n" only: str.splitlines would also break at U+2028 inside JSON strings
    for n, line in enumerate(io.BytesIO(raw), 1):
        if line.strip():
            yield f"line {n}", _parse_json(_decode(line, f"{path}, line {n}"), path, n)


def _parse_json(text: str, path: Path, line: int | None = None) -> object:
    """A whole JSON file, or its ``line`` of JSON Lines. Every failure is one ``IngestError``:
    bad syntax, but also nesting deeper than Python's recursion limit and integers of more than
    4,300 digits, which ``json`` raises as RecursionError and ValueError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        line, reason = line or err.lineno, err.msg
    except RecursionError:
        reason = "nested too deeply"
    except ValueError as err:
        reason = str(err).split(":")[0]
    where = f"{path}, line {line}" if line else str(path)
    raise IngestError(f"{where} is not valid JSON ({reason}).")


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


def _record_fields(record: object) -> dict[str, str] | None:
    """``make_document``'s arguments from a JSON record, or None when its text is empty."""
    if not isinstance(record, dict):
        raise IngestError("The record is not a JSON object.")
    key = next((k for k in TEXT_FIELDS if k in record), None)
    if key is None:
        raise IngestError("The record has no 'text' field "
                          "(also accepted: 'content', 'body', 'context').")
    text = _string_field(record, key)
    if not text.strip():
        return None
    return {"text": text, "title": _string_field(record, "title"),
            "source": _string_field(record, "source"), "url": _string_field(record, "url"),
            "published": next((_string_field(record, k) for k in DATE_FIELDS if record.get(k)), ""),
            "date_source": "json-field"}


def _string_field(record: dict, key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise IngestError(f"The record's {key!r} field is not a string.")
    return value


def _load_feed(raw: bytes, path: Path) -> list[Document]:
    return _feed_documents(parse_feed(raw, str(path)), str(path))


def parse_feed(raw: bytes, where: str, headers: dict[str, str] | None = None
                ) -> feedparser.FeedParserDict:
    # a stream, never a str: feedparser would fetch a string that looks like a URL
    try:
        feed = feedparser.parse(io.BytesIO(raw), response_headers=headers or {})
    except (ValueError, OverflowError) as err:  # character references outside Unicode (&#xD800;)
        raise IngestError(f"{where} cannot be read as a feed ({err}).") from None
    if not feed.entries:
        reason = f" ({feed.bozo_exception})" if feed.bozo else ""
        raise IngestError(f"{where} is not an RSS or Atom feed with entries{reason}.")
    return feed


def _starts_like_xml(path: Path, root: Path | None = None) -> bool:
    """Whether an unknown-suffix file may be a feed: it starts like XML. Only its head is read,
    so a folder's images and archives cost nothing; a feed's parse error is then reported."""
    try:
        with _open(path, root) as f:
            head = f.read(512)
    except OSError:
        return False  # reported as an unsupported file, as before it was opened
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _feed_documents(feed: feedparser.FeedParserDict, where: str) -> list[Document]:
    """One document per entry with text (see ``records_to_documents``)."""
    entries = ((f"entry {n}", entry) for n, entry in enumerate(feed.entries, 1))
    fields = functools.partial(entry_fields, source=feed.feed.get("title", ""))
    return records_to_documents(entries, fields, where, "feed entry")


def entry_fields(entry: feedparser.FeedParserDict, source: str) -> dict[str, str] | None:
    """``make_document``'s arguments for a feed entry; the feed's title is its source."""
    text = _html_to_text(_entry_html(entry))
    if not text:
        return None
    return {"text": text, "title": entry.get("title", ""), "source": source,
            "url": entry.get("link", ""), "published": entry_date(entry), "date_source": "feed"}


def _entry_html(entry: feedparser.FeedParserDict) -> str:
    if entry.get("content"):
        return entry.content[0].get("value", "")
    return entry.get("summary", "")


def entry_date(entry: feedparser.FeedParserDict) -> str:
    """The date as feedparser read it (it knows the formats feeds use), in UTC.

    feedparser also passes on dates that no calendar has, such as year 0: then the date as the
    feed wrote it, which ``make_document`` reads or refuses like any other date.
    """
    for key in ("published", "updated"):
        parsed = entry.get(f"{key}_parsed")
        if parsed:
            try:
                return datetime(*parsed[:6], tzinfo=timezone.utc).isoformat()
            except (ValueError, OverflowError):
                return entry.get(key, "")
    return ""


class _TextCollector(HTMLParser):
    """Collects the text of an HTML fragment, with a line break at each block element."""

    BLOCKS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
              "blockquote", "pre", "table", "tr", "section", "article", "figure", "figcaption"}
    HIDDEN = {"script", "style", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def _html_to_text(fragment: str) -> str:
    """Plain text of a feed entry's HTML, one paragraph per block.

    trafilatura is built for whole pages and drops short fragments, hence ``html.parser``.
    """
    collector = _TextCollector()
    collector.feed(fragment)
    collector.close()
    lines = (" ".join(line.split()) for line in "".join(collector.parts).split("\n"))
    return "\n\n".join(line for line in lines if line)


LOADERS: dict[str, Callable[[bytes, Path], list[Document]]] = {
    ".txt": _load_text, ".md": _load_markdown, ".html": _load_html, ".htm": _load_html,
    ".json": _load_json, ".jsonl": _load_jsonl,
    ".xml": _load_feed, ".rss": _load_feed, ".atom": _load_feed,
}


# --- URLs ------------------------------------------------------------------------------------

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_CONDITIONS = frozenset({"if-none-match", "if-modified-since"})  # request headers that allow a 304
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 forms that carry an IPv4 address in their last 32 bits (6to4 and mapped ones: ipaddress)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated (RFC 4291), but still routed
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix (RFC 6052)
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (RFC 2765, SIIT)
# Not globally reachable, but Python 3.11's tables call them global: local-use NAT64 (RFC 8215)
# and the deprecated site-local addresses (RFC 3879), which networks may still route inside.
_NOT_GLOBAL = (ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("fec0::/10"))


class Fetcher:
    """Downloads a URL for ingestion, refusing what a server-side tool must not fetch.

    Only http(s) is fetched. Each hop's host is resolved once, every address it resolves to must
    be public, and the connection goes to one of those checked addresses: a DNS answer that
    changes between the check and the connection (rebinding) cannot lead to the machine the app
    runs on or its network. Loopback, private, link-local, site-local, reserved and multicast
    addresses are refused, also inside IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 and
    6to4 IPv6 addresses, unless ``allow_private``. ``timeout`` bounds the whole fetch in seconds (every redirect's name
    lookup, the headers and the body), so a server that trickles bytes is cut off too.
    """

    def __init__(self, timeout: float = 30, max_bytes: int = 5_000_000,
                 allow_private: bool = False, max_redirects: int = 5) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self.max_redirects = max_redirects

    @functools.cached_property
    def _tls(self) -> ssl.SSLContext:
        """Certificate-checking TLS whose sockets keep the deadline (made on the first https)."""
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        return context

    def fetch(self, url: str) -> tuple[bytes, str, str]:
        """``(body, content_type, final_url)``; ``IngestError`` for refused or failed requests."""
        response = self.get(url)
        return response.body, response.content_type, response.url

    def get(self, url: str, headers: Mapping[str, str] | None = None,
            deadline: float | None = None) -> Response:
        """The response to a GET of ``url`` with extra request ``headers``; ``IngestError`` for
        refused or failed requests. A 304 is an answer only to a conditional request (one with
        ``If-None-Match`` or ``If-Modified-Since``): the resource has not changed since.

        ``deadline``, a ``monotonic()`` time, ends the fetch sooner than ``timeout`` would: a
        feed poll shares its own with every page it fetches (``qa.ingest.feeds.poll``)."""
        end = monotonic() + self.timeout
        limit = f"the limit of {self.timeout:g} s"
        if deadline is not None and deadline < end:
            end, limit = deadline, "the deadline it was given"
        current = url
        for _ in range(self.max_redirects + 1):
            hop = self._check(current, end, limit)
            try:
                response, body = self._get(hop, end, headers or {})
            except TimeoutError:
                raise IngestError(f"{clip(url)} took longer than {limit}.") from None
            except (OSError, http.client.HTTPException) as err:
                reason = err or type(err).__name__
                raise IngestError(f"{clip(url)} could not be fetched ({clip(reason)}).") from None
            location = response.headers.get("Location")
            if response.status in REDIRECT_CODES and location:
                current = urllib.parse.urljoin(current, location)
                continue
            asked = _CONDITIONS & {name.lower() for name in headers or {}}
            if not (200 <= response.status < 300 or (response.status == 304 and asked)):
                raise IngestError(f"{clip(url)} answered HTTP {response.status} "
                                  f"({clip(response.reason)}).")
            if len(body) > self.max_bytes:
                raise IngestError(
                    f"{clip(url)} is larger than the limit of {self.max_bytes:,} bytes.")
            return Response(body, response.headers.get("Content-Type", ""), current,
                            response.status,
                            {name.lower(): value for name, value in response.headers.items()})
        raise IngestError(f"{clip(url)} redirects more than {self.max_redirects} time(s).")

    def check_url(self, url: str) -> _Hop:
        """The request for ``url``, its host resolved once (within ``timeout``) and every
        address checked.

        Raises ``IngestError`` unless ``url`` is http(s) on a host this fetcher may reach.
        """
        return self._check(url, monotonic() + self.timeout, f"the limit of {self.timeout:g} s")

    def _check(self, url: str, deadline: float, limit: str) -> _Hop:
        """``check_url`` with the host resolved by ``deadline`` (a ``monotonic()`` time), which
        ``limit`` names in the error when it passes first."""
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as err:  # a bad port or IPv6 literal
            raise IngestError(f"{clip(url)} is not a valid URL ({clip(err)}).") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise IngestError(f"{clip(url)} is not an http or https URL.")
        if not parts.hostname:
            raise IngestError(f"{clip(url)} has no host name.")
        if port is None:
            port = http.client.HTTPS_PORT if scheme == "https" else http.client.HTTP_PORT
        try:
            infos = _resolve(parts.hostname, port, deadline)
        except TimeoutError:
            raise IngestError(f"{clip(url)}: resolving the host {clip(parts.hostname)} took "
                              f"longer than {limit}.") from None
        if not infos:
            raise IngestError(f"{clip(url)}: the host {clip(parts.hostname)} cannot be resolved.")
        for info in infos:
            address = ipaddress.ip_address(info[4][0].split("%")[0])
            inner = _ipv4_inside(address)
            if not (self.allow_private or _is_public(inner or address)):
                shown = f"{inner} (inside {address})" if inner else address
                raise IngestError(f"{clip(url)} resolves to the non-public address {shown}; "
                                  "fetching it is not allowed.")
        return _Hop(host=parts.hostname, port=port, tls=scheme == "https",
                    target=urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, "")),
                    addresses=tuple((info[0], info[4]) for info in infos))

    def _get(self, hop: _Hop, deadline: float, headers: Mapping[str, str]
             ) -> tuple[http.client.HTTPResponse, bytes]:
        """One GET; the body (up to one byte over the limit) is read only for a 2xx answer."""
        connection = _PinnedConnection(hop, deadline, self._tls if hop.tls else None)
        try:
            connection.request("GET", hop.target, headers={"User-Agent": USER_AGENT, **headers})
            response = connection.getresponse()
            ok = 200 <= response.status < 300
            return response, response.read(self.max_bytes + 1) if ok else b""
        finally:
            connection.close()


@dataclass(frozen=True)
class Response:
    """What ``Fetcher.get`` received: a 2xx answer, or a 304 (with no body) to a conditional
    request. ``url`` is the final one, after redirects; header names are lower-case."""

    body: bytes
    content_type: str
    url: str
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Hop:
    """One request of a fetch, with the addresses its host resolved to when it was checked."""

    host: str
    port: int
    tls: bool
    target: str  # path and query, for the request line
    addresses: tuple[tuple[int, tuple], ...]  # (family, socket address), in resolver order


def _ipv4_inside(address: _IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 or 6to4
    IPv6 address: packets to it end up there, so it is the one to judge."""
    if address.version == 4:
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if (address in _NAT64 or address in _IPV4_TRANSLATED
            or (address in _IPV4_COMPATIBLE and int(address) > 1)):  # not :: or ::1
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _is_public(address: _IPAddress) -> bool:
    # is_global is False for loopback, private, link-local and unspecified addresses, and for
    # IPv4's reserved ones
    return (address.is_global and not address.is_multicast
            and not any(address in network for network in _NOT_GLOBAL))


def _resolve(host: str, port: int, deadline: float) -> list[tuple]:
    """``getaddrinfo`` of ``host``, waited for only until ``deadline``; [] for a name that does
    not resolve. The system resolver takes no timeout from its caller, so the lookup runs in a
    daemon thread that is left to the resolver's own timeout when the deadline passes first:
    a slow name server cannot hold a fetch past its limit."""
    answer: list[tuple] = []

    def lookup() -> None:
        try:
            answer.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, ValueError):  # gaierror, or a name IDNA cannot encode
            pass

    thread = threading.Thread(target=lookup, name="newsqa-resolve", daemon=True)
    thread.start()
    thread.join(_remaining(deadline))
    if thread.is_alive():
        raise TimeoutError(f"resolving {host} took past the deadline")
    return answer


def _remaining(deadline: float) -> float:
    """Seconds left before ``deadline``; ``TimeoutError`` once it has passed."""
    left = deadline - monotonic()
    if left <= 0:
        raise TimeoutError("the fetch deadline has passed")
    return left


class _DeadlineMixin:
    """Every receive waits only until the fetch's deadline. A timeout per call starts again with
    each byte, so a server trickling a byte every few seconds could hold a fetch for hours."""

    deadline: float | None = None

    def recv_into(self, buffer: memoryview | bytearray, *args: int) -> int:
        if self.deadline is not None:
            self.settimeout(_remaining(self.deadline))  # type: ignore[attr-defined]
        return super().recv_into(buffer, *args)  # type: ignore[misc]


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    """A TCP socket whose receives end at the fetch's deadline."""


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    """A TLS socket whose receives end at the fetch's deadline."""


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP(S) to an address checked beforehand, never to a second DNS answer. The URL's host
    name still goes into the Host header and the TLS server name, and the certificate is
    checked against it."""

    def __init__(self, hop: _Hop, deadline: float, tls: ssl.SSLContext | None) -> None:
        super().__init__(hop.host, hop.port)
        if tls is not None:
            self.default_port = http.client.HTTPS_PORT  # the Host header leaves out :443
        self._hop, self._deadline, self._tls = hop, deadline, tls

    def connect(self) -> None:
        sock: socket.socket = _connect(self._hop.addresses, self._deadline)
        if self._tls is not None:
            sock.settimeout(_remaining(self._deadline))  # bounds the handshake
            sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            sock.deadline = self._deadline  # type: ignore[attr-defined]
        self.sock = sock


def _connect(addresses: tuple[tuple[int, tuple], ...], deadline: float) -> _DeadlineSocket:
    """A TCP connection to the first checked address that accepts one, as
    ``socket.create_connection`` would make, but without resolving the host again."""
    error: OSError = OSError("no address to connect to")
    for family, sockaddr in addresses:
        sock = _DeadlineSocket(family, socket.SOCK_STREAM)
        sock.deadline = deadline
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(sockaddr)
            return sock
        except TimeoutError:
            sock.close()
            raise
        except OSError as err:
            sock.close()
            error = err
    raise error


def load_url(url: str, fetcher: Fetcher | None = None) -> list[Document]:
    """An HTML page becomes one document, a feed one document per entry."""
    response = (fetcher or Fetcher()).get(url)
    where = clip(url)  # how messages name it
    if _is_html(response):
        return [_page_document(response, where)]
    try:
        feed = parse_feed(response.body, where, feed_headers(response))
    except IngestError:
        raise IngestError(f"{where} is neither an HTML page nor an RSS or Atom feed with "
                          f"entries (content type {clip(_mime(response)) or 'unknown'}).") from None
    return _feed_documents(feed, where)


def load_article(url: str, fetcher: Fetcher | None = None,
                 deadline: float | None = None) -> Document:
    """The article at ``url``, which must be an HTML page (a feed item's link), fetched by
    ``deadline`` (see ``Fetcher.get``)."""
    response = (fetcher or Fetcher()).get(url, deadline=deadline)
    if not _is_html(response):
        raise IngestError(f"{clip(url)} is not an HTML page (content type "
                          f"{clip(_mime(response)) or 'unknown'}).")
    return _page_document(response, clip(url))


def _page_document(response: Response, where: str) -> Document:
    """An HTML page's document, dated from its metadata or, failing that, Last-Modified."""
    return _html_document(response.body, where, url=response.url, fallback_title=response.url,
                          last_modified=response.headers.get("last-modified", ""))


def feed_headers(response: Response) -> dict[str, str]:
    """What feedparser needs to know of the response to read its encoding and relative links."""
    return {"content-type": response.content_type, "content-location": response.url}


def _mime(response: Response) -> str:
    return response.content_type.split(";")[0].strip().lower()


def _is_html(response: Response) -> bool:
    return _mime(response) in ("text/html", "application/xhtml+xml")
