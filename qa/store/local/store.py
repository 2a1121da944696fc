"""The index: chunk vectors in FAISS, documents and chunks in SQLite, in one directory.

Layout of an index directory::

    manifest.json          what built the index: embedder, settings, index type
                           (``qa.store.manifest``)
    store.sqlite           the source of truth: documents, chunks and their vectors (float32 blobs),
                           the keyword index over the chunks (``qa.store.local.keywords``, SQLite
                           FTS5), and the feeds subscribed to, with what their polls learnt
    vectors-<gen>.faiss    the FAISS index as of database generation <gen> (a base), and
    vectors-<gen>.seg      the vectors that generation <gen> added after it
                           (``qa.store.local.vectors``): a cache, rebuildable from the stored
                           vectors
    write.lock             held (``flock``) by the one process that is writing, with its pid

One writer, many readers. A process that changes the index first takes ``write.lock`` (another
writer gets a ``StoreError`` naming the holder's pid, or waits), then catches up with the latest
committed generation. Every ``add``/``delete`` bumps a generation counter inside the same SQLite
transaction; ``save()`` writes what changed under the new generation's name (a segment of the
vectors it added, or now and then a whole new base; temp file, fsync, ``os.replace``), records
it in the same transaction, then commits, then removes the files that neither the new nor the
previous generation reads. A process killed anywhere in ``save()`` leaves either the old or the
new committed database, each with its files (or, after a crash, none, which ``open`` rebuilds
from the stored vectors).

Readers (the app, a CLI ``ask``) wrap each query in ``snapshot()``: one SQLite read transaction
(WAL mode, so it never blocks the writer) in which they read the vector files of the committed
generation if it moved on: only the newer segments, unless the base changed. A query therefore
never mixes two generations, and a document deleted by another process is simply gone, never a
dangling chunk id.

A write the system refuses (a full disk, a read-only file system) is one ``StoreError`` line,
and the store goes back to the last committed generation: the transaction is rolled back and the
vectors are read again. An index that this process may not write (a read-only mount, a folder
or database without write permission) is opened read-only and answers questions; changing it is
that one line. Its database is opened with SQLite's ``mode=ro``, or, when no writer has left a
``-wal`` file and none can be made beside it, as ``immutable`` (SQLite then takes no locks): a
reader switches to ``mode=ro`` at its next snapshot once a writer elsewhere starts one.
"""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import faiss
import numpy as np

from qa.errors import StoreError
from qa.store.base import (DocumentInfo, Feed, OneWriter, checked_addition, refuse_taken,
                           utc_now)
from qa.store.dedup import NearDuplicates, signature
from qa.store.local import keywords
from qa.store.local.attributes import ChunkAttributes
from qa.store.local.database import (DATABASE, WRITE_LOCK, Database, DatabaseVectors,
                                     committed_generation, connect, has_feed_tables, has_keys,
                                     optional_columns, refusal, upgrade_schema, wal,
                                     why_read_only)
from qa.store.local.database import writes as _writes
from qa.store.local.follows import FollowTables
from qa.store.local.lock import WriterLock
from qa.store.local.vectors import EXACT_SPEC, FaissVectors, VectorIndex
from qa.store.manifest import (MANIFEST, Described, check_same_embedder, new_manifest,
                               read_manifest, write_manifest)
from qa.types import Chunk, Document, Filter, IndexConfig

