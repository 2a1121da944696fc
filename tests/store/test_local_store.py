"""The index directory: persistence, incremental changes, filters, corruption, crashes.

Near-duplicates: ``tests/store/test_dedup.py``; the keyword index:
``tests/store/test_keywords.py``."""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import mounted
from qa.cli import main
from qa.embed import Embedder
from qa.errors import StoreError
from qa.store.local.database import DATABASE
from qa.store.local.store import Store
from qa.store.local.vectors import EXACT_SPEC
from qa.store.manifest import MANIFEST
from qa.types import Chunk, Document, Filter

ROOT = Path(__file__).resolve().parents[2]

ARTICLES = [
    dict(
        title="Harbour bridge to close for repairs",
        source="Coastal Herald",
        published="2024-03-02",
        text="The harbour bridge will close for six weeks from April so that engineers can replace "
        "corroded cables.\n\nThe city council said ferries would run every ten minutes while the "
        "bridge is shut, and that the repairs would cost 40 million dollars.",
    ),
    dict(
        title="Orchestra names new conductor",
        source="Reuters",
        published="2024-05-17T09:30:00Z",
        text="The national orchestra named Amara Lindqvist as its principal conductor on Friday, "
        "the first woman to hold the post.\n\nLindqvist, 41, will lead her first concert in "
        "September with a programme of Sibelius and Nielsen.",
    ),
    dict(
        title="Wheat harvest beats forecasts",
        source="reuters",
        published="2024-07-30",
        text="Farmers brought in a record wheat harvest this summer after a mild spring and "
        "steady rain in June.\n\nThe agriculture ministry raised its export forecast by 8 "
        "percent, saying storage silos were close to full.",
    ),
    dict(
        title="Museum reopens after flood",
        source="Coastal Herald",
        published="",
        text="The maritime museum reopened its doors on Saturday, eighteen months after a flood "
        "damaged its ground floor.\n\nCurators said most of the ship models had been restored.",
    ),
]


def make_doc(text: str, **meta: str) -> Document:
    return Document(id=hashlib.sha256(text.encode()).hexdigest()[:16], text=text, **meta)


def paragraphs(doc: Document) -> list[Chunk]:
    return [Chunk(doc.id, m.start(), m.end(), m.group()) for m in re.finditer(r"[^\n]+(?:\n(?!\n)[^\n]+)*", doc.text)]


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return [make_doc(**article) for article in ARTICLES]


@pytest.fixture(scope="module")
def encoded(embedder: Embedder, docs: list[Document]) -> dict[str, tuple[list[Chunk], np.ndarray]]:
    """Chunks and real vectors of every test document, computed once."""
    result = {}
    for doc in docs:
        chunks = paragraphs(doc)
        result[doc.id] = (chunks, embedder.encode([c.text for c in chunks]))
    return result


def open_store(path: Path, embedder: Embedder, **kwargs) -> Store:
    return Store.open(path, embedder_name=embedder.name, dimension=embedder.dimension, **kwargs)


def fill(store: Store, docs: list[Document], encoded: dict) -> None:
    for doc in docs:
        store.add(doc, *encoded[doc.id])
    store.save()


def newest_vectors(index: Path) -> Path:
    """The FAISS file of the committed generation (the previous one is kept beside it)."""
    return max(index.glob("vectors-*.faiss"), key=lambda p: int(re.findall(r"\d+", p.name)[0]))


def doc_ids_found(store: Store, vector: np.ndarray, k: int = 10,
                  filter: Filter | None = None) -> list[str]:
    hits = store.search(vector, k, filter)
    return [chunk.doc_id for chunk in store.chunks_by_ids([i for i, _ in hits])]


# ------------------------------------------------------------------------- round trip


