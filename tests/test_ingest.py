"""Tests for qa.ingest: every format, folders, stable ids, bad input, real corpora and URLs."""
from __future__ import annotations

import dataclasses
import gzip
import http.server
import logging
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa.errors import IngestError
from qa.ingest import Fetcher, _CheckedRedirects, document_id, load, load_url, make_document

REPO = Path(__file__).resolve().parents[1]
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
    assert doc.published == "2024-03-18"
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


@pytest.mark.parametrize("name", ["harbour.txt", "nested/orchard.md", "observatory.html",
                                  "briefs.json", "wire.jsonl", "lakeside.rss", "mountain.atom"])
def test_gzipped_files_load_like_the_originals(tmp_path: Path, name: str) -> None:
    original = GOOD / name
    packed = tmp_path / (original.name + ".gz")
    packed.write_bytes(gzip.compress(original.read_bytes()))
    assert load([packed]) == load([original])


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


# --- URLs ------------------------------------------------------------------------------------

ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/comet.html": (200, {"Content-Type": "text/html; charset=utf-8"},
                    (GOOD / "observatory.html").read_bytes()),
    "/feed": (200, {"Content-Type": "application/rss+xml"}, (GOOD / "lakeside.rss").read_bytes()),
    "/unlabelled-feed": (200, {"Content-Type": "application/octet-stream"},
                         (GOOD / "mountain.atom").read_bytes()),
    "/moved": (302, {"Location": "/comet.html"}, b""),
    "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
    "/big": (200, {"Content-Type": "text/html"}, b"<p>" + b"x" * 2000 + b"</p>"),
    "/photo.png": (200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + bytes(64)),
}
SLOW_SECONDS = 1.0


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path == "/slow":
            time.sleep(SLOW_SECONDS)
        status, headers, body = ROUTES.get(self.path, (404, {}, b"not found"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the timeout test)

    def log_message(self, *args: object) -> None:
        """Keep test output clean."""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """Base URL of a local HTTP server serving ``ROUTES``."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


LOCAL = Fetcher(allow_private=True, timeout=5)


def test_html_page_url_becomes_one_document_with_the_final_url(server: str) -> None:
    [doc] = load_url(f"{server}/comet.html", LOCAL)
    [from_file] = load([GOOD / "observatory.html"])
    assert doc == dataclasses.replace(from_file, url=f"{server}/comet.html")


def test_redirect_is_followed_and_the_final_url_kept(server: str) -> None:
    [doc] = load_url(f"{server}/moved", LOCAL)
    assert doc.url == f"{server}/comet.html"


def test_feed_url_gives_one_document_per_entry(server: str) -> None:
    assert load([f"{server}/feed"], fetcher=LOCAL) == load([GOOD / "lakeside.rss"])


def test_feed_is_recognised_without_a_feed_content_type(server: str) -> None:
    [doc] = load_url(f"{server}/unlabelled-feed", LOCAL)
    assert doc.title == "Ski season to start early"


def test_response_larger_than_the_limit_is_refused(server: str) -> None:
    size = len(ROUTES["/big"][2])
    with pytest.raises(IngestError, match="larger than the limit"):
        Fetcher(max_bytes=size - 1, allow_private=True).fetch(f"{server}/big")
    body, content_type, _ = Fetcher(max_bytes=size, allow_private=True).fetch(f"{server}/big")
    assert len(body) == size and content_type == "text/html"


def test_slow_server_times_out(server: str) -> None:
    with pytest.raises(IngestError, match="could not be fetched"):
        Fetcher(timeout=SLOW_SECONDS / 10, allow_private=True).fetch(f"{server}/slow")


@pytest.mark.parametrize(("path", "reason"), [
    ("/missing", "HTTP 404"),
    ("/photo.png", "neither an HTML page nor an RSS or Atom feed"),
    ("/to-file", "file:///etc/passwd"),
])
def test_failed_or_unusable_responses_are_errors(server: str, path: str, reason: str) -> None:
    with pytest.raises(IngestError, match=reason):
        load_url(f"{server}{path}", LOCAL)


def test_redirect_to_a_private_address_is_refused() -> None:
    # no public server redirects to a private one here, so ask the redirect handler directly
    handler = _CheckedRedirects(Fetcher().check_url)
    request = urllib.request.Request("http://example.com/news")
    with pytest.raises(IngestError, match="non-public address 127.0.0.1"):
        handler.redirect_request(request, None, 302, "Found", {}, "http://127.0.0.1/admin")


def test_loopback_is_refused_by_default(server: str) -> None:
    with pytest.raises(IngestError, match="non-public address 127.0.0.1"):
        load([f"{server}/comet.html"])


@pytest.mark.parametrize("url", [
    "http://localhost/", "http://[::1]/", "http://10.1.2.3/", "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/", "http://240.0.0.1/",
    "http://224.0.0.1/", "http://[::ffff:127.0.0.1]/",
])
def test_private_and_reserved_addresses_are_refused(url: str) -> None:
    with pytest.raises(IngestError, match="non-public address"):
        Fetcher().fetch(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/news.txt",
                                 "gopher://example.com/", "http:///no-host"])
def test_only_http_and_https_urls_are_fetched(url: str) -> None:
    with pytest.raises(IngestError, match="not an http or https URL|no host name"):
        load([url])
