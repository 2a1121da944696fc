"""Turn files, folders, feeds and URLs into ``Document``s.

Every format ends in ``make_document``, so text normalisation, ids and dates are handled in one
place. Bad input raises ``IngestError`` with one sentence naming the path or URL.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import ipaddress
import json
import logging
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, time, timezone
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import trafilatura
from dateutil import parser as dateutil_parser

from qa.errors import IngestError
from qa.types import Document

log = logging.getLogger(__name__)

TITLE_MAX_CHARS = 120  # a longer first line is the article's opening paragraph, not its headline
# "context" lets SQuAD-style question files index as their passages (duplicates are no-ops).
TEXT_FIELDS = ("text", "content", "body", "context")
DATE_FIELDS = ("published", "date")
URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # any scheme, so ftp:// is refused clearly
USER_AGENT = "newsqa/0.1"
_NO_DATE = datetime(1, 1, 1)  # dateutil fills missing parts from this; year 1 means "no year given"


class _UnreadableDate(IngestError):
    """A date that is not a calendar date; corpus loaders drop it instead of the record."""


def document_id(text: str) -> str:
    """Hash of the text with whitespace collapsed, so re-adding the same article is a no-op."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def make_document(text: str, *, title: str = "", source: str = "", url: str = "",
                  published: str = "") -> Document:
    """Build a ``Document`` with normalised text and an ISO 8601 ``published`` date.

    Raises ``IngestError`` for empty text or a date that cannot be read (callers add the path).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise IngestError("The document text is empty.")
    return Document(id=document_id(text), text=text, title=" ".join(title.split()),
                    source=source.strip(), url=url.strip(), published=_iso_date(published))


def _iso_date(value: str) -> str:
    """``YYYY-MM-DD`` for a bare date, a full ISO datetime otherwise, "" for no date."""
    value = value.strip()
    if not value:
        return ""
    try:
        parsed = dateutil_parser.parse(value, default=_NO_DATE)
    except (ValueError, OverflowError):
        parsed = _NO_DATE
    if parsed.year == _NO_DATE.year:
        raise _UnreadableDate(f"The date {value!r} cannot be read as a calendar date.")
    if parsed.tzinfo is None and parsed.time() == time(0):
        return parsed.date().isoformat()
    return parsed.isoformat(timespec="seconds")


# --- targets ---------------------------------------------------------------------------------

def load(targets: Iterable[str | Path], *, fetcher: Fetcher | None = None) -> list[Document]:
    """Load every target: a file, a folder (recursively) or an http(s) URL."""
    if isinstance(targets, (str, Path)):  # iterating it would load one path per character
        raise TypeError(f"load() takes a list of targets, not the single target {targets!r}.")
    return [doc for target in targets for doc in _load_target(target, fetcher)]


def _load_target(target: str | Path, fetcher: Fetcher | None) -> list[Document]:
    if isinstance(target, str) and URL_PATTERN.match(target):
        return load_url(target, fetcher)
    path = Path(target)
    if not path.exists():
        raise IngestError(f"{path} does not exist.")
    if path.is_dir():
        return _load_folder(path)
    return _load_file(path, named=True)


def _load_folder(folder: Path) -> list[Document]:
    """Every supported file under ``folder``, in sorted order, skipping hidden files and folders."""
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and not any(part.startswith(".")
                                              for part in p.relative_to(folder).parts))
    docs = [doc for path in files for doc in _load_file(path, named=False)]
    if not docs:
        raise IngestError(f"{folder} contains no supported files.")
    return docs


def _load_file(path: Path, *, named: bool) -> list[Document]:
    """Dispatch on the suffix; an unknown suffix is still accepted when the file is a feed."""
    loader = LOADERS.get(_format_of(path))
    if loader is not None:
        return loader(_read(path), path)
    feed = _sniff_feed(path)
    if feed is not None:
        return _feed_documents(feed, str(path))
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
    return Path(name).stem


def _read(path: Path) -> bytes:
    """The file's bytes (gunzipped), refusing unreadable, empty and binary files."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IngestError(f"{path} does not exist.") from None
    except PermissionError:
        raise IngestError(f"{path} cannot be read (permission denied).") from None
    except OSError as err:
        raise IngestError(f"{path} cannot be read ({err.strerror}).") from None
    if path.suffix.lower() == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            raise IngestError(f"{path} is not a valid gzip file.") from None
    if not raw.strip():
        raise IngestError(f"{path} is empty.")
    if b"\0" in raw:
        raise IngestError(f"{path} is a binary file, not text.")
    return raw


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise IngestError(
            f"{path} is not UTF-8 text (invalid byte at offset {err.start}).") from None


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
    return make_document(text, title=title or _stem(path))


