"""The NewsQA facade end to end over ``seeds/`` with the shipped embedder and reader."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa import cli
from qa.errors import IngestError, NewsQAError, QuestionError
from qa.pipeline import NewsQA
from qa.retrieve import CONTEXT_TURNS
from qa.types import Document
from qa.validate import validate_filter


@pytest.mark.parametrize("question, expected", [
    ("How many POWs were on the first list?", "640"),
    ("Where were the direct talks held?", "Istanbul"),
    ("When were the direct talks in Istanbul?", "June 2"),
    ("Who said the first list had been handed to Ukraine?", "Medinsky"),
])
def test_seed_questions_are_answered_and_cited(seeded_qa, question: str, expected: str) -> None:
    answer = seeded_qa.ask(question, top_k=5)
    assert expected in answer.text
    cited = answer.citations[0]
    assert cited.title.startswith("Russia and Ukraine carried out an exchange of prisoners")
    document = seeded_qa.get(cited.doc_id)
    assert document.text[cited.start:cited.end] == cited.quote == answer.text


@pytest.fixture(scope="module")
def toll_qa(tmp_path_factory, embedder, shipped_reader):
    """Two outlets that give the Aldergate bridge's toll on different days (tests/data/differ)."""
    with NewsQA(tmp_path_factory.mktemp("toll"), embedder=embedder, reader=shipped_reader) as qa:
        qa.add_paths([Path(__file__).parent / "data" / "differ" / "toll.jsonl"])
        yield qa


SCALE_QUESTIONS = [  # (index, question, as_of); the last two make "Sources differ"
    *(("seeds", q, None) for q in ("How many POWs were on the first list?",
                                   "Where were the direct talks held?",
                                   "Who said the first list had been handed to Ukraine?",
                                   "How many soldiers were exchanged?",
                                   "What did Zelensky say about the exchange?")),
    ("toll", "What is the toll for the Aldergate bridge?", None),
    ("toll", "What is the latest toll for the Aldergate bridge?", "2025-03-11"),
]


def test_no_alternative_or_differing_source_is_shown_above_the_answer(seeded_qa,
                                                                      toll_qa) -> None:
    """One scale (issue 22): the answer's confidence and every other candidate's number are the
    decision's probabilities, and the answer is the most probable, in the Answer, its JSON and
    the app's reply."""
    from qa.ui import render

    index = {"seeds": seeded_qa, "toll": toll_qa}
    differed, compared = 0, 0
    for name, question, as_of in SCALE_QUESTIONS:
        answer = index[name].ask(question, as_of=as_of, threshold=0.0)
        assert answer.found, question
        compared += bool(answer.alternatives)  # a plain answer read in one round may have none
        assert all(a.score <= answer.score for a in answer.alternatives), question
        assert all(c.confidence <= answer.score for c in answer.disagreement), question
        assert answer.citations[0].confidence == answer.score
        differed += bool(answer.disagreement)
        data = json.loads(json.dumps(answer.to_dict()))
        assert all(a["score"] <= data["score"] for a in data["alternatives"])
        assert all(c["confidence"] <= data["score"] for c in data["disagreement"])
        assert data["reader_score"] == answer.citations[0].score == data["citations"][0][
            "reader_score"]
        shown = [int(n) for n in re.findall(r"nqa-score'>(\d+)%", render.render_answer(answer))]
        assert shown[0] == round(100 * answer.score) and all(n <= shown[0] for n in shown[1:])
    assert differed == 2 and compared >= 4, compared


def test_question_outside_the_articles_is_not_found(seeded_qa) -> None:
    answer = seeded_qa.ask("Who won the 2018 football World Cup?", top_k=5)
    assert answer.text == "" and not answer.found


# --- refused input: one clear error, before any work -------------------------------------------

