"""Hybrid retrieval: dense (FAISS) and sparse (BM25) rankings fused into one.

Dense search finds paraphrases; BM25 finds exact names, numbers and rare words that embeddings
blur. Fusion rules are small classes with a ``fuse`` method, so another rule can be swapped in.
"""
from __future__ import annotations

import re
from typing import Protocol, Sequence

import numpy as np
from rank_bm25 import BM25Okapi

from qa.embed import Embedder
from qa.errors import NewsQAError, QuestionError
from qa.store import Store
from qa.types import Chunk

_WORD = re.compile(r"\w+")
STOPWORDS = frozenset(
    """a about after again all also an and any are as at be been before being between both but by
    can could did do does doing during each few for from had has have having he her here hers him
    his how i if in into is it its itself just me more most my no nor not of off on once only or
    other our ours out over own same she should so some such than that the their theirs them then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours""".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-cased words without English stopwords: the BM25 vocabulary."""
    return [word for word in _WORD.findall(text.lower()) if word not in STOPWORDS]


# Words that point back to an earlier turn ("How old is she?", "When did that happen?").
REFERRING = frozenset("he she it they him her them his hers its their theirs this that these those there".split())
FOLLOW_UP_TERMS = 2  # a question with this few content words is read as a follow-up too ("And Germany?")


def contextualize(question: str, history: Sequence[tuple[str, str]] = ()) -> str:
    """The text to retrieve with: a follow-up question borrows the previous turn's words.

    ``history`` holds (question, answer) pairs, oldest first. A question that refers back (a
    pronoun) or is very short gets the last question, itself contextualized, and its answer
    prepended; a self-contained question is searched on its own, so changing topic works.
    """
    if not history:
        return question
    words = set(_WORD.findall(question.lower()))
    if not words & REFERRING and len(tokenize(question)) > FOLLOW_UP_TERMS:
        return question
    last_question, last_answer = history[-1]
    return " ".join(part for part in (contextualize(last_question, history[:-1]), last_answer, question) if part)


class Fusion(Protocol):
    def fuse(self, rankings: Sequence[Sequence[int]]) -> list[tuple[int, float]]: ...


class ReciprocalRankFusion:
    """score(id) = sum over rankings of 1 / (k + rank), rank counted from 1 (Cormack et al., 2009).

    Uses ranks only, so BM25 scores and cosine similarities need no common scale.
    """

    def __init__(self, k: int = 60) -> None:
        self.k = k

    def fuse(self, rankings: Sequence[Sequence[int]]) -> list[tuple[int, float]]:
        """Ids with fused scores, best first; ties keep the order in which ids were first seen."""
        scores: dict[int, float] = {}
        for ranking in rankings:
            for rank, item in enumerate(ranking, start=1):
                scores[item] = scores.get(item, 0.0) + 1.0 / (self.k + rank)
        return sorted(scores.items(), key=lambda pair: -pair[1])


class Retriever:
    """Finds the chunks most relevant to a question, optionally within sources and a date range."""

    def __init__(self, store: Store, embedder: Embedder, fusion: Fusion | None = None, candidates: int = 50) -> None:
        self.store = store
        self.embedder = embedder
        self.fusion = fusion or ReciprocalRankFusion()
        self.candidates = candidates
        self._bm25: BM25Okapi | None = None
        self._bm25_ids = np.zeros(0, dtype=np.int64)
        self._bm25_version: int | None = None

    def retrieve(
        self,
        query: str,
        top_k: int = 5,
        *,
        sources: list[str] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> list[tuple[Chunk, float]]:
        """The ``top_k`` best chunks with their fused scores, best first."""
        if not query.strip():
            raise QuestionError("The question is empty.")
        if top_k < 1:
            raise NewsQAError(f"top_k must be at least 1, not {top_k}.")
        allowed = self.store.chunk_ids_matching(sources, date_from, date_to)
        if len(self.store) == 0 or allowed == set():
            return []
        dense = [i for i, _ in self.store.search(self.embedder.encode_query(query), self.candidates, allowed)]
        fused = self.fusion.fuse([dense, self._sparse(query, allowed)])[:top_k]
        chunks = self.store.chunks_by_ids([i for i, _ in fused])
        return [(chunk, score) for chunk, (_, score) in zip(chunks, fused)]

    def _sparse(self, query: str, allowed: set[int] | None) -> list[int]:
        """Chunk ids ranked by BM25, best first; chunks sharing no query term are left out."""
        bm25 = self._bm25_index()
        terms = tokenize(query)
        if bm25 is None or not terms:
            return []
        scores = bm25.get_scores(terms)
        if allowed is not None:
            scores[~np.isin(self._bm25_ids, np.fromiter(allowed, dtype=np.int64))] = 0.0
        best = np.argsort(-scores, kind="stable")[: self.candidates]
        return [int(self._bm25_ids[i]) for i in best if scores[i] > 0]

    def _bm25_index(self) -> BM25Okapi | None:
        """BM25 over every chunk, rebuilt when the store has changed since it was built."""
        if self._bm25_version != self.store.version:
            ids, tokens = [], []
            for chunk_id, chunk in self.store.iter_chunks():
                ids.append(chunk_id)
                tokens.append(tokenize(chunk.text))
            self._bm25 = BM25Okapi(tokens) if ids else None
            self._bm25_ids = np.array(ids, dtype=np.int64)
            self._bm25_version = self.store.version
        return self._bm25
