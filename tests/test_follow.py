"""Following a story (``qa.follow``, ``qa.cli_follow``): a real loopback news site whose feeds
change between polls, the shipped models, both store backends, and the CLI."""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import shlex
import sys
from datetime import date, datetime, time, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Iterator

import pytest

from conftest import LoopbackServer, QuietHandler, serving
from qa.cli import main
from qa.follow import next_entry
from qa.ingest.fetch import Fetcher
from qa.pipeline import NewsQA
from qa.reader.model import Reader
from qa.types import Citation, Document, FollowChange, FollowEntry

QUESTION = "What is the death toll from the floods in Valdoria?"
BACKENDS = ("faiss", pytest.param("milvus-lite", marks=pytest.mark.skipif(
    importlib.util.find_spec("milvus_lite") is None,
    reason="the Milvus backend needs: .venv/bin/pip install -e '.[milvus]'")))


# The story is of this week (a followed question asks about the current state, as of today):
# one outlet's toll goes 12, 19, 23 over three days; a day later another outlet repeats 23,
# which is no change.
DAYS = [datetime.now(timezone.utc).date() - timedelta(days=back) for back in (4, 3, 2, 1)]


def toll_item(guid: str, toll: int, day: date, *,
              verb: str = "rose to") -> tuple[str, str, str, str]:
    """A feed item (guid, title, RFC 822 date, text) that states the toll plainly."""
    return (guid, f"Valdoria floods: toll at {toll}",
            format_datetime(datetime.combine(day, time(18), timezone.utc), usegmt=True),
            f"The death toll from the floods in Valdoria {verb} {toll}, officials said. Rescue "
            "teams were still searching villages along the river, and the government asked "
            "its neighbours for boats and helicopters.")


POST = [toll_item("post-1", 12, DAYS[0]), toll_item("post-2", 19, DAYS[1]),
        toll_item("post-3", 23, DAYS[2])]
HERALD = [("herald-1", "What is the death toll from the floods in Valdoria?",
           format_datetime(datetime.combine(DAYS[3], time(18), timezone.utc), usegmt=True),
           "The death toll from the floods in Valdoria stood at 23 on the fourth day of the "
           "floods, officials said, as the river began to fall and families went home.")]


class NewsSite(LoopbackServer):
    """Two outlets' RSS feeds on loopback, each serving the items a test has published so far;
    items carry their text as the summary (no page to fetch)."""

    def __init__(self) -> None:
        super().__init__(FeedHandler)
        self.published: dict[str, list[tuple[str, str, str, str]]] = {
            "/post.xml": [], "/herald.xml": []}

    def feed(self, path: str) -> bytes:
        title = "Valdoria Post" if path == "/post.xml" else "Coast Herald"
        items = "".join(f"<item><title>{head}</title><guid isPermaLink='false'>{guid}</guid>"
                        f"<pubDate>{date}</pubDate><description>{text}</description></item>"
                        for guid, head, date, text in self.published[path])
        return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
                f"<title>{title}</title><link>{self.url}/</link>{items}</channel></rss>"
                ).encode("utf-8")


class FeedHandler(QuietHandler):
    server: NewsSite

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path in self.server.published:
            return self._answer(200, {"Content-Type": "application/rss+xml"},
                                self.server.feed(self.path))
        self._answer(404, {}, b"not found")


@pytest.fixture()
def site() -> Iterator[NewsSite]:
    with serving(NewsSite()) as server:
        yield server


def where(backend: str, folder: Path) -> str:
    return str(folder / "index") if backend == "faiss" else f"milvus://{folder}/index.db"


@contextlib.contextmanager
def opened(location: str, embedder, reader) -> Iterator[NewsQA]:
    with NewsQA(location, embedder=embedder, reader=reader,
                fetcher=Fetcher(allow_private=True, timeout=10)) as qa:
        yield qa


