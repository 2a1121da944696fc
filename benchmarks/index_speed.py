"""Indexing speed: the embedder's torch and ONNX Runtime backends on the same chunks, in one run.

    python benchmarks/index_speed.py [--corpus PATH] [--limit N] [--rounds R] [--no-pipeline]

Chunks the corpus once, then times ``Embedder.encode`` on all its chunks with each backend (torch
fp32 through sentence-transformers, onnx fp32 and onnx int8), ``--rounds`` times each, taking
turns so that a busy machine slows each backend alike; the best round counts. Prints chunks/s,
the speed-up over torch, the CPU time (all threads; steadier than wall time on a shared
machine) and how far each backend's vectors are from torch's. Unless
``--no-pipeline``, also indexes the documents into a temporary index with each backend
(``NewsQA.add``: chunking, near-duplicate checks, embedding, FAISS + SQLite writes), to show how
much of indexing the encode is. Models load (and ONNX exports are made) before the clock starts.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np

from qa.chunk import Chunker
from qa.embed import Embedder
from qa.ingest.files import load
from qa.pipeline import NewsQA

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "corpora" / "bbc_news_2225.jsonl.gz"
# (label, backend, int8): torch first, as the baseline the others are compared with.
BACKENDS = [("torch fp32", "torch", False), ("onnx fp32", "onnx", False),
            ("onnx int8", "onnx", True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--limit", type=int, help="only the first N documents")
    ap.add_argument("--rounds", type=int, default=1, help="encode runs per backend (best counts)")
    ap.add_argument("--no-pipeline", action="store_true", help="time the encode only")
    args = ap.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"corpus not found: {args.corpus}")

    docs = list(islice(load([args.corpus]), args.limit))
    texts = [c.text for d in docs for c in Chunker().split(d)]
    embedders = {label: Embedder(backend=backend, quantize=int8)
                 for label, backend, int8 in BACKENDS}
    for embedder in embedders.values():
        embedder.warm_up()
    print(f"{args.corpus.name}: {len(docs)} documents, {len(texts)} chunks; "
          f"{args.rounds} round(s)")

    best = {label: float("inf") for label in embedders}
    cpu = dict(best)
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for label, embedder in embedders.items():
            t, c = time.perf_counter(), time.process_time()
            vectors[label] = embedder.encode(texts)
            best[label] = min(best[label], time.perf_counter() - t)
            cpu[label] = min(cpu[label], time.process_time() - c)

    indexed: dict[str, float] = {}
    if not args.no_pipeline:
        for label, embedder in embedders.items():
            with tempfile.TemporaryDirectory() as tmp, NewsQA(tmp, embedder=embedder) as qa:
                t = time.perf_counter()
                report = qa.add(docs)
                indexed[label] = report.chunks / (time.perf_counter() - t)

    torch = BACKENDS[0][0]
    print("| backend | encode s | chunks/s | vs torch | CPU s | CPU vs torch | max abs diff "
          "| min cosine |" + (" indexing chunks/s |" if indexed else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if indexed else ""))
    for label in embedders:
        diff = np.abs(vectors[label] - vectors[torch]).max()
        cosine = np.einsum("ij,ij->i", vectors[label], vectors[torch]).min()
        row = (f"| {label} | {best[label]:.1f} | {len(texts) / best[label]:.1f} | "
               f"{best[torch] / best[label]:.2f}x | {cpu[label]:.1f} | "
               f"{cpu[torch] / cpu[label]:.2f}x | {diff:.1e} | {cosine:.5f} |")
        print(row + (f" {indexed[label]:.1f} |" if indexed else ""))


if __name__ == "__main__":
    main()
