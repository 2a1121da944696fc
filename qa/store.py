"""The index: chunk vectors in FAISS, documents and chunks in SQLite, in one directory.

Layout of an index directory::

    manifest.json          what built the index (format, embedder, dimension, index type, versions)
    store.sqlite           the source of truth: documents, chunks and their vectors (float32 blobs),
                           and the feeds subscribed to, with what their polls learnt
    vectors-<gen>.faiss    the FAISS index as of database generation <gen> (a rebuildable cache)
    write.lock             held (``flock``) by the one process that is writing, with its pid

One writer, many readers. A process that changes the index first takes ``write.lock`` (another
writer gets a ``StoreError`` naming the holder's pid, or waits), then catches up with the latest
committed generation. Every ``add``/``delete`` bumps a generation counter inside the same SQLite
transaction; ``save()`` writes the FAISS file under the new generation's name (temp file, fsync,
``os.replace``), then commits, then removes files older than the previous generation. A process
killed anywhere in ``save()`` leaves either the old or the new committed database, each with its
FAISS file (or, after a crash, none, which ``open`` rebuilds from the stored vectors).

Readers (the app, a CLI ``ask``) wrap each query in ``snapshot()``: one SQLite read transaction
(WAL mode, so it never blocks the writer) in which they load the FAISS file of the committed
generation if it moved on. A query therefore never mixes two generations, and a document deleted
by another process is simply gone, never a dangling chunk id.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import json
import math
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import faiss
import numpy as np

from qa.errors import NewsQAError, StoreError
from qa.types import Chunk, Document

if TYPE_CHECKING:  # datasketch imports scipy (about a second): only adding documents needs it
    from datasketch import MinHash, MinHashLSH

FORMAT = "newsqa-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "store.sqlite"
WRITE_LOCK = "write.lock"
VECTORS = re.compile(r"vectors-(\d+)\.faiss")
LOCK_GRACE_SECONDS = 0.5  # a writer waits this long before saying that another one writes
SQLITE_BUSY_SECONDS = 30  # a reader waits this long for a checkpoint; writers never hold it long

EXACT_SPEC = "IDMap2,Flat"
# When to switch from exact to approximate search. ``benchmarks/store_scale.py``: random 384-d unit
# vectors, k=50, one query at a time, on a 2-core machine busy with a training job:
#        N   Flat ms/query (1 / 2 threads)   IVF{4*sqrt(N)},Flat nprobe=32 ms/query   IVF train s
#   10,000        2.6 /   7.4                  0.3                                      0.8
#   50,000       20   /  37                    0.8                                       17
#  100,000       31   / 102                    1.1                                       54
#  200,000       73   / 206                    0.8                                       61
# IVF returned every query's planted neighbour. Flat grows linearly with N; up to 100k vectors it is
# exact, needs no training and stays small next to the reader's time per question. HNSW32 was
# rejected: slow to build (137 s at 100k), missed 18% of planted neighbours there, cannot remove ids.
APPROXIMATE_FROM = 100_000
NPROBE = 32

SHINGLE_WORDS = 5
NUM_PERM = 128
MINHASH_SCHEME = "affine32"  # explicit: stored signatures must be read back with the scheme that made them
# The LSH index is built this far below the asked threshold, favouring recall; every candidate is
# then checked with the exact Jaccard similarity, so the looser bands cost no false positives.
LSH_SLACK = 0.2
_WORD = re.compile(r"\w+")

# Feed subscriptions and what each poll learnt (``qa.feeds``); ``feed_items`` holds the guids
# and links of the items already indexed, so that a feed's old items are not fetched again.
# Indexes made before feeds existed get these tables from their next writer (``_upgrade_schema``).
_FEED_TABLES = (
    "CREATE TABLE IF NOT EXISTS feeds ("
    " url TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', added TEXT NOT NULL,"
    " last_poll TEXT NOT NULL DEFAULT '', last_success TEXT NOT NULL DEFAULT '',"
    " etag TEXT NOT NULL DEFAULT '', last_modified TEXT NOT NULL DEFAULT '',"
    " last_error TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS feed_items ("
    " feed_url TEXT NOT NULL REFERENCES feeds (url) ON DELETE CASCADE, key TEXT NOT NULL,"
    " PRIMARY KEY (feed_url, key)) WITHOUT ROWID",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, url TEXT NOT NULL,
    published TEXT NOT NULL, text TEXT NOT NULL, added_at TEXT NOT NULL, minhash BLOB NOT NULL,
    date_source TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents (id),
    start_char INTEGER NOT NULL, end_char INTEGER NOT NULL, text TEXT NOT NULL,
    vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
""" + "".join(f"{statement};\n" for statement in _FEED_TABLES)
# Date bounds: a year, year-month, date or ISO datetime; compared as string prefixes.
_DATE_BOUND = re.compile(r"\d{4}(-\d{2}(-\d{2}([T ]\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?)?)?)?")


