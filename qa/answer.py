"""Turn the reader's spans into an Answer: one best candidate, cited, plus alternatives."""
from __future__ import annotations

import dataclasses
from datetime import date
from typing import Callable, Mapping, Sequence

from qa.decide import Decision, evidence
from qa.errors import NewsQAError
from qa.recency import parse_day, recency_factor, resolve_relative_date
from qa.text import normalize_answer
from qa.types import Answer, Chunk, Citation, Document, Hit, Span


def compose_answer(question: str, spans: Sequence[Span], documents: Mapping[str, Document],
                   hits: Sequence[Hit], *, decision: Decision, threshold: float | None = None,
                   max_alternatives: int = 3, current_as_of: date | None = None) -> Answer:
    """The most probable group of equal spans as the answer if the decision is confident enough.

    Spans whose normalised texts are equal form one candidate (its ``reader_score``: its best
    span's). The decision weighs each candidate with the retrieval scores of ``hits`` (the
    chunks read, in rank order) into its probability of being right, its ``score``: one scale
    for the answer, the alternatives and the articles that differ (each citation's
    ``confidence``), and none shown above the answer (``_ranked``). Below ``threshold``
    (default: the decision's) the answer is "not found", and the most probable candidates are
    still offered as alternatives. When articles disagree (``disagreement``), a found answer
    lists them. ``current_as_of`` is "now" for a question about the current state (None for
    any other): the articles' answers are then weighed by their recency and the newest of those
    that differ is the answer (the rule is in ``qa.recency``).
    """
    chunks = [h.chunk for h in hits]
    candidates = [_candidate(question, group, documents, chunks) for group in _groups(spans)]
    differ = disagreement(candidates, weight=None if current_as_of is None else
                          _recency_weight(hits, current_as_of))
    newest = (next(c for c in candidates if differ[0] in c.citations)
              if current_as_of is not None and differ else None)
    ranked, features = _ranked(question, candidates, hits, documents, decision, newest, differ)
    confidence = ranked[0].score if ranked else decision.confidence({})
    if not ranked or confidence < (decision.threshold if threshold is None else threshold):
        return Answer(question, "", confidence, alternatives=ranked[:max_alternatives],
                      retrieved=chunks, evidence=features,
                      reader_score=ranked[0].reader_score if ranked else 0.0)
    best, others = ranked[0], ranked[1:]
    shown = {(c.doc_id, c.start, c.end): c for a in ranked for c in a.citations}
    return Answer(question, best.text, confidence, best.citations,
                  _alternatives(best, others, max_alternatives), chunks, features,
                  [shown[(d.doc_id, d.start, d.end)] for d in differ], best.reader_score)


def _ranked(question: str, candidates: list[Answer], hits: Sequence[Hit],
            documents: Mapping[str, Document], decision: Decision, newest: Answer | None,
            differ: list[Citation]) -> tuple[list[Answer], dict[str, float]]:
    """The candidates scored by the decision, the answer first, then by probability; and the
    evidence of the answer.

    The answer is the most probable of the candidates close to the reader's best
    (``CLOSE_SHARE``), or ``newest``, the recency rule's pick. The decision was fitted on the
    reader's best candidates: on a span the reader all but ruled out, its features (a long
    span, in the best chunk) say more than they know, so such a span is no contender, and no
    candidate is shown as more probable than the answer.
    """
    scored = [(decision.confidence(f), f, c) for f, c in
              ((evidence(question, candidates, hits, documents, i), c)
               for i, c in enumerate(candidates))]
    if not scored:
        return [], {}
    if newest is None:
        least = CLOSE_SHARE * candidates[0].reader_score  # candidates come best span first
        top, features, chosen = max((s for s in scored if s[2].reader_score >= least),
                                    key=lambda s: s[0])  # max: the first of equals
    else:
        # The older answers that the newest supersedes are not evidence against it: its margin
        # and the best span of another article are taken over the other candidates only.
        weighed = [newest] + [c for c in candidates if c is not newest
                              and not any(d in c.citations for d in differ[1:])]
        chosen, features = newest, evidence(question, weighed, hits, documents)
        top = decision.confidence(features)
    others = sorted(((min(p, top), c) for p, _, c in scored if c is not chosen),
                    key=lambda s: -s[0])  # stable: equal probabilities keep the reader's order
    return [_scored(chosen, top)] + [_scored(c, p) for p, c in others], features


