"""``newsqa calibrate``: fit the answer decision on ``newsqa eval --removed`` results.

Each result of such a run is a question asked end to end, either of the full index (answerable)
or with its own article removed (gold: "not found"), with the evidence the decision weighs
(``qa.decide.evidence``). A logistic regression of "the best candidate is right" (F1 >= 0.5,
``qa.evaluation.metrics.right``) on that evidence gives the confidence. The threshold on it is the
one that maximises F1 on the fitted mix, or, with ``--min-abstention``, the lowest one that still
says "not found" for that share of the article-removed questions: it answers as many answerable
questions as that allows.

Honest numbers need questions the fit never saw: ``--split FILE`` fits on the articles of one half
of that run (split by article id, so questions sharing an article stay together) and reports on
the other half. Given several times (one run per outlet: CNN, BBC, SQuAD's Wikipedia), it fits on
all the halves together and reports each held-out half on its own, with its calibration plot
(``--plots DIR``): a confidence of 30% should be right about 30% of the time on each. ``--write``
stores the weights in the reader's ``newsqa_reader.json`` under its calibration key
(``Reader.calibration_key``).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.decide import LogisticDecision
from qa.errors import NewsQAError
from qa.evaluation.metrics import best_threshold, f1, right
from qa.evaluation.report import QuestionResult, build_report, plot_calibration, read_results
from qa.reader.model import CALIBRATION_FILE, Reader
from qa.resources import DEFAULT_READER
from qa.runtime import BACKENDS
from qa.types import IndexConfig

FEATURES = ("reader", "margin", "support", "answer_words", "answer_type", "echo", "dense_top",
            "dense_answer", "answer_rank", "doc_share", "coverage_doc", "coverage_chunk",
            "other_doc")
RUN_SETTINGS = ("data", "mode", "removed", "questions", "top_k", "reader", "reader_backend",
                "reader_int8", "chunk_max_chars", "embedder", "newsqa_version", "date")
L2 = 1e-2  # a light penalty: keeps the weights finite where a feature separates the fit data


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2,
                 steps: int = 100) -> tuple[np.ndarray, float]:
    """Weights and bias of the L2-penalised logistic regression of ``y`` (0/1) on ``x``.

    Newton's method on the log-likelihood: a few dozen steps converge on a few thousand rows and
    a dozen features. The bias is not penalised.
    """
    a = np.hstack([x, np.ones((len(x), 1))])
    penalty = l2 * np.diag([1.0] * x.shape[1] + [0.0])
    w = np.zeros(a.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-a @ w))
        gradient = a.T @ (p - y) + penalty @ w
        hessian = (a * (p * (1 - p))[:, None]).T @ a + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w[:-1], float(w[-1])


def fit_decision(results: Sequence[QuestionResult], features: Sequence[str], key: str,
                 l2: float = L2, min_abstention: float | None = None) -> LogisticDecision:
    """The logistic decision fitted on ``results``, with its threshold (see the module doc).

    Questions without any candidate are left out of the fit: they are "not found" whatever the
    weights. Answering scores the best candidate's F1, abstaining scores 1 only with no gold
    (asked with its article removed, or marked unanswerable by the data).
    """
    rows = [r for r in results if r.evidence]
    missing = sorted({f for r in rows for f in features if f not in r.evidence})
    if missing:
        raise NewsQAError(f"The results lack the features {missing}; fit on `newsqa eval "
                          "--mode e2e` results.")
    if not rows:
        raise NewsQAError("No result has a candidate answer to fit on.")
    x = np.array([[r.evidence[f] for f in features] for r in rows])
    y = np.array([right(r.best_span, r.golds) for r in rows])
    weights, bias = fit_logistic(x, y, l2)
    decision = LogisticDecision(dict(zip(features, map(float, weights))), bias, 0.0, key)
    confidences = [decision.confidence(r.evidence) for r in results]
    if min_abstention is None:
        threshold, _ = best_threshold(confidences, [f1(r.best_span, r.golds) for r in results],
                                      [f1("", r.golds) for r in results])
    else:
        threshold = _abstaining_threshold(
            [c for c, r in zip(confidences, results) if not r.golds], min_abstention)
    return dataclasses.replace(decision, threshold=threshold)


def _abstaining_threshold(unanswerable: Sequence[float], share: float) -> float:
    """The lowest threshold under which at least ``share`` of ``unanswerable`` confidences
    fall."""
    if not unanswerable:
        raise NewsQAError("--min-abstention needs unanswerable results: article-removed ones "
                          "(newsqa eval --removed) or questions without an answer.")
    needed = math.ceil(share * len(unanswerable))
    return (math.nextafter(sorted(unanswerable)[needed - 1], math.inf) if needed
            else 0.0)


def decided(results: Sequence[QuestionResult], decision: LogisticDecision) -> list[QuestionResult]:
    """``results`` as ``decision`` would have answered them."""
    decided_results = []
    for r in results:
        confidence = decision.confidence(r.evidence)
        shown = r.best_span if r.evidence and confidence >= decision.threshold else ""
        decided_results.append(dataclasses.replace(r, score=confidence, prediction=shown))
    return decided_results


def in_fit_half(doc_id: str | None) -> bool:
    """Whether an article's questions are fitted on (True) or held out, by a hash of its id."""
    if doc_id is None:
        raise NewsQAError("A result has no gold article; split only end-to-end results.")
    return hashlib.sha256(doc_id.encode()).digest()[0] % 2 == 0


