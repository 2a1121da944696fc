"""Training data: questions sampled from SQuAD-style files by a mix, "no answer" pairs built
from other paragraphs (of the same article, or, hard negatives, of others that match by BM25),
and the token windows a model trains on."""
from __future__ import annotations

import gzip
import json
import logging
import random
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from qa.errors import NewsQAError
from qa.store.local import keywords

log = logging.getLogger(__name__)

# Share of the sampled examples drawn from each training file (by file stem). SQuAD is the core;
# the others add news (QAMR Wikinews), other Wikipedia styles and out-of-domain text.
DEFAULT_MIX: dict[str, float] = {
    "squad_v1.1_train": 0.70,
    "qamr_wikinews": 0.07,
    "squadshifts_new_wiki": 0.07,
    "qed_nq": 0.04,
    "tydiqa_goldp_en": 0.04,
    "squadshifts_amazon": 0.02,
    "squadshifts_reddit": 0.02,
    "policyqa": 0.015,
    "covidqa": 0.015,
    "friendsqa": 0.01,
}
# Keyword matches searched, best first, for a hard negative (one without the question's answer).
HARD_NEGATIVE_CANDIDATES = 20


@dataclass(frozen=True)
class Example:
    """One training question: ``answer_start < 0`` marks a built "no answer" pair."""

    question: str
    context: str
    answer_start: int
    answer_text: str


