"""Hybrid retrieval over a real store and the real embedder."""
from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta
from typing import Sequence

import numpy as np
import pytest

from qa.errors import NewsQAError, QuestionError
from qa.recency import HALF_LIFE_DAYS, RECENCY_WEIGHT, asks_for_current, recency_factor
from qa.retrieve import (CONTEXT_TURNS, DENSE_WEIGHT, RESCORED, ReciprocalRankFusion, Retriever,
                         contextualize, relevance)
from qa.store.local.store import Store
from qa.text import tokenize
from qa.types import Chunk, Document, Filter

ARTICLES = [
    dict(
        source="Valley Gazette",
        published="2023-11-04",
        text="Engineers say the municipality will spend 40 million dollars fixing overpasses that "
        "cracked during last month's earthquake.\n\nWork on the two worst-affected spans starts in "
        "January and should finish by summer.",
    ),
    dict(
        source="Consumer Wire",
        published="2024-02-10",
        text="A manufacturer is recalling 12,000 e-bike batteries with the serial prefix QX-4471 "
        "after reports of overheating.\n\nOwners are told to stop charging the packs and to contact "
        "their dealer for a free replacement.",
    ),
    dict(
        source="Reuters",
        published="2024-05-17T09:30:00Z",
        text="The national orchestra named Amara Lindqvist as its principal conductor on Friday, the "
        "first woman to hold the post.\n\nLindqvist, 41, will lead her first concert in September "
        "with a programme of Sibelius and Nielsen.",
    ),
    dict(
        source="Reuters",
        published="2024-07-30",
        text="Farmers brought in a record wheat harvest this summer after a mild spring and steady "
        "rain in June.\n\nThe agriculture ministry raised its export forecast by 8 percent, saying "
        "storage silos were close to full.",
    ),
    dict(
        source="Sports Daily",
        published="2024-06-12",
        text="The home side won the cup final 3-1 after two late goals from their captain.\n\nFans "
        "celebrated in the main square until well after midnight.",
    ),
    dict(
        source="Valley Gazette",
        published="2024-09-01",
        text="Voters in the northern province chose a new governor on Sunday, with turnout reaching "
        "61 percent.\n\nThe winner, a former teacher, promised to build more schools and clinics.",
    ),
    dict(
        source="Coastal Herald",
        published="",
        text="The maritime museum reopened its doors on Saturday, eighteen months after a flood "
        "ruined its ground floor.\n\nCurators said most of the ship models had been restored.",
    ),
]


def make_doc(text: str, **meta: str) -> Document:
    return Document(id=hashlib.sha256(text.encode()).hexdigest()[:16], text=text, **meta)


def paragraphs(doc: Document) -> list[Chunk]:
    return [Chunk(doc.id, m.start(), m.end(), m.group()) for m in re.finditer(r"[^\n]+(?:\n(?!\n)[^\n]+)*", doc.text)]


class RecordingFusion(ReciprocalRankFusion):
    """RRF that keeps the last rankings it fused, to show what each retriever contributed."""

    def fuse(self, rankings: Sequence[Sequence[int]]) -> list[tuple[int, float]]:
        self.dense, self.sparse = rankings
        return super().fuse(rankings)


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return [make_doc(**article) for article in ARTICLES]


@pytest.fixture(scope="module")
def encoded(embedder, docs) -> dict[str, tuple[list[Chunk], np.ndarray]]:
    result = {}
    for doc in docs:
        chunks = paragraphs(doc)
        result[doc.id] = (chunks, embedder.encode([c.text for c in chunks]))
    return result


@pytest.fixture
def store(tmp_path, embedder, docs, encoded) -> Store:
    with Store.open(tmp_path / "index", embedder_name=embedder.name, dimension=embedder.dimension) as store:
        for doc in docs:
            store.add(doc, *encoded[doc.id])
        store.save()
        yield store


# ------------------------------------------------------------------------- fusion


def test_reciprocal_rank_fusion_hand_computed():
    fused = ReciprocalRankFusion(k=60).fuse([[1, 2, 3], [3, 1]])
    assert [item for item, _ in fused] == [1, 3, 2]
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)


