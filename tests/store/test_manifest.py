"""The index manifest: written atomically, read back and checked, with the config the index was
built with; chunk settings that differ from the index's are one clear error, through the facade
and through the CLI, and change nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.chunk import Chunker
from qa.cli import main
from qa.errors import StoreError
from qa.ingest.documents import make_document
from qa.pipeline import NewsQA
from qa.store.local.store import Store
from qa.store.manifest import (MANIFEST, atomic_file, check_same_settings, config_of, new_manifest,
                               read_manifest, write_manifest)
from qa.types import IndexConfig

# ~2,000 characters of whole sentences: cut into 400- and 600-character chunks, they differ
SENTENCES = [f"On day {n} the harbour ferry carried {100 + 7 * n} passengers across the bay, "
             f"the port authority said in its report number {n}." for n in range(1, 21)]
LONG = make_document(" ".join(SENTENCES), title="Ferry figures")
SHORT = make_document("The lighthouse on the northern cape was repainted in May.",
                      title="Lighthouse")
MISMATCH = ("This index was built with 400-character chunks; you asked for {}-character chunks. "
            "Use the same settings or build a new index.")


def manifest_of(index: Path) -> dict:
    return json.loads((index / MANIFEST).read_text(encoding="utf-8"))


@pytest.fixture()
def index_400(tmp_path: Path, embedder) -> Path:
    """An index built with 400-character chunks, holding ``LONG``."""
    index = tmp_path / "index"
    with NewsQA(index, embedder=embedder, config=IndexConfig(max_chars=400)) as qa:
        assert qa.add([LONG]).chunks == len(Chunker(400).split(LONG))
    return index


# ---- the file ---------------------------------------------------------------------------------

def test_manifest_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    config = IndexConfig(max_chars=400, overlap_sentences=2, backend="onnx")
    manifest = new_manifest("some-embedder", 384, config, index_type="IDMap2,Flat",
                            created="2025-06-01T12:00:00+00:00")
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    assert config_of(read_manifest(tmp_path)) == config
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST]


def test_a_file_written_in_parts_is_replaced_only_when_the_write_succeeds(
        tmp_path: Path) -> None:
    """``atomic_file`` (FAISS bases stream through it): a failed write keeps the old file and
    leaves no part aside; a finished one replaces it."""
    path = tmp_path / "vectors-3.faiss"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_file(path) as handle:
            handle.write(b"new, partly")
            raise OSError("disk full")
    assert path.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [path]
    with atomic_file(path) as handle:
        for part in (b"new", b", ", b"whole"):
            handle.write(part)
    assert path.read_bytes() == b"new, whole" and sorted(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: {**m, "format_version": 2}, "has format version 2; this newsqa reads version 1"),
    (lambda m: {**m, "config": {"max_chars": 0}},
     "has a config this newsqa cannot read: max_chars must be a whole number of at least 1"),
    (lambda m: {**m, "config": {"chunk_size": 3}},
     "has a config this newsqa cannot read: Unknown setting(s) chunk_size."),
    (lambda m: {k: v for k, v in m.items() if k != "dimension"}, "is not a newsqa index manifest"),
])
def test_a_manifest_this_newsqa_cannot_read_is_one_clear_error(tmp_path: Path, change,
                                                                message: str) -> None:
    write_manifest(tmp_path, change(new_manifest("e", 384, IndexConfig(), index_type="Flat")))
    with pytest.raises(StoreError) as raised:
        read_manifest(tmp_path)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_other_chunk_overlap_is_named_too() -> None:
    with pytest.raises(StoreError, match=r"^This index was built with 1 sentence\(s\) of overlap "
                       r"between chunks; you asked for 2 sentence\(s\) of overlap between "
                       r"chunks\. Use the same settings"):
        check_same_settings(IndexConfig(), IndexConfig(overlap_sentences=2))


# ---- the store records its config -------------------------------------------------------------

def test_store_records_the_config_it_was_created_with(tmp_path: Path, embedder) -> None:
    config = IndexConfig(max_chars=400, top_k=3, backend="onnx")
    index = tmp_path / "index"
    Store.open(index, embedder_name=embedder.name, dimension=embedder.dimension,
               config=config).close()
    assert manifest_of(index)["config"] == config.to_dict()
    with Store.open(index, embedder_name=embedder.name, dimension=embedder.dimension,
                    create=False, config=IndexConfig()) as store:  # opening rewrites nothing
        assert store.config == config
    assert manifest_of(index)["config"] == config.to_dict()


def test_index_made_before_configs_opens_with_the_defaults(tmp_path: Path, embedder) -> None:
    index = tmp_path / "index"
    with NewsQA(index, embedder=embedder) as qa:
        qa.add([LONG])
    old = {k: v for k, v in manifest_of(index).items() if k != "config"}
    write_manifest(index, old)
    with NewsQA(index, embedder=embedder, create=False) as qa:
        assert [d.title for d in qa.documents()] == ["Ferry figures"]
        assert qa.store.config == IndexConfig()
        assert qa.config.max_chars == IndexConfig().max_chars
        assert qa.retrieve("How many passengers did the ferry carry on day 3?")
    assert manifest_of(index) == old  # reading wrote nothing
    with NewsQA(index, embedder=embedder, config=IndexConfig(max_chars=400)) as qa:
        with pytest.raises(StoreError, match=r"built with 600-character chunks; you asked for "
                                             r"400-character chunks"):
            qa.documents()


# ---- the facade -------------------------------------------------------------------------------

@pytest.mark.parametrize("asked", [{"config": IndexConfig()}, {"chunker": Chunker(600)},
                                   {"config": IndexConfig(max_chars=600, top_k=3)}])
def test_reopening_with_other_chunk_settings_is_one_clear_error_and_changes_nothing(
        index_400: Path, embedder, asked: dict) -> None:
    before = manifest_of(index_400)
    qa = NewsQA(index_400, embedder=embedder, **asked)
    for attempt in (lambda: qa.add([SHORT]), qa.documents):  # and again: nothing half-open
        with pytest.raises(StoreError) as raised:
            attempt()
        assert str(raised.value) == MISMATCH.format(600)
    qa.close()
    with NewsQA(index_400, embedder=embedder) as writer:  # no writer lock was left behind
        assert [d.title for d in writer.documents()] == ["Ferry figures"]
        assert writer.add([SHORT]).added == [SHORT.id]
    assert manifest_of(index_400) == before


def test_without_chunk_settings_the_index_own_are_used(index_400: Path, embedder) -> None:
    other = make_document(" ".join(reversed(SENTENCES)), title="Ferry figures, reversed")
    assert len(Chunker(400).split(other)) != len(Chunker().split(other))
    with NewsQA(index_400, embedder=embedder) as qa:
        assert qa.add([other]).chunks == len(Chunker(400).split(other))
        assert (qa.config.max_chars, qa.chunker.max_chars) == (400, 400)


def test_settings_of_each_process_may_differ_from_the_index(index_400: Path, embedder) -> None:
    asked = IndexConfig(max_chars=400, candidates=7, rrf_k=60, top_k=2, reader="elsewhere",
                        backend="onnx")
    with NewsQA(index_400, embedder=embedder, config=asked) as qa:
        hits = qa.retrieve("How many passengers did the ferry carry on day 3?")
        assert hits and qa.retriever.fusion.k == 60  # fused with its own k
        assert qa.retriever.candidates == 7 and qa.config == asked
    assert config_of(manifest_of(index_400)) == IndexConfig(max_chars=400)  # as created


# ---- the command line -------------------------------------------------------------------------

def test_cli_says_in_one_line_that_the_chunk_settings_differ(tmp_path: Path, capsys) -> None:
    texts = []
    for n, document in enumerate((LONG, SHORT, make_document("A third, short article."))):
        texts.append(tmp_path / f"article{n}.txt")
        texts[-1].write_text(document.text, encoding="utf-8")
    index = str(tmp_path / "index")
    assert main(["index", str(texts[0]), "--index", index, "--chunk-chars", "400"]) == 0
    assert main(["index", str(texts[1]), "--index", index]) == 0  # the index's own settings
    capsys.readouterr()
    assert main(["index", str(texts[2]), "--index", index, "--chunk-chars", "300"]) == 1
    out, err = capsys.readouterr()
    assert (out, err.splitlines()) == ("", [f"newsqa: error: {MISMATCH.format(300)}"])
    assert main(["sources", "--index", index]) == 0
    assert capsys.readouterr().out.endswith("2 document(s)\n")
    assert config_of(manifest_of(Path(index))) == IndexConfig(max_chars=400)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("dimension", "abc", "a whole number from 1 to 65,536"),
    ("dimension", -1, "a whole number from 1 to 65,536"),
    ("dimension", 10**12, "a whole number from 1 to 65,536"),
    ("dimension", None, "a whole number from 1 to 65,536"),
    ("dimension", 384.0, "a whole number from 1 to 65,536"),
    ("embedder", 7, "the name of a model"),
    ("embedder", "", "the name of a model"),
])
def test_a_damaged_manifest_field_is_one_line_naming_it(tmp_path: Path, capsys, field: str,
                                                          value: object, expected: str) -> None:
    """Listing the sources reads the manifest and builds the vector index from its dimension,
    without an embedder to check it against."""
    index = tmp_path / "index"
    Store.open(index, embedder_name="test/random", dimension=384).close()
    write_manifest(index, {**manifest_of(index), field: value})
    assert main(["sources", "--index", str(index)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"newsqa: error: The index at {index} is corrupt: {MANIFEST} has {field} {value!r}, "
        f"not {expected}."]
