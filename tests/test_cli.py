"""The command line: a batch goes on past a bad input, which gets one line and a non-zero exit."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LoopbackServer, QuietHandler, serving
from qa.cli import main, print_feed_reports
from qa.pipeline import AddReport, FeedReport

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
