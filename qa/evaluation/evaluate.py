"""``newsqa eval``: measure the pipeline on a SQuAD-style JSON Lines file.

Two modes. ``reader`` reads each question against its own context only (the reader's accuracy,
no retrieval). ``e2e`` indexes every distinct context of the file in a fresh index and asks each
question of the whole index (what a user gets). ``e2e --removed`` then asks each question again
with its own article taken out of the index (what a user asking about a story that is not indexed
gets: the right reply is "not found"); these results are what the answer decision is fitted on
(``newsqa calibrate``). ``e2e --index DIR`` asks an existing index, which keeps what it holds:
there a question may come without a context, its gold article named by an optional "doc_id"
(retrieval is scored on the questions that name one). Both modes write ``predictions.jsonl``
(one line per question and condition, a format other tools rely on) and the report (see
``qa.evaluation.report``) into ``--out``.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import math
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

import qa
from qa.decide import ReaderScore
from qa.embed import Embedder
from qa.errors import NewsQAError, QuestionError
from qa.evaluation.report import QuestionResult, build_report, write_report
from qa.ingest.documents import make_document
from qa.pipeline import NewsQA
from qa.reader.model import Reader, ReadWork
from qa.runtime import BACKENDS
from qa.types import Answer, Document, IndexConfig
from qa.validate import validate_question

DEFAULT_BACKEND = IndexConfig().backend  # measure what NewsQA runs by default

MODES = ("reader", "e2e")
RETRIEVAL_DEPTH = 10  # chunks retrieved for recall@1/5/10 and MRR, or top_k if that is larger
PREDICTIONS_FILE = "predictions.jsonl"


@dataclass(frozen=True)
class Question:
    """One line of the data file, checked."""

    id: str
    title: str
    context: str  # "" for a question asked of an existing index alone (``--index``)
    question: str
    answers: list[str]  # gold answer texts, [] when unanswerable
    is_impossible: bool | None  # None when the line does not say
    doc_id: str = ""  # a question without a context: its gold article's id in the index, if given


# ---- data ------------------------------------------------------------------------------------
def load_questions(path: Path, *, contexts: bool = True) -> list[Question]:
    """Every question of a plain or gzipped JSON Lines file, in file order. Without
    ``contexts`` (an existing index is asked) a line may leave its context out; its answers then
    need no ``answer_start``, and it may name its gold article by "doc_id".

    Raises ``NewsQAError`` naming the file and line for anything malformed, so a bad gold answer
    cannot silently skew the numbers.
    """
    questions: list[Question] = []
    seen: set[str] = set()
    for n, line in _lines(path):
        where = f"{path}, line {n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise NewsQAError(f"{where} is not valid JSON ({err.msg}).") from None
        question = _parse_question(record, where, contexts)
        if question.id in seen:
            raise NewsQAError(f"{where}: the id {question.id!r} occurs twice.")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise NewsQAError(f"{path} contains no questions.")
    return questions


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; gzip is recognised by the ``.gz`` suffix."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    yield n, line
    except FileNotFoundError:
        raise NewsQAError(f"{path} does not exist.") from None
    except UnicodeDecodeError as err:
        raise NewsQAError(f"{path} is not UTF-8 text (bad byte at offset {err.start}).") from None
    except (OSError, EOFError, zlib.error) as err:
        raise NewsQAError(f"{path} cannot be read ({err}).") from None


def _parse_question(record: object, where: str, contexts: bool) -> Question:
    if not isinstance(record, dict):
        raise NewsQAError(f"{where} is not a JSON object.")
    required = ("id", "context", "question") if contexts else ("id", "question")
    for key in ("id", "context", "question", "doc_id"):
        if (key in required or key in record) and (not isinstance(record.get(key), str)
                                                   or not record[key].strip()):
            raise NewsQAError(f"{where}: '{key}' must be a non-empty string" + (
                " (a question without one is asked of an index of yours: --mode e2e --index "
                "DIR)" if key == "context" else "") + ".")
    context = record.get("context", "")
    if context and "doc_id" in record:
        raise NewsQAError(f"{where}: 'doc_id' is for a question without a 'context': the "
                          "context is its article.")
    title = record.get("title", "")
    if not isinstance(title, str):
        raise NewsQAError(f"{where}: 'title' must be a string.")
    try:
        validate_question(record["question"])
    except QuestionError as err:
        raise NewsQAError(f"{where}: {err}") from None
    answers = _parse_answers(record.get("answers"), context, where)
    impossible = record.get("is_impossible")
    if impossible is not None and not isinstance(impossible, bool):
        raise NewsQAError(f"{where}: 'is_impossible' must be true or false.")
    if bool(impossible) == bool(answers):
        raise NewsQAError(f"{where}: a question needs answers unless 'is_impossible' is true, "
                          "and an impossible one must have none.")
    return Question(record["id"], title, context, record["question"], answers, impossible,
                    record.get("doc_id", ""))


def _parse_answers(answers: object, context: str, where: str) -> list[str]:
    """Gold answer texts, each checked to occur in the context (if any) at its
    ``answer_start``."""
    if not isinstance(answers, list):
        raise NewsQAError(f"{where}: 'answers' must be a list.")
    texts = []
    for a in answers:
        if not (isinstance(a, dict) and isinstance(a.get("text"), str) and a["text"]
                and (not context or isinstance(a.get("answer_start"), int)
                     and not isinstance(a["answer_start"], bool))):
            raise NewsQAError(f"{where}: each answer needs a non-empty 'text'"
                              + (" and an integer 'answer_start'." if context else "."))
        start, text = a.get("answer_start"), a["text"]
        if context and (start < 0 or context[start:start + len(text)] != text):
            raise NewsQAError(f"{where}: the answer {text!r} is not at offset {start} of the "
                              "context.")
        texts.append(text)
    return texts


# ---- running ---------------------------------------------------------------------------------
def evaluate(data: Path, mode: str, out: Path, *, limit: int | None = None, top_k: int = 5,
             reader: str | None = None, threshold: float | None = None,
             index_dir: str | Path | None = None, removed: bool = False,
             reader_backend: str = DEFAULT_BACKEND,
             embedder_backend: str = DEFAULT_BACKEND, reader_device: str = "cpu") -> dict:
    """Answer the first ``limit`` questions of ``data`` in ``mode``; write and return the report.

    In e2e, every context of the file is indexed even with ``limit``: the limit picks the
    questions, not the corpus they are asked of. ``index_dir`` keeps the e2e index (default: a
    temporary one); documents already in it stay and count as distractors, and questions
    without a context are asked of it alone. ``removed`` (e2e only, every question with its
    context) asks every answerable question a second time with its article removed from the
    index. ``reader_device`` runs a torch reader on a GPU ("cuda"), e.g. a large teacher model.
    """
    data, out = Path(data), Path(out)
    _check_options(mode, out, limit, top_k, threshold, removed)
    questions = load_questions(data, contexts=mode == "reader" or not index_dir)
    selected = questions[:limit]
    if removed and not all(q.context for q in selected):
        raise NewsQAError("--removed needs every question's context: it takes that article "
                          "out of the index, and an index of yours is not to be changed.")
    index = (contextlib.nullcontext(index_dir) if index_dir
             else tempfile.TemporaryDirectory(prefix="newsqa-eval-"))
    reading = Reader(reader, backend=reader_backend, device=reader_device)
    with index as where, NewsQA(where, reader=reading, embedder=Embedder(backend=embedder_backend),
                                create=any(q.context for q in questions)) as pipeline:
        if mode == "reader":
            rows = _run_reader(pipeline, selected, threshold)
        else:
            rows = _run_e2e(pipeline, questions, selected, top_k, threshold, removed)
        settings = _settings(pipeline, data, mode, len(selected), limit, top_k, threshold)
        settings["removed"] = removed
    out.mkdir(parents=True, exist_ok=True)
    _write_predictions([p for p, _ in rows], out / PREDICTIONS_FILE)
    results = [r for _, r in rows]
    report = build_report(results, settings, e2e=mode == "e2e")
    write_report(report, results, out)
    return report


def _check_options(mode: str, out: Path, limit: int | None, top_k: int,
                   threshold: float | None, removed: bool) -> None:
    if mode not in MODES:
        raise NewsQAError(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}.")
    if removed and mode != "e2e":
        raise NewsQAError("--removed needs --mode e2e: only an index can lack the article.")
    if limit is not None and limit < 1:
        raise NewsQAError(f"--limit must be at least 1, got {limit}.")
    if top_k < 1:
        raise NewsQAError(f"--top-k must be at least 1, got {top_k}.")
    if threshold is not None and not math.isfinite(threshold):
        raise NewsQAError(f"--threshold must be a finite number, got {threshold}.")
    if out.exists() and not out.is_dir():
        raise NewsQAError(f"{out} exists and is not a directory.")


Row = tuple[dict, QuestionResult]


def _run_reader(pipeline: NewsQA, questions: list[Question],
                threshold: float | None) -> list[Row]:
    """Each question against its own context, through ``read_document`` (no index)."""
    pipeline.reader.warm_up()  # load the model before the clock starts
    docs = _documents(questions)
    rows = []
    for q in tqdm(questions, desc="reading", unit="q"):
        start, before = time.perf_counter(), pipeline.reader.work
        answer = pipeline.read_document(q.question, docs[q.context], threshold=threshold)
        rows.append(_row(q, answer, time.perf_counter() - start,
                         work=pipeline.reader.work - before))
    return rows


def _run_e2e(pipeline: NewsQA, questions: list[Question], selected: list[Question], top_k: int,
             threshold: float | None, removed: bool) -> list[Row]:
    """Index every context of the file, then ask each selected question of the whole index.

    The answer comes from ``ask`` exactly as a user gets it; the retrieval metrics come from a
    separate, deeper ``retrieve`` (after the timed ``ask``, so no cache warmed by it is timed).
    """
    docs = _documents(questions)
    gold_of = _index_contexts(pipeline, docs)
    pipeline.warm_up()  # opens the index: one that is not there is said so first
    gold = {q.id: gold_of[docs[q.context].id] if q.context else _named_article(pipeline, q)
            for q in selected}  # before any question: a gold id the index lacks is an error
    depth = max(RETRIEVAL_DEPTH, top_k)
    rows = []
    for q in tqdm(selected, desc="asking", unit="q"):
        start, before = time.perf_counter(), pipeline.reader.work
        answer = pipeline.ask(q.question, top_k=top_k, threshold=threshold)
        latency, work = time.perf_counter() - start, pipeline.reader.work - before
        ranked = [hit.chunk.doc_id for hit in pipeline.retrieve(q.question, top_k=depth)]
        rows.append(_row(q, answer, latency, gold_doc_id=gold[q.id], ranked_doc_ids=ranked,
                         condition="indexed", work=work))
    if removed:
        rows += _run_removed(pipeline, [q for q in selected if q.answers], gold, top_k,
                             threshold)
    return rows


def _named_article(pipeline: NewsQA, q: Question) -> str | None:
    """The id of the indexed article a question without a context names by "doc_id" (an id or
    an external id), or None where it names none."""
    if not q.doc_id:
        return None
    try:
        return pipeline.get(q.doc_id).id
    except NewsQAError as err:
        raise NewsQAError(f"Question {q.id!r}: its 'doc_id' is no article of the index: "
                          f"{err}") from None


def _run_removed(pipeline: NewsQA, selected: list[Question], gold_of: dict[str, str],
                 top_k: int, threshold: float | None) -> list[Row]:
    """Ask each question with its article deleted through the facade, then put the article back.

    Questions on one article are asked together, so each article is removed and re-added once;
    the index is the same for every question. The right reply is "not found" (gold: no answer).
    """
    by_article: dict[str, list[Question]] = {}
    for q in selected:
        by_article.setdefault(gold_of[q.id], []).append(q)
    rows: dict[str, Row] = {}
    for doc_id, group in tqdm(by_article.items(), desc="asking without the article",
                              unit="article"):
        document = pipeline.get(doc_id)
        pipeline.delete(doc_id)
        for q in group:
            start, before = time.perf_counter(), pipeline.reader.work
            answer = pipeline.ask(q.question, top_k=top_k, threshold=threshold)
            rows[q.id] = _row(q, answer, time.perf_counter() - start, gold_doc_id=doc_id,
                              condition="removed", work=pipeline.reader.work - before)
        if pipeline.add([document]).added != [doc_id]:
            raise NewsQAError(f"Document {doc_id} could not be put back into the index.")
    return [rows[q.id] for q in selected]


def _documents(questions: list[Question]) -> dict[str, Document]:
    """One document per distinct context, titled by its first question, in file order."""
    docs: dict[str, Document] = {}
    for q in questions:
        if q.context and q.context not in docs:
            docs[q.context] = make_document(q.context, title=q.title)
    return docs


def _index_contexts(pipeline: NewsQA, docs: dict[str, Document]) -> dict[str, str]:
    """Index the documents; map each one's id to the id of the indexed document holding it.

    A near-duplicate is not indexed: its questions' gold document is the one kept instead.
    ``AddReport.near_duplicates`` lists them in input order, so they pair up with the documents
    that were neither added nor already present (the ids are distinct, see ``_documents``).
    """
    unique = list({d.id: d for d in docs.values()}.values())
    report = pipeline.add(unique, progress=True)
    kept = set(report.added) | set(report.unchanged)
    dropped = [d for d in unique if d.id not in kept]
    assert len(dropped) == len(report.near_duplicates), "AddReport lost track of a document"
    gold_of = {doc_id: doc_id for doc_id in kept}
    gold_of.update({d.id: original for d, (_, original) in zip(dropped, report.near_duplicates)})
    return gold_of


def _row(q: Question, answer: Answer, latency: float, *, gold_doc_id: str | None = None,
         ranked_doc_ids: list[str] | None = None, condition: str = "",
         work: ReadWork = ReadWork()) -> Row:
    """The ``predictions.jsonl`` line and the report's result for one answered question; an
    e2e one's ``condition`` is "indexed" or "removed" (its article taken out of the index);
    ``work`` is what the reader ran for it.

    With its article removed, a question has no answer in the index: its gold is "not found".
    """
    removed = condition == "removed"
    cited = answer.citations[0] if answer.citations else None
    prediction = {"id": q.id, "prediction": answer.text, "score": answer.score,
                  "doc_id": cited.doc_id if cited else None,
                  "start": cited.start if cited else None, "end": cited.end if cited else None,
                  "retrieved": list(dict.fromkeys(c.doc_id for c in answer.retrieved))}
    if condition:
        prediction["gold_doc_id"] = gold_doc_id
        prediction["condition"] = condition
    result = QuestionResult(q.id, q.question, [] if removed else q.answers,
                            q.is_impossible, answer.text, answer.score, answer.best_text,
                            latency, gold_doc_id, ranked_doc_ids or [], removed=removed,
                            evidence=answer.evidence, reader_windows=work.windows,
                            reader_tokens=work.tokens,
                            reader_padded_tokens=work.padded_tokens)
    return prediction, result


def _write_predictions(predictions: list[dict], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for p in predictions:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")


def _settings(pipeline: NewsQA, data: Path, mode: str, questions: int, limit: int | None,
              top_k: int, threshold: float | None) -> dict:
    """What produced the numbers: data, models, options, version and date."""
    e2e = mode == "e2e"
    return {"data": str(data), "mode": mode, "questions": questions, "limit": limit,
            "reader": str(pipeline.reader.model),
            "reader_int8": pipeline.reader.quantize,
            "reader_backend": pipeline.reader.backend,
            "reader_device": pipeline.reader.device,
            "chunk_max_chars": pipeline.chunker.max_chars,
            "reader_stages": list(pipeline.reader.stages),
            "reader_enough_score": pipeline.reader.enough_score,
            "embedder": pipeline.embedder.name if e2e else None,
            "embedder_backend": (f"{pipeline.embedder.backend} {pipeline.embedder.precision}"
                                 if e2e else None),
            "top_k": top_k if e2e else None,
            "decision": (pipeline.decision if e2e
                         else ReaderScore(pipeline.reader.threshold)).describe(),
            "threshold": ((pipeline.threshold if e2e else pipeline.reader.threshold)
                          if threshold is None else threshold),
            "newsqa_version": qa.__version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


# ---- command line ----------------------------------------------------------------------------
def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", type=Path, metavar="DATA.jsonl",
                   help="questions as JSON Lines (.gz accepted): id, title, context, question, "
                        "answers, is_impossible")
    p.add_argument("--mode", choices=MODES, required=True,
                   help="reader: each question against its own context; e2e: retrieve from an "
                        "index of all the contexts, then read")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="where predictions.jsonl, report.json, report.md and plots go")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="only the first N questions")
    p.add_argument("--top-k", type=_positive_int, default=5, help="chunks read per question (e2e)")
    p.add_argument("--reader", metavar="PATH_OR_ID", help="a transformers QA model")
    p.add_argument("--reader-backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help="what runs the reader: torch, or ONNX Runtime (int8, exported on first "
                        "use and cached)")
    p.add_argument("--reader-device", default="cpu",
                   help="where a torch reader runs: cpu, or cuda for a large model on a GPU")
    p.add_argument("--embedder-backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help="what runs the embedder (e2e): torch, or ONNX Runtime (int8, exported on "
                        "first use and cached)")
    p.add_argument("--threshold", type=float,
                   help="confidence to answer from (default: the answer decision's, see "
                        "qa/decide.py; reader mode: the reader's span-score threshold)")
    p.add_argument("--index", "--index-dir", dest="index_dir", metavar="DIR_OR_URI",
                   help="e2e: the index to ask (default: a temporary one), which the file's "
                        "contexts are added to; there a question may come without a context, "
                        "its gold article named by an optional doc_id")
    p.add_argument("--removed", action="store_true",
                   help="e2e: ask each answerable question again with its own article removed "
                        "from the index (the calibration set of the answer decision)")


def run(args: argparse.Namespace) -> int:
    report = evaluate(args.data, args.mode, args.out, limit=args.limit, top_k=args.top_k,
                      reader=args.reader, threshold=args.threshold, index_dir=args.index_dir,
                      removed=args.removed, reader_backend=args.reader_backend,
                      embedder_backend=args.embedder_backend, reader_device=args.reader_device)
    a = report["answers"]
    removed = (f"; article removed: \"not found\" {100 * report['removed']['abstention']:.1f}%"
               if "removed" in report else "")
    print(f"{a['questions']} questions: EM {100 * a['exact_match']:.1f}  F1 {100 * a['f1']:.1f}"
          f"  answered {a['answered']}{removed}  → {args.out / 'report.md'}")
    return 0
