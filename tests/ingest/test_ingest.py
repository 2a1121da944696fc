"""Tests for qa.ingest: every format, folders, stable ids, bad input, real corpora, dates.
Fetching URLs: test_fetch.py."""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import gzip
import logging
import re
import os
import shutil
import socket
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import article
from qa.errors import IngestError
from qa.ingest import documents as ingest_documents
from qa.ingest import files as ingest_files
from qa.ingest.documents import document_id, make_document
from qa.ingest.fetch import Fetcher
from qa.ingest.files import load, load_uploads, load_urls
from qa.types import Document

REPO = Path(__file__).resolve().parents[2]
GOOD = REPO / "tests" / "data" / "good"
BAD = REPO / "tests" / "data" / "bad"
SEED = REPO / "seeds" / "000_2ffe86633dc2dc73.txt"
CORPORA = REPO.parent / "shared" / "data" / "corpora"


def corpus(name: str) -> Path:
    path = CORPORA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder exists only on the dev machine)")
    return path


# --- documents and ids -----------------------------------------------------------------------

def test_document_id_is_a_short_hash_that_ignores_whitespace_layout() -> None:
    spaced, plain = "Bridge  reopens.\n\nCars return.", "Bridge reopens. Cars return."
    assert document_id(spaced) == document_id(plain)
    assert document_id("Bridge reopens.") != document_id("Bridge closes.")
    assert len(document_id("x")) == 16 and int(document_id("x"), 16) >= 0


def test_make_document_normalises_text_and_keeps_paragraphs() -> None:
    doc = make_document("\r\n  Headline\r\n\r\nBody text.\rMore.  \n", title=" A  title ")
    assert doc.text == "Headline\n\nBody text.\nMore."
    assert doc.id == document_id(doc.text)
    assert doc.title == "A title"


@pytest.mark.parametrize(("raw", "iso"), [
    ("", ""),
    ("2024-03-18", "2024-03-18"),
    ("18 March 2024", "2024-03-18"),
    ("2024-03-18T09:30:00Z", "2024-03-18T09:30:00+00:00"),
    ("Thu, 15 Feb 2024 08:00:00 +0000", "2024-02-15T08:00:00+00:00"),
    ("26-FEB-1987 15:01:01.79", "1987-02-26T15:01:01"),
])
def test_make_document_normalises_dates_to_iso_8601(raw: str, iso: str) -> None:
    assert make_document("Text.", published=raw).published == iso


@pytest.mark.parametrize("raw", ["next Tuesday", "Monday", "soon", "27-MAR-1987 00:02&#5;RM"])
def test_make_document_refuses_an_unreadable_date(raw: str) -> None:
    with pytest.raises(IngestError, match="date"):
        make_document("Text.", published=raw)


def test_make_document_refuses_empty_text() -> None:
    with pytest.raises(IngestError, match="empty"):
        make_document(" \n\t ")


# --- formats ---------------------------------------------------------------------------------

def test_text_file_title_is_its_first_line_and_text_is_the_whole_file() -> None:
    path = GOOD / "harbour.txt"
    [doc] = load([path])
    assert doc.title == "Harbour bridge reopens after repairs"
    assert doc.text == path.read_text(encoding="utf-8").strip()
    assert (doc.source, doc.url, doc.published) == ("", "", "")


def test_markdown_title_loses_its_heading_marks_but_text_keeps_them() -> None:
    [doc] = load([GOOD / "nested" / "orchard.md"])
    assert doc.title == "Orchard harvest hits record"
    assert doc.text.startswith("# Orchard harvest hits record\n\nGrowers")


def test_text_file_with_a_long_first_line_is_titled_by_its_start(tmp_path: Path) -> None:
    path = tmp_path / "council-budget.txt"
    path.write_text("word " * 60 + "\n\nSecond paragraph.", encoding="utf-8")
    assert load([path])[0].title == ("word " * 24).strip() + "…"


def test_seed_article_title_is_the_start_of_its_opening_paragraph() -> None:
    [doc] = load([SEED])
    # the first line is a 216-character paragraph, too long to be a headline: cut at a word
    assert doc.title.startswith("Russia and Ukraine carried out an exchange of prisoners of war")
    assert doc.title.endswith("…") and len(doc.title) <= 121
    assert doc.text == SEED.read_text(encoding="utf-8").strip()
    assert "first list of 640 POWs" in doc.text


