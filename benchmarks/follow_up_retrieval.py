"""Follow-up questions: does carrying the previous turn into retrieval find the right article?

    python benchmarks/follow_up_retrieval.py [--corpus PATH] [--conversations PATH] [--top-k K]

Indexes the BBC corpus and ``seeds/`` into a temporary index, then, for each two-turn conversation
in ``benchmarks/follow_ups.jsonl``, asks the follow-up question (e.g. "Where were those talks
held?") three ways:

* ``none``   - on its own, as if there were no conversation;
* ``gold``   - with ``history=[(first, first_answer)]``, the gold answer as the previous answer;
* ``system`` - with ``history=[(first, qa.ask(first).text)]``, what the app would really pass.

For each it reports recall@1 and recall@k (is the gold article, found by title, the first chunk's
document / among the top-k chunks' documents) and answer accuracy (``qa.ask`` with that history
scores F1 >= 0.5 against the gold follow-up answer), twice: as shown, with the reader's calibrated
"not found" threshold, and "always answer", taking the best candidate even below the threshold
(``Answer.best_text``), which isolates the retrieval effect
from abstention. Only the ``NewsQA`` facade and ``qa.evaluation.metrics`` are used. Indexing
2,225 articles takes several minutes on a CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qa.evaluation.metrics import f1, recall_at_k
from qa.pipeline import NewsQA
from qa.types import AddReport

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT / ".." / "shared" / "data" / "corpora" / "bbc_news_2225.jsonl.gz"
DEFAULT_CONVERSATIONS = ROOT / "benchmarks" / "follow_ups.jsonl"
SEEDS = ROOT / "seeds"
CONDITIONS = ("none", "gold", "system")
CORRECT_F1 = 0.5  # an answer counts as correct at this token F1 against the gold answer

History = list[tuple[str, str]]


@dataclass(frozen=True)
class Conversation:
    id: str
    doc_title: str
    first: str
    first_answer: str
    follow_up: str
    follow_up_answer: str


@dataclass
class Outcome:
    """One condition of one conversation."""

    rank: int | None  # 1-based rank of the first chunk from the gold article, None if not retrieved
    hit_at_1: float
    hit_at_k: float
    answer: str  # as shown: "" when below the threshold
    best: str  # the best candidate, shown or not
    correct: bool
    best_correct: bool


@dataclass
class Result:
    conversation: Conversation
    system_first_answer: str  # as the app shows it ("" when not found)
    system_first_best: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)


def load_conversations(path: Path) -> list[Conversation]:
    """The conversations in a JSON-lines file, one object per line."""
    with path.open(encoding="utf-8") as f:
        return [Conversation(**json.loads(line)) for line in f if line.strip()]


def gold_ids_by_title(qa: NewsQA, report: AddReport,
                      conversations: Sequence[Conversation]) -> dict[str, set[str]]:
    """Indexed document ids for each conversation's gold title; exits if a title is not indexed.

    The corpus repeats some articles under another headline; a copy skipped as a near-duplicate
    is found through the copy that was kept.
    """
    ids: dict[str, set[str]] = {}
    for doc in qa.documents():
        ids.setdefault(doc.title, set()).add(doc.id)
    for title, kept_id in report.near_duplicates:
        ids.setdefault(title, set()).add(kept_id)
    missing = sorted({c.doc_title for c in conversations if c.doc_title not in ids})
    if missing:
        sys.exit("These gold titles are not in the index: " + "; ".join(missing))
    return {c.doc_title: ids[c.doc_title] for c in conversations}


def gold_rank(doc_ids: Sequence[str], gold: set[str]) -> int | None:
    return next((rank for rank, doc_id in enumerate(doc_ids, start=1) if doc_id in gold), None)


def hit(doc_ids: Sequence[str], gold: set[str], k: int) -> float:
    """recall@k for a gold article that may have more than one indexed id."""
    return max(recall_at_k(doc_ids, g, k) for g in gold)


def is_correct(prediction: str, gold_answer: str) -> bool:
    return f1(prediction, [gold_answer]) >= CORRECT_F1


def evaluate(qa: NewsQA, conv: Conversation, gold: set[str], history: History,
             top_k: int) -> Outcome:
    """Retrieval and answer for the follow-up question with the given history."""
    answer = qa.ask(conv.follow_up, top_k, history=history)
    doc_ids = [chunk.doc_id for chunk in answer.retrieved]
    best = answer.best_text
    return Outcome(rank=gold_rank(doc_ids, gold), hit_at_1=hit(doc_ids, gold, 1),
                   hit_at_k=hit(doc_ids, gold, top_k), answer=answer.text, best=best,
                   correct=is_correct(answer.text, conv.follow_up_answer),
                   best_correct=is_correct(best, conv.follow_up_answer))


def run_conversation(qa: NewsQA, conv: Conversation, gold: set[str], top_k: int) -> Result:
    first = qa.ask(conv.first, top_k)
    system_first = first.text
    histories: dict[str, History] = {
        "none": [],
        "gold": [(conv.first, conv.first_answer)],
        "system": [(conv.first, system_first)],
    }
    result = Result(conv, system_first, first.best_text)
    for name, history in histories.items():
        result.outcomes[name] = evaluate(qa, conv, gold, history, top_k)
    return result


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def print_table(results: Sequence[Result], top_k: int) -> None:
    print(f"| history | recall@1 | recall@{top_k} | answer acc, as shown | "
          f"answer acc, always answer | not found | n |")
    print("|---|---|---|---|---|---|---|")
    for name in CONDITIONS:
        outs = [r.outcomes[name] for r in results]
        print(f"| {name} | {mean([o.hit_at_1 for o in outs]):.3f} "
              f"| {mean([o.hit_at_k for o in outs]):.3f} "
              f"| {mean([float(o.correct) for o in outs]):.3f} "
              f"| {mean([float(o.best_correct) for o in outs]):.3f} "
              f"| {sum(not o.answer for o in outs)} | {len(outs)} |")
    first_ok = mean([float(is_correct(r.system_first_answer, r.conversation.first_answer))
                     for r in results])
    first_best = mean([float(is_correct(r.system_first_best, r.conversation.first_answer))
                       for r in results])
    print(f"\nAnswers count as correct at F1 >= {CORRECT_F1}. First-turn answer accuracy: "
          f"{first_ok:.3f} as shown (the 'system' history's answer), {first_best:.3f} always "
          f"answering; {sum(not r.system_first_answer for r in results)} first turns not found.")


def describe(outcome: Outcome) -> str:
    rank = f"rank {outcome.rank}" if outcome.rank else "not retrieved"
    verdict = "ok" if outcome.correct else "wrong"
    best = "ok" if outcome.best_correct else "wrong"
    return f"{rank}, shown {outcome.answer!r} ({verdict}), best {outcome.best!r} ({best})"


def print_failures(results: Sequence[Result]) -> None:
    """Conversations where some condition missed the gold article at rank 1 or the best
    candidate was wrong (abstentions alone are not listed: see the table's "not found")."""
    print("\nPer-conversation failures (gold article not at rank 1, or wrong best candidate, "
          "in any condition):")
    for r in results:
        outs = r.outcomes
        if all(o.hit_at_1 and o.best_correct for o in outs.values()):
            continue
        conv = r.conversation
        print(f"- {conv.id}: {conv.follow_up!r} (gold {conv.follow_up_answer!r}); "
              f"after {conv.first!r}, system answered {r.system_first_answer!r} "
              f"(best {r.system_first_best!r})")
        for name in CONDITIONS:
            print(f"    {name:6}: {describe(outs[name])}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--conversations", type=Path, default=DEFAULT_CONVERSATIONS)
    ap.add_argument("--top-k", type=int, default=5)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if not args.corpus.exists():
        sys.exit(f"Corpus not found: {args.corpus} (pass --corpus PATH).")
    if not args.conversations.exists():
        sys.exit(f"Conversations not found: {args.conversations} (pass --conversations PATH).")
    conversations = load_conversations(args.conversations)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, NewsQA(tmp) as qa:
        report = qa.add_paths([args.corpus, SEEDS], progress=True)
        indexed = time.perf_counter()
        print(f"Indexed {len(report.added)} documents ({report.chunks} chunks) "
              f"in {indexed - started:.0f} s.", file=sys.stderr)
        gold = gold_ids_by_title(qa, report, conversations)
        results = [run_conversation(qa, c, gold[c.doc_title], args.top_k) for c in conversations]
    print_table(results, args.top_k)
    print_failures(results)
    print(f"\nIndexing {indexed - started:.0f} s, questions {time.perf_counter() - indexed:.0f} s.")


if __name__ == "__main__":
    main()
