"""compose_answer and normalize_answer on hand-made spans and documents."""
from __future__ import annotations

import math
from datetime import date

import pytest

from qa.answer import CLOSE_SHARE, compose_answer
from qa.decide import LogisticDecision, ReaderScore
from qa.errors import NewsQAError
from qa.recency import recency_factor, with_resolved
from qa.text import normalize_answer
from qa.types import Chunk, Document, Hit, Span

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


def hits(chunks: list[Chunk]) -> list[Hit]:
    """Chunks as retrieved without scores (as ``read_document`` passes them)."""
    return [Hit(c, 0.0) for c in chunks]


HITS = hits(CHUNKS)


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
    answer = compose_answer("How many POWs?", spans, DOCS, HITS, decision=ReaderScore(0.3))
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
    answer = compose_answer("How many POWs?", spans, DOCS, HITS, decision=ReaderScore(0.5),
                            max_alternatives=3)
    assert not answer.found and answer.text == "" and answer.score == 0.2
    assert answer.citations == []
    assert [a.text for a in answer.alternatives] == ["640 POWs", "600 POWs", "700"]
    assert answer.retrieved == CHUNKS
    assert answer.best_text == "640 POWs"  # the reader's pick, apart from the threshold


def test_no_spans_is_not_found_with_score_zero():
    answer = compose_answer("How many?", [], DOCS, HITS, decision=ReaderScore(0.0))
    assert not answer.found and answer.score == 0.0 and answer.alternatives == []
    assert answer.best_text == ""


def test_alternatives_prefer_other_articles():
    spans = [span(A, "640 POWs", 0.9), span(A, "May", 0.5), span(A, "Officials", 0.4),
             span(C, "700", 0.1), span(B, "600 POWs", 0.05)]
    answer = compose_answer("How many?", spans, DOCS, HITS, decision=ReaderScore(0.5),
                            max_alternatives=3)
    assert answer.text == "640 POWs"
    assert [a.text for a in answer.alternatives] == ["May", "700", "600 POWs"]


def test_spans_that_normalise_to_nothing_are_dropped():
    answer = compose_answer("Which?", [span(A, "The", 0.9), span(B, "600 POWs", 0.4)], DOCS,
                            HITS, decision=ReaderScore(0.1))
    assert answer.text == "600 POWs" and answer.alternatives == []


def test_inconsistent_spans_raise():
    good = span(A, "640 POWs", 0.9)
    with pytest.raises(NewsQAError, match="not in the index"):
        compose_answer("q", [Span("zzz", 0, 3, "abc", 0.9)], DOCS, HITS,
                       decision=ReaderScore(0.0))
    with pytest.raises(NewsQAError, match="does not match"):
        compose_answer("q", [Span("a", good.start + 1, good.end, good.text, 0.9)], DOCS, HITS,
                       decision=ReaderScore(0.0))
    with pytest.raises(NewsQAError, match="none of the retrieved chunks"):
        compose_answer("q", [good], DOCS, hits(chunks_of(B)), decision=ReaderScore(0.0))