@pytest.mark.parametrize("question", [
    "", " \n\t", "\x00", "\x00\x01\x1b\x7f", "?!…", "\ud800 Who won?", "Who won\udcff?", "x" * 501,
    b"Who won?", None,
])
def test_question_that_is_not_one_is_refused_before_any_work(tmp_path: Path,
                                                             question: object) -> None:
    index = tmp_path / "index"
    with pytest.raises(QuestionError):
        NewsQA(index).ask(question)  # type: ignore[arg-type]
    assert not index.exists()  # the index was never opened, so no model was loaded either


@pytest.mark.parametrize(("options", "message"), [
    ({"top_k": "5"}, "top_k must be a whole number of at least 1, not '5'"),
    ({"top_k": 2.5}, "not 2.5"),
    ({"top_k": True}, "not True"),
    ({"top_k": 0}, "not 0"),
    ({"threshold": math.nan}, "The threshold must be a number from 0 to 1, not nan"),
    ({"threshold": math.inf}, "not inf"),
    ({"threshold": -0.1}, "not -0.1"),
    ({"threshold": 1.5}, "not 1.5"),
    ({"threshold": "0.5"}, "not '0.5'"),
    ({"threshold": True}, "not True"),
])
def test_bad_top_k_or_threshold_is_refused_before_any_work(tmp_path: Path, options: dict,
                                                           message: str) -> None:
    qa = NewsQA(tmp_path / "index")
    with pytest.raises(NewsQAError, match=re.escape(message)):
        qa.ask("How many POWs were on the first list?", **options)
    if "top_k" in options:
        with pytest.raises(NewsQAError, match=re.escape(message)):
            qa.retrieve("How many POWs were on the first list?", **options)
    else:
        with pytest.raises(NewsQAError, match=re.escape(message)):
            qa.read_document("How many POWs?", Document(id="d", text="640 POWs."), **options)
    assert not (tmp_path / "index").exists()


@pytest.mark.parametrize(("options", "message"), [
    ({"date_from": "last week"}, "date_from 'last week' is not an ISO date such as 2024-05-31"),
    ({"date_to": "2024-5-1"}, "date_to '2024-5-1' is not an ISO date"),
    ({"date_to": 2024}, "date_to 2024 is not an ISO date"),
    ({"sources": "Reuters"}, "sources must be a list of source names, not 'Reuters'"),
    ({"sources": ["Reuters", None]}, "not ['Reuters', None]"),
])
def test_bad_filters_are_refused_before_any_work(tmp_path: Path, options: dict,
                                                 message: str) -> None:
    qa = NewsQA(tmp_path / "index")
    for call in (qa.ask, qa.retrieve):
        with pytest.raises(NewsQAError, match=re.escape(message)):
            call("How many POWs were on the first list?", **options)
    assert not (tmp_path / "index").exists()


def test_filters_reach_both_rankings(seeded_qa) -> None:
    question = "How many POWs were on the first list?"
    assert seeded_qa.retrieve(question, sources=["Nobody"]) == []
    undated = seeded_qa.retrieve(question, date_from="1900", date_to="2999-12")  # seed: no date
    assert undated == seeded_qa.retrieve(question)
    assert seeded_qa.retrieve(question, date_from="1900", include_undated=False) == []


def test_numpy_numbers_and_the_ends_of_the_range_are_accepted(seeded_qa) -> None:
    question = "How many POWs were on the first list?"
    assert "640" in seeded_qa.ask(question, top_k=np.int64(2), threshold=np.float64(0.0)).text
    strict = seeded_qa.ask(question, top_k=2, threshold=1)
    assert strict.text == "" or strict.score == 1.0


# --- the CLI shows each refusal as one line ------------------------------------------------

NOT_UTF8 = os.fsdecode(b"caf\xe9")  # how Python decodes argv bytes that are not UTF-8