@dataclass(frozen=True)
class DocumentInfo:
    """One indexed document as listed to the user (no text)."""

    id: str
    title: str
    source: str
    url: str
    published: str
    chunks: int
    date_source: str = ""


@dataclass(frozen=True)
class Feed:
    """A subscribed feed and what its polls learnt: times are ISO 8601 UTC, "" for never."""

    url: str
    added: str
    title: str = ""
    last_poll: str = ""
    last_success: str = ""
    etag: str = ""  # the validators the feed last sent, for a conditional request
    last_modified: str = ""
    last_error: str = ""  # the last poll's problem: the feed's, or its first skipped item's
    items_seen: int = 0  # guids and links remembered as indexed


def ivf_spec(n: int) -> str:
    """The approximate index for ``n`` vectors: ~4*sqrt(n) inverted lists (FAISS's guideline).

    No ID map: IVF stores ids itself, and ``IDMap2`` over IVF renumbers wrongly on ``remove_ids``.
    """
    return f"IVF{max(1, round(4 * math.sqrt(n)))},Flat"


def index_spec(n: int) -> str:
    """Exact search while it is fast enough, IVF beyond (see ``APPROXIMATE_FROM``)."""
    return EXACT_SPEC if n < APPROXIMATE_FROM else ivf_spec(n)


@functools.lru_cache(maxsize=1024)  # a batch's pending documents are compared with each new one
def shingles(text: str) -> frozenset[str]:
    """Lower-cased word 5-grams: what near-duplicate detection compares."""
    words = _WORD.findall(text.lower())
    if not words:
        return frozenset()
    return frozenset(" ".join(words[i : i + SHINGLE_WORDS]) for i in range(max(1, len(words) - SHINGLE_WORDS + 1)))


def minhash(grams: frozenset[str]) -> MinHash:
    """A MinHash signature of a shingle set (fixed seed, so stored signatures stay comparable)."""
    from datasketch import MinHash

    signature = MinHash(num_perm=NUM_PERM, scheme=MINHASH_SCHEME)
    signature.update_batch(gram.encode("utf-8") for gram in grams)
    return signature


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared) if a or b else 0.0


def _check_date_bound(name: str, value: str) -> None:
    if not _DATE_BOUND.fullmatch(value):
        raise NewsQAError(f"{name} {value!r} is not an ISO date such as 2024-05-31 (or 2024-05, 2024).")


def _check_chunks(doc: Document, chunks: Sequence[Chunk]) -> None:
    """Chunks must be windows of their document: offsets are what citations rely on."""
    for chunk in chunks:
        if chunk.doc_id != doc.id or doc.text[chunk.start : chunk.end] != chunk.text or chunk.start >= chunk.end:
            raise StoreError(f"Chunk {chunk.start}:{chunk.end} of {chunk.doc_id} is not a window of document {doc.id}.")


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one."""
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def utc_now() -> str:
    """Now, as the index records times: ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    try:
        newsqa = metadata.version("newsqa")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        newsqa = "unknown"
    return {"faiss_version": faiss.__version__, "newsqa_version": newsqa}


