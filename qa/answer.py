"""Turn the reader's spans into an Answer: one best candidate, cited, plus alternatives."""
from __future__ import annotations

import re
import string
from typing import Mapping, Sequence

from qa.errors import NewsQAError
from qa.types import Answer, Chunk, Citation, Document, Span

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze whitespace.

    The official SQuAD v1.1 normalisation, step for step, so exact match and F1 computed with it
    are comparable with published numbers; it also decides which spans are "the same answer".
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def compose_answer(question: str, spans: Sequence[Span], documents: Mapping[str, Document],
                   chunks: Sequence[Chunk], *, threshold: float,
                   max_alternatives: int = 3) -> Answer:
    """The best group of equal spans as the answer if it scores ``threshold`` or more.

    Spans whose normalised texts are equal form one candidate, scored by its best span. Below the
    threshold the answer is "not found", and the best candidates are still offered as alternatives.
    """
    candidates = [_candidate(question, group, documents, chunks) for group in _groups(spans)]
    if not candidates or candidates[0].score < threshold:
        return Answer(question, "", candidates[0].score if candidates else 0.0,
                      alternatives=candidates[:max_alternatives], retrieved=list(chunks))
    best, others = candidates[0], candidates[1:]
    return Answer(question, best.text, best.score, best.citations,
                  _alternatives(best, others, max_alternatives), list(chunks))


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
    return Answer(question, group[0].text, group[0].score,
                  [_citation(span, documents, chunks) for span in group])


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
                    quote, chunk.text, chunk.start, span.score)


def _alternatives(best: Answer, others: list[Answer], limit: int) -> list[Answer]:
    """Up to ``limit`` other candidates, those from articles the answer does not cite first.

    A different answer from another article is the more useful hint (the sources may disagree);
    the chosen ones are listed by score.
    """
    cited = {c.doc_id for c in best.citations}
    preferred = sorted(others, key=lambda a: all(c.doc_id in cited for c in a.citations))
    return sorted(preferred[:limit], key=lambda a: -a.score)