def cli(*args: str) -> int:
    return main([*args])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_followed_toll_keeps_its_history_across_polls_and_a_repeat_adds_no_entry(
        backend: str, tmp_path: Path, site: NewsSite, embedder, shipped_reader) -> None:
    told: list[FollowChange] = []
    with opened(where(backend, tmp_path), embedder, shipped_reader) as qa:
        qa.subscribe(f"{site.url}/post.xml")
        qa.subscribe(f"{site.url}/herald.xml")
        follow = qa.follow(QUESTION)
        assert (follow.id, follow.latest.text, follow.changes) == ("f1", "", 1)  # not found yet
        for item in POST:
            site.published["/post.xml"].append(item)
            reports = qa.refresh_feeds(told.append)
            assert [len(r.items.added) for r in reports] == [1, 0]
        site.published["/herald.xml"].extend(HERALD)
        qa.refresh_feeds(told.append)

        history = qa.history(follow.id)
        assert [e.text for e in history] == ["", "12", "19", "23"]
        assert [e.citation.published[:10] for e in history[1:]] == [
            str(DAYS[0]), str(DAYS[1]), str(DAYS[3])]  # the repeat moved the latest on
        assert history[-1].citation.source == "Coast Herald"
        assert all(0 < e.confidence <= 1 for e in history[1:])
        assert [(c.before.text, c.after.text) for c in told] == [("", "12"), ("12", "19"),
                                                                ("19", "23")]
        assert told[-1].after.citation.source == "Valdoria Post"  # before the repeat
        [now] = qa.followed()
        assert (now.latest, now.changes, now.error) == (history[-1], 4, "")

        timeline = qa.ask(QUESTION, timeline=True).timeline
        assert [(c.quote, c.source, c.published[:10]) for c in timeline] == [
            ("12", "Valdoria Post", str(DAYS[0])), ("19", "Valdoria Post", str(DAYS[1])),
            ("23", "Valdoria Post", str(DAYS[2])), ("23", "Coast Herald", str(DAYS[3]))]
        assert qa.ask(QUESTION).timeline == []


def test_watch_prints_each_change_and_runs_the_on_change_command(
        tmp_path: Path, site: NewsSite, capsys) -> None:
    index = str(tmp_path / "index")
    told = tmp_path / "told.jsonl"
    notify = tmp_path / "notify.py"
    notify.write_text("import sys\nwith open(sys.argv[1], 'a') as out:\n"
                      "    out.write(sys.stdin.read())\n")
    on_change = shlex.join([sys.executable, str(notify), str(told)])
    site.published["/post.xml"].append(POST[0])
    assert cli("feeds", "add", f"{site.url}/post.xml", "--index", index,
               "--allow-private") == 0
    assert cli("follow", "add", QUESTION, "--index", index) == 0
    assert "following f1: " + QUESTION in capsys.readouterr().out

    assert cli("watch", "--once", "--index", index, "--allow-private",
               "--on-change", on_change) == 0
    out = capsys.readouterr().out
    assert f"changed f1 {QUESTION!r}: not found -> 12" in out
    site.published["/post.xml"].append(POST[1])
    failing = shlex.join([sys.executable, "-c", "import sys; sys.exit('no mail server')"])
    assert cli("watch", "--once", "--index", index, "--allow-private",
               "--on-change", failing) == 0  # a notifier's failure stops nothing
    captured = capsys.readouterr()
    assert f"changed f1 {QUESTION!r}: 12 -> 19" in captured.out
    assert captured.err.count("\n") == 1 and "exited with status 1: no mail server" in \
        captured.err

    [change] = [json.loads(line) for line in told.read_text().splitlines()]
    assert change["follow"]["id"] == "f1" and change["follow"]["question"] == QUESTION
    assert (change["before"]["text"], change["after"]["text"]) == ("", "12")
    assert change["after"]["citation"]["source"] == "Valdoria Post"
    assert change["after"]["citation"]["published"].startswith(str(DAYS[0]))

    assert cli("follow", "history", "f1", "--index", index) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[1] for line in lines] == ["not found in the indexed articles",
                                                       "12", "19"]
    assert f"Valdoria Post, {DAYS[1]}" in lines[2]
    assert cli("follow", "history", "f1", "--index", index, "--json") == 0
    assert [e["text"] for e in json.loads(capsys.readouterr().out)] == ["", "12", "19"]


