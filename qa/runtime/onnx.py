"""ONNX Runtime for every model that newsqa runs in it (the embedder and the reader): the
export (TorchScript exporter, attention fused, int8 dynamic quantisation), its cache
(``<cache>/<kind>-onnx/<weights sha256>/<precision>-v2.onnx``, where ``<cache>`` is
``$XDG_CACHE_HOME/newsqa`` or ``~/.cache/newsqa``) and the sessions that run it. torch is
imported only to export, and only in a child process (``qa.runtime.export``).
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from qa.errors import NewsQAError
from qa.runtime.weights import weights_digest

if TYPE_CHECKING:
    import onnxruntime
    import torch

ONNX_OPSET = 17
# Part of every export's file name: raised when the export itself changes (v2 fuses the reader's
# attention), so a cache made by older code is exported again rather than run with settings, such
# as a fitted answer decision, that were measured on the new export.
EXPORT_VERSION = 2
# The export process's exit status when the last line it wrote to stderr says why it failed.
EXPORT_FAILED = 3


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
    ``export(path)`` in a child process (``export_in_child``) when it is not there yet; each
    failure is one NewsQAError naming ``what``.
    """
    import onnxruntime

    if not path.is_file():
        # Once per weights file, and it takes a while: one line says why the first run waits.
        # Printed, not logged: it is no warning, and whoever waits should see it, whatever
        # logging is set up (the CLI, the app and the Python API alike).
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NewsQAError(f"Cannot write the ONNX export of {what} to {path}: {exc}") from exc
        print(f"Preparing {what} for ONNX Runtime (once; under a minute)…", file=sys.stderr,
              flush=True)
        export_in_child(export, path, what)
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


def export_in_child(export: Callable[[Path], None], out: Path, what: str) -> None:
    """``export(out)`` in a new Python process (``python -m qa.runtime.export``), which gets it
    pickled, so a picklable callable: a module-level function, or a ``functools.partial`` of one.

    Why a child: an export loads torch, transformers and the model in fp32, and a process keeps
    the memory it took. ``newsqa serve`` held 1.67 GB after a first start that exported both
    models in-process, against 375 MB on a later start; with the exports in a child, 440 MB, and
    it never imports torch. The child's output (torch's and ONNX Runtime's warnings, about the
    export's internals) is kept from the user unless it fails: then its last line, the reason,
    is the NewsQAError's.
    """
    done = subprocess.run([sys.executable, "-m", "qa.runtime.export"],
                          input=pickle.dumps((export, out, what)), capture_output=True)
    if done.returncode == 0:
        return
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    if done.returncode == EXPORT_FAILED and lines:  # the child's own one-line message
        raise NewsQAError(lines[-1])
    if done.returncode < 0:
        reason = f"the export process was killed by {signal.Signals(-done.returncode).name}"
    else:
        reason = lines[-1] if lines else f"the export process exited with {done.returncode}"
    raise NewsQAError(f"Cannot export {what} to ONNX ({reason}).")


def fusion(config: object) -> dict[str, object] | None:
    """``export_onnx``'s ``fuse`` settings for a model with this transformers ``config``, or None
    for a model type that ONNX Runtime's optimiser does not know (it runs unfused: slower)."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    if config.model_type not in MODEL_TYPES:
        return None
    return {"model_type": config.model_type, "num_heads": config.num_attention_heads,
            "hidden_size": config.hidden_size}


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
    ``attn_implementation="eager"``. ``out`` appears whole or not at all, in its folder,
    which must exist.
    """
    import torch

    example = tuple(torch.ones(2, 8, dtype=torch.int64) for _ in inputs)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*inputs, *outputs)}
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
