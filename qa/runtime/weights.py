"""A model's weights: the file that holds them and its digest (what ONNX exports and the
reader's calibration are keyed by), loading a QA model in torch, and int8 quantisation of its
Linear layers. torch and transformers are imported inside the functions that need them."""
from __future__ import annotations

import functools
import hashlib
import inspect
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from qa.errors import NewsQAError

if TYPE_CHECKING:
    import torch

WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
# What a windowed batch holds; each backend feeds its model the ones the model takes.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def weights_file(model_dir: Path) -> Path:
    """The file holding ``model_dir``'s weights (what exports and calibration are keyed by)."""
    for name in WEIGHTS_FILES:
        if (model_dir / name).is_file():
            return model_dir / name
    raise NewsQAError(f"The model {model_dir} has no weights file "
                      f"({' or '.join(WEIGHTS_FILES)}).")


def weights_digest(model_dir: Path) -> str:
    """sha256 (hex) of ``model_dir``'s weights file, hashed once per file version."""
    path = weights_file(model_dir)
    stat = path.stat()
    return _sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """Cached by size and mtime too, so rewritten weights are hashed again."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_torch_model(model_dir: Path | str, *, eager: bool = False) -> torch.nn.Module:
    """The QA model in ``model_dir`` (a folder or a model id), in fp32 and eval mode; with
    ``eager``, in the attention implementation an ONNX export can fuse (``fusion``)."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    no_loading_bar()
    model = AutoModelForQuestionAnswering.from_pretrained(
        str(model_dir), dtype=torch.float32, attn_implementation="eager" if eager else None)
    return model.eval()


def no_loading_bar() -> None:
    """No "Loading weights" bar from transformers on every command."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def model_inputs(model: torch.nn.Module) -> tuple[str, ...]:
    """The ``MODEL_INPUTS`` that ``model`` takes (MPNet, for one, has no token_type_ids)."""
    accepted = inspect.signature(model.forward).parameters
    return tuple(name for name in MODEL_INPUTS if name in accepted)


def quantize_linear_layers(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with int8 weights in its Linear layers (activations quantised on the fly).

    Per-channel scales keep the span logits close to fp32. torch marks this eager-mode API as
    deprecated in favour of torchao; it works in the torch the project pins (2.13), so its
    deprecation warnings are silenced for this one call.
    """
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated")
        return torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
            dtype=torch.qint8)
