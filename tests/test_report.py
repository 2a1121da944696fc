"""The report built from hand-made per-question results: numbers, files and plots."""
import json

import pytest

from qa.report import PLOTS, QuestionResult, build_report, render_markdown, write_report

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


def test_calibration_bins_judge_the_best_candidate(results):
    bins = build_report(results, SETTINGS, e2e=True)["calibration"]
    # scores 0.2 | 0.55, 0.6 | 0.9: q3's "Zelenskiy" is wrong though not answered
    assert [(b["low"], b["questions"]) for b in bins] == [
        (pytest.approx(0.2), 1), (pytest.approx(0.5), 1), (pytest.approx(0.6), 1),
        (pytest.approx(0.9), 1)]
    assert [b["exact_match"] for b in bins] == [0.0, 0.0, 0.0, 1.0]


def test_empty_results_are_an_error():
    with pytest.raises(ValueError):
        build_report([], SETTINGS, e2e=True)


def test_write_report_files(results, tmp_path):
    report = build_report(results, SETTINGS, e2e=True)
    paths = write_report(report, results, tmp_path / "out")
    names = {p.name for p in paths}
    assert names == {"report.json", "report.md", *PLOTS.values()}
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == json.loads(
        json.dumps(report))
    for name in PLOTS.values():
        assert (tmp_path / "out" / name).read_bytes().startswith(PNG_SIGNATURE)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| all | 4 | 50.0 | 66.7 |" in md
    assert "recall@10" in md and "Best no-answer threshold on this data: 0.6000" in md
    assert all(f"]({name})" in md for name in PLOTS.values())


def test_markdown_for_reader_mode_skips_retrieval(results):
    report = build_report(results, {**SETTINGS, "mode": "reader"}, e2e=False)
    md = render_markdown(report)
    assert "Retrieval" not in md and "# newsqa evaluation: dev.jsonl (reader)" in md
