"""The keyword index (``qa.store.local.keywords``): SQLite FTS5 beside the chunks, in the store's
transaction.

The vectors are random: only the keyword side is searched here.
"""
from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import zlib
from pathlib import Path

import numpy as np
import pytest

from qa.store.local import keywords
from qa.store.local.database import DATABASE
from qa.store.local.store import Store
from qa.text import tokenize
from qa.types import Chunk, Document, Filter

ARTICLES = [
    dict(title="Harbour bridge to close for repairs", source="Coastal Herald",
         published="2024-03-02",
         text="Engineers will replace corroded cables over six weeks.\n\nFerries will run every "
         "ten minutes while the harbour crossing is shut."),
    dict(title="Orchestra names new conductor", source="Reuters", published="2024-05-17T09:30:00Z",
         text="Amara Lindqvist becomes principal conductor on Friday.\n\nHer first concert in "
         "September pairs Sibelius with Nielsen; the harbour hall sold out."),
    dict(title="Wheat harvest beats forecasts", source="reuters", published="2024-07-30",
         text="Farmers brought in a record wheat harvest.\n\nSilos by the harbour are close to "
         "full, the ministry said."),
    dict(title="Museum reopens after flood", source="Coastal Herald", published="",
         text="The maritime museum reopened on Saturday.\n\nCurators restored the ship models "
         "that the harbour flood had damaged."),
]


def make_doc(text: str, **meta: str) -> Document:
    return Document(id=hashlib.sha256(text.encode()).hexdigest()[:16], text=text, **meta)


def paragraphs(doc: Document) -> list[Chunk]:
    return [Chunk(doc.id, m.start(), m.end(), m.group())
            for m in re.finditer(r"[^\n]+(?:\n(?!\n)[^\n]+)*", doc.text)]


def open_store(path: Path) -> Store:
    return Store.open(path, embedder_name="test/random", dimension=384)