def test_serve_watch_prints_each_change_and_runs_the_on_change_command(
        tmp_path: Path, site: NewsSite) -> None:
    """``newsqa serve --watch``, a real server process: its background poll finds the first
    toll, prints the change on the console and tells the ``--on-change`` command."""
    import socket
    import subprocess
    import time as clock

    index = str(tmp_path / "index")
    told = tmp_path / "told.jsonl"
    notify = tmp_path / "notify.py"
    notify.write_text("import sys\nwith open(sys.argv[1], 'a') as out:\n"
                      "    out.write(sys.stdin.read())\n")
    site.published["/post.xml"].append(POST[0])
    assert cli("feeds", "add", f"{site.url}/post.xml", "--index", index,
               "--allow-private") == 0
    assert cli("follow", "add", QUESTION, "--index", index) == 0
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "serve", "--index", index, "--port", str(port),
             "--allow-private", "--watch", "1h", "--on-change",
             shlex.join([sys.executable, str(notify), str(told)])],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ,
                                                       "GRADIO_ANALYTICS_ENABLED": "False"})
        try:
            deadline = clock.monotonic() + 300  # a hang guard for loading the models, no timing
            while not told.exists() and server.poll() is None and clock.monotonic() < deadline:
                clock.sleep(1)
        finally:
            server.terminate()
            server.wait(timeout=30)
    printed = log.read_text()
    assert f"changed f1 {QUESTION!r}: not found -> 12" in printed, printed
    assert f"{site.url}/post.xml: 1 new article(s)" in printed
    [change] = [json.loads(line) for line in told.read_text().splitlines()]
    assert (change["before"]["text"], change["after"]["text"]) == ("", "12")


def test_serve_on_change_without_watch_is_one_line(tmp_path: Path, capsys) -> None:
    assert cli("serve", "--index", str(tmp_path / "index"), "--on-change", "true") == 1
    err = capsys.readouterr().err
    assert err.startswith("newsqa: error: --on-change runs for the changes that --watch finds")
    assert err.count("\n") == 1 and not (tmp_path / "index").exists()


def test_a_question_followed_by_one_instance_is_asked_again_after_another_commits(
        tmp_path: Path, embedder, shipped_reader, capsys) -> None:
    index = str(tmp_path / "index")
    with opened(index, embedder, shipped_reader) as one, \
            opened(index, embedder, shipped_reader) as other:
        follow = one.follow(QUESTION, sources=["Valdoria Post"], top_k=3)
        assert [(f.id, f.sources, f.top_k) for f in other.followed()] == [
            ("f1", ("Valdoria Post",), 3)]
        assert one.follow(QUESTION, sources=["Valdoria Post"], top_k=3).id == "f1"  # the same
        text = POST[0][3]
        report = other.add([Document("d1", text, "Toll", "Valdoria Post",
                                     published=str(DAYS[0]))])
        assert [(c.follow.id, c.after.text) for c in report.changes] == [("f1", "12")]
        assert [e.text for e in one.history(follow.id)] == ["", "12"]
        other.delete("d1")  # found -> not found is a change too
        assert [e.text for e in one.history(follow.id)] == ["", "12", ""]
    assert cli("follow", "list", "--index", index) == 0
    assert f"f1  {QUESTION}  not found  3 change(s)" in capsys.readouterr().out
    assert cli("follow", "remove", "f1", "--index", index) == 0
    assert cli("follow", "list", "--index", index, "--json") == 0
    assert capsys.readouterr().out.endswith("[]\n")


def test_an_error_in_asking_again_is_recorded_on_the_question_and_the_commit_stands(
        tmp_path: Path, embedder) -> None:
    missing = Reader(tmp_path / "no-reader")  # a reader whose model is not there
    with NewsQA(tmp_path / "index", embedder=embedder, reader=missing) as qa:
        follow = qa.follow(QUESTION)
        assert follow.latest is None and "no-reader" in follow.error
        report = qa.add([Document("d1", POST[0][3], "Toll", "Valdoria Post")])
        assert report.added == ["d1"] and report.changes == []
        assert [d.id for d in qa.documents()] == ["d1"]
        [after] = qa.followed()
        assert "no-reader" in after.error and after.checked >= follow.checked


