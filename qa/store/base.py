"""The storage seam: what the pipeline needs from an index, and what every backend shares.

Two backends implement ``DocumentStore``:

- ``qa.store.local.store.Store`` (a directory: SQLite for documents, chunks, the keyword index
  and feeds, FAISS for vectors). One machine; one writer and many reader processes.
- ``qa.store.milvus.store.MilvusStore`` (``milvus://host:19530`` for a Milvus server or cluster,
  ``milvus:///path/to/db.db`` for milvus-lite embedded in the process). Everything a query needs
  lives in Milvus, so several app processes on several machines can serve one index.

Both build on this module (the protocol, ``OneWriter``'s life cycle, the records they list)
and never on ``qa.store.open_store``, the factory that picks one for a location.
``tests/store/test_store_contract.py`` runs the same assertions on every backend.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, ContextManager, Iterable, Iterator, Protocol, Self, Sequence

import numpy as np

from qa.errors import StoreError, clip

if TYPE_CHECKING:
    from qa.types import Chunk, Document, Filter, FollowEntry, Followed, IndexConfig

MILVUS_SCHEME = "milvus://"
_PASSWORD = re.compile(r"(//[^/@:]*:)[^/@]*@")  # user:password@ in a URI
LOCK_GRACE_SECONDS = 0.5  # a writer waits this long before saying that another one writes


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
    external_id: str = ""  # the user's id for it (``Document.external_id``), "" if none


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


def utc_now() -> str:
    """Now, as the index records times: ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class DocumentStore(Protocol):
    """Documents, their chunks with vectors, a keyword index over the chunks, feeds and
    followed questions.

    Changes are buffered until ``save()``; readers wrap each query in ``snapshot()`` so that it
    sees one committed state. Chunk ids are integers assigned by the store.
    """

    def writing(self, wait: bool | None = None) -> ContextManager[None]: ...
    def snapshot(self) -> ContextManager[None]: ...
    def save(self) -> None: ...
    def close(self) -> None: ...

    def check_embedder(self, embedder_name: str, dimension: int) -> None: ...
    @property
    def config(self) -> IndexConfig:
        """The settings the index was created with (``qa.store.manifest``)."""
    @property
    def version(self) -> int: ...
    def __len__(self) -> int: ...

    def add(self, doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray) -> None: ...
    def delete(self, doc_id: str) -> bool: ...
    def has(self, doc_id: str) -> bool: ...
    def find_by_key(self, key: str) -> str | None:
        """The id of the document indexed under ``key`` (``Document.key``), None if none is; a
        key names at most one document, and ``add`` refuses a second."""
    def get(self, doc_id: str) -> Document: ...
    def documents(self) -> list[DocumentInfo]: ...
    def chunks_by_ids(self, ids: Sequence[int]) -> list[Chunk]: ...
    def published_by_chunk(self, ids: Sequence[int]) -> dict[int, str]: ...
    def find_near_duplicate(self, doc: Document, threshold: float = 0.8, *,
                            pending: Sequence[Document] = ()) -> str | None: ...

    def search(self, vector: np.ndarray, k: int,
               filter: Filter | None = None) -> list[tuple[int, float]]:
        """The ``k`` chunks nearest to ``vector`` (cosine similarity), best first."""
    def similarities(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """The cosine similarity of ``vector`` to each of the chunks ``ids``, as ``search``
        scores it: retrieval re-scores chunks that keyword search alone found."""
    def keyword_search(self, query: str, k: int,
                       filter: Filter | None = None) -> list[tuple[int, float]]:
        """The ``k`` chunks that best match ``query``'s words (BM25, higher is better), best
        first; chunks sharing no word with it are left out."""

    def feeds(self) -> list[Feed]: ...
    def feed_items(self, url: str) -> set[str]: ...
    def add_feed(self, url: str) -> bool: ...
    def remove_feed(self, url: str) -> bool: ...
    def record_poll(self, feed: Feed, seen: Iterable[str] = ()) -> bool: ...

    # followed questions (``qa.follow``), buffered until ``save()`` like every change
    def follows(self) -> list[Followed]:
        """The followed questions in the order added, each with its latest entry and count."""
    def follow_history(self, follow_id: str) -> list[FollowEntry]:
        """A followed question's entries, oldest first; [] for an unknown id."""
    def add_follow(self, follow: Followed) -> bool:
        """Follow a question under ``follow.id``; False when that id is taken."""
    def remove_follow(self, follow_id: str) -> bool:
        """Stop following it and forget its history; False when no question has that id."""
    def record_follow(self, follow: Followed, entry: FollowEntry | None = None, *,
                      replace_latest: bool = False) -> bool:
        """Store ``follow.checked`` and ``follow.error``, and ``entry`` as its newest entry
        (``replace_latest``: in place of the latest); False when it was unfollowed meanwhile."""


class WriterGuard(Protocol):
    """What keeps an index to one writer: ``qa.store.local``'s lock file, ``qa.store.milvus``'s
    lease."""

    def acquire(self, wait: bool) -> bool:
        """Take it (``wait``: block while another process holds it, else fail with a clear
        line); True when newly taken, so the store catches up first, False when held already."""
    def release(self) -> None: ...


class OneWriter:
    """The life cycle both backends share: a reader's ``snapshot()`` reads one committed
    generation throughout, the first change of a transaction takes the writer guard and catches
    up, and ``close()`` drops what was not saved. A backend gives ``_guard``, ``_catch_up`` and
    what its own transactions need at these points (the hooks, which do nothing by default)."""

    wait_for_writer: bool
    _guard: WriterGuard
    _changing: bool  # a transaction with changes is open: the guard is held
    _snapshots: int  # the depth of nested snapshots

    def _catch_up(self) -> None:
        """Read the newest committed generation (as the writer: repair a half-saved one)."""
        raise NotImplementedError

    def _start_reading(self) -> None:
        """Before a snapshot catches up: pin what it reads."""

    def _stop_reading(self) -> None:
        """After the snapshot: unpin it."""

    def _start_changing(self) -> None:
        """After the first change took the guard and caught up: open the transaction."""

    def _drop_changes(self) -> None:
        """Forget what was changed and not saved."""

    def _disconnect(self) -> None:
        """Close the connection to the index."""

    def _started_writing(self) -> None:
        """After ``writing()`` took the guard and caught up."""

    def _stopped_writing(self) -> None:
        """After ``writing()`` gave the guard back (a holder may still hold it)."""

    @contextlib.contextmanager
    def writing(self, wait: bool | None = None) -> Iterator[None]:
        """Hold the writer guard across several saves (a bulk import), caught up on entry."""
        if self._guard.acquire(self.wait_for_writer if wait is None else wait):
            self._catch_up()
            self._started_writing()
        try:
            yield
        finally:
            self._guard.release()
            self._stopped_writing()

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
        self._start_reading()
        self._snapshots = 1
        try:
            self._catch_up()
            yield
        finally:
            self._snapshots = 0
            self._stop_reading()

    def close(self) -> None:
        """Drop unsaved changes, give back the writer guard and close the connection."""
        self._drop_changes()
        if self._changing:
            self._end_change()
        self._disconnect()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _begin_change(self) -> None:
        """Before the first change of a transaction: take the guard and catch up (the guard
        ensures that nothing moves after this)."""
        if self._changing:
            return
        if self._guard.acquire(self.wait_for_writer):
            self._catch_up()
        self._changing = True
        self._start_changing()

    def _end_change(self) -> None:
        """The transaction is over (saved or dropped): give back the guard."""
        self._changing = False
        self._guard.release()


def redacted(location: str | Path) -> str:
    """``location`` as messages and logs show it: a password in a URI replaced by ``***``."""
    return _PASSWORD.sub(r"\1***@", str(location))


def checked_addition(doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray,
                     dimension: int) -> np.ndarray:
    """``vectors`` as float32, after the checks every backend makes before adding a document:
    each chunk is a window of the document (offsets are what citations rely on), and there is
    one L2-normalised vector per chunk (inner product is used as cosine similarity)."""
    for chunk in chunks:
        if (chunk.doc_id != doc.id or chunk.start >= chunk.end
                or doc.text[chunk.start:chunk.end] != chunk.text):
            raise StoreError(f"Chunk {chunk.start}:{chunk.end} of {chunk.doc_id} is not a "
                             f"window of document {doc.id}.")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape != (len(chunks), dimension):
        raise StoreError(f"Expected {len(chunks)} vectors of dimension {dimension}, "
                         f"got shape {vectors.shape}.")
    if len(chunks) and not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3):
        raise StoreError("Vectors must be L2-normalised (inner product is used as cosine "
                         "similarity).")
    return vectors


def refuse_taken(store: DocumentStore, doc: Document) -> None:
    """Refuse ``doc`` when its id, or the identity key that names its article, is already in
    ``store``: a new version comes in only after the old one is deleted, in the same save
    (``NewsQA.add``), so an article never has two versions."""
    if store.has(doc.id):
        raise StoreError(f"Document {doc.id} is already in the index.")
    holder = store.find_by_key(doc.key)
    if holder is not None:
        raise StoreError(f"{clip(doc.key)} already names document {holder} in the index.")