class Store(FollowTables, OneWriter, Described):
    """Documents, chunks and vectors of one index directory. Use ``Store.open``.

    Changes are kept in one SQLite transaction until ``save()``; ``close()`` without ``save()``
    discards them. The first change takes the writer lock (``wait_for_writer``: block instead of
    failing when another process holds it); ``save()`` releases it unless ``writing()`` holds it.
    """

    def __init__(self, path: Path, manifest: dict, db: Database, *,
                 wait_for_writer: bool = False, read_only: str | None = None) -> None:
        self.path = path
        self.wait_for_writer = wait_for_writer
        self._manifest = manifest
        self._db = db
        self._vectors: VectorIndex = FaissVectors(path, int(manifest["dimension"]),
                                                  DatabaseVectors(lambda: self._db))
        self._attributes = ChunkAttributes()  # what filters read, loaded as searches need it
        self._mask_memo: tuple[tuple[Filter, int], np.ndarray] | None = None  # the last mask
        self._generation = self._saved_generation = -1  # -1: before the first catch-up
        self._guard = WriterLock(path, read_only)  # read_only: why it may not write, if so
        self._changing = False  # an open write transaction holds the writer lock
        self._snapshots = 0
        self._near_duplicates = NearDuplicates(
            lambda: self._db.execute("SELECT id, minhash FROM documents"),
            lambda doc_id: self.get(doc_id).text)

    # ----------------------------------------------------------------- opening and saving

    @classmethod
    def open(cls, path: str | Path, *, embedder_name: str, dimension: int | Callable[[], int],
             create: bool = True, wait_for_writer: bool = False,
             config: IndexConfig | None = None) -> Store:
        """Open the index at ``path``, creating an empty one there if allowed and absent.

        An int ``dimension`` is checked, with ``embedder_name``, against an existing index now.
        A function is called only to create an index, so that listing or reading documents
        loads no embedding model; the caller then calls ``check_embedder`` before it embeds.
        ``config`` (default: the defaults) is recorded in the manifest of an index this
        creates; the caller checks its own against an existing index's ``config``.
        """
        path = Path(path)
        try:
            if path.exists() and not path.is_dir():
                raise StoreError(f"{path} is a file, not an index directory.")
            indexed = (path / MANIFEST).exists()
            strangers = path.exists() and any(p.name not in (f".{MANIFEST}.tmp", WRITE_LOCK)
                                              for p in path.iterdir())
        except OSError as error:  # a folder on the way that this user may not read
            raise StoreError(f"The index at {path} cannot be read ({error.strerror}).") from None
        if indexed:
            manifest = read_manifest(path)
        elif not create:
            raise StoreError(f"There is no index at {path}.")
        elif strangers:
            raise StoreError(f"{path} is not empty and is not an index (no {MANIFEST}); "
                             "choose another directory.")
        else:
            manifest = _create(path, embedder_name,
                               dimension if isinstance(dimension, int) else dimension(),
                               wait_for_writer, config or IndexConfig())
        if isinstance(dimension, int):
            check_same_embedder(manifest, embedder_name, dimension)
        db_path = path / DATABASE
        if not db_path.exists():
            raise StoreError(f"The index at {path} has lost its database ({DATABASE}).")
        if not os.access(db_path, os.R_OK):
            raise StoreError(f"The index at {path} cannot be read (its database {DATABASE}: "
                             f"{os.strerror(errno.EACCES)}).")
        read_only = why_read_only(path)
        db = connect(db_path, read_only=read_only is not None)
        try:
            store = cls(path, manifest, db, wait_for_writer=wait_for_writer,
                        read_only=read_only)
            with store.snapshot():
                pass  # loads the committed generation's vectors
            if store._vectors.untidy():
                store._tidy()
        except BaseException:
            db.close()
            raise
        return store

    def _start_reading(self) -> None:
        if self._db.immutable and wal(self.path / DATABASE).exists():
            self._db.close()  # a writer elsewhere has begun: read with SQLite's locks again
            self._db = connect(self.path / DATABASE, read_only=True)
        self._db.execute("BEGIN")  # a WAL read transaction: one generation throughout

    def _stop_reading(self) -> None:
        self._db.commit()  # ends the read transaction; nothing was written

    @_writes
    def save(self) -> None:
        """Write the new generation's vector files (only what changed, ``qa.store.local.vectors``),
        commit, and release the writer lock."""
        if not self._changing:
            return
        if self._generation != self._saved_generation:
            self._vectors.save(self._db, self._generation)
            self._record_index_type()
        self._db.commit()
        self._saved_generation = self._generation
        self._tidy()
        self._end_change()

    def _drop_changes(self) -> None:
        self._db.rollback()

    def _abandon(self) -> None:
        """After a write the system refused: roll back (SQLite may have done so already),
        give back the writer lock, and hold the last committed generation again, whose vectors
        are read afresh (those held include the changes rolled back, whose chunk ids SQLite
        hands out again)."""
        self._drop_changes()
        self._vectors.forget()
        self._attributes, self._mask_memo = ChunkAttributes(), None
        self._generation = self._saved_generation
        self._near_duplicates.reset()
        if self._changing:
            self._end_change()
        with self.snapshot():
            pass  # reads the committed generation's vectors

    def _disconnect(self) -> None:
        self._db.close()

    def _start_changing(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        upgrade_schema(self._db)

    def _catch_up(self) -> None:
        """Hold the committed generation's vectors: only what changed since the one held, when
        another process has moved it on (``qa.store.local.vectors``)."""
        generation = committed_generation(self._db)
        self._vectors.catch_up(self._db, generation)  # also notices a base re-recorded by a tidy
        if generation == self._saved_generation == self._generation:
            return
        self._generation = self._saved_generation = generation
        self._near_duplicates.reset()

    def _record_index_type(self) -> None:
        spec = self.index_type
        if self._manifest["index_type"] != spec:
            self._manifest = {**self._manifest, "index_type": spec}
            write_manifest(self.path, self._manifest)

    @_writes
    def _tidy(self) -> None:
        """As the writer (or while no one writes): give a rebuilt generation its base file and
        remove the vector files that neither it nor the previous generation reads (a reader that
        finds its file gone rebuilds it from the database, so keeping them only saves time)."""
        try:
            self._guard.acquire(wait=False)  # re-entrant: a writer already holds it
        except StoreError:
            return  # the process that writes tidies after its own saves
        try:
            if committed_generation(self._db) != self._saved_generation:
                return  # another writer committed since this store last looked: its files
            self._vectors.tidy(self._db)
        finally:
            self._guard.release()

    # ----------------------------------------------------------------- properties

    @property
    def index_type(self) -> str:
        """The FAISS factory string of the index in use."""
        return self._vectors.index_type

    @property
    def version(self) -> int:
        """Changes on every add and delete, so that what a caller derived knows to refresh."""
        return self._generation

    def __len__(self) -> int:
        """The number of chunks (and vectors)."""
        return len(self._vectors)

    # ----------------------------------------------------------------- changes

    @_writes
    def add(self, doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Index a document with its chunks and their (L2-normalised) vectors."""
        vectors = checked_addition(doc, chunks, vectors, self.dimension)
        self._begin_change()
        refuse_taken(self, doc)
        minhash = signature(doc.text)
        self._db.execute(
            "INSERT INTO documents (id, title, source, url, published, text, added_at, minhash, "
            "date_source, external_id, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (doc.id, doc.title, doc.source, doc.url, doc.published, doc.text, utc_now(),
             minhash, doc.date_source, doc.external_id, doc.key),
        )
        ids = [
            self._db.execute(
                "INSERT INTO chunks (doc_id, start_char, end_char, text, vector) "
                "VALUES (?, ?, ?, ?, ?)",
                (doc.id, chunk.start, chunk.end, chunk.text, vector.tobytes()),
            ).lastrowid
            for chunk, vector in zip(chunks, vectors)
        ]
        keywords.add(self._db, doc.title, zip(ids, (chunk.text for chunk in chunks)))
        self._vectors.add(np.array(ids, dtype=np.int64), vectors)
        self._near_duplicates.added(doc.id, minhash)
        self._bump_generation()

    @_writes
    def delete(self, doc_id: str) -> bool:
        """Remove a document, its chunks and their vectors; False when it was not indexed."""
        self._begin_change()
        if not self.has(doc_id):
            return False
        ids = [row[0] for row in self._db.execute("SELECT id FROM chunks WHERE doc_id = ?",
                                                  (doc_id,))]
        keywords.remove(self._db, doc_id)  # first: it reads what was indexed from the rows
        self._db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        self._db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        self._vectors.remove(np.array(ids, dtype=np.int64))
        self._near_duplicates.removed(doc_id)
        self._bump_generation()
        return True

    def _bump_generation(self) -> None:
        self._generation += 1
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (self._generation,))

    # ----------------------------------------------------------------- reading

    def has(self, doc_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM documents WHERE id = ?",
                                (doc_id,)).fetchone() is not None

    def find_by_key(self, key: str) -> str | None:
        """The id of the document indexed under ``key``; None if none is."""
        if not key or not has_keys(self._db):
            return None
        row = self._db.execute("SELECT id FROM documents WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def get(self, doc_id: str) -> Document:
        row = self._db.execute(
            f"SELECT id, text, title, source, url, published, {optional_columns(self._db)} "
            "FROM documents WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            raise StoreError(f"There is no document {doc_id} in the index.")
        return Document(*row)

    def documents(self) -> list[DocumentInfo]:
        """All documents in the order they were added, with their chunk counts."""
        rows = self._db.execute(
            "SELECT d.id, d.title, d.source, d.url, d.published, COUNT(c.id), "
            f"{optional_columns(self._db, 'd.', ('date_source', 'external_id'))} "
            "FROM documents d "
            "LEFT JOIN chunks c ON c.doc_id = d.id GROUP BY d.id ORDER BY d.rowid"
        )
        return [DocumentInfo(*row) for row in rows]

    def chunks_by_ids(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, in the given order."""
        rows = self._db.execute(
            "SELECT id, doc_id, start_char, end_char, text FROM chunks "
            "WHERE id IN (SELECT value FROM json_each(?))",
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
        """Every chunk with its id, in id order."""
        rows = self._db.execute("SELECT id, doc_id, start_char, end_char, text FROM chunks "
                                "ORDER BY id").fetchall()
        for row in rows:
            yield row[0], Chunk(*row[1:])

    def search(self, vector: np.ndarray, k: int,
               filter: Filter | None = None) -> list[tuple[int, float]]:
        """The ``k`` chunks nearest to ``vector`` (cosine similarity), best first, among the
        articles ``filter`` keeps."""
        return self._vectors.search(self._query(vector), k, self._allowed(filter))

    def similarities(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """The cosine similarity of ``vector`` to each of the chunks ``ids``."""
        wanted = np.asarray(ids, dtype=np.int64)
        if not len(wanted):
            return {}
        scores = self._vectors.similarities(self._query(vector), wanted)
        return {int(i): float(s) for i, s in zip(wanted, scores)}

    def _query(self, vector: np.ndarray) -> np.ndarray:
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dimension:
            raise StoreError(f"Query vector has dimension {query.shape[1]}; the index has "
                             f"{self.dimension}.")
        return query

    def _allowed(self, filter: Filter | None) -> np.ndarray | None:
        """The chunk ids of the articles ``filter`` keeps (None: no filter, all of them), as a
        mask that ``qa.store.local.vectors`` hands to FAISS as a bitmap and
        ``qa.store.local.keywords`` checks its ranked matches against: numpy over per-chunk columns,
        no Python object per chunk. The columns load the chunks added since the last filtered
        search, and no others (ids only grow). The first load reads the chunks_doc index, not the
        chunk rows, which hold text and vector (2 s at 1M chunks, where reading the rows took 4 to
        13)."""
        if filter is None or filter.empty:
            return None
        since = self._attributes.last_id
        self._attributes.extend(self._db.execute(
            "SELECT c.id, d.source, d.published FROM chunks c JOIN documents d ON d.id = c.doc_id"
            + (" WHERE c.id > ?" if since else ""), (since,) if since else ()))
        key = (filter, self._attributes.last_id)  # one retrieval asks twice: dense and keyword
        if self._mask_memo is None or self._mask_memo[0] != key:
            self._mask_memo = (key, self._attributes.mask(filter))
        return self._mask_memo[1]

    def keyword_search(self, query: str, k: int,
                       filter: Filter | None = None) -> list[tuple[int, float]]:
        """The ``k`` chunks that best match ``query``'s words (BM25 over chunk text and title,
        higher is better), best first, among the articles ``filter`` keeps; chunks sharing no
        word with it are left out (``qa.store.local.keywords``)."""
        if not keywords.exists(self._db):
            keywords.warn_missing(self.path)
            return []
        return keywords.search(self._db, query, k, self._allowed(filter))

    # ----------------------------------------------------------------- near-duplicates

    def find_near_duplicate(
        self, doc: Document, threshold: float = 0.8, *, pending: Sequence[Document] = ()
    ) -> str | None:
        """The id of an indexed or ``pending`` document that is a near-duplicate of ``doc``
        (``qa.store.dedup``)."""
        return self._near_duplicates.find(doc, threshold, pending=pending)

    # ----------------------------------------------------------------- feed subscriptions

    def feeds(self) -> list[Feed]:
        """The subscribed feeds in the order they were added (none before the first one)."""
        if not has_feed_tables(self._db):
            return []
        rows = self._db.execute(
            "SELECT f.url, f.added, f.title, f.last_poll, f.last_success, f.etag, f.last_modified, "
            "f.last_error, (SELECT COUNT(*) FROM feed_items i WHERE i.feed_url = f.url) "
            "FROM feeds f ORDER BY f.rowid")
        return [Feed(*row) for row in rows]

    def feed_items(self, url: str) -> set[str]:
        """The guids and links of the feed's items that are already indexed."""
        if not has_feed_tables(self._db):
            return set()
        return {row[0] for row in
                self._db.execute("SELECT key FROM feed_items WHERE feed_url = ?", (url,))}

    @_writes
    def add_feed(self, url: str) -> bool:
        """Subscribe to the feed at ``url``; False when it already is."""
        self._begin_change()
        return self._db.execute("INSERT OR IGNORE INTO feeds (url, added) VALUES (?, ?)",
                                (url, utc_now())).rowcount == 1

    @_writes
    def remove_feed(self, url: str) -> bool:
        """Forget the feed and its items (their documents stay); False when not subscribed."""
        self._begin_change()
        return self._db.execute("DELETE FROM feeds WHERE url = ?", (url,)).rowcount == 1

    @_writes
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

# --------------------------------------------------------------------- helpers for open()


def _create(path: Path, embedder_name: str, dimension: int, wait: bool,
            config: IndexConfig) -> dict:
    """Create an empty index under the writer lock: database first, manifest last (it marks a
    complete index), so that two processes creating one index at once end with one."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        cannot = why_read_only(path)
    except OSError as error:
        cannot = "a read-only file system" if error.errno == errno.EROFS else error.strerror
    if cannot is not None:
        raise StoreError(f"No index can be created at {path} ({cannot}).")
    lock = WriterLock(path)
    lock.acquire(wait)
    try:
        if (path / MANIFEST).exists():  # another process created it while we waited
            return read_manifest(path)
        connect(path / DATABASE, create=True).close()
        manifest = new_manifest(embedder_name, dimension, config, index_type=EXACT_SPEC,
                                faiss_version=faiss.__version__, created=utc_now())
        write_manifest(path, manifest)
        return manifest
    except OSError as error:
        raise refusal(path, error) from error
    finally:
        lock.release()
