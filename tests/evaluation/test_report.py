"""The report built from hand-made per-question results: numbers, files and plots."""
import dataclasses
import json

import pytest

from qa.evaluation.report import (PLOTS, QuestionResult, answer_length, build_report,
                                  calibration_error, read_results, render_markdown, write_report)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SETTINGS = {"data": "dev.jsonl", "mode": "e2e", "questions": 4, "limit": None, "reader": "r",
            "embedder": "e", "top_k": 5, "threshold": 0.5, "newsqa_version": "0.1.0",
            "date": "2026-01-01T00:00:00+00:00"}


def result(qid, question, golds, prediction, score, best_span, latency, ranked=(), gold="d1",
           impossible=None):
    return QuestionResult(qid, question, list(golds), impossible, prediction, score, best_span,
                          latency, gold, list(ranked))


@pytest.fixture
def results():
    """Two answerable, two unanswerable; one right, one half right, one wrongly answered."""
    return [
        result("q1", "How many POWs were on the list?", ["640"], "640", 0.9, "640", 0.1,
               ["d1", "d2"], impossible=False),
        result("q2", "Who said it?", ["Vladimir Medinsky"], "Medinsky", 0.6, "Medinsky", 0.3,
               ["d2", "d1"], impossible=False),
        result("q3", "Who won the World Cup?", [], "", 0.2, "Zelenskiy", 0.2, ["d2"],
               impossible=True),
        result("q4", "Where is Canberra?", [], "Belarus", 0.55, "Belarus", 0.4, ["d3", "d2"],
               impossible=True),
    ]


def test_answer_metrics(results):
    report = build_report(results, SETTINGS, e2e=True)
    a = report["answers"]
    assert a["questions"] == 4 and a["answered"] == 3
    assert a["exact_match"] == pytest.approx(2 / 4)  # q1 and q3
    assert a["f1"] == pytest.approx((1 + 2 / 3 + 1 + 0) / 4)  # "Medinsky" vs 2 tokens: F1 2/3
    assert a["has_answer"] == {"questions": 2, "exact_match": 0.5,
                               "f1": pytest.approx((1 + 2 / 3) / 2)}
    assert a["no_answer"] == {"questions": 2, "exact_match": 0.5, "f1": 0.5}
    # answering q1 and q2 only (threshold 0.6) scores (1 + 2/3 + 1 + 1) / 4
    assert a["best_threshold"] == {"threshold": 0.6, "f1": pytest.approx((3 + 2 / 3) / 4)}
    assert a["answer_rate"] == 1.0  # q1, q2
    assert a["abstention"] == 0.5  # q3 "not found", q4 answered


def test_by_answer_length(results):
    by_length = build_report(results, SETTINGS, e2e=True)["by_answer_length"]
    assert list(by_length) == ["1", "2", "3", "4-5", "6-10", "11+"]
    assert by_length["1"] == {"questions": 1, "exact_match": 1.0, "f1": 1.0, "answer_rate": 1.0}
    assert by_length["2"] == {"questions": 1, "exact_match": 0.0, "f1": pytest.approx(2 / 3),
                              "answer_rate": 1.0}
    assert by_length["3"] == {"questions": 0, "exact_match": None, "f1": None,
                              "answer_rate": None}
    # the shortest normalised gold counts; an unanswerable question has none
    assert answer_length(["the Kremlin aide", "an aide"]) == 1 and answer_length([]) == 0


def removed_copies(results):
    """q1 and q2 asked again with their article removed: q1 gets "not found", q2 an answer."""
    return [dataclasses.replace(results[0], golds=[], prediction="", score=0.3, latency=5.0,
                                removed=True),
            dataclasses.replace(results[1], golds=[], prediction="Putin", best_span="Putin",
                                score=0.7, latency=5.0, removed=True)]


def test_removed_articles_get_their_own_section(results):
    plain = build_report(results, SETTINGS, e2e=True)
    report = build_report(results + removed_copies(results), SETTINGS, e2e=True)
    for section in ("answers", "by_question_type", "by_answer_length", "retrieval", "latency"):
        assert report[section] == plain[section]  # of the questions asked of the full index
    assert "removed" not in plain
    removed = report["removed"]
    assert removed["questions"] == 2 and removed["abstention"] == 0.5
    # the mix: q1, q2 with their article (1, 2/3) and without it (1, 0)
    mix = removed["mix"]
    assert (mix["questions"], mix["exact_match"]) == (4, 0.5)
    assert mix["f1"] == pytest.approx((1 + 2 / 3 + 1 + 0) / 4)
    # answering from 0.9 up: q1 (1), q2 abstains (0), q1 removed abstains (1), q2 removed (1)
    assert mix["best_threshold"] == {"threshold": 0.9, "f1": 0.75}
    assert sum(b["questions"] for b in report["calibration"]) == 6  # both conditions


def test_calibration_error():
    bins = [{"questions": 40, "mean_score": 0.9, "right": 0.85},
            {"questions": 10, "mean_score": 0.5, "right": 0.1}]
    error = calibration_error(bins)
    assert error["ece"] == pytest.approx((40 * 0.05 + 10 * 0.4) / 50)
    assert error["max_gap"] == pytest.approx(0.05)  # the 10-question bin is too small to judge
    assert calibration_error(bins[1:])["max_gap"] is None