def test_round_trip_keeps_documents_chunks_and_vectors(tmp_path, embedder, docs, encoded):
    path = tmp_path / "index"
    with open_store(path, embedder) as store:
        fill(store, docs, encoded)
        listed = store.documents()
        chunks = list(store.iter_chunks())
        query = embedder.encode_query("Who will conduct the orchestra?")
        before = store.search(query, 5)
        assert len(before) == 5

    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["embedder"] == embedder.name
    assert manifest["dimension"] == embedder.dimension
    assert manifest["index_type"] == EXACT_SPEC

    with open_store(path, embedder, create=False) as store:
        assert store.documents() == listed
        assert [(d.id, d.chunks) for d in listed] == [(d.id, len(encoded[d.id][0])) for d in docs]
        assert [store.get(d.id) for d in docs] == docs
        assert list(store.iter_chunks()) == chunks
        assert store.chunks_by_ids([i for i, _ in chunks][::-1]) == [c for _, c in chunks][::-1]
        assert len(store) == len(chunks)
        assert store.search(query, 5) == before
        for (chunk_id, chunk), vector in zip(chunks, np.concatenate([encoded[d.id][1] for d in docs])):
            best_id, score = store.search(vector, 1)[0]
            assert best_id == chunk_id and score == pytest.approx(1.0, abs=1e-5)


def test_unsaved_changes_are_discarded_on_close(tmp_path, embedder, docs, encoded):
    path = tmp_path / "index"
    with open_store(path, embedder) as store:
        fill(store, docs[:1], encoded)
        store.add(docs[1], *encoded[docs[1].id])
    with open_store(path, embedder) as store:
        assert [d.id for d in store.documents()] == [docs[0].id]
        assert len(store) == len(encoded[docs[0].id][0])


# ------------------------------------------------------------------------- add and delete


def test_delete_removes_a_documents_chunks_from_search_without_rebuilding(tmp_path, embedder, docs, encoded):
    path = tmp_path / "index"
    with open_store(path, embedder) as store:
        fill(store, docs, encoded)
        gone, kept = docs[1], docs[2]
        version = store.version
        assert store.delete(gone.id)
        assert store.version != version
        assert not store.delete(gone.id)
        assert not store.has(gone.id) and store.has(kept.id)
        for vector in encoded[gone.id][1]:
            assert gone.id not in doc_ids_found(store, vector, k=len(store))
        for vector in encoded[kept.id][1]:
            assert doc_ids_found(store, vector, k=1) == [kept.id]
        store.save()
        expected = sum(len(encoded[d.id][0]) for d in docs if d is not gone)
        assert len(store) == expected
    with open_store(path, embedder) as store:
        assert len(store) == expected
        assert gone.id not in [d.id for d in store.documents()]
        with pytest.raises(StoreError, match="no document"):
            store.get(gone.id)
        store.add(gone, *encoded[gone.id])  # re-adding after a delete works
        assert doc_ids_found(store, encoded[gone.id][1][0], k=1) == [gone.id]


def test_add_rejects_a_duplicate_and_inconsistent_input(tmp_path, embedder, docs, encoded):
    with open_store(tmp_path / "index", embedder) as store:
        doc = docs[0]
        chunks, vectors = encoded[doc.id]
        store.add(doc, chunks, vectors)
        with pytest.raises(StoreError, match="already"):
            store.add(doc, chunks, vectors)
        other = docs[1]
        other_chunks, other_vectors = encoded[other.id]
        with pytest.raises(StoreError, match="shape"):
            store.add(other, other_chunks, other_vectors[:1])
        with pytest.raises(StoreError, match="normalised"):
            store.add(other, other_chunks, other_vectors * 2)
        shifted = [Chunk(c.doc_id, c.start + 1, c.end, c.text) for c in other_chunks]
        with pytest.raises(StoreError, match="not a window"):
            store.add(other, shifted, other_vectors)
        assert not store.has(other.id)


# ------------------------------------------------------------------------- filters


