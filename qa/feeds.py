"""Feed subscriptions: poll RSS and Atom feeds and turn their new items into documents.

A poll sends a conditional request (``If-None-Match`` / ``If-Modified-Since`` with the
validators the feed last sent), so an unchanged feed costs one 304 and no parsing. Each item not
seen before (by guid or link) has its article page fetched through the same ``Fetcher``, with
its SSRF guard, deadline and size cap, and extracted with trafilatura; the feed's summary stands
in when the page cannot be had. Deduplication by content is left to the index (``NewsQA.add``).

This module only reads the network; ``NewsQA.refresh_feeds`` stores the documents and the
subscription's state (``qa.store.Feed``) in the index, so that a restart resumes.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Collection

import feedparser

from qa.errors import IngestError, NewsQAError
from qa.ingest import (Fetcher, records_to_documents, entry_date, entry_fields, feed_headers,
                       parse_feed, load_article)
from qa.store import Feed
from qa.types import Document

log = logging.getLogger(__name__)

# The most new items one poll fetches (the feed's first, which feeds put newest first); the
# rest wait for the next poll. A feed of thousands of links must not cost thousands of fetches.
MAX_ITEMS_PER_POLL = 100
MIN_INTERVAL_SECONDS = 10  # a watch that polls more often than this is a mistake, not news
_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class Poll:
    """What one poll of a feed found: nothing new (``not_modified``), or its new items."""

    etag: str = ""  # the validators to send next time
    last_modified: str = ""
    not_modified: bool = False
    title: str = ""
    items: list[tuple[frozenset[str], Document]] = field(default_factory=list)  # (keys, doc)
    errors: list[str] = field(default_factory=list)  # one line per item that was skipped


def parse_interval(value: str | float) -> float:
    """Seconds between polls from ``900``, ``"30s"``, ``"15m"``, ``"2h"`` or ``"1d"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _INTERVAL.fullmatch(str(value).strip().lower())
        if match is None:
            raise NewsQAError(f"The interval {value!r} is not a duration such as 15m, 30s, 2h "
                              "or 900 (seconds).")
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    if not MIN_INTERVAL_SECONDS <= seconds < float("inf"):
        raise NewsQAError(f"The interval must be at least {MIN_INTERVAL_SECONDS} s, "
                          f"not {value!r}.")
    return seconds


def poll(feed: Feed, seen: Collection[str], fetcher: Fetcher) -> Poll:
    """Fetch ``feed`` and the items of it whose guid and link are not in ``seen``.

    ``IngestError`` when the feed itself cannot be fetched or read. An item that cannot be
    indexed is skipped with one line in ``Poll.errors`` and is tried again when the feed changes.
    """
    conditions = {"If-None-Match": feed.etag, "If-Modified-Since": feed.last_modified}
    response = fetcher.get(feed.url, {name: value for name, value in conditions.items() if value})
    etag = response.headers.get("etag", "")
    last_modified = response.headers.get("last-modified", "")
    if response.status == 304:  # the validators may be sent again, or be left out
        return Poll(etag or feed.etag, last_modified or feed.last_modified, not_modified=True)
    parsed = parse_feed(response.body, feed.url, feed_headers(response))
    result = Poll(etag, last_modified, title=parsed.feed.get("title", ""))
    source, seen = result.title, set(seen)
    for n, entry in enumerate(parsed.entries, 1):
        keys = frozenset(key for key in (entry.get("id"), entry.get("link")) if key)
        if keys & seen:  # also an item that the feed lists twice
            continue
        seen |= keys
        if len(result.items) + len(result.errors) == MAX_ITEMS_PER_POLL:
            log.warning("%s has more than %d new items; the rest wait for the next poll.",
                        feed.url, MAX_ITEMS_PER_POLL)
            break
        try:
            [doc] = records_to_documents([(f"entry {n}", entry)],
                               lambda e: _item_fields(e, source, fetcher), feed.url, "feed entry")
        except IngestError as err:  # reported by the caller, and kept as the last error
            result.errors.append(str(err))
            continue
        result.items.append((keys, doc))
    return result


def _item_fields(entry: feedparser.FeedParserDict, source: str,
                 fetcher: Fetcher) -> dict[str, str]:
    """``make_document``'s arguments for a feed item: its article page's text, else the feed's
    summary of it. The feed's date comes first: it is the publisher's metadata for this item;
    the page's own metadata next."""
    summary = entry_fields(entry, source)
    link = entry.get("link", "")
    if not link:
        if summary is None:
            raise IngestError("The item has neither a link nor any text.")
        return summary
    try:
        page = load_article(link, fetcher)
    except IngestError as err:
        if summary is None:
            raise IngestError(f"{err} The feed gives no summary to index instead.") from None
        log.warning("%s Indexing the feed's summary instead.", err)
        return summary
    published = entry_date(entry)
    return {"text": page.text, "title": entry.get("title") or page.title,
            "source": source or page.source, "url": page.url,
            "published": published or page.published,
            "date_source": "feed" if published else page.date_source}
