"""Followed questions of a Milvus index (``qa.follow``): ``<name>_follows``, a row a standing
question, and ``<name>_follow_entries``, a row an entry of its history as JSON. Like feeds they
are not versioned: ``MilvusStore.save()`` writes them after its commit. An index made before
follows existed gets the collections from the first save that writes a followed question, under
the writer lease; until then every reader finds none, and opening it to read writes nothing."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Callable, Iterator

from qa.store.milvus.client import Milvus, MilvusLocation
from qa.store.milvus.expressions import literal
from qa.store.milvus.schema import FOLLOW_FIELDS, FOLLOW_KINDS, PLACEHOLDER, schemas
from qa.types import FollowEntry, Followed


def add_follow_collections(db: Milvus, where: MilvusLocation, manifest: dict) -> None:
    """Create and load the follow collections where they are missing (Milvus can add a
    collection to an index, not a field to a collection)."""
    every = schemas(db, int(manifest["dimension"]), bool(manifest["keyword_search"]))
    for kind in FOLLOW_KINDS:
        schema, indexes = every[kind]
        name = where.collection(kind)
        if not db.has_collection(name):
            db.create_collection(name, schema=schema, consistency_level="Strong")
            db.create_index(name, indexes, sync=False)  # as ``schema.create_collections``
        db.load_collection(name)


def has_follow_collections(db: Milvus, where: MilvusLocation) -> bool:
    """Whether the index has both follow collections, loading them when it has (a server
    queries loaded collections only)."""
    names = [where.collection(kind) for kind in FOLLOW_KINDS]
    if not all(db.has_collection(name) for name in names):
        return False
    for name in names:
        db.load_collection(name)
    return True


class FollowCollections:
    """The follow half of ``MilvusStore``: what ``DocumentStore`` asks about followed questions,
    buffered like the store's other changes until ``save()``, which calls ``_write_follows``."""

    _db: Milvus
    _where: MilvusLocation
    _manifest: dict
    _follows_exist: bool  # whether the index has the collections yet (an older one may not)
    _follows: str  # the collections' names
    _follow_entries: str
    _follow_changes: dict[str, Followed | None]  # None: unfollowed
    _follows_dropped: set[str]  # committed ones whose rows save() deletes
    _entries_added: dict[str, dict[int, FollowEntry]]  # by id, by place in the history
    _follow_order: dict[str, int]  # when each was followed (ns): its place
    _begin_change: Callable[[], None]
    _rows: Callable[..., Iterator[dict]]
    _upsert: Callable[[str, list[dict]], None]

    def follows(self) -> list[Followed]:
        """The followed questions in the order they were added, each with its latest entry."""
        rows = sorted(self._rows(self._follows, "added_order >= 0",
                                 ["added_order", *FOLLOW_FIELDS], "id", "Strong")
                      if self._saved_follows() else [], key=lambda row: row["added_order"])
        committed = {row["id"]: self._remember_follow(row) for row in rows}
        entries = self._committed_entries()
        found = []
        for follow_id in [*committed, *(i for i in self._follow_changes if i not in committed)]:
            follow = self._follow_changes.get(follow_id, committed.get(follow_id))
            if follow is not None:
                history = self._history(follow_id, entries.get(follow_id, {}))
                found.append(replace(follow, latest=history[-1] if history else None,
                                     changes=len(history)))
        return found

    def follow_history(self, follow_id: str) -> list[FollowEntry]:
        """The entries of a followed question, oldest first; [] for an unknown id."""
        return self._history(follow_id, self._committed_entries(follow_id).get(follow_id, {}))

    def _history(self, follow_id: str, committed: dict[int, FollowEntry]) -> list[FollowEntry]:
        entries = {} if follow_id in self._follows_dropped else dict(committed)
        entries.update(self._entries_added.get(follow_id, {}))
        return [entries[seq] for seq in sorted(entries)]

    def _committed_entries(self, follow_id: str | None = None
                           ) -> dict[str, dict[int, FollowEntry]]:
        """The saved entries (of one question, or of all), by id and place."""
        found: dict[str, dict[int, FollowEntry]] = {}
        if not self._saved_follows():
            return found
        for row in self._rows(self._follow_entries, "seq >= 0" if follow_id is None else
                              f"follow_id == {literal(follow_id)}",
                              ["key", "follow_id", "seq", "entry"], "key", "Strong"):
            found.setdefault(row["follow_id"], {})[row["seq"]] = FollowEntry.from_dict(
                json.loads(row["entry"]))
        return found

    def _follow(self, follow_id: str) -> Followed | None:
        if follow_id in self._follow_changes:
            return self._follow_changes[follow_id]
        if not self._saved_follows():
            return None
        rows = self._db.query(self._follows, filter=f"id == {literal(follow_id)}",
                              output_fields=["added_order", *FOLLOW_FIELDS])
        return self._remember_follow(rows[0]) if rows else None

    def _remember_follow(self, row: dict) -> Followed:
        """The question of a committed row, keeping its place in the list for ``save()``."""
        self._follow_order[row["id"]] = row["added_order"]
        return Followed(row["id"], row["question"], tuple(json.loads(row["sources"])),
                        row["top_k"], row["added"], row["checked"], row["error"])

    def add_follow(self, follow: Followed) -> bool:
        """Follow a question under ``follow.id``; False when that id is taken."""
        self._begin_change()
        if self._follow(follow.id) is not None:
            return False
        self._follow_changes[follow.id] = replace(follow, latest=None, changes=0)
        self._follow_order[follow.id] = time.time_ns()
        return True

    def remove_follow(self, follow_id: str) -> bool:
        """Stop following, forgetting the history; False when no question has that id."""
        self._begin_change()
        if self._follow(follow_id) is None:
            return False
        self._follow_changes[follow_id] = None
        self._follows_dropped.add(follow_id)
        self._entries_added.pop(follow_id, None)
        return True

    def record_follow(self, follow: Followed, entry: FollowEntry | None = None, *,
                      replace_latest: bool = False) -> bool:
        """Store when ``follow`` was checked and its error, and ``entry`` as its newest entry
        (``replace_latest``: in place of the latest one); False, storing nothing, when it was
        unfollowed meanwhile."""
        self._begin_change()
        current = self._follow(follow.id)
        if current is None:
            return False
        self._follow_changes[follow.id] = replace(current, checked=follow.checked,
                                                  error=follow.error)
        if entry is not None:
            saved = ({} if follow.id in self._follows_dropped else
                     self._committed_entries(follow.id).get(follow.id, {}))
            last = max([*saved, *self._entries_added.get(follow.id, {})], default=None)
            seq = 1 if last is None else last if replace_latest else last + 1
            self._entries_added.setdefault(follow.id, {})[seq] = entry
        return True

    def _saved_follows(self) -> bool:
        """Whether the index has follow collections to read: checked again until it has, as
        another process's save may have added them since this one opened it."""
        if not self._follows_exist:
            self._follows_exist = has_follow_collections(self._db, self._where)
        return self._follows_exist

    def _write_follows(self) -> None:
        if not (self._follow_changes or self._follows_dropped or self._entries_added):
            return
        if not self._saved_follows():  # under the writer lease that the change took
            add_follow_collections(self._db, self._where, self._manifest)
            self._follows_exist = True
        for follow_id in self._follows_dropped:
            self._db.delete(self._follows, filter=f"id == {literal(follow_id)}")
            self._db.delete(self._follow_entries, filter=f"follow_id == {literal(follow_id)}")
        self._upsert(self._follows, [
            {"id": f.id, "added_order": self._follow_order[f.id], "question": f.question,
             "sources": json.dumps(list(f.sources)), "top_k": f.top_k, "added": f.added,
             "checked": f.checked, "error": f.error, "placeholder": PLACEHOLDER}
            for f in self._follow_changes.values() if f is not None])
        self._upsert(self._follow_entries, [
            {"key": f"{follow_id}\n{seq:010d}", "follow_id": follow_id, "seq": seq,
             "entry": json.dumps(entry.to_dict()), "placeholder": PLACEHOLDER}
            for follow_id, entries in self._entries_added.items()
            for seq, entry in entries.items()])
        self._follow_changes, self._follows_dropped, self._entries_added = {}, set(), {}
