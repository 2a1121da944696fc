"""The Milvus backend against a real Milvus server: two processes share one index.

The server is the standalone Milvus 2.3.5 that the ``milvus`` package embeds (a test extra,
Linux only), started in a temporary folder on free ports; about 20 s here. Milvus 2.3 has no
BM25 function, so this also covers the dense-only fallback. What every backend does is in
``tests/store/test_store_contract.py`` (on milvus-lite); the URI forms and the filter expression
are checked here without a server.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from qa.errors import StoreError
from qa.ingest.documents import document_id
from qa.pipeline import NewsQA
from qa.store.base import redacted
from qa.store.milvus.client import MilvusLocation, has_bm25, parse_location
from qa.store.milvus.expressions import filter_expression
from qa.types import Filter

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------- without a server


@pytest.mark.parametrize("uri, expected", [
    ("milvus:///srv/news/index.db", MilvusLocation("/srv/news/index.db", lite=True)),
    ("milvus://index.db", MilvusLocation("index.db", lite=True)),
    ("milvus://db.example:19530", MilvusLocation("http://db.example:19530")),
    ("milvus://10.0.0.5:19530/world_news", MilvusLocation("http://10.0.0.5:19530", "world_news")),
    ("milvus://reader:s%40cret@db.example:443/news",
     MilvusLocation("http://db.example:443", "news", token="reader:s@cret")),
])
def test_uris_name_a_milvus_lite_file_or_a_server(uri: str, expected: MilvusLocation) -> None:
    assert parse_location(uri) == expected


@pytest.mark.parametrize("uri", ["milvus://", "milvus:///srv/news/index",
                                 "milvus://db.example", "milvus://db.example:19530/bad-name",
                                 "milvus://db.example:port"])
def test_a_bad_uri_is_one_clear_error(uri: str) -> None:
    with pytest.raises(StoreError, match="milvus:///path/to/index.db"):
        parse_location(uri)


def test_a_password_in_a_uri_is_never_shown() -> None:
    assert redacted("milvus://reader:s%40cret@db.example:443/news") == \
        "milvus://reader:***@db.example:443/news"
    with pytest.raises(StoreError) as error:
        parse_location("milvus://reader:s%40cret@db.example/news")
    assert "cret" not in str(error.value) and "reader:***@" in str(error.value)


def test_filters_become_milvus_expressions_with_quoted_values() -> None:
    assert filter_expression(None) == filter_expression(Filter()) == ""
    assert filter_expression(Filter(sources=('The "Post"', "BBC"))) == \
        'source_lc in ["bbc", "the \\"post\\""]'
    assert filter_expression(Filter(date_to="2024-05", include_undated=False)) == \
        '(published <= "2024-05" or published like "2024-05%") and published != ""'


def test_bm25_needs_milvus_2_5_or_milvus_lite() -> None:
    assert has_bm25("milvus_lite-3.2.2") and has_bm25("v2.5.4") and has_bm25("2.6.0")
    assert not has_bm25("v2.3.5-lite") and not has_bm25("v2.4.15") and not has_bm25("")


# ------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Milvus 2.3.5 standalone server on free ports, or a skip saying why there is none."""
    milvus = pytest.importorskip("milvus", reason="the Milvus server test needs the `milvus` "
                                 "package (a test extra, Linux only)")
    instance = milvus.MilvusServer()
    instance.set_base_dir(str(tmp_path_factory.mktemp("milvus-server")))
    try:
        instance.start()
    except (OSError, RuntimeError, TimeoutError) as error:
        instance.stop()
        pytest.skip(f"the embedded Milvus server did not start here: {error}")
    yield f"127.0.0.1:{instance.listen_port}"
    instance.stop()


