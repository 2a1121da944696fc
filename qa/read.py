"""Extractive reader: find answer spans in retrieved chunks, located by document offsets.

Transformers 5 has no question-answering pipeline, so windowing is done here with the fast
tokenizer (overflowing windows + offset mapping), and span decoding reuses the library's
``select_starts_ends`` (softmax over context tokens + CLS, top-k spans up to a maximum length).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer
from transformers.pipelines.document_question_answering import select_starts_ends

from qa.errors import NewsQAError, QuestionError
from qa.types import Chunk, Span

DEFAULT_READER = Path(__file__).resolve().parents[1] / "models" / "reader"
CALIBRATION_FILE = "newsqa_reader.json"

# Candidates decoded per window for each span asked for: most of a window's best candidates are
# variants of one span ("640", "640 POWs", "the 640 POWs") that collapse into one, so ask for more.
CANDIDATES_PER_SPAN = 4
# Two spans of one document are the same answer when their overlap covers at least this share of
# the shorter one (containment or near-containment, e.g. "Obama" and "Barack Obama").
OVERLAP_SAME_ANSWER = 0.5

_EDGE_PUNCTUATION = ",;:!?\"'“”‘’«»"
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {c: o for o, c in _OPENERS.items()}


class Reader:
    """A QA model (start/end span head) applied to chunks in overlapping token windows."""

    def __init__(self, model: str | Path | None = None, *, max_length: int = 256,
                 stride: int = 96, batch_size: int = 16, max_answer_tokens: int = 30,
                 threshold: float | None = None, device: str = "cpu",
                 quantize: bool | None = None) -> None:
        if not 0 < stride < max_length:
            raise NewsQAError(f"The reader stride must be between 1 and max_length - 1 "
                              f"({max_length - 1}), got {stride}.")
        if batch_size < 1 or max_answer_tokens < 1:
            raise NewsQAError("The reader batch_size and max_answer_tokens must be at least 1.")
        self.model = model if model is not None else DEFAULT_READER
        self.max_length = max_length
        self.stride = stride
        self.batch_size = batch_size
        self.max_answer_tokens = max_answer_tokens
        try:
            on_cpu = torch.device(device).type == "cpu"
        except RuntimeError as exc:
            raise NewsQAError(f"The reader device {device!r} is not a torch device.") from exc
        if quantize and not on_cpu:
            raise NewsQAError(f"int8 quantisation runs on the CPU only; got device {device!r}.")
        self.device = device
        self.quantize = on_cpu if quantize is None else quantize
        self._threshold = threshold
        self._tokenizer = None
        self._model = None

    @property
    def threshold(self) -> float:
        """The score below which an answer counts as "not found".

        Scores of a given set of weights are calibrated on dev data when they are trained, so the
        threshold travels with them in ``newsqa_reader.json``; an explicit value overrides it. A
        model without calibration gets 0.0 (always answer): any other cutoff would be a guess that
        silently hides answers.
        """
        if self._threshold is None:
            self._threshold = self._calibrated_threshold()
        return self._threshold

    def _calibrated_threshold(self) -> float:
        path = Path(self.model) / CALIBRATION_FILE
        if not path.is_file():
            return 0.0
        try:
            return float(json.loads(path.read_text(encoding="utf-8"))["threshold"])
        except (ValueError, KeyError, TypeError) as exc:
            raise NewsQAError(f"The reader calibration {path} has no valid numeric "
                              f"'threshold': {exc}") from exc

    def warm_up(self) -> None:
        """Load tokenizer and model once, in fp32 (shipped weights are fp16; CPU needs fp32).

        On the CPU the Linear layers are then quantised to int8 (dynamic, per output channel):
        reading is about 1.3x faster for 0.2 F1 on SQuAD v1.1 dev (model card). Activation scales
        are set per model batch, so a window's scores shift slightly with the windows batched
        beside it; ``quantize=False`` keeps fp32, where they do not.
        """
        if self._model is not None:
            return
        if isinstance(self.model, Path) and not self.model.exists():
            raise NewsQAError(self._cannot_load("it does not exist"))
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.model))
            model = AutoModelForQuestionAnswering.from_pretrained(str(self.model),
                                                                  dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise NewsQAError(self._cannot_load(str(exc).rstrip("."))) from exc
        if not tokenizer.is_fast:
            raise NewsQAError(f"The reader model {self.model} has no fast tokenizer, which "
                              "character offsets need.")
        if self.max_length > tokenizer.model_max_length:
            raise NewsQAError(f"The reader max_length {self.max_length} exceeds the model's "
                              f"limit of {tokenizer.model_max_length} tokens.")
        model = model.to(self.device).eval()
        if self.quantize:
            model = quantize_linear_layers(model)
        self._tokenizer = tokenizer
        self._model = model

    def _cannot_load(self, reason: str) -> str:
        hint = " Train it with `newsqa train-reader`." if Path(self.model) == DEFAULT_READER else ""
        return f"Cannot load the reader model {self.model}: {reason}.{hint}"

    def read(self, question: str, chunks: Sequence[Chunk], top_n: int = 5) -> list[Span]:
        """The ``top_n`` best answer spans for ``question`` in ``chunks``, best first."""
        return self.read_batch([question], [chunks], top_n)[0]

    def read_batch(self, questions: Sequence[str], chunk_lists: Sequence[Sequence[Chunk]],
                   top_n: int = 5) -> list[list[Span]]:
        """``read`` for many questions, each with its own chunks, sharing model batches."""
        if len(questions) != len(chunk_lists):
            raise NewsQAError(f"Got {len(questions)} questions but {len(chunk_lists)} chunk "
                              "lists.")
        if top_n < 1:
            raise NewsQAError(f"The number of spans (top_n) must be at least 1, got {top_n}.")
        self.warm_up()
        self._check_questions(questions)
        pairs = [(q, chunk) for q, chunks in enumerate(chunk_lists) for chunk in chunks]
        found: list[list[Span]] = [[] for _ in questions]
        for g in range(0, len(pairs), self.batch_size):
            group = pairs[g:g + self.batch_size]
            for pair, span in self._read_pairs(
                    [questions[q] for q, _ in group], [c for _, c in group], top_n):
                found[group[pair][0]].append(span)
        return [best_spans(spans, top_n) for spans in found]

    def _check_questions(self, questions: Sequence[str]) -> None:
        """Reject questions that are empty or leave no room for context in a window."""
        room = (self.max_length - self.stride - 1
                - self._tokenizer.num_special_tokens_to_add(pair=True))
        for question in questions:
            if not question.strip():
                raise QuestionError("The question is empty.")
            length = len(self._tokenizer(question, add_special_tokens=False)["input_ids"])
            if length > room:
                raise QuestionError(f"The question is too long for the reader ({length} "
                                    f"tokens; at most {room}).")

    def _read_pairs(self, questions: list[str], chunks: list[Chunk],
                    top_n: int) -> list[tuple[int, Span]]:
        """Spans from every window of each (question, chunk) pair, tagged with the pair index."""
        enc = self._tokenizer(
            questions, [c.text for c in chunks], truncation="only_second",
            max_length=self.max_length, stride=self.stride, return_overflowing_tokens=True,
            return_offsets_mapping=True, padding=True, return_tensors="pt")
        inputs = {k: enc[k] for k in self._tokenizer.model_input_names if k in enc}
        starts, ends = [], []
        with torch.inference_mode():
            for b in range(0, len(enc["input_ids"]), self.batch_size):
                out = self._model(**{k: v[b:b + self.batch_size].to(self.device)
                                     for k, v in inputs.items()})
                starts.append(out.start_logits.cpu())
                ends.append(out.end_logits.cpu())
        start_logits, end_logits = torch.cat(starts).numpy(), torch.cat(ends).numpy()
        found = []
        for w, pair in enumerate(enc["overflow_to_sample_mapping"].tolist()):
            chunk = chunks[pair]
            for local_start, local_end, score in self._decode_window(
                    start_logits[w], end_logits[w], enc.sequence_ids(w),
                    enc["attention_mask"][w].numpy(), enc["offset_mapping"][w].tolist(),
                    chunk.text, top_n * CANDIDATES_PER_SPAN):
                found.append((pair, Span(chunk.doc_id, chunk.start + local_start,
                                         chunk.start + local_end,
                                         chunk.text[local_start:local_end], score)))
        return found

    def _decode_window(self, start_logits: np.ndarray, end_logits: np.ndarray,
                       sequence_ids: list[int | None], attention_mask: np.ndarray,
                       offsets: list[list[int]], text: str,
                       top_k: int) -> list[tuple[int, int, float]]:
        """Best ``top_k`` spans of one window as (start, end, probability) offsets in ``text``.

        CLS (position 0, where ``select_starts_ends`` keeps the null answer) stays in the softmax,
        so a window that holds no answer gives its spans low probabilities.
        """
        context = np.array([s == 1 for s in sequence_ids])
        p_mask = (~context).astype(np.int64)
        p_mask[0] = 0
        tok_starts, tok_ends, scores, _ = select_starts_ends(
            start_logits[None], end_logits[None], p_mask[None],
            attention_mask[None].astype(np.int64), top_k=top_k,
            max_answer_len=self.max_answer_tokens)
        spans = []
        for s, e, score in zip(tok_starts, tok_ends, scores):
            if score <= 0 or not (context[s] and context[e]):
                continue  # CLS (probability 0) or a non-context token
            start, end = trim(text, offsets[s][0], offsets[e][1])
            if start < end:
                spans.append((start, end, float(score)))
        return spans


def quantize_linear_layers(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with int8 weights in its Linear layers (activations quantised on the fly).

    Per-channel scales keep the span logits close to fp32. torch marks this eager-mode API as
    deprecated in favour of torchao; it works in the torch the project pins (2.13), so its
    deprecation warnings are silenced for this one call.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated")
        return torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
            dtype=torch.qint8)


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Move ``start``/``end`` inwards past edge whitespace and punctuation that is no part of the
    answer, so the span stays a slice of ``text`` (never re-found by searching strings)."""
    while start < end and _strip_first(text[start:end]):
        start += 1
    while start < end and _strip_last(text[start:end]):
        end -= 1
    return start, end


