"""The data that flows between the pipeline's stages.

Offsets are character offsets into ``Document.text``; they are computed once, where the text is
split into chunks, and carried from there to every span and citation.
"""
from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from qa.errors import NewsQAError, StoreError, clip


@dataclass(frozen=True)
class Document:
    """One news article. ``id`` is a stable hash of the text (see
    ``qa.ingest.documents.document_id``): it names this version of the article.

    ``key`` names the article across versions (``document_key``): indexing a document whose key
    an indexed one has replaces that one (``NewsQA.add``). "" when nothing names it.
    """

    id: str
    text: str
    title: str = ""
    source: str = ""
    url: str = ""
    published: str = ""  # ISO 8601 date or datetime, "" when unknown
    date_source: str = ""  # where ``published`` was read: a key of ``DATE_SOURCES``, "" if undated
    external_id: str = ""  # the id the user's data gives the article (a JSON record's "id")
    key: str = ""


def document_key(external_id: str = "", url: str = "", path: str = "") -> str:
    """What names an article across versions: the user's id for it, else its URL, else the
    resolved path of the file it is the only article of; "" when none is known. Each kind has its
    prefix, so that an id never matches a URL or a path by chance."""
    if external_id:
        return f"id:{external_id}"
    if url:
        return f"url:{url}"
    return f"file:{path}" if path else ""


# Where a publication date may come from: metadata only, never the article's text, where a
# date such as "in 2001" is what the story is about, not when it was written.
DATE_SOURCES = {
    "feed": "the feed",
    "html-meta": "page metadata",
    "json-ld": "page JSON-LD",
    "json-field": "a record field",
    "http-last-modified": "HTTP Last-Modified only",
}


def date_label(published: str, date_source: str) -> str:
    """The date as a citation shows it, with where it came from; "undated" without one."""
    if not published:
        return "undated"
    origin = DATE_SOURCES.get(date_source)
    return f"{published[:10]}, from {origin}" if origin else published[:10]


@dataclass(frozen=True)
class Filter:
    """Which articles a search may return; every backend translates it (``qa.store.base``).

    ``sources`` match case-insensitively. ``date_from``/``date_to`` are inclusive ISO prefixes
    (``date_to="2024-05"`` keeps all of May 2024), checked by the facade. Undated articles pass
    the date bounds, as nothing says they are out of range, unless ``include_undated`` is False,
    which drops them always.
    """

    sources: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None
    include_undated: bool = True

    @property
    def empty(self) -> bool:
        """True when it keeps every article (no search needs to filter)."""
        return (not self.sources and self.date_from is None and self.date_to is None
                and self.include_undated)