def test_html_article_gives_plain_main_text_and_metadata() -> None:
    [doc] = load([GOOD / "observatory.html"])
    assert doc.title == "Observatory spots new comet"
    assert doc.source == "The Northern Courier"
    assert doc.url == "https://courier.example.com/science/new-comet"
    assert (doc.published, doc.date_source) == ("2024-03-18T09:30:00+00:00", "html-meta")
    assert "Fellside Observatory have discovered a comet" in doc.text
    for boilerplate in ("<p>", "window.tracking", "font-family", "All rights reserved"):
        assert boilerplate not in doc.text


def test_json_list_of_records_accepts_content_and_date_fields() -> None:
    library, ferry = load([GOOD / "briefs.json"])
    assert (library.title, library.source, library.url, library.published) == (
        "Library extends opening hours", "Town Gazette",
        "https://news.example.org/library-hours", "2024-02-01")
    assert ferry.text == "Island ferry fares will stay at their current level for another year."
    assert ferry.published == "2024-02-15T08:00:00+00:00"


def test_json_single_object(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text('{"title": "Solo", "body": "Only one record here."}', encoding="utf-8")
    [doc] = load([path])
    assert (doc.title, doc.text) == ("Solo", "Only one record here.")


def test_jsonl_skips_empty_records_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        strike, wheat = load([GOOD / "wire.jsonl"])
    assert "Skipped 1 record(s) with empty text" in caplog.text and "line 2" in caplog.text
    assert (strike.title, strike.source, strike.published) == (
        "Rail strike called off", "Example Wire", "1987-02-26T15:01:01")
    assert wheat.text == "Wheat futures rose 3 percent on Monday on fears of a poor harvest."


def test_jsonl_drops_an_unreadable_date_but_keeps_the_record(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "dates.jsonl"
    path.write_text('{"text": "Kept.", "date": "27-MAR-1987 00:02:59.13&#5;RM"}\n',
                    encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        [doc] = load([path])
    assert (doc.text, doc.published) == ("Kept.", "")
    assert "unreadable date" in caplog.text and "line 1" in caplog.text


def test_rss_feed_gives_one_plain_text_document_per_item() -> None:
    regatta, footpath = load([GOOD / "lakeside.rss"])
    assert regatta.text == ("The annual regatta drew 300 boats from six countries.\n\n"
                            "Organisers called it the biggest in a decade.")
    assert (regatta.title, regatta.source, regatta.url, regatta.published) == (
        "Sailing regatta draws 300 boats", "Lakeside Local News",
        "https://lakeside.example.net/regatta", "2024-07-06T14:00:00+00:00")
    assert footpath.published == "2024-07-08T07:15:00+00:00"  # +0200 read as UTC


def test_atom_feed_entry_html_becomes_plain_text() -> None:
    [doc] = load([GOOD / "mountain.atom"])
    assert doc.text == ("Heavy snowfall means the ski lifts will open on 22 November, "
                        "two weeks early.")
    assert (doc.title, doc.source, doc.url, doc.published) == (
        "Ski season to start early", "Mountain Times",
        "https://mountain.example.com/ski-season", "2024-11-01T07:45:00+00:00")


@pytest.mark.parametrize("name", ["feed", "news.php"])
def test_feed_with_an_unknown_suffix_is_recognised(tmp_path: Path, name: str) -> None:
    shutil.copy(GOOD / "lakeside.rss", tmp_path / name)
    assert load([tmp_path / name]) == load([GOOD / "lakeside.rss"])


def test_xml_that_is_no_feed_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Named, it is an error with the parser's reason; in a folder, a warning and a skip."""
    drawing = write(tmp_path / "drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><rect')
    with pytest.raises(IngestError, match="not an RSS or Atom feed with entries .+") as error:
        load([drawing])
    assert str(drawing) in str(error.value)
    shutil.copy(GOOD / "harbour.txt", tmp_path / "harbour.txt")
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        docs = load([tmp_path])
    assert [doc.title for doc in docs] == ["Harbour bridge reopens after repairs"]
    assert f"Skipping: {drawing} is not an RSS or Atom feed with entries (" in caplog.text


@pytest.mark.parametrize("name", ["harbour.txt", "nested/orchard.md", "observatory.html",
                                  "briefs.json", "wire.jsonl", "lakeside.rss", "mountain.atom"])
def test_gzipped_files_load_like_the_originals(tmp_path: Path, name: str) -> None:
    original = GOOD / name
    packed = tmp_path / (original.name + ".gz")
    packed.write_bytes(gzip.compress(original.read_bytes()))
    unpacked, loaded = load([packed]), load([original])
    assert [dataclasses.replace(d, key="") for d in unpacked] == \
        [dataclasses.replace(d, key="") for d in loaded]
    # an article file is named by its own path; each article of a file of many, by its own id
    assert [d.key for d in unpacked] == [d.key.replace(str(original), str(packed))
                                         for d in loaded]


# --- folders and ids -------------------------------------------------------------------------

def test_folder_is_loaded_recursively_in_sorted_order() -> None:
    files = sorted(p for p in GOOD.rglob("*") if p.is_file())
    docs = load([GOOD])
    assert docs == [doc for path in files for doc in load([path])]
    assert "Orchard harvest hits record" in {doc.title for doc in docs}
    assert len(docs) == 10


def test_folder_skips_hidden_and_unsupported_files(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    shutil.copy(GOOD / "harbour.txt", tmp_path / "harbour.txt")
    (tmp_path / ".draft.txt").write_text("A hidden draft.", encoding="utf-8")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "old.txt").write_text("A cached copy.", encoding="utf-8")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        docs = load([tmp_path])
    assert [doc.title for doc in docs] == ["Harbour bridge reopens after repairs"]
    assert "photo.png" in caplog.text


def test_folder_without_supported_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(IngestError, match="no supported files"):
        load([tmp_path])


def test_reloading_gives_equal_documents_and_same_text_gives_same_id(tmp_path: Path) -> None:
    assert load([GOOD]) == load([GOOD])
    copy = tmp_path / "copy.txt"
    copy.write_text((GOOD / "harbour.txt").read_text(encoding="utf-8").replace("\n", "\r\n"),
                    encoding="utf-8")
    assert load([copy])[0].id == load([GOOD / "harbour.txt"])[0].id


SECRET = "The database password is hunter2."


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    """A folder beside the one being indexed, holding a secret that must never be read."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "keys.txt").write_text(SECRET, encoding="utf-8")
    return folder


def test_folder_never_follows_links_out_of_itself(tmp_path: Path, outside: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    shutil.copy(GOOD / "harbour.txt", tree / "harbour.txt")
    (tree / "passwd.txt").symlink_to(outside / "keys.txt")  # a file outside
    (tree / "sub" / "etc.txt").symlink_to("/etc/passwd")
    (tree / "loot").symlink_to(outside, target_is_directory=True)  # a folder outside
    (tree / "sub" / "again.txt").symlink_to(tree / "harbour.txt")  # inside: read once
    (tree / "sub" / "loop").symlink_to(tree, target_is_directory=True)  # a cycle
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        docs = load([tree])
    assert [doc.title for doc in docs] == ["Harbour bridge reopens after repairs"]
    assert all("hunter2" not in doc.text and "root:" not in doc.text for doc in docs)
    for link in ("passwd.txt", "etc.txt", "loot"):
        assert f"{link}: it links to outside the folder" in caplog.text


def test_a_file_that_becomes_a_link_out_after_the_listing_is_refused_when_read(
        tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(GOOD / "harbour.txt", tree / "harbour.txt")
    for name in ("late.txt", "late.dat"):  # a known format, and one sniffed for a feed
        (tree / name).symlink_to(outside / "keys.txt")
    # the listing saw ordinary files: the links appeared between the listing and the reads
    monkeypatch.setattr(ingest_files, "_real_inside", lambda path, root: path.absolute())
    errors: list[str] = []
    docs = load([tree], errors=errors)
    assert [doc.title for doc in docs] == ["Harbour bridge reopens after repairs"]
    assert all("hunter2" not in doc.text for doc in docs)
    assert errors == [f"{tree / name} links to outside the folder being indexed; skipped."
                      for name in ("late.dat", "late.txt")]


def outcome_of(action: Callable[[], object], fifo: Path) -> object:
    """What ``action`` returns or raises, run in a thread so that a read blocked on ``fifo``
    fails the test instead of hanging the suite; a writer then lets the stuck read go on."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(action())
        except Exception as err:  # noqa: BLE001 (handed to the test, which checks it)
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)  # a hang guard, not a timing: a correct load never waits for a writer
    blocked = thread.is_alive()
    with contextlib.suppress(OSError):  # ENXIO: no reader is waiting, nothing to release
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    thread.join(30)
    assert not blocked, f"reading {fifo} blocked, waiting for a writer"
    return outcome[0]


NOT_REGULAR = "is not a regular file but {}; only regular files are read."


def test_folder_skips_a_fifo_with_a_line_and_indexes_the_rest(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copy(GOOD / "harbour.txt", tmp_path / "harbour.txt")
    fifo = tmp_path / "wire.txt"
    os.mkfifo(fifo)
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        docs = outcome_of(lambda: load([tmp_path]), fifo)
    assert isinstance(docs, list) and [doc.title for doc in docs] == [
        "Harbour bridge reopens after repairs"]
    assert f"Skipping: {fifo} {NOT_REGULAR.format('a FIFO (named pipe)')}" in caplog.text


def test_folder_skips_dangling_and_looping_links_with_a_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copy(GOOD / "harbour.txt", tmp_path / "harbour.txt")
    (tmp_path / "gone.txt").symlink_to(tmp_path / "deleted.txt")
    (tmp_path / "ping.txt").symlink_to(tmp_path / "pong.txt")
    (tmp_path / "pong.txt").symlink_to(tmp_path / "ping.txt")
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        docs = load([tmp_path])
    assert [doc.title for doc in docs] == ["Harbour bridge reopens after repairs"]
    assert f"Skipping: {tmp_path / 'gone.txt'} does not exist." in caplog.text
    for name in ("ping.txt", "pong.txt"):
        assert (f"Skipping: {tmp_path / name} cannot be read "
                f"({os.strerror(errno.ELOOP)}).") in caplog.text


@pytest.mark.parametrize("name", ["late.txt", "late.dat"])  # a known format, and a sniffed one
def test_a_file_that_becomes_a_fifo_after_the_listing_is_refused_when_opened(
        tmp_path: Path, name: str) -> None:
    # What the folder does with each file it listed, called once the file became a FIFO
    fifo = tmp_path / name
    os.mkfifo(fifo)
    refused = outcome_of(
        lambda: ingest_files._load_file(fifo, named=False, root=tmp_path.resolve()), fifo)
    assert isinstance(refused, IngestError)  # not a skip: the folder lists it in its errors
    assert str(refused) == f"{fifo} {NOT_REGULAR.format('a FIFO (named pipe)')}"


def test_a_subfolder_that_cannot_be_listed_is_reported_and_the_rest_indexed(
        tmp_path: Path) -> None:
    # A chain of folders deeper than PATH_MAX: the system refuses to list the first folder whose
    # path is too long, whoever asks (root too, whom permissions would not stop).
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(GOOD / "harbour.txt", tree / "harbour.txt")
    name, unlisted, depth = "d" * 250, tree, 0
    while len(str(unlisted)) < os.pathconf("/", "PC_PATH_MAX"):
        unlisted, depth = unlisted / name, depth + 1
    folder = os.open(tree, os.O_RDONLY)
    try:
        for _ in range(depth + 1):
            os.mkdir(name, dir_fd=folder)
            inner = os.open(name, os.O_RDONLY, dir_fd=folder)
            os.close(folder)
            folder = inner
        file = os.open("lost.txt", os.O_WRONLY | os.O_CREAT, dir_fd=folder)
        os.write(file, b"Never listed.")
        os.close(file)
    finally:
        os.close(folder)
    line = f"{unlisted} cannot be read ({os.strerror(errno.ENAMETOOLONG)})."
    errors: list[str] = []
    assert [doc.title for doc in load([tree], errors=errors)] == [
        "Harbour bridge reopens after repairs"]
    assert errors == [line]
    with pytest.raises(IngestError) as error:
        load([tree])
    assert str(error.value) == line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="file permissions do not stop root from listing a folder")
def test_an_unreadable_subfolder_is_reported(tmp_path: Path) -> None:
    shutil.copy(GOOD / "harbour.txt", tmp_path / "harbour.txt")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "secret.txt").write_text("Classified.", encoding="utf-8")
    locked.chmod(0)
    try:
        errors: list[str] = []
        assert len(load([tmp_path], errors=errors)) == 1
    finally:
        locked.chmod(0o700)
    assert errors == [f"{locked} cannot be read (permission denied)."]


def test_folder_given_through_a_link_reads_what_it_holds(tmp_path: Path) -> None:
    link = tmp_path / "articles"
    link.symlink_to(GOOD, target_is_directory=True)
    assert load([link]) == load([GOOD])


@contextlib.contextmanager
def file_access() -> Iterator[list[tuple[str, str]]]:
    """The files this thread opens and the folders it lists meanwhile, as Python's audit hooks
    report them: proof that something reads nothing from disk."""
    seen: list[tuple[str, str]] = []
    _WATCHERS[threading.get_ident()] = seen
    try:
        yield seen
    finally:
        del _WATCHERS[threading.get_ident()]


_WATCHERS: dict[int, list[tuple[str, str]]] = {}


def _audit(event: str, args: tuple) -> None:
    seen = _WATCHERS.get(threading.get_ident())
    if seen is not None and event in ("open", "os.scandir", "os.listdir"):
        seen.append((event, str(args[0]) if args else ""))


sys.addaudithook(_audit)  # hooks cannot be removed: this one records only inside file_access


LOCAL = Fetcher(allow_private=True, timeout=5)  # as the URL tests use it (test_fetch.py)


@pytest.mark.parametrize("target", ["/etc/passwd", "/etc", "file:///etc/passwd", "~/.ssh/id_rsa",
                                    "seeds", "tests/data/good", "../shared/data", "nowhere/x.txt",
                                    "FILE:/etc/passwd", "\\\\server\\share"])
def test_urls_only_fetch_urls_and_read_no_file(target: str) -> None:
    with file_access() as opened, pytest.raises(IngestError) as error:
        load_urls([target], LOCAL)
    assert opened == []
    # the same sentence whether the path exists or not: it reveals nothing about the disk
    assert str(error.value) == f"{target} is not an http or https URL."


def test_urls_refuse_a_real_folder_with_a_secret(outside: Path) -> None:
    for target in (str(outside), str(outside / "keys.txt"), outside.as_uri()):
        with file_access() as opened, pytest.raises(IngestError, match="not an http or https"):
            load_urls([target], LOCAL)
        assert opened == []


def test_urls_must_come_as_a_list() -> None:
    with pytest.raises(TypeError, match="list of targets"):
        load_urls("https://example.com/")  # type: ignore[arg-type]


def test_uploads_read_exactly_the_given_files(tmp_path: Path) -> None:
    upload = tmp_path / "a1b2" / "harbour.txt"
    upload.parent.mkdir()
    shutil.copy(GOOD / "harbour.txt", upload)
    # not named by where the server put the upload (Document.key), which says nothing of it
    assert load_uploads([str(upload)]) == [dataclasses.replace(d, key="")
                                           for d in load([GOOD / "harbour.txt"])]


@pytest.mark.parametrize("make", ["folder", "link to a secret", "link to a folder", "missing"])
def test_uploads_refuse_folders_and_links_naming_only_the_file(
        tmp_path: Path, outside: Path, make: str) -> None:
    upload = tmp_path / "gradio" / "0f3c9a" / "upload.txt"
    upload.parent.mkdir(parents=True)
    if make == "folder":
        upload.mkdir()
    elif make == "link to a secret":
        upload.symlink_to(outside / "keys.txt")
    elif make == "link to a folder":
        upload.symlink_to(outside, target_is_directory=True)
    with file_access() as opened, pytest.raises(IngestError) as error:
        load_uploads([upload])
    assert str(error.value) == "upload.txt is not a regular file."
    assert opened == []


def test_upload_errors_name_the_file_not_where_the_server_keeps_it(tmp_path: Path) -> None:
    upload = tmp_path / "gradio" / "0f3c9a" / "photo.txt"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(IngestError, match="binary") as error:
        load_uploads([upload])
    assert str(error.value).startswith("photo.txt ") and str(tmp_path) not in str(error.value)


# --- bad input -------------------------------------------------------------------------------

def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_INPUTS = {
    "missing": (lambda tmp: tmp / "nowhere.txt", "does not exist"),
    "binary": (lambda tmp: BAD / "binary.txt", "binary"),
    "not utf-8": (lambda tmp: BAD / "latin1.txt", "not UTF-8"),
    "malformed json": (lambda tmp: BAD / "malformed.json", "not valid JSON"),
    "malformed feed": (lambda tmp: BAD / "malformed.rss", "not an RSS or Atom feed"),
    "empty": (lambda tmp: write(tmp / "empty.txt", b""), "empty"),
    "only whitespace": (lambda tmp: write(tmp / "blank.md", b" \n\n\t"), "empty"),
    "unsupported": (lambda tmp: write(tmp / "report.pdf", b"%PDF-1.4"), "not a supported"),
    "bad gzip": (lambda tmp: write(tmp / "corpus.jsonl.gz", b"not gzip"), "gzip"),
    "malformed jsonl line": (lambda tmp: write(tmp / "c.jsonl", b'{"text": "ok"}\n{"text": \n'),
                             "line 2 is not valid JSON"),
    "record without text": (lambda tmp: write(tmp / "c.jsonl", b'{"text": "ok"}\n{"title": "x"}'),
                            "line 2: The record has no 'text' field"),
    "record not an object": (lambda tmp: write(tmp / "c.json", b'[{"text": "ok"}, 3]'),
                             "record 2: The record is not a JSON object"),
    "text not a string": (lambda tmp: write(tmp / "c.json", b'{"text": ["a"]}'), "not a string"),
    "no record with text": (lambda tmp: write(tmp / "c.jsonl", b'{"text": ""}'), "no record"),
    "feed without entries": (lambda tmp: write(tmp / "f.rss", b'<rss version="2.0"><channel>'
                                               b"<title>T</title></channel></rss>"),
                             "not an RSS or Atom feed"),
    "html without text": (lambda tmp: write(tmp / "p.html", b"<html><body></body></html>"),
                          "no article text"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_one_clear_error_naming_the_path(tmp_path: Path, case: str) -> None:
    make_path, reason = BAD_INPUTS[case]
    path = make_path(tmp_path)
    with pytest.raises(IngestError, match=reason) as error:
        load([path])
    assert str(path) in str(error.value)


def test_a_single_target_must_be_wrapped_in_a_list() -> None:
    with pytest.raises(TypeError, match="list of targets"):
        load(str(GOOD / "harbour.txt"))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["wire.txt", "wire.jsonl.gz", "wire"])  # "wire" is sniffed
def test_naming_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path, name: str) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    refused = outcome_of(lambda: load([fifo]), fifo)
    assert isinstance(refused, IngestError)
    assert str(refused) == f"{fifo} {NOT_REGULAR.format('a FIFO (named pipe)')}"


def test_naming_a_socket_or_a_device_is_refused(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a socket's path must be short
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind("news.txt")
        with pytest.raises(IngestError) as error:
            load([Path("news.txt")])
    assert str(error.value) == f"news.txt {NOT_REGULAR.format('a socket')}"
    with pytest.raises(IngestError) as error:
        load(["/dev/null"])  # read, it would be empty; /dev/zero would never end
    assert str(error.value) == f"/dev/null {NOT_REGULAR.format('a character device')}"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="file permissions do not stop root from reading")
def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("Classified.", encoding="utf-8")
    path.chmod(0)
    with pytest.raises(IngestError, match="permission denied") as error:
        load([path])
    assert str(path) in str(error.value)


# --- real corpora ----------------------------------------------------------------------------

def test_bbc_corpus_loads_every_article() -> None:
    docs = load([corpus("bbc_news_2225.jsonl.gz")])
    assert len(docs) == 2225
    assert (docs[0].title, docs[0].source) == ("Ad sales boost Time Warner profit",
                                               "BBC News (2004-2005)")
    assert docs[0].text.startswith("Quarterly profits at US media giant TimeWarner")


def test_ag_news_corpus_loads_every_item() -> None:
    docs = load([corpus("ag_news_test_7600.jsonl.gz")])
    assert len(docs) == 7600 and docs[0].title == "Fears for T N pension after talks"


def test_reuters_corpus_loads_all_but_its_empty_items(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        docs = load([corpus("reuters21578.jsonl.gz")])
    assert len(docs) == 21_578 - 2_535
    assert "Skipped 2535 record(s) with empty text" in caplog.text
    assert (docs[0].title, docs[0].published) == ("BAHIA COCOA REVIEW", "1987-02-26T15:01:01")


# --- dates: from metadata only, and where each came from -------------------------------------

def load_html_file(tmp_path: Path, html: bytes) -> Document:
    path = tmp_path / "article.html"
    path.write_bytes(html)
    [doc] = load([path])
    return doc


def test_html_without_date_metadata_is_undated_whatever_its_text_says(tmp_path: Path) -> None:
    doc = load_html_file(tmp_path, article())
    assert "closed in 2001" in doc.text and "4 May 2023" in doc.text
    assert (doc.published, doc.date_source) == ("", "")


@pytest.mark.parametrize("head, published, source", [
    ('<meta property="article:published_time" content="2024-06-02T08:15:00Z">',
     "2024-06-02T08:15:00+00:00", "html-meta"),
    ('<meta name="pubdate" content="2024-06-02">', "2024-06-02", "html-meta"),
    ('<meta itemprop="datePublished" content="2024-06-02">', "2024-06-02", "html-meta"),
    ('<meta name="DC.date.issued" content="2024-06-02">', "2024-06-02", "html-meta"),
    # a tag with junk is passed over for the next one
    ('<meta name="date" content="soon"><meta name="publish-date" content="2024-06-02">',
     "2024-06-02", "html-meta"),
    ('<script type="application/ld+json">{"@context": "https://schema.org", "@graph": ['
     '{"@type": "NewsArticle", "headline": "Harbour reopens", "datePublished": '
     '"2024-06-02T10:00:00+02:00", "comment": {"datePublished": "2024-06-05"}}]}</script>',
     "2024-06-02T10:00:00+02:00", "json-ld"),
    ('<script type="application/ld+json">{"@type": "Article", "dateCreated": "2024-06-01",'
     ' "dateModified": "2024-06-09"}</script>', "2024-06-01", "json-ld"),
    ('<script type="application/ld+json">{not json</script>', "", ""),
    ('<script type="application/ld+json">' + "[" * 100_000 + "</script>", "", ""),
    ('<meta property="og:title" content="2024-06-02">', "", ""),  # not a date's tag
])
def test_html_date_comes_from_meta_tags_or_json_ld_and_says_which(
        tmp_path: Path, head: str, published: str, source: str) -> None:
    doc = load_html_file(tmp_path, article(head))
    assert (doc.published, doc.date_source) == (published, source)


def test_every_format_records_where_its_date_came_from() -> None:
    assert {(d.published, d.date_source) for d in load([GOOD / "briefs.json"])} == {
        ("2024-02-01", "json-field"), ("2024-02-15T08:00:00+00:00", "json-field")}
    assert {d.date_source for d in load([GOOD / "lakeside.rss"])} == {"feed"}
    [plain] = load([GOOD / "harbour.txt"])
    assert (plain.published, plain.date_source) == ("", "")
    assert make_document("Text.", published="", date_source="feed").date_source == ""


# --- bounded resources and hostile input ------------------------------------------------------

def peak_memory_of(action: Callable[[], object]) -> int:
    """Peak bytes that Python allocated while ``action`` ran (it raises ``IngestError``)."""
    tracemalloc.start()
    try:
        with pytest.raises(IngestError):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_bomb_is_refused_after_inflating_only_up_to_the_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_files, "MAX_FILE_BYTES", 1_000_000)
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(b'{"text": "' + b"a" * 50_000_000 + b'"}\n'))
    assert bomb.stat().st_size < 100_000
    peak = peak_memory_of(lambda: load([bomb]))
    with pytest.raises(IngestError, match="unpacks to more than 1,000,000 bytes") as error:
        load([bomb])
    assert str(bomb) in str(error.value)
    assert peak < 5_000_000  # the limit, a copy and buffers: not the 50 MB it unpacks to


def test_file_larger_than_an_article_can_be_is_refused_unread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_documents, "MAX_DOCUMENT_CHARS", 1_000)
    big = write(tmp_path / "big.txt", b"Words and more words. " * 100_000)  # 2.2 MB
    peak = peak_memory_of(lambda: load([big]))
    with pytest.raises(IngestError, match="more than 4,000 bytes, the limit for one article"):
        load([big])
    assert peak < 100_000  # 4,001 bytes read, not 2.2 MB


