"""Keyword search: SQLite FTS5 (``qa.store.local.keywords``) against ``bm25s`` and the replaced
``rank_bm25``.

    python benchmarks/keyword.py [--questions N] [--leads N] [--fused] [--embedder-backend onnx]

Needs ``pip install bm25s rank_bm25`` in the venv (for this comparison only: neither is a project
dependency). All three use the same vocabulary, ``qa.text.tokenize``, on the query side; FTS5
splits the indexed text with its unicode61 tokenizer, the others with ``tokenize`` too.

Speed, on the BBC corpus (2,225 articles) chunked as NewsQA chunks it (``qa.chunk.Chunker``):

- build: index the chunks of the first 2,125 articles. FTS5: ``qa.store.local.keywords.create`` (how
the
  first writer of an older index builds its keyword index: one INSERT ... SELECT over the stored
  chunks), then commit. bm25s and rank_bm25: tokenise and index in memory, nothing stored.
- add 100: index the last 100 articles. FTS5: ``qa.store.local.keywords.add`` per article in one
transaction,
  then commit, as ``Store.add`` and ``save`` do. bm25s and rank_bm25 cannot add (nor delete): they
  index the whole corpus again.
- query p50/p95: milliseconds per question for the top 50 chunks (the Retriever's candidates),
  one question at a time, over the newsqa_cnn_dev questions.

Quality: recall@5, the share of questions whose gold article has a chunk among the first five
the keyword side returns, on the keyword side alone:

- newsqa_cnn_dev (999 questions on 778 CNN articles): its titles are placeholders
  ("cotaeval-indomain"), so the articles are indexed without titles and title weights change
  nothing there.
- squad_v1.1_dev_public (1,047 questions; each paragraph of 8 Wikipedia articles is a document,
  titled with its article's title): a title is shared by ~50 documents, so a title weight can
  only move whole articles up or down.
- BBC leads (``--leads`` articles): an article's first paragraph is the question and the rest is
  indexed under its headline. A proxy for questions written from headlines, as NewsQA's were
  (its crowd workers saw the headline and the summary). No question set here has real headlines.

``--fused`` adds recall@5 of the whole ``Retriever`` (dense + keyword, reciprocal rank fusion) on
newsqa_cnn_dev, with each keyword backend in turn and with none (dense only); the chunks are
embedded first (``--embedder-backend``: onnx int8 by default, the faster).

Measured with ``--leads 2225 --fused`` on the shared 2-core machine under a load of ~12 (10 min of
CPU, 27 min wall; embedding 7,909 chunks took 9 of them):

    | keyword index                        | build s | add 100 docs s  | p50 ms | p95 ms |
    | FTS5, title weight 2                 | 0.60    | 0.050           | 1.2    | 9.3    |
    | FTS5, single letters kept            |         |                 | 1.2    | 15.9   |
    | FTS5, source + date filter (all kept)|         |                 | 5.9    | 23.7   |
    | bm25s                                | 1.35    | 1.58 (re-index) | 1.5    | 6.0    |
    | rank_bm25                            | 0.81    | 2.21 (re-index) | 39.4   | 87.0   |

    recall@5 %, keyword side alone     newsqa_cnn_dev   squad_v1.1_dev_public   BBC leads
    FTS5, title weight 0 / 1 / 2       82.3 / 82.3 / 82.3   94.8 / 94.9 / 94.7   73.7 / 83.8 / 85.4
    FTS5, title weight 3 / 5           82.3 / 82.3          94.7 / 94.3          85.7 / 85.8
    FTS5, weight 2, single letters     82.2                 94.9                 85.6
    bm25s                              81.6                 95.2                 73.9
    rank_bm25                          81.5                 95.2                 73.5

    newsqa_cnn_dev through Retriever (onnx int8 embeddings), recall@5 %: dense only 77.5,
    + FTS5 84.9, + bm25s 84.7, + rank_bm25 84.6.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import statistics
import tempfile
import time
from itertools import islice
from unittest import mock
from pathlib import Path
from typing import Callable, Protocol, Sequence

import bm25s
import numpy as np
from rank_bm25 import BM25Okapi

from qa.chunk import Chunker
from qa.embed import Embedder
from qa.ingest.files import load
from qa.retrieve import Retriever
from qa.store.local import keywords
from qa.store.local.database import DATABASE
from qa.store.local.store import Store
from qa.text import tokenize
from qa.types import Chunk, Document, Filter

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BBC = DATA / "corpora" / "bbc_news_2225.jsonl.gz"
NEWSQA = DATA / "qa" / "dev" / "newsqa_cnn_dev.jsonl"
SQUAD = DATA / "qa" / "dev" / "squad_v1.1_dev_public.jsonl"
CANDIDATES = 50  # chunks each side hands to fusion (Retriever's default)
ADDED = 100
TITLE_WEIGHTS = (0.0, 1.0, 2.0, 3.0, 5.0)
DIMENSION = 384

Corpus = list[tuple[Document, list[Chunk]]]
Hits = list[tuple[int, float]]


class Keyword(Protocol):
    name: str

    def search(self, query: str, k: int, filter: Filter | None = None) -> Hits: ...


def every_term(query: str) -> list[str]:
    """``keywords.query_terms`` keeping single letters too (what it did at first)."""
    return list(dict.fromkeys(tokenize(query)))


class Fts5:
    """``qa.store.local.keywords`` over a store's database, with the given (title, text) weights."""

    def __init__(self, db: sqlite3.Connection, title_weight: float,
                 single_letters: bool = False) -> None:
        self.db, self.weights = db, (title_weight, keywords.TEXT_WEIGHT)
        self.single_letters = single_letters
        self.name = f"FTS5, title weight {title_weight:g}" + (
            ", single letters kept" if single_letters else "")

    def search(self, query: str, k: int, filter: Filter | None = None) -> Hits:
        if not self.single_letters:
            return keywords.search(self.db, query, k, weights=self.weights)
        with mock.patch.object(keywords, "query_terms", every_term):
            return keywords.search(self.db, query, k, weights=self.weights)


