"""The answer decision: evidence from hand-made candidates, confidences, loading by key."""
from __future__ import annotations

import json
import math

import pytest

from qa.decide import LogisticDecision, ReaderScore, evidence, load_decision
from qa.errors import NewsQAError
from qa.reader.model import Reader
from qa.types import Answer, Chunk, Citation, Document, Hit

A = Document("a", "Kyiv said 640 prisoners of war came home. The list was handed over in Istanbul.")
B = Document("b", "The council approved a tram line to the campus.")
DOCS = {d.id: d for d in (A, B)}
A1 = Chunk("a", 0, A.text.index(" The"), A.text[:A.text.index(" The")])
A2 = Chunk("a", A.text.index("640"), len(A.text), A.text[A.text.index("640"):])  # overlaps A1
B1 = Chunk("b", 0, len(B.text), B.text)


def candidate(text: str, score: float, *chunks: Chunk) -> Answer:
    """A candidate quoted from each of ``chunks`` (its first occurrence there)."""
    citations = []
    for chunk in chunks:
        start = chunk.start + chunk.text.index(text)
        citations.append(Citation(chunk.doc_id, "", "", "", "", start, start + len(text), text,
                                  chunk.text, chunk.start, score))
    return Answer("q", text, score, citations)


def test_evidence_by_hand():
    hits = [Hit(B1, 0.03, dense=0.6, bm25=2.0), Hit(A1, 0.02, dense=0.5, bm25=1.0),
            Hit(A2, 0.01, dense=0.2, bm25=0.0)]
    candidates = [candidate("640", 0.8, A1), candidate("tram line", 0.3, B1),
                  candidate("Istanbul", 0.1, A2)]
    features = evidence("How many prisoners of war came home?", candidates, hits, DOCS)
    # question words (no stopwords): many, prisoners, war, came, home
    assert features == pytest.approx({
        "reader": 0.8, "margin": 0.5, "support": 1.0, "answer_words": 1.0,
        "answer_type": 1.0, "echo": 0.0, "dense_top": 0.6, "dense_answer": 0.5,
        "answer_rank": 1 / 2, "doc_share": 2 / 3,
        "coverage_doc": 4 / 5, "coverage_chunk": 4 / 5, "other_doc": 0.3})


def test_evidence_of_a_candidate_below_the_best_is_its_own():
    """Each candidate is weighed by its own span, chunk and article; its margin is to the best
    other candidate (negative below it), its other article's best span the best elsewhere."""
    hits = [Hit(B1, 0.03, dense=0.6, bm25=2.0), Hit(A1, 0.02, dense=0.5, bm25=1.0),
            Hit(A2, 0.01, dense=0.2, bm25=0.0)]
    candidates = [candidate("640", 0.8, A1), candidate("tram line", 0.3, B1),
                  candidate("Istanbul", 0.1, A2)]
    features = evidence("How many prisoners of war came home?", candidates, hits, DOCS, 1)
    assert features == pytest.approx({
        "reader": 0.3, "margin": -0.5, "support": 1.0, "answer_words": 2.0,
        "answer_type": -1.0, "echo": 0.0, "dense_top": 0.6, "dense_answer": 0.6,
        "answer_rank": 1.0, "doc_share": 1 / 3,
        "coverage_doc": 0.0, "coverage_chunk": 0.0, "other_doc": 0.8})
    third = evidence("How many prisoners of war came home?", candidates, hits, DOCS, 2)
    assert third["other_doc"] == 0.3 and third["answer_rank"] == 1 / 3  # not its own article's


def test_evidence_without_retrieval_scores_is_the_reader_s_only():
    features = evidence("q", [candidate("640", 0.8, A1, A2)], [Hit(A1, 0.0), Hit(A2, 0.0)], DOCS)
    assert features == {"reader": 0.8, "margin": 0.8, "support": 2.0, "answer_words": 1.0,
                        "answer_type": 0.0, "echo": 0.0}
    assert evidence("q", [], [Hit(A1, 0.0)], DOCS) == {}


def test_evidence_weighs_the_kind_of_answer_and_whether_it_echoes_the_question():
    """A "Where" question wants a place: "Istanbul" fits, "prisoners of war came home" neither
    fits nor adds anything the question does not say (3 of its 4 words are the question's)."""
    question = "Where did the prisoners of war come home from?"
    candidates = [candidate("prisoners of war came home", 0.6, A1), candidate("Istanbul", 0.4, A2)]
    hits = [Hit(A1, 0.0), Hit(A2, 0.0)]
    echoing = evidence(question, candidates, hits, DOCS)
    place = evidence(question, candidates, hits, DOCS, 1)
    assert (echoing["answer_type"], place["answer_type"]) == (-1.0, 1.0)
    assert (echoing["echo"], place["echo"]) == (pytest.approx(3 / 4), 0.0)


def test_logistic_confidence_by_hand():
    decision = LogisticDecision({"reader": 2.0, "dense_top": -1.0}, bias=0.5, threshold=0.4,
                                key="k")
    z = 0.5 + 2.0 * 0.8 - 1.0 * 0.3
    assert decision.confidence({"reader": 0.8, "dense_top": 0.3, "margin": 9.0}) == (
        pytest.approx(1 / (1 + math.exp(-z))))
    assert decision.confidence({}) == 0.0  # no candidate at all
    with pytest.raises(NewsQAError, match="dense_top"):
        decision.confidence({"reader": 0.8})
    assert ReaderScore(0.5).confidence({"reader": 0.7}) == 0.7


def copy_model(tiny_model, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for path in tiny_model.iterdir():
        (model / path.name).write_bytes(path.read_bytes())
    return model


def test_load_decision_by_key(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path)
    assert load_decision(Reader(model)) == ReaderScore(0.0)  # no calibration: always answer
    key = Reader(model).calibration_key
    entry = {"weights": {"reader": 3.0}, "bias": -1.0, "threshold": 0.45}
    calibration = model / "newsqa_reader.json"
    calibration.write_text(json.dumps({"threshold": 0.37, "decisions": {key: entry}}))
    assert load_decision(Reader(model)) == LogisticDecision({"reader": 3.0}, -1.0, 0.45, key)
    # fp32 scores are not the int8 ones the weights were fitted on: the span score decides
    assert load_decision(Reader(model, quantize=False)) == ReaderScore(0.37)
    calibration.write_text(json.dumps({"threshold": 0.37, "decisions": {key: {"bias": 1}}}))
    with pytest.raises(NewsQAError, match="is malformed"):
        load_decision(Reader(model))