def test_filters_by_source_and_inclusive_date_range(tmp_path, embedder, docs, encoded):
    with open_store(tmp_path / "index", embedder) as store:
        fill(store, docs, encoded)
        ids_of = {d.id: {i for i, c in store.iter_chunks() if c.doc_id == d.id} for d in docs}
        harbour, orchestra, wheat, museum = (ids_of[d.id] for d in docs)

        query = embedder.encode_query("Which bridge is closing?")

        def match(*sources: str, **bounds) -> set[int]:
            """What a search may return: dense search ranks every chunk of this small store."""
            return {i for i, _ in store.search(query, len(store), Filter(sources, **bounds))}

        assert match() == harbour | orchestra | wheat | museum
        assert match("Reuters") == orchestra | wheat  # case-insensitive
        assert match("coastal herald", "nobody") == harbour | museum
        # the undated museum story passes date filters: nothing says it is out of range
        assert match(date_from="2024-05-17") == orchestra | wheat | museum
        assert match(date_to="2024-05-17") == harbour | orchestra | museum  # a datetime that day
        assert match(date_from="2024-03-02", date_to="2024-03-02") == harbour | museum
        assert match(date_from="2024-05", date_to="2024-07") == orchestra | wheat | museum
        assert match("Coastal Herald", date_from="2024-01-01", date_to="2024-12-31") == (
            harbour | museum)
        assert match("Reuters", date_from="2025") == set()
        # ... unless undated articles are excluded, which is a filter on its own too
        undated = dict(include_undated=False)
        assert match(date_from="2024-05-17", **undated) == orchestra | wheat
        assert match(date_to="2024-05-17", **undated) == harbour | orchestra
        assert match("Coastal Herald", **undated) == harbour
        assert match(**undated) == harbour | orchestra | wheat

        assert doc_ids_found(store, query, k=1)[0] == docs[0].id
        found = doc_ids_found(store, query, k=10, filter=Filter(("reuters",)))
        assert found and set(found) <= {docs[1].id, docs[2].id}
        assert store.search(query, 10, Filter(("nobody",))) == []


def test_an_index_from_before_feeds_and_date_sources_is_read_as_is_and_upgraded_by_a_writer(
        tmp_path, embedder, docs, encoded):
    index = tmp_path / "index"
    with open_store(index, embedder) as store:
        fill(store, docs[:1], encoded)
    with sqlite3.connect(index / DATABASE) as db:  # the schema of the previous version
        db.executescript("DROP TABLE feed_items; DROP TABLE feeds; "
                         "ALTER TABLE documents DROP COLUMN date_source;")
    dated = dataclasses.replace(docs[1], date_source="json-field")
    with open_store(index, embedder) as store:
        with store.snapshot():  # a reader writes nothing, and sees no feeds and no date sources
            assert store.feeds() == [] and store.feed_items("https://x.example/feed") == set()
            assert store.get(docs[0].id).date_source == ""
            assert [d.date_source for d in store.documents()] == [""]
        assert store.add_feed("https://x.example/feed")
        store.add(dated, *encoded[dated.id])
        store.save()
    with open_store(index, embedder) as store:
        assert [f.url for f in store.feeds()] == ["https://x.example/feed"]
        assert store.get(dated.id) == dated
        assert [d.date_source for d in store.documents()] == ["", "json-field"]


def test_feed_state_is_recorded_only_for_a_subscribed_feed(tmp_path, embedder):
    with open_store(tmp_path / "index", embedder) as store:
        url = "https://x.example/feed"
        assert store.add_feed(url) and not store.add_feed(url)
        store.save()
        [feed] = store.feeds()
        polled = dataclasses.replace(feed, etag='"v2"', last_poll="2024-06-01T00:00:00+00:00")
        assert store.record_poll(polled, ["guid-1", "https://x.example/1", "guid-1"])
        store.save()
        assert store.feeds() == [dataclasses.replace(polled, items_seen=2)]
        assert store.remove_feed(url) and not store.remove_feed(url)
        assert not store.record_poll(polled, ["guid-2"])  # unsubscribed meanwhile: nothing kept
        store.save()
        assert store.feeds() == [] and store.feed_items(feed.url) == set()


