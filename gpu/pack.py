"""Move reader-v4 training to a lent GPU machine and its weights back, within the device tool's
limits: a call carries at most 64 MiB with the working tree (about 45 MiB of it the shipped
reader), and at most 8 files of 16 MiB come back from ``$OUT``.

    python gpu/pack.py pack BASE_DIR --data ../shared/data/qa/train --out runs/gpu
    python gpu/pack.py unpack .gpu                # on the GPU machine, in gpu/reader_v4.sh
    python gpu/pack.py split WEIGHTS_DIR $OUT     # on the GPU machine: weights in <=16 MiB files
    python gpu/pack.py join FILES_DIR models/reader-v4   # here, on what came back

``pack`` stores the teacher's base (all-mpnet-base-v2, 438 MB in fp32) with its matrices in int8
(one scale per row; biases and norms in fp16), about 110 MB, then cuts that and the training
files into pieces small enough to ride along one call each (see gpu/README.md). Rounding a base
model's weights to int8 before fine-tuning moves them far less than the fine-tuning does.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save, save_file

PIECE_BYTES = 18_000_000  # 64 MiB per call, less the working tree (47.3 MB), less some room
RETURN_BYTES = 16_000_000  # under the 16 MiB that one file back from $OUT may hold
SCALE = ".__row_scale__"  # suffix of the per-row scale stored beside an int8 matrix
BASE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "vocab.txt")
TRAIN_FILES = ("squad_v1.1_train", "qamr_wikinews", "squadshifts_new_wiki", "qed_nq",
               "tydiqa_goldp_en")


def quantize(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Matrices as int8 with a float32 scale per row; every other tensor as fp16."""
    out: dict[str, np.ndarray] = {}
    for name, w in weights.items():
        if w.ndim == 2:
            scale = np.abs(w).max(axis=1, keepdims=True).astype(np.float32) / 127
            scale[scale == 0] = 1.0
            out[name] = np.round(w / scale).astype(np.int8)
            out[name + SCALE] = scale
        else:
            out[name] = w.astype(np.float16)
    return out


def dequantize(packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32 weights back from ``quantize``'s output."""
    return {name: (w.astype(np.float32) * packed[name + SCALE] if name + SCALE in packed
                   else w.astype(np.float32))
            for name, w in packed.items() if not name.endswith(SCALE)}


def pack(base: Path, data: Path, out: Path, piece_bytes: int) -> list[Path]:
    """One tar of the int8 base, its tokenizer and the training files, cut into pieces."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        weights = io.BytesIO(save(quantize(load_file(base / "model.safetensors"))))
        info = tarfile.TarInfo("base/model.q8.safetensors")
        info.size = len(weights.getvalue())
        tar.addfile(info, weights)
        for name in BASE_FILES:
            tar.add(base / name, f"base/{name}")
        for stem in TRAIN_FILES:
            tar.add(data / f"{stem}.jsonl.gz", f"train/{stem}.jsonl.gz")
    blob = buffer.getvalue()
    out.mkdir(parents=True, exist_ok=True)
    pieces = []
    for n, at in enumerate(range(0, len(blob), piece_bytes)):
        pieces.append(out / f"part-{n:03d}")
        pieces[-1].write_bytes(blob[at:at + piece_bytes])
    return pieces


def unpack(folder: Path) -> None:
    """Rebuild ``folder``/base (fp32 weights, loadable by transformers) and ``folder``/train."""
    blob = b"".join(p.read_bytes() for p in sorted(folder.glob("part-*")))
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(folder, filter="data")
    packed = folder / "base" / "model.q8.safetensors"
    save_file(dequantize(load_file(packed)), folder / "base" / "model.safetensors")
    packed.unlink()


def split(weights: Path, out: Path, limit: int = RETURN_BYTES) -> list[Path]:
    """Copy a model folder to ``out``, its weights cut into files of at most ``limit`` bytes."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in sorted(weights.iterdir()):
        if f.name == "model.safetensors":
            blob = f.read_bytes()
            for n, at in enumerate(range(0, len(blob), limit)):
                written.append(out / f"model.safetensors.{n:02d}")
                written[-1].write_bytes(blob[at:at + limit])
        elif f.is_file():
            written.append(Path(shutil.copy2(f, out / f.name)))
    return written


def join(files: Path, out: Path) -> Path:
    """The model folder ``split`` cut up, whole again."""
    out.mkdir(parents=True, exist_ok=True)
    parts = sorted(files.glob("model.safetensors.*"))
    (out / "model.safetensors").write_bytes(b"".join(p.read_bytes() for p in parts))
    for f in files.iterdir():
        if f.is_file() and f not in parts:
            shutil.copy2(f, out / f.name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = ap.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("pack", help="here: the teacher's base and the data, in pieces")
    p.add_argument("base", type=Path, help="the all-mpnet-base-v2 folder")
    p.add_argument("--data", type=Path, default=Path("../shared/data/qa/train"))
    p.add_argument("--out", type=Path, default=Path("runs/gpu"))
    p.add_argument("--piece-bytes", type=int, default=PIECE_BYTES)
    verbs.add_parser("unpack", help="there: the pieces, whole").add_argument("folder", type=Path)
    s = verbs.add_parser("split", help="there: weights in files small enough to come back")
    s.add_argument("weights", type=Path)
    s.add_argument("out", type=Path)
    j = verbs.add_parser("join", help="here: the weights that came back, whole")
    j.add_argument("files", type=Path)
    j.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.verb == "pack":
        pieces = pack(args.base, args.data, args.out, args.piece_bytes)
        print(json.dumps({"pieces": [str(p) for p in pieces],
                          "bytes": sum(p.stat().st_size for p in pieces)}))
    elif args.verb == "unpack":
        unpack(args.folder)
    elif args.verb == "split":
        print(json.dumps([str(p) for p in split(args.weights, args.out)]))
    else:
        print(join(args.files, args.out))


if __name__ == "__main__":
    main()