@pytest.mark.parametrize(("argv", "message"), [
    (["ask", "Who?", "--threshold", "nan"], "The threshold must be a number from 0 to 1, not nan."),
    (["ask", "Who?", "--threshold=-inf"], "The threshold must be a number from 0 to 1, not -inf."),
    (["ask", "Who?", "--top-k", "0"], "top_k must be a whole number of at least 1, not 0."),
    (["ask", "\x00\x00"], "The question has no letters or digits."),
    (["ask", f"{NOT_UTF8}?"], "argument 2 ('caf\\udce9?') is not valid UTF-8 text."),
    (["sources", "delete", NOT_UTF8], "argument 3 ('caf\\udce9') is not valid UTF-8 text."),
    (["index", f"{NOT_UTF8}.txt"], "argument 2 ('caf\\udce9.txt') is not valid UTF-8 text."),
])
def test_cli_refuses_bad_input_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                             message: str) -> None:
    monkeypatch.chdir(tmp_path)
    if argv[0] == "index":  # the file exists: only its name is refused
        (tmp_path / argv[1]).write_text("The harbour reopened.", encoding="utf-8")
    code = cli.main([*argv, "--index", "index"])
    assert code != 0
    assert capsys.readouterr().err.splitlines() == [f"newsqa: error: {message}"]
    assert not (tmp_path / "index").exists()


def test_cli_refuses_argv_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "qa.cli", "sources", "delete", b"\xff\xfe",
                             "--index", str(tmp_path / "index")], capture_output=True)
    assert result.returncode == cli.EXIT_USAGE
    assert result.stderr.decode() == (
        "newsqa: error: argument 3 ('\\udcff\\udcfe') is not valid UTF-8 text.\n")


# --- time: "as of", recency and sources that differ ---------------------------------------------
@pytest.mark.parametrize("as_of", ["yesterday", "2025-13-01", "2025-06", 20250601])
def test_bad_as_of_is_refused_with_one_clear_error(tmp_path: Path, as_of) -> None:
    qa = NewsQA(tmp_path / "index")
    with pytest.raises(NewsQAError, match="as_of must be a date"):
        qa.ask("What is the latest price?", as_of=as_of)
    assert not (tmp_path / "index").exists()  # refused before any work


FORECASTS = [
    Document("f1", "The Bank of England forecast a shortage of around 400 mln stg in the money "
             "market today.", title="Shortage forecast", source="Reuters",
             published="1987-03-02"),
    Document("f2", "The Bank of England forecast a shortage of around 700 mln stg in the money "
             "market today, it said on Thursday.", title="Shortage forecast revised",
             source="Reuters", published="1987-03-05"),
]


@pytest.fixture(scope="module")
def forecasts_qa(tmp_path_factory, embedder):
    """The forecasts read as ``NewsQA`` reads by default (ONNX Runtime int8), as the CLI test
    on the same index does: whether a rival is close is a matter of span scores."""
    with NewsQA(tmp_path_factory.mktemp("forecasts"), embedder=embedder) as qa:
        qa.add(FORECASTS)
        yield qa


def test_the_latest_question_answers_from_the_newest_article_and_shows_the_other(forecasts_qa):
    answer = forecasts_qa.ask("What is the latest shortage forecast?", as_of="1987-03-06",
                              threshold=0.0)
    assert "700" in answer.text and answer.citations[0].doc_id == "f2"
    assert [c.doc_id for c in answer.disagreement] == ["f2", "f1"]
    assert "400" in answer.disagreement[1].quote
    only_one = forecasts_qa.ask("What is the latest shortage forecast?", as_of="1987-03-06",
                                date_to="1987-03-03", threshold=0.0)
    assert "400" in only_one.text and only_one.disagreement == []


def test_cli_shows_the_resolved_date_and_the_differing_sources(forecasts_qa, capsys) -> None:
    forecasts_qa.close()  # the CLI opens the index itself
    assert cli.main(["ask", "What is the latest shortage forecast?", "--index",
                     str(forecasts_qa.index_dir), "--as-of", "1987-03-06",
                     "--threshold", "0"]) == 0
    out = capsys.readouterr().out
    assert "Sources differ (newest first):" in out and out.index("700") < out.index("400")
    cli.main(["ask", "When did the bank speak about the revised forecast?", "--index",
              str(forecasts_qa.index_dir), "--threshold", "0", "--json"])
    cited = json.loads(capsys.readouterr().out)["citations"][0]
    # both articles say "today"; the revised one (a Thursday) also says "on Thursday"
    expected = {("f1", "today"): "1987-03-02", ("f2", "today"): "1987-03-05",
                ("f2", "Thursday"): "1987-03-05", ("f2", "on Thursday"): "1987-03-05"}
    assert cited["resolved_date"] == expected[cited["doc_id"], cited["quote"]]
    cli.main(["ask", "When did the bank speak about the revised forecast?", "--index",
              str(forecasts_qa.index_dir), "--threshold", "0"])
    day = {"1987-03-02": "2 March 1987", "1987-03-05": "5 March 1987"}[cited["resolved_date"]]
    assert capsys.readouterr().out.startswith(f"{cited['quote']} ({day})")


