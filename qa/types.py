"""The data that flows between the pipeline's stages.

Offsets are character offsets into ``Document.text``; they are computed once, where the text is
split into chunks, and carried from there to every span and citation.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One news article. ``id`` is a stable hash of the text (see ``qa.ingest.document_id``)."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    url: str = ""
    published: str = ""  # ISO 8601 date or datetime, "" when unknown


@dataclass(frozen=True)
class Chunk:
    """A window of a document: ``chunk.text == document.text[chunk.start:chunk.end]``."""

    doc_id: str
    start: int
    end: int
    text: str


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


@dataclass(frozen=True)
class Answer:
    """The reply to a question. ``text == ""`` means "not found in the sources".

    ``citations`` back the answer (most confident first); ``alternatives`` are other candidate
    answers, each with its own citations; ``retrieved`` are the chunks the reader saw, in rank order.
    """

    question: str
    text: str
    score: float
    citations: list[Citation] = field(default_factory=list)
    alternatives: list["Answer"] = field(default_factory=list)
    retrieved: list[Chunk] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.text)

    @property
    def best_text(self) -> str:
        """The best candidate whether or not it cleared the threshold: below it ``compose_answer``
        moves the best candidate to ``alternatives[0]``. For judging the reader apart from the
        threshold."""
        if self.text or not self.alternatives:
            return self.text
        return self.alternatives[0].text