# (title, text, question, answer) of the articles the writer adds: distinct stories, so that
# each question has one article that answers it
ARTICLES = [
    ("Alderbrook opens its library",
     "The town of Alderbrook opened its new public library on Monday. The library holds 48,000 "
     "books and has a reading room for two hundred people. The mayor said the building, a "
     "former grain store, took three years to restore.",
     "How many books does the new library in Alderbrook hold?", "48,000"),
    ("Ferry links Portwell and the islands",
     "A new ferry between Portwell and the Skerry islands made its first crossing on Tuesday "
     "with 340 passengers on board. The operator said the crossing takes fifty minutes and that "
     "the ship runs on batteries charged overnight in the harbour.",
     "How many passengers were on the ferry's first crossing?", "340"),
    ("Kiptanui wins the Riverside marathon",
     "Amos Kiptanui won the Riverside marathon on Sunday in a course record, finishing ahead of "
     "two thousand runners. The race organisers said the warm weather had slowed most of the "
     "field, but not the winner.",
     "Who won the Riverside marathon?", "Kiptanui"),
    ("Museum buys a seventeenth-century globe",
     "The Hartley museum has bought a seventeenth-century celestial globe for 2.3 million "
     "pounds, its director said on Thursday. The globe, made in Amsterdam, will go on show in "
     "the map room next spring.",
     "How much did the Hartley museum pay for the globe?", "2.3 million pounds"),
]
DELETED = {ARTICLES[1][0], ARTICLES[3][0]}  # each deleted after the next article is added


WRITER = textwrap.dedent("""
    import json, sys
    from qa.ingest.documents import make_document
    from qa.pipeline import NewsQA

    uri, articles, deleted = sys.argv[1], json.loads(sys.argv[2]), set(json.loads(sys.argv[3]))
    with NewsQA(uri, create=False) as qa:
        doomed = None  # deleted once the next article is in (the last one at the end)
        for title, text in [*articles, (None, None)]:
            if title is not None:
                doc = make_document(text, title=title, source="Gazette")
                print(json.dumps({"added": qa.add([doc]).added}), flush=True)
            if doomed is not None:
                qa.delete(doomed)
                print(json.dumps({"deleted": doomed}), flush=True)
            doomed = doc.id if title in deleted else None
""")

READER = textwrap.dedent("""
    import json, pathlib, sys
    from qa.pipeline import NewsQA

    uri, done, questions = sys.argv[1], pathlib.Path(sys.argv[2]), json.loads(sys.argv[3])
    asked, errors = 0, []
    with NewsQA(uri, create=False) as qa:
        qa.warm_up()
        print(json.dumps({"ready": True}), flush=True)
        while not done.exists():
            for question in ["How many POWs were on the first list?", *questions]:
                try:
                    qa.ask(question)
                    asked += 1
                except Exception as error:
                    errors.append(f"{type(error).__name__}: {error}")
        final = {}
        for question in questions:
            answer = qa.ask(question)
            final[question] = {"text": answer.text,
                               "cited": [c.doc_id for c in answer.citations]}
        titles = [d.title for d in qa.documents()]
    print(json.dumps({"asked": asked, "errors": errors, "final": final, "titles": titles}))
""")