# --- the answer cache ----------------------------------------------------------------------------

def test_a_repeated_question_is_read_once_until_another_process_changes_the_index(
        tmp_path: Path, embedder, shipped_reader) -> None:
    from conftest import SEEDS

    asker = NewsQA(tmp_path / "index", embedder=embedder, reader=shipped_reader)
    asker.add_paths([SEEDS])
    question = "How many POWs were on the first list?"
    first = asker.ask(question)
    assert first.found and asker._answers.misses == 1
    assert asker.ask(question) is first and asker._answers.hits == 1
    assert asker.ask(question, top_k=3) is not first  # another setting is another answer
    # another writer (its own store connection, as another process has) deletes the article
    with NewsQA(tmp_path / "index", embedder=embedder, reader=shipped_reader) as writer:
        writer.delete(first.citations[0].doc_id)
    assert not asker.ask(question).found  # the new generation is read, not the cached answer
    asker.close()


def test_remember_answers_0_reads_every_question_afresh(tmp_path: Path, embedder,
                                                        shipped_reader) -> None:
    """What a latency benchmark needs: the same question asked again is read again."""
    from conftest import SEEDS

    with pytest.raises(NewsQAError, match="remember_answers must be a whole number of at least "
                                          "0, not -1"):
        NewsQA(tmp_path / "index", remember_answers=-1)
    asker = NewsQA(tmp_path / "index", embedder=embedder, reader=shipped_reader,
                   remember_answers=0)
    asker.add_paths([SEEDS])
    question = "How many POWs were on the first list?"
    first, again = asker.ask(question), asker.ask(question)
    assert again is not first and again == first
    assert (asker._answers.hits, asker._answers.misses) == (0, 2)
    asker.close()


# --- documents, history and date bounds are checked where they enter the facade -----------------

BRIDGE = "The harbour bridge reopened on Monday after repairs that cost 12 million euros."


@pytest.mark.parametrize(("bad", "message"), [
    (Document("b", "The bridge \ud800 reopened."), "text is not valid Unicode (a lone surrogate"),
    (Document("b", BRIDGE, title="Bridge \udcff"), "title is not valid Unicode"),
    (Document("b", "x" * 3_000_000), "3,000,000 characters long; the limit is 2,000,000"),
    (Document("b", " \n\t "), "The document text is empty."),
    (Document("b", None), "The document text must be text, not NoneType."),  # type: ignore
    (Document("b", BRIDGE, title=7), "The document title must be text, not int."),  # type: ignore
    (Document("b", BRIDGE, published="next Tuesday"), "date 'next Tuesday' cannot be read"),
    (Document(" ", BRIDGE), "has an empty id"),
])
def test_a_document_that_cannot_be_indexed_refuses_the_whole_add_before_any_work(
        tmp_path: Path, bad: Document, message: str) -> None:
    """Checked as a file's documents are, all before anything is written (no model loads, no
    index is made), with one line naming the document by its place, or its title."""
    index = tmp_path / "index"
    good = Document("a", "The orchard harvest started two weeks early.", title="Harvest")
    with pytest.raises(IngestError, match=re.escape(message)) as refused:
        NewsQA(index).add([good, bad])
    named = "Document 2 ('Bridge \\udcff')" if bad.title == "Bridge \udcff" else "Document 2 "
    assert str(refused.value).startswith(named) and "\n" not in str(refused.value)
    assert not index.exists()


