r"""Build the BBC news dev set (issue 22) from ``benchmarks/bbc_questions.jsonl``.

The 150 questions were written by reading BBC articles (2004-05); 100 have a gold span, 50 have
no answer in the indexed articles. The repository stores only article ids and character offsets:
the texts stay in ../shared (their licence forbids copying them here), so this script joins the
two at run time and writes, under runs/ (git-ignored):

* ``--out`` (runs/bbc_dev.jsonl): one SQuAD-style line per question, the article as its context;
* ``--articles-out`` (runs/bbc_articles.jsonl): the 400 indexed articles, for an e2e index in
  which the articles nobody asks about are distractors (``newsqa eval`` alone would index only
  the 113 articles that have questions).

Indexed set: the first 80 articles of each category in corpus file order (bbc-<category>-001
to -080). Every question's article is in it; an unanswerable one names the article a reader
might expect to answer it, and no indexed article states its answer (checked by searching the
indexed texts for the answer and its variants; ``from_article`` names the non-indexed article
it came from, where it came from one).

    .venv/bin/python benchmarks/bbc_dev.py
    .venv/bin/newsqa eval runs/bbc_dev.jsonl --mode reader --out runs/bbc-reader
    .venv/bin/newsqa index runs/bbc_articles.jsonl --index runs/bbc-index
    .venv/bin/newsqa eval runs/bbc_dev.jsonl --mode e2e --index-dir runs/bbc-index \
        --out runs/bbc-e2e
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared/data/corpora/bbc_news_2225.jsonl.gz"
QUESTIONS = Path(__file__).with_name("bbc_questions.jsonl")
CATEGORIES = ("business", "entertainment", "politics", "sport", "tech")
PER_CATEGORY = 80  # indexed: the first 80 of each category in file order


def load_corpus(path: Path) -> list[dict]:
    """All BBC records in file order; the indexed set is defined by that order."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def indexed_set(records: list[dict]) -> dict[str, dict]:
    """The first ``PER_CATEGORY`` records of each category, by id, in file order."""
    chosen: dict[str, dict] = {}
    seen = dict.fromkeys(CATEGORIES, 0)
    for r in records:
        if seen.get(r["category"], PER_CATEGORY) < PER_CATEGORY:
            seen[r["category"]] += 1
            chosen[r["id"]] = r
    return chosen


def check(q: dict, indexed: dict[str, dict], all_ids: set[str]) -> list[str]:
    """What is wrong with one question (empty when nothing), so a bad offset fails loudly."""
    errors = []
    article = indexed.get(q.get("article"))
    if article is None:
        return [f"article {q.get('article')!r} is not in the indexed set"]
    if q.get("category") != article["category"]:
        errors.append(f"category {q.get('category')!r} is not the article's")
    if not str(q.get("question", "")).strip():
        errors.append("empty question")
    text, answers = article["text"], q.get("answers")
    if q.get("is_impossible") is True:
        if answers:
            errors.append("an unanswerable question has answers")
        source = q.get("from_article")
        if source is not None and (source not in all_ids or source in indexed):
            errors.append(f"from_article {source!r} must be a non-indexed corpus article")
    elif q.get("is_impossible") is False and answers:
        for a in answers:
            start, length = a.get("answer_start"), a.get("length")
            if not (isinstance(start, int) and isinstance(length, int) and length > 0
                    and 0 <= start and start + length <= len(text)):
                errors.append(f"span {a} is not inside the text ({len(text)} chars)")
            elif text[start:start + length] != text[start:start + length].strip():
                errors.append(f"span {a} starts or ends with whitespace")
    else:
        errors.append("needs is_impossible false with answers, or true with none")
    return errors


def squad_line(q: dict, article: dict) -> dict:
    """The ``newsqa eval`` line: the article text as context, spans resolved to text."""
    text = article["text"]
    answers = [{"text": text[a["answer_start"]:a["answer_start"] + a["length"]],
                "answer_start": a["answer_start"]} for a in q["answers"]]
    return {"id": q["id"], "title": article["title"], "context": text,
            "question": q["question"], "answers": answers, "is_impossible": q["is_impossible"]}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=CORPUS, help="bbc_news_2225.jsonl.gz")
    p.add_argument("--questions", type=Path, default=QUESTIONS)
    p.add_argument("--out", type=Path, default=ROOT / "runs/bbc_dev.jsonl")
    p.add_argument("--articles-out", type=Path, default=ROOT / "runs/bbc_articles.jsonl")
    args = p.parse_args(argv)
    if not args.corpus.is_file():
        print(f"BBC corpus not found at {args.corpus} (../shared is absent): nothing built.")
        return 2
    records = load_corpus(args.corpus)
    indexed = indexed_set(records)
    questions = [json.loads(line) for line in args.questions.open(encoding="utf-8")
                 if line.strip()]
    errors = [f"{q.get('id')}: {e}" for q in questions
              for e in check(q, indexed, {r["id"] for r in records})]
    ids = [q.get("id") for q in questions]
    errors += [f"{i}: duplicate id" for i in sorted({i for i in ids if ids.count(i) > 1})]
    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"{len(errors)} problem(s) in {args.questions}; nothing written.", file=sys.stderr)
        return 1
    write_jsonl(args.out, [squad_line(q, indexed[q["article"]]) for q in questions])
    write_jsonl(args.articles_out, [{"id": r["id"], "title": r["title"], "text": r["text"],
                                     "source": "BBC", "category": r["category"]}
                                    for r in indexed.values()])
    answerable = sum(not q["is_impossible"] for q in questions)
    print(f"{len(questions)} questions ({answerable} answerable, "
          f"{len(questions) - answerable} unanswerable) -> {args.out}; "
          f"{len(indexed)} indexed articles -> {args.articles_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
