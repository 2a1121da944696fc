"""Tests for qa.ingest.fetch and qa.ingest.urls: the guarded fetcher (http(s) only, public
addresses only, pinned connections, one deadline for the whole fetch, bounded responses) and
URLs as documents (an HTML page, a feed), against a loopback server."""
from __future__ import annotations

import contextlib
import dataclasses
import queue
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import LoopbackServer, QuietHandler, article, serving
from qa.errors import IngestError
from qa.ingest import fetch
from qa.ingest.fetch import Fetcher
from qa.ingest.files import load
from qa.ingest.urls import load_url

REPO = Path(__file__).resolve().parents[2]
GOOD = REPO / "tests" / "data" / "good"


LAST_MODIFIED = "Mon, 03 Jun 2024 07:00:00 GMT"
ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/comet.html": (200, {"Content-Type": "text/html; charset=utf-8"},
                    (GOOD / "observatory.html").read_bytes()),
    "/feed": (200, {"Content-Type": "application/rss+xml"}, (GOOD / "lakeside.rss").read_bytes()),
    "/unlabelled-feed": (200, {"Content-Type": "application/octet-stream"},
                         (GOOD / "mountain.atom").read_bytes()),
    "/moved": (302, {"Location": "/comet.html"}, b""),
    "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
    "/to-loopback": (302, {"Location": "http://127.0.0.2/admin"}, b""),
    "/to-mapped": (307, {"Location": "http://[::ffff:127.0.0.2]/admin"}, b""),
    "/to-nat64": (301, {"Location": "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/"}, b""),
    "/big": (200, {"Content-Type": "text/html"}, b"<p>" + b"x" * 2000 + b"</p>"),
    "/not-modified": (304, {"ETag": '"v1"'}, b""),
    "/undated.html": (200, {"Content-Type": "text/html", "Last-Modified": LAST_MODIFIED},
                      article()),
    "/dated.html": (200, {"Content-Type": "text/html", "Last-Modified": LAST_MODIFIED},
                    article('<meta name="pubdate" content="2024-06-02">')),
    "/photo.png": (200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + bytes(64)),
}
SLOW_SECONDS = 1.0
TRICKLE_GAP_S = 0.05  # between two bytes: far inside any per-read timeout
TRICKLE_BODY = b"<p>" + b"x" * 400 + b"</p>"  # 20 s at that pace: the deadline must cut it
TRICKLE_HEADERS = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Padding: " + b"p" * 400
                   + b"\r\nContent-Length: 9\r\n\r\n<p>hi</p>")


class _Server(LoopbackServer):
    """A loopback server that records each request and what its trickling routes sent."""

    def __init__(self) -> None:
        super().__init__(_Handler)
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        self.trickled: queue.Queue[int] = queue.Queue()  # bytes sent before the client left


