"""Hybrid retrieval: dense (vector) and sparse (BM25 keyword) rankings fused into one, and the
best of them re-scored.

Dense search finds paraphrases; BM25 finds exact names, numbers and rare words that embeddings
blur. Both come from the store (``DocumentStore.search`` and ``keyword_search``), which keeps
its keyword index up to date as articles come and go. Fusion rules are small classes with a
``fuse`` method, so another rule can be swapped in. Fusion uses ranks only; the first
``RESCORED`` fused chunks are then ordered by their scores (``relevance``), which tell a close
second from a distant one where ranks cannot.
"""
from __future__ import annotations

from datetime import date
from typing import Protocol, Sequence

from qa.embed import Embedder
from qa.errors import NewsQAError, QuestionError
from qa.recency import asks_for_current, recency_factor, today
from qa.store.base import DocumentStore
from qa.text import WORD, tokenize
from qa.types import Filter, Hit

# Words that point back to an earlier turn ("How old is she?", "When did that happen?").
REFERRING = frozenset("he she it they him her them his hers its their theirs this that these "
                      "those there".split())
# a question with this few content words is read as a follow-up too ("And Germany?")
FOLLOW_UP_TERMS = 2
# The most earlier turns a chain of follow-ups borrows: each adds a question and its answer in
# front of the query, and the embedder reads only its first 256 tokens, so more would push the
# question itself out of what it reads.
CONTEXT_TURNS = 3


def contextualize(question: str, history: Sequence[tuple[str, str]] = ()) -> str:
    """The text to retrieve with: a follow-up question borrows the previous turn's words.

    ``history`` holds (question, answer) pairs, oldest first. A question that refers back (a
    pronoun) or is very short gets the last question, itself contextualized, and its answer
    prepended; a self-contained question is searched on its own, so changing topic works. A
    chain of follow-ups borrows from the last ``CONTEXT_TURNS`` turns at most.
    """
    parts = [question]  # parts[0]: the question that may borrow from the turn before it
    for last_question, last_answer in reversed(history[-CONTEXT_TURNS:]):
        if _stands_alone(parts[0]):
            break
        parts[:0] = [last_question, last_answer]
    return " ".join(part for part in parts if part)


def _stands_alone(question: str) -> bool:
    """Whether a question needs no earlier turn: no pronoun refers back, and it is not short."""
    words = set(WORD.findall(question.lower()))
    return not words & REFERRING and len(tokenize(question)) > FOLLOW_UP_TERMS


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


# How many fused chunks are re-scored, and the weight of the cosine similarity in their score
# (the rest is BM25 over the question's best BM25). Measured on NewsQA CNN dev (999 questions,
# 756 articles): recall@1 of the gold article 67.5 -> 71.5, recall@5 85.3 -> 86.4 (docs/eval).
RESCORED = 20
DENSE_WEIGHT = 0.7


def relevance(cosine: float, bm25: float, best_bm25: float) -> float:
    """A re-scored chunk's score: its cosine similarity and its BM25 score as a share of the
    best chunk's for the question (0 when no chunk shares a word with it), weighed."""
    keyword = bm25 / best_bm25 if best_bm25 > 0 else 0.0
    return DENSE_WEIGHT * cosine + (1 - DENSE_WEIGHT) * keyword


class Retriever:
    """Finds the chunks most relevant to a question, optionally among the articles a filter
    keeps."""

    def __init__(self, store: DocumentStore, embedder: Embedder, fusion: Fusion | None = None,
                 candidates: int = 50) -> None:
        self.store = store
        self.embedder = embedder
        self.fusion = fusion or ReciprocalRankFusion()
        self.candidates = candidates

    def retrieve(
        self,
        query: str,
        top_k: int = 5,
        *,
        filter: Filter | None = None,
        as_of: date | None = None,
        recency: bool | None = None,
    ) -> list[Hit]:
        """The ``top_k`` best chunks with their scores (``relevance``, dense and BM25), best
        first, among the articles ``filter`` keeps (all by default): the first ``RESCORED`` of
        the fused ranking (at least ``top_k``), re-scored.

        A question that asks for the current state (``qa.recency.asks_for_current``) ranks newer
        articles higher: each fused score, and then each re-scored one, is multiplied by its
        article's recency factor at ``as_of`` (today by default), so that newer articles enter
        the chunks re-scored and rank higher among them. Other questions are ranked without it.
        ``recency`` True or False overrides what the question asks (to compare with and
        without).
        """
        if not query.strip():
            raise QuestionError("The question is empty.")
        if top_k < 1:
            raise NewsQAError(f"top_k must be at least 1, not {top_k}.")
        if len(self.store) == 0:
            return []
        vector = self.embedder.encode_query(query)
        dense = dict(self.store.search(vector, self.candidates, filter))
        sparse = dict(self.store.keyword_search(query, self.candidates, filter))
        fused = self.fusion.fuse([list(dense), list(sparse)])
        current = asks_for_current(query) if recency is None else recency
        if current:
            fused = self._by_recency(fused, as_of or today())
        pool = [i for i, _ in fused[:max(top_k, RESCORED)]]
        cosine = {**self.store.similarities(vector, [i for i in pool if i not in dense]), **dense}
        best_bm25 = max(sparse.values(), default=0.0)
        ranked = sorted(((i, relevance(cosine[i], sparse.get(i, 0.0), best_bm25)) for i in pool),
                        key=lambda pair: -pair[1])  # stable: equal scores keep the fused order
        if current:
            ranked = self._by_recency(ranked, as_of or today())
        ranked = ranked[:top_k]
        chunks = self.store.chunks_by_ids([i for i, _ in ranked])
        return [Hit(chunk, score, cosine[i], sparse.get(i, 0.0))
                for chunk, (i, score) in zip(chunks, ranked)]

    def _by_recency(self, fused: list[tuple[int, float]], as_of: date) -> list[tuple[int, float]]:
        """``fused`` (ids with scores) with each score times its article's recency factor, best
        first again."""
        published = self.store.published_by_chunk([i for i, _ in fused])
        decayed = [(i, score * recency_factor(published[i], as_of)) for i, score in fused]
        return sorted(decayed, key=lambda pair: -pair[1])