class Bm25s:
    """bm25s (Lucene BM25, k1=1.5, b=0.75) over chunk texts, in memory."""

    name = "bm25s"

    def __init__(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        self.ids = list(ids)
        self.index = bm25s.BM25()
        self.index.index([tokenize(t) for t in texts], show_progress=False)

    def search(self, query: str, k: int, filter: Filter | None = None) -> Hits:
        terms = tokenize(query)
        if not terms:
            return []
        found, scores = self.index.retrieve([terms], k=min(k, len(self.ids)),
                                            show_progress=False)
        return [(self.ids[d], float(s)) for d, s in zip(found[0], scores[0]) if s > 0]


class RankBm25:
    """rank_bm25's BM25Okapi over chunk texts, scored in numpy: what Retriever did before."""

    name = "rank_bm25"

    def __init__(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        self.ids = np.array(ids, dtype=np.int64)
        self.index = BM25Okapi([tokenize(t) for t in texts])

    def search(self, query: str, k: int, filter: Filter | None = None) -> Hits:
        terms = tokenize(query)
        if not terms:
            return []
        scores = self.index.get_scores(terms)
        best = np.argsort(-scores, kind="stable")[:k]
        return [(int(self.ids[i]), float(scores[i])) for i in best if scores[i] > 0]


class KeywordSide:
    """A store whose keyword search is ``keyword``'s: the Retriever runs as shipped otherwise."""

    def __init__(self, store: Store, keyword: Callable[..., Hits]) -> None:
        self._store, self.keyword_search = store, keyword

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def __len__(self) -> int:
        return len(self._store)


# ---- corpora ---------------------------------------------------------------------------------
def document(text: str, title: str = "", source: str = "") -> Document:
    return Document(hashlib.sha256(text.encode()).hexdigest()[:16], text, title=title,
                    source=source)


def chunked(docs: Sequence[Document]) -> Corpus:
    chunker = Chunker()
    return [(doc, chunker.split(doc)) for doc in docs]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def qa_set(path: Path, with_titles: bool) -> tuple[Corpus, list[tuple[str, str]]]:
    """Each distinct context as a document, and (question, gold document id) pairs."""
    rows = read_jsonl(path)
    docs = {r["context"]: document(r["context"], r["title"].replace("_", " ") if with_titles
                                   else "") for r in rows}
    return chunked(list(docs.values())), [(r["question"], docs[r["context"]].id) for r in rows]


def bbc_leads(every: int) -> tuple[Corpus, list[tuple[str, str]]]:
    """BBC articles without their first paragraph, under their headline; the first paragraphs
    of every ``every``-th article are the questions."""
    docs: dict[str, Document] = {}
    questions = []
    for i, article in enumerate(load([BBC])):
        lead, _, body = article.text.partition("\n\n")
        doc = document(body.strip(), title=article.title)
        if body.strip() and doc.id not in docs:  # the corpus has exact copies
            docs[doc.id] = doc
            if i % every == 0:
                questions.append((lead, doc.id))
    return chunked(list(docs.values())), questions


def build_store(path: Path, corpus: Corpus, vectors: np.ndarray | None = None,
                embedder_name: str = "benchmark/constant") -> Store:
    """A real index of ``corpus``; every chunk gets one constant unit vector unless given."""
    store = Store.open(path, embedder_name=embedder_name, dimension=DIMENSION)
    constant = np.zeros((1, DIMENSION), dtype=np.float32)
    constant[0, 0] = 1.0
    row = 0
    for doc, chunks in corpus:
        store.add(doc, chunks, np.repeat(constant, len(chunks), axis=0) if vectors is None
                  else vectors[row:row + len(chunks)])
        row += len(chunks)
    store.save()
    return store


def all_chunks(store: Store) -> tuple[list[int], list[str], dict[int, str]]:
    ids, texts, doc_of = [], [], {}
    for chunk_id, chunk in store.iter_chunks():
        ids.append(chunk_id)
        texts.append(chunk.text)
        doc_of[chunk_id] = chunk.doc_id
    return ids, texts, doc_of


# ---- measures --------------------------------------------------------------------------------
def timed(make: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    made = make()
    return made, time.perf_counter() - start


def latencies(search: Callable[[str, int], Hits], questions: Sequence[str]) -> tuple[float, float]:
    """p50 and p95 milliseconds per question."""
    spent = []
    for question in questions:
        start = time.perf_counter()
        search(question, CANDIDATES)
        spent.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(spent, n=20)
    return statistics.median(spent), cuts[18]


def recall_at_5(search: Callable[[str, int], Hits], doc_of: dict[int, str],
                questions: Sequence[tuple[str, str]]) -> float:
    hit = sum(gold in {doc_of[i] for i, _ in search(q, 5)} for q, gold in questions)
    return hit / len(questions)


def speed(work: Path, questions: Sequence[str]) -> list[list[str]]:
    docs = list({doc.id: doc for doc in load([BBC])}.values())  # the corpus has exact copies
    corpus = chunked(docs[:-ADDED])
    added = chunked(docs[-ADDED:])
    store = build_store(work / "bbc", corpus)
    ids, texts, _ = all_chunks(store)
    more = [c.text for _, chunks in added for c in chunks]
    print(f"BBC: {len(corpus)} articles, {len(ids)} chunks; then {ADDED} articles, {len(more)} "
          f"chunks; {len(questions)} questions timed")
    db = sqlite3.connect(work / "bbc" / DATABASE)
    db.execute(f"DROP TABLE {keywords.TABLE}")  # as an older index has none
    db.commit()
    rows = []

    def fts_build() -> None:
        keywords.create(db)
        db.commit()

    _, build_s = timed(fts_build)
    p50, p95 = latencies(store.keyword_search, questions)
    l50, l95 = latencies(Fts5(db, keywords.TITLE_WEIGHT, single_letters=True).search, questions)
    # the BBC articles are undated: this filter keeps every one, the most work a filter adds
    everything = Filter(("bbc news (2004-2005)",), date_from="2004")
    f50, f95 = latencies(lambda q, k: store.keyword_search(q, k, everything), questions)
    next_id = max(ids) + 1

    def fts_add() -> None:
        nonlocal next_id
        for doc, chunks in added:
            keywords.add(db, doc.title, zip(range(next_id, next_id + len(chunks)),
                                            (c.text for c in chunks)))
            next_id += len(chunks)
        db.commit()

    _, add_s = timed(fts_add)
    size = sum(row[0] for row in db.execute(
        "SELECT SUM(pgsize) FROM dbstat WHERE name LIKE ?", (f"{keywords.TABLE}%",)))
    name = Fts5(db, keywords.TITLE_WEIGHT).name
    rows.append([name, f"{build_s:.2f}", f"{add_s:.3f}", f"{p50:.1f}", f"{p95:.1f}",
                 f"{size / 2**20:.1f} MB on disk"])
    rows.append([f"{name}, single letters kept", "", "", f"{l50:.1f}", f"{l95:.1f}", ""])
    rows.append([f"{name}, source + date filter", "", "", f"{f50:.1f}", f"{f95:.1f}",
                 "Store.keyword_search; the filter keeps every article"])
    for kind in (Bm25s, RankBm25):
        index, build_s = timed(lambda: kind(ids, texts))
        p50, p95 = latencies(index.search, questions)
        _, add_s = timed(lambda: kind(range(len(ids) + len(more)), texts + more))
        rows.append([kind.name, f"{build_s:.2f}", f"{add_s:.2f} (re-index)", f"{p50:.1f}",
                     f"{p95:.1f}", "in memory, rebuilt per change"])
    db.close()
    store.close()
    return rows


def quality(work: Path, name: str, corpus: Corpus, questions: Sequence[tuple[str, str]],
            store: Store | None = None) -> dict[str, float]:
    store = store or build_store(work / name, corpus)
    ids, texts, doc_of = all_chunks(store)
    db = sqlite3.connect(store.path / DATABASE)
    backends: list[Keyword] = [Fts5(db, w) for w in TITLE_WEIGHTS]
    backends.append(Fts5(db, keywords.TITLE_WEIGHT, single_letters=True))
    backends += [Bm25s(ids, texts), RankBm25(ids, texts)]
    print(f"{name}: {len(corpus)} documents, {len(ids)} chunks, {len(questions)} questions",
          flush=True)
    recalls = {b.name: recall_at_5(b.search, doc_of, questions) for b in backends}
    db.close()
    return recalls


def fused(work: Path, corpus: Corpus, questions: Sequence[tuple[str, str]],
          backend: str) -> tuple[Store, dict[str, float]]:
    embedder = Embedder(backend=backend)
    embedder.warm_up()
    texts = [c.text for _, chunks in corpus for c in chunks]
    vectors, spent = timed(lambda: embedder.encode(texts))
    print(f"embedded {len(texts)} chunks in {spent:.0f} s ({embedder.backend}, "
          f"{embedder.precision})", flush=True)
    store = build_store(work / "newsqa-fused", corpus, vectors, embedder.name)
    ids, texts, doc_of = all_chunks(store)
    db = sqlite3.connect(store.path / DATABASE)
    sides: dict[str, Callable[..., Hits]] = {
        "dense only": lambda query, k, filter=None: []}
    for side in (Fts5(db, keywords.TITLE_WEIGHT), Bm25s(ids, texts), RankBm25(ids, texts)):
        sides[side.name] = side.search
    recalls = {}
    for name, search in sides.items():
        retriever = Retriever(KeywordSide(store, search), embedder)  # type: ignore[arg-type]
        hits = sum(gold in {h.chunk.doc_id for h in retriever.retrieve(q, 5)}
                   for q, gold in questions)
        recalls[name] = hits / len(questions)
    db.close()
    return store, recalls


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=999, help="newsqa questions timed on BBC")
    ap.add_argument("--leads", type=int, default=500, help="BBC lead questions (about)")
    ap.add_argument("--fused", action="store_true", help="also dense + keyword through Retriever")
    ap.add_argument("--embedder-backend", default="onnx", choices=("onnx", "torch"))
    args = ap.parse_args()
    for path in (BBC, NEWSQA, SQUAD):
        if not path.exists():
            raise SystemExit(f"data not found: {path}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        newsqa_corpus, newsqa_questions = qa_set(NEWSQA, with_titles=False)
        speed_rows = speed(work, [q for q, _ in islice(newsqa_questions, args.questions)])
        print("\n" + table(["keyword index", "build s", f"add {ADDED} docs s", "query p50 ms",
                            "query p95 ms", "notes"], speed_rows) + "\n", flush=True)

        store, fused_recall = None, {}
        if args.fused:
            store, fused_recall = fused(work, newsqa_corpus, newsqa_questions,
                                        args.embedder_backend)
        sets = {"newsqa_cnn_dev": quality(work, "newsqa_cnn_dev", newsqa_corpus,
                                          newsqa_questions, store),
                "squad_v1.1_dev_public": quality(work, "squad", *qa_set(SQUAD, True)),
                "BBC leads": quality(work, "bbc-leads", *bbc_leads(2225 // args.leads))}
        names = list(next(iter(sets.values())))
        rows = [[name] + [f"{100 * recalls[name]:.1f}" for recalls in sets.values()]
                for name in names]
        print("\n" + table(["keyword side alone, recall@5 %", *sets], rows))
        if fused_recall:
            print("\n" + table(["newsqa_cnn_dev through Retriever", "recall@5 %"],
                               [[n, f"{100 * r:.1f}"] for n, r in fused_recall.items()]))
        if store is not None:
            store.close()


if __name__ == "__main__":
    main()