def test_reciprocal_rank_fusion_breaks_ties_by_first_appearance():
    assert ReciprocalRankFusion(k=1).fuse([[7, 8], [8, 7]]) == [(7, 0.5 + 1 / 3), (8, 1 / 3 + 0.5)]
    assert ReciprocalRankFusion().fuse([[], []]) == []


def test_tokenize_lowercases_and_drops_stopwords():
    assert tokenize("What is the serial prefix QX-4471?") == ["serial", "prefix", "qx", "4471"]


# ------------------------------------------------------------------------- hybrid retrieval


def test_finds_an_exact_keyword_through_bm25(store, embedder, docs):
    fusion = RecordingFusion()
    retriever = Retriever(store, embedder, fusion=fusion)
    results = retriever.retrieve("Which packs have serial prefix QX-4471?", top_k=3)
    keyword_chunk = results[0].chunk
    assert "QX-4471" in keyword_chunk.text and keyword_chunk.doc_id == docs[1].id
    sparse_chunks = store.chunks_by_ids(fusion.sparse)
    assert sparse_chunks[0] == keyword_chunk
    assert all(set(tokenize(c.text)) & {"packs", "serial", "prefix", "qx", "4471"} for c in sparse_chunks)


def test_finds_a_paraphrase_through_dense_search(store, embedder, docs):
    fusion = RecordingFusion()
    retriever = Retriever(store, embedder, fusion=fusion)
    best, *_ = retriever.retrieve("How much will the town pay to mend bridges after the tremor?")
    assert best.chunk.doc_id == docs[0].id and "overpasses" in best.chunk.text
    assert fusion.sparse == []  # no word in common: BM25 offers no candidate
    assert best.bm25 == 0.0 and best.score == pytest.approx(DENSE_WEIGHT * best.dense)


def test_the_best_fused_chunks_are_re_scored_by_cosine_and_bm25(store, embedder):
    """Fusion picks the candidates by rank; their order is that of ``relevance``: close
    cosines and BM25 scores tell a strong first from a weak one, where ranks cannot."""
    question = "Which packs have serial prefix QX-4471?"
    hits = Retriever(store, embedder).retrieve(question, top_k=100)
    best_bm25 = max(h.bm25 for h in hits)
    assert best_bm25 > 0
    assert [h.score for h in hits[:RESCORED]] == pytest.approx(
        [relevance(h.dense, h.bm25, best_bm25) for h in hits[:RESCORED]])
    scores = [h.score for h in hits[:RESCORED]]
    assert scores == sorted(scores, reverse=True)


def test_hits_carry_the_dense_and_bm25_scores(store, embedder):
    question = "Which packs have serial prefix QX-4471?"
    hits = Retriever(store, embedder).retrieve(question, top_k=100)
    query = embedder.encode_query(question)
    for hit in hits:  # a small store: every chunk is a dense candidate
        assert hit.dense == pytest.approx(float(embedder.encode([hit.chunk.text])[0] @ query),
                                          abs=1e-4)
        assert (hit.bm25 > 0) == bool(set(tokenize(hit.chunk.text)) & set(tokenize(question)))


def test_a_chunk_only_bm25_found_gets_its_own_cosine(store, embedder):
    question = "How big was the harvest this summer?"  # "summer" is in the earthquake story too
    by_dense = sorted(Retriever(store, embedder).retrieve(question, top_k=100),
                      key=lambda h: -h.dense)
    narrow = Retriever(store, embedder, candidates=2).retrieve(question, top_k=100)
    densest = {h.chunk for h in by_dense[:2]}
    bm25_only = [h for h in narrow if h.chunk not in densest]
    assert bm25_only and all(h.bm25 > 0 for h in bm25_only)
    query = embedder.encode_query(question)
    for hit in narrow:  # read from the index by id where dense search did not return it
        assert hit.dense == pytest.approx(float(embedder.encode([hit.chunk.text])[0] @ query),
                                          abs=1e-4)