def test_a_given_document_keeps_its_id_and_has_its_date_read_as_iso(tmp_path: Path,
                                                                    embedder) -> None:
    with NewsQA(tmp_path / "index", embedder=embedder) as qa:
        assert qa.add([Document("mine", BRIDGE, published="18 March 2024")]).added == ["mine"]
        assert qa.get("mine").published == "2024-03-18"


@pytest.mark.parametrize(("history", "message"), [
    ("Who was named?", "history must be a list of (question, answer) pairs, not str."),
    ([("Who was named?",)], "history turn 1 is not a (question, answer) pair of text: "
                            "('Who was named?',)."),
    ([("Who?", "Ann"), ("When?", None)], "history turn 2 is not a (question, answer) pair"),
    ([("Who\ud800?", "Ann")], "history turn 1 is not valid Unicode (a lone surrogate)."),
])
def test_a_history_that_is_not_one_is_refused_before_any_work(tmp_path: Path, history: object,
                                                              message: str) -> None:
    qa = NewsQA(tmp_path / "index")
    for call in (qa.ask, qa.retrieve):
        with pytest.raises(NewsQAError, match=re.escape(message)):
            call("How old is she?", history=history)
    assert not (tmp_path / "index").exists()


def test_a_thousand_turn_follow_up_chain_is_answered(seeded_qa) -> None:
    """Only the last turns can matter to a follow-up: a chat of 1,000 follow-ups, each referring
    to the one before, is read as its last ``CONTEXT_TURNS`` are, without running out of
    stack."""
    chain = [("How many POWs were on the first list?", "640")] + [("And the next?", "More")] * 999
    question = "How many were on it?"
    hits = seeded_qa.retrieve(question, history=chain)
    assert hits and hits == seeded_qa.retrieve(question, history=chain[-CONTEXT_TURNS:])
    answer = seeded_qa.ask(question, history=chain)
    assert answer.question == question and answer.retrieved == [h.chunk for h in hits]


@pytest.mark.parametrize("bound", ["2025-13-45", "2024-02-30", "2023-02-29", "0000", "0000-01",
                                   "2024-06-31", "2024-05-31T24:00", "2024-05-31 12:60"])
def test_a_date_bound_the_calendar_lacks_is_refused_before_any_work(tmp_path: Path,
                                                                    bound: str) -> None:
    qa = NewsQA(tmp_path / "index")
    for name in ("date_from", "date_to"):
        for call in (qa.ask, qa.retrieve):
            with pytest.raises(NewsQAError, match=re.escape(
                    f"{name} '{bound}' is not a date on the calendar.")):
                call("How many POWs were on the first list?", **{name: bound})
    assert not (tmp_path / "index").exists()
    # the days the calendar has, to the second, as prefixes
    kept = validate_filter(None, "2024-02-29", "2024-12-31T23:59:59.5", True)
    assert (kept.date_from, kept.date_to) == ("2024-02-29", "2024-12-31T23:59:59.5")
    assert validate_filter(None, "0001", "9999-12-31 23", True).date_to == "9999-12-31 23"


# --- updates: an article indexed again with changed text replaces its old version (issue 26) -----

GOOD = Path(__file__).resolve().parent / "data" / "good"
HARBOUR = (GOOD / "harbour.txt").read_text(encoding="utf-8")  # the repairs cost 12 million euros
ORCHARD = (GOOD / "nested" / "orchard.md").read_text(encoding="utf-8")
BBC_URL = "https://www.bbc.example/news/business-005"


