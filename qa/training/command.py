"""Fine-tune an extractive reader (start/end span head) on SQuAD-style JSON Lines.

Run ``newsqa train-reader --help`` (or ``python -m qa.training --help``). Training is
reproducible from ``--seed``, checkpoints every ``--save-every`` steps, resumes a killed run with
``--resume``, and continues from the shipped model with ``--init models/reader``.
"""
from __future__ import annotations

import argparse
import logging
import math
from typing import Sequence

import torch

from qa.training.data import DEFAULT_MIX
from qa.training.distill import TEACHER_ROOM
from qa.training.loop import train


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
    """The ``newsqa train-reader`` options (also ``python -m qa.training``)."""
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
    parser = argparse.ArgumentParser(prog="python -m qa.training", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
