"""gpu/pack.py: what carries reader-v4 training to a lent GPU and its weights back."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_pack", ROOT / "gpu" / "pack.py")
pack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pack)


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"layer.weight": rng.normal(size=(8, 16)).astype(np.float32),
            "zero.weight": np.zeros((2, 4), np.float32),
            "layer.bias": rng.normal(size=16).astype(np.float32)}


def test_int8_rows_are_within_half_a_step_and_the_rest_is_fp16():
    original = weights()
    back = pack.dequantize(pack.quantize(original))
    assert back.keys() == original.keys()
    step = np.abs(original["layer.weight"]).max(axis=1, keepdims=True) / 127
    assert (np.abs(back["layer.weight"] - original["layer.weight"]) <= step / 2 + 1e-7).all()
    assert not np.array_equal(back["layer.weight"], original["layer.weight"])  # really rounded
    np.testing.assert_array_equal(back["zero.weight"], 0)
    np.testing.assert_allclose(back["layer.bias"], original["layer.bias"], rtol=1e-3)


def test_pieces_rebuild_the_base_and_the_training_files(tmp_path):
    base, data, out = tmp_path / "base", tmp_path / "train", tmp_path / "pieces"
    base.mkdir()
    data.mkdir()
    save_file(weights(), base / "model.safetensors")
    for name in pack.BASE_FILES:
        (base / name).write_text(f"{name} of the base")
    for stem in pack.TRAIN_FILES:
        (data / f"{stem}.jsonl.gz").write_bytes(stem.encode() * 50)
    pieces = pack.pack(base, data, out, piece_bytes=1000)
    assert len(pieces) > 2 and all(p.stat().st_size <= 1000 for p in pieces)

    pack.unpack(out)
    rebuilt = load_file(out / "base" / "model.safetensors")
    np.testing.assert_allclose(rebuilt["layer.weight"], weights()["layer.weight"], atol=0.05)
    assert not (out / "base" / "model.q8.safetensors").exists()
    for name in pack.BASE_FILES:
        assert (out / "base" / name).read_text() == f"{name} of the base"
    for stem in pack.TRAIN_FILES:
        assert (out / "train" / f"{stem}.jsonl.gz").read_bytes() == stem.encode() * 50


@pytest.mark.parametrize("limit", [100, 10**6])
def test_weights_come_back_in_small_files_and_join_whole(tmp_path, limit):
    model = tmp_path / "model"
    model.mkdir()
    save_file(weights(), model / "model.safetensors")
    (model / "config.json").write_text("{}")
    files = pack.split(model, tmp_path / "out", limit)
    assert all(f.stat().st_size <= limit for f in files)
    joined = pack.join(tmp_path / "out", tmp_path / "joined")
    for name in ("model.safetensors", "config.json"):
        assert (joined / name).read_bytes() == (model / name).read_bytes()