def bbc_corpus(path: Path, figure: str) -> Path:
    """A JSON Lines corpus of two records with ids; in ``bbc-business-005`` the repairs cost
    ``figure`` million euros."""
    records = [{"id": "bbc-business-005", "title": "Harbour bridge reopens after repairs",
                "source": "BBC", "published": "2024-03-19", "url": BBC_URL,
                "text": HARBOUR.replace("12 million", f"{figure} million")},
               {"id": "bbc-business-006", "title": "Orchard harvest hits record",
                "source": "BBC", "text": ORCHARD}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_an_edited_record_replaces_its_old_version_and_is_answered_from_alone(
        tmp_path: Path, embedder, shipped_reader) -> None:
    """The issue's case: the edited record (12 → 14 million) replaces the old version, which it
    is a near-duplicate of, rather than being refused as one or added beside it (the answer
    cited the old figure under "Sources differ"). The user's id and URL travel to the citation;
    indexing the same again is a no-op; the article is deleted by the user's id."""
    from qa.ingest.files import load

    corpus = tmp_path / "bbc.jsonl"
    with NewsQA(tmp_path / "index", embedder=embedder, reader=shipped_reader) as qa:
        assert len(qa.add_paths([bbc_corpus(corpus, "12")]).added) == 2
        old = qa.get("bbc-business-005")
        assert "12 million" in old.text and old.key == "id:bbc-business-005"
        edited, orchard = load([bbc_corpus(corpus, "14")])
        assert qa.store.find_near_duplicate(edited) == old.id  # what refused it before
        report = qa.add_paths([corpus])
        assert report.replaced == [(old.id, edited.id)] and report.added == [edited.id]
        assert report.unchanged == [orchard.id] and report.near_duplicates == []
        assert [(d.id, d.external_id, d.url) for d in qa.documents()] == [
            (orchard.id, "bbc-business-006", ""), (edited.id, "bbc-business-005", BBC_URL)]
        assert "14 million" in qa.get("bbc-business-005").text
        answer = qa.ask("How much did the bridge repairs cost?", threshold=0.0)
        assert "14 million" in answer.text and answer.disagreement == []
        assert {(c.doc_id, c.external_id, c.url) for c in answer.citations} == {
            (edited.id, "bbc-business-005", BBC_URL)}

        version = qa.store.version
        again = qa.add_paths([corpus])
        assert (again.added, again.replaced) == ([], []) and len(again.unchanged) == 2
        assert qa.store.version == version

        assert qa.delete("bbc-business-005") == edited.id
        assert [d.id for d in qa.documents()] == [orchard.id]
        for call in (qa.get, qa.delete):
            with pytest.raises(NewsQAError, match=re.escape(
                    "No document has the id or external id 'bbc-business-005' in")):
                call("bbc-business-005")
        assert qa.get(orchard.id) == qa.get("bbc-business-006")


def test_of_two_versions_given_together_the_later_is_indexed(tmp_path: Path, embedder) -> None:
    """Documents given to ``add`` are named by their ``external_id`` (else their URL)."""
    v1, v2, v3 = (Document(f"v{n}", BRIDGE.replace("12", str(figure)), external_id="bridge")
                  for n, figure in ((1, 12), (2, 14), (3, 16)))
    with NewsQA(tmp_path / "index", embedder=embedder) as qa:
        report = qa.add([v1, v2])
        assert (report.added, report.replaced, report.near_duplicates) == (["v2"], [], [])
        assert qa.add([v3]).replaced == [("v2", "v3")]
        assert [(d.id, d.external_id) for d in qa.documents()] == [("v3", "bridge")]
        linked = Document("page", BRIDGE, url="https://news.example/bridge")
        assert qa.add([linked]).added == ["page"]
        edited = Document("page-2", BRIDGE.replace("12", "13"), url="https://news.example/bridge")
        assert qa.add([edited]).replaced == [("page", "page-2")]


def test_an_edited_file_is_replaced_by_its_path_and_an_unchanged_one_is_a_no_op(
        tmp_path: Path, embedder) -> None:
    folder = tmp_path / "articles"
    (folder / "sub").mkdir(parents=True)
    article = folder / "harbour.txt"
    article.write_text(HARBOUR, encoding="utf-8")
    (folder / "orchard.md").write_text(ORCHARD, encoding="utf-8")
    with NewsQA(tmp_path / "index", embedder=embedder) as qa:
        assert len(qa.add_paths([folder]).added) == 2
        article.write_text(HARBOUR.replace("12 million", "14 million"), encoding="utf-8")
        # the same file by another path: it is named by its resolved path
        report = qa.add_paths([folder / "sub" / ".." / "harbour.txt"])
        assert len(report.replaced) == 1 and report.near_duplicates == []
        texts = [qa.get(d.id).text for d in qa.documents()]
        assert len(texts) == 2 and "14 million" in texts[1] and "12 million" not in texts[0]
        version = qa.store.version
        again = qa.add_paths([folder])
        assert (again.added, len(again.unchanged)) == ([], 2) and qa.store.version == version


def test_a_page_fetched_again_with_changed_text_replaces_the_old_one(tmp_path: Path,
                                                                    embedder) -> None:
    from conftest import LoopbackServer, QuietHandler, serving
    from qa.ingest.fetch import Fetcher

    class Page(QuietHandler):
        figure = "12"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            paragraphs = "".join(f"<p>{p}</p>" for p in HARBOUR.replace(
                "12 million", f"{self.figure} million").split("\n\n")[1:])
            body = (f"<html><head><title>Harbour bridge reopens</title></head><body><article>"
                    f"<h1>Harbour bridge reopens</h1>{paragraphs}</article></body></html>")
            self._answer(200, {"Content-Type": "text/html; charset=utf-8"}, body.encode())

    with serving(LoopbackServer(Page)) as server, NewsQA(
            tmp_path / "index", embedder=embedder,
            fetcher=Fetcher(allow_private=True, timeout=10)) as qa:
        url = f"{server.url}/news/bridge"
        [first] = qa.add_urls([url]).added
        Page.figure = "14"
        report = qa.add_urls([url])
        assert report.replaced == [(first, report.added[0])] and not report.errors
        [listed] = qa.documents()
        assert listed.url == url and "14 million" in qa.get(listed.id).text


def test_a_newer_report_about_something_else_is_no_later_word(tmp_path: Path, embedder,
                                                               shipped_reader) -> None:
    """Near-identical power-cut reports for ten towns, then newer ones for three of them: asked
    about the current state in a town without news, the answer stays its own figure, not a
    newer figure from another town's report that the reader scores as well."""
    towns = ["Eskford", "Eskmere", "Eskwick", "Eskstead", "Eskholm",
             "Belford", "Belmere", "Belwick", "Belstead", "Belholm"]

    def report(town: str, homes: int, published: str) -> Document:
        return Document(f"{town}-{published}", f"The number of homes without power in {town} "
                        f"rose to {homes:,} on Monday after the storm brought down lines across "
                        "the valley, the utility said. Crews from three regions were working "
                        "through the night, and schools stayed shut.",
                        f"Storm cuts power in {town}", "Valley Times", published=published,
                        date_source="feed")

    with NewsQA(tmp_path, embedder=embedder, reader=shipped_reader) as qa:
        qa.add([report(town, 1_000 + 37 * n, "2026-03-02") for n, town in enumerate(towns)])
        qa.add([report(town, 2_000 + 41 * n, "2026-03-03") for n, town in enumerate(towns[5:8])])
        for n, town in enumerate(towns[:5]):
            answer = qa.ask(f"How many homes are without power in {town}?", as_of="2026-03-04",
                            recency=True, threshold=0.0)
            assert answer.text == f"{1_000 + 37 * n:,}", (town, answer.text)
            assert answer.citations[0].doc_id == f"{town}-2026-03-02"
        newer = qa.ask("How many homes are without power in Belford?", as_of="2026-03-04",
                       recency=True, threshold=0.0)
        assert newer.text == "2,000" and newer.citations[0].doc_id == "Belford-2026-03-03"
        # its timeline is Belford's own two reports, not its neighbours'
        timeline = qa.ask("How many homes are without power in Belford?", as_of="2026-03-04",
                          timeline=True).timeline
        assert [(c.doc_id, c.quote) for c in timeline] == [("Belford-2026-03-02", "1,185"),
                                                           ("Belford-2026-03-03", "2,000")]
