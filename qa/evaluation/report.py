"""Evaluation report: per-question results → ``report.json``, ``report.md`` and PNG plots.

Rates are fractions in [0, 1] in ``report.json`` and percentages in ``report.md``. Every number is
computed here from the per-question results, so the report can be rebuilt from them alone.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qa.answer_type import QUESTION_TYPES, question_type  # noqa: E402
from qa.evaluation.metrics import (best_threshold, exact_match, f1, recall_at_k,  # noqa: E402
                                   reciprocal_rank, right)
from qa.text import normalize_answer  # noqa: E402

RECALL_DEPTHS = (1, 5, 10)
# Buckets of the gold answer's length in words (its shortest normalised form): long answers are
# where an extractive reader loses most F1 to boundaries.
ANSWER_LENGTHS = ((1, 1), (2, 2), (3, 3), (4, 5), (6, 10), (11, None))
RESULTS_FILE = "results.jsonl"
CALIBRATION_BINS = 10  # equal-width bins of the shown confidence, which is a probability
CALIBRATION_MIN_QUESTIONS = 30  # bins with fewer questions are too noisy to judge a gap by
PLOTS = {"latency": "latency.png", "f1_by_type": "f1_by_question_type.png",
         "calibration": "calibration.png"}


@dataclass(frozen=True)
class QuestionResult:
    """One evaluated question: its gold data, what the pipeline answered, and how fast.

    ``best_span``/``score`` are the reader's best candidate even when it fell below the threshold
    (``prediction == ""``), so the threshold can be re-tuned from these results alone.
    ``ranked_doc_ids`` are the documents of the chunks retrieved for the retrieval metrics, one
    entry per chunk in rank order (e2e only). ``removed``: asked with its own article removed from
    the index, so its gold is "not found" (``golds == []``). ``evidence``: what the answer
    decision weighed (``Answer.evidence``). ``reader_*``: what the reader ran for the question
    (``qa.reader.model.ReadWork``): its cost, which latency on a busy machine only blurs.
    """

    id: str
    question: str
    golds: list[str]  # gold answer texts, [] for an unanswerable question
    is_impossible: bool | None  # None when the data file does not mark unanswerable questions
    prediction: str
    score: float
    best_span: str
    latency: float  # seconds for the ask/read call
    gold_doc_id: str | None = None
    ranked_doc_ids: list[str] = field(default_factory=list)
    removed: bool = False
    evidence: dict[str, float] = field(default_factory=dict)
    reader_windows: int = 0
    reader_tokens: int = 0  # tokens read, without padding
    reader_padded_tokens: int = 0  # tokens the model computed, padding included


def build_report(results: Sequence[QuestionResult], settings: dict, *, e2e: bool) -> dict:
    """All metrics of a run, with the settings that produced it.

    Answers, retrieval and latency are those of the questions asked of the full index; questions
    asked with their article removed get their own section, and the calibration covers both.
    """
    asked = [r for r in results if not r.removed]
    if not asked:
        raise ValueError("cannot report on zero questions")
    report = {"settings": settings, "answers": _answer_metrics(asked),
              "by_question_type": _by_type(asked), "by_answer_length": _by_length(asked)}
    removed = [r for r in results if r.removed]
    if removed:
        report["removed"] = _removed_metrics([r for r in asked if r.golds], removed)
    golden = [r for r in asked if r.gold_doc_id is not None]  # those naming their article
    if e2e and golden:
        report["retrieval"] = _retrieval_metrics(golden)
    report["latency"] = _latency_metrics([r.latency for r in asked])
    report["reader_work"] = _work_metrics(asked)
    report["calibration"] = _calibration_bins(results)
    report["calibration_error"] = calibration_error(report["calibration"])
    return report


def _em_f1(results: Sequence[QuestionResult]) -> dict:
    return {"questions": len(results),
            "exact_match": _mean([exact_match(r.prediction, r.golds) for r in results]),
            "f1": _mean([f1(r.prediction, r.golds) for r in results])}


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _answer_metrics(results: Sequence[QuestionResult]) -> dict:
    metrics = _em_f1(results)
    metrics["answered"] = sum(bool(r.prediction) for r in results)
    metrics["answer_rate"] = _answer_rate([r for r in results if r.golds])
    if any(r.is_impossible is not None for r in results):
        metrics["has_answer"] = _em_f1([r for r in results if r.golds])
        metrics["no_answer"] = _em_f1([r for r in results if not r.golds])
        no_answer_rate = _answer_rate([r for r in results if not r.golds])
        metrics["abstention"] = None if no_answer_rate is None else 1 - no_answer_rate
        metrics["best_threshold"] = _best_threshold(results)
    return metrics


def _answer_rate(results: Sequence[QuestionResult]) -> float | None:
    """Share of the questions given an answer (not "not found"); None for no questions."""
    return _mean([float(bool(r.prediction)) for r in results])


def _best_threshold(results: Sequence[QuestionResult]) -> dict:
    threshold, best = best_threshold([r.score for r in results],
                                     [f1(r.best_span, r.golds) for r in results],
                                     [f1("", r.golds) for r in results])
    return {"threshold": threshold, "f1": best}


def _removed_metrics(answerable: Sequence[QuestionResult],
                     removed: Sequence[QuestionResult]) -> dict:
    """How often a question whose article is not indexed gets "not found", and the F1 of the mix
    of answerable questions asked with and without their article (what the decision is for)."""
    mix = [*answerable, *removed]
    return {"questions": len(removed), "abstention": 1 - _answer_rate(removed),
            "mix": {**_em_f1(mix), "best_threshold": _best_threshold(mix)}}


def answer_length(golds: Sequence[str]) -> int:
    """Words in the shortest normalised gold answer (0 for an unanswerable question)."""
    return min((len(normalize_answer(g).split()) for g in golds), default=0)


def _by_length(results: Sequence[QuestionResult]) -> dict:
    """EM, F1 and answer rate of the answerable questions, by gold answer length."""
    lengths = [answer_length(r.golds) for r in results]
    by_length = {}
    for low, high in ANSWER_LENGTHS:
        bucket = [r for r, n in zip(results, lengths)
                  if n >= low and (high is None or n <= high)]
        name = f"{low}+" if high is None else str(low) if low == high else f"{low}-{high}"
        by_length[name] = {**_em_f1(bucket), "answer_rate": _answer_rate(bucket)}
    return by_length


def _by_type(results: Sequence[QuestionResult]) -> dict:
    types = [question_type(r.question) for r in results]
    return {t: _em_f1([r for r, rt in zip(results, types) if rt == t]) for t in QUESTION_TYPES}


def _retrieval_metrics(results: Sequence[QuestionResult]) -> dict:
    """Recall@k and MRR of the gold document, by the rank of its first retrieved chunk, over
    the questions with one."""
    metrics = {f"recall@{k}": _mean([recall_at_k(r.ranked_doc_ids, r.gold_doc_id, k)
                                     for r in results]) for k in RECALL_DEPTHS}
    metrics["mrr"] = _mean([reciprocal_rank(r.ranked_doc_ids, r.gold_doc_id) for r in results])
    metrics["depth"] = min(len(r.ranked_doc_ids) for r in results)
    metrics["questions"] = len(results)
    return metrics


def _latency_metrics(latencies: Sequence[float]) -> dict:
    p50, p95 = np.percentile(latencies, [50, 95])
    return {"p50_s": float(p50), "p95_s": float(p95), "max_s": float(max(latencies)),
            "mean_s": float(np.mean(latencies)),
            "questions_per_s": len(latencies) / sum(latencies) if sum(latencies) else None}


def _work_metrics(results: Sequence[QuestionResult]) -> dict:
    """Mean and p95 per question of the reader's windows, tokens and padded tokens."""
    work = {}
    for name in ("windows", "tokens", "padded_tokens"):
        values = [getattr(r, f"reader_{name}") for r in results]
        work[name] = {"mean": float(np.mean(values)), "p95": float(np.percentile(values, 95))}
    return work