def read_jsonl(path: Path) -> Iterator[dict]:
    """Yield records from plain or gzip-compressed JSON Lines."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


class HardNegatives:
    """Paragraphs of *other* articles that match a question best by BM25 and hold none of its
    answers: what the product's retrieval hands the reader when the article that answers is not
    in the index, where the reader must say "not found" (issue 10). Searched with the product's
    own keyword index (``qa.store.local.keywords``, SQLite FTS5) in memory, titles included as in an
    index.
    """

    def __init__(self, paragraphs: Iterable[tuple[str, str]]) -> None:
        self._paragraphs = list(dict.fromkeys(paragraphs))  # (title, context), first seen first
        self._db = sqlite3.connect(":memory:")
        self._db.execute(keywords.SCHEMA)
        self._db.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY)")  # what search checks
        for row, (title, context) in enumerate(self._paragraphs, 1):
            self._db.execute("INSERT INTO chunks (id) VALUES (?)", (row,))
            keywords.add(self._db, title, [(row, context)])

    def find(self, question: str, title: str, answers: Sequence[str]) -> str | None:
        """The best-matching paragraph under another title without any of ``answers``
        (lower-cased), among the first ``HARD_NEGATIVE_CANDIDATES`` matches; None if none."""
        for row, _ in keywords.search(self._db, question, HARD_NEGATIVE_CANDIDATES):
            other_title, context = self._paragraphs[row - 1]
            if other_title != title and not any(a in context.lower() for a in answers):
                return context
        return None


def sample_examples(
    data_dir: Path, n_examples: int, negative_rate: float, rng: random.Random,
    mix: dict[str, float] = DEFAULT_MIX, hard_negative_rate: float = 0.0,
) -> list[Example]:
    """Draw ``n_examples`` answerable questions by ``mix`` and add built negatives.

    A negative pairs a question with another paragraph of the same title that does not contain
    any of its answers, so the reader learns to abstain on on-topic but answer-less text. A hard
    negative (``hard_negative_rate``) pairs it with the paragraph of another article that shares
    its words most (``HardNegatives``). Both are drawn for each question independently; with
    ``hard_negative_rate`` 0 the sample is what it was before hard negatives existed.
    """
    examples: list[Example] = []
    asked: list[tuple[str, str, list[str]]] = []  # (question, title, answers) of those drawn
    paragraphs: list[tuple[str, str]] = []
    for stem, share in mix.items():
        path = data_dir / f"{stem}.jsonl.gz"
        if not path.exists():
            raise NewsQAError(f"The training file {path} is missing.")
        records = [r for r in read_jsonl(path) if r["answers"] and not r.get("is_impossible")]
        by_title: dict[str, list[str]] = defaultdict(list)
        for r in records:
            if r["context"] not in by_title[r["title"]][-1:]:
                by_title[r["title"]].append(r["context"])
        paragraphs += ((title, c) for title, contexts in by_title.items() for c in contexts)
        take = rng.sample(records, min(len(records), round(n_examples * share)))
        for r in take:
            a = r["answers"][0]
            examples.append(Example(r["question"], r["context"], a["answer_start"], a["text"]))
            answers = [x["text"].lower() for x in r["answers"]]
            asked.append((r["question"], r["title"], answers))
            if rng.random() < negative_rate:
                others = [c for c in by_title[r["title"]]
                          if c != r["context"] and not any(t in c.lower() for t in answers)]
                if others:
                    examples.append(Example(r["question"], rng.choice(others), -1, ""))
        log.info("%s: %d of %d questions", stem, len(take), len(records))
    if hard_negative_rate > 0:
        finder = HardNegatives(paragraphs)
        chosen = [q for q in asked if rng.random() < hard_negative_rate]
        found = [Example(question, context, -1, "") for question, title, answers in chosen
                 if (context := finder.find(question, title, answers)) is not None]
        examples += found
        log.info("hard negatives: %d for %d questions drawn", len(found), len(chosen))
    rng.shuffle(examples)
    return examples


def featurize(examples: Sequence[Example], tokenizer, max_length: int, stride: int,
              rng: random.Random, *, spans: bool = False) -> list[dict]:
    """Tokenise into one window per example, labelled with token start/end (0/0 = no answer).

    Long contexts are split into overlapping windows; an answerable example keeps one window that
    holds its whole answer, a negative keeps a random window. ``spans`` keeps each window's
    example and its tokens' character spans (``context_spans``), which only a teacher needs.
    """
    enc = tokenizer(
        [e.question for e in examples], [e.context for e in examples],
        truncation="only_second", max_length=max_length, stride=stride,
        return_overflowing_tokens=True, return_offsets_mapping=True,
    )
    types = enc.get("token_type_ids")  # None for models without segment ids (MPNet, RoBERTa)
    windows: dict[int, list[dict]] = defaultdict(list)
    for i, ex_idx in enumerate(enc["overflow_to_sample_mapping"]):
        ex = examples[ex_idx]
        seq_ids = enc.sequence_ids(i)
        offsets = enc["offset_mapping"][i]
        start_tok = end_tok = 0
        if ex.answer_start >= 0:
            a0, a1 = ex.answer_start, ex.answer_start + len(ex.answer_text)
            ctx = [t for t, s in enumerate(seq_ids) if s == 1]
            if not ctx or offsets[ctx[0]][0] > a0 or offsets[ctx[-1]][1] < a1:
                continue  # answer not wholly inside this window
            start_tok = next(t for t in ctx if offsets[t][1] > a0)
            end_tok = next(t for t in reversed(ctx) if offsets[t][0] < a1)
        window = {"input_ids": enc["input_ids"][i], "start_positions": start_tok,
                  "end_positions": end_tok}
        if spans:
            window["example"], window["context"] = ex_idx, context_spans(offsets, seq_ids)
        if types is not None:
            window["token_type_ids"] = types[i]
        windows[ex_idx].append(window)
    return [rng.choice(w) for _, w in sorted(windows.items())]


def context_spans(offsets: Sequence[tuple[int, int]], seq_ids: Sequence[int | None]) -> np.ndarray:
    """Each token's character span in the context, (-1, -1) for the question and special
    tokens: what carries a teacher's distribution across tokenisers (``project``)."""
    spans = np.asarray(offsets, dtype=np.int32).reshape(-1, 2)
    spans[np.array([seq != 1 for seq in seq_ids], dtype=bool)] = -1
    return spans
