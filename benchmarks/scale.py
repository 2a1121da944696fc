"""A million chunks of news: search latency and recall, RAM, disk, and adding 1,000 articles.

    nice python benchmarks/scale.py [--chunks 1000000] [--real 10000] [--queries 200]
                                    [--work runs/scale]

Text: the Reuters-21578 (21,578), AG News test (7,600) and BBC (2,225) articles in
``../shared/data/corpora``, cut by ``qa.chunk.Chunker``, repeated with variation until there are
``--chunks`` chunks. Pass 0 is the corpora as they are; pass p > 0 joins 4 consecutive articles
into one document, rotates each one's paragraphs (or sentences) by p and heads it "Update p:".
Publication dates are synthetic (spread over 2005-2024, 5% undated), so that date filters have
something to filter.

Vectors: real all-MiniLM-L6-v2 embeddings (``qa.embed.Embedder``, onnx backend) of ``--real``
chunks spread over pass 0; every other chunk gets a perturbed copy of one of those (cosine 0.9
to it), so dense hits are not about their own text: this measures the index's work, not
answers. Queries, embedded the same way: the first ``--queries`` questions of newsqa_cnn_dev
(CNN articles, none of them indexed: far neighbours) and as many headlines of indexed articles
(close ones, as a question about the archive has).

Measured one query at a time through the store as the app uses it (``qa.store.local.store.Store`` in
a ``snapshot()``): dense search p50/p95 and recall@10 against exact search (an ``IndexFlatIP``
over the same float vectors, which is also timed) at NPROBE and at half and twice it,
keyword search p50/p95, ``Retriever.retrieve()`` p50 without a filter and with date filters,
the RAM of a process that opens the index and searches, the disk, and the time and bytes
written to add 1,000 more articles, and for a reader to catch up with them.

The index is built as ``NewsQA.add`` builds it (``Store.add``, a save every ``ADD_BATCH_DOCS``
documents, under ``writing()``), without near-duplicate checks (the variants are
near-duplicates by design), in ``--work``, where the embeddings are cached for the next run.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import faiss
import numpy as np

from qa.chunk import Chunker
from qa.embed import Embedder
from qa.ingest.documents import document_id
from qa.pipeline import ADD_BATCH_DOCS
from qa.retrieve import Retriever
from qa.store.local import vectors as faiss_vectors
from qa.store.local.database import DATABASE
from qa.store.local.store import Store
from qa.types import Chunk, Document, Filter

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "data" / "corpora"
QUESTIONS = ROOT.parent / "shared" / "data" / "qa" / "dev" / "newsqa_cnn_dev.jsonl"
FILES = ("reuters21578.jsonl.gz", "ag_news_test_7600.jsonl.gz", "bbc_news_2225.jsonl.gz")
COSINE = 0.9  # of a perturbed copy to the real vector it copies
FIRST_DAY, DAYS = date(2005, 1, 1), 20 * 365
UNDATED_EVERY = 20
DIGEST = 4  # articles in one document after the first pass
ADDED_DOCS = 1_000
FLAT_QUERIES = 10  # exact search takes about a second a query at 1M: time a few
FILTERS = {  # bounds on whole years, so that ``kept`` can count what they keep
    "date 2024 (1 year)": Filter(date_from="2024-01-01", date_to="2024-12-31"),
    "date from 2006 (19 years)": Filter(date_from="2006"),
}
RAM_PROBE = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from qa.store.local.store import Store

    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

    before = rss()
    started = time.perf_counter()
    store = Store.open(sys.argv[1], embedder_name=sys.argv[2], dimension=int(sys.argv[3]),
                       create=False)
    opened = time.perf_counter() - started
    query = np.random.default_rng(0).standard_normal(int(sys.argv[3])).astype(np.float32)
    with store.snapshot():
        store.search(query / np.linalg.norm(query), 10)
    print(json.dumps({"before": before, "after": rss(), "open_s": opened}))
""")


# --------------------------------------------------------------------- text