# ------------------------------------------------------------------------- refusing bad directories


def test_refuses_directories_that_are_not_compatible_indexes(tmp_path, embedder, docs, encoded):
    dimension = embedder.dimension
    with pytest.raises(StoreError, match="no index"):
        open_store(tmp_path / "missing", embedder, create=False)

    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(StoreError, match="not an index"):
        open_store(stranger, embedder)

    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        open_store(tmp_path / "file", embedder)

    index = tmp_path / "index"
    with open_store(index, embedder) as store:
        fill(store, docs[:2], encoded)
    mismatch = r"built with sentence-transformers/all-MiniLM-L6-v2 \(384-d\); you are using other/model \(384-d\)"
    with pytest.raises(StoreError, match=mismatch):
        Store.open(index, embedder_name="other/model", dimension=dimension)
    with pytest.raises(StoreError, match=r"\(768-d\)"):
        Store.open(index, embedder_name=embedder.name, dimension=768)


def test_an_index_opens_without_its_embedder_which_is_checked_before_embedding(
        tmp_path, embedder, docs, encoded):
    """With a function for the dimension, opening an existing index asks the embedder nothing
    (listing documents loads no model); ``check_embedder`` then refuses another model's
    vectors. Creating an index does ask it, once."""
    asked = []

    def dimension() -> int:
        asked.append(True)
        return embedder.dimension

    index = tmp_path / "index"
    with Store.open(index, embedder_name=embedder.name, dimension=dimension) as store:
        assert asked == [True] and store.dimension == 384
        fill(store, docs[:2], encoded)
    with Store.open(index, embedder_name="other/model", dimension=dimension,
                    create=False) as store:
        assert asked == [True]
        assert [d.id for d in store.documents()] == [d.id for d in docs[:2]]
        store.check_embedder(embedder.name, embedder.dimension)
        with pytest.raises(StoreError, match="you are using other/model"):
            store.check_embedder("other/model", embedder.dimension)
        with pytest.raises(StoreError, match=r"\(768-d\)"):
            store.check_embedder(embedder.name, 768)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / MANIFEST).write_text("{not json"), "manifest .* corrupt"),
        (lambda p: (p / MANIFEST).write_text('{"format": "something-else"}'), "not a newsqa index manifest"),
        (lambda p: (p / DATABASE).write_bytes(b"this is not a database" * 100), "database .* corrupt"),
        (lambda p: (p / DATABASE).unlink(), "lost its database"),
        (lambda p: newest_vectors(p).write_bytes(b"garbage"), "vector file .* corrupt"),
    ],
    ids=["manifest-json", "manifest-format", "sqlite", "sqlite-missing", "faiss"],
)
def test_corrupt_index_is_a_store_error(tmp_path, embedder, docs, encoded, damage, message):
    index = tmp_path / "index"
    with open_store(index, embedder) as store:
        fill(store, docs[:2], encoded)
    damage(index)
    with pytest.raises(StoreError, match=message):
        open_store(index, embedder)


# ------------------------------------------------------------------------- crash safety


def test_missing_or_stale_vector_file_is_rebuilt_from_the_database(tmp_path, embedder, docs, encoded):
    """A crash after the database commit but before the FAISS file is written."""
    index = tmp_path / "index"
    with open_store(index, embedder) as store:
        fill(store, docs[:2], encoded)
        old_file = newest_vectors(index)
        old_bytes = old_file.read_bytes()
        fill(store, docs[2:], encoded)
    for file in index.glob("vectors-*.faiss"):
        file.unlink()
    old_file.write_bytes(old_bytes)  # only the previous generation's file is left
    with open_store(index, embedder) as store:
        assert len(store) == sum(len(encoded[d.id][0]) for d in docs)
        for doc in docs:
            assert doc_ids_found(store, encoded[doc.id][1][0], k=1) == [doc.id]
    assert [p.name for p in index.glob("vectors-*.faiss")] != [old_file.name]