class _Handler(QuietHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        if self.path == "/slow":
            time.sleep(SLOW_SECONDS)
        if self.path == "/trickle-headers":
            return self._trickle(TRICKLE_HEADERS)
        if self.path == "/trickle-body":
            self._answer(200, {"Content-Type": "text/html"}, b"", length=len(TRICKLE_BODY))
            return self._trickle(TRICKLE_BODY)
        hops = self.path.removeprefix("/hops/")
        if hops.isdigit() and int(hops):  # /hops/N redirects N times, then serves the page
            return self._answer(302, {"Location": f"/hops/{int(hops) - 1}"}, b"")
        route = ROUTES["/comet.html"] if hops == "0" else ROUTES.get(self.path)
        self._answer(*(route or (404, {}, b"not found")))

    def _trickle(self, data: bytes) -> None:
        sent = 0
        try:
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                sent += 1
                time.sleep(TRICKLE_GAP_S)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.server.trickled.put(sent)


@pytest.fixture(scope="module")
def httpd() -> Iterator[_Server]:
    """A local HTTP server serving ``ROUTES``, shared by the module."""
    with serving(_Server()) as running:
        yield running


@pytest.fixture(scope="module")
def server(httpd: _Server) -> str:
    """Base URL of ``httpd``."""
    return httpd.url


LOCAL = Fetcher(allow_private=True, timeout=5)


def test_unsolicited_304_is_an_error_and_a_conditional_one_an_answer(server: str) -> None:
    with pytest.raises(IngestError, match="answered HTTP 304"):
        LOCAL.get(f"{server}/not-modified")
    response = LOCAL.get(f"{server}/not-modified", {"If-None-Match": '"v1"'})
    assert (response.status, response.body, response.headers["etag"]) == (304, b"", '"v1"')


def test_http_last_modified_dates_a_page_only_when_its_metadata_does_not(server: str) -> None:
    [undated] = load_url(f"{server}/undated.html", LOCAL)
    assert (undated.published, undated.date_source) == ("2024-06-03T07:00:00+00:00",
                                                        "http-last-modified")
    [dated] = load_url(f"{server}/dated.html", LOCAL)  # the same Last-Modified, and a meta date
    assert (dated.published, dated.date_source) == ("2024-06-02", "html-meta")


def test_html_page_url_becomes_one_document_with_the_final_url(server: str) -> None:
    [doc] = load_url(f"{server}/comet.html", LOCAL)
    [from_file] = load([GOOD / "observatory.html"])
    assert doc == dataclasses.replace(from_file, url=f"{server}/comet.html",
                                      key=f"url:{server}/comet.html")  # its name (issue 26)


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


def test_silent_server_is_cut_off_at_the_deadline(server: str) -> None:
    with pytest.raises(IngestError, match="took longer than the limit of 0.1 s"):
        Fetcher(timeout=SLOW_SECONDS / 10, allow_private=True).fetch(f"{server}/slow")


@pytest.mark.parametrize(("path", "data"), [("/trickle-headers", TRICKLE_HEADERS),
                                            ("/trickle-body", TRICKLE_BODY)])
def test_trickling_server_is_cut_off_at_the_deadline(httpd: _Server, path: str,
                                                      data: bytes) -> None:
    # Every byte comes far inside the 0.5 s: only a deadline for the whole fetch stops it.
    with pytest.raises(IngestError, match="took longer than the limit of 0.5 s"):
        Fetcher(timeout=0.5, allow_private=True).fetch(f"{httpd.url}{path}")
    sent = httpd.trickled.get(timeout=60)  # the server notices the client has gone
    assert 0 < sent < len(data)


@pytest.mark.parametrize(("path", "reason"), [
    ("/missing", "HTTP 404"),
    ("/photo.png", "neither an HTML page nor an RSS or Atom feed"),
    ("/to-file", "file:///etc/passwd is not an http or https URL"),
])
def test_failed_or_unusable_responses_are_errors(server: str, path: str, reason: str) -> None:
    with pytest.raises(IngestError, match=reason):
        load_url(f"{server}{path}", LOCAL)


def test_redirects_are_limited(httpd: _Server) -> None:
    before = len(httpd.requests)
    with pytest.raises(IngestError, match="redirects more than 2 time"):
        Fetcher(allow_private=True, max_redirects=2).fetch(f"{httpd.url}/hops/3")
    assert [path for path, _ in httpd.requests[before:]] == ["/hops/3", "/hops/2", "/hops/1"]
    _, _, final_url = Fetcher(allow_private=True, max_redirects=3).fetch(f"{httpd.url}/hops/3")
    assert final_url == f"{httpd.url}/hops/0"


class _Resolver:
    """Stands in for DNS, which this machine lacks: the first answer is ``first``, every later
    one ``later``, as a rebinding attacker's name server would answer."""

    def __init__(self, first: list[str], later: list[str], port: int) -> None:
        self.first, self.later, self.port = first, later, port
        self.asked: list[str] = []

    def __call__(self, host: str, *args: object, **kwargs: object) -> list[tuple]:
        answer = self.later if self.asked else self.first
        self.asked.append(host)
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (ip, self.port)) for ip in answer]


