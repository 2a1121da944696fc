# Over 500 lines on purpose (issue 27): one class, FaissVectors, whose save, catch-up and tidy
# are one crash-safety protocol over the files that this docstring describes; split, it would
# read in two places. The filter masks (ChunkAttributes) live in attributes.py.
"""Chunk vectors for dense search: the narrow interface the store uses, and its FAISS version.

``VectorIndex`` is what ``qa.store.local.store.Store`` needs from a vector index over chunk ids: add
and remove vectors, search with an optional mask of the ids a filter keeps, count, save the changes
of a generation and catch up with one that another process saved. ``FaissVectors`` implements
it in an index directory, beside the store's database, saving only what changed::

    vectors-<g>.faiss   a base: the whole FAISS index as of generation <g>
    vectors-<g>.seg     a segment: only the vectors that the save of generation <g> added (their
                        ids and FAISS standalone codes, encoded against the base's training)

and, in the store's database, in the transaction that commits each generation:

    vector_files        the base in use (its generation and a token naming its training) and
                        the segments saved after it
    vector_removals     the chunk ids removed since the base, with the generation removing each

A save writes one segment holding the vectors it added and records the ids it removed, so
adding 1,000 articles to a million-chunk index writes those articles' codes and no more. When
the changes since the base pass ``COMPACT_SHARE`` of the index, the save writes a new base
instead (compaction): bases grow geometrically, so a bulk import writes O(N) bytes in all,
where rewriting the whole index on every save wrote O(N^2). A process that holds generation N
reads only the segments and removals after N; one whose base was replaced loads the new base.

Crash safety: files are written (temp file, fsync, rename) before the commit that lists them,
so a committed generation always has its files, and a killed writer leaves only files that no
committed generation lists, which the next tidy removes. Chunk ids are never reused, so
segments and removals apply in any order. A missing base is rebuilt from the float vectors in
the database (``StoredVectors``), which are read for nothing else.

Index kinds (``index_type``, a FAISS factory string):

- ``IVF1,Flat``: one inverted list of float vectors, searched exhaustively (exact), below
  ``APPROXIMATE_FROM`` vectors; needs no training.
- ``IVF{nlist},SQfp16``: ``nlist`` about ``4 * sqrt(n)`` lists of half-precision vectors (768
  bytes a vector: 0.77 GB at 1M x 384), trained on a sample of the stored vectors, retrained
  when the collection has grown fourfold. Unlike HNSW, IVF removes ids in place.

A filter is a boolean mask over chunk ids (``qa.store.local.attributes`` makes one from a
``Filter`` without a Python object per chunk), handed to FAISS as an ``IDSelectorBitmap``. IVF
probes ``NPROBE / sqrt(share)`` lists for a mask keeping ``share`` of the index: the k nearest
allowed vectors lie further out than the k nearest of all, but a probe reaches far more than k
vectors. At 1M chunks, a date filter keeping 9%: recall@10 among the allowed vectors 0.952 / 0.978 /
0.984 / 0.992 probing 128 / 256 / 512 / 1024 lists, in 2.4 / 5.1 / 9.9 / 19.4 ms (questions
about other articles; 0.985 and up for headlines of indexed ones); the rule probes 425. A mask
keeping under ``NPROBE**2 / nlist**2`` of the index, or fewer vectors than asked for, probes
every list: every allowed vector is scored. One keeping so few that decoding each (through the
index's direct map) costs less than that scan (``RECONSTRUCT_COST``) is searched exactly over
those vectors alone.
"""
from __future__ import annotations

import contextlib
import math
import re
import secrets
import sqlite3
import struct
from pathlib import Path
from typing import Iterator, Protocol

import faiss
import numpy as np

from qa.errors import StoreError
from qa.store.local.attributes import grown
from qa.store.manifest import atomic_file