CHILD = textwrap.dedent(
    """
    import sys
    import zlib
    import numpy as np
    from qa.store.local.store import Store
    from qa.types import Chunk, Document

    path, round_ = sys.argv[1], int(sys.argv[2])

    def vectors(seed, n):
        v = np.random.default_rng(seed).standard_normal((n, 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    store = Store.open(path, embedder_name="test/random", dimension=384)
    for i in range(10_000):
        doc_id = f"r{round_}-d{i}"
        text = f"Document {doc_id} " * 40
        chunks = [Chunk(doc_id, 0, len(text), text)]
        store.add(Document(doc_id, text, source=f"round{round_}"), chunks, vectors(zlib.crc32(doc_id.encode()), 1))
        if i % 5 == 4:
            print("saving", flush=True)
            store.save()
            print("saved", i, flush=True)
    """
)


def random_vector(doc_id: str) -> np.ndarray:
    v = np.random.default_rng(zlib.crc32(doc_id.encode())).standard_normal((1, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_killing_a_save_loses_nothing_saved(tmp_path):
    index = tmp_path / "index"
    rng = random.Random(7)
    saved: set[str] = set()
    for round_ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(index), str(round_)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )
        savings, last_saved = rng.randint(3, 12), -1
        for line in child.stdout:
            if line.startswith("saved"):
                last_saved = int(line.split()[1])
            elif line.startswith("saving"):
                savings -= 1
                if savings == 0:
                    break
        time.sleep(rng.uniform(0, 0.05))  # kill somewhere in (or just after) this save
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert last_saved >= 0, "the child never finished a save"
        saved |= {f"r{round_}-d{i}" for i in range(last_saved + 1)}

        with Store.open(index, embedder_name="test/random", dimension=384, create=False) as store:
            present = {d.id for d in store.documents()}
            assert saved <= present
            assert len(store) == len(present)
            for doc_id in rng.sample(sorted(saved), 5):
                best, score = store.search(random_vector(doc_id), 1)[0]
                assert store.chunks_by_ids([best])[0].doc_id == doc_id and score == pytest.approx(1.0, abs=1e-5)
        saved = present


# ------------------------------------------------------------------------- approximate index


def test_large_collections_switch_to_ivf_and_keep_working(tmp_path, monkeypatch):
    """The switch normally happens at 20k vectors; lower it so the test stays fast."""
    monkeypatch.setattr("qa.store.local.vectors.APPROXIMATE_FROM", 300)
    index = tmp_path / "index"
    ids = [f"d{i}" for i in range(400)]
    with Store.open(index, embedder_name="test/random", dimension=384) as store:
        for i, doc_id in enumerate(ids):
            text = f"Document {doc_id}"
            store.add(Document(doc_id, text, source="even" if i % 2 == 0 else "odd"),
                      [Chunk(doc_id, 0, len(text), text)], random_vector(doc_id))
        assert store.index_type == EXACT_SPEC
        store.save()
        assert store.index_type != EXACT_SPEC and store.index_type.startswith("IVF")
        assert store.delete("d0") and store.delete("d1")
        store.save()
    assert json.loads((index / MANIFEST).read_text())["index_type"] == store.index_type

    for rebuild in (False, True):
        if rebuild:
            newest_vectors(index).unlink()
        with Store.open(index, embedder_name="test/random", dimension=384) as store:
            assert store.index_type != EXACT_SPEC and len(store) == 398
            for gone in ("d0", "d1"):
                assert gone not in doc_ids_found(store, random_vector(gone), k=398)
            for doc_id in ("d2", "d3", "d399"):
                assert doc_ids_found(store, random_vector(doc_id), k=1) == [doc_id]
            even = Filter(("even",))
            assert doc_ids_found(store, random_vector("d3"), k=5, filter=even)[0] != "d3"
            assert set(doc_ids_found(store, random_vector("d4"), k=5, filter=even)) <= set(ids[::2])
            # filtered search is exact: it finds every even article but the deleted d0
            assert len(store.search(random_vector("d4"), 500, even)) == len(ids[2::2])


# ------------------------------------------------------------------------- one writer, many readers

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from qa.store.local.store import Store
    from qa.types import Chunk, Document

    path, doc_id, wait = sys.argv[1], sys.argv[2], sys.argv[3] == "wait"
    vector = np.random.default_rng(len(doc_id)).standard_normal((1, 384)).astype(np.float32)
    store = Store.open(path, embedder_name="test/random", dimension=384, wait_for_writer=wait)
    text = f"Document {doc_id}"
    store.add(Document(doc_id, text), [Chunk(doc_id, 0, len(text), text)],
              vector / np.linalg.norm(vector))
    print("added", flush=True)
    if sys.stdin.readline().strip() == "save":
        store.save()
        print("saved", flush=True)
    """
)


def start_writer(index: Path, doc_id: str, wait: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(index), doc_id,
                             "wait" if wait else "fail"], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def add_random(store: Store, doc_id: str) -> None:
    text = f"Document {doc_id}"
    store.add(Document(doc_id, text), [Chunk(doc_id, 0, len(text), text)], random_vector(doc_id))


def test_a_second_writer_is_refused_with_the_holders_pid_or_waits(tmp_path):
    index = tmp_path / "index"
    with Store.open(index, embedder_name="test/random", dimension=384) as store:
        add_random(store, "mine")  # the first change takes the writer lock
        refused = start_writer(index, "theirs")
        _, err = refused.communicate(timeout=60)
        assert refused.returncode != 0
        assert f"being written by another process (pid {os.getpid()})" in err
        waiting = start_writer(index, "waited", wait=True)
        waiting.stdin.write("save\n")
        waiting.stdin.flush()
        time.sleep(0.5)
        assert waiting.poll() is None  # still blocked on the lock
        store.save()  # releases it
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert out.split() == ["added", "saved"]
    with Store.open(index, embedder_name="test/random", dimension=384, create=False) as store:
        assert sorted(d.id for d in store.documents()) == ["mine", "waited"]
        assert len(store) == 2


def test_a_reader_sees_another_processes_commits_and_never_a_dangling_chunk(tmp_path):
    index = tmp_path / "index"
    with Store.open(index, embedder_name="test/random", dimension=384) as store:
        for doc_id in ("a", "b"):
            add_random(store, doc_id)
        store.save()
    reader = Store.open(index, embedder_name="test/random", dimension=384, create=False)
    with reader.snapshot():
        assert len(reader) == 2

    writer = Store.open(index, embedder_name="test/random", dimension=384, create=False)
    add_random(writer, "c")
    assert writer.delete("a")
    with reader.snapshot():  # uncommitted changes are invisible
        assert sorted(d.id for d in reader.documents()) == ["a", "b"]
        hits = reader.search(random_vector("a"), 3)
        assert {c.doc_id for c in reader.chunks_by_ids([i for i, _ in hits])} == {"a", "b"}
    writer.save()
    with reader.snapshot():  # the committed generation, vectors and rows alike
        assert sorted(d.id for d in reader.documents()) == ["b", "c"]
        hits = reader.search(random_vector("a"), 3)
        assert {c.doc_id for c in reader.chunks_by_ids([i for i, _ in hits])} == {"b", "c"}
        assert reader.search(random_vector("c"), 1)[0][1] == pytest.approx(1.0, abs=1e-5)
    writer.close()
    reader.close()
    assert sorted(p.name for p in index.glob("vectors-*.faiss")) == [
        f"vectors-{n}.faiss" for n in (2, 4)]  # the committed one and the one before it


# ------------------------------------------------------------------ writes the system refuses


def fill_disk(folder: Path) -> Path:
    """A file that takes every byte left on ``folder``'s file system (written until it is
    full)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle, pytest.raises(OSError) as full:
        while True:
            handle.write(bytes(1 << 16))
    assert full.value.errno == errno.ENOSPC
    return filler


