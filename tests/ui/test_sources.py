"""The Sources table without Gradio (qa.ui.sources): the newest articles first and the undated
last, a search that needs every word, and the lines that count the articles."""
from __future__ import annotations

import pytest

from qa.store.base import DocumentInfo
from qa.ui import sources


def info(doc_id: str, published: str = "", *, title: str = "", source: str = "",
         url: str = "", external_id: str = "") -> DocumentInfo:
    return DocumentInfo(doc_id, title or f"Title {doc_id}", source, url, published, 2,
                        external_id=external_id)


def test_newest_first_then_the_undated_the_latest_added_first_among_equals() -> None:
    added = [info("old", "2023-05-01"), info("u1"), info("new", "2025-01-02T08:00:00+00:00"),
             info("same-a", "2024-06-01"), info("u2"), info("same-b", "2024-06-01")]
    order = [d.id for d in sources.newest_first(added)]
    assert order == ["new", "same-b", "same-a", "old", "u2", "u1"]


def test_search_needs_every_word_in_any_field_and_any_case() -> None:
    docs = [info("a1", title="Quarry road closed", source="Tarvas Post"),
            info("b2", title="Ferry timetable", url="https://news.example/quarry-ferry"),
            info("c3", title="Choir sings", external_id="bbc-business-005")]
    assert sources.matching(docs, "") == docs
    assert [d.id for d in sources.matching(docs, "QUARRY")] == ["a1", "b2"]
    assert [d.id for d in sources.matching(docs, "quarry tarvas")] == ["a1"]
    assert [d.id for d in sources.matching(docs, "bbc-business-005")] == ["c3"]
    assert [d.id for d in sources.matching(docs, "b2")] == ["b2"]
    assert sources.matching(docs, "quarry zeppelin") == []


def test_rows_say_undated_and_carry_both_ids() -> None:
    (row,) = sources.rows([info("a1", external_id="rec-7")])
    assert dict(zip(sources.HEADERS, row)) == {"title": "Title a1", "source": "", "date": "undated",
                                               "chunks": 2, "id": "a1", "record id": "rec-7"}
    assert row[sources.ID_COLUMN] == "a1"
    assert len(sources.WIDTHS) == len(sources.HEADERS)


@pytest.mark.parametrize(("shown", "total", "query", "line"), [
    (0, 0, "", "No articles indexed yet: upload files or add a URL above."),
    (1, 1, "", "1 article, newest first."),
    (1234, 1234, "  ", "1,234 articles, newest first."),
    (3, 298, " quarry ", "3 of 298 articles match “quarry”, newest first."),
    (0, 298, "<b>x</b>", "No article matches “&lt;b&gt;x&lt;/b&gt;” (298 articles indexed)."),
])
def test_the_count_line(shown: int, total: int, query: str, line: str) -> None:
    assert sources.count_line(shown, total, query) == line


def test_the_intro_names_the_count() -> None:
    assert sources.intro(298) == ("Ask about the 298 indexed articles — every answer is quoted "
                                  "from them, with its source.")
    assert sources.intro(1).startswith("Ask about the 1 indexed article — every answer is "
                                       "quoted from it")
    assert "Sources" in sources.intro(0)
