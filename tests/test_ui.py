"""The Gradio app: replies are escaped HTML with offset-based highlights, and the served app
answers, follows up, indexes uploads without running their scripts, and serves ``/ask``."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa import ui
from qa.ingest import load
from qa.pipeline import AddReport
from qa.types import Answer, Citation

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
SEED_ARTICLE = SEEDS / "000_2ffe86633dc2dc73.txt"
READER = ROOT / "models" / "reader"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STARTUP_LIMIT_S = 300  # a hang guard for loading two models on a busy machine, not a timing check
REPLY_LIMIT_MS = 120_000
FIRST_LIST = "How many POWs were on the first list?"
RENDERED_TAGS = {"div", "p", "strong", "span", "blockquote", "mark", "br", "a", "details",
                 "summary", "ul", "li"}

# An uploaded page whose markup tries to run script three ways: a real <script>, an <img onerror>,
# and markup written as text (entities), which lands in the title and the article text verbatim.
EVIL_HTML = """<!doctype html><html><head>
<title>Harbour bridge reopens &lt;img src=x onerror="window.__pwned=3"&gt;</title>
<script>window.__pwned = 1</script></head>
<body><article>
<h1>Harbour bridge reopens &lt;img src=x onerror="window.__pwned=3"&gt;</h1>
<p>The Kalamaja harbour bridge in Tallinn reopened to traffic on Tuesday after repairs that cost
37 million euros, the city council said. &lt;script&gt;window.__pwned = 4&lt;/script&gt;</p>
<img src=x onerror="window.__pwned=2">
<p>Engineers replaced the corroded steel cables that had forced the bridge to close for almost
two years, and the council said trams would return to the bridge next spring.</p>
</article></body></html>
"""
EVIL_QUESTION = "How much did the repairs of the Kalamaja harbour bridge cost?"


# ---- rendering ---------------------------------------------------------------------------------
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
             source: str = "S", url: str = "", published: str = "") -> Citation:
    start = passage_start + len(before)
    return Citation(doc_id="d1", title=title, source=source, url=url, published=published,
                    start=start, end=start + len(quote), quote=quote,
                    passage=before + quote + after, passage_start=passage_start, score=0.9)


def test_highlight_follows_offsets_not_the_first_match() -> None:
    c = citation("Aides said 640 was early. The first list of ", "640", " POWs was handed over.")
    reply = ui.render_answer(Answer("q", "640", 0.8, citations=[c]))
    assert "Aides said 640 was early. The first list of <mark>640</mark> POWs" in reply


def test_long_passage_is_trimmed_around_the_quote() -> None:
    c = citation("word " * 200, "640", " word" * 200)
    shown = ui.highlight(c)
    assert shown.startswith("…") and shown.endswith("…")
    assert "<mark>640</mark>" in shown
    assert len(shown) < len(c.passage)


def test_reply_shows_answer_confidence_source_and_folded_alternatives() -> None:
    c = citation("list of ", "640", " POWs", title="Swap begins", source="Reuters",
                 url="https://example.com/a", published="2025-06-09T10:00:00")
    alt = Answer("q", "1,200", 0.1, citations=[c])
    reply = ui.render_answer(Answer("q", "640", 0.834, citations=[c], alternatives=[alt]))
    tags = Tags(reply)
    assert "<strong>640</strong>" in reply and "83% confidence" in reply
    assert "Reuters · 2025-06-09" in reply
    assert ("a", {"href": "https://example.com/a", "target": "_blank",
                  "rel": "noopener noreferrer nofollow"}) in tags.tags
    assert "<details><summary>Other candidate answers (1)</summary>" in reply
    assert "<strong>1,200</strong>" in reply


def test_not_found_says_so_and_marks_candidates_as_low_confidence() -> None:
    weak = Answer("q", "Belarus", 0.05, citations=[citation("in ", "Belarus", ".")])
    reply = ui.render_answer(Answer("q", "", 0.05, alternatives=[weak]))
    assert ui.NOT_FOUND in reply
    assert "low confidence" in reply and "<details>" in reply
    assert "confidence</span>" not in reply  # no score shown as if it were an answer


def test_add_report_names_titles_escaped() -> None:
    report = AddReport(added=["a1"], unchanged=["a2"], near_duplicates=[("<b>Copy</b>", "a3")],
                       chunks=4)
    status = ui.describe(report, {"a1": "New <script>", "a3": "Original"})
    assert status == ("Added 1 article(s), 4 passage(s):<br>• New &lt;script&gt;<br>"
                      "1 already indexed, not added again.<br>Near-duplicate not indexed: "
                      "&lt;b&gt;Copy&lt;/b&gt; (same story as Original).")


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x",
                                 "file:///etc/passwd", "//evil.example/x", "https://", ""])
def test_only_http_urls_become_links(url: str) -> None:
    assert "<a " not in ui.link(url, "title")


def test_link_attribute_cannot_be_broken_out_of() -> None:
    (tag, attrs), = Tags(ui.link('https://e.com/"onmouseover="alert(1)', "t")).tags
    assert attrs == {"href": 'https://e.com/"onmouseover="alert(1)', "target": "_blank",
                     "rel": "noopener noreferrer nofollow"}


@given(before=st.text(), quote=st.text(min_size=1), after=st.text(), title=st.text(),
       source=st.text(), url=st.text(), published=st.text())
def test_untrusted_text_renders_as_text(before: str, quote: str, after: str, title: str,
                                        source: str, url: str, published: str) -> None:
    c = citation(before, quote, after, title=title, source=source, url=url, published=published)
    reply = ui.render_answer(Answer("q", quote, 0.5, citations=[c],
                                    alternatives=[Answer("q", title, 0.1, citations=[c])]))
    tags = Tags(reply)
    assert "\n" not in reply  # one HTML block: the chat's markdown never re-reads article text
    assert {tag for tag, _ in tags.tags} <= RENDERED_TAGS
    assert all(not name.startswith("on") for _, attrs in tags.tags for name in attrs)
    assert all(attrs["href"].lower().startswith(("http://", "https://"))
               for tag, attrs in tags.tags if tag == "a")
    assert tags.marked == quote.replace("\r", "").replace("\n", "")


# ---- the served app ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``python app.py`` on a free loopback port over a new, empty index (so it seeds itself)."""
    if not (READER / "config.json").is_file():
        pytest.skip(f"no reader model in {READER} (train it with `newsqa train-reader`)")
    tmp = tmp_path_factory.mktemp("app")
    port = free_port()
    log = (tmp / "app.log").open("w")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--index", str(tmp / "index"),
                             "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(url, timeout=5).raise_for_status()
            break
        except httpx.HTTPError:
            time.sleep(1)
    else:
        proc.kill()
        log.close()
        pytest.fail(f"app.py did not start:\n{(tmp / 'app.log').read_text()}")
    assert "indexing" in (tmp / "app.log").read_text()  # the empty index was seeded, visibly
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def seed_title() -> str:
    (doc,) = load([SEED_ARTICLE])
    return doc.title