@dataclass(frozen=True)
class Chunk:
    """A window of a document: ``chunk.text == document.text[chunk.start:chunk.end]``."""

    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with the scores that ranked it, carried to the answer decision.

    ``score`` is the retrieval score that ranked it (``qa.retrieve``); ``dense`` its cosine
    similarity to the question; ``bm25`` its BM25 score (0.0 when it shares no term with the
    question, or is not among the keyword candidates). ``None`` means the score was not
    computed (a document read on its own, without retrieval).
    """

    chunk: Chunk
    score: float
    dense: float | None = None
    bm25: float | None = None


@dataclass(frozen=True)
class Span:
    """An answer span the reader found: ``start``/``end`` are offsets into the document."""

    doc_id: str
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class Citation:
    """Where an answer is quoted from: ``document.text[start:end] == quote``.

    ``passage_start``/``passage_end`` locate the chunk the quote was read in, for display.
    ``score`` is the reader's score of this span (``reader_score`` in JSON); ``confidence`` the
    decision's probability that the answer it backs is right (``qa.answer.compose_answer``), on
    the scale of ``Answer.score``.
    """

    doc_id: str
    title: str
    source: str
    url: str
    published: str
    start: int
    end: int
    quote: str
    passage: str = ""
    passage_start: int = 0
    score: float = 0.0
    date_source: str = ""  # see ``Document.date_source``
    # the absolute date a relative-date quote ("Monday") stands for, read from ``published``
    # (see ``qa.recency.resolve_relative_date``); an addition beside the quote, never part of it
    resolved_date: str = ""
    external_id: str = ""  # see ``Document.external_id``
    confidence: float = 0.0

    @property
    def date_label(self) -> str:
        return date_label(self.published, self.date_source)


@dataclass(frozen=True)
class Answer:
    """The reply to a question. ``text == ""`` means "not found in the sources".

    ``citations`` back the answer (most confident first); ``alternatives`` are other candidate
    answers, each with its own citations; ``retrieved`` are the chunks the reader saw, in rank
    order.
    ``evidence`` holds the features the answer decision weighed (see ``qa.decide``), so that an
    evaluation can refit the decision from them without asking again.
    ``score`` is the decision's probability that the answer is right (the confidence shown), for
    the answer and each alternative alike; ``reader_score`` the reader's score of its best span,
    which ranks nothing the user sees.
    """

    question: str
    text: str
    score: float
    citations: list[Citation] = field(default_factory=list)
    alternatives: list["Answer"] = field(default_factory=list)
    retrieved: list[Chunk] = field(default_factory=list)
    evidence: dict[str, float] = field(default_factory=dict)
    # "Sources differ": one citation per different answer from different articles, newest first
    # (undated last), the answer's own among them; empty when the sources agree (qa.answer)
    disagreement: list[Citation] = field(default_factory=list)
    reader_score: float = 0.0
    # ``ask(..., timeline=True)``: each article's own best answer, oldest published first,
    # undated last (``qa.answer.timeline_of``); empty unless asked for
    timeline: list[Citation] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.text)

    @property
    def resolved_date(self) -> str:
        """The absolute date of a relative-date answer, from its first citation; "" if none."""
        return self.citations[0].resolved_date if self.citations else ""

    def to_dict(self) -> dict[str, Any]:
        """The answer as plain JSON data (the CLI's ``--json``, the app's ``/ask``): every field,
        citations and retrieved chunks as dicts, plus ``found`` and ``resolved_date``. A
        citation's span score is named ``reader_score``, apart from its ``confidence``."""
        data = dataclasses.asdict(self)
        data["found"] = self.found
        data["resolved_date"] = self.resolved_date
        data["alternatives"] = [a.to_dict() for a in self.alternatives]
        for key in ("citations", "disagreement", "timeline"):
            for citation in data[key]:
                citation["reader_score"] = citation.pop("score")
        return data

    @property
    def best_text(self) -> str:
        """The best candidate whether or not it cleared the threshold: below it ``compose_answer``
        moves the best candidate to ``alternatives[0]``. For judging the reader apart from the
        threshold."""
        if self.text or not self.alternatives:
            return self.text
        return self.alternatives[0].text


def whole_number(value: object, name: str, least: int) -> int:
    """``value`` as an int if it is a whole number of at least ``least``; a bool, a float or
    text is refused with one line naming ``name``, as every setting and argument is."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise NewsQAError(f"{name} must be a whole number of at least {least}, "
                          f"not {clip(repr(value))}.")
    return int(value)


@dataclass(frozen=True)
class IndexConfig:
    """The settings an index is built and searched with, recorded in its manifest.

    Index-defining settings (``INDEX_DEFINING``: how documents are cut into chunks) are fixed
    when the index is created: chunks cut otherwise would mix two kinds of passage in one index,
    so asking to open it with other values is an error (``qa.store.manifest.check_same_settings``);
    a process that asks for none takes the index's (``NewsQA``). The embedder is index-defining
    too; the manifest records it beside this config (``embedder``, ``dimension``) and the store
    checks it when the model loads.

    The other settings may differ in every process that opens the index (one app may read with
    ONNX, another with torch; a question may ask for more passages): the manifest records those
    the index was created with, for information only; a process uses its own.

    The defaults are those of ``Chunker``, ``Retriever`` and ``ReciprocalRankFusion``, whose
    docstrings say why (``tests/test_types.py`` checks that they agree).
    """

    max_chars: int = 600  # the longest chunk, in characters (``qa.chunk.Chunker``)
    overlap_sentences: int = 1  # sentences that consecutive chunks share
    candidates: int = 50  # chunks each of dense and keyword search passes to fusion
    rrf_k: int = 10  # reciprocal rank fusion's k (``qa.retrieve.RRF_K``)
    top_k: int = 5  # chunks the reader reads for a question, unless it asks otherwise
    reader: str | None = None  # a transformers QA model id or path; None: the shipped reader
    # What runs the embedder and the reader: "onnx" (ONNX Runtime, int8, exported from the
    # shipped weights on first use and cached: no torch import, so a cold `ask` is ~1 s, not
    # ~8 s; its answer decision is fitted for it, see qa/decide.py) or "torch"
    backend: str = "onnx"
    # the backend holding the index: "faiss" (a directory) or "milvus"; the index location
    # decides it (``qa.store.open_store``), and ``NewsQA`` records it here
    store: str = "faiss"

    INDEX_DEFINING: ClassVar[tuple[str, ...]] = ("max_chars", "overlap_sentences")
    STORES: ClassVar[tuple[str, ...]] = ("faiss", "milvus")

    def __post_init__(self) -> None:
        for name, least in (("max_chars", 1), ("overlap_sentences", 0), ("candidates", 1),
                            ("rrf_k", 0), ("top_k", 1)):  # a numpy int is stored as an int
            object.__setattr__(self, name, whole_number(getattr(self, name), name, least))
        if self.reader is not None and not isinstance(self.reader, str):
            raise NewsQAError(f"reader must be a model id or path as text, not {self.reader!r}.")
        if not isinstance(self.backend, str):
            raise NewsQAError(f"backend must be text, not {self.backend!r}.")
        if self.store not in self.STORES:
            raise NewsQAError(f"store must be one of {', '.join(self.STORES)}, "
                              f"not {self.store!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, which ``from_dict`` turns back into an equal config."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexConfig:
        """The config ``data`` describes; settings it lacks take their defaults (a manifest
        written before they existed). An unknown setting is an error, not ignored: it may be
        one this newsqa would misread."""
        if not isinstance(data, Mapping):
            raise NewsQAError(f"A config must be a mapping of settings, not {data!r}.")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise NewsQAError(f"Unknown setting(s) {', '.join(map(str, unknown))}.")
        return cls(**data)

    def with_index_settings(self, index: IndexConfig) -> IndexConfig:
        """This config with ``index``'s index-defining settings (those of the index opened)."""
        return dataclasses.replace(
            self, **{name: getattr(index, name) for name in self.INDEX_DEFINING})


