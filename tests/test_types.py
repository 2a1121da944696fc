"""The data that flows between stages: an answer as JSON data, and the index config's round trip."""
from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

from qa.chunk import Chunker
from qa.errors import NewsQAError
from qa.retrieve import RRF_K, Retriever
from qa.types import Answer, Chunk, Citation, IndexConfig

TEXT = "The harbour bridge reopened on Monday after repairs that cost 12 million euros."


def citation(quote: str, *, resolved_date: str = "") -> Citation:
    start = TEXT.index(quote)
    return Citation("d1", "Bridge reopens", "Herald", "https://example.org/b", "2024-05-06",
                    start, start + len(quote), quote, passage=TEXT, score=0.9,
                    date_source="html-meta", resolved_date=resolved_date)


# ---- Answer.to_dict: the CLI's --json and the app's /ask --------------------------------------

def test_answer_to_dict_has_every_field_and_found_and_resolved_date() -> None:
    other = Answer("When?", "12 million euros", 0.2, [citation("12 million euros")])
    answer = Answer("When did the bridge reopen?", "Monday", 0.8,
                    [citation("Monday", resolved_date="2024-05-06")], alternatives=[other],
                    retrieved=[Chunk("d1", 0, len(TEXT), TEXT)], evidence={"margin": 0.6})
    data = answer.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON data all the way down
    assert set(data) == {f.name for f in dataclasses.fields(Answer)} | {"found", "resolved_date"}
    assert (data["found"], data["resolved_date"]) == (True, "2024-05-06")
    (cited,) = data["citations"]
    assert TEXT[cited["start"]:cited["end"]] == cited["quote"] == "Monday"
    assert cited["date_source"] == "html-meta" and cited["resolved_date"] == "2024-05-06"
    assert data["retrieved"] == [{"doc_id": "d1", "start": 0, "end": len(TEXT), "text": TEXT}]
    assert data["alternatives"][0]["text"] == "12 million euros"
    assert data["alternatives"][0]["citations"][0]["quote"] == "12 million euros"
    assert data["evidence"] == {"margin": 0.6}


def test_answer_not_found_to_dict_says_so() -> None:
    data = Answer("Who won the cup?", "", 0.1).to_dict()
    assert (data["text"], data["found"], data["resolved_date"], data["citations"]) == (
        "", False, "", [])


# ---- IndexConfig ------------------------------------------------------------------------------

def test_config_round_trips_through_json() -> None:
    config = IndexConfig(max_chars=400, overlap_sentences=2, candidates=20, rrf_k=60, top_k=3,
                         reader="models/other", backend="onnx", store="milvus")
    assert IndexConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert IndexConfig.from_dict(IndexConfig().to_dict()) == IndexConfig()


def test_config_from_dict_fills_in_missing_settings_with_the_defaults() -> None:
    assert IndexConfig.from_dict({}) == IndexConfig()
    assert IndexConfig.from_dict({"max_chars": 400}) == IndexConfig(max_chars=400)


@pytest.mark.parametrize(("data", "message"), [
    ({"max_chars": 400, "chunk_size": 3}, "Unknown setting(s) chunk_size."),
    ({"max_chars": 0}, "max_chars must be a whole number of at least 1, not 0."),
    ({"max_chars": "600"}, "max_chars must be a whole number of at least 1, not '600'."),
    ({"max_chars": True}, "not True"),
    ({"overlap_sentences": -1}, "overlap_sentences must be a whole number of at least 0, not -1."),
    ({"top_k": 2.5}, "top_k must be a whole number of at least 1, not 2.5."),
    ({"candidates": None}, "not None"),
    ({"reader": 7}, "reader must be a model id or path as text, not 7."),
    ({"store": "s3"}, "store must be one of faiss, milvus, not 's3'."),
    ([("max_chars", 400)], "A config must be a mapping of settings"),
])
def test_config_refuses_bad_settings_with_one_clear_error(data: object, message: str) -> None:
    with pytest.raises(NewsQAError) as raised:
        IndexConfig.from_dict(data)  # type: ignore[arg-type]
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_config_stores_a_numpy_whole_number_as_an_int() -> None:
    """A count computed with numpy is a whole number too; the manifest needs a JSON int."""
    import numpy as np

    config = IndexConfig(max_chars=np.int64(400), top_k=np.int32(3))
    assert type(config.max_chars) is int and type(config.top_k) is int
    assert json.loads(json.dumps(config.to_dict()))["max_chars"] == 400


def test_config_takes_only_the_index_defining_settings_of_an_index() -> None:
    mine = IndexConfig(top_k=3, backend="onnx", candidates=20)
    index = IndexConfig(max_chars=400, overlap_sentences=2, top_k=8, backend="torch")
    assert mine.with_index_settings(index) == dataclasses.replace(mine, max_chars=400,
                                                                   overlap_sentences=2)


def test_config_defaults_are_the_components_own() -> None:
    """The config is where the facade takes its settings from; the components keep defaults of
    their own for direct use, which must not drift apart from it."""
    config, chunker = IndexConfig(), Chunker()
    assert (config.max_chars, config.overlap_sentences) == (chunker.max_chars,
                                                            chunker.overlap_sentences)
    assert config.rrf_k == RRF_K
    assert config.candidates == inspect.signature(Retriever).parameters["candidates"].default