@pytest.fixture()
def page(app_url: str, tmp_path: Path):
    """A fresh Chromium tab on the app; a screenshot is left in the test's tmp dir."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 1000})
        tab.goto(app_url)
        tab.locator("#nqa-question textarea").wait_for()
        yield tab
        tab.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        browser.close()


def ask(page, question: str):
    """Type a question, send it, and return the locator of the reply it gets."""
    replies = page.locator("#nqa-chat .nqa-reply")
    before = replies.count()
    page.locator("#nqa-question textarea").fill(question)
    page.locator("#nqa-ask").click()
    page.wait_for_function(f"document.querySelectorAll('#nqa-chat .nqa-reply').length > {before}",
                           timeout=REPLY_LIMIT_MS)
    return replies.nth(before)


@pytest.mark.browser
def test_chat_answers_with_highlighted_citation_and_follows_up(page, seed_title: str) -> None:
    reply = ask(page, FIRST_LIST)
    assert "640" in reply.locator("strong").first.inner_text()
    assert "640" in reply.locator("mark").first.inner_text()
    assert seed_title in reply.locator(".nqa-card").first.inner_text()

    ask(page, "When were the direct talks?")
    follow_up = ask(page, "Where were those talks held?")
    assert "Istanbul" in follow_up.locator("strong").first.inner_text()


@pytest.mark.browser
def test_uploaded_html_is_listed_answered_from_and_never_runs(page, tmp_path: Path) -> None:
    article = tmp_path / "harbour-bridge.html"
    article.write_text(EVIL_HTML, encoding="utf-8")
    page.get_by_role("tab", name="Sources").click()
    page.locator("#nqa-files input[type=file]").set_input_files(str(article))
    page.locator("#nqa-upload").click()
    page.locator("#nqa-table").get_by_text("Harbour bridge reopens", exact=False).first.wait_for()
    assert "Added 1 article(s)" in page.locator("#nqa-status").inner_text()
    assert '<img src=x onerror="window.__pwned=3">' in page.locator("#nqa-table").inner_text()

    page.get_by_role("tab", name="Chat").click()
    reply = ask(page, EVIL_QUESTION)
    assert "37 million" in reply.locator("strong").first.inner_text()
    assert ('Harbour bridge reopens <img src=x onerror="window.__pwned=3">'
            in reply.locator(".nqa-card").first.inner_text())  # markup shown as text
    assert page.evaluate("typeof window.__pwned") == "undefined"

    page.get_by_role("tab", name="Sources").click()
    page.locator("#nqa-doomed input").fill("Harbour")
    page.get_by_role("option", name="Harbour bridge reopens", exact=False).click()
    page.get_by_role("button", name="Delete").click()
    page.locator("#nqa-status").get_by_text("Deleted Harbour bridge reopens").wait_for()
    assert "Harbour bridge" not in page.locator("#nqa-table").inner_text()


@pytest.mark.browser
def test_private_urls_are_refused_with_a_message(page, app_url: str) -> None:
    page.get_by_role("tab", name="Sources").click()
    page.locator("#nqa-url").get_by_role("textbox").fill(app_url)
    page.get_by_role("button", name="Add URL").click()
    page.locator("#nqa-status").get_by_text("non-public address").wait_for()


@pytest.mark.browser
def test_bad_input_gets_a_clear_message(page, tmp_path: Path) -> None:
    page.locator("#nqa-ask").click()
    page.get_by_text("The question is empty.").wait_for()

    page.locator("#nqa-date-from").get_by_role("textbox").fill("June 2025")
    page.locator("#nqa-question textarea").fill(FIRST_LIST)
    page.locator("#nqa-ask").click()
    page.get_by_text("'June 2025' is not an ISO date").first.wait_for()

    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    page.get_by_role("tab", name="Sources").click()
    page.locator("#nqa-files input[type=file]").set_input_files(str(binary))
    page.locator("#nqa-upload").click()
    page.locator("#nqa-status").get_by_text("is a binary file, not text").wait_for()


def test_api_ask_returns_the_answer_with_citations(app_url: str, seed_title: str) -> None:
    from gradio_client import Client

    result = Client(app_url, verbose=False).predict(FIRST_LIST, 5, api_name="/ask")
    assert "640" in result["text"]
    (first, *_) = result["citations"]
    assert first["title"] == seed_title
    assert "640" in first["quote"]
    assert first["end"] - first["start"] == len(first["quote"])


def test_api_reports_a_bad_question_as_an_error(app_url: str) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="The question is empty"):
        Client(app_url, verbose=False).predict("  ", api_name="/ask")


def test_oversized_upload_is_refused(app_url: str) -> None:
    big = b"word " * (2_200_000)  # 11 MB, over the 10 MB limit
    response = httpx.post(f"{app_url}/gradio_api/upload",
                          files={"files": ("big.txt", big, "text/plain")}, timeout=60)
    assert response.status_code == 413
    assert "maximum allowed size" in response.text