def _calibration_bins(results: Sequence[QuestionResult]) -> list[dict]:
    """How often the best candidate is right (``metrics.right``) per confidence bin: is a 0.8
    right 80% of the time?

    The best candidate is judged whether or not it cleared the threshold, so the curve describes
    the confidence, not the threshold (no candidate at all counts as the empty answer; with its
    article removed, any answer is wrong). Empty bins are left out.
    """
    scores = np.array([r.score for r in results])
    correct = np.array([right(r.best_span, r.golds) for r in results])
    # bin b holds [b, b + 1) / BINS; floor of the product avoids float-rounded bin edges
    index = np.clip(np.floor(scores * CALIBRATION_BINS), 0, CALIBRATION_BINS - 1).astype(int)
    bins = []
    for b in range(CALIBRATION_BINS):
        mask = index == b
        if mask.any():
            bins.append({"low": b / CALIBRATION_BINS, "high": (b + 1) / CALIBRATION_BINS,
                         "questions": int(mask.sum()), "mean_score": float(scores[mask].mean()),
                         "right": float(correct[mask].mean())})
    return bins


def calibration_error(bins: Sequence[dict]) -> dict:
    """How far confidence is from accuracy: ``ece``, the gap averaged over all questions, and
    ``max_gap``, the largest gap of a bin with at least ``CALIBRATION_MIN_QUESTIONS``."""
    total = sum(b["questions"] for b in bins)
    gaps = [(b["questions"], abs(b["right"] - b["mean_score"])) for b in bins]
    return {"ece": sum(n * gap for n, gap in gaps) / total,
            "max_gap": max((gap for n, gap in gaps if n >= CALIBRATION_MIN_QUESTIONS),
                           default=None),
            "min_questions": CALIBRATION_MIN_QUESTIONS}