EXACT_SPEC = "IVF1,Flat"
# When to switch from exact to approximate search. Exact search reads every float vector:
# ``benchmarks/store_scale.py`` (one query at a time, a 2-core machine under a load of 10) took
# 5.7 ms at 20,000 vectors and 13 ms at 50,000, and grows linearly (0.5 to 2 s at 1M). IVF
# training at 20,000 takes seconds.
APPROXIMATE_FROM = 20_000
# Lists probed without a filter. ``benchmarks/scale.py``, recall@10 against exact search of
# questions about other articles (of headlines of indexed ones) at nprobe 64 / 128 / 256:
# 25,000 chunks (IVF511) 0.938 / 0.973 / 0.997 (0.964 / 0.988 / 0.998); 100,000 chunks (IVF1022)
# 0.935 / 0.973 / 0.989 (0.965 / 0.981 / 0.998), all under 3 ms a query; 1,000,000 chunks
# (IVF2049) 0.929 / 0.958 / 0.976 (0.960 / 0.985 / 0.995) in 1.8 / 3.4 / 9.7 ms (p50).
NPROBE = 128
# Decoding one vector through the direct map costs about as much as a masked scan of this many
# codes (at 1M: 3.5 to 7.5 us against 7 to 16 ns a code), so a mask keeping fewer vectors than
# a search would scan codes / RECONSTRUCT_COST is searched exactly over them instead (at 1M, up
# to about 2,000: 3.5 ms for 1,000 where scanning every list took 7.4).
RECONSTRUCT_COST = 500
# Codes of the approximate index. On 1M MiniLM-like vectors (real embeddings and perturbed
# copies, as ``benchmarks/scale.py`` makes them; one query at a time) recall@10 against exact
# search at nprobe 16/32/64/128 was 0.950/0.957/0.958/0.971 with SQ8 (IVF2000) and 0.967/0.980/
# 0.990/0.995 with SQfp16 (IVF2500): 8-bit codes tie the close neighbours that news holds in
# numbers. fp16 also keeps the cosine scores that the answer decision weighs to about 1e-3.
CODEC = "SQfp16"
TRAIN_PER_LIST = 40  # training vectors per inverted list (FAISS warns below 39)
RETRAIN_GROWTH = 4  # retrain once the collection has grown this many times since training
# Compact when the vectors added and removed since the base pass this share of the index:
# bulk indexing then writes about (1 + 1 / COMPACT_SHARE) times the final index size in all.
COMPACT_SHARE = 0.25
REBUILD_BATCH = 20_000  # stored vectors read at a time when rebuilding

BASE = re.compile(r"vectors-(\d+)\.faiss")
SEGMENT = re.compile(r"vectors-(\d+)\.seg")
_TEMP = re.compile(r"\.vectors-\d+\.(faiss|seg)\.tmp")
_SEGMENT_MAGIC = b"NQVSEG01"
_SEGMENT_HEADER = struct.Struct("<8sqqq")  # magic, training token, vectors, bytes per code

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS vector_files (generation INTEGER PRIMARY KEY,"
    " kind TEXT NOT NULL CHECK (kind IN ('base', 'segment')), vectors INTEGER NOT NULL,"
    " token INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vector_removals (chunk_id INTEGER PRIMARY KEY,"
    " generation INTEGER NOT NULL)",
)