def test_a_full_disk_is_one_line_and_the_store_keeps_its_last_save(tmp_path):
    """On a real 16 MiB file system (a tmpfs; the test skips where it cannot be mounted), filled
    while a change waits in SQLite's cache: ``save()`` writes the change's vector segment
    first, which the disk refuses. The change is larger than the free space the kernel may
    still grant after a write was refused (its count of free pages is kept per CPU)."""
    with mounted(tmp_path / "disk", ("-t", "tmpfs", "-o", "size=16m", "tmpfs")) as disk:
        index = disk / "index"
        kept = [f"kept-{n}" for n in range(1_000)]
        late = [f"late-{n}" for n in range(300)]  # a segment, under a quarter of the index
        with Store.open(index, embedder_name="test/random", dimension=384) as store:
            for doc_id in kept:
                add_random(store, doc_id)
            store.save()
            for doc_id in late:
                add_random(store, doc_id)
            filler = fill_disk(disk)
            with pytest.raises(StoreError) as raised:
                store.save()
            assert str(raised.value) == (f"The index at {index} could not be written: the disk "
                                         "is full; it keeps its last saved state.")
            with store.snapshot():  # rows and vectors as last saved
                assert [d.id for d in store.documents()] == kept and len(store) == len(kept)
                [(chunk_id, _)] = store.search(random_vector(late[0]), 1)
                assert store.chunks_by_ids([chunk_id])[0].doc_id in kept
            filler.unlink()
            for doc_id in late:  # the writer goes on once there is room
                add_random(store, doc_id)
            store.save()
            with store.snapshot():
                assert len(store) == len(kept) + len(late)
                [(chunk_id, score)] = store.search(random_vector(late[0]), 1)
                assert store.chunks_by_ids([chunk_id])[0].doc_id == late[0]
                assert score == pytest.approx(1, abs=1e-5)
        with Store.open(index, embedder_name="test/random", dimension=384,
                        create=False) as store:
            assert [d.id for d in store.documents()] == [*kept, *late]
            assert len(store) == len(kept) + len(late)