def _load_html(raw: bytes, path: Path) -> list[Document]:
    return [_html_document(raw, str(path), url="", fallback_title=_stem(path))]


def _html_document(raw: bytes, where: str, *, url: str, fallback_title: str) -> Document:
    """The page's main text and metadata, as trafilatura extracts them."""
    page = trafilatura.bare_extraction(raw, url=url or None, with_metadata=True)
    if page is None or not (page.text or "").strip():
        raise IngestError(f"{where} has no article text that could be extracted.")
    try:
        return make_document(page.text, title=page.title or fallback_title,
                             source=page.sitename or page.author or page.hostname or "",
                             url=url or page.url or "", published=page.date or "")
    except IngestError as err:
        raise IngestError(f"{where}: {err}") from None


def _load_json(raw: bytes, path: Path) -> list[Document]:
    try:
        data = json.loads(_decode(raw, path))
    except json.JSONDecodeError as err:
        raise IngestError(f"{path} is not valid JSON (line {err.lineno}: {err.msg}).") from None
    records = data if isinstance(data, list) else [data]
    return _record_documents(((f"record {n}", r) for n, r in enumerate(records, 1)), path)


def _load_jsonl(raw: bytes, path: Path) -> list[Document]:
    return _record_documents(_jsonl_records(_decode(raw, path), path), path)


def _jsonl_records(text: str, path: Path) -> Iterator[tuple[str, object]]:
    # split on "\n" only: str.splitlines would also break at U+2028 inside JSON strings
    for n, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                yield f"line {n}", json.loads(line)
            except json.JSONDecodeError as err:
                raise IngestError(f"{path}, line {n} is not valid JSON ({err.msg}).") from None


def _record_documents(records: Iterable[tuple[str, object]], path: Path) -> list[Document]:
    """One document per record; a record without a text field is an error, but one with empty
    text is skipped and an unreadable date dropped, both with a warning: one bad record of a
    21k-article corpus should not lose the corpus."""
    docs, empty, bad_dates = [], [], []
    for where, record in records:
        try:
            fields = _record_fields(record)
        except IngestError as err:
            raise IngestError(f"{path}, {where}: {err}") from None
        if fields is None:
            empty.append(where)
            continue
        try:
            docs.append(make_document(**fields))
        except _UnreadableDate:
            bad_dates.append(f"{where}: {fields['published']!r}")
            docs.append(make_document(**{**fields, "published": ""}))
    if empty:
        log.warning("Skipped %d record(s) with empty text in %s (first at %s).",
                    len(empty), path, empty[0])
    if bad_dates:
        log.warning("Ignored %d unreadable date(s) in %s (first at %s).",
                    len(bad_dates), path, bad_dates[0])
    if not docs:
        raise IngestError(f"{path} has no record with text.")
    return docs


def _record_fields(record: object) -> dict[str, str] | None:
    """``make_document``'s arguments from a JSON record, or None when its text is empty."""
    if not isinstance(record, dict):
        raise IngestError("The record is not a JSON object.")
    key = next((k for k in TEXT_FIELDS if k in record), None)
    if key is None:
        raise IngestError("The record has no 'text' field (also accepted: 'content', 'body', 'context').")
    text = _string_field(record, key)
    if not text.strip():
        return None
    return {"text": text, "title": _string_field(record, "title"),
            "source": _string_field(record, "source"), "url": _string_field(record, "url"),
            "published": next((_string_field(record, k) for k in DATE_FIELDS if record.get(k)), "")}


