"""Span decoding: one window's start/end logits into scored spans, their edges trimmed to the
answer, and the best distinct spans across windows and chunks."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from qa.types import Span

# Two spans of one document are the same answer when their overlap covers at least this share of
# the shorter one (containment or near-containment, e.g. "Obama" and "Barack Obama").
OVERLAP_SAME_ANSWER = 0.5

_EDGE_PUNCTUATION = ",;:!?\"'“”‘’«»"
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {c: o for o, c in _OPENERS.items()}


def decode_spans(start_logits: np.ndarray, end_logits: np.ndarray, context: np.ndarray,
                 top_k: int, max_answer_tokens: int) -> list[tuple[int, int, float]]:
    """The ``top_k`` most probable spans of one window as (first token, last token,
    probability), best first.

    Start and end probabilities are softmaxes over the context tokens plus CLS (position 0, the
    null answer), so a window that holds no answer gives its spans low probabilities. A span's
    probability is p(start) * p(end); it may not end before it starts nor be longer than
    ``max_answer_tokens``. CLS itself is never a span; spans of probability 0 are dropped.
    """
    allowed = context.copy()
    allowed[0] = True
    p_start, p_end = _softmax(start_logits, allowed), _softmax(end_logits, allowed)
    tokens = np.flatnonzero(context)
    scores = np.outer(p_start[tokens], p_end[tokens])
    length = tokens[None, :] - tokens[:, None]
    scores[(length < 0) | (length >= max_answer_tokens)] = 0.0
    flat = scores.ravel()
    k = min(top_k, flat.size)
    if k == 0:
        return []
    best = np.argpartition(-flat, k - 1)[:k]
    best = best[np.argsort(-flat[best], kind="stable")]
    best = best[flat[best] > 0]
    firsts, lasts = np.unravel_index(best, scores.shape)
    return [(int(tokens[f]), int(tokens[e]), float(flat[i]))
            for f, e, i in zip(firsts, lasts, best)]


def _softmax(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Softmax over the ``allowed`` positions; the others get probability 0."""
    x = np.where(allowed, logits, -np.inf)
    x = np.exp(x - x.max())
    return x / x.sum()


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Move ``start``/``end`` inwards past edge whitespace and punctuation that is no part of the
    answer, so the span stays a slice of ``text`` (never re-found by searching strings)."""
    while start < end and _strip_first(text[start:end]):
        start += 1
    while start < end and _strip_last(text[start:end]):
        end -= 1
    return start, end


def _strip_first(span: str) -> bool:
    """Whether the first character is not part of the answer; "(AP)" keeps its bracket."""
    ch = span[0]
    if ch in _OPENERS:
        return _OPENERS[ch] not in span
    return ch.isspace() or ch in _EDGE_PUNCTUATION or ch == "." or ch in _CLOSERS


def _strip_last(span: str) -> bool:
    """Whether the last character is not part of the answer; "U.S." keeps its final period."""
    ch = span[-1]
    if ch in _CLOSERS:
        return _CLOSERS[ch] not in span
    if ch == ".":
        return "." not in span[:-1]
    return ch.isspace() or ch in _EDGE_PUNCTUATION or ch in _OPENERS


def best_spans(spans: Sequence[Span], top_n: int) -> list[Span]:
    """The ``top_n`` best distinct spans: one per location, and one per heavily overlapping group.

    The same span read in two overlapping chunks or windows keeps its best score.
    """
    by_location: dict[tuple[str, int, int], Span] = {}
    for span in spans:
        key = (span.doc_id, span.start, span.end)
        if key not in by_location or span.score > by_location[key].score:
            by_location[key] = span
    kept: list[Span] = []
    for span in sorted(by_location.values(), key=lambda s: -s.score):
        if not any(k.doc_id == span.doc_id and _overlap(k, span) >= OVERLAP_SAME_ANSWER
                   for k in kept):
            kept.append(span)
            if len(kept) == top_n:
                break
    return kept


def _overlap(a: Span, b: Span) -> float:
    """Shared characters as a share of the shorter span."""
    shared = min(a.end, b.end) - max(a.start, b.start)
    return max(shared, 0) / min(a.end - a.start, b.end - b.start)
