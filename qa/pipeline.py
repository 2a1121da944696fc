"""``NewsQA``: the one facade that wires ingest → chunk → embed → store → retrieve → read →
answer.

The CLI and the Gradio app call only this class (and the types it returns). The evaluation asks
through it too, with a reader and an embedder it builds itself (``qa.evaluation.evaluate``).
Its input checks are ``qa.validate``'s.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Callable, Iterable, Sequence

from tqdm.auto import tqdm

from qa.answer import compose_answer
from qa.cache import CACHE_ANSWERS, AnswerCache
from qa.chunk import Chunker
from qa.decide import Decision, ReaderScore, load_decision
from qa.embed import Embedder
from qa.errors import IngestError, NewsQAError, StoreError, clip
from qa.follow import Following
from qa.ingest.feeds import parse_interval, poll
from qa.ingest.fetch import Fetcher
from qa.ingest.files import load, load_uploads, load_urls
from qa.reader.model import Reader
from qa.recency import asks_for_current, today
from qa.retrieve import ReciprocalRankFusion, Retriever, contextualize
from qa.store import open_store
from qa.store.base import MILVUS_SCHEME, DocumentInfo, DocumentStore, Feed, redacted, utc_now
from qa.store.manifest import check_same_settings
from qa.types import (AddReport, Answer, Document, FeedReport, Filter, FollowChange, Hit,
                      IndexConfig, IndexingStopped, document_key, whole_number)
from qa.validate import (validate_as_of, validate_documents, validate_feed_url, validate_filter,
                         validate_history, validate_question, validate_threshold, validate_top_k)

log = logging.getLogger(__name__)

ADD_BATCH_DOCS = 256  # documents embedded and committed together when indexing a large corpus
Progress = bool | Callable[[int, int], object]  # how ``NewsQA.add`` shows its progress
OnChange = Callable[[FollowChange], object]  # told each change of a followed question's answer


class NewsQA(Following):
    """Question answering over an on-disk index of news articles.

    >>> qa = NewsQA("index/")
    >>> qa.add_paths(["seeds/"])
    >>> qa.ask("How many POWs were on the first list?").text
    """

    def __init__(self, index_dir: str | Path = "index", *, config: IndexConfig | None = None,
                 embedder: Embedder | str | None = None,
                 reader: Reader | str | Path | None = None, chunker: Chunker | None = None,
                 fetcher: Fetcher | None = None, create: bool = True,
                 wait_for_writer: bool = False, backend: str | None = None,
                 remember_answers: int = CACHE_ANSWERS) -> None:
        """``config`` holds the settings (``IndexConfig``); ``reader`` (an id or path),
        ``backend`` and ``chunker`` given here take precedence over its values, and its
        ``store`` is set from ``index_dir``.

        Chunk settings asked for (by ``config`` or ``chunker``) must be those the index was
        built with, or opening it is a ``StoreError`` naming both; without either, this takes
        the index's own when it opens. ``backend`` runs the embedder and the reader that this
        builds (not those given as objects): "torch" or "onnx". ``remember_answers`` is how many
        answers ``ask`` keeps for the current index generation (``qa.cache``); 0 reads every
        question afresh, as a latency benchmark must (asking again still waits for a read of the
        same question that is under way)."""
        remember_answers = whole_number(remember_answers, "remember_answers", 0)
        # an index directory, or a ``milvus://`` URI (``qa.store.base``), which a Path would mangle
        milvus = str(index_dir).startswith(MILVUS_SCHEME)
        self.location = str(index_dir) if milvus else Path(index_dir)
        self.index_dir = Path(index_dir)
        asked = replace(config or IndexConfig(), store="milvus" if milvus else "faiss")
        if backend is not None:
            asked = replace(asked, backend=backend)
        if reader is not None:
            asked = replace(asked, reader=str(reader.model if isinstance(reader, Reader)
                                              else reader))
        if chunker is not None:
            asked = replace(asked, max_chars=chunker.max_chars,
                            overlap_sentences=chunker.overlap_sentences)
        self.config = asked
        self._chunking_asked = config is not None or chunker is not None
        self.embedder = (embedder if isinstance(embedder, Embedder)
                         else Embedder(embedder, backend=asked.backend))
        self.reader = (reader if isinstance(reader, Reader) else
                       Reader(asked.reader if reader is None else reader, backend=asked.backend))
        self.chunker = chunker or Chunker(asked.max_chars, asked.overlap_sentences)
        self.fetcher = fetcher or Fetcher()
        self.create = create
        self.wait_for_writer = wait_for_writer  # block, rather than fail, while another writes
        self._store: DocumentStore | None = None
        self._retriever: Retriever | None = None
        self._decision: Decision | None = None
        self._answers: AnswerCache[Answer] = AnswerCache(remember_answers)
        self._lock = threading.RLock()  # the app serves requests from several threads

    @property
    def store(self) -> DocumentStore:
        """The index, opened on first use (reading a single document needs none). Opening loads
        no model unless it creates the index: listing sources stays fast."""
        with self._lock:
            if self._store is None:
                store = open_store(self.location, embedder_name=self.embedder.name,
                                   dimension=lambda: self.embedder.dimension, create=self.create,
                                   wait_for_writer=self.wait_for_writer, config=self.config)
                try:
                    if self._chunking_asked:
                        check_same_settings(store.config, self.config)
                    else:  # chunk as the index was chunked, whatever this process's defaults
                        self.config = self.config.with_index_settings(store.config)
                        self.chunker = Chunker(self.config.max_chars,
                                               self.config.overlap_sentences)
                except BaseException:
                    store.close()
                    raise
                self._store = store
            return self._store

    @property
    def retriever(self) -> Retriever:
        """Search over the index, made when something is first embedded: the embedder loads
        then, and is checked against the one that built the index."""
        with self._lock:
            if self._retriever is None:
                self.store.check_embedder(self.embedder.name, self.embedder.dimension)
                self._retriever = Retriever(self.store, self.embedder,
                                            ReciprocalRankFusion(self.config.rrf_k),
                                            self.config.candidates)
            return self._retriever

    def warm_up(self) -> None:
        """Load the models and open the index now rather than on the first question."""
        self.retriever  # noqa: B018 - opens the index and loads the embedder
        self.reader.warm_up()

    # ---- sources -------------------------------------------------------------------------
    def add(self, documents: Iterable[Document], *, progress: Progress = False) -> AddReport:
        """Index documents; exact and near-duplicate copies are reported, not indexed twice.
        A document whose key (``Document.key``: its external id, URL or file) names an indexed
        one with other text replaces it, in the commit that adds it. One that cannot be indexed
        (``validate_documents``) refuses them all, before anything is written.

        The index's writer lock is held for the whole call (another writer gets a clear error,
        or waits with ``wait_for_writer``), but questions are blocked only while a batch is
        committed: chunking and embedding, the slow part, run outside the facade's lock.
        ``progress``: a tqdm bar on stderr, which the app's page follows (True), or a function
        told (documents through, documents given) as they are embedded, e.g. the CLI's log lines.
        Then the followed questions are asked again (``qa.follow``): ``changes``, also when a
        later batch stopped the call (``IndexingStopped``) after earlier ones committed.
        """
        try:
            report = self._add(documents, progress)
        except IndexingStopped as stopped:  # the batches before it changed the articles
            stopped.report.changes = self._reask()
            raise
        report.changes = self._reask() if report.added else []
        return report

    def _add(self, documents: Iterable[Document], progress: Progress) -> AddReport:
        """``add`` without asking the followed questions again."""
        docs = validate_documents(documents)
        report = AddReport()
        if not docs:  # nothing was read: leave the index (or its absence) untouched
            return report
        store = self.retriever.store  # the embedder checked against the index
        with contextlib.ExitStack() as held, tqdm(total=len(docs), unit="doc", desc="indexing",
                                                  disable=progress is not True) as bar:
            tell = progress if callable(progress) else lambda done, _: bar.update(done - bar.n)
            with self._lock:  # catching up with other writers changes what questions read
                held.enter_context(store.writing())
            saved = 0, 0, 0  # report.added, report.chunks, report.replaced as of the last save
            try:
                for i in range(0, len(docs), ADD_BATCH_DOCS):
                    batch = docs[i:i + ADD_BATCH_DOCS]
                    with self._lock:
                        fresh, replacing = self._new_documents(batch, report)
                    skipped = i + len(batch) - len(fresh)  # indexed already, near-duplicates
                    chunks = [self.chunker.split(doc) for doc in fresh]
                    texts = [c.text for cs in chunks for c in cs]
                    vectors = self.embedder.encode(texts, progress=lambda n: tell(  # docs' worth
                        skipped + len(fresh) * n // len(texts), len(docs)))
                    row = 0
                    with self._lock:
                        for doc, doc_chunks in zip(fresh, chunks):
                            if doc.id in replacing:  # the old version goes in the same commit
                                store.delete(replacing[doc.id])
                                report.replaced.append((replacing[doc.id], doc.id))
                            store.add(doc, doc_chunks, vectors[row:row + len(doc_chunks)])
                            row += len(doc_chunks)
                            report.added.append(doc.id)
                            report.chunks += len(doc_chunks)
                        store.save()
                    saved = len(report.added), report.chunks, len(report.replaced)
                    tell(i + len(batch), len(docs))
            except StoreError as error:  # the batches saved before stay: say what they added
                if not saved[0]:
                    raise
                del report.added[saved[0]:], report.replaced[saved[2]:]
                report.chunks = saved[1]
                raise IndexingStopped(f"{error} {saved[0]} document(s) of this run were "
                                      "committed before that.", report) from error
        return report

    def _new_documents(self, batch: Sequence[Document], report: AddReport
                       ) -> tuple[list[Document], dict[str, str]]:
        """The documents of ``batch`` neither indexed nor near-duplicates (reported), and by
        their ids the indexed versions they replace. Of two versions of one article the later is
        kept; neither is a near-duplicate of the other, nor of the version it replaces."""
        fresh: list[Document] = []
        replacing: dict[str, str] = {}
        for doc in batch:
            if self.store.has(doc.id) or any(d.id == doc.id for d in fresh):
                report.unchanged.append(doc.id)
                continue
            earlier = next((d for d in fresh if doc.key and d.key == doc.key), None)
            old = self.store.find_by_key(doc.key) if earlier is None else replacing.get(earlier.id)
            original = self.store.find_near_duplicate(doc, pending=fresh)
            if original is not None and original not in (old, earlier and earlier.id):
                report.near_duplicates.append((doc.title or doc.id, original))
                continue
            if earlier is not None:
                fresh.remove(earlier)
                replacing.pop(earlier.id, None)
            fresh.append(doc)
            if old is not None:
                replacing[doc.id] = old
        return fresh, replacing

    def add_paths(self, targets: Sequence[str | Path], *, progress: Progress = False,
                  limit: int | None = None) -> AddReport:
        """Load files, folders, feeds or URLs (see ``qa.ingest.files.load``) and index them.

        A target (or a file in a folder) that cannot be loaded is listed in ``errors`` with one
        line, and the others are still indexed. ``limit`` indexes only the first that many
        documents loaded (targets in turn, a folder's files by name, a file's records in order).
        """
        limit = None if limit is None else whole_number(limit, "limit", 1)
        errors: list[str] = []
        docs = load(targets, fetcher=self.fetcher, errors=errors)
        return replace(self.add(docs[:limit], progress=progress), errors=errors,
                       over_limit=len(docs[limit:]) if limit else 0)

    def add_urls(self, urls: Sequence[str], *, progress: bool = False) -> AddReport:
        """Fetch and index http(s) URLs only: what a web page sends must never name a local
        path (those are for the CLI and ``add_paths``). Bad URLs are listed in ``errors``."""
        errors: list[str] = []
        docs = load_urls(urls, self.fetcher, errors=errors)
        return replace(self.add(docs, progress=progress), errors=errors)

    def add_uploads(self, paths: Sequence[str | Path], *, progress: bool = False) -> AddReport:
        """Index exactly the given uploaded files (no folder, no link), naming them in errors by
        file name only, never by where the server stored them. Bad files are listed in
        ``errors``."""
        errors: list[str] = []
        docs = load_uploads(paths, errors=errors)
        return replace(self.add(docs, progress=progress), errors=errors)

    def delete(self, doc_id: str) -> str:
        """Remove a document and its chunks, named by its id or its external id; the id of the
        one removed. An id that names none is an error, not a silent no-op."""
        with self._lock:
            with self.store.snapshot():
                found = self._resolve(doc_id)
            deleted = self.store.delete(found)  # False: another process deleted it since
            self.store.save()  # commits, or releases the writer lock the attempt took
        if not deleted:
            raise NewsQAError(f"{clip(repr(doc_id))} was deleted by another process meanwhile.")
        self._reask()
        return found

    def _resolve(self, doc_id: str) -> str:
        """The id of the document ``doc_id`` names: its id, or its ``external_id``."""
        if not isinstance(doc_id, str):
            raise NewsQAError(f"A document id must be text, not {type(doc_id).__name__}.")
        if self.store.has(doc_id):
            return doc_id
        found = self.store.find_by_key(document_key(external_id=doc_id))
        if found is None:
            raise NewsQAError(f"No document has the id or external id {clip(repr(doc_id))} in "
                              f"{redacted(self.location)}.")
        return found

    def documents(self) -> list[DocumentInfo]:
        with self._lock, self.store.snapshot():
            return self.store.documents()

    # ---- feeds ---------------------------------------------------------------------------
    def subscribe(self, url: str) -> bool:
        """Subscribe to the RSS or Atom feed at ``url``, for ``refresh_feeds`` to poll; False
        when it already is. The URL must be one the fetcher may reach (http(s), public unless
        it allows private addresses); whether it is a feed shows at the first poll."""
        url = validate_feed_url(url)
        self.fetcher.check_url(url)
        with self._lock:
            added = self.store.add_feed(url)
            self.store.save()
        return added

    def unsubscribe(self, url: str) -> None:
        """Stop polling the feed at ``url``; the articles it brought stay in the index."""
        url = validate_feed_url(url)
        with self._lock:
            removed = self.store.remove_feed(url)
            self.store.save()
        if not removed:
            raise NewsQAError(f"{clip(repr(url))} is not a feed subscribed to in "
                              f"{redacted(self.location)}.")

    def feeds(self) -> list[Feed]:
        """The subscribed feeds with what their last polls found."""
        with self._lock, self.store.snapshot():
            return self.store.feeds()

    def refresh_feeds(self, on_change: OnChange | None = None) -> list[FeedReport]:
        """Poll every subscribed feed once and index its new items (see ``qa.ingest.feeds``),
        then ask the followed questions again, once for the round: ``on_change`` is told each
        changed answer.

        A feed that fails is reported, with its error kept as the feed's ``last_error``, and the
        others go on; a slow one holds them up for ``qa.ingest.feeds.POLL_SECONDS`` at most. The
        documents are added before the feed's state is recorded: a crash in between fetches the
        items again next time, and the index keeps them once.
        """
        reports = []
        for feed in self.feeds():
            try:
                reports.append(self._refresh(feed))
            except NewsQAError as err:  # the index could not be written: try again next time
                reports.append(FeedReport(feed.url, error=f"{clip(feed.url)}: {err}"))
        if any(report.items.added for report in reports):
            for change in self._reask():
                if on_change is not None:
                    on_change(change)
        return reports

    def _refresh(self, feed: Feed) -> FeedReport:
        with self._lock, self.store.snapshot():
            seen = self.store.feed_items(feed.url)
        polled = replace(feed, last_poll=utc_now())
        try:
            found = poll(feed, seen, self.fetcher)
        except IngestError as err:
            self._record(replace(polled, last_error=str(err)))
            return FeedReport(feed.url, error=str(err))
        docs = [doc for _, doc in found.items]
        late = [found.late] if found.late else []  # one line for the items left for later
        report = replace(self._add(docs, False) if docs else AddReport(),
                         errors=found.errors + late)
        problems = late + ([f"{len(found.errors)} item(s) skipped, the first: {found.errors[0]}"]
                           if found.errors else [])
        self._record(replace(polled, title=found.title or feed.title,
                             last_success=polled.last_poll, etag=found.etag,
                             last_modified=found.last_modified, last_error=" ".join(problems)),
                     [key for keys, _ in found.items for key in keys])
        return FeedReport(feed.url, not_modified=found.not_modified, items=report)

    def _record(self, feed: Feed, seen: Sequence[str] = ()) -> None:
        with self._lock:
            self.store.record_poll(feed, seen)
            self.store.save()

    def watch(self, every: str | float, *, stop: threading.Event | None = None,
              on_refresh: Callable[[list[FeedReport]], object] | None = None,
              on_change: OnChange | None = None) -> None:
        """Refresh the feeds now and then every ``every`` (seconds, or "15m", "2h"), until
        ``stop`` is set; ``on_refresh`` is given each round's reports, ``on_change`` each
        change of a followed question's answer."""
        seconds = parse_interval(every)
        stop = stop or threading.Event()
        while True:
            reports = self.refresh_feeds(on_change)
            if on_refresh is not None:
                on_refresh(reports)
            if stop.wait(seconds):
                return

    def watch_in_background(self, every: str | float, *, stop: threading.Event | None = None,
                            on_refresh: Callable[[list[FeedReport]], object] | None = None,
                            on_change: OnChange | None = None) -> threading.Thread:
        """``watch`` in a daemon thread (the app's ``--watch``). A bad interval is refused here,
        before the thread starts; an error that ends the thread is logged."""
        thread = threading.Thread(target=self._watch_logged, name="newsqa-watch", daemon=True,
                                  args=(parse_interval(every), stop, on_refresh, on_change))
        thread.start()
        return thread

    def _watch_logged(self, seconds: float, stop: threading.Event | None,
                      on_refresh: Callable[[list[FeedReport]], object] | None,
                      on_change: OnChange | None) -> None:
        try:
            self.watch(seconds, stop=stop, on_refresh=on_refresh, on_change=on_change)
        except NewsQAError as err:
            log.error("Stopped refreshing the feeds: %s", err)

    def get(self, doc_id: str) -> Document:
        """The document ``doc_id`` names: its id or its external id."""
        with self._lock, self.store.snapshot():
            return self.store.get(self._resolve(doc_id))

    # ---- questions -----------------------------------------------------------------------
    def retrieve(self, question: str, top_k: int = 5, *, sources: list[str] | None = None,
                 date_from: str | None = None, date_to: str | None = None,
                 include_undated: bool = True,
                 history: Sequence[tuple[str, str]] = (),
                 as_of: str | date | None = None, recency: bool | None = None) -> list[Hit]:
        """Chunks for a question in rank order; ``history`` is the conversation so far.
        Articles without a date pass the date filters unless ``include_undated`` is False.
        ``as_of`` is "now" for questions about the current state (today unless given);
        ``recency`` True or False overrides whether the question is one (None: it decides)."""
        question = validate_question(question)
        top_k, day = validate_top_k(top_k), validate_as_of(as_of)
        kept = validate_filter(sources, date_from, date_to, include_undated)
        return self._retrieve(question, top_k, kept, validate_history(history), day, recency)

    def _retrieve(self, question: str, top_k: int, kept: Filter,
                  history: Sequence[tuple[str, str]], day: date | None,
                  recency: bool | None) -> list[Hit]:
        """``retrieve`` on validated input."""
        query = contextualize(question, history)
        with self._lock, self.store.snapshot():
            return self.retriever.retrieve(query, top_k, filter=kept, as_of=day, recency=recency)

    def ask(self, question: str, top_k: int = 5, *, threshold: float | None = None,
            sources: list[str] | None = None, date_from: str | None = None,
            date_to: str | None = None, include_undated: bool = True,
            history: Sequence[tuple[str, str]] = (), as_of: str | date | None = None,
            recency: bool | None = None, timeline: bool = False) -> Answer:
        """Answer from the indexed articles, citing them; ``Answer.text == ""`` if not found.

        A question about the current state ("latest", "now", ...) ranks newer articles higher,
        as of ``as_of`` (today unless given), and picks the newest when the sources differ;
        ``recency`` True or False overrides whether it is one (None: the question decides);
        ``timeline``: ``Answer.timeline`` lists each article's own answer by date.

        Answers are remembered per index generation (``qa.cache``): the same question, asked
        again or by several clients at once, is read once until the index changes."""
        question = validate_question(question)
        top_k, threshold = validate_top_k(top_k), validate_threshold(threshold)  # before any work
        day = validate_as_of(as_of) or today()
        kept = validate_filter(sources, date_from, date_to, include_undated)
        history = validate_history(history)
        with self._lock, self.store.snapshot():  # catches up with other processes' commits
            generation = self.store.version
        key = (generation, question, top_k, threshold, kept, history, day, recency, timeline)
        return self._answers.get(key, lambda: self._answer(question, top_k, threshold, kept,
                                                           history, day, recency, timeline))

    def _answer(self, question: str, top_k: int, threshold: float | None, kept: Filter,
                history: Sequence[tuple[str, str]], day: date, recency: bool | None,
                timeline: bool = False) -> Answer:
        """``ask`` on validated input, without the cache."""
        with self._lock, self.store.snapshot():  # chunks and their documents from one generation
            hits = self._retrieve(question, top_k, kept, history, day, recency)
            docs = {doc_id: self.store.get(doc_id) for doc_id in {h.chunk.doc_id for h in hits}}
        current = asks_for_current(question) if recency is None else recency
        # the recency rule weighs every article's answer: read them all, not in rounds
        spans = self.reader.read(question, [h.chunk for h in hits], every_chunk=current)
        answer = compose_answer(question, spans, docs, hits, decision=self.decision,
                                threshold=threshold, current_as_of=day if current else None)
        return replace(answer, timeline=self._timeline(question, hits, docs)) if timeline \
            else answer

    def read_document(self, question: str, document: Document, *,
                      threshold: float | None = None) -> Answer:
        """Answer from one given document only, without the index (reader-only evaluation)."""
        question, threshold = validate_question(question), validate_threshold(threshold)
        chunks = self.chunker.split(document)
        spans = self.reader.read(question, chunks)
        return compose_answer(question, spans, {document.id: document},
                              [Hit(c, 0.0) for c in chunks],
                              decision=ReaderScore(self.reader.threshold), threshold=threshold)

    @property
    def decision(self) -> Decision:
        """How ``ask`` decides to answer (see ``qa.decide``), loaded with the reader's calibration.

        ``read_document`` has no retrieval scores, so it decides on the reader's score alone.
        """
        if self._decision is None:
            self._decision = load_decision(self.reader)
        return self._decision

    @property
    def threshold(self) -> float:
        """The confidence ``ask`` answers from unless told otherwise."""
        return self.decision.threshold

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