class StoredVectors(Protocol):
    """The float vectors of record (the store's database), read only to rebuild an index."""

    def count(self) -> int:
        """How many vectors there are."""

    def batches(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (ids, vectors) in batches of up to ``size``, in id order."""


class VectorIndex(Protocol):
    """A vector index over chunk ids, saved with the store's generations."""

    @property
    def index_type(self) -> str: ...
    def __len__(self) -> int: ...
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> None: ...
    def search(self, vector: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``k`` ids nearest to ``vector`` (inner product), best first, among those
        ``allowed`` marks True (a boolean mask indexed by id) if given."""
    def similarities(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The inner product of ``vector`` with each of the vectors of ``ids``, in that order."""
    def catch_up(self, db: sqlite3.Connection, generation: int) -> None:
        """Hold the committed ``generation`` (read inside the caller's read transaction)."""
    def save(self, db: sqlite3.Connection, generation: int) -> None:
        """Write the changes as ``generation``, inside the caller's write transaction, which
        the caller then commits."""
    def forget(self) -> None:
        """Drop what changed since the committed generation was held: the next ``catch_up``
        reads that generation afresh."""
    def untidy(self) -> bool: ...
    def tidy(self, db: sqlite3.Connection) -> None: ...


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` vectors: ~4*sqrt(n) (FAISS's guideline), with enough vectors
    to train each."""
    return max(1, min(round(4 * math.sqrt(n)), n // TRAIN_PER_LIST))


def ivf_spec(n: int) -> str:
    """The approximate index for ``n`` vectors."""
    return f"IVF{nlist_for(n)},{CODEC}"


def index_spec(n: int) -> str:
    """Exact search while it is fast enough, IVF beyond."""
    return EXACT_SPEC if n < APPROXIMATE_FROM else ivf_spec(n)


def _exact_index(dimension: int) -> faiss.IndexIVF:
    """``IVF1,Flat`` with its one centroid at the origin: every vector in one list, no training."""
    index = faiss.index_factory(dimension, EXACT_SPEC, faiss.METRIC_INNER_PRODUCT)
    index.quantizer.add(np.zeros((1, dimension), dtype=np.float32))
    index.is_trained = True
    return index


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run FAISS on one OpenMP thread for one query or one article's vectors: it gains nothing
    from more there, and on a busy machine each parallel region waits for a descheduled thread
    (a 20,000-vector search took 48 ms with 2 threads, 6 ms with 1, under a load of 13).
    Training and rebuilds keep every thread. The setting is the calling thread's own."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def _tables_exist(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                      "AND name = 'vector_files'").fetchone() is not None


def _base_row(db: sqlite3.Connection) -> tuple[int, int] | None:
    """(generation, token) of the committed base; None in a database that records none yet."""
    if not _tables_exist(db):
        return None
    row = db.execute("SELECT generation, token FROM vector_files WHERE kind = 'base'").fetchone()
    return None if row is None else (row[0], row[1])


def _file_generation(name: str) -> int | None:
    """The generation a vector file (or its temp file) belongs to; None for other files."""
    match = BASE.fullmatch(name) or SEGMENT.fullmatch(name) or _TEMP.fullmatch(name)
    return int(re.findall(r"\d+", name)[0]) if match else None


class FaissVectors:
    """The FAISS vector index of one index directory, saved incrementally (see the module)."""

    def __init__(self, directory: Path, dimension: int, stored: StoredVectors) -> None:
        self.directory = directory
        self.dimension = dimension
        self._stored = stored
        self._index: faiss.IndexIVF
        self._token: int  # names the training that encoded the vectors
        self._live: np.ndarray  # by id: in the index now
        self._set_index(_exact_index(dimension), secrets.randbits(62))
        self.generation = -1  # the committed generation held; -1 before the first catch_up
        self._base: tuple[int, int] | None = None  # the base row the state was loaded from
        self._files: set[str] = set()  # the files the held generation is read from
        self._kept: set[str] = set()  # the previous generation's, which readers may still read
        self._added: list[tuple[np.ndarray, np.ndarray]] = []  # (ids, codes) since the save
        self._removed: list[np.ndarray] = []
        self._rebuilt = False  # rebuilt from the database: the next save or tidy writes a base

    # ----------------------------------------------------------------- reading

    @property
    def index_type(self) -> str:
        """The FAISS factory string of the index in use."""
        codec = "Flat" if isinstance(self._index, faiss.IndexIVFFlat) else CODEC
        return f"IVF{self._index.nlist},{codec}"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def search(self, vector: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``k`` ids nearest to ``vector``, best first, among those ``allowed`` marks."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        total, selector = len(self), None
        kept = total
        if allowed is not None:
            size = min(len(allowed), len(self._live))
            mask = allowed[:size] & self._live[:size]
            kept = int(np.count_nonzero(mask))
            selector = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
        if min(k, kept) <= 0:
            return []
        # more lists the fewer it keeps (see the module); every list when all it keeps are
        # asked for
        nlist = self._index.nlist
        nprobe = nlist if k >= kept else min(nlist, math.ceil(NPROBE * math.sqrt(total / kept)))
        if allowed is not None and nlist > 1 and kept * RECONSTRUCT_COST <= nprobe * total / nlist:
            return self._search_among(query[0], k, np.flatnonzero(mask))
        params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        with _one_thread():
            scores, ids = self._index.search(query, min(k, kept), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    def _search_among(self, query: np.ndarray, k: int,
                      ids: np.ndarray) -> list[tuple[int, float]]:
        """Exact search over the few vectors of ``ids``, decoded from their codes (as IVF scores
        them), without scanning the lists that hold them."""
        scores = self.similarities(query, ids)
        best = np.argsort(-scores, kind="stable")[:k]
        return [(int(ids[i]), float(scores[i])) for i in best]

    def similarities(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The inner product of ``vector`` with each of the vectors of ``ids``, decoded from
        their codes as IVF scores them."""
        with _one_thread():
            rows = self._index.reconstruct_batch(np.asarray(ids, dtype=np.int64))
        return rows @ np.asarray(vector, dtype=np.float32).reshape(-1)

    def catch_up(self, db: sqlite3.Connection, generation: int) -> None:
        """Hold committed ``generation``: apply only the newer segments and removals when the
        base is the one held, else load the base, else rebuild from the stored vectors."""
        base = _base_row(db)
        if generation == self.generation and base == self._base:
            return
        self._added, self._removed = [], []
        try:
            if self.generation >= 0 and base is not None and base == self._base:
                self._apply(db, self.generation, generation)
            else:
                self._load(db, base, generation)
        except FileNotFoundError:  # a crash before a base was written, or a reader so slow
            self._rebuild()  # that a writer has tidied its files away
            self._base, self._files = None, set()
            self._rebuilt = base is not None or generation > 0  # an empty index needs no file
        self.generation = generation

    def _load(self, db: sqlite3.Connection, base: tuple[int, int] | None,
              generation: int) -> None:
        """The base of ``generation`` and its segments (``FileNotFoundError`` if one is
        missing, or if the base is of an older kind, in an index made before segments)."""
        base_generation = generation if base is None else base[0]
        path = self.directory / f"vectors-{base_generation}.faiss"
        self._set_index(self._read_base(path, upgrade=base is None),
                        secrets.randbits(62) if base is None else base[1])
        self._base, self._files, self._rebuilt = base, {path.name}, False
        if base is not None:
            self._apply(db, base_generation, generation)
        expected = self._stored.count()
        if len(self) != expected:
            raise StoreError(f"The vector files of {self.directory} hold {len(self)} vectors "
                             f"where the database has {expected}; delete {path.name} and reopen "
                             "the index to rebuild it.")

    def _read_base(self, path: Path, upgrade: bool) -> faiss.IndexIVF:
        """The index in ``path``; ``FileNotFoundError`` when it is missing, or when ``upgrade``
        allows an index of an older kind (an ``IDMap2,Flat``) to be rebuilt."""
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as error:
            if not path.exists():
                raise FileNotFoundError(path) from None
            raise StoreError(f"The vector file {path} is corrupt; delete it and reopen the "
                             "index to rebuild it.") from error
        if isinstance(index, faiss.IndexIVF) and index.d == self.dimension:
            return index
        if upgrade:
            raise FileNotFoundError(path)
        raise StoreError(f"The vector file {path} is not this index's kind; delete it and "
                         "reopen the index to rebuild it.")

    def _apply(self, db: sqlite3.Connection, after: int, until: int) -> None:
        """Add the segments and apply the removals of the generations in (after, until]."""
        segments = db.execute(
            "SELECT generation, vectors FROM vector_files WHERE kind = 'segment' "
            "AND generation > ? AND generation <= ? ORDER BY generation", (after, until))
        for generation, count in segments.fetchall():
            name = f"vectors-{generation}.seg"
            ids, codes = self._read_segment(self.directory / name, count)
            self._index.add_sa_codes(codes, ids)
            self._mark(ids, True)
            self._files.add(name)
        removed = np.array(db.execute(
            "SELECT chunk_id FROM vector_removals WHERE generation > ? AND generation <= ?",
            (after, until)).fetchall(), dtype=np.int64).reshape(-1)
        if len(removed) and self._remove(removed) != len(removed):
            raise StoreError(f"The vector files of {self.directory} lack vectors that the "
                             "database removes; delete them and reopen the index to rebuild.")
        self._mark(removed, False)

    def _read_segment(self, path: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
        code_size = self._index.sa_code_size()
        data = path.read_bytes()
        expected = _SEGMENT_HEADER.size + count * (8 + code_size)
        header = _SEGMENT_HEADER.unpack_from(data) if len(data) == expected else None
        if header != (_SEGMENT_MAGIC, self._token, count, code_size):
            raise StoreError(f"The vector file {path} is corrupt or was encoded for another "
                             "base; delete the index's vectors-*.faiss files and reopen it to "
                             "rebuild them.")
        ids = np.frombuffer(data, dtype=np.int64, count=count, offset=_SEGMENT_HEADER.size)
        codes = np.frombuffer(data, dtype=np.uint8, offset=_SEGMENT_HEADER.size + 8 * count)
        return ids, codes.reshape(count, code_size)

    # ----------------------------------------------------------------- changes

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Index ``vectors`` (float32 rows) under the int64 ``ids``, which are new."""
        if not len(ids):
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        with _one_thread():
            codes = self._index.sa_encode(np.ascontiguousarray(vectors, dtype=np.float32))
            self._index.add_sa_codes(codes, ids)
        self._mark(ids, True)
        self._added.append((ids, codes))

    def remove(self, ids: np.ndarray) -> None:
        """Remove the vectors of ``ids`` (absent ones are ignored)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids):
            self._remove(ids)
            self._mark(ids, False)
            self._removed.append(ids)

    def _remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` through the direct map (no list scan); how many were there."""
        with _one_thread():
            return self._index.remove_ids(faiss.IDSelectorArray(ids))

    def save(self, db: sqlite3.Connection, generation: int) -> None:
        """Write the changes since the last save as ``generation``: a segment of the vectors
        added and the ids removed, or a new base when the changes since the base have passed
        ``COMPACT_SHARE`` of the index or its training no longer fits its size. Inside the
        caller's write transaction; the files are on disk before the caller commits."""
        added = sum(len(ids) for ids, _ in self._added)
        removed = np.concatenate(self._removed) if self._removed else np.zeros(0, np.int64)
        if self._needs_training():
            self._rebuild()
            self._rebuilt = True
        base = _base_row(db)
        since_base = 0 if base is None else db.execute(
            "SELECT (SELECT COALESCE(SUM(vectors), 0) FROM vector_files WHERE kind = 'segment')"
            " + (SELECT COUNT(*) FROM vector_removals)").fetchone()[0]
        previous = set(self._files)
        if not added and not len(removed) and not self._rebuilt and base is not None:
            self._kept, self.generation = previous, generation  # nothing to write
            return
        if (self._rebuilt or base is None
                or since_base + added + len(removed) > COMPACT_SHARE * len(self)):
            self._write_base(db, generation)
        else:
            if added:
                self._write_segment(db, generation)
            db.executemany("INSERT INTO vector_removals (chunk_id, generation) VALUES (?, ?)",
                           ((int(i), generation) for i in removed))
        self._added, self._removed = [], []
        self._kept, self.generation = previous, generation

    def forget(self) -> None:
        """Drop the changes since the held generation, and whatever a save that failed part of
        the way did to what is held: the next ``catch_up`` loads the committed generation."""
        self.generation, self._base, self._files = -1, None, set()
        self._added, self._removed = [], []

    def _write_base(self, db: sqlite3.Connection, generation: int) -> None:
        name = self._write_base_file(generation)
        self._record_base(db, generation)
        self._base, self._files, self._rebuilt = (generation, self._token), {name}, False

    def _write_base_file(self, generation: int) -> str:
        """Write the index held as ``generation``'s base file; its name."""
        name = f"vectors-{generation}.faiss"
        with atomic_file(self.directory / name) as handle:  # streamed: no second copy in memory
            faiss.write_index(self._index, faiss.PyCallbackIOWriter(handle.write))
        return name

    def _record_base(self, db: sqlite3.Connection, generation: int) -> None:
        """In the caller's write transaction: ``generation``'s base replaces every vector file
        and removal recorded before it."""
        db.execute("DELETE FROM vector_files")
        db.execute("DELETE FROM vector_removals")
        db.execute("INSERT INTO vector_files (generation, kind, vectors, token) "
                   "VALUES (?, 'base', ?, ?)", (generation, len(self), self._token))

    def _write_segment(self, db: sqlite3.Connection, generation: int) -> None:
        ids = np.concatenate([ids for ids, _ in self._added])
        codes = np.concatenate([codes for _, codes in self._added])
        name = f"vectors-{generation}.seg"
        header = _SEGMENT_HEADER.pack(_SEGMENT_MAGIC, self._token, len(ids), codes.shape[1])
        with atomic_file(self.directory / name) as handle:
            for part in (header, ids, codes):
                handle.write(memoryview(part))  # no concatenated copy
        db.execute("INSERT INTO vector_files (generation, kind, vectors, token) "
                   "VALUES (?, 'segment', ?, ?)", (generation, len(ids), self._token))
        self._files.add(name)

    def _needs_training(self) -> bool:
        """Whether the collection has outgrown the index kind: past ``APPROXIMATE_FROM`` while
        exact, or ``RETRAIN_GROWTH`` times the size the IVF lists were trained for."""
        wanted = index_spec(len(self))
        if self._index.nlist == 1:
            return wanted != EXACT_SPEC
        return nlist_for(len(self)) >= self._index.nlist * math.sqrt(RETRAIN_GROWTH)

    def _rebuild(self) -> None:
        """The index rebuilt from the stored vectors: trained on a sample when approximate."""
        count = self._stored.count()
        spec = index_spec(count)
        if spec == EXACT_SPEC:
            index = _exact_index(self.dimension)
        else:
            index = faiss.index_factory(self.dimension, spec, faiss.METRIC_INNER_PRODUCT)
            index.train(self._sample(count, TRAIN_PER_LIST * nlist_for(count)))
        for ids, vectors in self._stored.batches(REBUILD_BATCH):
            index.add_with_ids(vectors, ids)
        self._set_index(index, secrets.randbits(62))
        self._added, self._removed = [], []

    def _sample(self, count: int, size: int) -> np.ndarray:
        """About ``size`` stored vectors spread evenly over the collection, to train on."""
        stride, parts, seen = max(1, count // size), [], 0
        for _, vectors in self._stored.batches(REBUILD_BATCH):
            parts.append(vectors[(-seen) % stride::stride])
            seen += len(vectors)
        return np.ascontiguousarray(np.concatenate(parts))

    def _set_index(self, index: faiss.IndexIVF, token: int) -> None:
        """Hold ``index``, trained as ``token`` names, and mark the ids it holds as live. Its
        direct map (id to list and offset; a hash table, which allows removals) is what removes
        ids and decodes single vectors; a base file holds it, an older one gets it here."""
        if index.direct_map.type != faiss.DirectMap.Hashtable:
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
        lists = index.invlists
        ids = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
               for i in range(index.nlist) if lists.list_size(i)]
        self._index, self._token = index, token
        self._live = np.zeros(0, dtype=bool)
        self._mark(np.concatenate(ids) if ids else np.zeros(0, np.int64), True)

    def _mark(self, ids: np.ndarray, live: bool) -> None:
        if not len(ids):
            return
        self._live = grown(self._live, int(ids.max()) + 1)
        self._live[ids] = live

    # ----------------------------------------------------------------- files

    def untidy(self) -> bool:
        """Whether the held generation has no base file (it was rebuilt), or files that no
        committed generation lists lie about (temp files, files of generations never
        committed): a crash's leftovers, which only then a reader takes the lock to tidy."""
        return self._rebuilt or any(
            name.endswith(".tmp") or generation > self.generation
            for name, generation in self._vector_files())

    def tidy(self, db: sqlite3.Connection) -> None:
        """Give a rebuilt generation its base, and remove the files that neither the held
        generation nor the previous one (which readers may still be loading) reads. With the
        writer lock held, no transaction open, and ``catch_up`` or ``save`` done to the
        committed generation."""
        if self._rebuilt:
            name = self._write_base_file(self.generation)
            if _tables_exist(db):  # an index made before segments finds its base by name
                with db:
                    db.execute("BEGIN IMMEDIATE")
                    self._record_base(db, self.generation)
                self._base = (self.generation, self._token)
            self._files, self._rebuilt = {name}, False
        keep = self._files | self._kept
        for name, _ in self._vector_files():
            if name not in keep:
                (self.directory / name).unlink(missing_ok=True)
        self._kept = set()

    def _vector_files(self) -> Iterator[tuple[str, int]]:
        for path in self.directory.iterdir():
            generation = _file_generation(path.name)
            if generation is not None:
                yield path.name, generation
