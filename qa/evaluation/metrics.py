"""Evaluation metrics: SQuAD EM/F1, retrieval recall/MRR, the no-answer threshold (question
types are ``qa.answer_type``'s).

Pure functions of their arguments, so the report's numbers are reproducible and testable by hand.
EM and F1 follow the official SQuAD 2.0 script: answers are normalised
(``qa.text.normalize_answer``) and a prediction scores the best match over the gold answers; a
question with no gold answer scores 1 only for the empty prediction ("not found").
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

from qa.text import normalize_answer



def _gold_texts(golds: Sequence[str]) -> list[str]:
    """Gold answers that survive normalisation, or ``[""]`` for an unanswerable question."""
    return [g for g in golds if normalize_answer(g)] or [""]


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _gold_texts(golds)))


def _token_f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)  # "not found" is right only if there is no answer
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, golds: Sequence[str]) -> float:
    """Token-overlap F1 of the prediction against its best-matching gold answer."""
    return max(_token_f1(prediction, g) for g in _gold_texts(golds))


# An answer is "right" when its F1 against the gold is at least this: it holds most of the gold's
# words and little else. Crowd-written gold spans of news differ in where they start and end
# ("Kennedy" against "John F. Kennedy and Lyndon Johnson" is not), so exact match undercounts
# the answers a reader would accept; the decision's confidence is P(right) (``qa.decide``).
RIGHT_F1 = 0.5


def right(prediction: str, golds: Sequence[str]) -> float:
    """1.0 if the prediction is right (F1 >= ``RIGHT_F1``; "not found" only without a gold)."""
    return float(f1(prediction, golds) >= RIGHT_F1)


def recall_at_k(retrieved: Sequence[str], gold: str, k: int) -> float:
    """1.0 if ``gold`` is among the first ``k`` retrieved ids, else 0.0."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return float(gold in retrieved[:k])


def reciprocal_rank(retrieved: Sequence[str], gold: str) -> float:
    """1 / rank of ``gold`` in ``retrieved`` (1-based), 0.0 if it was not retrieved."""
    try:
        return 1.0 / (list(retrieved).index(gold) + 1)
    except ValueError:
        return 0.0


def best_threshold(scores: Sequence[float], f1_answered: Sequence[float],
                   f1_abstained: Sequence[float]) -> tuple[float, float]:
    """The answer threshold that maximises mean F1, and that F1 (SQuAD 2.0 ``best_f1_thresh``).

    Question ``i`` is answered when ``scores[i] >= threshold`` (scoring ``f1_answered[i]``) and
    abstains otherwise (scoring ``f1_abstained[i]``: 1 for an unanswerable question, else 0).
    Questions are answered in decreasing score order and equal scores go together, since no
    threshold can separate them. Ties in F1 keep the higher threshold (fewer answers). When
    abstaining on everything is best, the threshold is just above the highest score.
    """
    n = len(scores)
    if not (n == len(f1_answered) == len(f1_abstained)):
        raise ValueError("scores, f1_answered and f1_abstained must have the same length")
    if n == 0:
        raise ValueError("best_threshold needs at least one question")
    order = sorted(range(n), key=lambda i: -scores[i])
    total = sum(f1_abstained)
    best_total, best = total, math.nextafter(scores[order[0]], math.inf)
    for pos, i in enumerate(order):
        total += f1_answered[i] - f1_abstained[i]
        group_ends = pos + 1 == n or scores[order[pos + 1]] != scores[i]
        if group_ends and total > best_total:
            best_total, best = total, float(scores[i])
    return best, best_total / n