@dataclass
class AddReport:
    """What ``NewsQA.add`` did with each document it was given."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # already indexed (same content hash)
    # (old id, new id): those of ``added`` that replaced the indexed version of their article
    replaced: list[tuple[str, str]] = field(default_factory=list)
    near_duplicates: list[tuple[str, str]] = field(default_factory=list)  # (new title, kept id)
    chunks: int = 0
    errors: list[str] = field(default_factory=list)  # one line per input that could not be read
    over_limit: int = 0  # documents loaded past ``add_paths``' limit: not looked at
    changes: list[FollowChange] = field(default_factory=list)  # followed answers it changed


@dataclass(frozen=True)
class FollowEntry:
    """One state of a followed question's answer (``qa.follow``): a new entry each time the
    answer changes, the latest one's citation moved on when a newer article says the same."""

    recorded: str  # ISO 8601 UTC (``qa.store.base.utc_now``) when recorded or last updated
    text: str  # the answer; "" = not found
    confidence: float  # ``Answer.score``: the decision's probability
    citation: Citation | None  # the answer's first citation; None when not found

    @property
    def found(self) -> bool:
        return bool(self.text)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, which ``from_dict`` turns back into an equal entry (the index keeps
        entries so, and ``follow history --json`` prints them)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FollowEntry:
        citation = data.get("citation")
        return cls(data["recorded"], data["text"], float(data["confidence"]),
                   None if citation is None else Citation(**citation))


@dataclass(frozen=True)
class Followed:
    """A standing question, asked again after every commit that changes the articles."""

    id: str  # short and stable ("f1"): what ``follow remove`` and ``follow history`` take
    question: str
    sources: tuple[str, ...] = ()  # only articles from these outlets; () = all
    top_k: int = 5
    added: str = ""  # ISO 8601 UTC
    checked: str = ""  # when last asked again
    error: str = ""  # the last re-ask's error, "" if none
    latest: FollowEntry | None = None
    changes: int = 0  # number of history entries

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FollowChange:
    """A new history entry: what ``watch`` prints, ``--on-change`` is given and the app shows."""

    follow: Followed  # as after the change
    before: FollowEntry | None
    after: FollowEntry

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class IndexingStopped(StoreError):
    """``NewsQA.add`` stopped at a batch that the index could not take (a full disk, say):
    ``report`` holds what the batches before it committed, which the index keeps."""

    def __init__(self, message: str, report: AddReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class FeedReport:
    """What ``NewsQA.refresh_feeds`` did with one feed."""

    url: str
    not_modified: bool = False  # the feed answered 304: nothing new, nothing else fetched
    items: AddReport = field(default_factory=AddReport)  # its new items; ``errors``: skipped ones
    error: str = ""  # the feed could not be fetched, read or recorded: nothing of it was indexed
