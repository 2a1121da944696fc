"""The process that makes an ONNX export: ``python -m qa.runtime.export``, started by
``qa.runtime.onnx.export_in_child`` with ``(export, out, what)`` pickled on stdin.

It runs ``export(out)`` and exits 0, or writes one line saying why it failed to stderr, as its
last line, and exits with ``EXPORT_FAILED``. torch, transformers and the model in fp32 load
here and go with the process, not into the one that asked for the export.
"""
from __future__ import annotations

import pickle
import sys

from qa.errors import clip
from qa.runtime.onnx import EXPORT_FAILED


def main() -> int:
    export, out, what = pickle.load(sys.stdin.buffer)  # from the parent process, through a pipe
    try:
        export(out)
    except Exception as exc:  # whatever stopped it (a model torch cannot load, a full disk)
        reason = clip(" ".join(str(exc).split()) or type(exc).__name__)
        # RuntimeError is what torch.onnx raises for a graph it cannot export
        hint = "; the torch backend runs it" if isinstance(exc, RuntimeError) else ""
        print(f"Cannot export {what} to ONNX ({reason}){hint}.", file=sys.stderr, flush=True)
        return EXPORT_FAILED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
