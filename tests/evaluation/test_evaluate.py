"""The evaluation runner end to end: input checks, predictions.jsonl, report, plots, determinism.

Mechanics use a tiny random QA model (its answers are meaningless, their bookkeeping is not);
the slow test checks the shipped reader on the seed questions.
"""
from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import matplotlib.image
import pytest

from qa.errors import NewsQAError
from qa.evaluation import evaluate as ev
from qa.evaluation.metrics import exact_match
from qa.evaluation.report import PLOTS
from qa.ingest.documents import make_document
from qa.pipeline import NewsQA
from qa.reader.model import ENOUGH_SCORE, STAGES
from qa.resources import DEFAULT_READER

ROOT = Path(__file__).resolve().parents[2]
PREDICTION_KEYS = {"id", "prediction", "score", "doc_id", "start", "end", "retrieved"}

EXCHANGE = (
    "Russia and Ukraine carried out an exchange of prisoners of war on Monday involving soldiers "
    "under the age of 25 and others who had been severely wounded. The exchange was the result "
    "of direct talks in Istanbul on June 2 that resulted in an agreement to swap at least 1,200 "
    "prisoners on each side. Kremlin aide Vladimir Medinsky said over the weekend that the first "
    "list of 640 prisoners had been handed to Ukraine, and that more lists would follow.")
# the same story with a wire credit appended: a near-duplicate the index keeps only once
EXCHANGE_COPY = EXCHANGE + " (Reporting by the Moscow bureau.)"
TRAM = (
    "The city council of Lyon approved a new tram line on Tuesday. The line will connect the "
    "railway station with the university campus and is expected to open in 2027, the mayor said. "
    "Construction will cost about 300 million euros.")


def record(qid: str, title: str, context: str, question: str, answer: str | None) -> dict:
    answers = [] if answer is None else [{"text": answer, "answer_start": context.index(answer)}]
    return {"id": qid, "title": title, "context": context, "question": question,
            "answers": answers, "is_impossible": answer is None}


RECORDS = [
    record("q1", "Exchange", EXCHANGE, "How many prisoners were on the first list?", "640"),
    record("q2", "Exchange (wire)", EXCHANGE_COPY, "Where were the direct talks held?",
           "Istanbul"),
    record("q3", "Tram", TRAM, "When will the tram line open?", "2027"),
    record("q4", "Tram", TRAM, "Who won the 2018 football World Cup?", None),
    record("q5", "Exchange", EXCHANGE, "Who said the first list had been handed over?",
           "Vladimir Medinsky"),
]
GOLD_DOC = {"q1": EXCHANGE, "q2": EXCHANGE, "q3": TRAM, "q4": TRAM, "q5": EXCHANGE}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "tiny.jsonl", RECORDS)


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory, data, tiny_model) -> tuple[Path, dict, Path]:
    out = tmp_path_factory.mktemp("e2e")
    index = tmp_path_factory.mktemp("e2e-index")
    report = ev.evaluate(data, "e2e", out, top_k=2, reader=str(tiny_model), threshold=0.0,
                         index_dir=index)
    return out, report, index


def assert_located(predictions: list[dict]) -> None:
    """Every answer is quoted exactly from the document it cites; "not found" cites nothing."""
    texts = {make_document(c).id: make_document(c).text for c in (EXCHANGE, EXCHANGE_COPY, TRAM)}
    for p in predictions:
        assert set(p) >= PREDICTION_KEYS
        if p["prediction"]:
            assert texts[p["doc_id"]][p["start"]:p["end"]] == p["prediction"]
        else:
            assert p["doc_id"] is p["start"] is p["end"] is None