def test_rebinding_cannot_reach_loopback(httpd: _Server,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    port = httpd.server_address[1]
    resolver = _Resolver(["93.184.216.34"], ["127.0.0.1"], port)  # public, then this machine
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    before = len(httpd.requests)
    with contextlib.suppress(IngestError):  # whatever the public address does (if reachable)
        Fetcher(timeout=1).fetch(f"http://rebind.example:{port}/comet.html")
    assert resolver.asked == ["rebind.example"]  # resolved once, for the check
    assert httpd.requests[before:] == []  # and the connection never came to loopback


def test_connection_goes_to_the_checked_address_with_the_host_name_kept(
        httpd: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(_Server()) as elsewhere:
        port = httpd.server_address[1]
        resolver = _Resolver(["127.0.0.1"], ["127.0.0.2"], port)
        monkeypatch.setattr(socket, "getaddrinfo", resolver)
        before = len(httpd.requests)
        body, _, _ = Fetcher(allow_private=True).fetch(f"http://news.example:{port}/comet.html")
        assert body == ROUTES["/comet.html"][2]
        assert resolver.asked == ["news.example"]
        assert httpd.requests[before:] == [("/comet.html", f"news.example:{port}")]
        assert elsewhere.requests == []


def test_a_name_server_that_never_answers_cannot_hold_a_fetch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answered = threading.Event()

    def silent(*args: object, **kwargs: object) -> list[tuple]:
        answered.wait(60)  # a name server that answers only after the fetch gave up
        raise socket.gaierror("no answer")

    monkeypatch.setattr(socket, "getaddrinfo", silent)
    try:
        with pytest.raises(IngestError, match="resolving the host slow.example took longer "
                                              "than the limit of 0.2 s"):
            Fetcher(timeout=0.2).fetch("http://slow.example/")
    finally:
        answered.set()


def test_every_address_of_the_answer_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _Resolver(["93.184.216.34", "10.0.0.7"], [], 80))
    with pytest.raises(IngestError, match="non-public address 10.0.0.7"):
        Fetcher().fetch("http://two-faced.example/")


@pytest.mark.parametrize(("path", "refused"), [
    ("/to-loopback", "127.0.0.2"), ("/to-mapped", r"127.0.0.2 \(inside ::ffff:7f00:2\)"),
    ("/to-nat64", r"169.254.169.254 \(inside 64:ff9b::a9fe:a9fe\)")])
def test_every_redirect_hop_is_checked(httpd: _Server, monkeypatch: pytest.MonkeyPatch,
                                       path: str, refused: str) -> None:
    # The origin must pass the guard and yet be this loopback server: let 127.0.0.1 stand for
    # a public address. Every other address is judged as usual, so the hop it redirects to is
    # refused before anything connects to it.
    public = fetch._is_public
    monkeypatch.setattr(fetch, "_is_public",
                        lambda address: str(address) == "127.0.0.1" or public(address))
    with pytest.raises(IngestError, match=f"non-public address {refused}"):
        Fetcher(timeout=5).fetch(f"{httpd.url}{path}")
    assert httpd.requests[-1][0] == path  # the origin answered; the next hop was never asked


def test_loopback_is_refused_by_default(server: str) -> None:
    with pytest.raises(IngestError, match="non-public address 127.0.0.1"):
        load([f"{server}/comet.html"])


@pytest.mark.parametrize("url", [
    "http://localhost/", "http://[::1]/", "http://10.1.2.3/", "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/", "http://240.0.0.1/",
    "http://224.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://[fe80::1]/", "http://[fc00::1]/",
    "http://[64:ff9b:1::a00:1]/", "http://[fec0::1]/", "http://[feff::a9fe:a9fe]/",
])
def test_private_and_reserved_addresses_are_refused(url: str) -> None:
    with pytest.raises(IngestError, match="non-public address"):
        Fetcher().check_url(url)  # refused before anything connects


@pytest.mark.parametrize(("url", "inner"), [
    ("http://[::127.0.0.1]/", "127.0.0.1"),  # IPv4-compatible
    ("http://[64:ff9b::7f00:1]/", "127.0.0.1"),  # NAT64
    ("http://[2002:7f00:1::]/", "127.0.0.1"),  # 6to4
    ("http://[::ffff:a00:1]:8080/", "10.0.0.1"),  # IPv4-mapped
    ("http://[64:ff9b::a9fe:a9fe]/", "169.254.169.254"),
    ("http://[2002:c0a8:1::1]/", "192.168.0.1"),
    ("http://[::ffff:0:7f00:1]/", "127.0.0.1"),  # IPv4-translated (RFC 2765)
    ("http://[::ffff:0:a9fe:a9fe]/", "169.254.169.254"),
    ("http://[::ffff:0:10.0.0.1]:8080/", "10.0.0.1"),
])
def test_ipv6_forms_are_judged_by_the_ipv4_address_inside(url: str, inner: str) -> None:
    with pytest.raises(IngestError, match=f"non-public address {inner} \\(inside "):
        Fetcher().check_url(url)  # refused before anything connects


@pytest.mark.parametrize("url", ["http://[64:ff9b::808:808]/", "http://[2002:808:808::1]/",
                                 "http://[::ffff:8.8.8.8]/", "http://[::ffff:0:808:808]/",
                                 "http://8.8.8.8/"])
def test_ipv6_forms_of_a_public_ipv4_address_pass_the_check(url: str) -> None:
    assert Fetcher().check_url(url).addresses  # checked, not connected to


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/news.txt",
                                 "gopher://example.com/", "http:///no-host", "/etc/passwd",
                                 "HTTP://[::1", "http://example.com:99999/"])