def test_a_fitted_decision_gives_the_confidence():
    scored = [Hit(c, 0.1, dense=0.5, bm25=1.0) for c in CHUNKS]
    decision = LogisticDecision({"reader": 4.0, "coverage_doc": 2.0}, bias=-3.0, threshold=0.5,
                                key="k")
    spans = [span(A, "640 POWs", 0.8), span(B, "600 POWs", 0.5)]
    answer = compose_answer("How many POWs were freed?", spans, DOCS, scored, decision=decision)
    # question words: many, pows, freed; article A has the last two
    assert answer.evidence["reader"] == 0.8
    assert answer.evidence["coverage_doc"] == pytest.approx(2 / 3)
    confidence = 1 / (1 + math.exp(-(-3.0 + 4.0 * 0.8 + 2.0 * 2 / 3)))
    assert answer.found and answer.text == "640 POWs"
    assert answer.score == pytest.approx(confidence)
    assert answer.citations[0].score == 0.8  # citations keep the reader's span score
    stricter = compose_answer("How many POWs were freed?", spans, DOCS, scored,
                              decision=decision, threshold=0.99)
    assert not stricter.found and stricter.score == pytest.approx(confidence)
    assert stricter.best_text == "640 POWs"


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_the_most_probable_candidate_wins_over_the_best_span_and_all_share_its_scale():
    """Two places in article A say "640 POWs", each scored below C's one "700 prisoners": the
    fitted decision, which weighs support more than the span score, finds 640 the likelier, so
    it is the answer, and the alternative is shown with its own probability, below it."""
    scored = [Hit(c, 0.1, dense=0.5, bm25=1.0) for c in CHUNKS]
    decision = LogisticDecision({"support": 4.0, "reader": 1.0, "margin": 1.0}, bias=-2.0,
                                threshold=0.5, key="k")
    spans = [span(A, "640 POWs", 0.5), span(A, "640 POWs", 0.4, occurrence=1),
             span(C, "700 prisoners", 0.9)]
    answer = compose_answer("How many POWs were freed?", spans, DOCS, scored, decision=decision)
    assert answer.found and answer.text == "640 POWs"
    assert answer.evidence["margin"] == pytest.approx(-0.4)  # to the best other candidate
    assert answer.score == pytest.approx(sigmoid(-2.0 + 4.0 * 2 + 0.5 - 0.4))
    assert answer.reader_score == 0.5
    [other] = answer.alternatives
    assert other.text == "700 prisoners" and other.reader_score == 0.9
    assert other.score == pytest.approx(sigmoid(-2.0 + 4.0 + 0.9 + 0.4))
    assert other.score < answer.score
    assert other.citations[0].score == 0.9 and other.citations[0].confidence == other.score
    data = answer.to_dict()
    assert data["alternatives"][0]["score"] == other.score
    assert data["alternatives"][0]["citations"][0]["reader_score"] == 0.9
    unsure = compose_answer("How many POWs were freed?", spans, DOCS, scored,
                            decision=decision, threshold=0.9999)
    assert not unsure.found and [a.text for a in unsure.alternatives] == [
        "640 POWs", "700 prisoners"]  # most probable first
    assert unsure.best_text == "640 POWs"


# --- relative dates and sources that disagree ---------------------------------------------------

WED = Document("w", "Filler text. The exchange happened on Monday. Talks began yesterday, after "
               "a pause last week.", title="Talks", source="BBC", published="2025-06-04")


@pytest.mark.parametrize("quote, resolved, shown", [
    ("Monday", "2025-06-02", "Monday (2 June 2025)"),
    ("on Monday", "2025-06-02", "on Monday (2 June 2025)"),
    ("yesterday", "2025-06-03", "yesterday (3 June 2025)"),
    ("last week", "2025-05-26/2025-06-01", "last week (26 May – 1 June 2025)"),
])
def test_a_relative_date_answer_carries_its_resolved_date(quote, resolved, shown):
    chunks = chunks_of(WED, size=200)
    answer = compose_answer("When?", [span(WED, quote, 0.9)], {WED.id: WED}, hits(chunks),
                            decision=ReaderScore(0.0))
    assert answer.text == answer.citations[0].quote == quote  # the quote itself is unchanged
    assert WED.text[answer.citations[0].start:answer.citations[0].end] == quote
    assert answer.resolved_date == resolved
    assert with_resolved(answer.text, answer.resolved_date) == shown


def test_an_undated_article_resolves_no_relative_date():
    undated = Document("u", "It happened on Monday.", title="U")
    answer = compose_answer("When?", [span(undated, "on Monday", 0.9)], {"u": undated},
                            hits(chunks_of(undated)), decision=ReaderScore(0.0))
    assert answer.text == "on Monday" and answer.resolved_date == ""


