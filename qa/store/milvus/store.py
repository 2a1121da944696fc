"""The index in Milvus: documents, chunks, vectors, the keyword index and feeds, all in Milvus.

Everything a query needs lives in Milvus, so several app processes on several machines can
serve one index. The same code runs against milvus-lite (``milvus:///path/to/index.db``, a
Milvus engine embedded in the process, which holds the file: one process at a time) and a
Milvus server or cluster (``milvus://host:19530``, or ``milvus://user:password@host:19530/name``
where ``name`` prefixes the collections, so that one cluster holds several indexes).

Collections (``<name>`` is ``newsqa`` unless the URI names another):

    <name>_meta        the manifest (embedder, dimension), the committed generation, the writer
    <name>_documents   each document in parts of at most ``TEXT_PART_CHARS`` characters (Milvus
                       keeps at most 64 KiB in a text field), with its metadata, MinHash
                       and key (``schema.KEY_FIELDS``; not in an index made before keys)
    <name>_chunks      chunk text, offsets, doc id, lower-cased source, published date, the
                       vector, and ``keywords`` (the article's title and the chunk's text),
                       from which Milvus computes the BM25 sparse vector it searches
    <name>_feeds       subscribed feeds and what their polls learnt
    <name>_feed_items  the guids and links of each feed's items already indexed
    <name>_follows, <name>_follow_entries  followed questions and their answers' history

Milvus has no transactions, so commits are built from generations. Every document and chunk
row carries the generation that added it; a deletion marks the document's rows with the
generation that deleted it (a tombstone) and leaves its chunks in place. ``save()`` writes the
rows of the new generation, then sets the committed generation in ``<name>_meta``: that one
write is the commit. A reader's ``snapshot()`` reads the committed generation once and filters
every query with it, so it never sees half a save, and a document deleted by another process
stays readable to a query that began before the delete, never a dangling chunk id. Tombstoned
rows are removed for good ``PURGE_AFTER_SECONDS`` after their deletion, by a later save.

The collections are Strong by default: the commit point, the lease and feeds are read Strong.
Documents and chunks are read Strong while this process writes and for ``SETTLE_SECONDS`` after
the commit of the generation read, Bounded (about 100 times faster on a server) after that, when
every row of that generation is older than Bounded's staleness window.

Changes are buffered in memory until ``save()``; ``close()`` without ``save()`` writes nothing.
Feed subscriptions, poll results and followed questions are not versioned: ``save()`` writes
them after the commit, and readers see them from then on.
A writer killed inside ``save()`` leaves rows of an uncommitted generation, invisible to
readers; the next writer removes them (and lifts the tombstones it had set) before it writes.

One writer at a time, as with an index directory. Milvus has no locks, so the writer holds a
lease in ``<name>_meta`` (owner, pid, host, expiry), renewed as it writes, taken over when it
expires (``LEASE_SECONDS``), or at once when its holder is known to be dead: any other process
in a milvus-lite file (which one process at a time opens), a process of this machine that no
longer runs on a server. It is taken by writing it and reading it back after a short pause,
which two writers racing in the same few milliseconds can both pass: best effort, not a lock.
milvus-lite itself lets one process at a time open its file: another gets one line saying so,
or, waiting for a writer (``wait_for_writer``), waits until the file is free.

Chunk ids are assigned by Milvus (``auto_id``): its id allocator hands out int64 ids that are
unique across every client of the server or cluster, so writers on several machines, one after
another, never reuse an id. milvus-lite counts them up in its file, past deleted ones too.

Servers before Milvus 2.5 have no BM25 function: the index is then made without the keyword
field, one log line says so, and ``keyword_search`` returns nothing (retrieval is dense only).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import time
from typing import Callable, Iterator, Sequence

import numpy as np

from qa.errors import StoreError
from qa.store.base import (DocumentInfo, Feed, OneWriter, checked_addition, redacted,
                           refuse_taken)
from qa.store.dedup import NearDuplicates, signature
from qa.store.manifest import Described, check_manifest, check_same_embedder
from qa.store.milvus.chunks import PAGE_ROWS, ChunkQueries
from qa.store.milvus.client import Milvus, MilvusLocation, connect, parse_location
from qa.store.milvus.expressions import both, literal, strings
from qa.store.milvus.feeds import FeedCollections
from qa.store.milvus.follows import FollowCollections, has_follow_collections
from qa.store.milvus.lease import Lease
from qa.store.milvus.schema import (DOCUMENT_FIELDS, FOLLOW_KINDS, KEY_FIELDS, PLACEHOLDER,
                                    Pending, chunk_rows_of, create_collections,
                                    document_rows_of)
from qa.types import Chunk, Document, FollowEntry, Followed, IndexConfig

log = logging.getLogger(__name__)

INSERT_ROWS = 1_000  # rows an insert sends at a time, well within gRPC's message limit
PURGE_AFTER_SECONDS = 60  # tombstoned rows stay this long for queries that began before
# Reads of a generation committed this long ago use Bounded consistency, which sees every write
# older than Milvus's ``common.gracefulTime`` (5 s by default), with 5 s to spare for clocks;
# younger ones read Strong, which waits for the server's next time tick (0.4 s a read on the
# Milvus 2.3.5 standalone here, 4 ms Bounded).
SETTLE_SECONDS = 10
KINDS = ("meta", "documents", "chunks", "feeds", "feed_items", "follows", "follow_entries")


class MilvusStore(ChunkQueries, FeedCollections, FollowCollections, OneWriter, Described):
    """Documents, chunks and vectors of one index in Milvus. Use ``MilvusStore.open``.

    The same observable behaviour as ``qa.store.local.store.Store``, over the generations described
    in the module docstring. Changes are kept in this process until ``save()``, which writes them
    and commits; ``close()`` without ``save()`` discards them, having written nothing. The first
    change takes the writer lease (``wait_for_writer``: wait instead of failing when another
    process holds it); ``save()`` gives it back unless ``writing()`` holds it.
    """

    def __init__(self, location: str, where: MilvusLocation, db: Milvus, manifest: dict, *,
                 wait_for_writer: bool = False) -> None:
        self.location = location
        self.wait_for_writer = wait_for_writer
        self._where = where
        self._db = db
        self._manifest = manifest
        (self._meta, self._documents, self._chunks, self._feeds, self._feed_items,
         self._follows, self._follow_entries) = (where.collection(kind) for kind in KINDS)
        self._guard = Lease(self)
        self._generation = -1  # the committed generation this store reads
        self._committed_at = 0.0  # when it was committed (Unix seconds, the writer's clock)
        self._dead: list[str] = []  # doc keys tombstoned at that generation, not yet purged
        self._count: int | None = None  # chunks visible at that generation
        self._snapshots = 0
        self._changing = False
        self._adds: dict[str, Pending] = {}
        self._deletes: set[str] = set()
        self._indexed: set[str] | None = None  # every document's id, while writing() holds
        self._keys: dict[str, str] = {}  # and the id each key names, then
        # indexes made before documents had keys lack their fields (``schema.KEY_FIELDS``)
        self._keyed = bool(manifest.get("document_keys"))
        self._key_fields = list(KEY_FIELDS) if self._keyed else []
        self._fields = [*DOCUMENT_FIELDS, *self._key_fields]
        self._feed_changes: dict[str, Feed | None] = {}  # None: unsubscribed
        self._feeds_dropped: set[str] = set()  # committed feeds whose rows save() deletes
        self._items_added: dict[str, set[str]] = {}
        self._feed_order: dict[str, int] = {}  # when each feed was subscribed (ns): its place
        self._follow_changes: dict[str, Followed | None] = {}  # as feeds' (``follows``)
        self._follows_dropped: set[str] = set()
        self._entries_added: dict[str, dict[int, FollowEntry]] = {}
        self._follow_order: dict[str, int] = {}
        self._follows_exist = has_follow_collections(db, where)
        self._near_duplicates = NearDuplicates(self._signatures,
                                               lambda doc_id: self.get(doc_id).text)

    # ----------------------------------------------------------------- opening and saving

    @classmethod
    def open(cls, location: str, *, embedder_name: str, dimension: int | Callable[[], int],
             create: bool = True, wait_for_writer: bool = False,
             config: IndexConfig | None = None) -> MilvusStore:
        """Open the index at ``location`` (a ``milvus://`` URI), creating it if allowed and
        absent. An int ``dimension`` is checked, with ``embedder_name``, now; a function is
        called only to create the index; ``config`` is recorded in an index this creates (see
        ``qa.store.local.store.Store.open``)."""
        where = parse_location(location)
        location = redacted(location)  # from here on, only shown
        if where.lite and not create and not os.path.exists(where.uri):
            raise StoreError(f"There is no index at {location}.")  # milvus-lite would make one
        db = connect(where, location, wait_for_writer)
        meta = where.collection("meta")
        manifest = None
        if db.has_collection(meta):
            db.load_collection(meta)
            rows = db.query(meta, filter='key == "manifest"', output_fields=["text"])
            try:
                manifest = json.loads(rows[0]["text"]) if rows else None
            except json.JSONDecodeError:
                db.close()
                raise StoreError(f"The index at {location} is corrupt: its manifest is not "
                                 "JSON.") from None
        if manifest is None:
            if not create:
                db.close()
                raise StoreError(f"There is no index at {location}.")
            size = dimension if isinstance(dimension, int) else dimension()
            manifest = create_collections(db, where, embedder_name, size,
                               config or IndexConfig(store="milvus"))
        try:
            check_manifest(manifest, location, "its manifest")
            if isinstance(dimension, int):
                check_same_embedder(manifest, embedder_name, dimension)
        except StoreError:
            db.close()
            raise
        if not manifest["keyword_search"]:
            _warn_no_bm25(location)
        for kind in KINDS:
            if kind not in FOLLOW_KINDS:  # those are loaded when found (``follows``)
                db.load_collection(where.collection(kind))  # a server queries loaded ones only
        store = cls(location, where, db, manifest, wait_for_writer=wait_for_writer)
        with store.snapshot():
            pass  # reads the committed generation
        return store

    def _started_writing(self) -> None:
        """While ``writing()`` holds the lease for a whole job of several saves (``NewsQA.add``),
        ``has`` answers from the ids of the documents indexed, read once: no one else writes,
        and a read per document (Strong, while the job's own saves are recent) is slow; so
        does ``find_by_key``."""
        rows = list(self._rows(self._documents, both("part == 0", self._visible_documents()),
                               ["key", "doc_id", *self._key_fields], "key"))
        self._indexed = {row["doc_id"] for row in rows}
        self._keys = {row["identity"]: row["doc_id"] for row in rows if row.get("identity")}

    def _stopped_writing(self) -> None:
        if not self._guard.held:
            self._indexed, self._keys = None, {}

    def save(self) -> None:
        """Write the buffered changes as the next generation, commit it, and give back the
        writer lease. Feed changes are written after the commit: a crash in between polls
        the feed's items again, and the index keeps them once."""
        if not self._changing:
            return
        if self._adds or self._deletes:
            self._guard.renew()
            self._commit(self._generation + 1)
        self._write_feeds()
        self._write_follows()
        self._end_change()

    def _disconnect(self) -> None:
        self._db.close()

    def _drop_changes(self) -> None:
        """Nothing of the changes was written: forgetting them is all."""
        if self._adds:
            self._near_duplicates.reset()  # it holds the discarded documents' signatures
        self._adds, self._deletes = {}, set()
        self._feed_changes, self._feeds_dropped, self._items_added = {}, set(), {}
        self._follow_changes, self._follows_dropped, self._entries_added = {}, set(), {}

    def _catch_up(self) -> None:
        """Read the committed generation; as the writer, first remove what a writer killed
        inside ``save()`` left of a generation it never committed."""
        writer = self._guard.held
        meta = self._meta_values("generation", "committed_at", "pending",
                                 level="Strong" if writer else "Bounded")
        generation = meta.get("generation", 0)
        if writer and meta.get("pending", 0) > generation:
            self._undo_after(generation)
        if generation > self._generation or (writer and generation != self._generation):
            self._load(generation, meta.get("committed_at", 0) / 1000)
            self._near_duplicates.reset()

    def _load(self, generation: int, committed_at: float) -> None:
        """Read ``generation`` from now on: the documents deleted in it and before."""
        self._generation, self._committed_at = generation, committed_at
        self._dead = [f"{row['doc_id']}:{row['gen']}" for row in self._rows(
            self._documents, f"part == 0 and dead > 0 and dead <= {generation}",
            ["key", "doc_id", "gen"], "key")]
        self._count = None

    def _level(self) -> str:
        """The consistency level of a read (see ``SETTLE_SECONDS``): Strong for a writer and
        for a generation committed in the last seconds, whose rows a Bounded read may miss."""
        if self._changing or self._guard.held \
                or time.time() - self._committed_at < SETTLE_SECONDS:
            return "Strong"
        return "Bounded"

    def _commit(self, generation: int) -> None:
        """Write the buffered adds and deletes as ``generation``, then commit it."""
        if self._meta_values("pending").get("pending", 0) >= generation:
            self._undo_after(generation - 1)  # what a failed save() of these changes wrote
        self._put_meta(pending=generation)  # a crash from here on is undone by _undo_after
        now = int(time.time())
        if self._deletes:
            rows = list(self._rows(self._documents,
                                   f"doc_id in {strings(self._deletes)} and dead == 0",
                                   self._fields, "key"))
            self._upsert(self._documents,
                         [{**row, "dead": generation, "deleted_at": now} for row in rows])
        chunk_rows, document_rows = [], []
        for pending in self._adds.values():
            chunk_rows += chunk_rows_of(pending, generation, self.keyword_search_available)
            document_rows += document_rows_of(pending, generation, self._keyed)
        for start in range(0, len(chunk_rows), INSERT_ROWS):
            self._db.insert(self._chunks, chunk_rows[start:start + INSERT_ROWS])
        self._upsert(self._documents, document_rows)
        committed_at = time.time()
        self._put_meta(generation=generation, committed_at=int(committed_at * 1000))  # commit
        if self._indexed is not None:
            self._indexed = (self._indexed - self._deletes) | self._adds.keys()
            self._keys = {key: doc_id for key, doc_id in self._keys.items()
                          if doc_id not in self._deletes}
            self._keys.update((p.doc.key, doc_id) for doc_id, p in self._adds.items()
                              if p.doc.key and self._keyed)
        self._adds, self._deletes = {}, set()
        self._load(generation, committed_at)  # the LSH index holds these changes: it is kept
        self._purge(now - PURGE_AFTER_SECONDS)

    def _undo_after(self, generation: int) -> None:
        """Remove the rows of generations after ``generation`` and lift their tombstones."""
        self._db.delete(self._chunks, filter=f"gen > {generation}")
        self._db.delete(self._documents, filter=f"gen > {generation}")
        rows = list(self._rows(self._documents, f"dead > {generation}", self._fields, "key"))
        self._upsert(self._documents, [{**row, "dead": 0, "deleted_at": 0} for row in rows])
        self._put_meta(pending=generation)

    def _purge(self, before: int) -> None:
        """Remove for good the documents deleted before ``before`` (Unix seconds), chunks
        first: a crash in between leaves a tombstone that the next purge finishes."""
        dead = {f"{row['doc_id']}:{row['gen']}" for row in self._rows(
            self._documents, f"dead > 0 and deleted_at < {before}", ["key", "doc_id", "gen"],
            "key")}
        if dead:
            self._db.delete(self._chunks, filter=f"doc_key in {strings(dead)}")
            self._db.delete(self._documents, filter=f"dead > 0 and deleted_at < {before}")

    def _put_meta(self, **values: int) -> None:
        """Set these meta values in one write (one commit point)."""
        self._db.upsert(self._meta, [{"key": key, "value": value, "text": "",
                                      "placeholder": PLACEHOLDER}
                                     for key, value in values.items()])

    def _meta_values(self, *keys: str, level: str = "Strong") -> dict[str, int]:
        rows = self._db.query(self._meta, filter=f"key in {strings(keys)}",
                              output_fields=["key", "value"], consistency_level=level)
        return {row["key"]: row["value"] for row in rows}

    def _upsert(self, collection: str, rows: list[dict]) -> None:
        for start in range(0, len(rows), INSERT_ROWS):
            self._db.upsert(collection, rows[start:start + INSERT_ROWS])

    def _rows(self, collection: str, expression: str, fields: list[str], key: str,
              level: str | None = None) -> Iterator[dict]:
        """Every row matching ``expression``, a page at a time. Milvus returns a query's rows in
        primary-key order, so each page starts after the last key of the one before (as
        pymilvus's own query iterator does; that one logs a warning on every use here)."""
        after = ""
        while True:
            rows = self._db.query(collection, filter=both(expression, after),
                                  output_fields=fields, limit=PAGE_ROWS,
                                  consistency_level=level or self._level())
            yield from rows
            if len(rows) < PAGE_ROWS:
                return
            last = rows[-1][key]
            after = f"{key} > {literal(last) if isinstance(last, str) else last}"

    # ----------------------------------------------------------------- what a query sees

    def _visible_documents(self) -> str:
        g = self._generation
        return f"gen <= {g} and (dead == 0 or dead > {g})"

    # ----------------------------------------------------------------- properties

    @property
    def version(self) -> int:
        """The committed generation this store reads: it changes with every saved add and
        delete, by any process, so that caches know to refresh."""
        return self._generation

    # ----------------------------------------------------------------- changes

    def add(self, doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Index a document with its chunks and their (L2-normalised) vectors, at ``save()``."""
        vectors = checked_addition(doc, chunks, vectors, self.dimension)
        self._begin_change()
        refuse_taken(self, doc)
        if doc.key and not self._keyed:
            _warn_no_keys(self.location)
        self._guard.renew()
        minhash = signature(doc.text)
        self._adds[doc.id] = Pending(doc, chunks, vectors, minhash, time.time_ns())
        self._near_duplicates.added(doc.id, minhash)

    def delete(self, doc_id: str) -> bool:
        """Remove a document, its chunks and their vectors; False when it was not indexed."""
        self._begin_change()
        if not self.has(doc_id):
            return False
        if self._adds.pop(doc_id, None) is None:
            self._deletes.add(doc_id)
        self._near_duplicates.removed(doc_id)
        return True

    # ----------------------------------------------------------------- reading

    def has(self, doc_id: str) -> bool:
        if doc_id in self._adds:
            return True
        if doc_id in self._deletes:
            return False
        if self._indexed is not None:
            return doc_id in self._indexed
        return bool(self._db.query(
            self._documents, filter=both(f"doc_id == {literal(doc_id)} and part == 0",
                                          self._visible_documents()),
            output_fields=["key"], limit=1, consistency_level=self._level()))

    def find_by_key(self, key: str) -> str | None:
        """The id of the document indexed under ``key``; None if none is (always, in an index
        made before documents had keys)."""
        if not key or not self._keyed:
            return None
        found = next((doc_id for doc_id, p in self._adds.items() if p.doc.key == key), None)
        if found is not None:
            return found
        if self._indexed is not None:
            found = self._keys.get(key)
        else:
            rows = self._db.query(
                self._documents, filter=both(f"identity == {literal(key)} and part == 0",
                                              self._visible_documents()),
                output_fields=["doc_id"], limit=2, consistency_level=self._level())
            found = rows[0]["doc_id"] if rows else None
        return None if found in self._deletes else found

    def get(self, doc_id: str) -> Document:
        pending = self._adds.get(doc_id)
        if pending is not None:
            return pending.doc
        rows = [] if doc_id in self._deletes else list(self._rows(
            self._documents, both(f"doc_id == {literal(doc_id)}", self._visible_documents()),
            ["key", "part", "text", "title", "source", "url", "published", "date_source",
             *self._key_fields], "key"))
        if not rows:
            raise StoreError(f"There is no document {doc_id} in the index.")
        rows.sort(key=lambda row: row["part"])
        first = rows[0]
        return Document(doc_id, "".join(row["text"] for row in rows), first["title"],
                        first["source"], first["url"], first["published"], first["date_source"],
                        first.get("external_id", ""), first.get("identity", ""))

    def documents(self) -> list[DocumentInfo]:
        """All documents in the order they were added, with their chunk counts."""
        rows = [row for row in self._rows(
            self._documents, both("part == 0", self._visible_documents()),
            ["key", "doc_id", "title", "source", "url", "published", "chunks", "date_source",
             "added", *self._key_fields], "key")
            if row["doc_id"] not in self._deletes]
        rows += [{"doc_id": p.doc.id, "title": p.doc.title, "source": p.doc.source,
                  "url": p.doc.url, "published": p.doc.published, "chunks": len(p.chunks),
                  "date_source": p.doc.date_source, "added": p.added,
                  "external_id": p.doc.external_id if self._keyed else ""}
                 for p in self._adds.values()]
        rows.sort(key=lambda row: row["added"])
        return [DocumentInfo(row["doc_id"], row["title"], row["source"], row["url"],
                             row["published"], row["chunks"], row["date_source"],
                             row.get("external_id", "")) for row in rows]

    # ----------------------------------------------------------------- near-duplicates

    def find_near_duplicate(self, doc: Document, threshold: float = 0.8, *,
                            pending: Sequence[Document] = ()) -> str | None:
        """The id of an indexed or ``pending`` document whose text is a near-duplicate of
        ``doc``'s (``qa.store.dedup``)."""
        return self._near_duplicates.find(doc, threshold, pending=pending)

    def _signatures(self) -> Iterator[tuple[str, bytes]]:
        """Every document's MinHash signature, this writer's unsaved ones included."""
        for row in self._rows(self._documents, both("part == 0", self._visible_documents()),
                              ["key", "doc_id", "minhash"], "key"):
            if row["doc_id"] not in self._deletes:
                yield row["doc_id"], bytes.fromhex(row["minhash"])
        for doc_id, added in self._adds.items():
            yield doc_id, added.signature

@functools.lru_cache(maxsize=None)  # one line per index and process, not one per open
def _warn_no_bm25(location: str) -> None:
    log.warning("The Milvus at %s has no BM25 function (it needs Milvus 2.5 or later): "
                "keyword search is off, retrieval is dense only.", location)


@functools.lru_cache(maxsize=None)
def _warn_no_keys(location: str) -> None:
    log.warning("The index at %s was made before documents had keys: an article indexed again "
                "with changed text is added beside its old version (a new index replaces it).",
                location)