# Two answers are "close" when the weaker one's reader score is at least this share of the
# stronger's. Only close rivals make "Sources differ": a far weaker span elsewhere is noise.
# The reader's span scores share one softmax over the passages read, so two articles that each
# state a figure split it (0.33 and 0.20 for two dated forecasts in tests/test_pipeline.py).
CLOSE_SHARE = 0.5


def disagreement(candidates: Sequence[Answer], close: float = CLOSE_SHARE,
                 weight: Callable[[Citation], float] | None = None) -> list[Citation]:
    """One citation for each different answer that articles give, newest first; [] if agreed.

    ``candidates`` are the groups of equal spans, best first. Each article answers with its best
    span only: a weaker span of another answer in it is no claim of that article (one article
    does not disagree with itself, nor stand for an answer it scored below its own). An answer
    is weighed by its articles' best spans, times ``weight`` of the article when given (the
    recency factor, for a question about the current state). A rival counts when it is close to
    the best (``close``) and is not the same answer with more or fewer words ("Monday" and "on
    Monday"); copies of one answer (wire copies, one outlet's repeats) are one group and count
    once. Each answer is cited from the newest article that gives it, as the latest word on it.
    """
    best_of = _best_of_each_article(candidates)
    answers = []
    for candidate in candidates:
        own = [c for c in candidate.citations if best_of[c.doc_id] is c]
        if own:
            answers.append((max(c.score * (weight(c) if weight else 1.0) for c in own),
                            candidate.text, own))
    answers.sort(key=lambda a: -a[0])  # stable: equal weights keep the candidates' order
    listed: list[Citation] = []
    texts: list[str] = []
    for score, text, own in answers:
        if score < close * answers[0][0]:
            break
        key = f" {normalize_answer(text)} "
        if any(key in other or other in key for other in texts):
            continue
        listed.append(min(own, key=newest_first))
        texts.append(key)
    return sorted(listed, key=newest_first) if len(listed) > 1 else []


def _best_of_each_article(candidates: Sequence[Answer]) -> dict[str, Citation]:
    """Each article's best span among the candidates' citations, by document id."""
    best_of: dict[str, Citation] = {}
    for candidate in candidates:
        for c in candidate.citations:
            if c.doc_id not in best_of or c.score > best_of[c.doc_id].score:
                best_of[c.doc_id] = c
    return best_of


def compose_timeline(question: str, spans: Sequence[Span], documents: Mapping[str, Document],
                     hits: Sequence[Hit], *, decision: Decision) -> list[Citation]:
    """How the story went (``ask(..., timeline=True)``): each article's own answer, its best
    span (as for ``disagreement``), the oldest article first and undated ones last; only the
    articles read on the question's topic (``_on_topic``). ``spans`` are read article by
    article, so that every article read has its say; each citation's ``confidence`` is the
    decision's probability of its answer, on the answer's scale."""
    chunks = [h.chunk for h in hits]
    candidates = [_candidate(question, group, documents, chunks) for group in _groups(spans)]
    ranked, _ = _ranked(question, candidates, hits, documents, decision, None, [])
    on_topic = _on_topic(hits)
    return sorted(filter(on_topic, _best_of_each_article(ranked).values()), key=oldest_first)