class WriterLock:
    """The index's single-writer lock: an ``flock`` on ``write.lock``, which holds the pid.

    The kernel drops an ``flock`` when its process dies, so a killed writer never leaves the index
    locked. Re-entrant within one process: a long job (``newsqa index``) holds it across many saves.
    """

    def __init__(self, path: Path) -> None:
        self.path = path / WRITE_LOCK
        self._handle: int | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._depth > 0

    def acquire(self, wait: bool = False) -> bool:
        """Take the lock (True the first time); ``StoreError`` naming the holder unless ``wait``."""
        if self._depth:
            self._depth += 1
            return False
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + LOCK_GRACE_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:  # a reader tidying after a crash: milliseconds
                    time.sleep(0.02)
                    continue
                holder = os.pread(handle, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(handle)
                raise StoreError(f"The index at {self.path.parent} is being written by another "
                                 f"process (pid {holder}); try again when it has finished, or "
                                 "wait for it (--wait).") from None
        pid = f"{os.getpid()}\n".encode("ascii")
        os.pwrite(handle, pid, 0)  # then truncate: a reader never sees an empty file
        os.ftruncate(handle, len(pid))
        self._handle, self._depth = handle, 1
        return True

    def release(self) -> None:
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0 and self._handle is not None:
            os.close(self._handle)  # closing drops the flock
            self._handle = None


class Store:
    """Documents, chunks and vectors of one index directory. Use ``Store.open``.

    Changes are kept in one SQLite transaction until ``save()``; ``close()`` without ``save()``
    discards them. The first change takes the writer lock (``wait_for_writer``: block instead of
    failing when another process holds it); ``save()`` releases it unless ``writing()`` holds it.
    """

    def __init__(self, path: Path, manifest: dict, db: sqlite3.Connection, index: faiss.Index,
                 generation: int, *, wait_for_writer: bool = False) -> None:
        self.path = path
        self.wait_for_writer = wait_for_writer
        self._manifest = manifest
        self._db = db
        self._index = index
        self._generation = generation
        self._saved_generation = generation
        self._lock = WriterLock(path)
        self._changing = False  # an open write transaction holds the writer lock
        self._snapshots = 0
        self._lsh: MinHashLSH | None = None
        self._lsh_threshold: float | None = None

    # ----------------------------------------------------------------- opening and saving

    @classmethod
    def open(cls, path: str | Path, *, embedder_name: str, dimension: int | Callable[[], int],
             create: bool = True, wait_for_writer: bool = False) -> Store:
        """Open the index at ``path``, creating an empty one there if allowed and absent.

        An int ``dimension`` is checked, with ``embedder_name``, against an existing index now.
        A function is called only to create an index, so that listing or reading documents
        loads no embedding model; the caller then calls ``check_embedder`` before it embeds.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path} is a file, not an index directory.")
        manifest_path = path / MANIFEST
        if manifest_path.exists():
            manifest = _read_manifest(manifest_path)
        elif not create:
            raise StoreError(f"There is no index at {path}.")
        elif path.exists() and any(p.name not in (f".{MANIFEST}.tmp", WRITE_LOCK)
                                   for p in path.iterdir()):
            raise StoreError(f"{path} is not empty and is not an index (no {MANIFEST}); "
                             "choose another directory.")
        else:
            manifest = _create(path, embedder_name,
                               dimension if isinstance(dimension, int) else dimension(),
                               wait_for_writer)
        if isinstance(dimension, int):
            _check_compatible(manifest, embedder_name, dimension)
        db_path = path / DATABASE
        if not db_path.exists():
            raise StoreError(f"The index at {path} has lost its database ({DATABASE}).")
        db = _connect(db_path)
        try:
            store = cls(path, manifest, db,
                        faiss.IndexIDMap2(faiss.IndexFlatIP(int(manifest["dimension"]))), -1,
                        wait_for_writer=wait_for_writer)
            with store.snapshot():
                pass  # loads the committed generation's vectors
            if store._untidy():
                store._tidy()
        except BaseException:
            db.close()
            raise
        return store

    @contextlib.contextmanager
    def writing(self, wait: bool | None = None) -> Iterator[None]:
        """Hold the writer lock across several saves (a bulk import), caught up on entry."""
        if self._lock.acquire(self.wait_for_writer if wait is None else wait):
            self._catch_up()
        try:
            yield
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read one committed generation throughout (nestable). A writer sees its own changes."""
        if self._snapshots or self._changing:
            self._snapshots += 1
            try:
                yield
            finally:
                self._snapshots -= 1
            return
        self._db.execute("BEGIN")
        self._snapshots = 1
        try:
            self._catch_up()
            yield
        finally:
            self._snapshots = 0
            self._db.commit()  # ends the read transaction; nothing was written

    def save(self) -> None:
        """Write the FAISS file of the new generation, commit, and release the writer lock."""
        if not self._changing:
            return
        if self._generation != self._saved_generation:
            self._upgrade_index()
            self._write_vectors()
        self._db.commit()
        previous, self._saved_generation = self._saved_generation, self._generation
        self._changing = False
        self._tidy(keep=previous)
        self._lock.release()

    def close(self) -> None:
        """Release the database and the writer lock; unsaved changes are rolled back."""
        self._db.rollback()
        self._db.close()
        if self._changing:
            self._changing = False
            self._lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _begin_change(self) -> None:
        """Before the first change of a transaction: take the writer lock and catch up."""
        if self._changing:
            return
        if self._lock.acquire(self.wait_for_writer):
            self._catch_up()  # the writer lock guarantees that nothing moves after this
        self._db.execute("BEGIN IMMEDIATE")
        self._changing = True
        self._upgrade_schema()

    def _upgrade_schema(self) -> None:
        """Give an index made by an older newsqa what this one stores, in the writer's own
        transaction: opening to read writes nothing, so readers cope with the old schema."""
        for statement in _FEED_TABLES:
            self._db.execute(statement)
        if not self._has_date_sources():
            self._db.execute("ALTER TABLE documents "
                             "ADD COLUMN date_source TEXT NOT NULL DEFAULT ''")

    def _has_date_sources(self) -> bool:
        columns = self._db.execute("PRAGMA table_info(documents)")
        return any(row[1] == "date_source" for row in columns)

    def _date_source_sql(self, prefix: str = "") -> str:
        """The ``date_source`` column in a query, or "" on an index made before it existed."""
        return f"{prefix}date_source" if self._has_date_sources() else "''"

    def _catch_up(self) -> None:
        """Load the committed generation's vectors if another process has moved it on."""
        generation = _committed_generation(self._db)
        if generation == self._saved_generation == self._generation:
            return
        self._index = _load_vectors(self.path, self._db, generation, self.dimension)
        self._generation = self._saved_generation = generation
        self._lsh = None

    def _write_vectors(self) -> None:
        _atomic_write(self.path / f"vectors-{self._generation}.faiss",
                      faiss.serialize_index(self._index).tobytes())
        spec = self.index_type
        if self._manifest["index_type"] != spec:
            self._manifest = {**self._manifest, "index_type": spec}
            _write_manifest(self.path, self._manifest)

    def _untidy(self) -> bool:
        """Whether a crash left the committed generation without its file, or left extra files;
        only then does opening to read take the writer lock, briefly, to tidy."""
        files = [p.name for p in self.path.iterdir()
                 if VECTORS.fullmatch(p.name) or p.name.endswith(".faiss.tmp")]
        return f"vectors-{self._saved_generation}.faiss" not in files or len(files) > 2

    def _tidy(self, keep: int | None = None) -> None:
        """As the writer (or while no one writes): give the committed generation its FAISS file
        and remove the others but ``keep``, the previous one, which readers may still be loading
        (one that finds its file gone rebuilds it from the database, so this only saves time)."""
        try:
            self._lock.acquire(wait=False)  # re-entrant: a writer already holds it
        except StoreError:
            return  # the process that writes tidies after its own saves
        try:
            if _committed_generation(self._db) != self._saved_generation:
                return  # another writer committed since this store last looked: its files
            current = self.path / f"vectors-{self._saved_generation}.faiss"
            if not current.exists():
                _atomic_write(current, faiss.serialize_index(self._index).tobytes())
            kept = {current.name, f"vectors-{keep}.faiss"}
            for file in self.path.iterdir():
                if (VECTORS.fullmatch(file.name) and file.name not in kept) \
                        or file.name.endswith(".faiss.tmp"):
                    file.unlink(missing_ok=True)
        finally:
            self._lock.release()

    def _upgrade_index(self) -> None:
        """Switch to the approximate index once the collection has grown past ``APPROXIMATE_FROM``."""
        if self.index_type == EXACT_SPEC and index_spec(self._index.ntotal) != EXACT_SPEC:
            self._index = _build_index(*_stored_vectors(self._db, self.dimension), self.dimension)

    # ----------------------------------------------------------------- properties

    @property
    def dimension(self) -> int:
        return int(self._manifest["dimension"])

    @property
    def embedder_name(self) -> str:
        return str(self._manifest["embedder"])

    def check_embedder(self, embedder_name: str, dimension: int) -> None:
        """A StoreError unless this index was built by embedder ``embedder_name`` (vectors of
        length ``dimension``): vectors of another model are not comparable with its own."""
        _check_compatible(self._manifest, embedder_name, dimension)

    @property
    def index_type(self) -> str:
        """The FAISS factory string of the index in use."""
        ivf = faiss.try_extract_index_ivf(self._index)
        return EXACT_SPEC if ivf is None else f"IVF{ivf.nlist},Flat"

    @property
    def version(self) -> int:
        """Changes on every add and delete, so that derived indexes (BM25) know to rebuild."""
        return self._generation

    def __len__(self) -> int:
        """The number of chunks (and vectors)."""
        return int(self._index.ntotal)

    # ----------------------------------------------------------------- changes

    def add(self, doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Index a document with its chunks and their (L2-normalised) vectors."""
        vectors = self._checked_vectors(vectors, len(chunks))
        _check_chunks(doc, chunks)
        self._begin_change()
        if self.has(doc.id):
            raise StoreError(f"Document {doc.id} is already in the index.")
        signature = minhash(shingles(doc.text))
        self._db.execute(
            "INSERT INTO documents (id, title, source, url, published, text, added_at, minhash, "
            "date_source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (doc.id, doc.title, doc.source, doc.url, doc.published, doc.text, utc_now(),
             signature.hashvalues.tobytes(), doc.date_source),
        )
        ids = [
            self._db.execute(
                "INSERT INTO chunks (doc_id, start_char, end_char, text, vector) VALUES (?, ?, ?, ?, ?)",
                (doc.id, chunk.start, chunk.end, chunk.text, vector.tobytes()),
            ).lastrowid
            for chunk, vector in zip(chunks, vectors)
        ]
        if ids:
            self._index.add_with_ids(vectors, np.array(ids, dtype=np.int64))
        if self._lsh is not None:
            self._lsh.insert(doc.id, signature)
        self._bump_generation()

    def delete(self, doc_id: str) -> bool:
        """Remove a document, its chunks and their vectors; False when it was not indexed."""
        self._begin_change()
        if not self.has(doc_id):
            return False
        ids = [row[0] for row in self._db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        self._db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        self._db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        self._index.remove_ids(np.array(ids, dtype=np.int64))
        if self._lsh is not None and doc_id in self._lsh:
            self._lsh.remove(doc_id)
        self._bump_generation()
        return True

    def _bump_generation(self) -> None:
        self._generation += 1
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (self._generation,))

    def _checked_vectors(self, vectors: np.ndarray, count: int) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (count, self.dimension):
            raise StoreError(f"Expected {count} vectors of dimension {self.dimension}, got shape {vectors.shape}.")
        if count and not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3):
            raise StoreError("Vectors must be L2-normalised (inner product is used as cosine similarity).")
        return vectors

    # ----------------------------------------------------------------- reading

    def has(self, doc_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM documents WHERE id = ?", (doc_id,)).fetchone() is not None

    def get(self, doc_id: str) -> Document:
        row = self._db.execute(
            f"SELECT id, text, title, source, url, published, {self._date_source_sql()} "
            "FROM documents WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            raise StoreError(f"There is no document {doc_id} in the index.")
        return Document(*row)

    def documents(self) -> list[DocumentInfo]:
        """All documents in the order they were added, with their chunk counts."""
        rows = self._db.execute(
            "SELECT d.id, d.title, d.source, d.url, d.published, COUNT(c.id), "
            f"{self._date_source_sql('d.')} FROM documents d "
            "LEFT JOIN chunks c ON c.doc_id = d.id GROUP BY d.id ORDER BY d.rowid"
        )
        return [DocumentInfo(*row) for row in rows]

    def chunks_by_ids(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, in the given order."""
        rows = self._db.execute(
            "SELECT id, doc_id, start_char, end_char, text FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps([int(i) for i in ids]),),
        )
        found = {row[0]: Chunk(*row[1:]) for row in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise StoreError(f"Chunks {missing[:5]} are not in the index.")
        return [found[i] for i in ids]

    def published_by_chunk(self, ids: Sequence[int]) -> dict[int, str]:
        """The publication date ("" when undated) of each chunk's article, for recency."""
        rows = self._db.execute(
            "SELECT c.id, d.published FROM chunks c JOIN documents d ON d.id = c.doc_id "
            "WHERE c.id IN (SELECT value FROM json_each(?))", (json.dumps([int(i) for i in ids]),))
        return dict(rows)

    def iter_chunks(self) -> Iterator[tuple[int, Chunk]]:
        """Every chunk with its id, in id order (for building the BM25 index)."""
        rows = self._db.execute("SELECT id, doc_id, start_char, end_char, text FROM chunks ORDER BY id").fetchall()
        for row in rows:
            yield row[0], Chunk(*row[1:])

    def chunk_ids_matching(
        self, sources: list[str] | None = None, date_from: str | None = None,
        date_to: str | None = None, *, include_undated: bool = True
    ) -> set[int] | None:
        """Ids of chunks whose document matches every given filter; None when there is no filter.

        Sources match case-insensitively. Date bounds are inclusive ISO prefixes: ``date_to="2024-05"``
        keeps all of May 2024. Documents without a publication date pass date filters, as nothing
        says they are out of range, unless ``include_undated`` is False, which drops them always.
        """
        if not sources and date_from is None and date_to is None and include_undated:
            return None
        conditions, params = [], []
        if sources:
            conditions.append("lower(d.source) IN (SELECT lower(value) FROM json_each(?))")
            params.append(json.dumps(list(sources)))
        if not include_undated:
            conditions.append("d.published != ''")
        undated = "d.published = '' OR " if include_undated else ""
        if date_from is not None:
            _check_date_bound("date_from", date_from)
            conditions.append(f"({undated}substr(d.published, 1, length(?)) >= ?)")
            params += [date_from, date_from]
        if date_to is not None:
            _check_date_bound("date_to", date_to)
            conditions.append(f"({undated}substr(d.published, 1, length(?)) <= ?)")
            params += [date_to, date_to]
        query = "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE " + " AND ".join(conditions)
        return {row[0] for row in self._db.execute(query, params)}

    def search(self, vector: np.ndarray, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """The ``k`` chunks nearest to ``vector`` (cosine similarity), optionally among ``allowed`` ids."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dimension:
            raise StoreError(f"Query vector has dimension {query.shape[1]}; the index has {self.dimension}.")
        k = min(k, len(self), len(allowed) if allowed is not None else k)
        if k <= 0:
            return []
        selector = faiss.IDSelectorBatch(np.fromiter(allowed, dtype=np.int64)) if allowed is not None else None
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is None:
            params = faiss.SearchParameters(sel=selector)
        else:
            # A filter may keep ids from few lists: probe them all (exact; only allowed ids are scored).
            params = faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nlist if selector is not None else NPROBE)
        scores, ids = self._index.search(query, k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    # ----------------------------------------------------------------- near-duplicates

    def find_near_duplicate(
        self, doc: Document, threshold: float = 0.8, *, pending: Sequence[Document] = ()
    ) -> str | None:
        """The id of an indexed or ``pending`` document whose text is a near-duplicate of ``doc``'s.

        ``pending`` are documents about to be added in the same batch, so that two copies arriving
        together are caught too. Similarity is the Jaccard index of word 5-gram sets: a wire copy
        with another dateline or an extra boilerplate line scores above 0.8, distinct articles far below.
        """
        if not 0.0 < threshold <= 1.0:
            raise NewsQAError(f"The near-duplicate threshold must be in (0, 1], not {threshold}.")
        grams = shingles(doc.text)
        if not grams:
            return None
        indexed = ((i, self.get(i).text) for i in self._lsh_index(threshold).query(minhash(grams)))
        best_id, best = None, threshold
        for other_id, text in itertools.chain(indexed, ((d.id, d.text) for d in pending)):
            similarity = _jaccard(grams, shingles(text))
            if similarity >= best:
                best_id, best = other_id, similarity
        return best_id

    def _lsh_index(self, threshold: float) -> MinHashLSH:
        """An LSH index over the stored signatures, built on first use and kept up to date."""
        from datasketch import MinHash, MinHashLSH

        lsh_threshold = max(0.1, threshold - LSH_SLACK)
        if self._lsh is None or self._lsh_threshold != lsh_threshold:
            self._lsh = MinHashLSH(threshold=lsh_threshold, num_perm=NUM_PERM, weights=(0.1, 0.9))
            with self._lsh.insertion_session() as session:
                for doc_id, blob in self._db.execute("SELECT id, minhash FROM documents"):
                    hashvalues = np.frombuffer(blob, dtype=np.uint32)
                    session.insert(doc_id, MinHash(hashvalues=hashvalues, scheme=MINHASH_SCHEME))
            self._lsh_threshold = lsh_threshold
        return self._lsh

    # ----------------------------------------------------------------- feed subscriptions

    def feeds(self) -> list[Feed]:
        """The subscribed feeds in the order they were added (none before the first one)."""
        if not self._has_feed_tables():
            return []
        rows = self._db.execute(
            "SELECT f.url, f.added, f.title, f.last_poll, f.last_success, f.etag, f.last_modified, "
            "f.last_error, (SELECT COUNT(*) FROM feed_items i WHERE i.feed_url = f.url) "
            "FROM feeds f ORDER BY f.rowid")
        return [Feed(*row) for row in rows]

    def feed_items(self, url: str) -> set[str]:
        """The guids and links of the feed's items that are already indexed."""
        if not self._has_feed_tables():
            return set()
        return {row[0] for row in
                self._db.execute("SELECT key FROM feed_items WHERE feed_url = ?", (url,))}

    def add_feed(self, url: str) -> bool:
        """Subscribe to the feed at ``url``; False when it already is."""
        self._begin_change()
        return self._db.execute("INSERT OR IGNORE INTO feeds (url, added) VALUES (?, ?)",
                                (url, utc_now())).rowcount == 1

    def remove_feed(self, url: str) -> bool:
        """Forget the feed and its items (their documents stay); False when not subscribed."""
        self._begin_change()
        return self._db.execute("DELETE FROM feeds WHERE url = ?", (url,)).rowcount == 1

    def record_poll(self, feed: Feed, seen: Iterable[str] = ()) -> bool:
        """Store what a poll of ``feed`` learnt, and the guids and links of the items it indexed;
        False, storing nothing, when the feed was unsubscribed while it was polled."""
        self._begin_change()
        updated = self._db.execute(
            "UPDATE feeds SET title = ?, last_poll = ?, last_success = ?, etag = ?, "
            "last_modified = ?, last_error = ? WHERE url = ?",
            (feed.title, feed.last_poll, feed.last_success, feed.etag, feed.last_modified,
             feed.last_error, feed.url)).rowcount == 1
        if updated:
            self._db.executemany("INSERT OR IGNORE INTO feed_items (feed_url, key) VALUES (?, ?)",
                                 ((feed.url, key) for key in seen))
        return updated

    def _has_feed_tables(self) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                "AND name = 'feed_items'").fetchone() is not None


# --------------------------------------------------------------------- helpers for open()


def _create(path: Path, embedder_name: str, dimension: int, wait: bool) -> dict:
    """Create an empty index under the writer lock: database first, manifest last (it marks a
    complete index), so that two processes creating one index at once end with one."""
    path.mkdir(parents=True, exist_ok=True)
    lock = WriterLock(path)
    lock.acquire(wait)
    try:
        if (path / MANIFEST).exists():  # another process created it while we waited
            return _read_manifest(path / MANIFEST)
        _connect(path / DATABASE, create=True).close()
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "embedder": embedder_name,
            "dimension": dimension,
            "index_type": EXACT_SPEC,
            **_versions(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        _write_manifest(path, manifest)
        return manifest
    finally:
        lock.release()


def _write_manifest(path: Path, manifest: dict) -> None:
    _atomic_write(path / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(f"The index manifest {path} is unreadable or corrupt ({error}).") from error
    required = {"format", "format_version", "embedder", "dimension", "index_type"}
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not required <= manifest.keys():
        raise StoreError(f"{path} is not a newsqa index manifest.")
    if manifest["format_version"] != FORMAT_VERSION:
        raise StoreError(
            f"The index at {path.parent} has format version {manifest['format_version']}; "
            f"this newsqa reads version {FORMAT_VERSION}."
        )
    return manifest


def _check_compatible(manifest: dict, embedder_name: str, dimension: int) -> None:
    if manifest["embedder"] != embedder_name or manifest["dimension"] != dimension:
        raise StoreError(
            f"This index was built with {manifest['embedder']} ({manifest['dimension']}-d); "
            f"you are using {embedder_name} ({dimension}-d). Use the same embedder or build a new index."
        )


def _connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    """Open the database in WAL mode (readers never block the writer, nor it them); a corrupt
    file is a StoreError. Only a new index gets the schema: that is a write, which would wait
    for a writer's open transaction."""
    db = sqlite3.connect(path, timeout=SQLITE_BUSY_SECONDS, check_same_thread=False)
    try:  # check_same_thread: app worker threads, serialised by the facade's lock
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA foreign_keys = ON")
        if create:
            db.executescript(_SCHEMA)
        _committed_generation(db)
    except sqlite3.DatabaseError as error:
        db.close()
        raise StoreError(f"The index database {path} is corrupt ({error}).") from error
    return db


def _committed_generation(db: sqlite3.Connection) -> int:
    return db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]


def _stored_vectors(db: sqlite3.Connection, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    rows = db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32).reshape(len(rows), dimension)
    return ids, vectors


def _build_index(ids: np.ndarray, vectors: np.ndarray, dimension: int) -> faiss.Index:
    index = faiss.index_factory(dimension, index_spec(len(ids)), faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(vectors)
    if len(ids):
        index.add_with_ids(vectors, ids)
    return index


def _load_vectors(path: Path, db: sqlite3.Connection, generation: int, dimension: int) -> faiss.Index:
    """The FAISS index of this generation: read from its file, or rebuilt from the database."""
    file = path / f"vectors-{generation}.faiss"
    count = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    try:
        data = np.fromfile(file, dtype=np.uint8)
    except FileNotFoundError:  # a crash before the file was written, or a writer tidied it
        return _build_index(*_stored_vectors(db, dimension), dimension)
    try:
        index = faiss.deserialize_index(data)
    except RuntimeError as error:
        raise StoreError(f"The vector file {file} is corrupt; delete it and reopen the index to rebuild it.") from error
    if index.d != dimension or index.ntotal != count:
        raise StoreError(f"The vector file {file} does not match the database; delete it and reopen to rebuild it.")
    return index