def articles() -> list[tuple[str, str, str]]:
    """(title, text, source) of every corpus article, in file order."""
    found = []
    for name in FILES:
        with gzip.open(CORPORA / name, "rt", encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                if record["text"].strip():
                    found.append((record.get("title", ""), record["text"], record["source"]))
    return found


def rotated(text: str, turn: int) -> str:
    """The text with its paragraphs (or, in one paragraph, its sentences) rotated by ``turn``."""
    parts = [p for p in re.split(r"\n\s*\n|\n", text) if p.strip()]
    if len(parts) < 2:
        parts = re.split(r"(?<=[.!?])\s+", text.strip())
    turn %= len(parts)
    return "\n\n".join(parts[turn:] + parts[:turn])


def published(index: int, edition: int) -> str:
    """A synthetic publication date, 1 in UNDATED_EVERY undated."""
    seed = index * 7919 + edition * 104_729
    if seed % UNDATED_EVERY == 0:
        return ""
    return (FIRST_DAY + timedelta(days=seed % DAYS)).isoformat()


def documents(corpus: list[tuple[str, str, str]], first_edition: int = 0,
              digest: int = DIGEST) -> Iterator[Document]:
    """The corpus pass after pass from ``first_edition``, each document once. Pass 0 is the
    articles as they are; pass p > 0 makes documents of ``digest`` consecutive articles (from
    the p-th on), each article's paragraphs rotated by p, headed "Update p:": news-length
    documents (most corpus items are short wire stories), and a quarter of the per-document
    work."""
    seen: set[str] = set()
    for edition in range(first_edition, 10_000):
        size = 1 if edition == 0 else digest
        order = corpus[edition % len(corpus):] + corpus[:edition % len(corpus)]
        for start in range(0, len(order), size):
            group = order[start:start + size]
            body = group[0][1] if edition == 0 else f"Update {edition}: " + "\n\n".join(
                rotated(text, edition) for _, text, _ in group)
            doc_id = document_id(body)
            if doc_id not in seen:
                seen.add(doc_id)
                yield Document(doc_id, body, title=group[0][0], source=group[0][2],
                               published=published(start, edition))


# --------------------------------------------------------------------- vectors


def cached(path: Path, make) -> np.ndarray:
    if path.exists():
        return np.load(path)
    array = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return array


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class Vectors:
    """A vector for each chunk: its real embedding if it was sampled, else a perturbed copy
    of a sampled one chosen by its text."""

    def __init__(self, real: dict[str, np.ndarray], seed: int = 0) -> None:
        self.real = real
        self.pool = np.stack(list(real.values()))
        self.rng = np.random.default_rng(seed)
        self.scale = np.sqrt((1 / COSINE ** 2 - 1) / self.pool.shape[1])

    def __call__(self, chunks: list[Chunk]) -> np.ndarray:
        rows = []
        for chunk in chunks:
            if chunk.text in self.real:
                rows.append(self.real[chunk.text])
            else:
                pick = int.from_bytes(hashlib.blake2b(chunk.text.encode(), digest_size=8)
                                      .digest(), "big") % len(self.pool)
                rows.append(self.pool[pick] + self.scale * self.rng.standard_normal(
                    self.pool.shape[1]))
        return unit(np.array(rows))


# --------------------------------------------------------------------- measuring


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, int(0.95 * len(ms)))]


def timed(call, items) -> tuple[list[float], list]:
    times, results = [], []
    for item in items:
        started = time.perf_counter()
        results.append(call(item))
        times.append(time.perf_counter() - started)
    return times, results


