"""The storage contract: the same assertions on every ``DocumentStore`` backend (``qa.store.base``).

Each test runs on the local index (a directory: SQLite and FAISS) and on milvus-lite (a Milvus
engine in this process, ``milvus:///…/index.db``), with real MiniLM vectors. What only one
backend does (FAISS files and crashes, the Milvus server) is tested in
``tests/store/test_local_store.py`` and ``tests/store/test_milvus_store.py``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from qa.chunk import Chunker
from qa.embed import Embedder
from qa.errors import NewsQAError, StoreError
from qa.pipeline import NewsQA
from qa.store import open_store
from qa.store.base import DocumentStore, Feed
from qa.types import Citation, Document, Filter, FollowEntry, Followed, IndexConfig

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("faiss", pytest.param("milvus-lite", marks=pytest.mark.skipif(
    importlib.util.find_spec("milvus_lite") is None,
    reason="the Milvus backend needs: .venv/bin/pip install -e '.[milvus]'")))

ARTICLES = [
    dict(title="Glacier retreat speeds up in the Alps", source="BBC", published="2024-05-03",
         text="Swiss glaciers lost four percent of their volume last year, scientists said on "
         "Tuesday, the second-worst melt since records began.\n\nThe monitoring network said "
         "a dry winter and a hot August left glaciers bare of snow by early summer. Officials "
         "said several mountain huts would move because the ice beneath them had thinned."),
    dict(title="Central bank holds interest rates", source="Reuters", published="2024-05-28",
         text="The central bank kept its main interest rate at 4.5 percent on Wednesday, "
         "saying inflation was still too high to allow a cut.\n\nThe governor said officials "
         "expected prices to rise more slowly after the summer, and that markets should not "
         "expect a cut before September."),
    dict(title="Lighthouse keeper retires after forty years", source="reuters",
         published="2023-11-14T08:00:00Z",
         text="The last keeper of the Skerry Point lighthouse retired on Monday after forty "
         "years of tending the lamp.\n\nThe harbour authority said the light would now be run "
         "automatically, and officials said the keeper's cottage would become a museum."),
    dict(title="Village bakery wins national bread prize", source="Local Gazette",
         published="",
         text="A village bakery in Hartwell won the national sourdough prize on Saturday, "
         "beating three hundred entries.\n\nThe baker said officials from the guild tasted "
         "every loaf twice, and that her starter was fifty years old."),
]
# Each article's one answer to a question only it answers, for ranking.
QUESTIONS = [
    ("How much of their volume did Swiss glaciers lose?", 0),
    ("At what level did the central bank keep its interest rate?", 1),
    ("How long did the lighthouse keeper work?", 2),
    ("Which prize did the bakery win?", 3),
]


def make_doc(article: dict) -> Document:
    return Document(id=hashlib.sha256(article["text"].encode()).hexdigest()[:16], **article)


DOCS = [make_doc(article) for article in ARTICLES]


@pytest.fixture(scope="module")
def chunked(embedder: Embedder) -> dict[str, tuple[list, np.ndarray]]:
    """Chunks (small, so that each article has several) and real vectors, computed once."""
    chunker = Chunker(max_chars=160)
    result = {}
    for doc in DOCS:
        chunks = chunker.split(doc)
        result[doc.id] = (chunks, embedder.encode([c.text for c in chunks]))
    return result


def location(backend: str, folder: Path) -> str:
    return str(folder / "index") if backend == "faiss" else f"milvus://{folder}/index.db"


def reopen(where: str, embedder: Embedder, **kwargs) -> DocumentStore:
    return open_store(where, embedder_name=embedder.name, dimension=embedder.dimension, **kwargs)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def index(backend, tmp_path_factory, embedder, chunked) -> str:
    """An index of ``DOCS``, saved; tests only read it."""
    where = location(backend, tmp_path_factory.mktemp(f"contract-{backend}"))
    store = reopen(where, embedder)
    for doc in DOCS:
        store.add(doc, *chunked[doc.id])
    store.save()
    store.close()
    return where


@pytest.fixture(scope="module")
def store(index, embedder):
    opened = reopen(index, embedder)
    yield opened
    opened.close()


@pytest.fixture
def scratch(backend, tmp_path, embedder):
    """An empty index of its own, for a test that changes one."""
    where = location(backend, tmp_path)
    opened = reopen(where, embedder)
    yield where, opened
    opened.close()


def all_hits(store: DocumentStore, embedder: Embedder, filter: Filter | None = None,
             query: str = "officials said") -> tuple[list, list]:
    """Every chunk the filter keeps, by vector and by keyword search (a word in every article)."""
    with store.snapshot():
        dense = store.search(embedder.encode_query(query), 1000, filter)
        sparse = store.keyword_search(query, 1000, filter)
    return dense, sparse


def doc_ids(store: DocumentStore, hits: list) -> set[str]:
    return {chunk.doc_id for chunk in store.chunks_by_ids([i for i, _ in hits])}


# ------------------------------------------------------------------------- documents


def test_documents_round_trip_with_their_metadata_in_the_order_added(store, chunked) -> None:
    with store.snapshot():
        listed = store.documents()
        assert [d.id for d in listed] == [d.id for d in DOCS]
        assert [d.chunks for d in listed] == [len(chunked[d.id][0]) for d in DOCS]
        assert all(store.has(d.id) for d in DOCS) and not store.has("0" * 16)
        assert [store.get(d.id) for d in DOCS] == DOCS
        assert len(store) == sum(len(chunks) for chunks, _ in chunked.values())
        with pytest.raises(StoreError, match="no document"):
            store.get("0" * 16)


def test_chunks_come_back_in_the_order_asked_as_windows_of_their_document(store, embedder):
    with store.snapshot():
        ids = [i for i, _ in store.search(embedder.encode_query("glaciers"), 1000)]
        assert len(ids) == len(store) and len(set(ids)) == len(ids)
        chunks = store.chunks_by_ids(ids)
        assert store.chunks_by_ids(ids[::-1]) == chunks[::-1]
        assert store.chunks_by_ids(ids[2:3]) == chunks[2:3]
        assert len(set(chunks)) == len(chunks)
        for chunk in chunks:
            assert store.get(chunk.doc_id).text[chunk.start:chunk.end] == chunk.text
        with pytest.raises(StoreError, match="not in the index"):
            store.chunks_by_ids([ids[0], max(ids) + 10**9])


def test_an_index_keeps_the_config_it_was_created_with(backend, tmp_path, embedder) -> None:
    where = location(backend, tmp_path)
    reopen(where, embedder, config=IndexConfig(max_chars=300, overlap_sentences=0)).close()
    again = reopen(where, embedder, create=False, config=IndexConfig())  # for a new index only
    try:
        assert (again.config.max_chars, again.config.overlap_sentences) == (300, 0)
    finally:
        again.close()


def test_the_index_was_built_by_its_embedder(store, embedder) -> None:
    store.check_embedder(embedder.name, embedder.dimension)
    with pytest.raises(StoreError, match="built with"):
        store.check_embedder("another-model", embedder.dimension)


# ------------------------------------------------------------------------- search


@pytest.mark.parametrize("question, answering", QUESTIONS)
def test_search_ranks_by_cosine_similarity_and_finds_the_answering_article(
        store, embedder, chunked, question: str, answering: int) -> None:
    query = embedder.encode_query(question)
    with store.snapshot():
        hits = store.search(query, 3)
        chunks = store.chunks_by_ids([i for i, _ in hits])
    assert chunks[0].doc_id == DOCS[answering].id
    # the scores are the exact cosine similarities, best first, as numpy computes them
    vectors = {(c.doc_id, c.start): v for doc in DOCS
               for c, v in zip(*chunked[doc.id])}
    exact = sorted((float(v @ query) for v in vectors.values()), reverse=True)[:3]
    assert [score for _, score in hits] == pytest.approx(exact, abs=1e-4)
    assert [float(vectors[(c.doc_id, c.start)] @ query) for c in chunks] == \
        pytest.approx([score for _, score in hits], abs=1e-4)


def test_similarities_score_given_chunks_as_search_does(store, embedder) -> None:
    query = embedder.encode_query("How many prisoners came home?")
    with store.snapshot():
        everything = dict(store.search(query, 1000))
        last_three = list(everything)[-3:][::-1]  # any order, including those search ranks last
        assert store.similarities(query, last_three) == pytest.approx(
            {i: everything[i] for i in last_three}, abs=1e-4)
        assert store.similarities(query, []) == {}


def test_keyword_search_matches_words_of_the_text_and_the_title(store) -> None:
    with store.snapshot():
        sourdough = store.keyword_search("sourdough", 10)
        assert doc_ids(store, sourdough) == {DOCS[3].id}
        assert all(score > 0 for _, score in sourdough)
        # "retires" is only in the lighthouse article's title: every one of its chunks carries it
        titled = store.keyword_search("retires", 10)
        assert doc_ids(store, titled) == {DOCS[2].id} and len(titled) > 1
        mixed = store.keyword_search("glaciers volume interest", 10)
        scores = [score for _, score in mixed]
        assert scores == sorted(scores, reverse=True) and len(doc_ids(store, mixed)) == 2
        assert store.keyword_search("the of and", 10) == []  # stopwords only
        assert store.keyword_search("zeppelin", 10) == []
        assert len(store.keyword_search("officials", 2)) == 2


def kept(doc: Document, filter: Filter) -> bool:
    """What ``Filter`` promises, written out for the test."""
    if filter.sources and doc.source.lower() not in {s.lower() for s in filter.sources}:
        return False
    if not doc.published:
        return filter.include_undated
    if filter.date_from is not None and doc.published[:len(filter.date_from)] < filter.date_from:
        return False
    return filter.date_to is None or doc.published[:len(filter.date_to)] <= filter.date_to


FILTERS = [
    Filter(),
    Filter(sources=("reuters",)),
    Filter(sources=("BBC", "Local Gazette")),
    Filter(sources=("nobody",)),
    Filter(date_from="2024"),
    Filter(date_from="2024-05-28"),
    Filter(date_to="2024-05"),
    Filter(date_to="2023"),
    Filter(date_from="2024-05", date_to="2024-05-03"),
    Filter(include_undated=False),
    Filter(date_from="2023-11-14T08", include_undated=False),
    Filter(sources=("REUTERS", "local gazette"), date_to="2024-05-27"),
    Filter(sources=("Local Gazette",), include_undated=False),
    Filter(sources=("bbc", "Reuters"), date_from="2024", date_to="2024-12",
           include_undated=False),
]


@pytest.mark.parametrize("filter", FILTERS, ids=str)
def test_filters_keep_the_same_articles_in_dense_and_keyword_search(
        store, embedder, filter: Filter) -> None:
    dense, sparse = all_hits(store, embedder, filter)
    expected = {doc.id for doc in DOCS if kept(doc, filter)}
    assert doc_ids(store, dense) == expected
    assert doc_ids(store, sparse) == expected


def test_published_dates_by_chunk(store, embedder) -> None:
    with store.snapshot():
        ids = [i for i, _ in store.search(embedder.encode_query("news"), 1000)]
        published = store.published_by_chunk(ids)
        chunks = store.chunks_by_ids(ids)
    by_id = {doc.id: doc.published for doc in DOCS}
    assert published == {i: by_id[c.doc_id] for i, c in zip(ids, chunks)}
    assert "" in published.values()


def test_near_duplicates_are_found_among_indexed_and_pending_documents(store) -> None:
    original = DOCS[1]
    copy = dataclasses.replace(original, id="copy", text="LONDON (Reuters) - " + original.text)
    with store.snapshot():
        assert store.find_near_duplicate(copy) == original.id
        assert store.find_near_duplicate(dataclasses.replace(DOCS[3], id="other",
                                                             text="A different story.")) is None
        fresh = Document("fresh", "A brand new article about a regatta on the lake, with "
                         "sailing boats from nine countries racing for the cup.")
        twin = dataclasses.replace(fresh, id="twin", text=fresh.text + " Photo: pool.")
        assert store.find_near_duplicate(twin, pending=[fresh]) == "fresh"


# ------------------------------------------------------------------------- changes


def test_adds_and_deletes_are_seen_by_another_instance_after_it_snapshots(
        scratch, embedder, chunked) -> None:
    where, writer = scratch
    reader = reopen(where, embedder, create=False)
    try:
        with reader.snapshot():
            assert len(reader) == 0 and reader.documents() == []
            assert reader.search(embedder.encode_query("glaciers"), 5) == []
            before = reader.version
        for doc in DOCS[:2]:
            writer.add(doc, *chunked[doc.id])
        assert writer.has(DOCS[0].id)  # a writer sees its own changes before saving
        writer.save()
        assert writer.version > before
        with reader.snapshot():
            assert reader.version == writer.version
            assert [d.id for d in reader.documents()] == [d.id for d in DOCS[:2]]
            hits = reader.search(embedder.encode_query("Swiss glaciers melt"), 1)
            assert reader.chunks_by_ids([hits[0][0]])[0].doc_id == DOCS[0].id
            assert doc_ids(reader, reader.keyword_search("glaciers", 10)) == {DOCS[0].id}
        assert writer.delete(DOCS[0].id) and not writer.delete(DOCS[0].id)
        assert not writer.delete("0" * 16)
        writer.save()
        with reader.snapshot():
            assert not reader.has(DOCS[0].id)
            assert len(reader) == len(chunked[DOCS[1].id][0])
            assert doc_ids(reader, reader.search(embedder.encode_query("glaciers"), 100)) == \
                {DOCS[1].id}
            assert reader.keyword_search("glaciers", 10) == []
            with pytest.raises(StoreError):
                reader.get(DOCS[0].id)
        # deleted and added again: a new document, found again
        writer.add(DOCS[0], *chunked[DOCS[0].id])
        writer.save()
        with reader.snapshot():
            assert doc_ids(reader, reader.keyword_search("glaciers", 10)) == {DOCS[0].id}
            assert [d.id for d in reader.documents()] == [DOCS[1].id, DOCS[0].id]
    finally:
        reader.close()


def test_a_snapshot_reads_one_generation_while_another_instance_commits(
        scratch, embedder, chunked) -> None:
    where, writer = scratch
    writer.add(DOCS[0], *chunked[DOCS[0].id])
    writer.save()
    reader = reopen(where, embedder, create=False)
    try:
        with reader.snapshot():
            version = reader.version
            writer.delete(DOCS[0].id)
            writer.add(DOCS[1], *chunked[DOCS[1].id])
            writer.save()
            hits = reader.search(embedder.encode_query("glaciers"), 100)
            chunks = reader.chunks_by_ids([i for i, _ in hits])  # never a dangling chunk id
            assert {c.doc_id for c in chunks} == {DOCS[0].id}
            assert reader.get(DOCS[0].id) == DOCS[0] and reader.version == version
        with reader.snapshot():
            assert reader.version == writer.version != version
            assert not reader.has(DOCS[0].id) and reader.has(DOCS[1].id)
    finally:
        reader.close()


def test_unsaved_changes_are_discarded_on_close(backend, tmp_path, embedder, chunked) -> None:
    where = location(backend, tmp_path)
    writer = reopen(where, embedder)
    writer.add(DOCS[0], *chunked[DOCS[0].id])
    writer.save()
    version = writer.version
    writer.add(DOCS[1], *chunked[DOCS[1].id])
    writer.delete(DOCS[0].id)
    writer.add_feed("https://example.org/feed.xml")
    writer.close()
    again = reopen(where, embedder)
    try:
        with again.snapshot():
            assert [d.id for d in again.documents()] == [DOCS[0].id]
            assert again.version == version and again.feeds() == []
    finally:
        again.close()


def test_add_refuses_a_document_already_indexed_and_bad_input(scratch, chunked) -> None:
    _, writer = scratch
    chunks, vectors = chunked[DOCS[0].id]
    writer.add(DOCS[0], chunks, vectors)
    with pytest.raises(StoreError, match="already in the index"):
        writer.add(DOCS[0], chunks, vectors)
    with pytest.raises(StoreError, match="vectors"):
        writer.add(DOCS[1], chunked[DOCS[1].id][0], vectors[:1])
    with pytest.raises(StoreError, match="not a window"):
        writer.add(DOCS[1], chunks, vectors)
    writer.save()


def test_a_second_writer_is_refused_naming_the_first(scratch, embedder, chunked) -> None:
    where, writer = scratch
    other = reopen(where, embedder)
    try:
        writer.add(DOCS[0], *chunked[DOCS[0].id])  # the first change makes it the writer
        with pytest.raises(StoreError, match=f"being written by another process "
                                             f"\\(pid {os.getpid()}"):
            other.add(DOCS[1], *chunked[DOCS[1].id])
        writer.save()  # and gives the index back
        other.add(DOCS[1], *chunked[DOCS[1].id])
        other.save()
        with writer.snapshot():
            assert [d.id for d in writer.documents()] == [DOCS[0].id, DOCS[1].id]
    finally:
        other.close()


def test_feed_state_is_kept_in_the_order_subscribed(scratch, embedder) -> None:
    where, writer = scratch
    first, second = "https://example.org/a.xml", "https://example.org/b.xml"
    assert writer.add_feed(first) and writer.add_feed(second) and not writer.add_feed(first)
    writer.save()
    feed = writer.feeds()[0]
    polled = dataclasses.replace(feed, title="Example", last_poll="2024-05-01T10:00:00+00:00",
                                 last_success="2024-05-01T10:00:00+00:00", etag='"v1"')
    assert writer.record_poll(polled, ["guid-1", "https://example.org/1"])
    writer.save()
    assert not writer.record_poll(Feed("https://example.org/gone.xml", added=""), ["x"])
    writer.save()
    reader = reopen(where, embedder, create=False)
    try:
        with reader.snapshot():
            feeds = reader.feeds()
            assert [f.url for f in feeds] == [first, second]
            assert feeds[0] == dataclasses.replace(polled, items_seen=2)
            assert reader.feed_items(first) == {"guid-1", "https://example.org/1"}
            assert reader.feed_items(second) == set() and feeds[1].items_seen == 0
        assert writer.remove_feed(first) and not writer.remove_feed(first)
        writer.save()
        with reader.snapshot():
            assert [f.url for f in reader.feeds()] == [second]
            assert reader.feed_items(first) == set()
    finally:
        reader.close()


def test_followed_questions_and_their_history_are_kept_in_the_order_added(scratch,
                                                                         embedder) -> None:
    where, writer = scratch
    cited = Citation("d1", "Floods", "Valdoria Post", "", "2025-06-02", 51, 53, "12")
    first = FollowEntry("2025-06-02T10:00:00+00:00", "12", 0.7, cited)
    second = FollowEntry("2025-06-03T10:00:00+00:00", "19", 0.6,
                         dataclasses.replace(cited, doc_id="d2", quote="19"))
    toll = Followed("f1", "What is the toll?", ("Valdoria Post",), 3, added="2025-06-01")
    mayor = Followed("f2", "Who is the mayor?", added="2025-06-01")
    assert writer.add_follow(toll) and writer.add_follow(mayor) and not writer.add_follow(toll)
    assert writer.record_follow(toll, first)
    writer.save()
    checked = dataclasses.replace(toll, checked="2025-06-03T10:00:00+00:00", error="")
    assert writer.record_follow(checked, second)
    moved = dataclasses.replace(second, citation=dataclasses.replace(cited, doc_id="d3"))
    assert writer.record_follow(checked, moved, replace_latest=True)  # no new entry
    assert not writer.record_follow(dataclasses.replace(toll, id="f9"), first)
    writer.save()
    reader = reopen(where, embedder, create=False)
    try:
        with reader.snapshot():
            assert reader.follows() == [dataclasses.replace(checked, latest=moved, changes=2),
                                        mayor]
            assert reader.follow_history("f1") == [first, moved]
            assert reader.follow_history("f9") == []
        dropped = reopen(where, embedder)
        failed = dataclasses.replace(checked, error="The reader could not be loaded.")
        assert dropped.record_follow(failed) and dropped.remove_follow("f2")
        dropped.close()  # unsaved: nothing of it is kept
        with reader.snapshot():
            assert [f.error for f in reader.follows()] == ["", ""]
        assert writer.remove_follow("f1") and not writer.remove_follow("f1")
        writer.save()
        with reader.snapshot():
            assert reader.follows() == [mayor] and reader.follow_history("f1") == []
    finally:
        reader.close()


def test_an_index_made_before_follows_gets_them_from_its_next_writer(scratch, backend,
                                                                    embedder) -> None:
    where, old = scratch
    if backend == "faiss":  # as newsqa made it before: no follow tables
        with sqlite3.connect(Path(where) / "store.sqlite") as db:
            db.executescript("DROP TABLE follow_entries; DROP TABLE follows;")
    else:  # no follow collections
        for collection in (old._follows, old._follow_entries):
            old._db.drop_collection(collection)
    later = reopen(where, embedder, create=False)
    reader = reopen(where, embedder, create=False)  # opened before the follows were written
    try:
        with later.snapshot():
            assert later.follows() == [] and later.follow_history("f1") == []
        if backend == "faiss":  # reading wrote nothing: the tables come with the first save
            with sqlite3.connect(Path(where) / "store.sqlite") as db:
                assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'follows'"
                                      ).fetchall()
        else:
            assert not any(later._db.has_collection(c)
                           for c in (later._follows, later._follow_entries))
        assert later.add_follow(Followed("f1", "What is the toll?", added="2025-06-01"))
        later.save()
        with later.snapshot():
            assert [f.id for f in later.follows()] == ["f1"]
        with reader.snapshot():
            assert [f.id for f in reader.follows()] == ["f1"]
    finally:
        later.close()
        reader.close()


# ------------------------------------------------------------------------- end to end


SEED_QUESTIONS = [json.loads(line) for line in
                  (ROOT / "tests" / "data" / "seed_questions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def seeded(backend, tmp_path_factory, embedder, shipped_reader):
    qa = NewsQA(location(backend, tmp_path_factory.mktemp(f"seeded-{backend}")),
                embedder=embedder, reader=shipped_reader)
    report = qa.add_paths([ROOT / "seeds"])
    assert report.added and not report.errors
    yield qa
    qa.close()


@pytest.mark.parametrize("item", SEED_QUESTIONS, ids=[q["id"] for q in SEED_QUESTIONS])
def test_newsqa_answers_the_seed_questions_on_every_backend(seeded, item: dict) -> None:
    answer = seeded.ask(item["question"])
    expected = {a["text"] for a in item["answers"]}
    if item["is_impossible"]:
        assert not answer.found
        return
    assert any(text in answer.text for text in expected), (answer.text, expected)
    cited = answer.citations[0]
    assert seeded.get(cited.doc_id).text[cited.start:cited.end] == cited.quote


# ------------------------------------------------------------------------- keys (issue 26)


def keyed(doc: Document, external_id: str) -> Document:
    return dataclasses.replace(doc, external_id=external_id, key=f"id:{external_id}")


def test_a_key_names_one_document_and_a_replacement_takes_it_in_one_commit(
        scratch, embedder, chunked) -> None:
    """What ``NewsQA.add`` relies on to replace an edited article: ``find_by_key`` finds the
    version a key names (the writer's unsaved one too), ``add`` refuses a second document under
    it, and the old version's delete and the new one's add are one commit for readers."""
    where, writer = scratch
    old, new = keyed(DOCS[0], "bbc-005"), keyed(DOCS[1], "bbc-005")
    writer.add(old, *chunked[old.id])
    writer.add(DOCS[2], *chunked[DOCS[2].id])  # no key: found by none
    assert writer.find_by_key("id:bbc-005") == old.id
    writer.save()
    reader = reopen(where, embedder, create=False)
    try:
        with reader.snapshot():
            assert reader.find_by_key("id:bbc-005") == old.id
            assert reader.find_by_key("id:nobody") is None and reader.find_by_key("") is None
            assert reader.get(old.id) == old
            listed = {d.id: d.external_id for d in reader.documents()}
            assert listed == {old.id: "bbc-005", DOCS[2].id: ""}
        with writer.writing():  # as NewsQA.add writes: what Milvus then reads once
            with pytest.raises(StoreError, match="id:bbc-005 already names document"):
                writer.add(new, *chunked[new.id])
            assert writer.delete(old.id)
            assert writer.find_by_key("id:bbc-005") is None
            writer.add(new, *chunked[new.id])
            assert writer.find_by_key("id:bbc-005") == new.id
            with reader.snapshot():  # not saved: the reader still reads the old version
                assert reader.find_by_key("id:bbc-005") == old.id
            writer.save()
            assert writer.find_by_key("id:bbc-005") == new.id
        with reader.snapshot():
            assert reader.find_by_key("id:bbc-005") == new.id
            assert not reader.has(old.id) and reader.get(new.id) == new
            assert {d.id for d in reader.documents()} == {new.id, DOCS[2].id}
            assert doc_ids(reader, reader.keyword_search("glaciers", 10)) == set()
    finally:
        reader.close()
    again = reopen(where, embedder, create=False)  # and from a process that opens it afresh
    try:
        with again.snapshot():
            assert again.find_by_key("id:bbc-005") == new.id
    finally:
        again.close()


def test_newsqa_replaces_an_edited_article_and_finds_it_by_the_users_id(
        backend, tmp_path, embedder, shipped_reader) -> None:
    """The facade over each backend: the edited version replaces the old one (by its external
    id, then by its URL) and ``get``/``delete`` take the external id."""
    old = keyed(DOCS[0], "bbc-005")
    new = dataclasses.replace(old, id="edited", text=old.text.replace("four", "five"))
    linked = dataclasses.replace(DOCS[1], url="https://news.example/rates")
    relinked = dataclasses.replace(linked, id="relinked", text=linked.text + " Updated.")
    with NewsQA(location(backend, tmp_path), embedder=embedder, reader=shipped_reader) as qa:
        assert qa.add([old, linked]).added == [old.id, linked.id]
        report = qa.add([new, relinked, DOCS[2]])
        assert report.replaced == [(old.id, "edited"), (linked.id, "relinked")]
        assert report.near_duplicates == []
        assert [(d.id, d.external_id) for d in qa.documents()] == [
            ("edited", "bbc-005"), ("relinked", ""), (DOCS[2].id, "")]
        assert qa.get("bbc-005") == new
        assert qa.delete("bbc-005") == "edited" and not qa.store.has("edited")
        with pytest.raises(NewsQAError, match="No document has the id or external id 'bbc-005'"):
            qa.get("bbc-005")
