"""Near-duplicate detection: the same story arriving twice is reported, not indexed twice.

A wire copy with another dateline or an extra credit line is a near-duplicate; another article on
the same event is not. Similarity is the Jaccard index of word 5-gram sets. Each stored document
keeps a MinHash signature of its 5-grams (``signature``), so that an LSH index finds candidates
without reading every text; each candidate is then checked with the exact Jaccard similarity.
"""
from __future__ import annotations

import functools
import itertools
import re
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from qa.errors import NewsQAError
from qa.types import Document

if TYPE_CHECKING:  # datasketch imports scipy (about a second): only adding documents needs it
    from datasketch import MinHash, MinHashLSH

SHINGLE_WORDS = 5
NUM_PERM = 128
# Explicit: stored signatures must be read back with the scheme that made them.
MINHASH_SCHEME = "affine32"
# The LSH index is built this far below the asked threshold, favouring recall; every candidate is
# then checked with the exact Jaccard similarity, so the looser bands cost no false positives.
LSH_SLACK = 0.2
_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=1024)  # a batch's pending documents are compared with each new one
def shingles(text: str) -> frozenset[str]:
    """Lower-cased word 5-grams: what near-duplicate detection compares."""
    words = _WORD.findall(text.lower())
    if not words:
        return frozenset()
    return frozenset(" ".join(words[i : i + SHINGLE_WORDS])
                     for i in range(max(1, len(words) - SHINGLE_WORDS + 1)))


def minhash(grams: frozenset[str]) -> MinHash:
    """A MinHash signature of a shingle set (fixed seed, so stored signatures stay comparable)."""
    from datasketch import MinHash

    signature = MinHash(num_perm=NUM_PERM, scheme=MINHASH_SCHEME)
    signature.update_batch(gram.encode("utf-8") for gram in grams)
    return signature


def signature(text: str) -> bytes:
    """The MinHash signature of ``text`` as a store keeps it with the document."""
    return minhash(shingles(text)).hashvalues.tobytes()


def _from_bytes(blob: bytes) -> MinHash:
    from datasketch import MinHash

    return MinHash(hashvalues=np.frombuffer(blob, dtype=np.uint32), scheme=MINHASH_SCHEME)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|; 0 for two empty sets."""
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared) if a or b else 0.0


class NearDuplicates:
    """Finds near-duplicates of a document among a store's documents and a pending batch.

    The store supplies its signatures (``(doc_id, signature)`` pairs) and texts by id. The LSH
    index over the signatures is built on first use and kept up to date through ``added`` and
    ``removed``; ``reset`` drops it when another process has changed the store.
    """

    def __init__(self, signatures: Callable[[], Iterable[tuple[str, bytes]]],
                 text: Callable[[str], str]) -> None:
        self._signatures = signatures
        self._text = text
        self._lsh: MinHashLSH | None = None
        self._lsh_threshold: float | None = None

    def find(self, doc: Document, threshold: float = 0.8, *,
             pending: Sequence[Document] = ()) -> str | None:
        """The id of a stored or ``pending`` document whose text is a near-duplicate of ``doc``'s.

        ``pending`` are documents about to be added in the same batch, so that two copies arriving
        together are caught too. A wire copy scores above 0.8, distinct articles far below.
        """
        if not 0.0 < threshold <= 1.0:
            raise NewsQAError(f"The near-duplicate threshold must be in (0, 1], not {threshold}.")
        grams = shingles(doc.text)
        if not grams:
            return None
        stored = ((i, self._text(i)) for i in self._index(threshold).query(minhash(grams)))
        best_id, best = None, threshold
        for other_id, text in itertools.chain(stored, ((d.id, d.text) for d in pending)):
            similarity = jaccard(grams, shingles(text))
            if similarity >= best:
                best_id, best = other_id, similarity
        return best_id

    def added(self, doc_id: str, blob: bytes) -> None:
        """A document was stored with this ``signature``."""
        if self._lsh is not None:
            self._lsh.insert(doc_id, _from_bytes(blob))

    def removed(self, doc_id: str) -> None:
        """A document was deleted from the store."""
        if self._lsh is not None and doc_id in self._lsh:
            self._lsh.remove(doc_id)

    def reset(self) -> None:
        """Forget the LSH index: the store changed in another process; the next ``find`` reads
        the signatures again."""
        self._lsh = None

    def _index(self, threshold: float) -> MinHashLSH:
        from datasketch import MinHashLSH

        lsh_threshold = max(0.1, threshold - LSH_SLACK)
        if self._lsh is None or self._lsh_threshold != lsh_threshold:
            self._lsh = MinHashLSH(threshold=lsh_threshold, num_perm=NUM_PERM,
                                   weights=(0.1, 0.9))
            with self._lsh.insertion_session() as session:
                for doc_id, blob in self._signatures():
                    session.insert(doc_id, _from_bytes(blob))
            self._lsh_threshold = lsh_threshold
        return self._lsh
