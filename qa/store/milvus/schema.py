"""The collections of a Milvus index: their fields, indexes and the keyword analyzer, creating
them with the manifest, and the rows a document becomes (see ``qa.store.milvus.store`` for what
each collection holds)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Sequence

import numpy as np

from qa.store.manifest import new_manifest
from qa.store.milvus.client import Milvus, MilvusLocation, has_bm25
from qa.text import STOPWORDS
from qa.types import Chunk, Document, IndexConfig

TEXT_PART_CHARS = 16_000  # at most 4 bytes a character: within Milvus's 65,535-byte VARCHAR
MAX_TEXT_BYTES = 65_535
# Milvus before 2.6 needs a vector field in every collection: a constant 2-d placeholder.
PLACEHOLDER = [0.0, 0.0]
# The keyword index's analyzer: words, lower-cased, without the stopwords that the local
# index leaves out (``qa.text.tokenize``), so that both backends match the same words.
# (milvus-lite ignores "asciifolding": there "café" and "cafe" stay two words.)
ANALYZER = {"tokenizer": "standard",
            "filter": ["lowercase", "asciifolding",
                       {"type": "stop", "stop_words": sorted(STOPWORDS)}]}

DOCUMENT_FIELDS = ("key", "doc_id", "gen", "part", "text", "title", "source", "url",
                   "published", "date_source", "added", "minhash", "chunks", "dead",
                   "deleted_at", "placeholder")
# ``Document.external_id`` and ``Document.key`` (named ``identity`` here: ``key`` is the row's),
# in the documents of indexes whose manifest says ``document_keys``: an older index's collection
# lacks them, and Milvus (before 2.6, and milvus-lite) cannot add a field to a collection
KEY_FIELDS = ("external_id", "identity")
FEED_FIELDS = ("url", "added", "title", "last_poll", "last_success", "etag", "last_modified",
               "last_error")
# followed questions (``qa.store.milvus.follows``): the fields of a ``<name>_follows`` row but its
# place (``added_order``), and the collections an index made before them lacks
FOLLOW_FIELDS = ("id", "question", "sources", "top_k", "added", "checked", "error")
FOLLOW_KINDS = ("follows", "follow_entries")


def schemas(db: Milvus, dimension: int, bm25: bool) -> dict[str, tuple[Any, Any]]:
    """Each collection's schema and index parameters, by kind."""
    from pymilvus import DataType, Function, FunctionType

    def schema(key: tuple[str, Any, int], *fields: tuple, auto_id: bool = False) -> Any:
        result = db.create_schema(auto_id=auto_id, enable_dynamic_field=False)
        result.add_field(key[0], key[1], is_primary=True,
                         **({"max_length": key[2]} if key[1] == DataType.VARCHAR else {}))
        for name, dtype, *options in fields:
            result.add_field(name, dtype, **(options[0] if options else {}))
        return result

    def text(name: str, **extra: Any) -> tuple:
        return name, DataType.VARCHAR, {"max_length": MAX_TEXT_BYTES, **extra}

    def number(name: str) -> tuple:
        return name, DataType.INT64

    placeholder = ("placeholder", DataType.FLOAT_VECTOR, {"dim": len(PLACEHOLDER)})

    def indexes(*specs: tuple[str, str, str]) -> Any:
        params = db.prepare_index_params()
        for field, index_type, metric in specs:
            params.add_index(field_name=field, index_type=index_type, metric_type=metric)
        return params

    small = indexes(("placeholder", "FLAT", "L2"))
    keyword = (("sparse", "SPARSE_INVERTED_INDEX", "BM25"),) if bm25 else ()
    keyword_field = ((text("keywords", enable_analyzer=True, analyzer_params=ANALYZER),)
                     if bm25 else ())
    chunks = schema(("id", DataType.INT64, 0), text("doc_id"), text("doc_key"), number("gen"),
                    number("start"), number("end"),
                    text("text"), *keyword_field, text("source_lc"), text("published"),
                    ("vector", DataType.FLOAT_VECTOR, {"dim": dimension}), auto_id=True)
    if bm25:
        chunks.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        chunks.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                     input_field_names=["keywords"],
                                     output_field_names=["sparse"]))
    return {
        "meta": (schema(("key", DataType.VARCHAR, 64), number("value"), text("text"),
                        placeholder), small),
        "documents": (schema(("key", DataType.VARCHAR, 256), text("doc_id"), number("gen"),
                             number("part"), text("text"), text("title"), text("source"),
                             text("url"), text("published"), text("date_source"),
                             number("added"), text("minhash"), number("chunks"),
                             number("dead"), number("deleted_at"), placeholder,
                             *(text(name) for name in KEY_FIELDS)), small),
        "chunks": (chunks, indexes(("vector", "AUTOINDEX", "IP"), *keyword)),
        "feeds": (schema(("url", DataType.VARCHAR, MAX_TEXT_BYTES), number("added_order"),
                         *(text(f) for f in FEED_FIELDS[1:]), placeholder), small),
        "feed_items": (schema(("key", DataType.VARCHAR, MAX_TEXT_BYTES), text("feed_url"),
                              text("item"), placeholder), small),
        "follows": (schema(("id", DataType.VARCHAR, 64), number("added_order"), text("question"),
                           text("sources"), number("top_k"), text("added"), text("checked"),
                           text("error"), placeholder), small),
        "follow_entries": (schema(("key", DataType.VARCHAR, 128), text("follow_id"),
                                  number("seq"), text("entry"), placeholder), small),
    }