def _on_topic(hits: Sequence[Hit]) -> Callable[[Citation], bool]:
    """Whether a citation is quoted from a chunk that matches the question's words (BM25) at
    least ``CLOSE_SHARE`` as well as the best chunk read (all do when no chunk matched any).
    Near-identical reports about something else (another town's power cut, a day newer) are no
    word on the question, however the reader scores their figure: what tells them apart is the
    rare word they lack."""
    best = max((h.bm25 or 0.0 for h in hits), default=0.0)
    matched = {(h.chunk.doc_id, h.chunk.start) for h in hits
               if (h.bm25 or 0.0) >= CLOSE_SHARE * best}
    return lambda citation: (citation.doc_id, citation.passage_start) in matched


def _recency_weight(hits: Sequence[Hit], as_of: date) -> Callable[[Citation], float]:
    """How much an article's answer weighs for a question about the current state: its recency
    factor, or 0 off the topic (``_on_topic``): a newer report about something else is no later
    word on it."""
    on_topic = _on_topic(hits)
    return lambda c: recency_factor(c.published, as_of) if on_topic(c) else 0.0


def newest_first(citation: Citation) -> tuple[bool, int]:
    """Sort key: the newest article first, undated ones last."""
    undated, day = oldest_first(citation)
    return undated, -day


def oldest_first(citation: Citation) -> tuple[bool, int]:
    """Sort key: the oldest article first, undated ones last."""
    day = parse_day(citation.published)
    return day is None, (day or date.min).toordinal()


def _groups(spans: Sequence[Span]) -> list[list[Span]]:
    """Spans grouped by normalised text, each group best first, groups by their best score.

    A span that normalises to nothing (only punctuation or an article) cannot be an answer.
    """
    groups: dict[str, list[Span]] = {}
    for span in sorted(spans, key=lambda s: -s.score):
        key = normalize_answer(span.text)
        if key:
            groups.setdefault(key, []).append(span)
    return list(groups.values())


def _candidate(question: str, group: list[Span], documents: Mapping[str, Document],
               chunks: Sequence[Chunk]) -> Answer:
    """A group of equal spans, scored by its best span until the decision weighs it."""
    return Answer(question, group[0].text, group[0].score,
                  [_citation(span, documents, chunks) for span in group],
                  reader_score=group[0].score)


def _scored(candidate: Answer, probability: float) -> Answer:
    """``candidate`` with the decision's probability as its score and its citations' confidence."""
    return dataclasses.replace(
        candidate, score=probability,
        citations=[dataclasses.replace(c, confidence=probability) for c in candidate.citations])


def _citation(span: Span, documents: Mapping[str, Document], chunks: Sequence[Chunk]) -> Citation:
    """Cite ``span`` from its document, with the chunk it was read in as the passage."""
    doc = documents.get(span.doc_id)
    if doc is None:
        raise NewsQAError(f"The answer cites document {span.doc_id}, which is not in the "
                          "index.")
    quote = doc.text[span.start:span.end]
    if quote != span.text:
        raise NewsQAError(f"The span {span.text!r} does not match document {span.doc_id} at "
                          f"{span.start}:{span.end} ({quote!r}).")
    chunk = next((c for c in chunks if c.doc_id == span.doc_id
                  and c.start <= span.start and span.end <= c.end), None)
    if chunk is None:
        raise NewsQAError(f"The span {span.text!r} of document {span.doc_id} lies in none of the "
                          "retrieved chunks.")
    return Citation(doc.id, doc.title, doc.source, doc.url, doc.published, span.start, span.end,
                    quote, chunk.text, chunk.start, span.score, doc.date_source,
                    resolve_relative_date(quote, doc.published), doc.external_id)


def _alternatives(best: Answer, others: list[Answer], limit: int) -> list[Answer]:
    """Up to ``limit`` other candidates, those from articles the answer does not cite first.

    A different answer from another article is the more useful hint (the sources may disagree);
    the chosen ones are listed by probability (``others`` come most probable first).
    """
    cited = {c.doc_id for c in best.citations}
    preferred = sorted(others, key=lambda a: all(c.doc_id in cited for c in a.citations))
    return sorted(preferred[:limit], key=lambda a: -a.score)
