"""File formats: the bytes of a txt, md, html, json, jsonl or RSS/Atom file become documents
(``LOADERS``, by suffix). HTML pages are read by trafilatura, feeds by feedparser; a page's
date comes from its metadata only, never from its text.
"""
from __future__ import annotations

import collections
import functools
import io
import json
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import feedparser
import trafilatura

from qa.errors import IngestError
from qa.ingest.documents import make_document, readable_date, records_to_documents
from qa.types import Document

if TYPE_CHECKING:
    from lxml.html import HtmlElement

TITLE_MAX_CHARS = 120  # a longer first line is the article's opening paragraph, not its headline
# "context" lets SQuAD-style question files index as their passages (duplicates are no-ops).
TEXT_FIELDS = ("text", "content", "body", "context")
DATE_FIELDS = ("published", "date")


def _stem(path: Path) -> str:
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    # a name that is not UTF-8 (surrogate escapes) is shown with U+FFFD, as file managers do
    return os.fsencode(Path(name).stem).decode("utf-8", "replace")


def _decode(raw: bytes, where: str | Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise IngestError(
            f"{where} is not UTF-8 text (invalid byte at offset {err.start}).") from None


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
    return [html_document(raw, str(path), url="", fallback_title=_stem(path))]


def html_document(raw: bytes, where: str, *, url: str, fallback_title: str,
                   last_modified: str = "") -> Document:
    """The page's main text and metadata, as trafilatura extracts them, but its date read from
    metadata only (``_html_date``); else the HTTP ``last_modified`` header, flagged as such."""
    tree = trafilatura.load_html(raw)
    published, date_source = _html_date(tree) if tree is not None else ("", "")
    if not published and last_modified:
        published, date_source = readable_date(last_modified), "http-last-modified"
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
        date = readable_date(found.get(key, ""))
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
            date = readable_date(value) if isinstance(value, str) else ""
            if date:
                return date
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
            "date_source": "json-field", "external_id": _record_id(record)}


def _record_id(record: dict) -> str:
    """The record's ``id``, which names the article in the user's data: text, or a whole number
    (JSON has both kinds of ids); "" without one."""
    value = record.get("id")
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise IngestError("The record's 'id' field is neither text nor a whole number.")


def _string_field(record: dict, key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise IngestError(f"The record's {key!r} field is not a string.")
    return value


def _load_feed(raw: bytes, path: Path) -> list[Document]:
    return feed_documents(parse_feed(raw, str(path)), str(path))


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


def feed_documents(feed: feedparser.FeedParserDict, where: str) -> list[Document]:
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
