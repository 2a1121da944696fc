"""Extractive reader: find answer spans in retrieved chunks, located by document offsets.

Three parts, so that what runs the model can change without touching the rest: ``Windower``
(``qa.reader.windows``) cuts (question, chunk) pairs into overlapping token windows with
character offsets (the model's fast tokenizer, through ``tokenizers``); a backend from
``qa.reader.backends`` (torch, or ONNX Runtime) turns windows into start/end logits;
``decode_spans`` (``qa.reader.spans``) turns one window's logits into scored spans, which
``Reader`` locates in the document and merges across windows and chunks.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.errors import NewsQAError, QuestionError
from qa.reader.backends import make_backend
from qa.reader.spans import best_spans, decode_spans, trim
from qa.reader.windows import Windower
from qa.resources import DEFAULT_READER
from qa.runtime import RunsOnBackend
from qa.runtime.weights import weights_digest
from qa.types import Chunk, Span

CALIBRATION_FILE = "newsqa_reader.json"
CALIBRATION_HASH_CHARS = 16
# What a model named by a Hugging Face Hub id needs locally: configs, tokenizer and weights.
HUB_FILES = ["*.json", "*.safetensors", "pytorch_model.bin"]

# Candidates decoded per window for each span asked for: most of a window's best candidates are
# variants of one span ("640", "640 POWs", "the 640 POWs") that collapse into one, so ask for more.
CANDIDATES_PER_SPAN = 4
# Chunks come in rank order, and the answer is most often in the first ones: read the top two
# (one per article), then up to the third, then the rest, and stop once a span scores
# ENOUGH_SCORE (see ``Reader`` and ``reading_rounds``).
STAGES = (2, 3)
ENOUGH_SCORE = 0.25


@dataclass(frozen=True)
class ReadWork:
    """What the reader has run: questions, model windows, tokens read (no padding) and tokens
    computed (a model batch pads its windows to its longest). Counted as the model runs, so
    the cost of reading is measured, not estimated; two counts subtract to the work between."""

    questions: int = 0
    windows: int = 0
    tokens: int = 0
    padded_tokens: int = 0

    def __add__(self, other: ReadWork) -> ReadWork:
        return ReadWork(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: ReadWork) -> ReadWork:
        return ReadWork(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))


class Reader(RunsOnBackend):
    """A QA model (start/end span head) applied to chunks in overlapping token windows.

    ``backend`` picks what runs the model: "torch" (int8 Linear layers on the CPU by default,
    fp32 with ``quantize=False`` or on a GPU) or "onnx" (ONNX Runtime on the CPU, int8 by
    default, exported once into ``cache_dir``; see ``qa.reader.backends``).

    A question's chunks come in rank order and are read in rounds (``stages``, see
    ``reading_rounds``): the best chunk of each article among the top two, then the rest of the
    top three, then the rest, each round only while no span found so far scores
    ``enough_score``. Most answers are in the first chunks, so most questions stop early: the
    reader's work per question is what bounds the app's throughput under load. The first round
    takes one chunk per article so that a rival article's answer is read beside the best one
    ("Sources differ" and the recency rule compare articles).
    """

    def __init__(self, model: str | Path | None = None, *, max_length: int = 256,
                 stride: int = 96, batch_size: int = 16, max_answer_tokens: int = 30,
                 threshold: float | None = None, device: str = "cpu",
                 quantize: bool | None = None, backend: str = "torch",
                 cache_dir: Path | None = None, stages: Sequence[int] | None = STAGES,
                 enough_score: float = ENOUGH_SCORE) -> None:
        """``stages``: the ranks at which a question's chunks are cut into rounds of reading
        (``reading_rounds``); a round is read only when no span found so far scores
        ``enough_score``. None reads every chunk at once, as the reader did before (kept for
        benchmarks that compare both). ``batch_size``: windows a model run takes in fp32; an
        int8 model takes one (``_logits``)."""
        if not 0 < stride < max_length:
            raise NewsQAError(f"The reader stride must be between 1 and max_length - 1 "
                              f"({max_length - 1}), got {stride}.")
        if batch_size < 1 or max_answer_tokens < 1:
            raise NewsQAError("The reader batch_size and max_answer_tokens must be at least 1.")
        stages = tuple(stages or ())
        if any(b <= a for a, b in zip((0, *stages), stages)):
            raise NewsQAError(f"The reader stages must be increasing chunk counts from 1 (or None: "
                              f"every chunk at once), got {stages}.")
        if not 0.0 <= enough_score <= 1.0:
            raise NewsQAError(f"The reader enough_score is a span probability, from 0 to 1; got "
                              f"{enough_score}.")
        self.model = model if model is not None else DEFAULT_READER
        self.max_length = max_length
        self.stride = stride
        self.batch_size = batch_size
        self.max_answer_tokens = max_answer_tokens
        self.stages = stages
        self.enough_score = enough_score
        self.device = device
        self._backend = make_backend(backend, device=device, quantize=quantize,
                                     cache_dir=cache_dir)
        self._threshold = threshold
        self._windower: Windower | None = None
        self._turn = threading.Condition()  # coalesces concurrent ``read`` calls
        self._waiting: list[_Request] = []
        self._busy = False
        self._work = ReadWork()
        self._counting = threading.Lock()

    @property
    def work(self) -> ReadWork:
        """Everything this reader has run so far; subtract an earlier value for one question's."""
        with self._counting:
            return self._work

    @property
    def quantize(self) -> bool:
        """Whether the model runs with int8 weights."""
        return self.precision == "int8"

    @cached_property
    def model_dir(self) -> Path:
        """The model's local folder: ``model`` itself, or a Hub id's downloaded snapshot."""
        path = Path(self.model)
        if path.is_dir():
            return path
        if isinstance(self.model, Path) or path.exists() or path.is_absolute():
            raise NewsQAError(self._cannot_load("it does not exist"))
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(str(self.model), allow_patterns=HUB_FILES))
        except (OSError, ValueError) as exc:
            reason = " ".join(str(exc).split()).rstrip(".")  # one line: Hub errors span several
            raise NewsQAError(self._cannot_load(f"it is no folder here, and the Hugging Face Hub "
                                                f"cannot give it ({reason})")) from exc

    @property
    def calibration_key(self) -> str:
        """Which scores a calibration is valid for: weights, backend and precision.

        Scores move with each of them (int8 shifts them by up to about 0.1), so a decision fitted
        on one key is only valid for that key: ``<sha256 prefix of the weights file>/<backend>-
        <precision>``, e.g. "15aebb1bece6bfc8/torch-int8" (the format ``qa.decide`` stores).
        """
        return (f"{weights_digest(self.model_dir)[:CALIBRATION_HASH_CHARS]}/"
                f"{self.backend}-{self.precision}")

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
        """Load the tokenizer and the backend's model once (the onnx backend may export first)."""
        if self._windower is not None:
            return
        try:
            windower = Windower(self.model_dir, self.max_length, self.stride)
            self._backend.load(self.model_dir)
        except (OSError, ValueError) as exc:
            raise NewsQAError(self._cannot_load(str(exc).rstrip("."))) from exc
        self._windower = windower

    def _cannot_load(self, reason: str) -> str:
        hint = " Train it with `newsqa train-reader`." if Path(self.model) == DEFAULT_READER else ""
        return f"Cannot load the reader model {self.model}: {reason}.{hint}"

    def read(self, question: str, chunks: Sequence[Chunk], top_n: int = 5, *,
             every_chunk: bool = False) -> list[Span]:
        """The ``top_n`` best answer spans for ``question`` in ``chunks``, best first; read in
        rounds (``stages``), or all at once with ``every_chunk`` (a question about the current
        state, whose answer compares every article's).

        Safe to call from many threads (the app's requests): calls that arrive while the model
        is busy wait, and whichever finds it idle next reads every waiting question in one
        ``read_batch``. Under load that is more questions per second (bigger model batches);
        a lone caller reads at once. A bad question fails alone: it is checked before it waits.
        """
        if top_n < 1:
            raise NewsQAError(f"The number of spans (top_n) must be at least 1, got {top_n}.")
        self.warm_up()
        self._check_questions([question])
        mine = _Request(question, list(chunks), top_n, every_chunk)
        with self._turn:
            self._waiting.append(mine)
            while not mine.done:
                if not self._busy:
                    self._busy, batch, self._waiting = True, self._waiting, []
                    break
                self._turn.wait()
            else:
                return mine.outcome()
        try:
            self._read_requests(batch)
        finally:
            with self._turn:
                self._busy = False
                self._turn.notify_all()
        return mine.outcome()

    def _read_requests(self, requests: list[_Request]) -> None:
        """Answer each request, one ``read_batch`` per distinct ``top_n`` (it sets how many
        candidates are decoded, so mixing them would change the answers)."""
        for top_n in {r.top_n for r in requests}:
            group = [r for r in requests if r.top_n == top_n]
            try:
                found = self.read_batch([r.question for r in group], [r.chunks for r in group],
                                        top_n, every_chunk=[r.every_chunk for r in group])
            except BaseException as error:  # every waiting caller gets the failure
                for request in group:
                    request.error, request.done = error, True
                raise
            for request, spans in zip(group, found):
                request.spans, request.done = spans, True

    def read_batch(self, questions: Sequence[str], chunk_lists: Sequence[Sequence[Chunk]],
                   top_n: int = 5, *,
                   every_chunk: Sequence[bool] | None = None) -> list[list[Span]]:
        """``read`` for many questions, each with its own chunks, sharing model batches;
        ``every_chunk`` marks those whose chunks are all read at once."""
        if len(questions) != len(chunk_lists):
            raise NewsQAError(f"Got {len(questions)} questions but {len(chunk_lists)} chunk "
                              "lists.")
        if top_n < 1:
            raise NewsQAError(f"The number of spans (top_n) must be at least 1, got {top_n}.")
        self.warm_up()
        self._check_questions(questions)
        whole = every_chunk or [False] * len(questions)
        plans = [reading_rounds(chunks, () if all_at_once else self.stages)
                 for chunks, all_at_once in zip(chunk_lists, whole)]
        found: list[list[Span]] = [[] for _ in questions]
        pending = list(range(len(questions)))
        for round_ in range(len(self.stages) + 1):
            asked = [q for q in pending if round_ < len(plans[q]) and plans[q][round_]]
            for q, spans in zip(asked, self._read_lists([questions[q] for q in asked],
                                                        [plans[q][round_] for q in asked],
                                                        top_n)):
                found[q] += spans
            pending = [q for q in pending
                       if max((s.score for s in found[q]), default=0.0) < self.enough_score]
        with self._counting:
            self._work += ReadWork(questions=len(questions))
        return [best_spans(spans, top_n) for spans in found]

    def _read_lists(self, questions: Sequence[str], chunk_lists: Sequence[Sequence[Chunk]],
                    top_n: int) -> list[list[Span]]:
        """Every span found in each question's chunks, in one run of the model."""
        pairs = [(q, chunk) for q, chunks in enumerate(chunk_lists) for chunk in chunks]
        found: list[list[Span]] = [[] for _ in questions]
        read, work = self._read_pairs([questions[q] for q, _ in pairs], [c for _, c in pairs],
                                      top_n)
        with self._counting:
            self._work += work
        for pair, span in read:
            found[pairs[pair][0]].append(span)
        return found

    def _check_questions(self, questions: Sequence[str]) -> None:
        """Reject questions that are empty or leave no room for context in a window."""
        room = self._windower.question_room
        for question in questions:
            if not question.strip():
                raise QuestionError("The question is empty.")
            length = self._windower.question_tokens(question)
            if length > room:
                raise QuestionError(f"The question is too long for the reader ({length} "
                                    f"tokens; at most {room}).")

    def _read_pairs(self, questions: list[str], chunks: list[Chunk],
                    top_n: int) -> tuple[list[tuple[int, Span]], ReadWork]:
        """Spans from every window of each (question, chunk) pair, tagged with the pair index,
        and the work that took."""
        if not chunks:
            return [], ReadWork()
        windows = self._windower.windows(questions, [c.text for c in chunks])
        start_logits, end_logits, work = self._logits(windows.inputs)
        found = []
        for w, pair in enumerate(windows.pairs):
            chunk, offsets = chunks[pair], windows.offsets[w]
            for first, last, score in decode_spans(
                    start_logits[w], end_logits[w], windows.context[w],
                    top_n * CANDIDATES_PER_SPAN, self.max_answer_tokens):
                start, end = trim(chunk.text, offsets[first][0], offsets[last][1])
                if start < end:
                    found.append((pair, Span(chunk.doc_id, chunk.start + start,
                                             chunk.start + end, chunk.text[start:end], score)))
        return found, work

    def _logits(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, ReadWork]:
        """Start and end logits of every window, [windows, tokens] like ``inputs``, and the
        work (windows, tokens, tokens with the padding the model computes).

        In fp32, windows run longest first, in model batches cut to their own longest window:
        padding is compute that reads nothing (with 16 questions in flight, a window in about 11
        ms instead of 15 in arrival order, padded to the longest of 16). Logits past a window's
        end are 0; decoding never reads them (``context``).

        An int8 model runs one window at a time: its activations are quantised with one scale
        per run, so in a batch a window's logits would depend on the windows beside it, and a
        question would get another answer under load than alone (20% of CNN questions with
        ONNX, 28% with torch, batched with 15 others). On the CPU that is no slower: there is
        no padding to compute (16 questions at once, 25.4 ms a question against 28.8 batched).
        """
        lengths = inputs["attention_mask"].sum(axis=1)
        order = np.argsort(-lengths, kind="stable")
        start = np.zeros(inputs["input_ids"].shape, np.float32)
        end = np.zeros_like(start)
        padded = 0
        size = 1 if self.quantize else self.batch_size
        for b in range(0, len(order), size):
            rows = order[b:b + size]
            width = int(lengths[rows[0]])
            start[rows, :width], end[rows, :width] = self._backend.logits(
                {k: v[rows, :width] for k, v in inputs.items()})
            padded += width * len(rows)
        return start, end, ReadWork(0, len(order), int(lengths.sum()), padded)


