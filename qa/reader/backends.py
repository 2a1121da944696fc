"""Model backends of the reader: token windows in, start/end logits out.

The reader (``qa.reader.model``) windows text and decodes spans without knowing what runs the
model, so a backend only turns a batch of windows into logits. ``torch`` runs the shipped
weights (fp32, or int8 Linear layers on the CPU); ``onnx`` runs them in ONNX Runtime from an
export made on first use and cached (``<cache>/reader-onnx/<weights sha256>/<precision>-v2.onnx``,
see ``qa.runtime.onnx``, which the embedder uses too). Answering through ONNX Runtime needs no
torch, which keeps a cold start short; torch is imported only to export, in a process of its own.
"""
from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Mapping, Protocol

import numpy as np

from qa.errors import NewsQAError
from qa.runtime import BACKENDS
from qa.runtime.onnx import default_cache_dir, export_onnx, export_path, fusion, onnx_session
from qa.runtime.weights import load_torch_model, model_inputs, quantize_linear_layers

OUTPUTS = ("start_logits", "end_logits")
Logits = tuple[np.ndarray, np.ndarray]


class ReaderBackend(Protocol):
    """What the reader needs from a model: load it once, then logits for batches of windows."""

    name: str
    precision: str  # "int8" or "fp32"

    def load(self, model_dir: Path) -> None:
        """Make the model in ``model_dir`` ready; OSError/ValueError when it cannot be read."""

    def logits(self, batch: Mapping[str, np.ndarray]) -> Logits:
        """(start, end) logits, float32 [windows, tokens], for a batch of ``MODEL_INPUTS``."""


def make_backend(name: str, *, device: str, quantize: bool | None,
                 cache_dir: Path | None) -> ReaderBackend:
    """The backend called ``name``; its settings are checked here, before anything loads."""
    if name == "torch":
        return TorchBackend(device, quantize)
    if name == "onnx":
        return OnnxBackend(device, quantize, cache_dir)
    raise NewsQAError(f"Unknown reader backend {name!r}; use one of: {', '.join(BACKENDS)}.")


class TorchBackend:
    """The weights in torch, in fp32 (shipped fp16 weights are upcast: the CPU needs fp32).

    On the CPU the Linear layers are quantised to int8 by default (dynamic, per output channel):
    reading is about 1.3x faster for 0.2 F1 on SQuAD v1.1 dev (model card). Activation scales are
    set per model batch, so a window's scores shift slightly with the windows batched beside it;
    ``quantize=False`` keeps fp32, where they do not.
    """

    name = "torch"

    def __init__(self, device: str, quantize: bool | None) -> None:
        on_cpu = re.fullmatch(r"cpu(:\d+)?", device) is not None
        if not on_cpu:  # torch itself judges other names; the CPU needs no torch import yet
            import torch

            try:
                on_cpu = torch.device(device).type == "cpu"
            except RuntimeError as exc:
                raise NewsQAError(f"The reader device {device!r} is not a torch device.") from exc
        if quantize and not on_cpu:
            raise NewsQAError(f"int8 quantisation runs on the CPU only; got device {device!r}.")
        self.device = device
        self.precision = "int8" if (on_cpu if quantize is None else quantize) else "fp32"
        self._model = None
        self._inputs: tuple[str, ...] = ()

    def load(self, model_dir: Path) -> None:
        model = load_torch_model(model_dir).to(self.device)
        if self.precision == "int8":
            model = quantize_linear_layers(model)
        self._inputs = model_inputs(model)
        self._model = model

    def logits(self, batch: Mapping[str, np.ndarray]) -> Logits:
        import torch

        with torch.inference_mode():
            out = self._model(**{k: torch.from_numpy(batch[k]).to(self.device)
                                 for k in self._inputs})
        return out.start_logits.cpu().numpy(), out.end_logits.cpu().numpy()


class OnnxBackend:
    """The weights exported to ONNX (int8 by default: ``quantize_dynamic``, per channel), run by
    ONNX Runtime on the CPU. The export is cached per weights file, so it is made once."""

    name = "onnx"

    def __init__(self, device: str, quantize: bool | None, cache_dir: Path | None) -> None:
        if device.split(":")[0] != "cpu":
            raise NewsQAError(f"The onnx reader backend runs on the CPU only; got device "
                              f"{device!r}.")
        self.precision = "fp32" if quantize is False else "int8"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._session = None
        self._inputs: tuple[str, ...] = ()

    def export_path(self, model_dir: Path) -> Path:
        """Where the export of ``model_dir``'s weights at this precision is cached."""
        return export_path(self.cache_dir, "reader", model_dir, self.precision)

    def load(self, model_dir: Path) -> None:
        session = onnx_session(
            self.export_path(model_dir), f"the reader {model_dir}",
            partial(export_reader, model_dir, quantize=self.precision == "int8"))
        self._inputs = tuple(i.name for i in session.get_inputs())
        self._session = session

    def logits(self, batch: Mapping[str, np.ndarray]) -> Logits:
        start, end = self._session.run(list(OUTPUTS), {k: batch[k] for k in self._inputs})
        return start, end


def export_reader(model_dir: Path, out: Path, *, quantize: bool) -> None:
    """Write ``model_dir``'s QA model to ``out`` as ONNX (start/end logits), int8 with
    ``quantize``."""
    model = load_torch_model(model_dir, eager=True)
    export_onnx(model, out, inputs=model_inputs(model), outputs=OUTPUTS, quantize=quantize,
                fuse=fusion(model.config))