def test_an_index_on_a_read_only_mount_is_read_and_refuses_changes_in_one_line(tmp_path,
                                                                              capsys):
    """Through a read-only bind mount of its folder (the test skips where it cannot mount): it
    answers, a change is one line, and what a writer commits through the writable folder is
    read at the next snapshot."""
    folder = tmp_path / "folder"
    index = folder / "index"
    with Store.open(index, embedder_name="test/random", dimension=384) as store:
        for doc_id in ("a", "b"):
            add_random(store, doc_id)
        store.save()
    with mounted(tmp_path / "view", ("--bind", str(folder)), ("-o", "remount,ro,bind")) as view:
        seen = view / "index"
        refused = (f"The index at {seen} is read-only (a read-only file system): it can be "
                   "read, not changed.")
        with Store.open(seen, embedder_name="test/random", dimension=384,
                        create=False) as reader:
            with reader.snapshot():
                assert [d.id for d in reader.documents()] == ["a", "b"]
                assert reader.search(random_vector("b"), 1)[0][1] == pytest.approx(1, abs=1e-5)
            with pytest.raises(StoreError) as raised:
                add_random(reader, "c")
            assert str(raised.value) == refused
            with Store.open(index, embedder_name="test/random", dimension=384,
                            create=False) as writer:
                add_random(writer, "c")
                writer.save()
                with reader.snapshot():
                    assert [d.id for d in reader.documents()] == ["a", "b", "c"]
                    [(chunk_id, _)] = reader.search(random_vector("c"), 1)
                    assert reader.chunks_by_ids([chunk_id])[0].doc_id == "c"
        assert main(["sources", "--index", str(seen)]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == "3 document(s)"
        assert main(["sources", "delete", "a", "--index", str(seen)]) == 1
        assert capsys.readouterr().err == f"newsqa: error: {refused}\n"


def unprivileged(*args: str) -> subprocess.CompletedProcess:
    """``newsqa args`` in a process that file permissions bind: as root, without the
    capabilities that override them (``setpriv``); as another user, as it is."""
    command = [sys.executable, "-m", "qa.cli", *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("as root, file permissions bind only a process without "
                        "CAP_DAC_OVERRIDE: this test needs setpriv to drop it")
        capabilities = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={capabilities}", f"--bounding-set={capabilities}",
                   *command]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_an_index_one_may_not_write_is_read_and_one_it_may_not_read_is_one_line(tmp_path):
    index = tmp_path / "index"
    with Store.open(index, embedder_name="test/random", dimension=384) as store:
        for doc_id in ("a", "b"):
            add_random(store, doc_id)
        store.save()
    files = sorted(index.iterdir())
    try:
        for path in [index, *files]:
            path.chmod(path.stat().st_mode & ~0o222)
        listed = unprivileged("sources", "--index", str(index))
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines()[-1] == "2 document(s)"
        deleted = unprivileged("sources", "delete", "a", "--index", str(index))
        assert deleted.returncode == 1
        assert deleted.stderr == (f"newsqa: error: The index at {index} is read-only (no "
                                  "permission to write its files): it can be read, not "
                                  "changed.\n")
        index.chmod(0)
        unreadable = unprivileged("sources", "--index", str(index))
        assert unreadable.returncode == 1
        assert unreadable.stderr == (f"newsqa: error: The index at {index} cannot be read "
                                     "(Permission denied).\n")
    finally:
        index.chmod(0o755)
        for path in files:
            path.chmod(0o644)


# ------------------------------------------------------------------------- keys (issue 26)


def columns(index: Path) -> set[str]:
    with sqlite3.connect(index / DATABASE) as db:
        return {row[1] for row in db.execute("PRAGMA table_info(documents)")}


def test_an_index_from_before_keys_is_read_and_answers_as_is_and_a_writer_adds_them(
        tmp_path, embedder, shipped_reader, docs):
    """An index made before documents had keys: readers read it without writing (no key, no
    external id) and answer from it; its next writer adds the columns, and from then on an
    edited article replaces its old version."""
    from qa.pipeline import NewsQA

    index = tmp_path / "index"
    with NewsQA(index, embedder=embedder, reader=shipped_reader) as qa:
        qa.add(docs[:2])
    with sqlite3.connect(index / DATABASE) as db:  # the schema of the previous version
        db.executescript("DROP INDEX documents_key; ALTER TABLE documents DROP COLUMN key; "
                         "ALTER TABLE documents DROP COLUMN external_id;")
    with NewsQA(index, embedder=embedder, reader=shipped_reader, create=False) as qa:
        answer = qa.ask("How much would the harbour bridge repairs cost?", threshold=0.0)
        assert "40 million" in answer.text and answer.citations[0].external_id == ""
        assert [d.external_id for d in qa.documents()] == ["", ""]
        assert qa.get(docs[0].id).key == "" and qa.store.find_by_key("id:x") is None
        assert "key" not in columns(index)  # reading wrote nothing
        harvest = dataclasses.replace(docs[2], id="harvest-v1", external_id="harvest")
        edited = dataclasses.replace(harvest, id="harvest-v2",
                                     text=harvest.text.replace("8 percent", "9 percent"))
        assert qa.add([harvest]).added == ["harvest-v1"]
        assert {"key", "external_id"} <= columns(index)
        assert qa.add([edited]).replaced == [("harvest-v1", "harvest-v2")]
        assert qa.get("harvest").text == edited.text
        assert [d.id for d in qa.documents()] == [docs[0].id, docs[1].id, "harvest-v2"]