# ---- writing ---------------------------------------------------------------------------------
def write_report(report: dict, results: Sequence[QuestionResult], out: Path) -> list[Path]:
    """Write ``report.json``, ``report.md``, the per-question ``results.jsonl`` (to rebuild the
    report or refit the answer decision from) and the plots into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / RESULTS_FILE]
    paths[0].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths[1].write_text(render_markdown(report), encoding="utf-8")
    paths[2].write_text("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n"
                                for r in results), encoding="utf-8")
    paths.append(plot_latency([r.latency for r in results], out / PLOTS["latency"]))
    paths.append(plot_f1_by_type(report["by_question_type"], out / PLOTS["f1_by_type"]))
    paths.append(plot_calibration(report["calibration"], out / PLOTS["calibration"]))
    return paths


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def render_markdown(report: dict) -> str:
    """The report as a short Markdown page with tables and the plots."""
    s, a = report["settings"], report["answers"]
    lines = [f"# newsqa evaluation: {Path(s['data']).name} ({s['mode']})", "",
             "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {'–' if v is None else v} |" for k, v in s.items()]
    lines += ["", "## Answers", "", "| subset | questions | EM | F1 |", "|---|---|---|---|"]
    rows = [("all", a)] + [(name, a[key]) for name, key in
                           (("has answer", "has_answer"), ("no answer", "no_answer")) if key in a]
    lines += [f"| {name} | {m['questions']} | {_pct(m['exact_match'])} | {_pct(m['f1'])} |"
              for name, m in rows]
    decision = s.get("decision") or f"threshold {s['threshold']:.3f}"
    abstained = ("" if a.get("abstention") is None else
                 f'; "not found" for {_pct(a["abstention"])}% of the unanswerable ones')
    lines += ["", f"Answered {a['answered']} of {a['questions']} questions (decision: "
                  f"{decision}): {_pct(a['answer_rate'])}% of the answerable ones{abstained}."]
    if "best_threshold" in a:
        bt = a["best_threshold"]
        lines += [f"Best no-answer threshold on this data: {bt['threshold']:.4f} "
                  f"(F1 {_pct(bt['f1'])})."]
    if "removed" in report:
        rm, mix = report["removed"], report["removed"]["mix"]
        best = mix["best_threshold"]
        lines += ["", "## Article removed from the index", "",
                  f"The {rm['questions']} answerable questions asked again with their own article "
                  f'deleted from the index: "not found" for **{_pct(rm["abstention"])}%**. '
                  f"On the mix of both conditions ({mix['questions']} questions): "
                  f"EM {_pct(mix['exact_match'])}, F1 {_pct(mix['f1'])} (best threshold "
                  f"{best['threshold']:.4f}: F1 {_pct(best['f1'])})."]
    lines += ["", "## By gold answer length (words)", "",
              "| words | questions | answered | EM | F1 |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {m['questions']} | {_pct(m['answer_rate'])} | {_pct(m['exact_match'])} | "
              f"{_pct(m['f1'])} |" for n, m in report["by_answer_length"].items() if m["questions"]]
    if "retrieval" in report:
        r = report["retrieval"]
        lines += ["", "## Retrieval (gold document)", "",
                  "| " + " | ".join(f"recall@{k}" for k in RECALL_DEPTHS) + " | MRR |",
                  "|---" * (len(RECALL_DEPTHS) + 1) + "|",
                  "| " + " | ".join(_pct(r[f"recall@{k}"]) for k in RECALL_DEPTHS)
                  + f" | {r['mrr']:.3f} |", "",
                  f"Ranks count retrieved chunks: recall@k is the share of questions with a chunk "
                  f"of the gold document among the first k (as the reader would see with "
                  f"top_k = k); {r['depth']} chunks retrieved per question."
                  + ("" if r["questions"] == a["questions"] else
                     f" Scored on the {r['questions']} of {a['questions']} questions that name "
                     "their gold article.")]
    lines += ["", "## By question type", "", "| type | questions | EM | F1 |", "|---|---|---|---|"]
    lines += [f"| {t} | {m['questions']} | {_pct(m['exact_match'])} | {_pct(m['f1'])} |"
              for t, m in report["by_question_type"].items() if m["questions"]]
    lat = report["latency"]
    qps = lat["questions_per_s"]
    lines += ["", "## Latency (per question)", "", "| p50 | p95 | max | questions/s |",
              "|---|---|---|---|",
              f"| {1000 * lat['p50_s']:.0f} ms | {1000 * lat['p95_s']:.0f} ms | "
              f"{1000 * lat['max_s']:.0f} ms | {'–' if qps is None else f'{qps:.2f}'} |", ""]
    w = report["reader_work"]
    lines += ["## Reader work (per question)", "",
              "| | windows | tokens | tokens computed (with padding) |", "|---|---|---|---|"]
    lines += [f"| {stat} | {w['windows'][stat]:.1f} | {w['tokens'][stat]:.0f} | "
              f"{w['padded_tokens'][stat]:.0f} |" for stat in ("mean", "p95")]
    lines += [""]
    lines += ["## Calibration (confidence vs how often the best candidate is right, F1 >= 0.5)",
              "", "| confidence | questions | mean confidence | right |", "|---|---|---|---|"]
    lines += [f"| {b['low']:.1f}–{b['high']:.1f} | {b['questions']} | {_pct(b['mean_score'])} | "
              f"{_pct(b['right'])} |" for b in report["calibration"]]
    error = report["calibration_error"]
    lines += ["", f"Expected calibration error {_pct(error['ece'])} points; largest gap in a bin "
                  f"of {error['min_questions']}+ questions: {_pct(error['max_gap'])} points."]
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({file})" for name, file in PLOTS.items()]
    return "\n".join(lines) + "\n"


def plot_latency(latencies: Sequence[float], path: Path) -> Path:
    ms = 1000 * np.asarray(latencies)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(ms, bins=min(30, max(5, len(ms) // 5)), color="#4c72b0", edgecolor="white")
    for q, style in ((50, "--"), (95, ":")):
        value = float(np.percentile(ms, q))
        ax.axvline(value, color="black", linestyle=style, label=f"p{q} = {value:.0f} ms")
    ax.set(xlabel="latency per question (ms)", ylabel="questions",
           title=f"Latency ({len(ms)} questions)")
    ax.legend()
    return _save(fig, path)


def plot_f1_by_type(by_type: dict, path: Path) -> Path:
    types = [t for t, m in by_type.items() if m["questions"]]
    values = [100 * by_type[t]["f1"] for t in types]
    fig, ax = plt.subplots(figsize=(6, 4))
    bars = ax.bar(types, values, color="#55a868")
    for bar, t in zip(bars, types):
        ax.annotate(f"n={by_type[t]['questions']}", (bar.get_x() + bar.get_width() / 2,
                                                     bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set(ylim=(0, 110), ylabel="F1 (%)", title="F1 by question type")
    return _save(fig, path)


def plot_calibration(bins: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    xs = [b["mean_score"] for b in bins]
    ys = [b["right"] for b in bins]
    ax.plot(xs, ys, marker="o", color="#c44e52", label="shown confidence")
    for x, y, b in zip(xs, ys, bins):
        ax.annotate(f"{b['questions']}", (x, y), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=8)
    ax.set(xlim=(0, 1), ylim=(0, 1.1), xlabel="confidence (best candidate)",
           ylabel="right (F1 >= 0.5)", title="Calibration (labels: questions per bin)")
    ax.legend(loc="upper left")
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def read_results(path: Path) -> list[QuestionResult]:
    """The per-question results a report was built from (``results.jsonl``)."""
    with Path(path).open(encoding="utf-8") as fh:
        return [QuestionResult(**json.loads(line)) for line in fh if line.strip()]