def test_document_over_the_character_limit_is_refused_naming_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_documents, "MAX_DOCUMENT_CHARS", 1_000)
    wide = tmp_path / "wide.md"
    wide.write_text("é" * 1_500, encoding="utf-8")  # 3,000 bytes: read, then counted
    with pytest.raises(IngestError, match="1,500 characters long; the limit is 1,000") as error:
        load([wide])
    assert str(wide) in str(error.value)
    fits = tmp_path / "fits.md"
    fits.write_text("é" * 1_000, encoding="utf-8")
    assert len(load([fits])[0].text) == 1_000


def test_corpus_skips_a_record_it_cannot_index_and_keeps_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(ingest_documents, "MAX_DOCUMENT_CHARS", 1_000)
    corpus_file = write(tmp_path / "c.jsonl", b'{"text": "Harbour reopens."}\n'
                        b'{"text": "' + b"x" * 2_000 + b'"}\n'
                        b'{"text": "Bad \\ud800 escape."}\n'
                        b'{"text": "Orchard blooms."}\n')
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        docs = load([corpus_file])
    assert [d.text for d in docs] == ["Harbour reopens.", "Orchard blooms."]
    assert "Skipped 2 record(s) that cannot be indexed" in caplog.text
    assert "line 2: The document is 2,000 characters long" in caplog.text


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("deep.json", b"[" * 100_000, r"deep.json is not valid JSON \(nested too deeply\)"),
    ("deep.jsonl", b'{"text": "ok"}\n' + b'{"a": ' * 100_000,
     r"deep.jsonl, line 2 is not valid JSON \(nested too deeply\)"),
    ("digits.json", b'{"text": "ok", "n": ' + b"9" * 5_000 + b"}",
     r"not valid JSON \(Exceeds the limit \(4300 digits\)"),
    ("latin1.jsonl", b'{"text": "ok"}\n{"text": "caf\xe9"}\n',
     "latin1.jsonl, line 2 is not UTF-8 text"),
    ("surrogate.json", b'{"text": "lone \\udc80 surrogate"}',
     r"surrogate.json, record 1: The text is not valid Unicode \(a lone surrogate"),
    ("surrogate-title.json", b'{"text": "ok", "title": "\\ud83d"}', "The title is not valid"),
    ("charref.rss", b"<rss version='2.0'><channel><title>T</title><item><title>&#xD800;</title>"
     b"<description>Text.</description></item></channel></rss>", "cannot be read as a feed"),
    ("huge-charref.rss", b"<rss version='2.0'><channel><item><description>&#99999999999;"
     b"</description></item></channel></rss>", "cannot be read as a feed"),
])
def test_hostile_file_gives_one_clear_error(tmp_path: Path, name: str, data: bytes,
                                            reason: str) -> None:
    path = write(tmp_path / name, data)
    with pytest.raises(IngestError, match=reason):
        load([path])


