"""What runs a model, shared by the embedder (``qa.embed``) and the reader (``qa.reader``).

Both run on one of ``BACKENDS``: ``torch``, or ``onnx`` (ONNX Runtime, from an export made on
first use and cached; it needs no torch, which keeps a cold start short). The CLI offers the
same names (``--backend``).

- ``onnx``: exporting a model to ONNX (fused, int8), the export cache and the sessions.
- ``export``: the child process that each export runs in, so torch never loads into the process
  that asked for it (the app's server).
- ``weights``: a model's weights file and its digest (what exports and calibration are keyed
  by), loading a QA model in torch, int8 quantisation.

Light on purpose: this module imports neither torch nor ONNX Runtime.
"""
from __future__ import annotations

from typing import Protocol

BACKENDS = ("torch", "onnx")


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
