"""Exact vs approximate FAISS search latency over N random 384-d vectors.

Justifies ``qa.store.local.vectors.APPROXIMATE_FROM`` (the size at which the store switches from an
exact ``IDMap2,Flat`` index to ``IVF{nlist},Flat``). Queries are database vectors plus noise, so
each query has a true near neighbour (as a question has its passage); "hit" says whether it was
found, "recall@k" how much of the exact top-k the approximate index returned.

Run: ``python benchmarks/store_scale.py --sizes 10000 50000 100000 200000``
"""
from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from qa.store.local.vectors import EXACT_SPEC, ivf_spec

DIMENSION = 384


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random L2-normalised float32 rows (the shape of sentence embeddings)."""
    x = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    faiss.normalize_L2(x)
    return x


def build(spec: str, vectors: np.ndarray) -> tuple[faiss.Index, float]:
    """Build an inner-product index like the store does; return it and the build seconds."""
    started = time.perf_counter()
    index = faiss.index_factory(DIMENSION, spec, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(vectors)
    index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
    return index, time.perf_counter() - started


def timed_search(index: faiss.Index, queries: np.ndarray, k: int, nprobe: int | None) -> tuple[np.ndarray, float]:
    """Search one query at a time (as an interactive user does); return ids and mean ms per query."""
    params = faiss.SearchParametersIVF(nprobe=nprobe) if nprobe else None
    ids = np.empty((len(queries), k), dtype=np.int64)
    started = time.perf_counter()
    for row, query in enumerate(queries):
        _, found = index.search(query[None, :], k, params=params)
        ids[row] = found[0]
    return ids, (time.perf_counter() - started) * 1000 / len(queries)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the exact top-k that the approximate search also returned."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def hits(found: np.ndarray, planted: np.ndarray) -> float:
    """Share of queries whose source vector (the planted near neighbour) was returned."""
    return float(np.mean([p in f for f, p in zip(found, planted)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000, 200_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=50, help="the retriever's dense candidates")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--hnsw", action="store_true", help="also time HNSW32 (cannot delete ids)")
    parser.add_argument("--threads", type=int, help="FAISS OpenMP threads (default: all cores)")
    args = parser.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, k={args.k}")
    print(f"{'N':>8} {'index':>22} {'nprobe':>6} {'build s':>8} {'ms/query':>9} {'recall@k':>8} {'hit':>6}")
    for n in args.sizes:
        vectors = unit_rows(rng, n)
        planted = rng.choice(n, args.queries, replace=False)
        queries = vectors[planted] + 0.05 * unit_rows(rng, args.queries)
        faiss.normalize_L2(queries)

        flat, seconds = build(EXACT_SPEC, vectors)
        truth, ms = timed_search(flat, queries, args.k, None)
        del flat
        print(f"{n:>8} {EXACT_SPEC:>22} {'-':>6} {seconds:>8.2f} {ms:>9.2f} {1.0:>8.3f} {hits(truth, planted):>6.3f}")
        approximate = [(ivf_spec(n), args.nprobe)] + ([("IDMap2,HNSW32", [None])] if args.hnsw else [])
        for spec, nprobes in approximate:
            index, seconds = build(spec, vectors)
            for nprobe in nprobes:
                found, ms = timed_search(index, queries, args.k, nprobe)
                print(
                    f"{n:>8} {spec:>22} {nprobe or '-':>6} {seconds:>8.2f} {ms:>9.2f} "
                    f"{recall(found, truth):>8.3f} {hits(found, planted):>6.3f}"
                )
            del index

if __name__ == "__main__":
    main()