def test_no_split_without_is_impossible(results):
    plain = [result(r.id, r.question, r.golds or ["x"], r.prediction, r.score, r.best_span,
                    r.latency) for r in results]
    a = build_report(plain, SETTINGS, e2e=False)["answers"]
    assert not {"has_answer", "no_answer", "best_threshold"} & set(a)


def test_retrieval_metrics_use_chunk_ranks(results):
    r = build_report(results, SETTINGS, e2e=True)["retrieval"]
    assert r["recall@1"] == pytest.approx(1 / 4)  # only q1 has d1 first
    assert r["recall@5"] == r["recall@10"] == pytest.approx(2 / 4)
    assert r["mrr"] == pytest.approx((1 + 1 / 2 + 0 + 0) / 4)
    assert r["depth"] == 1
    assert "retrieval" not in build_report(results, SETTINGS, e2e=False)


def test_by_question_type(results):
    by_type = build_report(results, SETTINGS, e2e=True)["by_question_type"]
    assert by_type["who"] == {"questions": 2, "exact_match": 0.5,
                              "f1": pytest.approx((2 / 3 + 1) / 2)}
    assert by_type["how many"]["f1"] == 1.0
    assert by_type["where"]["f1"] == 0.0
    assert by_type["when"] == {"questions": 0, "exact_match": None, "f1": None}


def test_latency_metrics(results):
    lat = build_report(results, SETTINGS, e2e=True)["latency"]
    assert lat["p50_s"] == pytest.approx(0.25)
    assert lat["max_s"] == pytest.approx(0.4)
    assert 0.3 < lat["p95_s"] < 0.4
    assert lat["questions_per_s"] == pytest.approx(4 / 1.0)


def test_reader_work_per_question(results):
    """Mean and p95 of what the reader ran per question, from the questions asked of the full
    index (the removed copies read too, but are another condition)."""
    work = [(5, 600, 700), (3, 300, 360), (1, 120, 120), (1, 130, 130)]
    counted = [dataclasses.replace(r, reader_windows=w, reader_tokens=t, reader_padded_tokens=p)
               for r, (w, t, p) in zip(results, work)]
    report = build_report(counted + removed_copies(counted), SETTINGS, e2e=True)
    w = report["reader_work"]
    assert w["windows"]["mean"] == pytest.approx(2.5) and w["tokens"]["mean"] == 287.5
    assert w["padded_tokens"]["mean"] == pytest.approx(327.5)
    assert 300 < w["tokens"]["p95"] < 600 and w["windows"]["p95"] == pytest.approx(4.7)
    md = render_markdown(report)
    assert "## Reader work (per question)" in md and "| mean | 2.5 | 288 | 328 |" in md


def test_calibration_bins_judge_the_best_candidate(results):
    bins = build_report(results, SETTINGS, e2e=True)["calibration"]
    # scores 0.2 | 0.55, 0.6 | 0.9: q3's "Zelenskiy" is wrong though not answered
    assert [(b["low"], b["questions"]) for b in bins] == [
        (pytest.approx(0.2), 1), (pytest.approx(0.5), 1), (pytest.approx(0.6), 1),
        (pytest.approx(0.9), 1)]
    # right: F1 >= 0.5, so q2's "Medinsky" for "Vladimir Medinsky" (F1 0.67) is right
    assert [b["right"] for b in bins] == [0.0, 0.0, 1.0, 1.0]


def test_empty_results_are_an_error():
    with pytest.raises(ValueError):
        build_report([], SETTINGS, e2e=True)


def test_write_report_files(results, tmp_path):
    results = results + removed_copies(results)
    results[0] = dataclasses.replace(results[0], evidence={"reader": 0.9, "dense_top": 0.5})
    report = build_report(results, SETTINGS, e2e=True)
    paths = write_report(report, results, tmp_path / "out")
    names = {p.name for p in paths}
    assert names == {"report.json", "report.md", "results.jsonl", *PLOTS.values()}
    assert read_results(tmp_path / "out" / "results.jsonl") == results
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == json.loads(
        json.dumps(report))
    for name in PLOTS.values():
        assert (tmp_path / "out" / name).read_bytes().startswith(PNG_SIGNATURE)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| all | 4 | 50.0 | 66.7 |" in md
    assert "recall@10" in md and "Best no-answer threshold on this data: 0.6000" in md
    assert "100.0% of the answerable ones; \"not found\" for 50.0% of the unanswerable" in md
    assert "## Article removed from the index" in md and "\"not found\" for **50.0%**" in md
    assert "| 2 | 1 | 100.0 | 0.0 | 66.7 |" in md  # two-word answers
    assert all(f"]({name})" in md for name in PLOTS.values())


def test_markdown_for_reader_mode_skips_retrieval(results):
    report = build_report(results, {**SETTINGS, "mode": "reader"}, e2e=False)
    md = render_markdown(report)
    assert "Retrieval" not in md and "# newsqa evaluation: dev.jsonl (reader)" in md