def run(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_two_processes_share_one_index_one_writing_one_answering(
        server, tmp_path, embedder, shipped_reader) -> None:
    uri = f"milvus://{server}/shared_{uuid.uuid4().hex[:8]}"
    with NewsQA(uri, embedder=embedder, reader=shipped_reader) as qa:
        assert qa.add_paths([ROOT / "seeds"]).added
    texts = [(title, text) for title, text, *_ in ARTICLES]
    questions = [question for *_, question, _ in ARTICLES]
    done = tmp_path / "done"
    reader = run(READER, uri, str(done), json.dumps(questions))
    try:
        assert json.loads(reader.stdout.readline()) == {"ready": True}, reader.stderr.read()
        writer = run(WRITER, uri, json.dumps(texts), json.dumps(sorted(DELETED)))
        out, err = writer.communicate(timeout=600)
        assert writer.returncode == 0, err
    finally:
        done.touch()
    out_r, err_r = reader.communicate(timeout=600)
    assert reader.returncode == 0, err_r
    result = json.loads(out_r.splitlines()[-1])
    ids = {title: document_id(text) for title, text in texts}
    steps = [json.loads(line) for line in out.splitlines()]
    assert [s["added"] for s in steps if "added" in s] == [[ids[t]] for t, _ in texts]
    assert [s["deleted"] for s in steps if "deleted" in s] == [
        ids[t] for t, _ in texts if t in DELETED]

    assert result["errors"] == [] and result["asked"] > 0
    for title, _, question, expected in ARTICLES:
        final = result["final"][question]
        if title in DELETED:  # gone: never cited, its answer never given
            assert ids[title] not in final["cited"] and expected not in final["text"]
        else:
            assert expected in final["text"] and final["cited"][0] == ids[title]
    assert sorted(result["titles"][1:]) == sorted(set(ids) - DELETED)


@pytest.mark.slow
def test_a_server_without_bm25_searches_by_vectors_only_and_says_so(
        server, embedder, caplog) -> None:
    from qa.store.milvus.store import MilvusStore

    uri = f"milvus://{server}/dense_{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.WARNING, logger="qa.store.milvus.store"):
        store = MilvusStore.open(uri, embedder_name=embedder.name,
                                 dimension=embedder.dimension)
    try:
        assert [r.getMessage() for r in caplog.records] == [
            f"The Milvus at {uri} has no BM25 function (it needs Milvus 2.5 or later): keyword "
            "search is off, retrieval is dense only."]
        assert not store.keyword_search_available
        assert store.keyword_search("library", 5) == []
    finally:
        store.close()


# ------------------------------------------------------------------------- milvus-lite


# A process holding a milvus-lite index: it opens it, adds a document (which takes the writer
# lease), saves it or not, says "ready", and closes it when told to (or never: it is killed).
LITE_HOLDER = textwrap.dedent("""
    import sys
    import numpy as np
    from qa.store.milvus.store import MilvusStore
    from qa.types import Chunk, Document

    uri, doc_id, save = sys.argv[1], sys.argv[2], sys.argv[3] == "save"
    store = MilvusStore.open(uri, embedder_name="test/random", dimension=8)
    text = f"Document {doc_id}"
    store.add(Document(doc_id, text), [Chunk(doc_id, 0, len(text), text)],
              np.full((1, 8), 8 ** -0.5, dtype=np.float32))
    if save:
        store.save()
    print("ready", flush=True)
    sys.stdin.readline()
    store.close()
""")


def hold(uri: str, doc_id: str, save: bool) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", LITE_HOLDER, uri, doc_id,
                               "save" if save else "keep"], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert holder.stdout.readline() == "ready\n", holder.communicate()[1]
    return holder


def newsqa(*args: str) -> list[str]:
    return [sys.executable, "-m", "qa.cli", *args]


@pytest.fixture
def lite_uri(tmp_path) -> str:
    pytest.importorskip("milvus_lite", reason="milvus-lite: .venv/bin/pip install -e '.[milvus]'")
    return f"milvus://{tmp_path}/index.db"


