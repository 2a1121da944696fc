"""Metrics on hand-computed cases: SQuAD EM/F1, retrieval, no-answer threshold."""
import math

import pytest

from qa.evaluation.metrics import (best_threshold, exact_match, f1, recall_at_k,
                                   reciprocal_rank, right)


def test_exact_match_after_normalisation():
    assert exact_match("The 640.", ["640"]) == 1.0
    assert exact_match("the 640 POWs", ["640"]) == 0.0
    assert exact_match("istanbul", ["Istanbul"]) == 1.0


def test_f1_partial_overlap():
    # normalisation drops "the": prediction "640 pows" (precision 1/2) vs gold "640" (recall 1)
    assert f1("the 640 POWs", ["640"]) == pytest.approx(2 * (0.5 * 1) / (0.5 + 1))
    assert f1("the 640 POWs", ["640"]) == pytest.approx(0.667, abs=1e-3)
    assert f1("Vladimir Medinsky said", ["Kremlin aide Vladimir Medinsky"]) == pytest.approx(
        2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    assert f1("Ankara", ["Istanbul"]) == 0.0


def test_best_gold_answer_counts():
    golds = ["June 2", "on June 2", "2 June 2025"]
    assert exact_match("on June 2", golds) == 1.0
    assert f1("June", golds) == pytest.approx(2 * 1 * 0.5 / 1.5)  # best: "June 2"


def test_repeated_tokens_count_once_each():
    # "640 640" vs "640": one shared token, precision 1/2, recall 1
    assert f1("640 640", ["640"]) == pytest.approx(2 / 3)


def test_unanswerable_scores_only_the_empty_prediction():
    assert exact_match("", []) == 1.0
    assert f1("", []) == 1.0
    assert exact_match("Brazil", []) == 0.0
    assert f1("Brazil", []) == 0.0
    # an answer that normalises to nothing is no answer at all
    assert f1("", ["the"]) == 1.0


def test_empty_prediction_on_answerable_question_scores_zero():
    assert exact_match("", ["640"]) == 0.0
    assert f1("", ["640"]) == 0.0


def test_an_answer_is_right_with_most_of_the_golds_words_and_little_else():
    gold = ["John F. Kennedy and Lyndon Johnson"]
    assert right("John F. Kennedy", gold) == 1.0  # 3 of 6 words, nothing else: F1 0.67
    assert right("Kennedy", gold) == 0.0  # F1 0.33
    assert right("the presidents John F. Kennedy and Lyndon Johnson of the USA", gold) == 1.0
    assert right("", []) == 1.0 and right("Kennedy", []) == 0.0 and right("", gold) == 0.0


def test_recall_at_k_and_reciprocal_rank():
    ranked = ["a", "b", "a", "c"]
    assert [recall_at_k(ranked, "c", k) for k in (1, 3, 4, 10)] == [0.0, 0.0, 1.0, 1.0]
    assert recall_at_k(ranked, "a", 1) == 1.0
    assert reciprocal_rank(ranked, "a") == 1.0
    assert reciprocal_rank(ranked, "b") == 0.5
    assert reciprocal_rank(ranked, "c") == 0.25
    assert reciprocal_rank(ranked, "z") == 0.0
    assert recall_at_k([], "a", 5) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(ranked, "a", 0)


def test_best_threshold_hand_made():
    # question:         q1    q2    q3    q4
    # best-span score:  0.9   0.7   0.4   0.2
    # F1 if answered:   1.0   0.0   0.5   0.0   (q2 and q4 are unanswerable)
    # F1 if abstained:  0     1     0     1
    # answer top 0: 2/4, top 1: 3/4, top 2: 2/4, top 3: 2.5/4, top 4: 1.5/4 → answer only q1
    threshold, best = best_threshold([0.9, 0.7, 0.4, 0.2], [1.0, 0.0, 0.5, 0.0], [0, 1, 0, 1])
    assert threshold == 0.9
    assert best == pytest.approx(0.75)


def test_best_threshold_answer_everything_and_nothing():
    threshold, best = best_threshold([0.3, 0.1], [1.0, 1.0], [0.0, 0.0])
    assert (threshold, best) == (0.1, 1.0)
    threshold, best = best_threshold([0.3, 0.1], [0.0, 0.0], [1.0, 1.0])
    assert threshold > 0.3 and math.isclose(threshold, 0.3) and best == 1.0


def test_best_threshold_keeps_tied_scores_together():
    # q1 and q2 share a score, so no threshold answers q1 (F1 1) without q2 (F1 0 vs 1 abstained):
    # abstain on all 2/3, answer q1+q2 2/3 (tie: fewer answers win), answer all 1/3
    threshold, best = best_threshold([0.5, 0.5, 0.2], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0])
    assert threshold > 0.5 and math.isclose(threshold, 0.5) and best == pytest.approx(2 / 3)
    # with q2 half right when answered, answering the pair wins: (1 + 0.5 + 1) / 3
    threshold, best = best_threshold([0.5, 0.5, 0.2], [1.0, 0.5, 0.0], [0.0, 1.0, 1.0])
    assert threshold == 0.5 and best == pytest.approx(2.5 / 3)


def test_best_threshold_rejects_bad_input():
    with pytest.raises(ValueError):
        best_threshold([0.5], [1.0, 0.0], [0.0])
    with pytest.raises(ValueError):
        best_threshold([], [], [])
