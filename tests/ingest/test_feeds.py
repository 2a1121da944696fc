"""Feed subscriptions against a real loopback HTTP server whose feed changes between polls."""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import threading
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Iterator

import pytest

from conftest import LoopbackServer, QuietHandler, serving
from qa.cli import main
from qa.errors import NewsQAError
from qa.ingest import feeds
from qa.ingest.feeds import MIN_INTERVAL_SECONDS, parse_interval
from qa.ingest.fetch import Fetcher
from qa.pipeline import NewsQA

FEED_TITLE = "Harbour Town News"


def page(headline: str, paragraphs: list[str], head: str = "") -> bytes:
    """An article page long enough for trafilatura to take its text as the main content."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!DOCTYPE html><html><head><title>{headline}</title>{head}</head><body>"
            f"<nav><a href='/'>Home</a></nav><article><h1>{headline}</h1>{body}</article>"
            f"<footer>All rights reserved.</footer></body></html>").encode("utf-8")


ARTICLES = {
    "/articles/bridge.html": page("Harbour bridge to close for repairs", [
        "The harbour bridge will close for six weeks from April so that engineers can replace "
        "cables that corroded in the salt air, the city council said on Tuesday.",
        "Ferries will run every ten minutes while the bridge is shut, and the repairs will cost "
        "40 million dollars, most of it paid by the regional government.",
        "The bridge was last closed in 2001, when a storm damaged its deck."],
        head='<meta property="article:published_time" content="2024-06-01T06:00:00Z">'),
    "/articles/orchard.html": page("Orchard harvest starts early", [
        "Apple growers on the hills above the harbour began picking two weeks early this year "
        "after the warmest spring on record, the growers' association said.",
        "Pickers expect a crop of about 9,000 tonnes, up from 7,500 tonnes last year, and "
        "prices at the town market have already started to fall.",
        "The association warned that a late frost could still damage the later varieties."],
        head='<script type="application/ld+json">{"@type": "NewsArticle", '
             '"datePublished": "2024-06-04T09:00:00+00:00"}</script>'),
}

# (guid, title, link path or "", pubDate or "", summary or "")
FIRST_ITEMS = [
    ("bridge", "Harbour bridge to close for repairs", "/articles/bridge.html",
     "Mon, 03 Jun 2024 08:00:00 GMT", "The bridge closes in April."),
    ("ferry", "New ferry named", "/articles/ferry.html",  # the page is missing: the summary
     "Mon, 03 Jun 2024 09:00:00 GMT",
     "The town's new ferry was named Sea Lark by pupils of the harbour school on Monday."),
    ("ghost", "Ghost story", "/articles/ghost.html", "", ""),  # missing page, no summary
    ("blank", "Nothing here", "", "", ""),  # neither link nor text
]
ORCHARD = ("orchard", "Orchard harvest starts early", "/articles/orchard.html", "",
           "Picking began early.")

# A feed whose article pages stall while ``Site.stalling`` is set: items 2 and 4 have a summary.
SLOW_PAGES = {
    "/slow/1.html": page("Lighthouse keeper retires", [
        "After forty years at the point, the lighthouse keeper handed over the keys on Friday "
        "to a crew of volunteers who will run the museum in the tower.",
        "She climbed the 212 steps twice a day, she said, and never once missed the lamp."]),
    "/slow/2.html": page("unused", ["The feed's summary stands in for this page."]),
    "/slow/3.html": page("Tram line reaches the stadium", [
        "The new tram line to the stadium opened on Saturday, two months late, carrying 18,000 "
        "fans to the season's first match in under an hour.",
        "Drivers were trained in the depot at night so that the old buses could keep running."]),
    "/slow/4.html": page("unused", ["The feed's summary stands in for this page."]),
    "/slow/5.html": page("Seal pup found on the beach", [
        "A grey seal pup washed up on the north beach after the storm was taken to the rescue "
        "centre, where vets said it was hungry but unhurt.",
        "Walkers were asked to keep dogs on a lead until the pup is released in the spring."]),
}
SLOW_ITEMS = [(f"slow-{n}", title, f"/slow/{n}.html", "", summary) for n, title, summary in [
    (1, "Lighthouse keeper retires", ""),
    (2, "Market hall repainted", "The market hall was painted green again over the weekend."),
    (3, "Tram line reaches the stadium", ""),
    (4, "School choir wins", "The harbour school's choir won the regional contest in June."),
    (5, "Seal pup found on the beach", "")]]
PAGE_TIMEOUT = 4.0  # each fetch's own limit: on its own, each stalled page would take this long
POLL_SECONDS = 2.0  # the poll's, shared by the feed and its pages
STALL_SECONDS = 60  # the most a stalled page's handler waits, should a test fail before release


class Site(LoopbackServer):
    """A news site on loopback: a feed that changes when ``items`` do, with an ETag and
    Last-Modified that answer conditional requests with 304, its article pages, a feed that
    fails, and a second feed that links to an article of the first. Counts every request."""

    def __init__(self) -> None:
        super().__init__(Handler)
        self.items = list(FIRST_ITEMS)
        self.requests: collections.Counter[str] = collections.Counter()
        self.not_modified = 0
        self.feed_fetched = threading.Event()
        self.stalling = True  # whether the slow feed's pages stall
        self.released = threading.Event()  # set when the test ends: a stalled page answers

    def feed(self, title: str, items: list[tuple[str, str, str, str, str]]) -> bytes:
        entries = "".join(
            f"<item><title>{title}</title><guid isPermaLink='false'>{guid}</guid>"
            + (f"<link>{self.url}{link}</link>" if link else "")
            + (f"<pubDate>{date}</pubDate>" if date else "")
            + (f"<description>{summary}</description>" if summary else "") + "</item>"
            for guid, title, link, date, summary in items)
        return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
                f"<title>{title}</title><link>{self.url}/</link>{entries}</channel></rss>"
                ).encode("utf-8")


class Handler(QuietHandler):
    server: Site

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        site = self.server
        site.requests[self.path] += 1
        if self.path == "/feed.xml":
            body = site.feed(FEED_TITLE, site.items)
            etag = '"' + hashlib.sha256(body).hexdigest()[:12] + '"'
            modified = format_datetime(datetime(2024, 6, len(site.items), tzinfo=timezone.utc),
                                       usegmt=True)
            site.feed_fetched.set()
            if self.headers.get("If-None-Match") == etag:
                site.not_modified += 1
                return self._answer(304, {"ETag": etag}, b"")
            return self._answer(200, {"Content-Type": "application/rss+xml", "ETag": etag,
                                      "Last-Modified": modified}, body)
        if self.path == "/mirror.xml":  # another outlet's feed carrying the bridge story
            items = [("m-1", "Bridge closure", "/articles/bridge.html", "", "Wire copy.")]
            return self._answer(200, {"Content-Type": "application/rss+xml"},
                                site.feed("Mirror", items))
        if self.path == "/broken.xml":
            return self._answer(500, {}, b"internal error")
        if self.path == "/slow.xml":  # never changes: a conditional request gets a 304
            if self.headers.get("If-None-Match") == '"slow"':
                return self._answer(304, {"ETag": '"slow"'}, b"")
            return self._answer(200, {"Content-Type": "application/rss+xml", "ETag": '"slow"'},
                                site.feed("Slow Times", SLOW_ITEMS))
        if self.path in SLOW_PAGES:
            if site.stalling:
                site.released.wait(STALL_SECONDS)
            return self._answer(200, {"Content-Type": "text/html; charset=utf-8"},
                                SLOW_PAGES[self.path])
        if self.path in ARTICLES:
            return self._answer(200, {"Content-Type": "text/html; charset=utf-8"},
                                ARTICLES[self.path])
        self._answer(404, {}, b"not found")


@pytest.fixture()
def site() -> Iterator[Site]:
    with serving(Site()) as server:
        try:
            yield server
        finally:
            server.released.set()  # stalled page handlers end with the test


@contextlib.contextmanager
def opened(index: Path, embedder, *, allow_private: bool = True) -> Iterator[NewsQA]:
    with NewsQA(index, embedder=embedder,
                fetcher=Fetcher(allow_private=allow_private, timeout=10)) as qa:
        yield qa


def titles(qa: NewsQA) -> set[str]:
    return {d.title for d in qa.documents()}


def test_feeds_are_polled_incrementally_with_conditional_requests(tmp_path: Path, site: Site,
                                                                  embedder) -> None:
    index = tmp_path / "index"
    with opened(index, embedder) as qa:
        assert qa.subscribe(f"{site.url}/feed.xml") is True
        assert qa.subscribe(f" {site.url}/feed.xml ") is False  # already subscribed
        qa.subscribe(f"{site.url}/broken.xml")
        first, broken = qa.refresh_feeds()

    # one bad feed is reported and recorded; the other went on
    assert "HTTP 500" in broken.error and not broken.items.added
    # the bridge from its page, the ferry from the feed's summary (its page is missing); the
    # ghost (missing page, no summary) and the blank item are skipped, each with one line
    assert len(first.items.added) == 2 and not first.error
    assert len(first.items.errors) == 2
    ghost, blank = first.items.errors
    assert "ghost.html answered HTTP 404" in ghost and "no summary" in ghost
    assert "entry 4" in blank and "neither a link nor any text" in blank

    # the state survives reopening the index
    with opened(index, embedder) as qa:
        assert titles(qa) == {"Harbour bridge to close for repairs", "New ferry named"}
        feed, broken_feed = qa.feeds()
        assert feed.title == FEED_TITLE and feed.etag and feed.last_modified
        assert feed.last_success == feed.last_poll != ""
        assert feed.items_seen == 4  # two guids and two links
        assert "2 item(s) skipped" in feed.last_error and "ghost.html" in feed.last_error
        assert "HTTP 500" in broken_feed.last_error and broken_feed.last_success == ""

        site.items.insert(0, ORCHARD)  # the feed changes: one new item
        qa.unsubscribe(f"{site.url}/broken.xml")
        [second] = qa.refresh_feeds()
        assert not second.not_modified and len(second.items.added) == 1
        assert "Orchard harvest starts early" in titles(qa)
        # old items were not fetched again; the skipped ghost was tried once more
        assert site.requests["/articles/bridge.html"] == 1
        assert site.requests["/articles/ferry.html"] == 1
        assert site.requests["/articles/ghost.html"] == 2

        before = sum(site.requests.values())
        [third] = qa.refresh_feeds()  # nothing changed: one request, answered 304
        assert third.not_modified and not third.items.added and not third.error
        assert sum(site.requests.values()) == before + 1 and site.not_modified == 1
        assert qa.feeds()[0].last_error == ""


def test_feed_items_carry_trusted_dates(tmp_path: Path, site: Site, embedder) -> None:
    site.items = [FIRST_ITEMS[0], FIRST_ITEMS[1], ORCHARD]
    with opened(tmp_path / "index", embedder) as qa:
        qa.subscribe(f"{site.url}/feed.xml")
        qa.refresh_feeds()
        docs = {d.title: qa.get(d.id) for d in qa.documents()}
    bridge = docs["Harbour bridge to close for repairs"]
    assert (bridge.published, bridge.date_source) == ("2024-06-03T08:00:00+00:00", "feed")
    assert bridge.url == f"{site.url}/articles/bridge.html" and bridge.source == FEED_TITLE
    assert "last closed in 2001" in bridge.text  # the page's text, not the feed's summary
    ferry = docs["New ferry named"]
    assert ferry.text.startswith("The town's new ferry") and ferry.date_source == "feed"
    orchard = docs["Orchard harvest starts early"]  # no date in the feed: the page's JSON-LD
    assert (orchard.published, orchard.date_source) == ("2024-06-04T09:00:00+00:00", "json-ld")


def test_items_are_deduplicated_by_content_across_feeds(tmp_path: Path, site: Site,
                                                        embedder) -> None:
    with opened(tmp_path / "index", embedder) as qa:
        qa.subscribe(f"{site.url}/feed.xml")
        qa.subscribe(f"{site.url}/mirror.xml")
        first, mirror = qa.refresh_feeds()
        assert len(first.items.added) == 2
        assert mirror.items.unchanged == first.items.added[:1]  # the bridge story, once
        assert len(qa.documents()) == 2
        assert qa.feeds()[1].items_seen == 2  # remembered: not fetched again next time


def test_loopback_feeds_are_refused_unless_allowed(tmp_path: Path, site: Site,
                                                   embedder) -> None:
    index = tmp_path / "index"
    with opened(index, embedder, allow_private=False) as qa:
        with pytest.raises(NewsQAError, match="non-public address"):
            qa.subscribe(f"{site.url}/feed.xml")
    with opened(index, embedder) as qa:
        qa.subscribe(f"{site.url}/feed.xml")
    with opened(index, embedder, allow_private=False) as qa:
        [report] = qa.refresh_feeds()
        assert "non-public address" in report.error
        assert "non-public address" in qa.feeds()[0].last_error
    assert sum(site.requests.values()) == 0


def test_unsubscribing_keeps_the_articles_and_an_unknown_feed_is_an_error(
        tmp_path: Path, site: Site, embedder) -> None:
    with opened(tmp_path / "index", embedder) as qa:
        qa.subscribe(f"{site.url}/feed.xml")
        qa.refresh_feeds()
        qa.unsubscribe(f"{site.url}/feed.xml")
        assert qa.feeds() == [] and len(qa.documents()) == 2
        with pytest.raises(NewsQAError, match="is not a feed subscribed to"):
            qa.unsubscribe(f"{site.url}/feed.xml")


def test_background_watch_refreshes_until_stopped(tmp_path: Path, site: Site, embedder) -> None:
    with opened(tmp_path / "index", embedder) as qa:
        qa.subscribe(f"{site.url}/feed.xml")
        stop, rounds = threading.Event(), []
        thread = qa.watch_in_background("1h", stop=stop, on_refresh=rounds.append)
        assert site.feed_fetched.wait(60)
        stop.set()  # the round under way finishes, then the thread ends, not an hour later
        thread.join(60)
        assert not thread.is_alive()
        [[report]] = rounds
        assert len(report.items.added) == 2 and qa.feeds()[0].last_success
        with pytest.raises(NewsQAError, match="interval"):  # refused before a thread starts
            qa.watch_in_background("5s")


@pytest.mark.parametrize("value, seconds", [
    ("15m", 900), ("30s", 30), ("2h", 7200), ("1d", 86400), ("900", 900), (" 1.5M ", 90),
    (60, 60)])
def test_watch_interval_reads_durations(value: str | int, seconds: float) -> None:
    assert parse_interval(value) == seconds


@pytest.mark.parametrize("value", ["soon", "", "15 minutes", "-5m", "5s", MIN_INTERVAL_SECONDS - 1,
                                   float("inf"), "1e9999"])
def test_watch_interval_refuses_what_is_not_a_sane_duration(value: str | float) -> None:
    with pytest.raises(NewsQAError, match="interval"):
        parse_interval(value)


def test_watch_refuses_an_interval_under_ten_seconds_and_says_why(tmp_path: Path,
                                                                  capsys) -> None:
    assert main(["watch", "--every", "5s", "--index", str(tmp_path / "index")]) == 1
    assert capsys.readouterr().err == (
        "newsqa: error: The interval must be at least 10 s, not '5s': polling a feed more often "
        "than that is a mistake, not news, and a site may block a reader that asks so often.\n")


def test_cli_subscribes_lists_and_watches_once(tmp_path: Path, site: Site, capsys) -> None:
    index = str(tmp_path / "index")
    feed = f"{site.url}/feed.xml"
    assert main(["feeds", "add", feed, "--index", index]) == 1  # loopback: refused
    assert "non-public address" in capsys.readouterr().err
    assert main(["feeds", "add", feed, "--index", index, "--allow-private"]) == 0
    assert capsys.readouterr().out == f"subscribed to {feed}\n"

    assert main(["watch", "--once", "--allow-private", "--index", index]) == 1
    out, err = capsys.readouterr()
    assert out == f"{feed}: 2 new article(s), 0 already indexed, 0 near-duplicate(s), 2 skipped\n"
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("newsqa: error: ") for line in errors)

    assert main(["feeds", "list", "--json", "--index", index]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["url"], listed["title"], listed["items_seen"]) == (feed, FEED_TITLE, 4)

    assert main(["watch", "--once", "--allow-private", "--index", index]) == 0
    assert capsys.readouterr().out == f"{feed}: not modified\n"
    assert main(["feeds", "remove", feed, "--index", index]) == 0
    assert main(["feeds", "list", "--index", index]) == 0
    assert capsys.readouterr().out.endswith("0 feed(s)\n")


def test_a_poll_has_one_deadline_and_what_it_cut_off_waits_for_the_next_poll(
        tmp_path: Path, site: Site, embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds, "POLL_SECONDS", POLL_SECONDS)
    fetcher = Fetcher(allow_private=True, timeout=PAGE_TIMEOUT)
    with NewsQA(tmp_path / "index", embedder=embedder, fetcher=fetcher) as qa:
        qa.subscribe(f"{site.url}/slow.xml")
        qa.subscribe(f"{site.url}/mirror.xml")
        started = time.monotonic()
        slow, mirror = qa.refresh_feeds()
        # one page after another, each with its own limit, would have taken this long at least
        assert time.monotonic() - started < len(SLOW_ITEMS) * PAGE_TIMEOUT

        # the first page stalled past the poll's deadline; the others were not even asked for
        assert site.requests["/slow/1.html"] == 1
        assert sum(site.requests[path] for path in SLOW_PAGES) == 1
        # the items with a summary are indexed from it; the others wait, with one line for all
        assert slow.items.errors == [
            f"3 item(s) left for the next poll: the poll's deadline of {POLL_SECONDS:g} s passed."]
        assert sorted(qa.get(doc_id).text for doc_id in slow.items.added) == sorted(
            summary for *_, summary in SLOW_ITEMS if summary)
        # the feed after it was polled with its own deadline
        assert len(mirror.items.added) == 1 and not mirror.error and not mirror.items.errors
        state = qa.feeds()[0]
        assert state.items_seen == 4 and "3 item(s) left for the next poll" in state.last_error
        assert state.etag == ""  # the next poll must not be answered 304

        site.stalling = False
        slow, _ = qa.refresh_feeds()
        assert len(slow.items.added) == 3 and not slow.items.errors
        assert {"Lighthouse keeper retires", "Tram line reaches the stadium",
                "Seal pup found on the beach"} <= titles(qa)
        assert [site.requests[f"/slow/{n}.html"] for n in range(1, 6)] == [2, 0, 1, 0, 1]
        state = qa.feeds()[0]
        assert state.items_seen == 10 and state.last_error == "" and state.etag == '"slow"'


def test_items_past_the_per_poll_cap_are_fetched_by_the_next_poll_not_hidden_by_a_304(
        tmp_path: Path, site: Site, embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds, "MAX_ITEMS_PER_POLL", 1)
    with NewsQA(tmp_path / "index", embedder=embedder,
                fetcher=Fetcher(allow_private=True)) as qa:
        qa.subscribe(f"{site.url}/feed.xml")
        [first] = qa.refresh_feeds()
        assert len(first.items.added) == 1 and qa.feeds()[0].etag == ""
        [second] = qa.refresh_feeds()  # the feed has not changed: a 304 would hide the rest
        assert not second.not_modified and len(second.items.added) == 1
        assert site.not_modified == 0


def test_an_over_long_feed_url_is_cut_short_in_its_report(tmp_path: Path, site: Site,
                                                          embedder) -> None:
    url = f"{site.url}/feed.xml?{'a' * 100_000}"  # past http.server's 64 KB request line
    with opened(tmp_path / "index", embedder) as qa:
        qa.subscribe(url)
        [report] = qa.refresh_feeds()
        for message in (report.error, qa.feeds()[0].last_error):
            assert len(message) < 400 and f"({len(url):,} characters)" in message