def test_only_http_and_https_urls_are_fetched(url: str) -> None:
    with pytest.raises(IngestError, match="not an http or https URL|no host name|not a valid URL"):
        Fetcher().fetch(url)


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for the name ``news.example``."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is missing")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=news.example", "-addext", "subjectAltName=DNS:news.example",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_https_to_a_pinned_address_still_verifies_the_host_name(
        tls_certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = tls_certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    with serving(_Server()) as httpd:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        port = httpd.server_address[1]
        monkeypatch.setattr(socket, "getaddrinfo", _Resolver(["127.0.0.1"], ["127.0.0.1"], port))
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted by the fetcher's TLS context
        fetcher = Fetcher(allow_private=True, timeout=5)
        [doc] = load_url(f"https://news.example:{port}/comet.html", fetcher)
        assert doc.title == "Observatory spots new comet"
        assert httpd.requests == [("/comet.html", f"news.example:{port}")]
        with pytest.raises(IngestError, match="certificate verify failed"):
            fetcher.fetch(f"https://other.example:{port}/comet.html")
    assert names == ["news.example", "other.example"]  # SNI names the host, not the address


# --- a caller's fetch deadline, and over-long URLs in fetch errors ----------------------------

LONG_PATH = "a" * 100_000


@pytest.mark.parametrize("url", [
    f"ftp://example.invalid/{LONG_PATH}",  # not http(s)
    f"http://example.invalid:{'9' * 100_000}/",  # a port that is no number
    f"http://127.0.0.1/{LONG_PATH}",  # loopback: refused by the guard before connecting
])
def test_an_over_long_url_is_cut_short_in_its_refusal(url: str) -> None:
    with pytest.raises(IngestError) as error:
        load_url(url)
    assert len(str(error.value)) < 400 and f"({len(url):,} characters)" in str(error.value)


def test_an_over_long_url_is_cut_short_when_the_server_refuses_it(server: str) -> None:
    url = f"{server}/{LONG_PATH}"  # past http.server's 64 KB request line: it answers 414
    with pytest.raises(IngestError) as error:
        load_url(url, LOCAL)
    assert len(str(error.value)) < 400 and f"({len(url):,} characters)" in str(error.value)


def test_a_callers_deadline_cuts_a_fetch_short_of_its_timeout(server: str) -> None:
    # /slow answers after SLOW_SECONDS, well inside LOCAL's timeout: only the deadline cuts it
    with pytest.raises(IngestError, match="/slow took longer than the deadline it was given"):
        LOCAL.get(f"{server}/slow", deadline=time.monotonic() + SLOW_SECONDS / 10)
    with pytest.raises(IngestError, match="/slow answered HTTP 404"):  # waited for: not cut
        LOCAL.get(f"{server}/slow", deadline=time.monotonic() + 60)
