"""Chunk reads of a Milvus index: counting, reading and searching the chunks of the generation
that ``MilvusStore`` reads, with every deleted document's chunks left out (see
``qa.store.milvus.store``)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from qa.errors import StoreError
from qa.store.milvus.client import Milvus
from qa.store.milvus.expressions import both, filter_expression, strings
from qa.text import tokenize
from qa.types import Chunk, Filter

PAGE_ROWS = 1_000  # rows a query returns at a time (Milvus caps one query at 16,384)


class ChunkQueries:
    """The chunk half of ``MilvusStore``: what ``DocumentStore`` asks of chunks, read at the
    store's generation (``_generation``) without the chunks of the documents deleted by then
    (``_dead``, their ``doc_id:gen`` keys)."""

    _db: Milvus
    _chunks: str  # the collection's name
    _manifest: dict[str, Any]
    _generation: int
    _dead: list[str]
    _count: int | None  # chunks visible at that generation, once counted
    _level: Callable[[], str]
    dimension: int

    def _visible_chunks(self) -> str:
        dead = f"doc_key not in {strings(self._dead)}" if self._dead else ""
        return both(f"gen <= {self._generation}", dead)

    @property
    def keyword_search_available(self) -> bool:
        """False on a Milvus before 2.5, which has no BM25 function."""
        return bool(self._manifest["keyword_search"])

    def __len__(self) -> int:
        """The number of chunks (and vectors) in the committed generation."""
        if self._count is None:
            rows = self._db.query(self._chunks, filter=self._visible_chunks(),
                                  output_fields=["count(*)"], consistency_level=self._level())
            self._count = int(rows[0]["count(*)"])
        return self._count

    def _chunk_rows(self, ids: Sequence[int], fields: list[str]) -> dict[int, dict]:
        found = {}
        for start in range(0, len(ids), PAGE_ROWS):
            page = ids[start:start + PAGE_ROWS]
            rows = self._db.query(
                self._chunks, filter=both(f"id in [{', '.join(str(int(i)) for i in page)}]",
                                           self._visible_chunks()),
                output_fields=["id", *fields], limit=len(page),
                consistency_level=self._level())
            found.update((row["id"], row) for row in rows)
        return found

    def chunks_by_ids(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, in the given order."""
        found = self._chunk_rows(ids, ["doc_id", "start", "end", "text"])
        missing = [i for i in ids if i not in found]
        if missing:
            raise StoreError(f"Chunks {missing[:5]} are not in the index.")
        return [Chunk(found[i]["doc_id"], found[i]["start"], found[i]["end"], found[i]["text"])
                for i in ids]

    def published_by_chunk(self, ids: Sequence[int]) -> dict[int, str]:
        """The publication date ("" when undated) of each chunk's article, for recency."""
        return {i: row["published"] for i, row in self._chunk_rows(ids, ["published"]).items()}

    def search(self, vector: np.ndarray, k: int,
               filter: Filter | None = None) -> list[tuple[int, float]]:
        """The ``k`` chunks nearest to ``vector`` (cosine similarity), best first."""
        query = self._query(vector)
        if k <= 0:
            return []
        return self._search([query.tolist()], "vector", "IP", k, filter)

    def similarities(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """The cosine similarity of ``vector`` to each of the chunks ``ids``: their stored
        vectors, read by id."""
        query = self._query(vector)
        rows = self._chunk_rows(ids, ["vector"])
        return {i: float(np.dot(np.asarray(rows[i]["vector"], dtype=np.float32), query))
                for i in ids if i in rows}

    def _query(self, vector: np.ndarray) -> np.ndarray:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dimension:
            raise StoreError(f"Query vector has dimension {query.shape[0]}; "
                             f"the index has {self.dimension}.")
        return query

    def keyword_search(self, query: str, k: int,
                       filter: Filter | None = None) -> list[tuple[int, float]]:
        """The ``k`` chunks that best match ``query``'s words (Milvus's BM25), best first;
        chunks sharing no word with it are left out. Empty on a Milvus without BM25."""
        if k <= 0 or not self.keyword_search_available or not tokenize(query):
            return []
        # milvus-lite reports BM25 scores negated; a server reports them as they are.
        return [(i, abs(score)) for i, score in self._search([query], "sparse", "BM25", k,
                                                             filter) if score]

    def _search(self, data: list, field: str, metric: str, k: int,
                filter: Filter | None) -> list[tuple[int, float]]:
        hits = self._db.search(self._chunks, data=data, anns_field=field, limit=k,
                               filter=both(self._visible_chunks(), filter_expression(filter)),
                               output_fields=["id"], search_params={"metric_type": metric},
                               consistency_level=self._level())
        return [(int(hit["id"]), float(hit["distance"])) for hit in hits[0]]
