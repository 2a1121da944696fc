"""The answer decision: each candidate's confidence, and whether the answer is shown.

In the product, "not found" mostly means that the index does not hold the answer, so the decision
weighs more than the reader's span score: how close the retrieved chunks are to the question, how
much of the question the answer's article covers, and whether other chunks agree. A small
logistic model over these features (``LogisticDecision``) is fitted on public dev questions asked
end to end, each once with its article indexed and once with it removed (``newsqa eval
--removed``; fitted with ``newsqa calibrate``). Its output is the probability that the answer
is right (token F1 >= 0.5 against the gold answer, ``qa.evaluation.metrics.right``: most of the
gold's words and little else), and that probability is the confidence shown, for the answer and
for every other candidate alike (``qa.answer.compose_answer``).

Fitted weights belong to one set of reader weights run by one backend at one precision, so
``newsqa_reader.json`` keys them by all three (``Reader.calibration_key``). A reader without
fitted weights falls back to its span score and its threshold (``ReaderScore``): 0.0, always
answer, for a reader without any calibration.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from qa.answer_type import fits
from qa.errors import NewsQAError
from qa.reader.model import CALIBRATION_FILE, Reader
from qa.text import tokenize
from qa.types import Answer, Document, Hit


# ---- features --------------------------------------------------------------------------------
def evidence(question: str, candidates: Sequence[Answer], hits: Sequence[Hit],
             documents: Mapping[str, Document], index: int = 0) -> dict[str, float]:
    """What the decision weighs about ``candidates[index]`` (``candidates`` best first by reader
    score; the weights were fitted on the first, so each feature means for any candidate what
    it means for the first).

    Reader: ``reader`` (its span score), ``margin`` (to the best other candidate: negative below
    the best), ``support`` (places in the retrieved chunks that give the same answer),
    ``answer_words``, ``answer_type`` (whether it is the kind of answer the question asks for,
    ``qa.answer_type.fits``), ``echo`` (share of its words that the question has: an answer
    rarely repeats the question). Retrieval (only when ``hits`` carry scores, as
    ``Retriever.retrieve`` gives them): ``dense_top`` and ``dense_answer`` (cosine similarity of
    the best chunk and of the chunk the answer is quoted from), ``answer_rank`` (1 / its rank),
    ``doc_share`` (share of the retrieved chunks from the answer's article), ``coverage_doc`` and
    ``coverage_chunk`` (share of the question's words in the answer's article and chunk),
    ``other_doc`` (best span score in any other article).
    """
    if not candidates:
        return {}
    own = candidates[index]
    others = [c for i, c in enumerate(candidates) if i != index]
    cited = own.citations[0]
    terms = set(tokenize(question))
    words = tokenize(own.text)
    features = {"reader": own.score,
                "margin": own.score - max((c.score for c in others), default=0.0),
                "support": float(len(own.citations)),
                "answer_words": float(len(own.text.split())),
                "answer_type": fits(question, own.text),
                "echo": sum(w in terms for w in words) / len(words) if words else 0.0}
    if any(h.dense is None or h.bm25 is None for h in hits):
        return features
    rank, hit = next((r, h) for r, h in enumerate(hits, 1)
                     if h.chunk.doc_id == cited.doc_id and h.chunk.start == cited.passage_start)
    features.update({
        "dense_top": max(h.dense for h in hits),
        "dense_answer": hit.dense,
        "answer_rank": 1.0 / rank,
        "doc_share": sum(h.chunk.doc_id == cited.doc_id for h in hits) / len(hits),
        "coverage_doc": _coverage(terms, documents[cited.doc_id].text),
        "coverage_chunk": _coverage(terms, hit.chunk.text),
        "other_doc": max((c.score for c in others
                          if all(x.doc_id != cited.doc_id for x in c.citations)), default=0.0),
    })
    return features


def _coverage(terms: set[str], text: str) -> float:
    """Share of the question's words (BM25 vocabulary) that occur in ``text``; 0 for none."""
    return len(terms & set(tokenize(text))) / len(terms) if terms else 0.0


# ---- decisions -------------------------------------------------------------------------------
class Decision(Protocol):
    """Turns evidence into a confidence; the answer is shown when it reaches ``threshold``."""

    threshold: float

    def confidence(self, evidence: Mapping[str, float]) -> float: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class ReaderScore:
    """The reader's best span score is the confidence (a reader without fitted weights)."""

    threshold: float

    def confidence(self, evidence: Mapping[str, float]) -> float:
        return evidence.get("reader", 0.0)

    def describe(self) -> str:
        return f"reader span score >= {self.threshold:.3f}"


@dataclass(frozen=True)
class LogisticDecision:
    """P(answer right) = sigmoid(bias + sum of weight * feature), fitted on dev data."""

    weights: Mapping[str, float]
    bias: float
    threshold: float
    key: str

    def confidence(self, evidence: Mapping[str, float]) -> float:
        if not evidence:
            return 0.0  # no candidate at all
        missing = sorted(set(self.weights) - set(evidence))
        if missing:
            raise NewsQAError(f"The answer decision {self.key} needs the features {missing}, "
                              "which only retrieval provides.")
        z = self.bias + sum(w * evidence[name] for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-z))

    def describe(self) -> str:
        return f"logistic {self.key} >= {self.threshold:.3f}"


def load_decision(reader: Reader) -> Decision:
    """The fitted decision stored for this reader's calibration key, else its span score and
    threshold (``Reader.threshold``)."""
    path = Path(reader.model) / CALIBRATION_FILE
    stored = (json.loads(path.read_text(encoding="utf-8")).get("decisions", {})
              if path.is_file() else {})
    key = reader.calibration_key if stored else None
    if key not in stored:
        return ReaderScore(reader.threshold)
    entry = stored[key]
    try:
        return LogisticDecision({k: float(v) for k, v in entry["weights"].items()},
                                float(entry["bias"]), float(entry["threshold"]), key)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise NewsQAError(f"The answer decision {key} in {path} is malformed: {exc!r}") from exc