ATOM_WITH_YEAR_ZERO = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Wire</title>
<entry><title>Ancient</title><updated>0000-01-01T00:00:00Z</updated>
  <content>The harbour reopened.</content></entry>
<entry><title>Recent</title><updated>2024-05-06T07:08:09Z</updated>
  <content>The orchard bloomed.</content></entry>
</feed>"""


def test_feed_entry_with_a_date_no_calendar_has_keeps_the_entry_without_a_date(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        docs = load([write(tmp_path / "wire.atom", ATOM_WITH_YEAR_ZERO)])
    assert [(d.title, d.published) for d in docs] == [
        ("Ancient", ""), ("Recent", "2024-05-06T07:08:09+00:00")]
    assert "Ignored 1 unreadable date(s)" in caplog.text and "'0000-01-01T00:00:00Z'" in caplog.text


@pytest.mark.parametrize("value", ["0000-01-01", "١٢" + "9" * 40 + "2020.", "\ud800"])
def test_make_document_refuses_a_hostile_date_with_one_clear_error(value: str) -> None:
    with pytest.raises(IngestError):
        make_document("Text.", published=value)


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file names must be UTF-8")
def test_file_name_that_is_not_utf8_gives_a_printable_title(tmp_path: Path) -> None:
    page = write(tmp_path / os.fsdecode(b"caf\xe9.html"),
                 b"<html><body><p>" + b"The harbour reopened on Monday after repairs. " * 5
                 + b"</p></body></html>")
    [doc] = load([page])
    assert doc.title == "caf\ufffd"


# --- what names an article across versions (issue 26) -------------------------------------------


def test_a_records_id_is_its_external_id_and_names_it_else_its_url(tmp_path: Path) -> None:
    corpus = tmp_path / "records.jsonl"
    corpus.write_text('{"id": " bbc-business-005 ", "url": "https://bbc.example/5", "text": "A"}\n'
                      '{"id": 17, "text": "B"}\n'
                      '{"url": "https://bbc.example/c", "text": "C"}\n'
                      '{"id": null, "text": "D"}\n', encoding="utf-8")
    assert [(d.external_id, d.key) for d in load([corpus])] == [
        ("bbc-business-005", "id:bbc-business-005"), ("17", "id:17"),
        ("", "url:https://bbc.example/c"), ("", "")]  # in a file of many, no file names one
    library, ferry = load([GOOD / "briefs.json"])
    assert (library.key, ferry.key) == ("url:https://news.example.org/library-hours", "")
    regatta, _ = load([GOOD / "lakeside.rss"])
    assert regatta.key == "url:https://lakeside.example.net/regatta"


@pytest.mark.parametrize("value", ["true", "1.5", "[1]", '{"n": 1}'])
def test_a_record_id_that_is_neither_text_nor_a_whole_number_fails_its_file(
        tmp_path: Path, value: str) -> None:
    corpus = tmp_path / "records.jsonl"
    corpus.write_text(f'{{"id": {value}, "text": "A"}}\n', encoding="utf-8")
    with pytest.raises(IngestError, match=re.escape(
            f"{corpus}, line 1: The record's 'id' field is neither text nor a whole number.")):
        load([corpus])


def test_an_article_file_is_named_by_its_resolved_path(tmp_path: Path) -> None:
    folder = tmp_path.resolve() / "articles"
    folder.mkdir()
    shutil.copy(GOOD / "harbour.txt", folder / "harbour.txt")
    (folder / "same.txt").symlink_to("harbour.txt")  # a link inside is read once, where it is
    os.symlink(folder / "harbour.txt", tmp_path / "link.txt")
    odd = folder / os.fsdecode(b"caf\xe9.md")  # a name that is not UTF-8
    odd.write_text("# Cafe opens\n\nA cafe opened by the harbour on Monday.", encoding="utf-8")
    expected = f"file:{folder / 'harbour.txt'}"
    in_folder = {d.title: d.key for d in load([folder])}
    assert in_folder == {"Harbour bridge reopens after repairs": expected,
                         "Cafe opens": f"file:{folder}/caf\ufffd.md"}
    assert [d.key for d in load([tmp_path / "link.txt"])] == [expected]
    assert [d.key for d in load([folder / ".." / "articles" / "harbour.txt"])] == [expected]