def summary(results: Sequence[QuestionResult]) -> dict:
    """The numbers the decision is judged by, from decided results: on the answerable questions
    asked of the full index, F1 and the share of the answers given that are right;
    on the unanswerable ones (article removed, or no answer in the data), the share "not found".
    """
    report = build_report(results, {}, e2e=False)
    answers, removed = report["answers"], report.get("removed")
    answerable = answers.get("has_answer", answers)
    given = [right(r.prediction, r.golds) for r in results if r.golds and r.prediction]
    unanswerable = [r for r in results if not r.golds]
    return {"questions": answers["questions"], "answer_rate": answers["answer_rate"],
            "f1": answerable["f1"], "exact_match": answerable["exact_match"],
            "right_of_answered": sum(given) / len(given) if given else None,
            "not_found_unanswerable": (sum(not r.prediction for r in unanswerable)
                                       / len(unanswerable) if unanswerable else None),
            "removed_abstention": removed and removed["abstention"],
            "mix_f1": removed and removed["mix"]["f1"],
            "calibration_error": report["calibration_error"],
            "calibration": report["calibration"]}


def _run_settings(results: Path) -> dict:
    """What made a results file: the settings in the ``report.json`` written beside it."""
    report = Path(results).parent / "report.json"
    try:
        settings = json.loads(report.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError) as exc:
        raise NewsQAError(f"{report} (written by newsqa eval beside {Path(results).name}) "
                          f"cannot be read: {exc}") from exc
    return {k: settings[k] for k in RUN_SETTINGS if k in settings}


def _name(results: Path) -> str:
    """What a run is called in a plot's file name: its folder's ("runs/bbc-e2e" -> "bbc-e2e")."""
    return results.parent.name or results.stem


def _share(value: str) -> float:
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return share


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``newsqa calibrate`` options."""
    p.add_argument("results", nargs="*", type=Path, metavar="RESULTS.jsonl",
                   help="results.jsonl of `newsqa eval --mode e2e --removed` runs, all "
                        "fitted on")
    p.add_argument("--split", type=Path, action="append", default=[], metavar="RESULTS.jsonl",
                   help="fit on half of this run's articles, report on the other half; give "
                        "one run per outlet to fit on their mix and report each")
    p.add_argument("--plots", type=Path, metavar="DIR",
                   help="write each held-out half's calibration plot here")
    p.add_argument("--min-abstention", type=_share, metavar="SHARE",
                   help='the lowest threshold that says "not found" for this share of the '
                        "unanswerable questions (article removed, or without an answer; "
                        "default: the threshold of best F1)")
    p.add_argument("--features", default=",".join(FEATURES),
                   help="comma-separated evidence names (default: all)")
    p.add_argument("--reader", type=Path, default=DEFAULT_READER,
                   help="the reader the results were made with (for the calibration key)")
    p.add_argument("--backend", choices=BACKENDS, default=IndexConfig().backend,
                   help="the reader backend the results were made with")
    p.add_argument("--write", action="store_true",
                   help=f"store the decision in the reader's {CALIBRATION_FILE}")


def run(args: argparse.Namespace) -> int:
    """Print the fitted decision's record as JSON (``newsqa calibrate``); the record names the
    command as the CLI was given it (``args.command_line``)."""
    print(json.dumps(calibrate(args, args.command_line), indent=2))
    return 0


def calibrate(args: argparse.Namespace, command: str) -> dict:
    """Fit, report on each held-out half, and store the decision if asked; return the record."""
    fit = [r for path in args.results for r in read_results(path)]
    held_out: dict[Path, list[QuestionResult]] = {}
    for path in args.split:
        split = read_results(path)
        fit += [r for r in split if in_fit_half(r.gold_doc_id)]
        held_out[path] = [r for r in split if not in_fit_half(r.gold_doc_id)]
    if not fit:
        raise NewsQAError("Nothing to fit on: name results.jsonl files or --split.")
    fitted_on = ([{"results": str(p), **_run_settings(p)} for p in args.results]
                 + [{"results": f"{p} (fit half)", **_run_settings(p)} for p in args.split])
    key = Reader(args.reader, backend=args.backend).calibration_key
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    decision = fit_decision(fit, features, key, min_abstention=args.min_abstention)
    policy = ("best F1 on the fitted mix" if args.min_abstention is None else
              f'the lowest threshold with "not found" for {args.min_abstention:.0%} of the '
              "fitted unanswerable questions")
    record = {"weights": dict(decision.weights), "bias": decision.bias,
              "threshold": decision.threshold,
              "calibrated_on": {"threshold": policy, "fit": fitted_on,
                                "fit_questions": len(fit), "command": command},
              "fit": summary(decided(fit, decision)),
              "held_out": [{"data": f"{path} (other half)", **summary(decided(results, decision))}
                           for path, results in held_out.items()]}
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        for path, held in zip(held_out, record["held_out"]):
            plot_calibration(held["calibration"], args.plots / f"calibration-{_name(path)}.png")
    if args.write:
        path = Path(args.reader) / CALIBRATION_FILE
        stored = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        stored.setdefault("decisions", {})[key] = record
        path.write_text(json.dumps(stored, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    return {"key": key, **record}