def assert_outputs(out: Path) -> None:
    for name in ("predictions.jsonl", "report.json", "report.md"):
        assert (out / name).is_file()
    for name in PLOTS.values():
        assert (out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert min(matplotlib.image.imread(out / name).shape[:2]) >= 200


# ---- loading ---------------------------------------------------------------------------------
def test_load_questions_reads_plain_and_gzip(tmp_path, data):
    gz = tmp_path / "tiny.jsonl.gz"
    gz.write_bytes(gzip.compress(data.read_bytes()))
    questions = ev.load_questions(data)
    assert ev.load_questions(gz) == questions
    assert [q.id for q in questions] == ["q1", "q2", "q3", "q4", "q5"]
    assert questions[3].answers == [] and questions[3].is_impossible is True
    assert questions[4].answers == ["Vladimir Medinsky"]


def good() -> dict:
    return dict(RECORDS[0])


@pytest.mark.parametrize("line, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is not a JSON object"),
    (json.dumps({**good(), "question": "  "}), "'question' must be a non-empty string"),
    (json.dumps({**good(), "question": "why " * 200}), "limit is 500"),
    (json.dumps({k: v for k, v in good().items() if k != "context"}), "'context' must be"),
    (json.dumps({**good(), "doc_id": "abc"}), "'doc_id' is for a question without a 'context'"),
    (json.dumps({**good(), "answers": [{"text": "640", "answer_start": 3}]}),
     "is not at offset 3"),
    (json.dumps({**good(), "answers": [{"text": "640"}]}), "integer 'answer_start'"),
    (json.dumps({**good(), "is_impossible": True}), "an impossible one must have none"),
    (json.dumps({**good(), "answers": [], "is_impossible": False}), "needs answers"),
    (json.dumps({**good(), "answers": []}), "needs answers"),
    (json.dumps(good()), "occurs twice"),
])
def test_malformed_line_is_named(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good()) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(NewsQAError, match=message) as err:
        ev.load_questions(path)
    assert f"{path}, line 3" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"\n  \n"])
