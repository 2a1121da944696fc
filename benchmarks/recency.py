"""Recency on a time-aware set: is a question about the current state answered from the newest
article?

    .venv/bin/python benchmarks/recency.py [--set benchmarks/recency.jsonl] [--top-k 5]

``benchmarks/recency.jsonl`` (built by ``benchmarks/recency_set.py``) holds Reuters-21578 series
whose figure changes from day to day. Each series is indexed on its own, in a temporary index,
with the articles' Reuters dates as their published dates; each question is asked as of its
article's day, with later articles left out by ``date_to``, so that article is the newest and
the older ones are still there. Every question is asked twice, with recency (``recency=True``:
the decayed ranking and, when sources differ, the newest answer) and without (``False``). An
answer is "newest" when its text holds the newest article's figure, "older" when it holds a
figure of an older article of the series. Counted on ``Answer.best_text`` (the best candidate,
even below the "not found" threshold) and on the answers shown (``text``). "Newest article"
counts the best candidates that are the newest article's own answer (the candidate holding its
best span), whatever figure the reader took from it: that is the choice recency makes, while
the figure is also the reader's. Only the ``NewsQA`` facade is used.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import tempfile
from collections import Counter
from pathlib import Path

from qa.answer import CLOSE_SHARE
from qa.ingest.documents import make_document
from qa.pipeline import NewsQA
from qa.recency import HALF_LIFE_DAYS, RECENCY_WEIGHT
from qa.types import Answer

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / ".." / "shared" / "data" / "corpora" / "reuters21578.jsonl.gz"


def holds(text: str, figure: str) -> bool:
    """True when ``figure`` is a number of ``text`` (so "50" is not found in "150")."""
    return re.search(rf"(?<![\d.,]){re.escape(figure)}(?![\d,]|\.\d)", text) is not None


def judge(text: str, item: dict) -> str:
    if not text:
        return "not found"
    if holds(text, item["answer"]):
        return "newest"
    if any(holds(text, figure) for figure in item["older_answers"]):
        return "older"
    return "other"


def is_own_answer(answer: Answer, doc_id: str) -> bool:
    """True when the best candidate is ``doc_id``'s own answer: of the candidates (the answer and
    its alternatives, best first), the one that quotes its best-scored span."""
    candidates = [answer, *answer.alternatives] if answer.text else answer.alternatives
    quoted = [(c.score, -rank) for rank, candidate in enumerate(candidates)
              for c in candidate.citations if c.doc_id == doc_id]
    return bool(quoted) and max(quoted)[1] == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=ROOT / "benchmarks" / "recency.jsonl")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()
    items = [json.loads(line) for line in args.set.open()]
    wanted = {doc_id for item in items for doc_id in item["doc_ids"]}
    rows = {r["id"]: r for r in map(json.loads, gzip.open(CORPUS, "rt")) if r["id"] in wanted}
    counts = {mode: (Counter(), Counter()) for mode in ("without", "with")}
    per_series: dict[str, Counter] = {}
    refused = 0
    by_series: dict[str, list[dict]] = {}
    for item in items:
        by_series.setdefault(item["series"], []).append(item)
    for series in by_series.values():
        docs = [make_document(rows[i]["text"], title=rows[i]["title"].strip(), source="Reuters",
                              published=published, date_source="json-field")
                for i, published in zip(series[0]["doc_ids"], series[0]["published"])]
        doc_of = {i: doc.id for doc, i in zip(docs, series[0]["doc_ids"])}
        with tempfile.TemporaryDirectory() as index, NewsQA(index) as qa:
            report = qa.add(docs)
            refused += len(report.near_duplicates)
            for item in series:
                tally = per_series.setdefault(item["series"], Counter())
                tally["questions"] += 1
                for mode, recency in (("without", False), ("with", True)):
                    answer: Answer = qa.ask(item["question"], args.top_k, as_of=item["as_of"],
                                            date_to=item["as_of"], recency=recency)
                    best, shown = counts[mode]
                    verdict = judge(answer.best_text, item)
                    newest_article = is_own_answer(answer, doc_of[item["newest"]])
                    best[verdict] += 1
                    best["newest article"] += newest_article
                    shown[judge(answer.text, item)] += 1
                    tally[f"{mode} newest"] += verdict == "newest"
                    tally[f"{mode} article"] += newest_article
    n = len(items)
    print(f"{n} questions, {len(by_series)} series; near-duplicates refused at indexing: "
          f"{refused}")
    print(f"half-life {HALF_LIFE_DAYS:g} days, weight {RECENCY_WEIGHT:g}, close share "
          f"{CLOSE_SHARE:g}; 'of figures': newest / (newest + older)")
    print(f"{'recency':<9}{'answers':<9}{'newest':>8}{'older':>8}{'other':>8}{'not found':>11}"
          f"{'of figures':>12}{'newest article':>16}")
    for mode, (best, shown) in counts.items():
        for label, c in (("best", best), ("shown", shown)):
            article = f"{c['newest article'] / n:>16.0%}" if label == "best" else ""
            print(f"{mode:<9}{label:<9}" + "".join(
                f"{c[k] / n:>{w}.0%}" for k, w in
                (("newest", 8), ("older", 8), ("other", 8), ("not found", 11)))
                + f"{c['newest'] / max(1, c['newest'] + c['older']):>12.0%}" + article)
    print("\nbest candidates by series (newest figure, newest article), without -> with recency")
    for series, c in per_series.items():
        print(f"{c['questions']:>3}  {c['without newest']:>2} {c['without article']:>2} -> "
              f"{c['with newest']:>2} {c['with article']:>2}  {series}")


if __name__ == "__main__":
    main()