def test_top_k_is_respected_and_scores_descend(store, embedder):
    retriever = Retriever(store, embedder)
    results = retriever.retrieve("harvest forecast", top_k=3)
    assert len(results) == 3
    scores = [hit.score for hit in results]
    assert scores == sorted(scores, reverse=True)
    everything = retriever.retrieve("harvest forecast", top_k=100)
    assert len(everything) == len(store)  # dense search ranks every chunk of a small store
    assert len({(h.chunk.doc_id, h.chunk.start) for h in everything}) == len(everything)


def test_filters_restrict_both_rankings(store, embedder, docs):
    fusion = RecordingFusion()
    retriever = Retriever(store, embedder, fusion=fusion)
    results = retriever.retrieve("serial prefix QX-4471 batteries", top_k=10,
                                 filter=Filter(("reuters",)))
    assert results and {h.chunk.doc_id for h in results} <= {docs[2].id, docs[3].id}
    assert fusion.sparse == []  # the keyword chunk is outside the filter
    wheat = retriever.retrieve("wheat harvest", top_k=10, filter=Filter(("reuters",)))
    assert store.chunks_by_ids(fusion.sparse)[0].doc_id == docs[3].id == wheat[0].chunk.doc_id

    june = Filter(date_from="2024-05-17", date_to="2024-06-30")
    in_range = retriever.retrieve("news", top_k=10, filter=june)
    assert {h.chunk.doc_id for h in in_range} == {docs[2].id, docs[4].id, docs[6].id}  # undated
    dated = retriever.retrieve("news", top_k=10,
                               filter=Filter(date_from="2024-05-17", date_to="2024-06-30",
                                             include_undated=False))
    assert {h.chunk.doc_id for h in dated} == {docs[2].id, docs[4].id}

    assert retriever.retrieve("orchestra", filter=Filter(("Nobody",))) == []
    assert fusion.sparse == []


def test_bm25_follows_adds_and_deletes(store, embedder):
    fusion = RecordingFusion()
    retriever = Retriever(store, embedder, fusion=fusion)
    retriever.retrieve("zygomorphic orchid")
    assert fusion.sparse == []
    doc = make_doc("Botanists found a zygomorphic orchid in the hills.", source="Nature Notes")
    store.add(doc, paragraphs(doc), embedder.encode([doc.text]))
    assert retriever.retrieve("zygomorphic orchid")[0].chunk.doc_id == doc.id
    assert [c.doc_id for c in store.chunks_by_ids(fusion.sparse)] == [doc.id]
    store.delete(doc.id)
    assert doc.id not in {h.chunk.doc_id
                          for h in retriever.retrieve("zygomorphic orchid", top_k=100)}
    assert fusion.sparse == []


def test_bad_queries_are_clear_errors(store, embedder):
    retriever = Retriever(store, embedder)
    with pytest.raises(QuestionError):
        retriever.retrieve("   ")
    with pytest.raises(NewsQAError, match="top_k"):
        retriever.retrieve("orchestra", top_k=0)


def test_an_empty_store_retrieves_nothing(tmp_path, embedder):
    with Store.open(tmp_path / "empty", embedder_name=embedder.name, dimension=embedder.dimension) as store:
        assert Retriever(store, embedder).retrieve("anything at all") == []


# ------------------------------------------------------------------------- follow-up questions


def test_contextualize_gives_follow_ups_the_previous_turn():
    history = [("Who was named principal conductor?", "Amara Lindqvist")]
    follow_up = contextualize("How old is she?", history)
    assert follow_up == "Who was named principal conductor? Amara Lindqvist How old is she?"
    assert contextualize("And Sibelius?", history).endswith("Amara Lindqvist And Sibelius?")  # too short to stand alone
    assert contextualize("How big was the wheat harvest?", history) == "How big was the wheat harvest?"
    assert contextualize("How old is she?", []) == "How old is she?"
    chain = history + [("When is her first concert?", "September")]
    assert contextualize("What will they play there?", chain) == (
        "Who was named principal conductor? Amara Lindqvist When is her first concert? September "
        "What will they play there?"
    )