def test_a_second_process_on_a_milvus_lite_file_gets_one_line_or_waits(lite_uri) -> None:
    holder = hold(lite_uri, "held", save=True)
    try:
        refused = subprocess.run(newsqa("sources", "--index", lite_uri), cwd=ROOT,
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1
        assert refused.stderr.splitlines() == [
            f"newsqa: error: The index at {lite_uri} is open in another process (milvus-lite "
            "lets one process at a time open it); try again when it has finished, or wait for "
            "it (--wait)."]
        waiting = subprocess.Popen(newsqa("sources", "--json", "--wait", "--index", lite_uri),
                                   cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        time.sleep(3)
        assert waiting.poll() is None  # still waiting for the file
    finally:
        holder.communicate("close\n", timeout=120)
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert [d["id"] for d in json.loads(out)] == ["held"]


def test_the_lease_of_a_killed_milvus_lite_writer_is_taken_over(lite_uri) -> None:
    killed = hold(lite_uri, "lost", save=False)  # holds the writer lease, saved nothing
    killed.kill()
    killed.communicate(timeout=60)
    after = hold(lite_uri, "kept", save=True)
    after.communicate("close\n", timeout=120)
    assert after.returncode == 0
    listed = subprocess.run(newsqa("sources", "--json", "--index", lite_uri), cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [d["id"] for d in json.loads(listed.stdout)] == ["kept"]


# ------------------------------------------------------------------------- keys (issue 26)


def made_before_keys(uri: str) -> None:
    """The milvus-lite index at ``uri`` as an earlier newsqa made it: a documents collection
    without the key fields (Milvus cannot add a field to a collection), a manifest without
    ``document_keys``. Its rows are kept."""
    import numpy as np
    from pymilvus import CollectionSchema, MilvusClient

    from qa.store.milvus.schema import KEY_FIELDS, schemas

    where = parse_location(uri)
    db = MilvusClient(uri=where.uri)
    try:
        documents, meta = where.collection("documents"), where.collection("meta")
        db.load_collection(documents)
        rows = [{name: value for name, value in row.items() if name not in KEY_FIELDS}
                for row in db.query(documents, filter="gen >= 0")]
        [manifest] = db.query(meta, filter='key == "manifest"', output_fields=["*"])
        schema, indexes = schemas(db, 8, bm25=True)["documents"]
        old = CollectionSchema([f for f in schema.fields if f.name not in KEY_FIELDS],
                               enable_dynamic_field=False)
        db.drop_collection(documents)
        db.create_collection(documents, schema=old, consistency_level="Strong")
        db.create_index(documents, indexes, sync=False)
        db.load_collection(documents)
        db.insert(documents, [{**row, "placeholder": np.asarray(row["placeholder"]).tolist()}
                              for row in rows])
        settings = json.loads(manifest["text"])
        del settings["document_keys"]
        db.upsert(meta, [{**manifest, "text": json.dumps(settings),
                          "placeholder": np.asarray(manifest["placeholder"]).tolist()}])
    finally:
        db.close()


def test_an_index_made_before_keys_is_read_and_written_without_them_and_says_so(
        lite_uri, caplog) -> None:
    """Milvus cannot add the key fields to an older index: it reads and writes as before (no
    key, no external id), and the first keyed document added says, once, that an edited article
    will be added beside its old version."""
    import numpy as np

    from qa.store.milvus.store import MilvusStore
    from qa.types import Chunk, Document

    def add(store: MilvusStore, doc: Document) -> None:
        store.add(doc, [Chunk(doc.id, 0, len(doc.text), doc.text)],
                  np.full((1, 8), 8 ** -0.5, dtype=np.float32))

    def opened() -> MilvusStore:
        return MilvusStore.open(lite_uri, embedder_name="test/random", dimension=8)

    with opened() as store:
        add(store, Document("old", "An article indexed before keys existed."))
        store.save()
    made_before_keys(lite_uri)
    first = Document("v1", "The bridge cost 12 million euros.", external_id="b", key="id:b")
    with caplog.at_level(logging.WARNING, logger="qa.store.milvus.store"), opened() as store:
        with store.snapshot():
            assert store.get("old").external_id == "" and store.find_by_key("id:b") is None
        add(store, first)
        add(store, dataclasses.replace(first, id="v1b", text="Another story."))
        store.save()
        assert store.delete("old")
        store.save()
    assert [r.getMessage() for r in caplog.records] == [
        f"The index at {lite_uri} was made before documents had keys: an article indexed again "
        "with changed text is added beside its old version (a new index replaces it)."]
    with opened() as store, store.snapshot():
        assert [(d.id, d.external_id) for d in store.documents()] == [("v1", ""), ("v1b", "")]
        assert store.get("v1") == dataclasses.replace(first, external_id="", key="")
