"""Reader backends: torch and ONNX Runtime give the same logits, the export is made once per
weights file and precision, and answering through ONNX Runtime needs no torch."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.chunk import Chunker
from qa.errors import NewsQAError
from qa.reader.backends import OnnxBackend, make_backend
from qa.reader.model import Reader
from qa.reader.windows import Windower
from qa.runtime.onnx import onnx_session
from qa.types import Chunk, Document

ROOT = Path(__file__).resolve().parents[2]
SEED_ARTICLE = ROOT / "seeds" / "000_2ffe86633dc2dc73.txt"
SEED_QUESTIONS = ROOT / "tests" / "data" / "seed_questions.jsonl"
QUESTION = "Who bought the café, and for how much?"
TEXT = ("PARIS (AP) — The café “Le Monde” opened on 3 May 1990. In 2024 the building was "
        "sold for $5.2 million to an investor from Lyon, who promised to keep the name, the "
        "staff and the menu unchanged for at least ten years. ") * 3


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("newsqa-cache")


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, onnx_cache) -> Reader:
    """The tiny model through ONNX Runtime in int8, exported into the test cache."""
    reader = Reader(tiny_model, max_length=64, stride=16, backend="onnx", cache_dir=onnx_cache)
    reader.warm_up()
    return reader


def logits(name: str, model: Path, quantize: bool, cache: Path, batch: dict):
    backend = make_backend(name, device="cpu", quantize=quantize, cache_dir=cache)
    backend.load(model)
    return backend.logits(batch)


def test_onnx_export_computes_what_torch_computes(tiny_model, onnx_cache):
    """fp32 export against torch fp32, on batches and lengths other than the traced example's
    (dynamic axes) and with padding (the attention mask is honoured)."""
    windower = Windower(tiny_model, 64, 16)
    for texts in ([TEXT[:40]], [TEXT[:30], TEXT[:200], TEXT]):
        batch = windower.windows([QUESTION] * len(texts), texts).inputs
        torch_start, torch_end = logits("torch", tiny_model, False, onnx_cache, batch)
        onnx_start, onnx_end = logits("onnx", tiny_model, False, onnx_cache, batch)
        real = batch["attention_mask"].astype(bool)
        np.testing.assert_allclose(onnx_start[real], torch_start[real], atol=1e-4)
        np.testing.assert_allclose(onnx_end[real], torch_end[real], atol=1e-4)
    assert not real.all()


def test_int8_export_stays_close_to_fp32(tiny_model, tiny_onnx, onnx_cache):
    batch = Windower(tiny_model, 64, 16).windows([QUESTION] * 2, [TEXT[:150], TEXT]).inputs
    fp32 = logits("onnx", tiny_model, False, onnx_cache, batch)
    int8 = logits("onnx", tiny_model, True, onnx_cache, batch)
    real = batch["attention_mask"].astype(bool)
    for a, b in zip(int8, fp32):
        assert not np.array_equal(a, b)  # really quantised
        np.testing.assert_allclose(a[real], b[real], atol=0.1 * np.abs(b[real]).max())


def test_export_is_made_once_per_weights_and_precision(tiny_model, tiny_onnx, onnx_cache):
    digest = hashlib.sha256((tiny_model / "model.safetensors").read_bytes()).hexdigest()
    exports = onnx_cache / "reader-onnx" / digest[:16]
    int8 = exports / "int8-v2.onnx"
    assert int8.is_file()
    made = int8.stat()
    again = Reader(tiny_model, max_length=64, stride=16, backend="onnx", cache_dir=onnx_cache)
    again.warm_up()
    assert (int8.stat().st_ino, int8.stat().st_mtime_ns) == (made.st_ino, made.st_mtime_ns)
    chunks = [Chunk("d", 0, len(TEXT), TEXT)]
    assert again.read(QUESTION, chunks, 5) == tiny_onnx.read(QUESTION, chunks, 5)
    assert {p.name for p in exports.iterdir()} <= {"int8-v2.onnx", "fp32-v2.onnx"}  # no leftovers


def test_onnx_sessions_do_not_busy_wait_between_runs(tiny_model, tiny_onnx, onnx_cache):
    """The embedder's and the reader's ONNX sessions share the cores: a pool that spins after
    its run would take them from the other model (``ask`` p50 101-117 -> 62-94 ms)."""
    session = onnx_session(OnnxBackend("cpu", True, onnx_cache).export_path(tiny_model),
                           "the tiny reader", lambda out: pytest.fail("the export is cached"))
    assert session.get_session_options().get_session_config_entry(
        "session.intra_op.allow_spinning") == "0"


def test_reader_export_runs_onnx_runtimes_own_attention_kernel(tiny_model, tiny_onnx,
                                                               onnx_cache):
    """Attention, layer norms and GELU fused into ONNX Runtime's kernels read the shipped reader
    1.2-1.3x faster at the same F1 (SQuAD v1.1 dev 80.8 vs 80.7); the fp32 test above checks
    that the fused graph still computes what torch computes."""
    import onnx

    for quantize, attention in ((False, "Attention"), (True, "QAttention")):
        backend = OnnxBackend("cpu", quantize, onnx_cache)
        backend.load(tiny_model)  # exports, unless an earlier test has
        ops = {node.op_type for node in onnx.load(str(backend.export_path(tiny_model))).graph.node}
        assert attention in ops and "SkipLayerNormalization" in ops
        assert "Softmax" not in ops  # no attention left unfused


def test_onnx_reader_answers_without_torch(tiny_model, tiny_onnx, onnx_cache):
    """A cold process reading through a cached export never imports torch (or transformers)."""
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from qa.reader.model import Reader\n"
        "from qa.types import Chunk\n"
        f"r = Reader(Path({str(tiny_model)!r}), max_length=64, stride=16, backend='onnx',"
        f" cache_dir=Path({str(onnx_cache)!r}))\n"
        f"text = {TEXT!r}\n"
        f"spans = r.read({QUESTION!r}, [Chunk('d', 0, len(text), text)], 5)\n"
        "print(json.dumps([len(spans), 'torch' in sys.modules,"
        " 'transformers' in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == [5, False, False]


def test_backend_settings_are_checked_before_loading(tiny_model):
    with pytest.raises(NewsQAError, match="Unknown reader backend 'tf'"):
        Reader(tiny_model, backend="tf")
    with pytest.raises(NewsQAError, match="CPU only"):
        Reader(tiny_model, backend="onnx", device="cuda")
    assert Reader(tiny_model, backend="onnx").precision == "int8"
    assert Reader(tiny_model, backend="onnx", quantize=False).precision == "fp32"
    assert Reader(tiny_model, device="cuda").precision == "fp32"


def test_unusable_cache_is_one_clear_error(tiny_model, tiny_onnx, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(NewsQAError, match="Cannot write the ONNX export"):
        Reader(tiny_model, backend="onnx", quantize=False, cache_dir=blocked).warm_up()
    broken = OnnxBackend("cpu", None, tmp_path / "cache").export_path(tiny_model)
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"half a file")
    with pytest.raises(NewsQAError, match="delete it"):
        Reader(tiny_model, backend="onnx", cache_dir=tmp_path / "cache").warm_up()


@pytest.mark.slow
def test_onnx_int8_reader_answers_like_fp32(tmp_path_factory):
    """The shipped reader exported to int8 picks the fp32 model's answers on the seed article,
    with scores as close as torch int8's (the threshold is calibrated per backend)."""
    doc = Document("seed", SEED_ARTICLE.read_text(encoding="utf-8"))
    chunks = Chunker().split(doc)
    records = [json.loads(line) for line in SEED_QUESTIONS.read_text().splitlines() if line]
    questions = [r["question"] for r in records if r["answers"]]
    onnx = Reader(backend="onnx", cache_dir=tmp_path_factory.mktemp("shipped-export"))
    fp32 = Reader(quantize=False)
    onnx_spans, fp32_spans = (r.read_batch(questions, [chunks] * len(questions), top_n=1)
                              for r in (onnx, fp32))
    assert [s[0].text for s in onnx_spans] == [s[0].text for s in fp32_spans]
    assert [s[0].score for s in onnx_spans] == pytest.approx([s[0].score for s in fp32_spans],
                                                             abs=0.15)
