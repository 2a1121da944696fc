"""``NewsQA``: the one facade that wires ingest → chunk → embed → store → retrieve → read → answer.

The CLI, the Gradio app and the evaluation call only this class.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from tqdm.auto import tqdm

from qa.answer import compose_answer
from qa.chunk import Chunker
from qa.embed import Embedder
from qa.errors import NewsQAError, QuestionError
from qa.ingest import Fetcher, load
from qa.read import Reader
from qa.retrieve import Retriever, contextualize
from qa.store import DocumentInfo, Store
from qa.types import Answer, Chunk, Document

MAX_QUESTION_CHARS = 500  # a question, not a document: longer input is almost surely a paste error
ADD_BATCH_DOCS = 256  # documents embedded and committed together when indexing a large corpus


@dataclass
class AddReport:
    """What ``NewsQA.add`` did with each document it was given."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # already indexed (same content hash)
    near_duplicates: list[tuple[str, str]] = field(default_factory=list)  # (new title, kept id)
    chunks: int = 0


def validate_question(question: str) -> str:
    """Return the stripped question, or raise ``QuestionError`` for empty or over-long input."""
    text = question.strip() if isinstance(question, str) else ""
    if not text:
        raise QuestionError("The question is empty.")
    if len(text) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"The question is {len(text)} characters long; the limit is {MAX_QUESTION_CHARS}.")
    return text


