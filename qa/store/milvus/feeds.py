"""Feed subscriptions of a Milvus index: ``<name>_feeds`` and ``<name>_feed_items``. Unlike
documents they are not versioned: ``MilvusStore.save()`` writes them after its commit."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Iterable, Iterator

from qa.store.base import Feed, utc_now
from qa.store.milvus.client import Milvus
from qa.store.milvus.expressions import literal
from qa.store.milvus.schema import FEED_FIELDS, PLACEHOLDER


class FeedCollections:
    """The feed half of ``MilvusStore``: what ``DocumentStore`` asks about feeds, buffered like
    the store's other changes until ``save()``, which calls ``_write_feeds``."""

    _db: Milvus
    _feeds: str  # the collections' names
    _feed_items: str
    _feed_changes: dict[str, Feed | None]  # None: unsubscribed
    _feeds_dropped: set[str]  # committed feeds whose rows save() deletes
    _items_added: dict[str, set[str]]
    _feed_order: dict[str, int]  # when each feed was subscribed (ns): its place
    _begin_change: Callable[[], None]
    _rows: Callable[..., Iterator[dict]]
    _upsert: Callable[[str, list[dict]], None]

    def feeds(self) -> list[Feed]:
        """The subscribed feeds in the order they were added."""
        rows = sorted(self._rows(self._feeds, "added_order >= 0",
                                 ["added_order", *FEED_FIELDS], "url", "Strong"),
                      key=lambda row: row["added_order"])
        committed = {row["url"]: self._remember(row) for row in rows}
        found = []
        for url in [*committed, *(u for u in self._feed_changes if u not in committed)]:
            feed = self._feed_changes.get(url, committed.get(url))
            if feed is not None:
                found.append(replace(feed, items_seen=self._count_items(url)))
        return found

    def _count_items(self, url: str) -> int:
        if url in self._items_added or url in self._feeds_dropped:
            return len(self.feed_items(url))
        rows = self._db.query(self._feed_items, filter=f"feed_url == {literal(url)}",
                              output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def _feed(self, url: str) -> Feed | None:
        if url in self._feed_changes:
            return self._feed_changes[url]
        rows = self._db.query(self._feeds, filter=f"url == {literal(url)}",
                              output_fields=["added_order", *FEED_FIELDS])
        return self._remember(rows[0]) if rows else None

    def _remember(self, row: dict) -> Feed:
        """The feed of a committed row, keeping its place in the list for ``save()``."""
        self._feed_order[row["url"]] = row["added_order"]
        return Feed(**{f: row[f] for f in FEED_FIELDS})

    def feed_items(self, url: str) -> set[str]:
        """The guids and links of the feed's items that are already indexed."""
        committed = set() if url in self._feeds_dropped else {
            row["item"] for row in self._rows(self._feed_items, f"feed_url == {literal(url)}",
                                              ["key", "item"], "key", "Strong")}
        return committed | self._items_added.get(url, set())

    def add_feed(self, url: str) -> bool:
        """Subscribe to the feed at ``url``; False when it already is."""
        self._begin_change()
        if self._feed(url) is not None:
            return False
        self._feed_changes[url] = Feed(url, added=utc_now())
        self._feed_order[url] = time.time_ns()
        return True

    def remove_feed(self, url: str) -> bool:
        """Forget the feed and its items (their documents stay); False when not subscribed."""
        self._begin_change()
        if self._feed(url) is None:
            return False
        self._feed_changes[url] = None
        self._feeds_dropped.add(url)
        self._items_added.pop(url, None)
        return True

    def record_poll(self, feed: Feed, seen: Iterable[str] = ()) -> bool:
        """Store what a poll of ``feed`` learnt, and the guids and links of the items it
        indexed; False, storing nothing, when the feed was unsubscribed while it was polled."""
        self._begin_change()
        current = self._feed(feed.url)
        if current is None:
            return False
        self._feed_changes[feed.url] = replace(
            current, title=feed.title, last_poll=feed.last_poll,
            last_success=feed.last_success, etag=feed.etag, last_modified=feed.last_modified,
            last_error=feed.last_error)
        self._items_added.setdefault(feed.url, set()).update(seen)
        return True

    def _write_feeds(self) -> None:
        for url in self._feeds_dropped:
            self._db.delete(self._feeds, filter=f"url == {literal(url)}")
            self._db.delete(self._feed_items, filter=f"feed_url == {literal(url)}")
        rows = [{"url": feed.url, "added_order": self._feed_order[feed.url],
                 **{f: getattr(feed, f) for f in FEED_FIELDS[1:]}, "placeholder": PLACEHOLDER}
                for feed in self._feed_changes.values() if feed is not None]
        self._upsert(self._feeds, rows)
        self._upsert(self._feed_items, [
            {"key": f"{url}\n{item}", "feed_url": url, "item": item,
             "placeholder": PLACEHOLDER}
            for url, items in self._items_added.items() for item in sorted(items)])
        self._feed_changes, self._feeds_dropped, self._items_added = {}, set(), {}
