"""Distillation: a teacher reader's start/end distributions, carried over to the student's
tokens (the two may cut text differently), and the loss that compares them."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from qa.training.data import Example, context_spans

# Extra tokens the teacher may read beyond the student's window length: another vocabulary
# cuts the same text into a few more or fewer pieces.
TEACHER_ROOM = 64


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