def test_empty_file_is_an_error(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(NewsQAError, match="contains no questions"):
        ev.load_questions(path)


def test_unreadable_files_are_errors(tmp_path):
    with pytest.raises(NewsQAError, match="does not exist"):
        ev.load_questions(tmp_path / "missing.jsonl")
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(NewsQAError, match="cannot be read"):
        ev.load_questions(broken)


def test_load_questions_accepts_squad_v2_dev(shared_data):
    questions = ev.load_questions(shared_data / "qa" / "dev" / "squad_v2.0_dev_public.jsonl")
    assert len(questions) == 1407
    assert sum(q.is_impossible for q in questions) == 702


# ---- reader mode -----------------------------------------------------------------------------
def test_reader_mode(tmp_path, data, tiny_model):
    report = ev.evaluate(data, "reader", tmp_path, reader=str(tiny_model), threshold=0.0)
    predictions = read_jsonl(tmp_path / "predictions.jsonl")
    assert [p["id"] for p in predictions] == [r["id"] for r in RECORDS]
    assert all(set(p) == PREDICTION_KEYS for p in predictions)
    assert all(p["prediction"] for p in predictions)  # threshold 0: the best span is given
    assert_located(predictions)
    for p, r in zip(predictions, RECORDS):
        own = make_document(r["context"]).id  # read against its own context only
        assert p["doc_id"] == own and p["retrieved"] == [own]
    assert_outputs(tmp_path)
    assert report == json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    settings = report["settings"]
    assert settings["mode"] == "reader" and settings["reader"] == str(tiny_model)
    assert settings["threshold"] == 0.0 and settings["questions"] == 5
    assert settings["embedder"] is None and settings["top_k"] is None
    assert settings["reader_int8"] is True and settings["chunk_max_chars"] == 600
    assert settings["reader_device"] == "cpu"
    assert "retrieval" not in report
    assert report["answers"]["answered"] == 5
    assert report["answers"]["no_answer"]["exact_match"] == 0.0  # q4 was answered
    assert set(report["latency"]) >= {"p50_s", "p95_s", "max_s", "questions_per_s"}


def test_threshold_abstains_without_changing_candidates(tmp_path, data, tiny_model):
    answered = ev.evaluate(data, "reader", tmp_path / "a", reader=str(tiny_model), threshold=0.0)
    abstained = ev.evaluate(data, "reader", tmp_path / "b", reader=str(tiny_model),
                            threshold=1.0)
    predictions = read_jsonl(tmp_path / "b" / "predictions.jsonl")
    assert all(p["prediction"] == "" for p in predictions)
    assert_located(predictions)
    assert abstained["answers"]["no_answer"]["exact_match"] == 1.0
    assert abstained["answers"]["has_answer"]["exact_match"] == 0.0
    # the best-span scores do not depend on the threshold, so neither does the best threshold
    assert [p["score"] for p in predictions] == [
        p["score"] for p in read_jsonl(tmp_path / "a" / "predictions.jsonl")]
    assert abstained["answers"]["best_threshold"] == answered["answers"]["best_threshold"]
    assert abstained["calibration"] == answered["calibration"]


def test_limit_takes_the_first_questions(tmp_path, data, tiny_model):
    report = ev.evaluate(data, "reader", tmp_path, limit=2, reader=str(tiny_model))
    assert [p["id"] for p in read_jsonl(tmp_path / "predictions.jsonl")] == ["q1", "q2"]
    assert report["answers"]["questions"] == 2 and report["settings"]["limit"] == 2


# ---- e2e mode --------------------------------------------------------------------------------
def test_e2e_predictions(e2e_run, tiny_model):
    out, report, index = e2e_run
    predictions = read_jsonl(out / "predictions.jsonl")
    assert [p["id"] for p in predictions] == [r["id"] for r in RECORDS]
    assert all(set(p) == PREDICTION_KEYS | {"gold_doc_id", "condition"} for p in predictions)
    assert {p["condition"] for p in predictions} == {"indexed"}
    assert_located(predictions)
    # q2's context is a near-duplicate of q1's: not indexed, so its gold is the one kept
    assert {p["id"]: p["gold_doc_id"] for p in predictions} == {
        q: make_document(c).id for q, c in GOLD_DOC.items()}
    with NewsQA(index, reader=str(tiny_model), create=False) as qa:
        assert {d.id for d in qa.documents()} == {make_document(EXCHANGE).id,
                                                  make_document(TRAM).id}
        for p, r in zip(predictions, RECORDS):
            ranked = [h.chunk.doc_id for h in qa.retrieve(r["question"], top_k=2)]
            assert p["retrieved"] == list(dict.fromkeys(ranked))


def test_e2e_report(e2e_run, data, tiny_model):
    out, report, _ = e2e_run
    assert_outputs(out)
    settings = report["settings"]
    assert settings["mode"] == "e2e" and settings["top_k"] == 2 and settings["data"] == str(data)
    assert settings["embedder"] and settings["newsqa_version"] and settings["date"]
    retrieval = report["retrieval"]
    assert set(retrieval) == {"recall@1", "recall@5", "recall@10", "mrr", "depth", "questions"}
    assert retrieval["questions"] == 5  # every question's gold article is its context's
    # two indexed documents, ten chunks asked for: the gold one is always among them
    assert retrieval["recall@10"] == 1.0
    assert retrieval["recall@1"] <= retrieval["recall@5"] <= retrieval["recall@10"]
    assert retrieval["recall@1"] <= retrieval["mrr"] <= 1.0
    assert set(report["answers"]) >= {"exact_match", "f1", "has_answer", "no_answer",
                                      "best_threshold"}
    assert report["by_question_type"]["who"]["questions"] == 2
    assert "## Retrieval" in (out / "report.md").read_text(encoding="utf-8")
    # the reader's work is counted per question: each read at least one window of its chunks
    results = read_jsonl(out / "results.jsonl")
    assert all(r["reader_windows"] >= 1 for r in results)
    assert all(r["reader_windows"] < r["reader_tokens"] <= r["reader_padded_tokens"]
               for r in results)
    assert report["reader_work"]["tokens"]["mean"] == pytest.approx(
        sum(r["reader_tokens"] for r in results) / len(results))
    assert settings["reader_stages"] == list(STAGES)
    assert settings["reader_enough_score"] == ENOUGH_SCORE


def test_e2e_with_the_article_removed(tmp_path, data, tiny_model):
    index = tmp_path / "index"
    report = ev.evaluate(data, "e2e", tmp_path / "out", top_k=2, reader=str(tiny_model),
                         threshold=0.0, index_dir=index, removed=True)
    predictions = read_jsonl(tmp_path / "out" / "predictions.jsonl")
    indexed = [p for p in predictions if p["condition"] == "indexed"]
    removed = [p for p in predictions if p["condition"] == "removed"]
    assert [p["id"] for p in indexed] == [r["id"] for r in RECORDS]
    assert [p["id"] for p in removed] == ["q1", "q2", "q3", "q5"]  # q4 has no answer to remove
    assert_located(predictions)
    for p in removed:  # the gold article was out of the index: nothing came from it
        assert p["prediction"] and p["gold_doc_id"] not in p["retrieved"] + [p["doc_id"]]
    with NewsQA(index, reader=str(tiny_model), create=False) as qa:  # and it was put back
        assert {d.id for d in qa.documents()} == {make_document(EXCHANGE).id,
                                                  make_document(TRAM).id}
    assert report["settings"]["removed"] is True
    assert report["removed"]["questions"] == 4 and report["removed"]["abstention"] == 0.0
    assert report["answers"]["questions"] == 5  # the article-removed questions apart
    results = [json.loads(line) for line in
               (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["removed"] for r in results] == [False] * 5 + [True] * 4
    assert all(r["golds"] == [] for r in results[5:])  # "not found" is the right reply
    assert all({"reader", "dense_top", "coverage_doc"} <= set(r["evidence"]) for r in results)


def test_same_input_gives_same_numbers(e2e_run, tmp_path, data, tiny_model):
    out, first, _ = e2e_run
    second = ev.evaluate(data, "e2e", tmp_path, top_k=2, reader=str(tiny_model), threshold=0.0)
    assert (tmp_path / "predictions.jsonl").read_bytes() == (out / "predictions.jsonl").read_bytes()

    def timeless(report: dict) -> dict:
        return {**report, "settings": {**report["settings"], "date": None}, "latency": None}

    assert timeless(first) == timeless(second)


# ---- options and CLI -------------------------------------------------------------------------
@pytest.mark.parametrize("options, message", [
    ({"mode": "both"}, "unknown mode"),
    ({"limit": 0}, "--limit must be at least 1"),
    ({"top_k": 0}, "--top-k must be at least 1"),
    ({"threshold": float("nan")}, "--threshold must be a finite number"),
    ({"removed": True}, "--removed needs --mode e2e"),
    ({"reader_backend": "onnx", "reader_device": "cuda"}, "runs on the CPU only"),
    ({"reader_backend": "torch", "reader_device": "gpu0"}, "'gpu0' is not a torch device"),
])
def test_bad_options_are_errors(tmp_path, data, options, message):
    kwargs = {"mode": "reader", **options}
    with pytest.raises(NewsQAError, match=message):
        ev.evaluate(data, kwargs.pop("mode"), tmp_path, **kwargs)


def test_out_must_be_a_directory(tmp_path, data):
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(NewsQAError, match="is not a directory"):
        ev.evaluate(data, "reader", out)


def test_command_line(tmp_path, data, tiny_model, capsys):
    parser = argparse.ArgumentParser()
    ev.add_arguments(parser)
    args = parser.parse_args([str(data), "--mode", "reader", "--out", str(tmp_path),
                              "--limit", "1", "--reader", str(tiny_model), "--threshold", "0"])
    assert ev.run(args) == 0
    assert "1 questions: EM" in capsys.readouterr().out
    assert len(read_jsonl(tmp_path / "predictions.jsonl")) == 1
    with pytest.raises(SystemExit):
        parser.parse_args([str(data), "--mode", "e2e", "--out", str(tmp_path), "--top-k", "0"])


# ---- e2e against an index of yours: questions without contexts --------------------------------
MINE = [
    {"id": "m1", "question": "How many prisoners were on the first list?",
     "answers": [{"text": "640"}], "doc_id": make_document(EXCHANGE).id},
    {"id": "m2", "question": "When will the tram line open?", "answers": [{"text": "2027"}]},
    {"id": "m3", "question": "Who won the 2018 football World Cup?", "answers": [],
     "is_impossible": True},
]


@pytest.fixture(scope="module")
def own_index(tmp_path_factory, tiny_model) -> Path:
    """An index of the exchange and tram articles, built beforehand as a user builds theirs."""
    index = tmp_path_factory.mktemp("own") / "index"
    with NewsQA(index, reader=str(tiny_model)) as qa:
        qa.add([make_document(EXCHANGE, title="Exchange"), make_document(TRAM, title="Tram")])
    return index


def test_e2e_asks_an_existing_index_questions_without_contexts(own_index, tmp_path, tiny_model,
                                                               capsys):
    """Through the real CLI: gold answers without offsets, one question naming its gold article
    (retrieval is scored on that one alone), and the index left as it was."""
    from qa.cli import main

    data, out = write_jsonl(tmp_path / "mine.jsonl", MINE), tmp_path / "out"
    assert main(["eval", str(data), "--mode", "e2e", "--index", str(own_index), "--out",
                 str(out), "--reader", str(tiny_model), "--top-k", "2", "--threshold", "0"]) == 0
    assert "3 questions: EM" in capsys.readouterr().out
    predictions = read_jsonl(out / "predictions.jsonl")
    assert [(p["id"], p["gold_doc_id"], p["condition"]) for p in predictions] == [
        ("m1", make_document(EXCHANGE).id, "indexed"), ("m2", None, "indexed"),
        ("m3", None, "indexed")]
    assert_located(predictions)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["answers"]["questions"] == 3 and report["answers"]["answered"] == 3
    assert report["retrieval"]["questions"] == 1 and report["retrieval"]["recall@10"] == 1.0
    assert "Scored on the 1 of 3 questions that name their gold article." in (
        out / "report.md").read_text(encoding="utf-8")
    results = read_jsonl(out / "results.jsonl")
    assert [r["golds"] for r in results] == [["640"], ["2027"], []]
    with NewsQA(own_index, reader=str(tiny_model), create=False) as qa:
        assert {d.id for d in qa.documents()} == {make_document(EXCHANGE).id,
                                                  make_document(TRAM).id}


@pytest.mark.parametrize("options, records, message", [
    ({}, MINE, "'context' must be a non-empty string (a question without one is asked of an "
               "index of yours: --mode e2e --index DIR)."),
    ({"mode": "reader", "own": True}, MINE, "'context' must be a non-empty string (a question "
                                            "without one is asked of an index of yours"),
    ({"own": True, "removed": True}, MINE, "--removed needs every question's context"),
    ({"own": True}, [{**MINE[0], "doc_id": "no-such-article"}],
     "Question 'm1': its 'doc_id' is no article of the index: "),
    ({"own": True}, [{**MINE[0], "doc_id": ""}], "'doc_id' must be a non-empty string."),
])
def test_questions_without_contexts_need_an_index_of_yours(own_index, tmp_path, tiny_model,
                                                           options, records, message):
    data = write_jsonl(tmp_path / "mine.jsonl", records)
    kwargs = {"mode": "e2e", **options}
    index_dir = own_index if kwargs.pop("own", False) else None
    with pytest.raises(NewsQAError) as err:
        ev.evaluate(data, kwargs.pop("mode"), tmp_path / "out", reader=str(tiny_model),
                    index_dir=index_dir, **kwargs)
    assert message in str(err.value)


# ---- the shipped reader ----------------------------------------------------------------------
@pytest.mark.slow
def test_shipped_reader_answers_the_seed_questions(tmp_path):
    """The seed article's questions, asked end to end with the shipped defaults: every answerable
    one is answered right, every question the article cannot answer gets "not found", and each
    answer is shown with more confidence than any of those."""
    if not (DEFAULT_READER / "config.json").is_file():
        pytest.skip(f"no shipped reader at {DEFAULT_READER} (train it with newsqa train-reader)")
    data = ROOT / "tests" / "data" / "seed_questions.jsonl"
    report = ev.evaluate(data, "e2e", tmp_path)
    predictions = {p["id"]: p for p in read_jsonl(tmp_path / "predictions.jsonl")}
    questions = ev.load_questions(data)
    # EM against any gold answer; for an unanswerable question that means "not found"
    wrong = [(q.question, predictions[q.id]["prediction"]) for q in questions
             if exact_match(predictions[q.id]["prediction"], q.answers) != 1.0]
    assert not wrong, "wrong answers:\n" + "\n".join(f"{q!r} -> {p!r}" for q, p in wrong)
    answered = [predictions[q.id]["score"] for q in questions if q.answers]
    unanswerable = [predictions[q.id]["score"] for q in questions if not q.answers]
    assert min(answered) > max(unanswerable)
    assert report["answers"]["answer_rate"] == 1.0 and report["answers"]["abstention"] == 1.0
    assert report["settings"]["decision"].startswith("logistic")  # the fitted decision decides
