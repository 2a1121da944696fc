"""The command line: a batch goes on past a bad input, which gets one line and a non-zero exit."""
from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import logging
import os
import random
import re
import shlex
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LoopbackServer, QuietHandler, serving
from qa.cli import main, print_feed_reports
from qa.terminal import AS_SPACES
from qa.types import AddReport, FeedReport

DATA = Path(__file__).resolve().parent / "data"


def test_index_goes_on_past_bad_inputs_and_says_each_in_one_line(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(DATA / "good" / "harbour.txt", folder)
    shutil.copy(DATA / "bad" / "binary.txt", folder)
    index = tmp_path / "index"
    code = main(["index", str(tmp_path / "missing.txt"), str(folder),
                 str(DATA / "good" / "observatory.html"), "--index", str(index)])
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("newsqa: error: ") for line in lines)
    assert "missing.txt does not exist" in lines[0] and "binary.txt" in lines[1]
    assert out.startswith("added 2 document(s)")

    assert main(["sources", "--index", str(index), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 2


def test_index_with_only_good_inputs_exits_zero(tmp_path: Path, capsys) -> None:
    assert main(["index", str(DATA / "good" / "harbour.txt"), "--index",
                 str(tmp_path / "index")]) == 0
    assert capsys.readouterr().err == ""


def test_ask_keeps_undated_articles_in_a_date_range_unless_told_and_shows_dates(
        tmp_path: Path, capsys) -> None:
    index = str(tmp_path / "index")
    assert main(["index", str(DATA / "good" / "harbour.txt"),
                 str(DATA / "good" / "observatory.html"), "--index", index]) == 0
    capsys.readouterr()
    assert main(["sources", "--json", "--index", index]) == 0
    ids = {d["title"]: d["id"] for d in json.loads(capsys.readouterr().out)}
    question = ["ask", "How much did the bridge repairs cost?", "--index", index,
                "--to", "2024-12-31"]
    assert main(question) == 0
    out = capsys.readouterr().out
    assert out.startswith("12 million euros")  # from the undated text file, which the filter kept
    assert f"[{ids['Harbour bridge reopens after repairs']}]" in out and "undated" in out

    assert main([*question, "--exclude-undated", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert {c["doc_id"] for c in answer["retrieved"]} == {ids["Observatory spots new comet"]}
    assert [c["date_source"] for c in answer["citations"]] in ([], ["html-meta"])


def test_ask_shows_sources_that_differ_newest_first_in_text_and_json(tmp_path: Path,
                                                                     capsys) -> None:
    """Two outlets give the toll on different days: ``--json`` carries each answer with its
    article, outlet and date, newest first, as the app shows them; the text says so too; and a
    question about the latest toll is answered from the newest article."""
    differ = DATA / "differ" / "toll.jsonl"
    records = sorted((json.loads(line) for line in differ.read_text().splitlines()),
                     key=lambda r: r["published"], reverse=True)
    index = str(tmp_path / "index")
    assert main(["index", str(differ), "--index", index]) == 0
    capsys.readouterr()
    question = ["ask", "What is the toll for the Aldergate bridge?", "--index", index]
    assert main([*question, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    listed = answer["disagreement"]
    assert [(c["source"], c["published"], c["title"]) for c in listed] == [
        (r["source"], r["published"], r["title"]) for r in records]
    assert all(c["quote"] in r["text"] for c, r in zip(listed, records))
    assert len({c["quote"] for c in listed}) == len(listed)
    assert answer["text"] in {c["quote"] for c in listed}

    assert main(question) == 0
    out = capsys.readouterr().out
    shown = out[out.index("Sources differ (newest first):"):].splitlines()[1:]
    assert [line.split("  [")[0].strip() for line in shown] == [c["quote"] for c in listed]

    latest = ["ask", "What is the latest toll for the Aldergate bridge?", "--index", index,
              "--as-of", records[0]["published"][:10], "--json"]
    assert main(latest) == 0
    assert json.loads(capsys.readouterr().out)["text"] == listed[0]["quote"]


# ---- a fast start: no model, and no torch, where none is needed --------------------------------
ROOT = DATA.parent.parent
HEAVY = ("torch", "transformers", "sentence_transformers", "onnxruntime")


def run_cold(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, dict]:
    """``newsqa args`` in a fresh interpreter: exit status, output, and which of ``HEAVY`` it
    imported (its last output line)."""
    code = ("import json, sys\n"
            "from qa.cli import main\n"
            "try:\n"
            f"    status = main({args!r})\n"
            "except SystemExit as exit:  # --help\n"
            "    status = exit.code\n"
            f"print(json.dumps([status, {{m: m in sys.modules for m in {HEAVY!r}}}]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, **(env or {})})
    *printed, last = out.stdout.splitlines()
    status, imported = json.loads(last)
    return status, "\n".join(printed), imported


def test_commands_that_need_no_model_load_none(tmp_path: Path) -> None:
    """Listing sources or feeds (on an index made by either backend) and asking for help import
    neither torch nor ONNX Runtime: they load no model."""
    index = str(tmp_path / "index")
    assert main(["index", str(DATA / "good" / "harbour.txt"), "--index", index]) == 0
    no_model = dict.fromkeys(HEAVY, False)
    status, listed, imported = run_cold(["sources", "list", "--index", index])
    assert (status, imported) == (0, no_model) and listed.endswith("1 document(s)")
    assert run_cold(["feeds", "list", "--index", index])[::2] == (0, no_model)
    status, helped, imported = run_cold(["--help"])
    assert (status, imported) == (0, no_model) and "train-reader" in helped


@pytest.mark.slow
def test_asking_with_the_onnx_backend_never_imports_torch(tmp_path: Path) -> None:
    """Once the ONNX exports are made (the first run, which imports torch to make them), a cold
    ``newsqa ask --backend onnx`` answers the seed question without torch or transformers."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    index = str(tmp_path / "index")
    status, _, _ = run_cold(["index", str(ROOT / "seeds"), "--index", index,
                             "--backend", "onnx"], env)
    assert status == 0 and json.loads((Path(index) / "manifest.json").read_text())[
        "embedder"] == "sentence-transformers/all-MiniLM-L6-v2"  # as torch records it
    seed = json.loads((DATA / "seed_questions.jsonl").read_text().splitlines()[0])
    ask = ["ask", seed["question"], "--index", index, "--backend", "onnx", "--json"]
    assert run_cold(ask, env)[0] == 0  # makes the reader's export
    status, printed, imported = run_cold(ask, env)
    assert status == 0 and json.loads(printed)["text"] == seed["answers"][0]["text"]
    assert imported == {"torch": False, "transformers": False, "sentence_transformers": False,
                        "onnxruntime": True}


# ---- output hygiene: no terminal escapes from articles or feeds, short values, real dates -------

# Clear the screen, set the window title (OSC 0), write the clipboard (OSC 52), a C1 CSI, DEL
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b]52;c;aGVsbG8=\x07\x9b31m\x7f"
CONTROL_CHARS = ("\x1b", "\x07", "\x9b", "\x9d", "\x7f")


def no_controls(text: str) -> bool:
    return not any(char in text for char in CONTROL_CHARS)


def test_titles_and_sources_reach_the_terminal_without_their_escapes(tmp_path: Path,
                                                                     capsys) -> None:
    """A JSON Lines record whose title and source carry terminal escapes (and a line break) is
    listed and cited on one line each, the escapes as spaces; ``--json`` keeps them exactly,
    escaped as JSON."""
    record = {"title": f"Bridge reopens{ESCAPES}", "source": f"Gazette{ESCAPES}\nFAKE LINE",
              "published": "2024-03-18",
              "text": "The harbour bridge reopened on Monday after repairs that cost 12 million "
                      "euros, the council said."}
    corpus = tmp_path / "escapes.jsonl"
    corpus.write_text(json.dumps(record) + "\n", encoding="utf-8")
    index = str(tmp_path / "index")
    assert main(["index", str(corpus), "--index", index]) == 0
    capsys.readouterr()

    assert main(["sources", "--index", index]) == 0
    out = capsys.readouterr().out
    assert no_controls(out) and len(out.splitlines()) == 2  # the article's line, the count
    assert "Bridge reopens" in out and "FAKE LINE" in out.splitlines()[0]

    question = ["ask", "How much did the bridge repairs cost?", "--index", index,
                "--threshold", "0"]  # an answer, so that its citation is printed
    assert main(question) == 0
    out = capsys.readouterr().out
    assert no_controls(out) and "Bridge reopens" in out and "Gazette" in out

    assert main(["sources", "--json", "--index", index]) == 0
    out = capsys.readouterr().out
    [listed] = json.loads(out)
    assert no_controls(out) and (listed["title"], listed["source"]) == (
        record["title"], record["source"])
    assert main([*question, "--json"]) == 0
    out = capsys.readouterr().out
    assert no_controls(out) and json.loads(out)["citations"][0]["title"] == record["title"]


class EscapingFeed(QuietHandler):
    """An RSS feed whose title sets the window title, writes the clipboard by a C1 OSC 52 and
    breaks the line."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = ("<?xml version='1.0'?><rss version='2.0'><channel>"
                "<title>Wire\x1b]0;owned\x07 &#x9d;52;c;aGk=&#x9c; &#155;2J</title>"
                "<item><title>Ferry named\x1b[2J</title><guid>ferry</guid><description>The "
                "town's new ferry was named Sea Lark by pupils of the harbour school."
                "</description></item></channel></rss>").encode("utf-8")
        self._answer(200, {"Content-Type": "application/rss+xml"}, body)


def test_feed_titles_and_report_lines_reach_the_terminal_without_their_escapes(
        tmp_path: Path, capsys) -> None:
    index = str(tmp_path / "index")
    with serving(LoopbackServer(EscapingFeed)) as site:
        assert main(["feeds", "add", f"{site.url}/feed.xml", "--allow-private",
                     "--index", index]) == 0
        assert main(["watch", "--once", "--allow-private", "--index", index]) == 0
    capsys.readouterr()
    assert main(["feeds", "list", "--index", index]) == 0
    out = capsys.readouterr().out
    assert no_controls(out) and "Wire" in out and len(out.splitlines()) == 2
    assert main(["feeds", "list", "--json", "--index", index]) == 0
    out = capsys.readouterr().out
    assert no_controls(out) and json.loads(out)[0]["title"].startswith("Wire\x1b]0;owned\x07")

    # a round's report lines: its errors quote what a feed sent
    failed = FeedReport(f"http://127.0.0.1/{ESCAPES}", error=f"The feed {ESCAPES} failed.")
    skipped = FeedReport("http://127.0.0.1/feed", items=AddReport(
        errors=[f"entry 1 ({ESCAPES}): no text\nnewsqa: error: forged"]))
    assert print_feed_reports([failed, skipped]) == 1
    out, err = capsys.readouterr()
    assert no_controls(out + err) and len(err.splitlines()) == 2


@pytest.mark.parametrize(("option", "bound"), [("--from", "2024-02-30"), ("--to", "2025-13-45"),
                                               ("--to", "0000")])
def test_ask_refuses_a_date_bound_the_calendar_lacks(tmp_path: Path, capsys, option: str,
                                                    bound: str) -> None:
    name = {"--from": "date_from", "--to": "date_to"}[option]
    assert main(["ask", "Who?", option, bound, "--index", str(tmp_path / "index")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"newsqa: error: {name} '{bound}' is not a date on the calendar."]
    assert not (tmp_path / "index").exists()


def test_a_huge_value_is_quoted_cut_in_the_one_line_that_refuses_it(tmp_path: Path,
                                                                   capsys) -> None:
    assert main(["ask", "Who?", "--to", "9" * 100_000, "--index", str(tmp_path / "index")]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("newsqa: error: date_to '999") and len(line) < 400
    assert "(100,002 characters)" in line


def test_a_huge_unreadable_date_is_warned_about_in_a_short_line(tmp_path: Path,
                                                                caplog) -> None:
    corpus = tmp_path / "dated.jsonl"
    corpus.write_text(json.dumps({"text": "The harbour bridge reopened on Monday.",
                                  "published": "2024-01-01" + "x" * 100_000}) + "\n",
                      encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        assert main(["index", str(corpus), "--index", str(tmp_path / "index")]) == 0
    [warning] = [r.getMessage() for r in caplog.records if "unreadable date" in r.getMessage()]
    assert len(warning) < 600 and "(100,012 characters)" in warning


# ---- a full disk during `newsqa index`: one line, and the batches committed before it -------


def test_index_on_a_full_disk_says_so_in_one_line_and_keeps_the_batches_it_committed(
        tmp_path: Path, capsys) -> None:
    """On a real 4 MiB file system (a tmpfs; the test skips where it cannot be mounted): the
    first batch of small articles fits, the next one (one long article) does not."""
    import random
    import string

    from conftest import mounted
    from qa.pipeline import ADD_BATCH_DOCS

    rng = random.Random(3)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9)))
             for _ in range(5_000)]  # distinct articles: none a near-duplicate of another

    def text(chars: int) -> str:
        return " ".join(rng.choices(words, k=chars // 6)) + "."

    small = [{"title": f"Report {n}", "text": text(200)} for n in range(ADD_BATCH_DOCS)]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(record) + "\n"
                              for record in [*small, {"title": "Almanac",
                                                      "text": text(1_500_000)}]))
    with mounted(tmp_path / "disk", ("-t", "tmpfs", "-o", "size=4m", "tmpfs")) as disk:
        index = disk / "index"
        # long chunks: the long article is a few chunks to embed, not thousands
        code = main(["index", str(corpus), "--index", str(index), "--chunk-chars", "100000"])
        out, err = capsys.readouterr()
        assert code == 1
        assert err.splitlines() == [
            f"newsqa: error: The index at {index} could not be written: the disk is full; it "
            f"keeps its last saved state. {ADD_BATCH_DOCS} document(s) of this run were "
            "committed before that."]
        assert out.splitlines() == [f"added {ADD_BATCH_DOCS} document(s), {ADD_BATCH_DOCS} "
                                    "chunk(s); 0 already indexed; 0 near-duplicate(s)"]
        assert main(["sources", "--json", "--index", str(index)]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert sorted(d["title"] for d in listed) == sorted(r["title"] for r in small)


# ---- updates, ids and links (issue 26): the user's id and URL, and an edited record replaced ---


def test_an_edited_record_is_listed_cited_and_deleted_by_the_users_id(tmp_path: Path,
                                                                      capsys) -> None:
    harbour = (DATA / "good" / "harbour.txt").read_text(encoding="utf-8")
    url = "https://www.bbc.example/news/business-005"

    def corpus(figure: str) -> str:
        path = tmp_path / "bbc.jsonl"
        path.write_text(json.dumps({"id": "bbc-business-005", "url": url, "source": "BBC",
                                    "text": harbour.replace("12 million", f"{figure} million")})
                        + "\n" + json.dumps({"id": 6, "text": "The orchard harvest started two "
                                             "weeks early, growers in the valley said."}) + "\n")
        return str(path)

    index = str(tmp_path / "index")
    assert main(["index", corpus("12"), "--index", index]) == 0
    capsys.readouterr()
    assert main(["index", corpus("14"), "--index", index]) == 0
    assert capsys.readouterr().out.startswith(
        "added 1 document(s), 1 chunk(s) (1 replacing an older version of their article); "
        "1 already indexed")
    assert main(["sources", "--json", "--index", index]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(d["external_id"], d["url"]) for d in listed] == [("6", ""), ("bbc-business-005", url)]
    assert main(["sources", "--index", index]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == [listed[1]["id"], "bbc-business-005"]
    assert lines[1].endswith(url) and lines[0].split()[1] == "6"

    assert main(["ask", "How much did the bridge repairs cost?", "--index", index, "--json",
                 "--threshold", "0"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert "14 million" in answer["text"] and answer["disagreement"] == []
    assert [(c["external_id"], c["url"]) for c in answer["citations"]] == \
        [("bbc-business-005", url)] * len(answer["citations"])
    assert main(["ask", "How much did the bridge repairs cost?", "--index", index,
                 "--threshold", "0"]) == 0
    cited = capsys.readouterr().out.splitlines()[1]
    assert cited.startswith(f"  [{listed[1]['id']} · bbc-business-005] ")

    assert main(["sources", "delete", "bbc-business-005", "--index", index]) == 0
    assert capsys.readouterr().out == f"deleted {listed[1]['id']} (bbc-business-005)\n"
    assert main(["sources", "delete", "bbc-business-005", "--index", index]) == 1
    assert capsys.readouterr().err == ("newsqa: error: No document has the id or external id "
                                       f"'bbc-business-005' in {index}.\n")


# ---- issue 26: a closed pipe, options anywhere, --version, --limit, progress, columns, and a ----
# ---- file of questions answered as JSON Lines or CSV --------------------------------------------


def distinct_articles(count: int, seed: int, title_words: int = 2) -> list[dict]:
    """``count`` one-chunk articles of random words: none is a near-duplicate of another."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9)))
             for _ in range(5_000)]
    return [{"title": " ".join([f"Report {n}", *rng.choices(words, k=title_words)]),
             "text": " ".join(rng.choices(words, k=12)) + "."} for n in range(count)]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def thousand(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """1,001 articles with long titles, indexed by ``newsqa index`` in a process whose stderr is
    a pipe (as in a log, not a terminal); listing them takes far more than a pipe holds."""
    folder = tmp_path_factory.mktemp("thousand")
    corpus = write_jsonl(folder / "corpus.jsonl", distinct_articles(1_001, 26, title_words=20))
    index = folder / "index"
    done = subprocess.run([sys.executable, "-m", "qa.cli", "index", str(corpus), "--index",
                           str(index)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("added 1001 document(s), 1001 chunk(s)")
    return index, done


def test_indexing_into_a_log_writes_a_plain_line_a_thousand_documents(thousand) -> None:
    _, done = thousand
    assert "\r" not in done.stderr  # no bar
    [line] = [line for line in done.stderr.splitlines() if line.startswith("indexing")]
    assert re.fullmatch(r"indexing: 1,0\d\d of 1,001 documents done", line), line


@pytest.mark.parametrize("option", [[], ["--json"]])
def test_a_reader_that_stops_early_ends_the_listing_quietly(thousand, option: list[str]) -> None:
    """``newsqa sources | head -1`` through a real shell pipe. The listing is longer than the
    pipe holds, so head has exited while newsqa still writes: its next write meets the closed
    pipe (EPIPE) every time. newsqa stops without a traceback (nor Python's "Exception ignored"
    at exit) with 141, the status a shell reports for a writer that the closed pipe ended (128 +
    SIGPIPE; head's own status, what the shell gives the pipeline, is 0)."""
    index, _ = thousand
    command = shlex.join([sys.executable, "-m", "qa.cli", "sources", "--index", str(index),
                          *option])
    shown = subprocess.run(["bash", "-c", f'{command} | head -1; echo "${{PIPESTATUS[*]}}" >&2'],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert shown.stderr.splitlines() == ["141 0"]
    if option:
        assert shown.stdout == "[\n"
    else:
        assert len(shown.stdout.splitlines()) == 1 and "  Report " in shown.stdout


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_indexing_progress_moves_with_each_model_batch_not_each_commit(tmp_path: Path,
                                                                       backend: str) -> None:
    """What the bar (or the CLI's log lines) is told as a large corpus is indexed: the documents'
    worth of chunks embedded after each model batch, not a commit's 256 documents at once."""
    from qa.embed import BATCH_SIZE, Embedder
    from qa.ingest.documents import make_document
    from qa.pipeline import ADD_BATCH_DOCS, NewsQA

    docs = [make_document(r["text"], title=r["title"])
            for r in distinct_articles(ADD_BATCH_DOCS + 44, 3)]
    told: list[tuple[int, int]] = []
    with NewsQA(tmp_path / "index", embedder=Embedder(backend=backend)) as qa:
        report = qa.add(docs, progress=lambda done, total: told.append((done, total)))
    assert len(report.added) == report.chunks == len(docs)  # one chunk a document
    done = [d for d, _ in told]
    assert {total for _, total in told} == {len(docs)}
    assert done == sorted(done) and done[-1] == len(docs)
    assert sorted({d for d in done if d <= ADD_BATCH_DOCS}) == list(
        range(BATCH_SIZE, ADD_BATCH_DOCS + 1, BATCH_SIZE))


def test_options_go_before_between_and_after_the_positionals(tmp_path: Path, capsys) -> None:
    index, good = str(tmp_path / "index"), DATA / "good"
    assert main(["index", "--index", index, str(good / "harbour.txt"), "--wait",
                 str(good / "observatory.html")]) == 0
    assert main(["sources", "--json", "list", "--index", index]) == 0
    capsys.readouterr()
    assert main(["sources", "--index", index, "--json"]) == 0
    ids = [d["id"] for d in json.loads(capsys.readouterr().out)]
    question = "How much did the bridge repairs cost?"
    assert main(["ask", "--index", index, question, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["question"] == question
    feeds = ["http://127.0.0.1:9/a.xml", "http://127.0.0.1:9/b.xml"]
    assert main(["feeds", "add", "--index", index, feeds[0], "--allow-private", feeds[1]]) == 0
    assert capsys.readouterr().out.splitlines() == [f"subscribed to {url}" for url in feeds]
    assert main(["sources", "delete", "--index", index, ids[0], "--wait", ids[1]]) == 0
    assert capsys.readouterr().out.splitlines() == [f"deleted {doc_id}" for doc_id in ids]


def test_version_is_the_installed_packages(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"newsqa {importlib.metadata.version('newsqa')}\n"


def test_index_limit_takes_the_first_documents_and_says_how_many_it_left(tmp_path: Path,
                                                                        capsys) -> None:
    records = distinct_articles(5, 8)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", records)
    index = str(tmp_path / "index")
    assert main(["index", str(corpus), "--limit", "2", "--index", index]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("added 2 document(s), 2 chunk(s); 0 already indexed")
    assert out[1:] == ["  stopped at --limit 2: 3 more document(s) not indexed"]
    assert main(["sources", "--json", "--index", index]) == 0
    assert sorted(d["title"] for d in json.loads(capsys.readouterr().out)) == [
        r["title"] for r in records[:2]]
    assert main(["index", str(corpus), "--limit", "0", "--index", index]) == 1
    assert capsys.readouterr().err == (
        "newsqa: error: limit must be a whole number of at least 1, not 0.\n")


def test_sources_and_feeds_are_listed_in_aligned_columns(tmp_path: Path, capsys) -> None:
    """A date and a full timestamp, a short and a long source, URLs of different lengths: each
    column starts at the same place on every line."""
    text = distinct_articles(3, 4)
    records = [{**text[0], "title": "Alpha", "source": "AP", "published": "2024-03-18"},
               {**text[1], "title": "Beta", "source": "Town Gazette",
                "published": "2024-03-18T09:30:00+00:00"},
               {**text[2], "title": "Gamma"}]
    index = str(tmp_path / "index")
    assert main(["index", str(write_jsonl(tmp_path / "dated.jsonl", records)),
                 "--index", index]) == 0
    capsys.readouterr()
    assert main(["sources", "--index", index]) == 0
    *lines, count = capsys.readouterr().out.splitlines()
    assert count == "3 document(s)" and len(lines) == 3
    for column in ("chunks", *(r["title"] for r in records)):
        assert len({line.index(column) for line in lines if column in line}) == 1, lines
    assert len({line.index(" 1 chunks") for line in lines}) == 1

    feeds = ["http://127.0.0.1:9/f.xml", "http://127.0.0.1:9/a/much/longer/path/to/feed.xml"]
    assert main(["feeds", "add", *feeds, "--allow-private", "--index", index]) == 0
    capsys.readouterr()
    assert main(["feeds", "list", "--index", index]) == 0
    *lines, count = capsys.readouterr().out.splitlines()
    assert count == "2 feed(s)" and len(lines) == 2
    for column in (" item(s)", "last poll never", "last success never"):
        assert len({line.index(column) for line in lines}) == 1, lines


@pytest.fixture(scope="module")
def harbour_index(tmp_path_factory) -> str:
    index = str(tmp_path_factory.mktemp("harbour") / "index")
    assert main(["index", str(DATA / "good" / "harbour.txt"),
                 str(DATA / "good" / "observatory.html"), "--index", index]) == 0
    return index


def asked_alone(question: str, index: str, capsys) -> dict:
    """``newsqa ask QUESTION --json``'s answer."""
    capsys.readouterr()
    assert main(["ask", question, "--index", index, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_file_of_questions_gets_a_json_line_an_answer_and_a_bad_line_its_error(
        harbour_index: str, tmp_path: Path, capsys) -> None:
    """Plain lines and JSON records with ids, mixed; a blank line is passed over; an empty
    question and a broken record each get their line on stderr, and the rest are answered as
    ``ask --json`` answers them alone."""
    lines = ["How much did the bridge repairs cost?", "",
             json.dumps({"id": "comet", "question": "What did the observatory spot?"}),
             json.dumps({"id": "blank", "question": "  "}), "{not json",
             json.dumps({"id": 7, "question": "Who is the mayor?"})]
    questions = tmp_path / "questions.txt"
    questions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["ask", "--questions", str(questions), "--index", harbour_index]) == 1
    out, err = capsys.readouterr()
    errors = err.splitlines()
    assert errors[0] == f"newsqa: error: {questions}, line 4: The question is empty."
    assert errors[1].startswith(f"newsqa: error: {questions}, line 5: it starts with {{ but is "
                                "not a JSON object (") and len(errors) == 2
    answered = [json.loads(line) for line in out.splitlines()]
    assert [(a["id"], a["question"]) for a in answered] == [
        (1, lines[0]), ("comet", "What did the observatory spot?"), (7, "Who is the mayor?")]
    for a in answered:
        assert a["answer"] == asked_alone(a["question"], harbour_index, capsys)


def test_questions_from_stdin_come_out_as_csv_a_row_a_citation(harbour_index: str,
                                                               capsys) -> None:
    questions = ["How much did the bridge repairs cost?", "What did the observatory spot?",
                 "Who won the 1954 World Cup?"]
    done = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "--questions", "-", "--csv",
                           "--index", harbour_index], input="\n".join(questions) + "\n",
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    expected = [["id", "question", "answer", "confidence", "found", "doc_id", "external_id",
                 "title", "source", "published", "start", "end", "quote"]]
    for n, question in enumerate(questions, 1):
        a = asked_alone(question, harbour_index, capsys)
        head = [str(n), question, a["text"], str(round(a["score"], 4)), json.dumps(a["found"])]
        expected += [head + [c["doc_id"], c.get("external_id") or "", c["title"], c["source"],
                             c["published"], str(c["start"]), str(c["end"]), c["quote"]]
                     for c in a["citations"]] or [head + [""] * 8]
    # the CLI writes control characters (a quote's line break) as spaces, as everywhere
    assert rows == [[cell.translate(AS_SPACES) for cell in row] for row in expected]
    assert any(row[5] for row in rows[1:])  # an answer, with its article's id, is among them


def test_ask_wants_a_question_or_a_file_of_them(harbour_index: str, capsys) -> None:
    for args, message in ((["ask"], "ask takes a QUESTION or --questions FILE"),
                          (["ask", "Who?", "--questions", "-"],
                           "ask takes a QUESTION or --questions FILE, not both"),
                          (["ask", "Who?", "--csv"], "--csv is for --questions FILE")):
        with pytest.raises(SystemExit) as exited:
            main([*args, "--index", harbour_index])
        assert exited.value.code == 2 and message in capsys.readouterr().err
