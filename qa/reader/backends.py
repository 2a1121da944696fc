"""Model backends of the reader: token windows in, start/end logits out.

The reader (qa/reader/model.py) windows text and decodes spans without knowing what runs the model,
so a backend only turns a batch of windows into logits. ``torch`` runs the shipped weights (fp32, or
int8 Linear layers on the CPU); ``onnx`` runs them in ONNX Runtime from an export made on first
use and cached (``<cache>/reader-onnx/<weights sha256>/<precision>-v2.onnx``, where ``<cache>`` is
``$XDG_CACHE_HOME/newsqa`` or ``~/.cache/newsqa``). Answering through ONNX Runtime needs no torch,
which keeps a cold start short; torch is imported only to export.

The export and its cache (``export_path``, ``onnx_session``, ``export_onnx``) serve every model
that newsqa runs in ONNX Runtime: the embedder (qa/embed.py) uses them too.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Protocol, Sequence

import numpy as np

from qa.errors import NewsQAError

if TYPE_CHECKING:
    import onnxruntime
    import torch

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
# What a windowed batch holds; each backend feeds its model the ones the model takes.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = ("start_logits", "end_logits")
ONNX_OPSET = 17
# Part of every export's file name: raised when the export itself changes (v2 fuses the reader's
# attention), so a cache made by older code is exported again rather than run with settings, such
# as a fitted answer decision, that were measured on the new export.
EXPORT_VERSION = 2

Logits = tuple[np.ndarray, np.ndarray]


class ReaderBackend(Protocol):
    """What the reader needs from a model: load it once, then logits for batches of windows."""

    name: str
    precision: str  # "int8" or "fp32"

    def load(self, model_dir: Path) -> None:
        """Make the model in ``model_dir`` ready; OSError/ValueError when it cannot be read."""

    def logits(self, batch: Mapping[str, np.ndarray]) -> Logits:
        """(start, end) logits, float32 [windows, tokens], for a batch of ``MODEL_INPUTS``."""


class NamedBackend(Protocol):
    """What every backend object, the reader's or the embedder's, says about itself."""

    name: str
    precision: str


class RunsOnBackend:
    """``backend`` and ``precision`` of a model component (the reader, the embedder), as the
    backend object it runs on reports them."""

    _backend: NamedBackend

    @property
    def backend(self) -> str:
        """What runs the model: "torch" or "onnx"."""
        return self._backend.name

    @property
    def precision(self) -> str:
        """The precision the model computes in: "int8" or "fp32"."""
        return self._backend.precision


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
            lambda out: export_reader(model_dir, out, quantize=self.precision == "int8"))
        self._inputs = tuple(i.name for i in session.get_inputs())
        self._session = session

    def logits(self, batch: Mapping[str, np.ndarray]) -> Logits:
        start, end = self._session.run(list(OUTPUTS), {k: batch[k] for k in self._inputs})
        return start, end


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/newsqa``, else ``~/.cache/newsqa``: derived files that can be remade."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "newsqa"


def export_path(cache_dir: Path, kind: str, model_dir: Path, precision: str) -> Path:
    """Where the ONNX export of ``model_dir``'s weights at ``precision`` is cached:
    ``<cache_dir>/<kind>-onnx/<sha256 prefix of the weights file>/<precision>-v<EXPORT_VERSION>
    .onnx``, so new weights or a new kind of export get a new file and a stale one is never
    run."""
    return (cache_dir / f"{kind}-onnx" / weights_digest(model_dir)[:16]
            / f"{precision}-v{EXPORT_VERSION}.onnx")


def onnx_session(path: Path, what: str,
                 export: Callable[[Path], None]) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session (CPU) for the model cached at ``path``, made first by
    ``export(path)`` when it is not there yet; each failure is one NewsQAError naming ``what``.
    """
    import onnxruntime

    if not path.is_file():
        # once per weights file; it takes a while (torch loads), so say why the first run waits
        log.warning("Exporting %s to ONNX (once; cached in %s)...", what, path.parent)
        try:
            export(path)
        except OSError as exc:
            raise NewsQAError(f"Cannot write the ONNX export of {what} to {path}: {exc}") from exc
        except RuntimeError as exc:  # what torch.onnx raises for a graph it cannot export
            raise NewsQAError(f"Cannot export {what} to ONNX ({exc}); the torch backend runs "
                              "it.") from exc
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the graph optimiser's notes are noise here
    # The embedder's and the reader's thread pools would each busy-wait after a run, taking the
    # cores from the other model: without spinning `ask` p50 is 62-94 ms, not 101-117 ms, on 2
    # cores (benchmarks/reader_speed.py).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return onnxruntime.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise NewsQAError(f"Cannot load the ONNX export {path} of {what} ({exc}); delete it to "
                          "export it again.") from exc


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