OLD = Document("old", "The forecast was a 400 mln stg shortage.", title="Old", source="Reuters",
               published="1987-03-02")
NEW = Document("new", "The forecast is now a 700 mln stg shortage.", title="New", source="AP",
               published="1987-03-05")
RIVALS = {d.id: d for d in (OLD, NEW)}
RIVAL_HITS = hits(chunks_of(OLD, 200) + chunks_of(NEW, 200))


def test_different_answers_from_two_articles_are_shown_newest_first():
    spans = [span(OLD, "400 mln stg", 0.8), span(NEW, "700 mln stg", 0.7)]
    answer = compose_answer("What is the forecast?", spans, RIVALS, RIVAL_HITS,
                            decision=ReaderScore(0.0))
    assert answer.text == "400 mln stg"  # not a current-state question: the best span
    assert [(c.quote, c.source, c.published) for c in answer.disagreement] == [
        ("700 mln stg", "AP", "1987-03-05"), ("400 mln stg", "Reuters", "1987-03-02")]
    newest = compose_answer("What is the latest forecast?", spans, RIVALS, RIVAL_HITS,
                            decision=ReaderScore(0.0), current_as_of=date(1987, 3, 5))
    assert [c.confidence for c in answer.disagreement] == [0.7, 0.8]  # on the answer's scale
    assert newest.text == "700 mln stg" and [
        (c.doc_id, c.start, c.score) for c in newest.disagreement] == [
        (c.doc_id, c.start, c.score) for c in answer.disagreement]
    # the rule puts the newest first: the older figure is not shown as the likelier one now
    assert [c.confidence for c in newest.disagreement] == [0.7, 0.7]


def test_an_older_answer_the_newest_supersedes_is_no_evidence_against_it():
    """The decision weighs the newest answer against the candidates it does not supersede: not a
    negative margin to the older figure, nor that figure as another article's best span."""
    spans = [span(OLD, "400 mln stg", 0.8), span(NEW, "700 mln stg", 0.7),
             span(NEW, "shortage", 0.1)]
    scored = [Hit(h.chunk, 0.1, dense=0.5, bm25=1.0) for h in RIVAL_HITS]  # as retrieved
    plain = compose_answer("What is the forecast?", spans, RIVALS, scored,
                           decision=ReaderScore(0.0))
    assert plain.evidence["margin"] == pytest.approx(0.1)
    assert plain.evidence["other_doc"] == pytest.approx(0.7)
    newest = compose_answer("What is the latest forecast?", spans, RIVALS, scored,
                            decision=ReaderScore(0.0), current_as_of=date(1987, 3, 5))
    assert newest.text == "700 mln stg" and len(newest.disagreement) == 2
    assert newest.evidence["margin"] == pytest.approx(0.6)  # to "shortage", not to 400 mln stg
    assert newest.evidence["other_doc"] == 0.0
    assert newest.alternatives[0].text == "400 mln stg"  # still offered, and listed as differing


def test_a_current_state_question_weighs_answers_by_their_articles_recency():
    """A newer article's answer scored under half the older one's is no rival by the reader's
    scores alone; weighed by recency as retrieval weighs chunks, it is close, and the newest."""
    now = date(1987, 3, 5)
    weak = 0.8 * CLOSE_SHARE * recency_factor(OLD.published, now) / recency_factor(
        NEW.published, now) + 0.01
    assert weak < 0.8 * CLOSE_SHARE  # not close by the reader's scores
    spans = [span(OLD, "400 mln stg", 0.8), span(NEW, "700 mln stg", weak)]
    plain = compose_answer("What is the forecast?", spans, RIVALS, RIVAL_HITS,
                           decision=ReaderScore(0.0))
    assert plain.text == "400 mln stg" and plain.disagreement == []
    current = compose_answer("What is the latest forecast?", spans, RIVALS, RIVAL_HITS,
                             decision=ReaderScore(0.0), current_as_of=now)
    assert current.text == "700 mln stg"
    assert current.citations[0].score == weak  # the reader's score, not the weighed one
    assert [(c.quote, c.published) for c in current.disagreement] == [
        ("700 mln stg", "1987-03-05"), ("400 mln stg", "1987-03-02")]
    much_later = compose_answer("What is the latest forecast?", spans, RIVALS, RIVAL_HITS,
                                decision=ReaderScore(0.0), current_as_of=date(1988, 1, 1))
    assert much_later.text == "400 mln stg"  # both old: about equal factors, the reader decides


