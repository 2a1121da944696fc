"""Feed subscriptions: poll RSS and Atom feeds and turn their new items into documents.

A poll sends a conditional request (``If-None-Match`` / ``If-Modified-Since`` with the
validators the feed last sent), so an unchanged feed costs one 304 and no parsing. Each item not
seen before (by guid or link) has its article page fetched through the same ``Fetcher``, with
its SSRF guard, deadline and size cap, and extracted with trafilatura; the feed's summary stands
in when the page cannot be had. Deduplication by content is left to the index (``NewsQA.add``).

One poll of one feed, its item pages included, has ``POLL_SECONDS``: a site that answers slowly
costs the other feeds that long at most. An item whose page was not fetched by then, and that has
no summary, is left for the next poll, which sends no validators: a 304 must not hide it.

This module only reads the network; ``NewsQA.refresh_feeds`` stores the documents and the
subscription's state (``qa.store.base.Feed``) in the index, so that a restart resumes.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from time import monotonic
from typing import Collection

import feedparser

from qa.errors import IngestError, NewsQAError, clip
from qa.ingest.documents import records_to_documents
from qa.ingest.fetch import Fetcher
from qa.ingest.formats import entry_date, entry_fields, parse_feed
from qa.ingest.urls import feed_headers, load_article
from qa.store.base import Feed
from qa.types import Document

log = logging.getLogger(__name__)

# The most new items one poll fetches (the feed's first, which feeds put newest first); the
# rest wait for the next poll. A feed of thousands of links must not cost thousands of fetches.
MAX_ITEMS_PER_POLL = 100
# One poll of one feed: the feed and all its new items' pages (each also within the Fetcher's
# timeout). Without it, 100 pages that each take the timeout hold a refresh for 50 minutes.
POLL_SECONDS = 60.0
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
    late: str = ""  # one line when the poll's deadline left items for the next poll


class _Late(Exception):
    """An item without a summary whose page the poll's deadline cut off: it waits for the next
    poll, not remembered as seen."""


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
    if not math.isfinite(seconds):
        raise NewsQAError(f"The interval {clip(repr(value))} is not a finite duration.")
    if seconds < MIN_INTERVAL_SECONDS:
        raise NewsQAError(f"The interval must be at least {MIN_INTERVAL_SECONDS} s, not "
                          f"{clip(repr(value))}: polling a feed more often than that is a "
                          "mistake, not news, and a site may block a reader that asks so often.")
    return seconds


def poll(feed: Feed, seen: Collection[str], fetcher: Fetcher) -> Poll:
    """Fetch ``feed`` and the items of it whose guid and link are not in ``seen``, all within
    ``POLL_SECONDS``.

    ``IngestError`` when the feed itself cannot be fetched or read. An item that cannot be
    indexed is skipped with one line in ``Poll.errors`` and is tried again when the feed changes;
    one that the deadline cut off (``Poll.late``), at the next poll.
    """
    deadline = monotonic() + POLL_SECONDS
    conditions = {"If-None-Match": feed.etag, "If-Modified-Since": feed.last_modified}
    response = fetcher.get(feed.url, {name: value for name, value in conditions.items() if value},
                           deadline)
    etag = response.headers.get("etag", "")
    last_modified = response.headers.get("last-modified", "")
    if response.status == 304:  # the validators may be sent again, or be left out
        return Poll(etag or feed.etag, last_modified or feed.last_modified, not_modified=True)
    where = clip(feed.url)
    parsed = parse_feed(response.body, where, feed_headers(response))
    result = Poll(etag, last_modified, title=parsed.feed.get("title", ""))
    source, seen, late, capped = result.title, set(seen), 0, False
    for n, entry in enumerate(parsed.entries, 1):
        keys = frozenset(key for key in (entry.get("id"), entry.get("link")) if key)
        if keys & seen:  # also an item that the feed lists twice
            continue
        seen |= keys
        if len(result.items) + len(result.errors) + late == MAX_ITEMS_PER_POLL:
            log.warning("%s has more than %d new items; the rest wait for the next poll.",
                        where, MAX_ITEMS_PER_POLL)
            capped = True
            break
        try:
            [doc] = records_to_documents(
                [(f"entry {n}", entry)], lambda e: _item_fields(e, source, fetcher, deadline),
                where, "feed entry")
        except _Late:
            late += 1
            continue
        except IngestError as err:  # reported by the caller, and kept as the last error
            result.errors.append(str(err))
            continue
        result.items.append((keys, doc))
    if late or capped:  # the next poll must get the feed again, not a 304
        result.etag = result.last_modified = ""
    if late:
        result.late = (f"{late} item(s) left for the next poll: the poll's deadline of "
                       f"{POLL_SECONDS:g} s passed.")
    return result


def _item_fields(entry: feedparser.FeedParserDict, source: str, fetcher: Fetcher,
                 deadline: float) -> dict[str, str]:
    """``make_document``'s arguments for a feed item: its article page's text, else the feed's
    summary of it. The feed's date comes first: it is the publisher's metadata for this item;
    the page's own metadata next. ``_Late`` when the page was not fetched by the poll's
    ``deadline`` and there is no summary."""
    summary = entry_fields(entry, source)
    link = entry.get("link", "")
    if not link:
        if summary is None:
            raise IngestError("The item has neither a link nor any text.")
        return summary
    try:
        if monotonic() >= deadline:  # not even tried: no lookup or connection an item
            raise IngestError(f"{clip(link)} was not fetched: the poll's deadline of "
                              f"{POLL_SECONDS:g} s passed.")
        page = load_article(link, fetcher, deadline)
    except IngestError as err:
        if summary is None and monotonic() >= deadline:
            raise _Late from None
        if summary is None:
            raise IngestError(f"{err} The feed gives no summary to index instead.") from None
        log.warning("%s Indexing the feed's summary instead.", err)
        return summary
    published = entry_date(entry)
    return {"text": page.text, "title": entry.get("title") or page.title,
            "source": source or page.source, "url": page.url,
            "published": published or page.published,
            "date_source": "feed" if published else page.date_source}
