"""Followed questions of an index directory (``qa.follow``): the ``follows`` table, a row a
standing question, and ``follow_entries``, its history, a row an entry as JSON (the schema is
``qa.store.local.database.FOLLOW_TABLES``). Written in the store's transaction like every
other change, so ``save()`` commits them."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Callable

from qa.store.local.database import has_table, writes
from qa.types import FollowEntry, Followed


class FollowTables:
    """The follow half of ``qa.store.local.store.Store``: what ``DocumentStore`` asks about
    followed questions. An index made before follows existed has none until its next writer."""

    path: Path
    _db: sqlite3.Connection
    _begin_change: Callable[[], None]

    def follows(self) -> list[Followed]:
        """The followed questions in the order they were added, each with its latest entry."""
        if not has_table(self._db, "follow_entries"):
            return []
        rows = self._db.execute(
            "SELECT f.id, f.question, f.sources, f.top_k, f.added, f.checked, f.error,"
            " (SELECT e.entry FROM follow_entries e WHERE e.follow_id = f.id"
            "  ORDER BY e.seq DESC LIMIT 1),"
            " (SELECT COUNT(*) FROM follow_entries e WHERE e.follow_id = f.id) "
            "FROM follows f ORDER BY f.rowid")
        return [Followed(id_, question, tuple(json.loads(sources)), top_k, added, checked,
                         error, None if latest is None else FollowEntry.from_dict(
                             json.loads(latest)), changes)
                for id_, question, sources, top_k, added, checked, error, latest, changes
                in rows]

    def follow_history(self, follow_id: str) -> list[FollowEntry]:
        """The entries of a followed question, oldest first; [] for an unknown id."""
        if not has_table(self._db, "follow_entries"):
            return []
        return [FollowEntry.from_dict(json.loads(row[0])) for row in self._db.execute(
            "SELECT entry FROM follow_entries WHERE follow_id = ? ORDER BY seq", (follow_id,))]

    @writes
    def add_follow(self, follow: Followed) -> bool:
        """Follow a question under ``follow.id``; False when that id is taken."""
        self._begin_change()
        return self._db.execute(
            "INSERT OR IGNORE INTO follows (id, question, sources, top_k, added, checked, error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (follow.id, follow.question, json.dumps(list(follow.sources)), follow.top_k,
             follow.added, follow.checked, follow.error)).rowcount == 1

    @writes
    def remove_follow(self, follow_id: str) -> bool:
        """Stop following, forgetting the history; False when no question has that id."""
        self._begin_change()
        return self._db.execute("DELETE FROM follows WHERE id = ?", (follow_id,)).rowcount == 1

    @writes
    def record_follow(self, follow: Followed, entry: FollowEntry | None = None, *,
                      replace_latest: bool = False) -> bool:
        """Store when ``follow`` was checked and its error, and ``entry`` as its newest entry
        (``replace_latest``: in place of the latest one); False, storing nothing, when it was
        unfollowed meanwhile."""
        self._begin_change()
        if self._db.execute("UPDATE follows SET checked = ?, error = ? WHERE id = ?",
                            (follow.checked, follow.error, follow.id)).rowcount != 1:
            return False
        if entry is not None:
            last = self._db.execute("SELECT MAX(seq) FROM follow_entries WHERE follow_id = ?",
                                    (follow.id,)).fetchone()[0]
            seq = 1 if last is None else last if replace_latest else last + 1
            self._db.execute("INSERT OR REPLACE INTO follow_entries (follow_id, seq, entry) "
                             "VALUES (?, ?, ?)", (follow.id, seq, json.dumps(entry.to_dict())))
        return True