def reading_rounds(chunks: Sequence[Chunk], stages: Sequence[int]) -> list[list[Chunk]]:
    """``chunks`` (in rank order) in the rounds they are read in, ``len(stages) + 1`` of them,
    some maybe empty: the first holds the best-ranked chunk of each article among the first
    ``stages[0]``; each later one what is left up to its own cut (``stages[1:]``), the last all
    that is left. No stages: one round of every chunk."""
    if not stages:
        return [list(chunks)]
    first: dict[str, int] = {}
    for rank, chunk in enumerate(chunks[:stages[0]]):
        first.setdefault(chunk.doc_id, rank)
    read = set(first.values())
    rounds = [[chunks[rank] for rank in sorted(read)]]
    for cut in (*stages[1:], len(chunks)):
        now = [rank for rank in range(min(cut, len(chunks))) if rank not in read]
        read.update(now)
        rounds.append([chunks[rank] for rank in now])
    return rounds


@dataclass
class _Request:
    """One ``read`` call waiting for its turn, and then its outcome."""

    question: str
    chunks: list[Chunk]
    top_n: int
    every_chunk: bool = False
    spans: list[Span] | None = None
    error: BaseException | None = None
    done: bool = False

    def outcome(self) -> list[Span]:
        if self.error is not None:
            raise self.error
        assert self.spans is not None
        return self.spans