class NewsQA:
    """Question answering over an on-disk index of news articles.

    >>> qa = NewsQA("index/")
    >>> qa.add_paths(["seeds/"])
    >>> qa.ask("How many POWs were on the first list?").text
    """

    def __init__(self, index_dir: str | Path = "index", *, embedder: Embedder | str | None = None,
                 reader: Reader | str | Path | None = None, chunker: Chunker | None = None,
                 fetcher: Fetcher | None = None, create: bool = True,
                 wait_for_writer: bool = False) -> None:
        self.index_dir = Path(index_dir)
        self.embedder = embedder if isinstance(embedder, Embedder) else Embedder(embedder)
        self.reader = reader if isinstance(reader, Reader) else Reader(reader)
        self.chunker = chunker or Chunker()
        self.fetcher = fetcher or Fetcher()
        self.create = create
        self.wait_for_writer = wait_for_writer  # block, rather than fail, while another writes
        self._store: Store | None = None
        self._retriever: Retriever | None = None
        self._lock = threading.RLock()  # the app serves requests from several threads

    @property
    def store(self) -> Store:
        """The index, opened on first use (reading a single document needs none)."""
        with self._lock:
            if self._store is None:
                self.embedder.warm_up()
                self._store = Store.open(self.index_dir, embedder_name=self.embedder.name,
                                         dimension=self.embedder.dimension, create=self.create,
                                         wait_for_writer=self.wait_for_writer)
                self._retriever = Retriever(self._store, self.embedder)
            return self._store

    @property
    def retriever(self) -> Retriever:
        self.store  # noqa: B018 - opens the index and builds the retriever
        assert self._retriever is not None
        return self._retriever

    def warm_up(self) -> None:
        """Load the models and open the index now rather than on the first question."""
        self.store  # noqa: B018
        self.reader.warm_up()

    # ---- sources -------------------------------------------------------------------------
    def add(self, documents: Iterable[Document], *, progress: bool = False) -> AddReport:
        """Index documents; exact and near-duplicate copies are reported, not indexed twice.

        The index's writer lock is held for the whole call (another writer gets a clear error,
        or waits with ``wait_for_writer``), but questions are blocked only while a batch is
        committed: chunking and embedding, the slow part, run outside the facade's lock.
        """
        report = AddReport()
        docs = list(documents)
        store = self.store
        with contextlib.ExitStack() as held, tqdm(total=len(docs), unit="doc",
                                                  disable=not progress, desc="indexing") as bar:
            with self._lock:  # catching up with other writers changes what questions read
                held.enter_context(store.writing())
            for i in range(0, len(docs), ADD_BATCH_DOCS):
                batch = docs[i:i + ADD_BATCH_DOCS]
                with self._lock:
                    fresh = self._new_documents(batch, report)
                chunks = [self.chunker.split(doc) for doc in fresh]
                vectors = self.embedder.encode([c.text for cs in chunks for c in cs])
                row = 0
                with self._lock:
                    for doc, doc_chunks in zip(fresh, chunks):
                        store.add(doc, doc_chunks, vectors[row:row + len(doc_chunks)])
                        row += len(doc_chunks)
                        report.added.append(doc.id)
                        report.chunks += len(doc_chunks)
                    store.save()
                bar.update(len(batch))
        return report

    def _new_documents(self, batch: Sequence[Document], report: AddReport) -> list[Document]:
        """The documents of ``batch`` that are neither indexed nor near-duplicates (reported)."""
        fresh: list[Document] = []
        for doc in batch:
            if self.store.has(doc.id) or any(d.id == doc.id for d in fresh):
                report.unchanged.append(doc.id)
                continue
            original = self.store.find_near_duplicate(doc, pending=fresh)
            if original is not None:
                report.near_duplicates.append((doc.title or doc.id, original))
                continue
            fresh.append(doc)
        return fresh

    def add_paths(self, targets: Sequence[str | Path], *, progress: bool = False) -> AddReport:
        """Load files, folders, feeds or URLs (see ``qa.ingest.load``) and index them."""
        return self.add(load(targets, fetcher=self.fetcher), progress=progress)

    def delete(self, doc_id: str) -> None:
        """Remove a document and its chunks; unknown ids are an error, not a silent no-op."""
        with self._lock:
            if not self.store.delete(doc_id):
                self.store.save()  # releases the writer lock the attempt took
                raise NewsQAError(f"No document with id {doc_id!r} in {self.index_dir}.")
            self.store.save()

    def documents(self) -> list[DocumentInfo]:
        with self._lock, self.store.snapshot():
            return self.store.documents()

    def get(self, doc_id: str) -> Document:
        with self._lock, self.store.snapshot():
            return self.store.get(doc_id)

    # ---- questions -----------------------------------------------------------------------
    def retrieve(self, question: str, top_k: int = 5, *, sources: list[str] | None = None,
                 date_from: str | None = None, date_to: str | None = None,
                 history: Sequence[tuple[str, str]] = ()) -> list[tuple[Chunk, float]]:
        """Chunks for a question in rank order; ``history`` is the conversation so far."""
        query = contextualize(validate_question(question), history)
        with self._lock, self.store.snapshot():
            return self.retriever.retrieve(query, top_k, sources=sources, date_from=date_from,
                                           date_to=date_to)

    def ask(self, question: str, top_k: int = 5, *, threshold: float | None = None,
            sources: list[str] | None = None, date_from: str | None = None,
            date_to: str | None = None, history: Sequence[tuple[str, str]] = ()) -> Answer:
        """Answer from the indexed articles, citing them; ``Answer.text == ""`` if not found."""
        question = validate_question(question)
        with self._lock, self.store.snapshot():  # chunks and their documents from one generation
            hits = self.retrieve(question, top_k, sources=sources, date_from=date_from,
                                 date_to=date_to, history=history)
            chunks = [c for c, _ in hits]
            docs = {doc_id: self.store.get(doc_id) for doc_id in {c.doc_id for c in chunks}}
        spans = self.reader.read(question, chunks)
        return compose_answer(question, spans, docs, chunks, threshold=self._threshold(threshold))

    def read_document(self, question: str, document: Document, *,
                      threshold: float | None = None) -> Answer:
        """Answer from one given document only, without the index (reader-only evaluation)."""
        question = validate_question(question)
        chunks = self.chunker.split(document)
        spans = self.reader.read(question, chunks)
        return compose_answer(question, spans, {document.id: document}, chunks,
                              threshold=self._threshold(threshold))

    def _threshold(self, threshold: float | None) -> float:
        return self.reader.threshold if threshold is None else threshold

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
                self._retriever = None

    def __enter__(self) -> "NewsQA":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
