"""The conversation's download without Gradio (qa.ui.export): JSON as /ask gives each answer,
and Markdown with each citation's title, source, date, quote and link, untrusted text kept
text."""
from __future__ import annotations

import html
import json
import re

from hypothesis import given
from hypothesis import strategies as st

from qa.types import Answer, Citation
from qa.ui import export, render


def citation(before: str, quote: str, after: str, **fields: str) -> Citation:
    start = 100 + len(before)
    return Citation(**{"doc_id": "d1", "title": "T", "source": "", "url": "", "published": "",
                       **fields}, start=start, end=start + len(quote), quote=quote,
                    passage=before + quote + after, passage_start=100, score=0.9)


SWAP = citation("The first list of ", "640", " POWs was handed over.", title="Swap begins",
                source="Reuters", url="https://news.example/swap_(2025)",
                published="2025-06-09", date_source="html-meta", external_id="rtr-17")
FOUND = Answer("How many POWs were on the first list?", "640", 0.834, citations=[SWAP])
MISSED = Answer("Who won the 1998 world cup?", "", 0.004)


def test_json_holds_each_answer_as_the_api_gives_it() -> None:
    assert json.loads(export.as_json([FOUND, MISSED])) == [FOUND.to_dict(), MISSED.to_dict()]


def test_markdown_gives_question_answer_confidence_and_each_citation() -> None:
    text = export.as_markdown([FOUND, MISSED])
    assert text.startswith("# newsqa conversation\n\n## How many POWs were on the first list?\n\n"
                           "**640** — 83% confidence\n\nSources:\n")
    assert ("1. [Swap begins](https://news.example/swap_%282025%29) · Reuters · "
            "2025-06-09, from page metadata · article d1, record rtr-17\n"
            "   > The first list of **640** POWs was handed over.\n") in text
    assert text.endswith(f"## Who won the 1998 world cup?\n\n_{render.NOT_FOUND}_\n")


def test_markdown_keeps_untrusted_text_as_text() -> None:
    evil = citation("<img src=x onerror=alert(1)> ", "[click](javascript:alert(2))", " *x*",
                    title="**Big** <script>", url="javascript:alert(3)")
    text = export.as_markdown([Answer("q", evil.quote, 0.5, citations=[evil])])
    assert "<" not in text and "javascript:alert(3)" not in text
    assert "1. \\*\\*Big\\*\\* &lt;script&gt; · undated · article d1\n" in text  # no link
    assert "\\[click\\](javascript:alert(2))" in text


@given(st.text())
def test_md_escapes_so_markdown_shows_the_text_itself(text: str) -> None:
    shown = export.md(text)
    assert "<" not in shown and "\n" not in shown
    assert html.unescape(re.sub(r"\\(.)", r"\1", shown)) == re.sub(r"\s+", " ", text)


def test_the_file_to_save_is_named_for_its_format() -> None:
    assert export.conversation_file([FOUND], "json")["name"] == "newsqa-conversation.json"
    markdown = export.conversation_file([FOUND], "markdown")
    assert (markdown["name"], markdown["type"]) == ("newsqa-conversation.md", "text/markdown")
    assert markdown["text"] == export.as_markdown([FOUND])


def test_markdown_shows_sources_that_differ_side_by_side() -> None:
    later = citation("The toll is now ", "3 euros", ".", doc_id="d2", title="Toll raised",
                     source="Valley Courier", published="2025-03-10")
    earlier = citation("The toll will be ", "2 euros", ".", title="Toll set",
                       source="Harbour Gazette", published="2025-03-03")
    answer = Answer("What is the toll?", "3 euros", 0.6, citations=[later],
                    disagreement=[later, earlier])
    assert ("Sources differ:\n"
            "- **3 euros** — Toll raised · Valley Courier · 2025-03-10 · article d2\n"
            "- **2 euros** — Toll set · Harbour Gazette · 2025-03-03 · article d1\n\n"
            "Sources:\n") in export.as_markdown([answer])
