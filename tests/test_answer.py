"""compose_answer and normalize_answer on hand-made spans and documents."""
from __future__ import annotations

import pytest

from qa.answer import compose_answer, normalize_answer
from qa.errors import NewsQAError
from qa.types import Chunk, Document, Span

A = Document("a", "Filler. The 640 POWs were freed in May. Officials said 640 POWs went home.",
             title="Freed", source="BBC", url="https://bbc.example/a", published="2024-05-02")
B = Document("b", "Reports put the number at 600 POWs, freed in May.", title="Release",
             source="Reuters", url="https://reuters.example/b")
C = Document("c", "About 700 prisoners were released.", title="Prisoners", source="AP")
DOCS = {d.id: d for d in (A, B, C)}


def span(doc: Document, text: str, score: float, occurrence: int = 0) -> Span:
    start = -1
    for _ in range(occurrence + 1):
        start = doc.text.index(text, start + 1)
    return Span(doc.id, start, start + len(text), text, score)


def chunks_of(doc: Document, size: int = 40) -> list[Chunk]:
    return [Chunk(doc.id, i, min(i + size, len(doc.text)), doc.text[i:i + size])
            for i in range(0, len(doc.text), size // 2)]


CHUNKS = chunks_of(A) + chunks_of(B) + chunks_of(C)


@pytest.mark.parametrize("text, expected", [
    ("The 640 POWs.", "640 pows"),
    ("640 pows", "640 pows"),
    ("  An  apple,  a day!", "apple day"),
    ("Theatre", "theatre"),
    ("U.S.-led", "usled"),
    ("the", ""),
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_equal_spans_form_one_cited_answer():
    spans = [span(A, "The 640 POWs", 0.6), span(A, "640 POWs", 0.8, occurrence=1),
             span(B, "600 POWs", 0.5)]
    answer = compose_answer("How many POWs?", spans, DOCS, CHUNKS, threshold=0.3)
    assert answer.found and answer.text == "640 POWs" and answer.score == 0.8
    assert answer.best_text == "640 POWs"
    assert [c.score for c in answer.citations] == [0.8, 0.6]
    first = answer.citations[0]
    assert (first.doc_id, first.title, first.source, first.url, first.published) == (
        "a", "Freed", "BBC", "https://bbc.example/a", "2024-05-02")
    for c in answer.citations:
        doc = DOCS[c.doc_id]
        assert doc.text[c.start:c.end] == c.quote
        assert doc.text[c.passage_start:c.passage_start + len(c.passage)] == c.passage
        assert c.passage_start <= c.start and c.end <= c.passage_start + len(c.passage)
    assert [a.text for a in answer.alternatives] == ["600 POWs"]
    assert answer.alternatives[0].citations[0].source == "Reuters"
    assert answer.retrieved == CHUNKS


def test_below_threshold_is_not_found_but_offers_candidates():
    spans = [span(A, "640 POWs", 0.2), span(B, "600 POWs", 0.15), span(C, "700", 0.05),
             span(B, "May", 0.01)]
    answer = compose_answer("How many POWs?", spans, DOCS, CHUNKS, threshold=0.5,
                            max_alternatives=3)
    assert not answer.found and answer.text == "" and answer.score == 0.2
    assert answer.citations == []
    assert [a.text for a in answer.alternatives] == ["640 POWs", "600 POWs", "700"]
    assert answer.retrieved == CHUNKS
    assert answer.best_text == "640 POWs"  # the reader's pick, apart from the threshold


def test_no_spans_is_not_found_with_score_zero():
    answer = compose_answer("How many?", [], DOCS, CHUNKS, threshold=0.0)
    assert not answer.found and answer.score == 0.0 and answer.alternatives == []
    assert answer.best_text == ""


def test_alternatives_prefer_other_articles():
    spans = [span(A, "640 POWs", 0.9), span(A, "May", 0.5), span(A, "Officials", 0.4),
             span(C, "700", 0.1), span(B, "600 POWs", 0.05)]
    answer = compose_answer("How many?", spans, DOCS, CHUNKS, threshold=0.5, max_alternatives=3)
    assert answer.text == "640 POWs"
    assert [a.text for a in answer.alternatives] == ["May", "700", "600 POWs"]


def test_spans_that_normalise_to_nothing_are_dropped():
    answer = compose_answer("Which?", [span(A, "The", 0.9), span(B, "600 POWs", 0.4)], DOCS,
                            CHUNKS, threshold=0.1)
    assert answer.text == "600 POWs" and answer.alternatives == []


def test_inconsistent_spans_raise():
    good = span(A, "640 POWs", 0.9)
    with pytest.raises(NewsQAError, match="not in the index"):
        compose_answer("q", [Span("zzz", 0, 3, "abc", 0.9)], DOCS, CHUNKS, threshold=0.0)
    with pytest.raises(NewsQAError, match="does not match"):
        compose_answer("q", [Span("a", good.start + 1, good.end, good.text, 0.9)], DOCS, CHUNKS,
                       threshold=0.0)
    with pytest.raises(NewsQAError, match="none of the retrieved chunks"):
        compose_answer("q", [good], DOCS, chunks_of(B), threshold=0.0)
