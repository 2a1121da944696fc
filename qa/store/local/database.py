"""The index database (``store.sqlite``) of an index directory: its schema and the upgrades
an older index gets from its next writer, how it is opened (WAL; read-only with SQLite's
``mode=ro``, or ``immutable``: see ``qa.store.local.store``), and the one line for a read or a
write that the system refused (a full disk, a read-only file system, missing permissions).
"""
from __future__ import annotations

import errno
import functools
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

from qa.errors import StoreError
from qa.store.local import keywords, vectors

DATABASE = "store.sqlite"
WRITE_LOCK = "write.lock"
SQLITE_BUSY_SECONDS = 30  # a reader waits this long for a checkpoint; writers never hold it long
# SQLite's errors that say the system refused a read or a write (of the database, its journal,
# its shared memory), not that the database or this code is wrong
_REFUSED = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")
_FULL = (errno.ENOSPC, errno.EDQUOT)

# Feed subscriptions and what each poll learnt (``qa.ingest.feeds``); ``feed_items`` holds the guids
# and links of the items already indexed, so that a feed's old items are not fetched again.
# Indexes made before feeds existed get these tables from their next writer (``upgrade_schema``).
FEED_TABLES = (
    "CREATE TABLE IF NOT EXISTS feeds ("
    " url TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', added TEXT NOT NULL,"
    " last_poll TEXT NOT NULL DEFAULT '', last_success TEXT NOT NULL DEFAULT '',"
    " etag TEXT NOT NULL DEFAULT '', last_modified TEXT NOT NULL DEFAULT '',"
    " last_error TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS feed_items ("
    " feed_url TEXT NOT NULL REFERENCES feeds (url) ON DELETE CASCADE, key TEXT NOT NULL,"
    " PRIMARY KEY (feed_url, key)) WITHOUT ROWID",
)
# Followed questions (``qa.follow``) and each one's history of answers, an entry a JSON row
# (``qa.store.local.follows``); indexes made before them get them from their next writer too.
FOLLOW_TABLES = (
    "CREATE TABLE IF NOT EXISTS follows ("
    " id TEXT PRIMARY KEY, question TEXT NOT NULL, sources TEXT NOT NULL DEFAULT '[]',"
    " top_k INTEGER NOT NULL, added TEXT NOT NULL, checked TEXT NOT NULL DEFAULT '',"
    " error TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS follow_entries ("
    " follow_id TEXT NOT NULL REFERENCES follows (id) ON DELETE CASCADE, seq INTEGER NOT NULL,"
    " entry TEXT NOT NULL, PRIMARY KEY (follow_id, seq)) WITHOUT ROWID",
)
# Columns of ``documents`` that older indexes lack, which their next writer adds
# (``upgrade_schema``) and readers of such an index read as "" (``optional_columns``)
LATER_COLUMNS = ("date_source", "external_id", "key")
# A key names one document (``Document.key``); most have none
KEY_INDEX = ("CREATE UNIQUE INDEX IF NOT EXISTS documents_key ON documents (key) "
             "WHERE key != ''")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, url TEXT NOT NULL,
    published TEXT NOT NULL, text TEXT NOT NULL, added_at TEXT NOT NULL, minhash BLOB NOT NULL,
    date_source TEXT NOT NULL DEFAULT '', external_id TEXT NOT NULL DEFAULT '',
    key TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents (id),
    start_char INTEGER NOT NULL, end_char INTEGER NOT NULL, text TEXT NOT NULL,
    vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