def add(store: Store, doc: Document) -> None:
    """Index ``doc`` by paragraphs, with random unit vectors."""
    chunks = paragraphs(doc)
    vectors = np.random.default_rng(zlib.crc32(doc.id.encode())).standard_normal((len(chunks), 384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.add(doc, chunks, vectors.astype(np.float32))


def found(store: Store, query: str, filter: Filter | None = None) -> list[tuple[str, str]]:
    """(document id, chunk text) of every keyword hit, best first."""
    hits = store.keyword_search(query, 100, filter)
    return [(c.doc_id, c.text) for c in store.chunks_by_ids([i for i, _ in hits])]


def doc_ids(store: Store, query: str, filter: Filter | None = None) -> set[str]:
    return {doc_id for doc_id, _ in found(store, query, filter)}


def check_integrity(store: Store) -> None:
    """FTS5's own check that its index is consistent (a wrong delete would corrupt it)."""
    with sqlite3.connect(store.path / DATABASE) as db:
        db.execute(f"INSERT INTO {keywords.TABLE} ({keywords.TABLE}) VALUES ('integrity-check')")


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return [make_doc(**article) for article in ARTICLES]


@pytest.fixture
def store(tmp_path, docs) -> Store:
    with open_store(tmp_path / "index") as store:
        for doc in docs:
            add(store, doc)
        store.save()
        yield store


# ------------------------------------------------------------------------- incremental changes


def test_adds_and_deletes_are_seen_by_the_next_search_and_persist(tmp_path, docs):
    index = tmp_path / "index"
    orchid = make_doc("Botanists found a zygomorphic orchid in the hills.", title="Rare find")
    with open_store(index) as store:
        for doc in docs:
            add(store, doc)
        assert found(store, "zygomorphic orchid") == []
        add(store, orchid)  # not saved yet: the writer sees its own change
        assert found(store, "zygomorphic orchid") == [(orchid.id, orchid.text)]
        store.save()
        assert store.delete(docs[1].id)
        assert doc_ids(store, "conductor Sibelius") == set()
        store.save()
    check_integrity(store)
    with open_store(index) as store:  # another process reads what was committed
        assert doc_ids(store, "orchid") == {orchid.id}
        assert doc_ids(store, "harbour") == {docs[0].id, docs[2].id, docs[3].id}
        add(store, docs[1])  # re-adding after a delete works
        assert doc_ids(store, "Sibelius") == {docs[1].id}
        store.delete(orchid.id)  # neither change is saved: both are rolled back
    with open_store(index) as store:
        assert doc_ids(store, "orchid") == {orchid.id} and doc_ids(store, "Sibelius") == set()


def test_title_words_find_every_chunk_of_the_article(store, docs):
    museum = {(docs[3].id, c.text) for c in paragraphs(docs[3])}
    assert set(found(store, "museum reopens")) == museum
    # a word in the title and the chunk counts more than in the title alone
    assert found(store, "flood") == [(docs[3].id, c.text) for c in paragraphs(docs[3])[::-1]]


def test_scores_are_positive_and_higher_is_better(tmp_path):
    with open_store(tmp_path / "index") as store:
        many = make_doc("Zebra, zebra and zebra: the zebra census counted zebra herds.")
        once = make_doc("The census also counted one zebra among thousands of antelope and "
                        "buffalo on the plains this year.")
        filler = [make_doc(f"Unrelated story number {i} about trade.") for i in range(5)]
        for doc in (once, many, *filler):
            add(store, doc)
        hits = store.keyword_search("zebra", 10)
        assert [store.chunks_by_ids([i])[0].doc_id for i, _ in hits] == [many.id, once.id]
        assert hits[0][1] > hits[1][1] > 0
        assert len(store.keyword_search("zebra census trade", 1)) == 1  # k is respected


# ------------------------------------------------------------------------- filters


def test_filters_by_source_and_date_and_undated(store, docs):
    harbour, orchestra, wheat, museum = (d.id for d in docs)
    assert doc_ids(store, "harbour") == {harbour, orchestra, wheat, museum}
    assert doc_ids(store, "harbour", Filter()) == {harbour, orchestra, wheat, museum}
    assert doc_ids(store, "harbour", Filter(("Reuters",))) == {orchestra, wheat}  # any case
    assert doc_ids(store, "harbour", Filter(("coastal herald", "nobody"))) == {harbour, museum}
    assert doc_ids(store, "harbour", Filter(date_from="2024-05-17")) == {orchestra, wheat, museum}
    assert doc_ids(store, "harbour", Filter(date_to="2024-05-17")) == {harbour, orchestra, museum}
    assert doc_ids(store, "harbour", Filter(date_from="2024-05", date_to="2024-06")) == {
        orchestra, museum}
    dated = Filter(date_from="2024-05", date_to="2024-06", include_undated=False)
    assert doc_ids(store, "harbour", dated) == {orchestra}
    assert doc_ids(store, "harbour", Filter(include_undated=False)) == {harbour, orchestra, wheat}
    assert doc_ids(store, "harbour", Filter(("Reuters",), date_from="2025")) == set()


# ------------------------------------------------------------------------- the work budget


def budgeted(store: Store, query: str, budget: int) -> list[tuple[str, str]]:
    """(document id, chunk text) of every keyword hit, best first, scoring at most ``budget``
    matches (the fixture's index has 8 chunks: "harbour" is in 5, "flood" in 2, "Sibelius" 1)."""
    with sqlite3.connect(store.path / DATABASE) as db:
        hits = keywords.search(db, query, 100, budget=budget)
    return [(c.doc_id, c.text) for c in store.chunks_by_ids([i for i, _ in hits])]


def test_a_search_scores_the_rarest_words_that_fit_its_budget(store, docs):
    harbour, orchestra, wheat, museum = docs
    assert doc_ids(store, "harbour Sibelius") == {d.id for d in docs}  # the default: all words
    assert budgeted(store, "harbour Sibelius", 8) == found(store, "harbour Sibelius")  # exact
    assert budgeted(store, "harbour Sibelius", 3) == [(orchestra.id, paragraphs(orchestra)[1].text)]
    assert {doc_id for doc_id, _ in budgeted(store, "harbour flood", 3)} == {museum.id}


def test_words_over_the_budget_still_score_the_chunks_the_rarer_words_found(tmp_path):
    inland = make_doc("Zygote research moves to the inland laboratory.")
    coastal = make_doc("Zygote research moves to the harbour laboratory.")
    others = [make_doc(f"Ferry {n} leaves the harbour at dawn.") for n in range(4)]
    with open_store(tmp_path / "index") as store:
        for doc in (inland, coastal, *others):  # the inland story has the lower chunk id
            add(store, doc)
        store.save()
        assert budgeted(store, "zygote harbour", 3) == [(coastal.id, coastal.text),
                                                        (inland.id, inland.text)]


def test_a_mask_keeps_the_ranked_order_and_k_within_the_budget(store, docs):
    with sqlite3.connect(store.path / DATABASE) as db:
        every = keywords.search(db, "harbour flood", 100, budget=3)  # flood's 2 museum chunks
        ranked = keywords.search(db, "harbour", 100)  # 5 chunks, exact (the index is small)
        allowed = np.zeros(db.execute("SELECT max(id) FROM chunks").fetchone()[0] + 1, bool)
        allowed[[i for i, _ in ranked[1::2]]] = True  # the 2nd and 4th best
        assert keywords.search(db, "harbour", 100, allowed) == ranked[1::2]
        assert keywords.search(db, "harbour", 1, allowed) == ranked[1:2]
        allowed[:] = False
        allowed[every[-1][0]] = True
        assert keywords.search(db, "harbour flood", 100, allowed, budget=3) == every[-1:]


def test_words_all_over_the_budget_must_all_be_present_or_keywords_stay_out(store, docs):
    museum = docs[3]
    assert budgeted(store, "harbour museum", 1) == [(museum.id, paragraphs(museum)[1].text)]
    assert budgeted(store, "harbour", 1) == []  # the dense side answers alone
    assert len(budgeted(store, "harbour", 5)) == 5


# ------------------------------------------------------------------------- query text


def test_query_terms_are_each_distinct_word_but_single_letters():
    assert keywords.query_terms('Near NEAR near? "xy*" (title:Harbour)') == [
        "near", "xy", "title", "harbour"]
    assert keywords.query_terms("The U.S. view of 9/11's aftermath") == [
        "view", "9", "11", "aftermath"]
    assert keywords.query_terms("What is it, and who are they?") == []
    assert keywords.query_terms("Is it Plan B or C?") == ["plan"]


@pytest.mark.parametrize("query", [
    '"', '""', "'", "*", "^", "(", ")", "()", "-", "+", ":", "{", "}", "\x00", "\x00harbour",
    'harbour"', '"harbour', "harbour*", "^harbour", "NEAR(harbour museum)", "harbour NEAR museum",
    "harbour AND", "OR harbour", "NOT harbour", "harbour OR", "title:harbour", "{title}: harbour",
    "text : museum", 'harbour" OR "*', "harbour - museum", "museum + (", "harbour\nmuseum\t",
    "café", "ünïcödé", "x" * 400, "harbour " * 50,
])
def test_hostile_query_text_is_searched_as_plain_words(store, query):
    words = " ".join(tokenize(query))
    assert found(store, query) == found(store, words)  # never FTS5 syntax, never an error
    if "harbour" in words:
        assert found(store, query)


@pytest.mark.parametrize("query", ["", "   ", "the of and", "What is it?", "?!…", "\x00\x00"])
def test_a_query_without_a_usable_word_matches_nothing(store, query):
    assert store.keyword_search(query, 10) == []


# ------------------------------------------------------------------------- an older index


def test_an_index_without_the_keyword_table_is_read_without_it_and_upgraded_by_a_writer(
        tmp_path, docs, caplog):
    index = tmp_path / "index"
    with open_store(index) as store:
        for doc in docs[:2]:
            add(store, doc)
        store.save()
    with sqlite3.connect(index / DATABASE) as db:  # as an older newsqa left it
        db.execute(f"DROP TABLE {keywords.TABLE}")
    with open_store(index) as reader, open_store(index) as writer:
        with caplog.at_level(logging.WARNING, logger="qa.store.local.keywords"), reader.snapshot():
            assert found(reader, "harbour") == [] and found(reader, "conductor") == []
        warnings = [r for r in caplog.records if r.name == "qa.store.local.keywords"]
        assert len(warnings) == 1 and "no keyword index" in warnings[0].getMessage()
        add(writer, docs[2])  # the first change builds the table, old chunks included
        assert doc_ids(writer, "harbour") == {docs[0].id, docs[1].id, docs[2].id}
        assert writer.delete(docs[0].id)  # an upgraded chunk is deleted as it was indexed
        writer.save()
        with reader.snapshot():
            assert doc_ids(reader, "harbour") == {docs[1].id, docs[2].id}
    check_integrity(writer)
