"""Latency of ``NewsQA.ask`` over the seed questions at top_k 5 (fresh index of seeds/), per reader
backend.

    python benchmarks/reader_speed.py [--repeats N] [--top-k K] [--backend torch onnx]
                                      [--at-once]

Several backends are measured in one run on one index, taking turns question by question, so
that load from other processes on the machine falls on all of them alike. Each backend runs at
its default precision (int8 on the CPU). "load s" is the reader's warm-up; the onnx backend's
first one ever also exports and quantises the weights (then cached, see qa/runtime/onnx.py).
Beside the latency, the reader's work per question: model windows and tokens (mean and p95;
``Reader.work``), which, unlike the time, another process on the machine cannot blur.
``--at-once`` adds each backend reading every chunk in one round (``Reader(stages=None)``, how
the reader read before it read in rounds), taking turns with the rest.
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
from qa.reader.model import Reader, ReadWork
from qa.runtime import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "tests" / "data" / "seed_questions.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--backend", nargs="+", choices=BACKENDS, default=["torch"],
                    help="reader backends to compare (default: torch)")
    ap.add_argument("--at-once", action="store_true",
                    help="also read every chunk in one round, as the reader did before rounds")
    args = ap.parse_args()
    questions = [json.loads(line)["question"]
                 for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
    readers = {name: Reader(backend=name) for name in args.backend}
    if args.at_once:
        readers.update({f"{name}, at once": Reader(backend=name, stages=None)
                        for name in args.backend})
    load_s = {}
    for name, reader in readers.items():
        t = time.perf_counter()
        reader.warm_up()
        load_s[name] = time.perf_counter() - t

    times: dict[str, list[float]] = {name: [] for name in readers}
    work: dict[str, list[ReadWork]] = {name: [] for name in readers}
    with tempfile.TemporaryDirectory() as tmp:
        qa = NewsQA(tmp, reader=readers[args.backend[0]], remember_answers=0)  # time reads
        qa.add_paths([ROOT / "seeds"])
        qa.warm_up()
        for reader in readers.values():  # the first call pays one-off costs (BM25 build)
            qa.reader = reader
            qa.ask(questions[0], top_k=args.top_k)
        for _ in range(args.repeats):
            for q in questions:
                for name, reader in readers.items():
                    qa.reader = reader
                    before, t = reader.work, time.perf_counter()
                    qa.ask(q, top_k=args.top_k)
                    times[name].append((time.perf_counter() - t) * 1000)
                    work[name].append(reader.work - before)
        qa.close()

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| reader | rounds | load s | questions | calls | top_k | p50 ms | p95 ms | max ms "
          "| windows mean / p95 | tokens mean / p95 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, ms in times.items():
        windows = sorted(w.windows for w in work[name])
        tokens = sorted(w.tokens for w in work[name])
        rounds = readers[name].stages
        print(f"| {readers[name].calibration_key} | {rounds or 'at once'} | {load_s[name]:.1f} "
              f"| {len(questions)} | {len(ms)} | {args.top_k} | {statistics.median(ms):.0f} "
              f"| {p95(sorted(ms)):.0f} | {max(ms):.0f} | {statistics.mean(windows):.1f} / "
              f"{p95(windows)} | {statistics.mean(tokens):.0f} / {p95(tokens)} |")
    print(f"\npeak RSS of the run (all readers loaded): {peak_mb:.0f} MB")


def p95(ordered: list) -> float:
    """The 95th percentile of sorted values (nearest rank)."""
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