def create_collections(db: Milvus, where: MilvusLocation, embedder_name: str, dimension: int,
            config: IndexConfig) -> dict:
    """Create the collections, then the manifest (it marks a complete index). A second
    process creating the same index at once finds the collections there and goes on."""
    bm25 = has_bm25(db.get_server_version())
    for kind, (schema, indexes) in schemas(db, dimension, bm25).items():
        name = where.collection(kind)
        if not db.has_collection(name):
            db.create_collection(name, schema=schema, consistency_level="Strong")
            # sync=False: waiting here asks for a timestamp that milvus-lite lacks, and its
            # server logs a traceback; an empty collection's index is ready at once anyway
            db.create_index(name, indexes, sync=False)
    manifest = new_manifest(
        embedder_name, dimension, config, index_type="Milvus AUTOINDEX (inner product)",
        keyword_search=bm25, document_keys=True, milvus_version=db.get_server_version(),
        pymilvus_version=metadata.version("pymilvus"),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    db.upsert(where.collection("meta"), [{"key": "manifest", "value": 0,
                                          "text": json.dumps(manifest),
                                          "placeholder": PLACEHOLDER}])
    return manifest


@dataclass
class Pending:
    """A document added since the last save, with what ``save()`` writes for it."""

    doc: Document
    chunks: Sequence[Chunk]
    vectors: np.ndarray
    signature: bytes  # its MinHash (``qa.store.dedup.signature``)
    added: int  # time.time_ns() of the add: documents() lists in this order


def chunk_rows_of(pending: Pending, generation: int, keywords: bool) -> list[dict]:
    """The ``<name>_chunks`` rows that ``pending`` adds in ``generation``, with the text that
    Milvus computes BM25 from where the index has ``keywords``."""
    doc = pending.doc
    doc_key = f"{doc.id}:{generation}"
    return [{"doc_id": doc.id, "doc_key": doc_key, "gen": generation,
             "start": c.start, "end": c.end, "text": c.text,
             "source_lc": doc.source.lower(), "published": doc.published,
             "vector": v.tolist(),
             **({"keywords": f"{doc.title}\n{c.text}"} if keywords else {})}
            for c, v in zip(pending.chunks, pending.vectors)]


def document_rows_of(pending: Pending, generation: int, keyed: bool) -> list[dict]:
    """The ``<name>_documents`` rows of ``pending`` in ``generation``: its text in parts of at
    most ``TEXT_PART_CHARS`` characters, the metadata and MinHash with each (and ``KEY_FIELDS``
    where the index is ``keyed``)."""
    doc = pending.doc
    doc_key = f"{doc.id}:{generation}"
    keys = {"external_id": doc.external_id, "identity": doc.key} if keyed else {}
    return [{
        "key": f"{doc_key}:{part}", "doc_id": doc.id, "gen": generation,
        "part": part, "text": doc.text[start:start + TEXT_PART_CHARS],
        "title": doc.title, "source": doc.source, "url": doc.url,
        "published": doc.published, "date_source": doc.date_source,
        "added": pending.added, "minhash": pending.signature.hex() if part == 0 else "",
        "chunks": len(pending.chunks), "dead": 0, "deleted_at": 0,
        "placeholder": PLACEHOLDER, **keys}
        for part, start in enumerate(range(0, max(len(doc.text), 1), TEXT_PART_CHARS))]
