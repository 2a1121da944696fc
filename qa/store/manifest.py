"""The index manifest: what built an index, recorded when it is created and checked whenever
it is opened, so that an index is never searched with vectors or chunks of another kind.

``manifest.json`` in an index directory holds::

    format, format_version   "newsqa-index" and the layout version this newsqa reads
    embedder, dimension      the embedding model and its vector length (index-defining)
    index_type               the vector index in use (the store updates it as it grows)
    config                   the ``IndexConfig`` it was created with (``IndexConfig.to_dict``);
                             absent in indexes made before it existed, which get the defaults
    newsqa_version, created  and the store's own fields, such as faiss_version: for information

It is written last when an index is created (it marks a complete index), and atomically.
"""
from __future__ import annotations

import contextlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from qa.errors import NewsQAError, StoreError, clip
from qa.types import IndexConfig

FORMAT = "newsqa-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED = frozenset({"format", "format_version", "embedder", "dimension", "index_type"})
# Wider than any text embedding model's vectors (the widest are 4,096 to 8,192): a larger
# dimension in a manifest is damage, and would have FAISS or Milvus allocate for it.
MAX_DIMENSION = 65_536
# How an index-defining setting reads in an error: "600-character chunks"
_SETTING_WORDS = {
    "max_chars": "{}-character chunks",
    "overlap_sentences": "{} sentence(s) of overlap between chunks",
}


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file to write ``path`` through, so that a crash leaves either the old file or the new
    one: it is written aside, synced, and renamed over ``path`` when the block ends without an
    error (the part written aside is removed when it fails). Writing through it streams: a
    FAISS index can be written without a second copy of it in memory."""
    temp = path.with_name(f".{path.name}.tmp")
    try:
        with open(temp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    os.replace(temp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one."""
    with atomic_file(path) as handle:
        handle.write(data)


def newsqa_version() -> str:
    """The installed newsqa's version, "unknown" in a source tree that was never installed."""
    try:
        return metadata.version("newsqa")
    except metadata.PackageNotFoundError:
        return "unknown"


def new_manifest(embedder_name: str, dimension: int, config: IndexConfig,
                 **fields: Any) -> dict[str, Any]:
    """The manifest of a new index; ``fields`` are the store's own (``index_type`` among them,
    library versions, ``created``)."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "embedder": embedder_name,
            "dimension": dimension, **fields, "config": config.to_dict(),
            "newsqa_version": newsqa_version()}


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    atomic_write(directory / MANIFEST,
                 (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of the index in ``directory``, checked (``check_manifest``); a
    ``StoreError`` if the file is unreadable or not JSON."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(f"The index manifest {path} is unreadable or corrupt "
                         f"({error}).") from error
    return check_manifest(manifest, str(directory))


def check_manifest(manifest: object, where: str, name: str = MANIFEST) -> dict[str, Any]:
    """``manifest``, as read from the index at ``where`` (a directory or a URI; ``name`` says
    where the index keeps it); a ``StoreError`` if it is not a newsqa manifest, is of another
    format version, has an embedder or dimension that no index has, or holds a config this
    newsqa cannot read. Checked once here, so that no later use of a field fails on it."""
    if (not isinstance(manifest, dict) or manifest.get("format") != FORMAT
            or not REQUIRED <= manifest.keys()):
        raise StoreError(f"The manifest of the index at {where} is not a newsqa index manifest.")
    version = manifest["format_version"]
    if version != FORMAT_VERSION:
        raise StoreError(f"The index at {where} has format version {clip(repr(version))}; "
                         f"this newsqa reads version {FORMAT_VERSION}.")
    dimension, embedder = manifest["dimension"], manifest["embedder"]
    if (isinstance(dimension, bool) or not isinstance(dimension, int)
            or not 1 <= dimension <= MAX_DIMENSION):
        raise StoreError(f"The index at {where} is corrupt: {name} has dimension "
                         f"{clip(repr(dimension))}, not a whole number from 1 to "
                         f"{MAX_DIMENSION:,}.")
    if not isinstance(embedder, str) or not embedder.strip():
        raise StoreError(f"The index at {where} is corrupt: {name} has embedder "
                         f"{clip(repr(embedder))}, not the name of a model.")
    try:
        config_of(manifest)
    except NewsQAError as error:
        raise StoreError(f"The index at {where} has a config this newsqa cannot read: "
                         f"{error}") from None
    return manifest


def config_of(manifest: dict[str, Any]) -> IndexConfig:
    """The config the index was created with; the defaults for an index made before configs
    were recorded (its chunks were cut with the defaults of the time)."""
    return IndexConfig.from_dict(manifest.get("config", {}))


def check_same_embedder(manifest: dict[str, Any], embedder_name: str, dimension: int) -> None:
    """A ``StoreError`` unless the index was built by ``embedder_name`` (vectors of length
    ``dimension``): vectors of another model are not comparable with its own."""
    if manifest["embedder"] != embedder_name or manifest["dimension"] != dimension:
        raise StoreError(
            f"This index was built with {manifest['embedder']} ({manifest['dimension']}-d); "
            f"you are using {embedder_name} ({dimension}-d). Use the same embedder or build a "
            "new index.")


def check_same_settings(index: IndexConfig, asked: IndexConfig) -> None:
    """A ``StoreError`` naming both values unless ``asked`` has the index-defining settings of
    ``index``, the config the index was built with; the other settings may differ."""
    differing = [name for name in IndexConfig.INDEX_DEFINING
                 if getattr(index, name) != getattr(asked, name)]
    if differing:
        raise StoreError(f"This index was built with {_describe(index, differing)}; you asked "
                         f"for {_describe(asked, differing)}. Use the same settings or build a "
                         "new index.")


def _describe(config: IndexConfig, names: list[str]) -> str:
    return " and ".join(_SETTING_WORDS[name].format(getattr(config, name)) for name in names)


class Described:
    """What a store answers from its manifest, the same on every backend."""

    _manifest: dict[str, Any]

    @property
    def dimension(self) -> int:
        return int(self._manifest["dimension"])

    @property
    def embedder_name(self) -> str:
        return str(self._manifest["embedder"])

    @property
    def config(self) -> IndexConfig:
        """The settings the index was created with (the defaults if it predates them)."""
        return config_of(self._manifest)

    def check_embedder(self, embedder_name: str, dimension: int) -> None:
        """A StoreError unless this index was built by embedder ``embedder_name`` (vectors of
        length ``dimension``): vectors of another model are not comparable with its own."""
        check_same_embedder(self._manifest, embedder_name, dimension)
