"""Fitting the answer decision: the logistic regression, and the command on made-up results."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from qa.decide import LogisticDecision, load_decision
from qa.cli import main
from qa.evaluation.calibrate import fit_decision, fit_logistic, in_fit_half
from qa.evaluation.report import QuestionResult, build_report, write_report
from qa.reader.model import Reader
from qa.types import IndexConfig


def test_fit_logistic_recovers_the_generating_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 2))
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-(x @ [1.5, -2.0] + 0.5)))).astype(float)
    weights, bias = fit_logistic(x, y, l2=1e-6)
    assert weights == pytest.approx([1.5, -2.0], abs=0.1) and bias == pytest.approx(0.5, abs=0.1)


def test_fit_logistic_penalty_shrinks_the_weights():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] > 0).astype(float)  # separable: unpenalised weights would grow without bound
    small, _ = fit_logistic(x, y, l2=10.0)
    large, _ = fit_logistic(x, y, l2=0.01)
    assert 0 < small[0] < large[0]


def made_up_results(seed: int) -> list[QuestionResult]:
    """Answerable questions (right 60% of the time, on close chunks) and the same questions
    with their article removed (any answer wrong, on distant chunks); 100 articles."""
    rng = np.random.default_rng(seed)
    results = []
    for i in range(400):
        right = rng.random() < 0.6
        asked = {"reader": rng.uniform(0.5, 1.0) if right else rng.uniform(0.0, 0.6),
                 "dense_top": rng.normal(0.7, 0.08)}
        alone = {"reader": rng.uniform(0.0, 0.7), "dense_top": rng.normal(0.4, 0.08)}
        common = dict(id=f"q{i}", question="Who?", is_impossible=False, score=0.0, latency=0.1,
                      gold_doc_id=f"doc{i % 100}")
        results.append(QuestionResult(golds=["Ann"], prediction="", evidence=asked,
                                      best_span="Ann" if right else "Bob", **common))
        results.append(QuestionResult(golds=[], prediction="", evidence=alone, best_span="Bob",
                                      removed=True, **common))
    return results


def write_results(folder, results):
    """What ``newsqa eval`` writes: results.jsonl with report.json (and the rest) beside it."""
    settings = {"data": f"{folder.name}.jsonl", "mode": "e2e", "decision": "made up",
                "threshold": 0.5}
    write_report(build_report(results, settings, e2e=False), results, folder)
    return folder / "results.jsonl"


def test_split_keeps_articles_together():
    halves = {doc: in_fit_half(doc) for doc in (f"doc{i}" for i in range(100))}
    assert 30 < sum(halves.values()) < 70
    assert all(in_fit_half(doc) == half for doc, half in halves.items())  # stable


def test_calibrate_fits_reports_held_out_and_stores_the_decision(tiny_model, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    for path in tiny_model.iterdir():
        (model / path.name).write_bytes(path.read_bytes())
    (model / "newsqa_reader.json").write_text(json.dumps({"threshold": 0.37}))
    extra = write_results(tmp_path / "extra", made_up_results(1))
    split = write_results(tmp_path / "split", made_up_results(2))
    assert main(["calibrate", str(extra), "--split", str(split), "--reader", str(model),
                 "--features", "reader,dense_top", "--write"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["calibrated_on"]["command"].startswith(f"newsqa calibrate {extra} --split")
    key = Reader(model, backend=IndexConfig().backend).calibration_key  # calibrate's default
    assert record["key"] == key
    assert record["calibrated_on"]["fit"] == [
        {"results": str(extra), "data": "extra.jsonl", "mode": "e2e"},
        {"results": f"{split} (fit half)", "data": "split.jsonl", "mode": "e2e"}]
    assert record["weights"]["reader"] > 0 and record["weights"]["dense_top"] > 0
    [held_out] = record["held_out"]
    assert held_out["data"] == f"{split} (other half)"
    # all of extra.jsonl and half of split.jsonl's articles fitted, the other half held out
    assert record["calibrated_on"]["fit_questions"] + 2 * held_out["questions"] == 1600
    assert 100 < held_out["questions"] < 300
    # on questions it never saw, the decision answers the right ones (60%) and tells removed
    # articles from indexed ones
    assert held_out["exact_match"] > 0.5 and held_out["removed_abstention"] > 0.8
    assert held_out["calibration_error"]["ece"] < 0.05
    assert held_out["calibration_error"]["max_gap"] < 0.1
    stored = json.loads((model / "newsqa_reader.json").read_text())
    assert stored["threshold"] == 0.37  # the span-score threshold other backends fall back to
    assert stored["decisions"] == {key: {k: v for k, v in record.items() if k != "key"}}
    assert load_decision(Reader(model, backend=IndexConfig().backend)) == LogisticDecision(
        record["weights"], record["bias"], record["threshold"], key)


def test_calibrate_needs_the_report_beside_the_results(tiny_model, tmp_path, capsys):
    path = write_results(tmp_path / "run", made_up_results(5))
    (path.parent / "report.json").unlink()
    assert main(["calibrate", str(path), "--reader", str(tiny_model), "--features",
                 "reader"]) == 1
    assert "report.json" in capsys.readouterr().err


def test_calibrate_needs_end_to_end_evidence(tiny_model, tmp_path, capsys):
    plain = [dataclasses.replace(r, evidence={"reader": r.evidence["reader"]})
             for r in made_up_results(3)]
    path = write_results(tmp_path / "reader", plain)
    assert main(["calibrate", str(path), "--reader", str(tiny_model)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("newsqa: error:") and "dense_top" in err and len(err.splitlines()) == 1


def unanswerable_results(seed: int) -> list[QuestionResult]:
    """Another outlet's questions: 300 answerable ones (right 70% of the time) and 100 that the
    data marks unanswerable (any answer wrong), none with its article removed."""
    rng = np.random.default_rng(seed)
    results = []
    for i in range(400):
        answerable, right = i < 300, rng.random() < 0.7
        evidence = ({"reader": rng.uniform(0.5, 1.0) if right else rng.uniform(0.0, 0.6),
                     "dense_top": rng.normal(0.7, 0.08)} if answerable else
                    {"reader": rng.uniform(0.0, 0.7), "dense_top": rng.normal(0.4, 0.08)})
        results.append(QuestionResult(
            id=f"u{i}", question="Who?", golds=["Ann"] if answerable else [],
            is_impossible=not answerable, prediction="", score=0.0, latency=0.1,
            best_span="Ann" if answerable and right else "Bob", gold_doc_id=f"art{i % 120}",
            evidence=evidence))
    return results


def test_calibrate_fits_on_several_outlets_and_reports_each(tiny_model, tmp_path, capsys):
    cnn = write_results(tmp_path / "cnn", made_up_results(6))
    bbc = write_results(tmp_path / "bbc", unanswerable_results(7))
    assert main(["calibrate", "--split", str(cnn), "--split", str(bbc), "--reader",
                 str(tiny_model), "--features", "reader,dense_top", "--min-abstention", "0.8",
                 "--plots", str(tmp_path / "plots")]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [h["data"] for h in record["held_out"]] == [f"{cnn} (other half)",
                                                       f"{bbc} (other half)"]
    on_cnn, on_bbc = record["held_out"]
    # the outlet without removed articles is judged on its unanswerable questions
    assert on_cnn["removed_abstention"] > 0.7 and on_bbc["removed_abstention"] is None
    assert on_bbc["not_found_unanswerable"] > 0.7 and on_bbc["right_of_answered"] > 0.8
    assert record["fit"]["not_found_unanswerable"] >= 0.8  # the threshold's rule, on the mix
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "calibration-bbc.png", "calibration-cnn.png"]


def test_min_abstention_takes_the_lowest_threshold_that_keeps_it():
    results = made_up_results(4)
    decision = fit_decision(results, ["reader", "dense_top"], "k", min_abstention=0.9)
    removed = sorted(decision.confidence(r.evidence) for r in results if r.removed)
    below = [c for c in removed if c < decision.threshold]
    assert len(below) >= 0.9 * len(removed)  # "not found" for 90% of the removed ones
    assert len(below) - 1 < 0.9 * len(removed)  # and no lower threshold would do
    best_f1 = fit_decision(results, ["reader", "dense_top"], "k")
    assert decision.weights == best_f1.weights and decision.threshold != best_f1.threshold