def written_bytes() -> int:
    """Bytes this process has passed to write() so far (/proc/self/io wchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def log(started: float, message: str) -> None:
    print(f"[{time.perf_counter() - started:7.0f} s] {message}", flush=True)


# --------------------------------------------------------------------- the run


def kept(years: dict[str, int], flt: Filter) -> float:
    """The share of chunks a whole-year date filter keeps (undated ones pass)."""
    low, high = (flt.date_from or "0000")[:4], (flt.date_to or "9999")[:4]
    return sum(n for year, n in years.items() if not year or low <= year <= high) / sum(
        years.values())


def build(index: Path, target: int, corpus, vectors: Vectors, embedder_name: str,
          dimension: int, started: float) -> tuple[faiss.Index, dict[int, str], dict]:
    """Index documents until ``target`` chunks, as ``NewsQA.add`` does; return the exact
    reference index (ids = chunk ids, which SQLite hands out 1, 2, ... here), a sample of
    chunk ids with their texts to check that, and build figures."""
    if index.exists():
        shutil.rmtree(index)
    flat = faiss.IndexIDMap(faiss.IndexFlatIP(dimension))
    chunker, probe, added, docs, upgrades = Chunker(), {}, 0, 0, []
    years: dict[str, int] = {}
    rng = random.Random(0)
    began = time.perf_counter()
    store = Store.open(index, embedder_name=embedder_name, dimension=dimension)
    kind = store.index_type
    with store.writing():
        batch: list[Document] = []
        for doc in documents(corpus):
            chunks = chunker.split(doc)
            if not chunks:
                continue
            rows = vectors(chunks)
            store.add(doc, chunks, rows)
            ids = np.arange(added + 1, added + len(chunks) + 1, dtype=np.int64)
            flat.add_with_ids(rows, ids)
            if rng.random() < 0.001:
                probe[int(ids[0])] = chunks[0].text
            years[doc.published[:4]] = years.get(doc.published[:4], 0) + len(chunks)
            added, docs = added + len(chunks), docs + 1
            batch.append(doc)
            if len(batch) == ADD_BATCH_DOCS or added >= target:
                before = time.perf_counter()
                store.save()
                if store.index_type != kind:
                    kind = store.index_type
                    upgrades.append(f"{kind} at {added:,} ({time.perf_counter() - before:.0f} s)")
                    log(started, f"index is now {kind}")
                batch = []
                if docs % (ADD_BATCH_DOCS * 100) == 0 or added >= target:
                    log(started, f"{added:,} chunks, {docs:,} documents")
            if added >= target:
                break
    store.close()
    seconds = time.perf_counter() - began
    return flat, probe, {"documents": docs, "chunks": added, "seconds": seconds,
                         "upgrades": upgrades, "years": years}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--real", type=int, default=10_000, help="chunks embedded for real")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "scale")
    args = parser.parse_args()
    if not CORPORA.is_dir():
        sys.exit(f"scale: {CORPORA} is absent (development data ships with the team's machines)")
    started = time.perf_counter()
    corpus = articles()
    log(started, f"{len(corpus):,} articles read; FAISS {faiss.__version__}, "
                 f"{faiss.omp_get_max_threads()} threads")

    embedder = Embedder(backend="onnx")
    chunker = Chunker()
    first = [c for _, text, _ in corpus for c in chunker.split(Document("pass-0", text))]
    sample = sorted({c.text for c in first[:: max(1, len(first) // args.real)]})[:args.real]
    key = hashlib.sha256("\n".join(sample).encode()).hexdigest()[:12]
    real = cached(args.work / f"real-{len(sample)}-{key}.npy",
                  lambda: embedder.encode(sample))
    questions = [json.loads(line)["question"]
                 for line in QUESTIONS.read_text().splitlines()[:args.queries]]
    queries = cached(args.work / f"questions-{len(questions)}.npy",
                     lambda: np.stack([embedder.encode_query(q) for q in questions]))
    headlines = random.Random(0).sample([t for t, _, _ in corpus if t.strip()], len(questions))
    heads = cached(args.work / f"headlines-{len(headlines)}.npy",
                   lambda: np.stack([embedder.encode_query(h) for h in headlines]))
    log(started, f"{len(sample):,} chunks embedded for real (of {len(first):,} in pass 0), "
                 f"{len(questions)} questions and headlines")
    vectors = Vectors(dict(zip(sample, real)))

    index = args.work / "index"
    flat, probe, built = build(index, args.chunks, corpus, vectors, embedder.name,
                               embedder.dimension, started)
    log(started, f"built: {built['chunks']:,} chunks, {built['documents']:,} documents in "
                 f"{built['seconds']:.0f} s")
    truth, flat_times = exact(flat, np.vstack([queries, heads]))
    del flat  # 1.5 GB at 1M
    report = measure(index, embedder, truth, probe, {"questions": queries, "headlines": heads},
                     questions, corpus, vectors, built["years"], started)
    report["flat_ms"] = percentiles(flat_times)
    report["build"] = built
    report["real"] = len(sample)
    (args.work / f"scale-{built['chunks']}.json").write_text(json.dumps(report, indent=2))
    print_table(report)


def exact(flat: faiss.Index, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """The exact top 10 of every query (all at once), and the time of a few one at a time."""
    _, truth = flat.search(queries, 10)
    times, _ = timed(lambda q: flat.search(q[None, :], 10), queries[:FLAT_QUERIES])
    return truth, times


def measure(index: Path, embedder: Embedder, truth: np.ndarray, probe: dict[int, str],
            query_sets: dict[str, np.ndarray], questions: list[str], corpus, vectors: Vectors,
            years: dict[str, int], started: float) -> dict:
    report: dict = {}
    probe_run = subprocess.run(
        [sys.executable, "-c", RAM_PROBE, str(index), embedder.name, str(embedder.dimension)],
        cwd=ROOT, capture_output=True, text=True, check=True)
    report["ram"] = json.loads(probe_run.stdout)
    log(started, f"RAM probe: {report['ram']}")

    store = Store.open(index, embedder_name=embedder.name, dimension=embedder.dimension,
                       create=False)
    if [c.text for c in store.chunks_by_ids(list(probe))] != list(probe.values()):
        sys.exit("scale: chunk ids were not handed out in the order chunks were added")
    report["chunks"], report["index_type"] = len(store), store.index_type

    report["dense"] = {}
    default = faiss_vectors.NPROBE
    with store.snapshot():
        for nprobe in (default // 2, 2 * default, default):  # the default last: it stays
            faiss_vectors.NPROBE = nprobe
            row, at = {}, 0
            for name, queries in query_sets.items():
                times, found = timed(lambda q: store.search(q, 10), queries)
                recall = np.mean([len({i for i, _ in hits} & set(t)) / 10
                                  for hits, t in zip(found, truth[at:at + len(queries)])])
                row[name], at = (*percentiles(times), float(recall)), at + len(queries)
            report["dense"][nprobe] = row
            log(started, f"dense at nprobe {nprobe}: {row}")
        keyword_times, _ = timed(lambda q: store.keyword_search(q, 50), questions)
    report["keyword_ms"] = percentiles(keyword_times)
    log(started, f"keyword {report['keyword_ms']}")
    queries = query_sets["questions"]

    retriever = Retriever(store, embedder)
    embed_times, _ = timed(embedder.encode_query, questions)
    report["embed_ms"] = percentiles(embed_times)
    report["retrieve_ms"] = {}
    for name, flt in (("no filter", None), *FILTERS.items()):
        with store.snapshot():
            if flt is not None:
                first = time.perf_counter()
                store.search(queries[0], 10, flt)  # the first loads the per-chunk columns
                report.setdefault("first_filter_s", time.perf_counter() - first)
            times, _ = timed(lambda q: retriever.retrieve(q, 5, filter=flt), questions)
        report["retrieve_ms"][name] = (*percentiles(times), flt and kept(years, flt))
        log(started, f"retrieve, {name}: {report['retrieve_ms'][name]}")

    report["disk"] = {
        "database": sum(p.stat().st_size for p in index.glob(f"{DATABASE}*")),  # with its WAL
        "vector files": sum(p.stat().st_size for p in index.glob("vectors-*"))}
    report["add"] = add_articles(index, store, embedder, corpus, vectors)
    log(started, f"added {ADDED_DOCS} articles: {report['add']}")
    store.close()
    return report


def add_articles(index: Path, reader: Store, embedder: Embedder, corpus,
                 vectors: Vectors) -> dict:
    """Time and bytes for a writer to add ADDED_DOCS new articles in one save, and for a reader
    holding the previous generation to catch up with them."""
    chunker = Chunker()
    batch = []
    for doc in documents(corpus, first_edition=9_000, digest=1):  # single articles
        chunks = chunker.split(doc)
        if chunks:
            batch.append((doc, chunks, vectors(chunks)))
        if len(batch) == ADDED_DOCS:
            break
    files_before = {p.name for p in index.glob("vectors-*")}
    writer = Store.open(index, embedder_name=embedder.name, dimension=embedder.dimension,
                        create=False)
    wrote, began = written_bytes(), time.perf_counter()
    for doc, chunks, rows in batch:
        writer.add(doc, chunks, rows)
    writer.save()
    seconds, wrote = time.perf_counter() - began, written_bytes() - wrote
    new_files = {p.name: p.stat().st_size for p in index.glob("vectors-*")
                 if p.name not in files_before}
    writer.close()
    began = time.perf_counter()
    with reader.snapshot():
        caught_up = time.perf_counter() - began
        assert len(reader) == len(writer)
    return {"seconds": seconds, "chunks": sum(len(c) for _, c, _ in batch),
            "bytes_written": wrote, "new_vector_files": new_files, "reader_catch_up_s": caught_up}


def print_table(report: dict) -> None:
    gb, mb = 1024 ** 3, 1024 ** 2
    built, add, ram = report["build"], report["add"], report["ram"]
    rows = [
        ("chunks / documents", f"{report['chunks']:,} / {built['documents']:,}"),
        ("vectors", f"{report['real']:,} real MiniLM embeddings, the rest perturbed copies"),
        ("index", f"{report['index_type']} (exact reference: Flat over float32)"),
        (f"build (Store.add, a save every {ADD_BATCH_DOCS} documents)",
         f"{built['seconds'] / 60:.1f} min, {built['chunks'] / built['seconds']:.0f} chunks/s; "
         "trained " + "; ".join(built["upgrades"])),
    ]
    for nprobe, row in report["dense"].items():
        rows.append((f"dense p50 / p95, recall@10, nprobe {nprobe}", "; ".join(
            f"{name} {p50:.2f} / {p95:.2f} ms, {recall:.3f}"
            for name, (p50, p95, recall) in row.items())))
    rows += [
        ("exact Flat search p50 / p95", "{:.0f} / {:.0f} ms ({} queries)".format(
            *report["flat_ms"], FLAT_QUERIES)),
        ("keyword search p50 / p95 (k=50)", "{:.1f} / {:.1f} ms".format(*report["keyword_ms"])),
        ("query embedding p50 / p95", "{:.1f} / {:.1f} ms".format(*report["embed_ms"])),
    ]
    for name, (p50, p95, kept) in report["retrieve_ms"].items():
        share = "" if kept is None else f", keeps {kept:.0%}"
        rows.append((f"retrieve() p50 / p95, {name}{share}", f"{p50:.1f} / {p95:.1f} ms"))
    rows += [
        ("first filtered search (loads columns)", f"{report['first_filter_s']:.1f} s"),
        ("reader RSS after open + search", f"{ram['after'] / gb:.2f} GB ("
                                           f"{(ram['after'] - ram['before']) / gb:.2f} GB over "
                                           f"the imports), opened in {ram['open_s']:.1f} s"),
        ("disk: database / vector files", f"{report['disk']['database'] / gb:.2f} GB / "
                                          f"{report['disk']['vector files'] / gb:.2f} GB"),
        (f"add {ADDED_DOCS:,} articles ({add['chunks']:,} chunks), one save",
         f"{add['seconds']:.1f} s, {add['bytes_written'] / mb:.0f} MB written, vector files "
         + ", ".join(f"{n} {s / mb:.1f} MB" for n, s in add["new_vector_files"].items())),
        ("a reader catches up with them", f"{add['reader_catch_up_s'] * 1000:.0f} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