def test_a_contextualized_follow_up_retrieves_the_right_passage(store, embedder, docs):
    retriever = Retriever(store, embedder)
    history = [("Who did the national orchestra name as conductor?", "Amara Lindqvist")]
    results = retriever.retrieve(contextualize("How old is she?", history), top_k=2)
    # both of its paragraphs, "41" among them
    assert [h.chunk.doc_id for h in results] == [docs[2].id] * 2


# ------------------------------------------------------------------------- recency

DATED = [  # the old article matches the question best; the new one is what is true now
    make_doc("The latest Acme widget price: the Acme widget price is 10 dollars, Acme said of "
             "the latest widget price.", published="2025-01-02"),
    make_doc("Acme now charges 14 dollars for a widget.", published="2025-05-30T09:00:00"),
    make_doc("A shop note: gadgets from Acme cost 12 dollars.", published=""),
]


@pytest.fixture
def dated_store(tmp_path, embedder) -> Store:
    with Store.open(tmp_path / "dated", embedder_name=embedder.name,
                    dimension=embedder.dimension) as store:
        for doc in DATED + [make_doc(**article) for article in ARTICLES]:  # for BM25's idf
            chunks = paragraphs(doc)
            store.add(doc, chunks, embedder.encode([c.text for c in chunks]))
        store.save()
        yield store


def ranking(hits) -> list[str]:
    return [h.chunk.doc_id for h in hits]


def test_recency_ranks_the_newest_first_only_for_current_state_questions(dated_store, embedder):
    old, new, undated = (d.id for d in DATED)
    retriever = Retriever(dated_store, embedder)
    as_of = date(2025, 6, 1)
    current = "What is the latest Acme widget price?"
    plain = retriever.retrieve(current, 5, as_of=as_of, recency=False)
    assert ranking(plain)[0] == old
    boosted = retriever.retrieve(current, 5, as_of=as_of)
    assert ranking(boosted)[0] == new
    # the undated article keeps its fused score: no boost
    assert {h.chunk.doc_id: h.score for h in boosted}[undated] == pytest.approx(
        {h.chunk.doc_id: h.score for h in plain}[undated])
    # a question that does not ask for the current state is ranked the same, whatever "now" is
    question = "What is the Acme widget price?"
    expected = [(h.chunk, h.score) for h in retriever.retrieve(question, 3, recency=False)]
    for when in (as_of, date(1990, 1, 1), None):
        assert [(h.chunk, h.score) for h in retriever.retrieve(question, 3, as_of=when)] == expected


def test_recency_factor_halves_its_boost_every_half_life():
    assert recency_factor("2025-06-01", date(2025, 6, 1)) == pytest.approx(1 + RECENCY_WEIGHT)
    assert recency_factor("2025-06-01", date(2025, 6, 1) + timedelta(days=HALF_LIFE_DAYS)) == (
        pytest.approx(1 + RECENCY_WEIGHT / 2))
    assert recency_factor("2025-07-01", date(2025, 6, 1)) == pytest.approx(1 + RECENCY_WEIGHT)
    assert recency_factor("", date(2025, 6, 1)) == 1.0
    assert asks_for_current("Who is the CEO now?") and asks_for_current("What is the new price?")
    assert not asks_for_current("Who won in 1987?")
    assert not asks_for_current("How many people live in New York?")


# ------------------------------------------------------------------------- long conversations

def test_a_follow_up_chain_borrows_only_its_last_turns_however_long():
    """A chat of 1,000 follow-ups is read without recursion, from its last ``CONTEXT_TURNS``
    turns: older ones would only push the question out of what the embedder reads."""
    turns = [(f"And then {n}?", f"answer {n}") for n in range(1000)]
    query = contextualize("What about it?", turns)
    assert query == contextualize("What about it?", turns[-CONTEXT_TURNS:])
    borrowed = " ".join(f"And then {n}? answer {n}" for n in range(1000 - CONTEXT_TURNS, 1000))
    assert query == f"{borrowed} What about it?"
    # a self-contained turn still ends the chain, however far back the history goes
    turns[-2] = ("Who conducts the national orchestra?", "Amara Lindqvist")
    assert contextualize("What about it?", turns) == (
        "Who conducts the national orchestra? Amara Lindqvist And then 999? answer 999 "
        "What about it?")
