"""No loss from recency on SQuAD v1.1 dev end to end: the questions it can change, both ways.

    .venv/bin/python benchmarks/recency_squad.py [--predictions RUN/predictions.jsonl]

Recency acts only on questions that ``asks_for_current`` flags: for any other question ``ask``
retrieves without ``_by_recency`` and composes with ``current_as_of=None``, the same calls that
``recency=False`` makes, so those answers are the same with and without it by construction.
This indexes every context of the file through the ``NewsQA`` facade (as ``newsqa eval --mode
e2e`` does; SQuAD contexts are undated) and asks each flagged question twice, as a user does
(recency on) and with ``recency=False``. With ``--predictions`` (an e2e run of the same file,
``newsqa eval``), the flagged answers with recency are compared with that run's (is it the same
pipeline?), and exact match and F1 are computed on the whole file: that run's answers for the
unflagged questions, and each condition's for the flagged ones.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from qa.evaluation.evaluate import load_questions
from qa.evaluation.metrics import exact_match, f1
from qa.ingest.documents import make_document
from qa.pipeline import NewsQA
from qa.recency import asks_for_current

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "qa" / "dev" / "squad_v1.1_dev_public.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--predictions", type=Path,
                        help="predictions.jsonl of a `newsqa eval --mode e2e` run of --data")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()
    questions = load_questions(args.data)
    flagged = [q for q in questions if asks_for_current(q.question)]
    docs = {q.context: make_document(q.context, title=q.title) for q in questions}
    answers: dict[str, dict[str, str]] = {"with": {}, "without": {}}
    with tempfile.TemporaryDirectory() as index, NewsQA(index) as qa:
        qa.add(docs.values())
        for q in flagged:
            answers["with"][q.id] = qa.ask(q.question, args.top_k).text
            answers["without"][q.id] = qa.ask(q.question, args.top_k, recency=False).text
    print(f"{len(questions)} questions, {len(flagged)} flagged by asks_for_current; "
          f"{sum(answers['with'][q.id] != answers['without'][q.id] for q in flagged)} "
          "answers differ with and without recency")
    earlier = {}
    if args.predictions:
        rows = map(json.loads, args.predictions.open(encoding="utf-8"))
        earlier = {r["id"]: r["prediction"] for r in rows if r.get("condition") != "removed"}
        other = [q.id for q in flagged if earlier[q.id] != answers["with"][q.id]]
        print(f"flagged answers with recency equal to {args.predictions}: "
              f"{len(flagged) - len(other)} of {len(flagged)}"
              + (f"; not: {', '.join(other)}" if other else ""))
    print(f"{'':<9}{'flagged EM':>11}{'F1':>7}{'whole file EM':>15}{'F1':>7}")
    for mode, given in answers.items():
        em = [exact_match(given[q.id], q.answers) for q in flagged]
        f = [f1(given[q.id], q.answers) for q in flagged]
        n = max(1, len(flagged))
        line = f"{mode:<9}{100 * sum(em) / n:>11.1f}{100 * sum(f) / n:>7.1f}"
        if earlier:
            texts = [given.get(q.id, earlier[q.id]) for q in questions]
            em_all = sum(exact_match(t, q.answers) for t, q in zip(texts, questions))
            f_all = sum(f1(t, q.answers) for t, q in zip(texts, questions))
            line += f"{100 * em_all / len(questions):>15.1f}{100 * f_all / len(questions):>7.1f}"
        print(line)


if __name__ == "__main__":
    main()