def test_a_commit_before_a_full_disk_stopped_indexing_is_asked_about_too(
        tmp_path: Path, embedder, shipped_reader) -> None:
    """On a real 4 MiB file system (a tmpfs; skipped where it cannot be mounted): the first
    batch, with the new toll, commits; the next (one long article) does not fit. The commit
    that stood changed the answer, so the question is asked again."""
    import random
    import string

    from conftest import mounted
    from qa.chunk import Chunker
    from qa.pipeline import ADD_BATCH_DOCS
    from qa.types import IndexingStopped

    rng = random.Random(5)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9)))
             for _ in range(5_000)]  # filler articles: none a near-duplicate of another
    filler = [Document(f"filler-{n}", " ".join(rng.choices(words, k=40)) + ".", f"Report {n}",
                       "Wire") for n in range(ADD_BATCH_DOCS - 1)]
    almanac = Document("almanac", " ".join(rng.choices(words, k=250_000)) + ".", "Almanac",
                       "Wire")
    with mounted(tmp_path / "disk", ("-t", "tmpfs", "-o", "size=4m", "tmpfs")) as disk, \
            NewsQA(disk / "index", embedder=embedder, reader=shipped_reader,
                   chunker=Chunker(100_000)) as qa:  # the almanac: a few chunks, not thousands
        qa.add([Document("post-1", POST[0][3], "Toll", "Valdoria Post",
                         published=str(DAYS[0]))])
        follow = qa.follow(QUESTION)
        assert follow.latest.text == "12"
        later = Document("post-2", POST[1][3], "Toll", "Valdoria Post", published=str(DAYS[1]))
        with pytest.raises(IndexingStopped, match="the disk is full") as stopped:
            qa.add([*filler, later, almanac])
        assert "post-2" in stopped.value.report.added
        assert [(c.before.text, c.after.text) for c in stopped.value.report.changes] == [
            ("12", "19")]
        assert [e.text for e in qa.history(follow.id)] == ["12", "19"]


def test_index_prints_each_change_and_an_unknown_id_is_one_line(tmp_path: Path,
                                                                 capsys) -> None:
    index = str(tmp_path / "index")
    assert cli("follow", "add", QUESTION, "--index", index) == 0
    capsys.readouterr()
    report = tmp_path / "toll.jsonl"
    report.write_text(json.dumps({"id": "post-1", "text": POST[0][3], "source": "Valdoria Post",
                                  "published": str(DAYS[0])}) + "\n")
    assert cli("index", str(report), "--index", index) == 0
    assert f"changed f1 {QUESTION!r}: not found -> 12  [" in capsys.readouterr().out
    assert cli("ask", QUESTION, "--timeline", "--index", index) == 0
    timeline = capsys.readouterr().out.split("Timeline (oldest first):\n")[1].splitlines()
    assert [line.split()[:2] for line in timeline] == [[str(DAYS[0]), "12"]]
    for action in ("remove", "history"):
        assert cli("follow", action, "f9", "--index", index) == 1
        err = capsys.readouterr().err
        assert err.startswith("newsqa: error: No followed question has the id 'f9'")
        assert err.count("\n") == 1


def test_the_same_answer_from_a_newer_article_moves_the_latest_entry_on() -> None:
    cited = Citation("d1", "Floods", "Valdoria Post", "", "2025-06-04", 51, 53, "23")
    latest = FollowEntry("2025-06-04T18:00:00+00:00", "23", 0.6, cited)
    newer = dataclasses.replace(latest, citation=dataclasses.replace(
        cited, doc_id="d2", source="Coast Herald", published="2025-06-05"))
    older = dataclasses.replace(latest, citation=dataclasses.replace(
        cited, doc_id="d0", published="2025-06-01"))
    assert next_entry(latest, newer) == (newer, True)
    assert next_entry(latest, older) == (None, False)
    assert next_entry(latest, dataclasses.replace(latest, text="23.")) == (None, False)
    gone = FollowEntry("2025-06-06T00:00:00+00:00", "", 0.05, None)
    assert next_entry(latest, gone) == (gone, False)
    assert next_entry(None, gone) == (gone, False)
