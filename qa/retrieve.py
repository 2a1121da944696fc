"""Hybrid retrieval: dense (FAISS) and sparse (BM25) rankings fused into one.

Dense search finds paraphrases; BM25 finds exact names, numbers and rare words that embeddings
blur. Fusion rules are small classes with a ``fuse`` method, so another rule can be swapped in.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Protocol, Sequence

import numpy as np
from rank_bm25 import BM25Okapi

from qa.embed import Embedder
from qa.errors import NewsQAError, QuestionError
from qa.recency import asks_for_current, recency_factor, today
from qa.storage import DocumentStore
from qa.types import Hit

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


# RRF's k: the smaller, the more the first few ranks of each list count. 60 is the customary
# value; 10 puts the gold article among the first 5 chunks more often (NewsQA CNN dev, 999
# questions over 778 articles: recall@5 83.5 -> 85.5; SQuAD v1.1 public dev: 96.3 -> 97.3).
RRF_K = 10


class ReciprocalRankFusion:
    """score(id) = sum over rankings of 1 / (k + rank), rank counted from 1 (Cormack et al., 2009).

    Uses ranks only, so BM25 scores and cosine similarities need no common scale.
    """

    def __init__(self, k: int = RRF_K) -> None:
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

    def __init__(self, store: DocumentStore, embedder: Embedder, fusion: Fusion | None = None, candidates: int = 50) -> None:
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
        include_undated: bool = True,
        as_of: date | None = None,
        recency: bool | None = None,
    ) -> list[Hit]:
        """The ``top_k`` best chunks with their fused, dense and BM25 scores, best first.

        A question that asks for the current state (``qa.recency.asks_for_current``) ranks newer
        articles higher: each fused score is multiplied by its article's recency factor at
        ``as_of`` (today by default). Other questions are ranked by fusion alone. ``recency``
        True or False overrides what the question asks (to compare with and without).
        """
        if not query.strip():
            raise QuestionError("The question is empty.")
        if top_k < 1:
            raise NewsQAError(f"top_k must be at least 1, not {top_k}.")
        allowed = self.store.chunk_ids_matching(sources, date_from, date_to,
                                                include_undated=include_undated)
        if len(self.store) == 0 or allowed == set():
            return []
        dense = dict(self.store.search(self.embedder.encode_query(query), self.candidates, allowed))
        sparse = self._sparse(query, allowed)
        fused = self.fusion.fuse([list(dense), list(sparse)])
        if asks_for_current(query) if recency is None else recency:
            fused = self._by_recency(fused, as_of or today())
        fused = fused[:top_k]
        chunks = self.store.chunks_by_ids([i for i, _ in fused])
        # a chunk that only BM25 found is no closer to the question than the last dense candidate
        floor = min(dense.values(), default=-1.0)
        return [Hit(chunk, score, dense.get(i, floor), sparse.get(i, 0.0))
                for chunk, (i, score) in zip(chunks, fused)]

    def _by_recency(self, fused: list[tuple[int, float]], as_of: date) -> list[tuple[int, float]]:
        """``fused`` with each score times its article's recency factor, best first again."""
        published = self.store.published_by_chunk([i for i, _ in fused])
        decayed = [(i, score * recency_factor(published[i], as_of)) for i, score in fused]
        return sorted(decayed, key=lambda pair: -pair[1])

    def _sparse(self, query: str, allowed: set[int] | None) -> dict[int, float]:
        """Chunk ids with BM25 scores, best first; chunks sharing no query term are left out."""
        bm25 = self._bm25_index()
        terms = tokenize(query)
        if bm25 is None or not terms:
            return {}
        scores = bm25.get_scores(terms)
        if allowed is not None:
            scores[~np.isin(self._bm25_ids, np.fromiter(allowed, dtype=np.int64))] = 0.0
        best = np.argsort(-scores, kind="stable")[: self.candidates]
        return {int(self._bm25_ids[i]): float(scores[i]) for i in best if scores[i] > 0}

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
