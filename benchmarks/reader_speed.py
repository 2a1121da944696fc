"""Latency of ``NewsQA.ask`` over the seed questions at top_k 5 (fresh index of seeds/).

    python benchmarks/reader_speed.py [--repeats N] [--top-k K]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from qa.pipeline import NewsQA

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--top-k", type=int, default=5)
    args = ap.parse_args()
    questions = [json.loads(line)["question"]
                 for line in (ROOT / "tests" / "data" / "seed_questions.jsonl").read_text().splitlines() if line]

    with tempfile.TemporaryDirectory() as tmp:
        qa = NewsQA(tmp)
        qa.add_paths([ROOT / "seeds"])
        qa.warm_up()
        qa.ask(questions[0], top_k=args.top_k)  # first call pays one-off costs (BM25 build)
        times = []
        for _ in range(args.repeats):
            for q in questions:
                t = time.perf_counter()
                qa.ask(q, top_k=args.top_k)
                times.append((time.perf_counter() - t) * 1000)
        qa.close()

    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| questions | calls | top_k | p50 ms | p95 ms | max ms | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {len(questions)} | {len(times)} | {args.top_k} | {statistics.median(times):.0f} "
          f"| {p95:.0f} | {times[-1]:.0f} | {peak_mb:.0f} |")


if __name__ == "__main__":
    main()