def fusion(config: object) -> dict[str, object] | None:
    """``export_onnx``'s ``fuse`` settings for a model with this transformers ``config``, or None
    for a model type that ONNX Runtime's optimiser does not know (it runs unfused: slower)."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    if config.model_type not in MODEL_TYPES:
        return None
    return {"model_type": config.model_type, "num_heads": config.num_attention_heads,
            "hidden_size": config.hidden_size}


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


def export_reader(model_dir: Path, out: Path, *, quantize: bool) -> None:
    """Write ``model_dir``'s QA model to ``out`` as ONNX (start/end logits), int8 with
    ``quantize``."""
    model = load_torch_model(model_dir, eager=True)
    export_onnx(model, out, inputs=model_inputs(model), outputs=OUTPUTS, quantize=quantize,
                fuse=fusion(model.config))


def export_onnx(model: torch.nn.Module, out: Path, *, inputs: Sequence[str],
                outputs: Sequence[str], quantize: bool,
                fuse: Mapping[str, object] | None = None) -> None:
    """Write ``model`` to ``out`` as ONNX, int8 with ``quantize``.

    ``model`` takes the int64 [batch, tokens] tensors named ``inputs``, in that order, and
    returns ``outputs`` first (further outputs stay unnamed), each with batch and tokens as its
    first two axes.
    Uses torch's TorchScript exporter (the dynamo one needs onnxscript); batch and sequence
    length stay dynamic. Its warnings are silenced because they do not apply to an encoder: the
    shape checks it freezes in the attention mask code are constant (no cache, a mask always
    given), and the indices of the mask's advanced indexing are aranges, never negative (tests
    compare the export's outputs with torch's). int8 is ONNX Runtime's dynamic quantisation with
    per-channel weight scales, like the torch backend's, after the pre-processing ONNX Runtime
    asks for (graph optimisation; it changes no output here). ``fuse`` (the model's
    ``model_type``, ``num_heads`` and ``hidden_size`` for ``onnxruntime.transformers.optimizer``)
    first fuses attention, layer norms and GELU into ONNX Runtime's own kernels: the same
    outputs, faster; it recognises the attention of a model loaded with
    ``attn_implementation="eager"``. ``out`` appears whole or not at all.
    """
    import torch

    example = tuple(torch.ones(2, 8, dtype=torch.int64) for _ in inputs)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*inputs, *outputs)}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message="Exporting aten::index operator")
            torch.onnx.export(model, example, str(fp32), input_names=list(inputs),
                              output_names=list(outputs), dynamic_axes=axes,
                              opset_version=ONNX_OPSET, dynamo=False)
        made = fp32
        if fuse:
            from onnxruntime.transformers.optimizer import optimize_model

            made = Path(tmp) / "fused.onnx"
            optimize_model(str(fp32), opt_level=0, **fuse).save_model_to_file(str(made))
        if quantize:
            from onnx import TensorProto
            from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

            ready, int8 = Path(tmp) / "ready.onnx", Path(tmp) / "int8.onnx"
            quant_pre_process(made, ready, skip_symbolic_shape=True)
            # ONNX's shape inference cannot type the outputs of fused (com.microsoft) kernels;
            # they are float, as every activation here.
            quantize_dynamic(ready, int8, per_channel=True, weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": TensorProto.FLOAT})
            made = int8
        os.replace(made, out)
