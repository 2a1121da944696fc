"""Rendering for the app (qa.ui.render): replies are escaped HTML with offset-based highlights,
links only for http(s) URLs, and errors name the index folder, never its server path."""
from __future__ import annotations

import dataclasses
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.errors import NewsQAError, StoreError
from qa.types import AddReport
from qa.types import Answer, Citation
from qa.ui import render

RENDERED_TAGS = {"div", "p", "strong", "span", "blockquote", "mark", "br", "a", "details",
                 "summary", "ul", "li"}


class Tags(HTMLParser):
    """Collects the tags, attributes and <mark> text of rendered HTML."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.marked = ""
        self._in_mark = False
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_mark = self._in_mark or tag == "mark"

    def handle_endtag(self, tag: str) -> None:
        self._in_mark = self._in_mark and tag != "mark"

    def handle_data(self, data: str) -> None:
        if self._in_mark:
            self.marked += data


def citation(before: str, quote: str, after: str, *, passage_start: int = 100, title: str = "T",
             source: str = "S", url: str = "", published: str = "", doc_id: str = "d1") -> Citation:
    start = passage_start + len(before)
    return Citation(doc_id=doc_id, title=title, source=source, url=url, published=published,
                    start=start, end=start + len(quote), quote=quote,
                    passage=before + quote + after, passage_start=passage_start, score=0.9)


def test_highlight_follows_offsets_not_the_first_match() -> None:
    c = citation("Aides said 640 was early. The first list of ", "640", " POWs was handed over.")
    reply = render.render_answer(Answer("q", "640", 0.8, citations=[c]))
    assert "Aides said 640 was early. The first list of <mark>640</mark> POWs" in reply


def test_long_passage_is_trimmed_around_the_quote() -> None:
    c = citation("word " * 200, "640", " word" * 200)
    shown = render.highlight(c)
    assert shown.startswith("…") and shown.endswith("…")
    assert "<mark>640</mark>" in shown
    assert len(shown) < len(c.passage)


def test_reply_shows_answer_confidence_source_and_folded_alternatives() -> None:
    c = citation("list of ", "640", " POWs", title="Swap begins", source="Reuters",
                 url="https://example.com/a", published="2025-06-09T10:00:00")
    alt = Answer("q", "1,200", 0.1, citations=[c])
    reply = render.render_answer(Answer("q", "640", 0.834, citations=[c], alternatives=[alt]))
    tags = Tags(reply)
    assert "<strong>640</strong>" in reply and "83% confidence" in reply
    assert "Reuters · 2025-06-09" in reply
    assert ("a", {"href": "https://example.com/a", "target": "_blank",
                  "rel": "noopener noreferrer nofollow"}) in tags.tags
    assert "<details><summary>Other candidate answers (1)</summary>" in reply
    assert "<strong>1,200</strong>" in reply


def test_quotes_from_one_article_share_its_card() -> None:
    first = citation("list of ", "640", " POWs", title="Swap begins", source="Reuters")
    other = citation("about ", "640", " men", title="Other story", doc_id="d2")
    second = citation("talks on ", "640", " POWs", title="Swap begins", source="Reuters",
                      passage_start=900)
    reply = render.render_answer(Answer("q", "640", 0.8, citations=[first, other, second]))
    _, swap, story = reply.split('<div class="nqa-card">')
    assert reply.count("Swap begins") == reply.count("Reuters") == 1
    assert swap.count("<blockquote") == 2 and "talks on <mark>640</mark>" in swap
    assert story.count("<blockquote") == 1 and "Other story" in story


def test_not_found_says_so_and_marks_candidates_as_low_confidence() -> None:
    weak = Answer("q", "Belarus", 0.05, citations=[citation("in ", "Belarus", ".")])
    reply = render.render_answer(Answer("q", "", 0.05, alternatives=[weak]))
    assert render.NOT_FOUND in reply
    assert "low confidence" in reply and "<details>" in reply
    assert "confidence</span>" not in reply  # no score shown as if it were an answer


def test_add_report_names_titles_escaped() -> None:
    report = AddReport(added=["a1"], unchanged=["a2"], near_duplicates=[("<b>Copy</b>", "a3")],
                       chunks=4)
    status = render.describe(report, {"a1": "New <script>", "a3": "Original"})
    assert status == ("Added 1 article(s), 4 passage(s):<br>• New &lt;script&gt;<br>"
                      "1 already indexed, not added again.<br>Near-duplicate not indexed: "
                      "&lt;b&gt;Copy&lt;/b&gt; (same story as Original).")


def test_add_report_puts_what_failed_first_and_caps_it() -> None:
    errors = [f"<b>{i}</b>.txt is a binary file, not text."
              for i in range(render.LISTED_TITLES + 2)]
    status = render.describe(AddReport(added=["a1"], chunks=2, errors=errors), {"a1": "New"})
    lines = status.split("<br>")
    assert lines[0] == "⚠ &lt;b&gt;0&lt;/b&gt;.txt is a binary file, not text."
    assert lines[render.LISTED_TITLES] == "⚠ … and 2 more not read."
    assert lines[render.LISTED_TITLES + 1:] == ["Added 1 article(s), 2 passage(s):", "• New"]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x",
                                 "file:///etc/passwd", "//evil.example/x", "https://", ""])
def test_only_http_urls_become_links(url: str) -> None:
    assert "<a " not in render.link(url, "title")


def test_link_attribute_cannot_be_broken_out_of() -> None:
    (tag, attrs), = Tags(render.link('https://e.com/"onmouseover="alert(1)', "t")).tags
    assert attrs == {"href": 'https://e.com/"onmouseover="alert(1)', "target": "_blank",
                     "rel": "noopener noreferrer nofollow"}


@given(before=st.text(), quote=st.text(min_size=1), after=st.text(), title=st.text(),
       source=st.text(), url=st.text(), published=st.text())
def test_untrusted_text_renders_as_text(before: str, quote: str, after: str, title: str,
                                        source: str, url: str, published: str) -> None:
    c = citation(before, quote, after, title=title, source=source, url=url, published=published)
    reply = render.render_answer(Answer("q", quote, 0.5, citations=[c],
                                    alternatives=[Answer("q", title, 0.1, citations=[c])]))
    tags = Tags(reply)
    assert "\n" not in reply  # one HTML block: the chat's markdown never re-reads article text
    assert {tag for tag, _ in tags.tags} <= RENDERED_TAGS
    assert all(not name.startswith("on") for _, attrs in tags.tags for name in attrs)
    assert all(attrs["href"].lower().startswith(("http://", "https://"))
               for tag, attrs in tags.tags if tag == "a")
    assert tags.marked == quote.replace("\r", "").replace("\n", "")


def test_errors_shown_in_the_app_name_the_index_folder_not_its_path(tmp_path: Path) -> None:
    index = tmp_path / "srv" / "news-index"
    busy = StoreError(f"The index at {index} is being written by another process (pid 7).")
    assert render.shown(busy, index) == ("The index at news-index is being written by another "
                                     "process (pid 7).")
    relative = Path("index")
    broken = StoreError(f"The vector file {relative.resolve() / 'vectors-3.faiss'} is corrupt.")
    assert render.shown(broken, relative) == "The vector file index/vectors-3.faiss is corrupt."
    plain = NewsQAError("Document index.html is not indexed in this index.")
    assert render.shown(plain, relative) == str(plain)  # a bare folder name is left alone


# --- ids and links (issue 26) -------------------------------------------------------------------


def test_a_source_card_shows_the_users_id_and_links_the_article() -> None:
    c = dataclasses.replace(citation("list of ", "640", " POWs", title="Swap begins",
                                     source="BBC", url="https://bbc.example/world-017",
                                     published="2025-06-09"),
                            external_id="bbc-world-017<b>")
    card = render.source_card([c])
    assert "BBC · 2025-06-09 · id bbc-world-017&lt;b&gt;" in card
    assert ("a", {"href": "https://bbc.example/world-017", "target": "_blank",
                  "rel": "noopener noreferrer nofollow"}) in Tags(card).tags
    assert " · id " not in render.source_card([dataclasses.replace(c, external_id="")])


def test_candidates_under_one_percent_are_left_out() -> None:
    """A fold of "0%" guesses is noise: candidates under 1% are not listed, and a fold with none
    left is not drawn."""
    c = citation("talks in ", "Istanbul", ".")
    kept = Answer("q", "Ankara", render.MIN_CANDIDATE, citations=[c])
    noise = Answer("q", "Zelenskiy", 0.004, citations=[c])
    reply = render.render_answer(Answer("q", "Istanbul", 0.8, citations=[c],
                                        alternatives=[kept, noise]))
    assert "<summary>Other candidate answers (1)</summary>" in reply
    assert "<strong>Ankara</strong> <span class='nqa-score'>1%</span>" in reply
    assert "Zelenskiy" not in reply
    not_found = render.render_answer(Answer("q", "", 0.004, alternatives=[noise]))
    assert render.NOT_FOUND in not_found
    assert "<details>" not in not_found and "Zelenskiy" not in not_found