""" + "".join(f"{statement};\n"
             for statement in (KEY_INDEX, *FEED_TABLES, *FOLLOW_TABLES, keywords.SCHEMA,
                               *vectors.SCHEMA))
_Result = TypeVar("_Result")


def read_only_error(path: Path, reason: str) -> StoreError:
    return StoreError(f"The index at {path} is read-only ({reason}): it can be read, not "
                      "changed.")


def refusal(path: Path, error: OSError | sqlite3.Error) -> StoreError | None:
    """One line for a write to the index at ``path`` that the system refused (a full disk, a
    read-only file system, a file this user may not write); None for an SQLite error of
    another kind, which is a bug or damage that its own traceback shows better."""
    name = getattr(error, "sqlite_errorname", None) or ""
    if isinstance(error, sqlite3.Error) and not name.startswith(_REFUSED):
        return None
    number = getattr(error, "errno", None)
    if name == "SQLITE_FULL" or number in _FULL:
        return StoreError(f"The index at {path} could not be written: the disk is full; it "
                          "keeps its last saved state.")
    if number == errno.EROFS:
        return read_only_error(path, "a read-only file system")
    if name.startswith("SQLITE_READONLY"):
        return read_only_error(path, why_read_only(path) or "its database may not be written")
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return StoreError(f"The index at {path} could not be written ({reason}); it keeps its "
                      "last saved state.")


def writes(change: Callable[..., _Result]) -> Callable[..., _Result]:
    """A store method that writes: a write the system refuses is one ``StoreError`` line
    (``refusal``), after which the store (``qa.store.local.store.Store``) holds its last
    committed generation again."""

    @functools.wraps(change)
    def writing(store: Any, *args: object, **kwargs: object) -> _Result:
        try:
            return change(store, *args, **kwargs)
        except (OSError, sqlite3.Error) as error:
            failure = refusal(store.path, error)
            if failure is None:
                raise
            store._abandon()
            raise failure from error
    return writing


def why_read_only(path: Path) -> str | None:
    """Why this process may not write the index at ``path`` (its folder, database or lock
    file is not writable for it), or None when it may."""
    parts = [path, path / DATABASE, path / WRITE_LOCK]
    if all(os.access(p, os.W_OK) for p in parts if p.exists()):
        return None
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        return "a read-only file system"
    return "no permission to write its files"


def wal(database: Path) -> Path:
    return database.with_name(f"{database.name}-wal")


class Database(sqlite3.Connection):
    """The index database, knowing whether it was opened ``immutable`` (see
    ``qa.store.local.store``)."""

    immutable = False


def connect(path: Path, *, create: bool = False, read_only: bool = False) -> Database:
    """Open the database in WAL mode (readers never block the writer, nor it them); a corrupt
    file is a StoreError. Only a new index gets the schema: that is a write, which would wait
    for a writer's open transaction. ``read_only``: with SQLite's ``mode=ro``, or ``immutable``
    when that cannot make the ``-wal`` file it needs and no writer has made one (see
    ``qa.store.local.store``)."""
    try:
        try:
            return _open_database(path, "mode=ro" if read_only else "", create)
        except sqlite3.OperationalError as error:  # it could not make the -wal file
            if not (read_only and not wal(path).exists()
                    and error.sqlite_errorname.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY"))):
                raise
            return _open_database(path, "immutable=1", create)
    except sqlite3.DatabaseError as error:
        if error.sqlite_errorname.startswith(("SQLITE_FULL", "SQLITE_READONLY")):
            raise refusal(path.parent, error) from error
        problem = "cannot be opened" if error.sqlite_errorname.startswith(_REFUSED) else \
            "is corrupt"
        raise StoreError(f"The index database {path} {problem} ({error}).") from error


def _open_database(path: Path, mode: str, create: bool) -> Database:
    """The database at ``path`` opened with the URI parameter ``mode`` ("" to read and write),
    its generation read (which is when SQLite finds that it cannot open or read it)."""
    uri = path.absolute().as_uri() + (f"?{mode}" if mode else "")
    # check_same_thread: app worker threads use it, serialised by the facade's lock
    db = sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_SECONDS, check_same_thread=False,
                         factory=Database)
    db.immutable = mode == "immutable=1"
    try:
        if not mode:
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA foreign_keys = ON")
        if create:
            db.executescript(_SCHEMA)
        committed_generation(db)
    except BaseException:
        db.close()
        raise
    return db


def committed_generation(db: sqlite3.Connection) -> int:
    return db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]


def upgrade_schema(db: sqlite3.Connection) -> None:
    """Give an index made by an older newsqa what this one stores, in the writer's own
    transaction: opening to read writes nothing, so readers cope with the old schema."""
    for statement in (*FEED_TABLES, *FOLLOW_TABLES, *vectors.SCHEMA):
        db.execute(statement)
    present = _document_columns(db)
    for column in LATER_COLUMNS:
        if column not in present:
            db.execute(f"ALTER TABLE documents ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
    db.execute(KEY_INDEX)
    if not keywords.exists(db):
        keywords.create(db)


def _document_columns(db: sqlite3.Connection) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(documents)")}


def optional_columns(db: sqlite3.Connection, prefix: str = "",
                     columns: Sequence[str] = LATER_COLUMNS) -> str:
    """``columns`` (of ``LATER_COLUMNS``) in a query, in that order, each as '' where the index
    was made before it existed."""
    present = _document_columns(db)
    return ", ".join(f"{prefix}{column}" if column in present else "''" for column in columns)


def has_keys(db: sqlite3.Connection) -> bool:
    """Whether documents have keys here: False in an index made before they did, until its next
    writer adds them."""
    return "key" in _document_columns(db)


def has_feed_tables(db: sqlite3.Connection) -> bool:
    return has_table(db, "feed_items")


def has_table(db: sqlite3.Connection, name: str) -> bool:
    """Whether the table is there: an index made before it has it from its next writer only."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                      (name,)).fetchone() is not None


class DatabaseVectors:
    """The float vectors in the chunks table: what ``qa.store.local.vectors`` rebuilds an index from
    (a rebuild only; searches read the vector files)."""

    def __init__(self, db: Callable[[], sqlite3.Connection]) -> None:
        self._db = db  # the store's connection, which a read-only reader may open anew

    def count(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def batches(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        rows = self._db().execute("SELECT id, vector FROM chunks ORDER BY id")
        while batch := rows.fetchmany(size):
            ids = np.array([row[0] for row in batch], dtype=np.int64)
            yield ids, np.frombuffer(b"".join(row[1] for row in batch),
                                     dtype=np.float32).reshape(len(batch), -1)