def _strip_first(span: str) -> bool:
    """Whether the first character is not part of the answer; "(AP)" keeps its bracket."""
    ch = span[0]
    if ch in _OPENERS:
        return _OPENERS[ch] not in span
    return ch.isspace() or ch in _EDGE_PUNCTUATION or ch == "." or ch in _CLOSERS


def _strip_last(span: str) -> bool:
    """Whether the last character is not part of the answer; "U.S." keeps its final period."""
    ch = span[-1]
    if ch in _CLOSERS:
        return _CLOSERS[ch] not in span
    if ch == ".":
        return "." not in span[:-1]
    return ch.isspace() or ch in _EDGE_PUNCTUATION or ch in _OPENERS


def best_spans(spans: Sequence[Span], top_n: int) -> list[Span]:
    """The ``top_n`` best distinct spans: one per location, and one per heavily overlapping group.

    The same span read in two overlapping chunks or windows keeps its best score.
    """
    by_location: dict[tuple[str, int, int], Span] = {}
    for span in spans:
        key = (span.doc_id, span.start, span.end)
        if key not in by_location or span.score > by_location[key].score:
            by_location[key] = span
    kept: list[Span] = []
    for span in sorted(by_location.values(), key=lambda s: -s.score):
        if not any(k.doc_id == span.doc_id and _overlap(k, span) >= OVERLAP_SAME_ANSWER
                   for k in kept):
            kept.append(span)
            if len(kept) == top_n:
                break
    return kept


def _overlap(a: Span, b: Span) -> float:
    """Shared characters as a share of the shorter span."""
    shared = min(a.end, b.end) - max(a.start, b.start)
    return max(shared, 0) / min(a.end - a.start, b.end - b.start)
