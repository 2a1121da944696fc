"""Near-duplicate detection (``qa.store.dedup``) through the store that keeps each document's
signature.

The vectors are random: near-duplicates are found from the text alone.
"""
from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np
import pytest

from qa.errors import NewsQAError
from qa.store.dedup import jaccard, shingles
from qa.store.local.store import Store
from qa.types import Chunk, Document

SEED = Path(__file__).resolve().parents[2] / "seeds" / "000_2ffe86633dc2dc73.txt"
OTHERS = [  # unrelated stories already in the index
    "The harbour bridge will close for six weeks from April so that engineers can replace "
    "corroded cables. The city council said ferries would run every ten minutes.",
    "The national orchestra named Amara Lindqvist as its principal conductor on Friday, the "
    "first woman to hold the post. She will lead her first concert in September.",
]


def make_doc(text: str, **meta: str) -> Document:
    return Document(id=hashlib.sha256(text.encode()).hexdigest()[:16], text=text, **meta)


def open_store(path: Path) -> Store:
    return Store.open(path, embedder_name="test/random", dimension=384)


def add(store: Store, doc: Document) -> None:
    """Index ``doc`` as one chunk with a random unit vector."""
    vector = np.random.default_rng(zlib.crc32(doc.id.encode())).standard_normal((1, 384))
    store.add(doc, [Chunk(doc.id, 0, len(doc.text), doc.text)],
              (vector / np.linalg.norm(vector)).astype(np.float32))


@pytest.fixture(scope="module")
def others() -> list[Document]:
    return [make_doc(text, source="Reuters") for text in OTHERS]


@pytest.fixture(scope="module")
def wire_story() -> tuple[Document, Document, Document]:
    """A real article, a wire copy of it (new first line, added credit line), and a rewrite of
    the story."""
    original = make_doc(SEED.read_text(encoding="utf-8"), title="Russia and Ukraine swap POWs",
                        source="Reuters")
    rest = original.text.split("\n", 1)[1]
    wire_copy = make_doc(
        "KYIV/MOSCOW, June 9 (AP) — Moscow and Kyiv swapped prisoners of war on Monday, including "
        "POWs younger than 25 and badly wounded soldiers, in what could be the war's largest "
        "exchange.\n"
        + rest
        + "\n\n(Reporting by the Kyiv newsroom; Editing by the world desk)",
        title="Moscow and Kyiv begin prisoner exchange",
        source="AP",
    )
    rewrite = make_doc(
        "Ukraine and Russia began a large prisoner exchange on Monday. Young soldiers and badly "
        "wounded men were among the first to go home, after talks in Istanbul produced a deal to "
        "swap at least 1,200 prisoners each and to return the bodies of the dead. Neither side "
        "said how many men were freed in the first stage.",
        source="Coastal Herald",
    )
    return original, wire_copy, rewrite


def test_a_wire_copy_is_far_closer_than_a_rewrite_of_the_story(wire_story):
    original, wire_copy, rewrite = wire_story
    grams = shingles(original.text)
    assert jaccard(grams, shingles(wire_copy.text)) > 0.8
    assert jaccard(grams, shingles(rewrite.text)) < 0.2
    assert jaccard(grams, grams) == 1.0 and jaccard(frozenset(), frozenset()) == 0.0


def test_near_duplicate_detects_a_wire_copy_but_not_another_article(tmp_path, others, wire_story):
    original, wire_copy, rewrite = wire_story
    with open_store(tmp_path / "index") as store:
        for doc in others:
            add(store, doc)
        assert store.find_near_duplicate(wire_copy) is None  # builds the LSH index
        add(store, original)  # ... which follows adds and deletes
        assert store.find_near_duplicate(wire_copy) == original.id
        assert store.find_near_duplicate(rewrite) is None
        assert store.find_near_duplicate(others[0]) == others[0].id  # an exact copy is one too
        store.delete(original.id)
        assert store.find_near_duplicate(wire_copy) is None


def test_near_duplicate_among_documents_of_the_same_batch(tmp_path, others, wire_story):
    original, wire_copy, rewrite = wire_story
    with open_store(tmp_path / "index") as store:
        for doc in others:
            add(store, doc)
        assert store.find_near_duplicate(wire_copy, pending=[rewrite, original]) == original.id
        assert store.find_near_duplicate(wire_copy, pending=[rewrite]) is None
        with pytest.raises(NewsQAError, match="threshold"):
            store.find_near_duplicate(wire_copy, threshold=0)


def test_stored_signatures_are_read_back_and_other_writers_are_seen(tmp_path, wire_story):
    original, wire_copy, _ = wire_story
    index = tmp_path / "index"
    with open_store(index) as reader:
        assert reader.find_near_duplicate(wire_copy) is None  # its LSH index, still empty
        with open_store(index) as writer:
            add(writer, original)
            writer.save()
        with reader.snapshot():  # caught up with the writer: the LSH index is read again
            assert reader.find_near_duplicate(wire_copy) == original.id
    with open_store(index) as store:  # another process reads the stored signatures
        assert store.find_near_duplicate(wire_copy) == original.id
