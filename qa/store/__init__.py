"""Where the index lives: ``open_store`` picks the backend for a location.

- ``base``: the ``DocumentStore`` protocol the pipeline uses, ``OneWriter`` (the single-writer
  life cycle both backends share), the records they list (``DocumentInfo``, ``Feed``).
- ``local/``: an index directory (SQLite + FAISS), the default.
- ``milvus/``: an index in Milvus (``milvus://``); pymilvus loads only for one.
- ``manifest``: what built an index (embedder, settings), checked on every open.
- ``dedup``: near-duplicate detection (MinHash), shared by both backends.

Backends import ``base`` and never this module, which imports the backend a location needs
inside ``open_store``: importing ``qa.store`` loads neither FAISS nor pymilvus.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from qa.store.base import MILVUS_SCHEME, DocumentStore

if TYPE_CHECKING:
    from qa.types import IndexConfig


def open_store(location: str | Path, *, embedder_name: str, dimension: int | Callable[[], int],
               create: bool = True, wait_for_writer: bool = False,
               config: IndexConfig | None = None) -> DocumentStore:
    """The store at ``location``: a ``milvus://`` URI, else an index directory. ``config`` is
    recorded in an index this creates."""
    if str(location).startswith(MILVUS_SCHEME):
        from qa.store.milvus.store import MilvusStore  # pymilvus loads only for a Milvus index

        return MilvusStore.open(str(location), embedder_name=embedder_name, dimension=dimension,
                                create=create, wait_for_writer=wait_for_writer, config=config)
    from qa.store.local.store import Store

    return Store.open(location, embedder_name=embedder_name, dimension=dimension,
                      create=create, wait_for_writer=wait_for_writer, config=config)
