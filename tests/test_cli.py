"""The command line: a batch goes on past a bad input, which gets one line and a non-zero exit."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qa.cli import main

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