def _string_field(record: dict, key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise IngestError(f"The record's {key!r} field is not a string.")
    return value


def _load_feed(raw: bytes, path: Path) -> list[Document]:
    return _feed_documents(_parse_feed(raw, str(path)), str(path))


def _parse_feed(raw: bytes, where: str, headers: dict[str, str] | None = None
                ) -> feedparser.FeedParserDict:
    # a stream, never a str: feedparser would fetch a string that looks like a URL
    feed = feedparser.parse(io.BytesIO(raw), response_headers=headers or {})
    if not feed.entries:
        reason = f" ({feed.bozo_exception})" if feed.bozo else ""
        raise IngestError(f"{where} is not an RSS or Atom feed with entries{reason}.")
    return feed


def _sniff_feed(path: Path) -> feedparser.FeedParserDict | None:
    """The parsed feed when an unknown-suffix file is one (it starts like XML), else None."""
    try:
        with path.open("rb") as f:
            head = f.read(512)
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            return _parse_feed(_read(path), str(path))
    except (OSError, IngestError):
        pass
    return None


def _feed_documents(feed: feedparser.FeedParserDict, where: str) -> list[Document]:
    """One document per entry with text; the feed's title is every entry's source."""
    source = feed.feed.get("title", "")
    docs, empty = [], 0
    for entry in feed.entries:
        text = _html_to_text(_entry_html(entry))
        if not text:
            empty += 1
            continue
        docs.append(make_document(text, title=entry.get("title", ""), source=source,
                                  url=entry.get("link", ""), published=_entry_date(entry)))
    if empty:
        log.warning("Skipped %d feed entr(ies) without text in %s.", empty, where)
    if not docs:
        raise IngestError(f"{where} has no feed entry with text.")
    return docs


def _entry_html(entry: feedparser.FeedParserDict) -> str:
    if entry.get("content"):
        return entry.content[0].get("value", "")
    return entry.get("summary", "")


def _entry_date(entry: feedparser.FeedParserDict) -> str:
    """feedparser has already read the date, in any of the formats feeds use, as UTC."""
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime(*parsed[:6], tzinfo=timezone.utc).isoformat() if parsed else ""


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

class Fetcher:
    """Downloads a URL for ingestion, refusing what a server-side tool must not fetch.

    Hosts that resolve to loopback, private, link-local, reserved or multicast addresses are
    refused (also after redirects) unless ``allow_private``, so that a URL typed into the app
    cannot probe the machine it runs on or its network.
    """

    def __init__(self, timeout: float = 10, max_bytes: int = 5_000_000,
                 allow_private: bool = False) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self._opener = urllib.request.build_opener(_CheckedRedirects(self.check_url))

    def fetch(self, url: str) -> tuple[bytes, str, str]:
        """``(body, content_type, final_url)``; ``IngestError`` for refused or failed requests."""
        self.check_url(url)
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read(self.max_bytes + 1)
                content_type = response.headers.get("Content-Type", "")
                final_url = response.geturl()
        except urllib.error.HTTPError as err:
            raise IngestError(f"{url} answered HTTP {err.code} ({err.reason}).") from None
        except urllib.error.URLError as err:
            raise IngestError(f"{url} could not be fetched ({err.reason}).") from None
        except (OSError, http.client.HTTPException) as err:
            reason = err or type(err).__name__
            raise IngestError(f"{url} could not be fetched ({reason}).") from None
        if len(body) > self.max_bytes:
            raise IngestError(f"{url} is larger than the limit of {self.max_bytes:,} bytes.")
        return body, content_type, final_url

    def check_url(self, url: str) -> None:
        """Raise ``IngestError`` unless ``url`` is http(s) on a host this fetcher may reach."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise IngestError(f"{url} is not an http or https URL.")
        if not parts.hostname:
            raise IngestError(f"{url} has no host name.")
        if self.allow_private:
            return
        try:
            infos = socket.getaddrinfo(parts.hostname, None, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError):
            raise IngestError(f"{url}: the host {parts.hostname} cannot be resolved.") from None
        for info in infos:
            address = ipaddress.ip_address(info[4][0].split("%")[0])
            if address.version == 6 and address.ipv4_mapped:
                address = address.ipv4_mapped
            # is_global is False for loopback, private, link-local, reserved and unspecified
            if not address.is_global or address.is_multicast:
                raise IngestError(f"{url} resolves to the non-public address {address}; "
                                  "fetching it is not allowed.")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL the fetcher would accept in the first place."""

    def __init__(self, check_url: Callable[[str], None]) -> None:
        self.check_url = check_url

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib API)
        self.check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def load_url(url: str, fetcher: Fetcher | None = None) -> list[Document]:
    """An HTML page becomes one document, a feed one document per entry."""
    body, content_type, final_url = (fetcher or Fetcher()).fetch(url)
    mime = content_type.split(";")[0].strip().lower()
    if mime in ("text/html", "application/xhtml+xml"):
        return [_html_document(body, url, url=final_url, fallback_title=final_url)]
    headers = {"content-type": content_type, "content-location": final_url}
    try:
        feed = _parse_feed(body, url, headers)
    except IngestError:
        raise IngestError(f"{url} is neither an HTML page nor an RSS or Atom feed with entries "
                          f"(content type {mime or 'unknown'}).") from None
    return _feed_documents(feed, url)
