"""ONNX exports run in a child process: the process that asked for one never loads torch, and an
export that fails, however it fails, is one NewsQAError line."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qa.errors import NewsQAError
from qa.reader.model import Reader
from qa.runtime.onnx import onnx_session

ROOT = Path(__file__).resolve().parents[2]


def die_by_sigkill(out: Path) -> None:
    """An export that is killed midway, as the kernel kills a process out of memory."""
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_exports_run_in_a_child_so_the_process_never_loads_torch(tiny_model, tmp_path):
    """A fresh process exports the embedder and a reader into an empty cache (the first start of
    ``newsqa serve``), answers with both, and still has no torch or transformers: the exports'
    libraries and fp32 models went with the child (the server held 1.67 GB, not 440 MB)."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from qa.embed import Embedder\n"
        "from qa.reader.model import Reader\n"
        "from qa.types import Chunk\n"
        f"cache = Path({str(tmp_path / 'cache')!r})\n"
        "embedder = Embedder(backend='onnx', cache_dir=cache)\n"
        f"reader = Reader(Path({str(tiny_model)!r}), max_length=64, stride=16, backend='onnx',"
        " cache_dir=cache)\n"
        "text = 'The harbour reopened on Monday after a storm closed it in 2001.'\n"
        "vectors = embedder.encode([text])\n"
        "spans = reader.read('When did the harbour reopen?', [Chunk('d', 0, len(text), text)])\n"
        "print(json.dumps([vectors.shape[0], len(spans) > 0, 'torch' in sys.modules,"
        " 'transformers' in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [1, True, False, False]
    made = sorted(p.relative_to(tmp_path / "cache").parts[0]
                  for p in (tmp_path / "cache").rglob("*.onnx"))
    assert made == ["embedder-onnx", "reader-onnx"]
    # one line for each export, and nothing of what the export's libraries printed
    notes = out.stderr.splitlines()
    assert len(notes) == 2 and all(n.startswith("Preparing the ") for n in notes), notes


def test_a_model_that_cannot_be_exported_is_one_clear_error(tiny_model, tmp_path):
    """Weights torch cannot load fail the export in the child; the reader says so in one line
    naming the model, and leaves nothing half-made in the cache."""
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(NewsQAError) as error:
        Reader(broken, backend="onnx", cache_dir=tmp_path / "cache").warm_up()
    message = str(error.value)
    assert message.startswith(f"Cannot export the reader {broken} to ONNX (")
    assert "\n" not in message and "Traceback" not in message
    assert not list((tmp_path / "cache").rglob("*.onnx"))


def test_an_export_killed_midway_is_one_clear_error(tmp_path, monkeypatch):
    """A child killed by a signal (the kernel's answer to running out of memory) wrote no line
    of its own: the error names the signal."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # the child finds this module
    out = tmp_path / "cache" / "model.onnx"
    with pytest.raises(NewsQAError, match=r"^Cannot export the model to ONNX \(the export "
                                          r"process was killed by SIGKILL\)\.$"):
        onnx_session(out, "the model", die_by_sigkill)
    assert not out.exists()


def test_an_export_process_that_cannot_start_says_why(tmp_path, monkeypatch):
    """A child that fails before the export runs (here it cannot import the export function)
    ends in a traceback; its last line is the reason given."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with pytest.raises(NewsQAError, match=r"^Cannot export the model to ONNX \("
                                          r"ModuleNotFoundError: No module named "
                                          r"'test_export_child'\)\.$"):
        onnx_session(tmp_path / "model.onnx", "the model", die_by_sigkill)