TOKYO = Document("tokyo", "The bank sold 200 billion yen in bills.", title="Tokyo",
                 source="Kyodo", published="1987-06-18")
LATER = Document("later", "The bank sells 1,200 billion yen in bills, after 200 billion yen.",
                 title="Later", source="Reuters", published="1987-06-29")
SALES = {d.id: d for d in (TOKYO, LATER)}
SALE_HITS = hits(chunks_of(TOKYO, 200) + chunks_of(LATER, 200))


def test_an_article_answers_with_its_best_span_only():
    """The later article's weak "200 billion yen" does not make it a source of that answer: its
    own answer, "1,200 billion yen", is the one that differs, and the latest."""
    spans = [span(TOKYO, "200 billion yen", 0.8), span(LATER, "1,200 billion yen", 0.55),
             span(LATER, "200 billion yen", 0.12, occurrence=1)]
    answer = compose_answer("How much is the bank selling?", spans, SALES, SALE_HITS,
                            decision=ReaderScore(0.0))
    assert answer.text == "200 billion yen"
    assert [(c.doc_id, c.quote) for c in answer.disagreement] == [
        ("later", "1,200 billion yen"), ("tokyo", "200 billion yen")]
    current = compose_answer("How much is the bank selling now?", spans, SALES, SALE_HITS,
                             decision=ReaderScore(0.0), current_as_of=date(1987, 6, 29))
    assert current.text == "1,200 billion yen" and current.citations[0].doc_id == "later"


def test_no_disagreement_from_one_article_the_same_answer_or_a_far_weaker_rival():
    one = compose_answer("Forecast?", [span(OLD, "400 mln stg", 0.8), span(OLD, "shortage", 0.79)],
                         RIVALS, RIVAL_HITS, decision=ReaderScore(0.0))
    assert one.found and one.disagreement == []
    same = compose_answer("Forecast?", [span(OLD, "400 mln stg", 0.8),
                                        span(NEW, "mln stg", 0.75)],  # fewer words, same answer
                          RIVALS, RIVAL_HITS, decision=ReaderScore(0.0))
    assert same.disagreement == []
    weak = compose_answer("Forecast?", [span(OLD, "400 mln stg", 0.8),
                                        span(NEW, "700 mln stg", 0.8 * CLOSE_SHARE - 0.01)],
                          RIVALS, RIVAL_HITS, decision=ReaderScore(0.0))
    assert weak.disagreement == []


# --- ids and links (issue 26) -------------------------------------------------------------------


def test_citations_carry_the_users_id_and_the_url_of_their_article():
    """The user's id for an article (a JSON record's ``id``) travels with every citation of it,
    in the answer's JSON too, so that answers map back to the user's data."""
    keyed = Document("k", A.text, title="Freed", url="https://bbc.example/a",
                     external_id="bbc-world-017")
    docs = {**DOCS, "k": keyed}
    spans = [span(keyed, "640 POWs", 0.8, occurrence=1), span(B, "600 POWs", 0.5)]
    answer = compose_answer("How many POWs?", spans, docs, hits(chunks_of(keyed) + chunks_of(B)),
                            decision=ReaderScore(0.3))
    assert [(c.external_id, c.url) for c in answer.citations] == [
        ("bbc-world-017", "https://bbc.example/a")]
    assert answer.alternatives[0].citations[0].external_id == ""  # B has none
    assert answer.to_dict()["citations"][0]["external_id"] == "bbc-world-017"
