"""The Gradio app (qa.ui.app, qa.ui.guard; rendering: test_render.py): the served app
answers, follows up, indexes uploads without running their scripts, serves ``/ask``, and refuses
a request over its size cap or naming a file that was not uploaded to it."""
from __future__ import annotations

import contextlib
import gzip
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import LoopbackServer, QuietHandler, serving
from qa.ingest.files import load
from qa.pipeline import NewsQA
from qa.ui import app, export, guard, render, sources

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
SEED_ARTICLE = SEEDS / "000_2ffe86633dc2dc73.txt"
READER = ROOT / "models" / "reader"
STARTUP_LIMIT_S = 300  # a hang guard for loading two models on a busy machine, not a timing check
FIRST_LIST = "How many POWs were on the first list?"
LONG_QUESTION = "How many prisoners of war were exchanged on Monday? " * 40  # 2,080 characters

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


@pytest.mark.parametrize(("imported", "absent"),
                         [("qa.ui.app", "qa.cli"), ("qa.cli", "qa.ui.app")])
def test_the_app_and_the_cli_do_not_import_each_other(imported: str, absent: str) -> None:
    """The CLI imports the app only to serve it; the app needs nothing of the CLI (an answer's
    JSON is ``Answer.to_dict``), so neither import runs the other's module."""
    code = f"import sys, {imported}; print({absent!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


def test_app_facade_fetches_urls_only_and_reads_uploads_only(tmp_path: Path) -> None:
    """What the app's URL field and upload button call: neither opens the index (nor loads a
    model) before the input is refused, and nothing names a server path."""
    qa = NewsQA(tmp_path / "index")
    (tmp_path / "keys.jsonl").write_text('{"text": "The password is hunter2."}', encoding="utf-8")
    typed = [str(tmp_path), str(tmp_path / "keys.jsonl"), f"file://{tmp_path}", "~/x",
             "keys.jsonl", str(tmp_path / "missing.txt")]
    refused = qa.add_urls(typed)
    assert refused.errors == [f"{url} is not an http or https URL." for url in typed]
    assert not refused.added
    folder = qa.add_uploads([tmp_path])  # a folder is not an upload
    assert folder.errors == [f"{tmp_path.name} is not a regular file."]
    assert not folder.added
    assert not (tmp_path / "index").exists()


def test_the_queue_does_not_summarise_gradio_analytics_after_every_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gradio recomputes a pandas summary of up to 10,000 past events after each one, for a
    monitoring dashboard the app does not enable; the app's queue does it once per
    ``ANALYTICS_EVERY`` events (benchmarks/load.py: 59 -> 95-119 cached answers a second),
    unless the environment already says how often."""
    monkeypatch.setenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1")  # restored after the test
    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY")
    qa = NewsQA(tmp_path / "index")
    assert app.build_app(qa)._queue.ANAYLTICS_CACHE_FREQUENCY == app.ANALYTICS_EVERY
    monkeypatch.setenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", "7")
    assert app.build_app(qa)._queue.ANAYLTICS_CACHE_FREQUENCY == 7
    assert not (tmp_path / "index").exists()  # building the app opens nothing


# ---- the served app ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(command: list[str], log_path: Path,
                env: dict[str, str] | None = None) -> Iterator[str]:
    """``command`` (app.py or ``newsqa serve``) on a free loopback port, with ``env`` added to
    its environment: its URL once it answers, and the server stopped after the block."""
    if not (READER / "config.json").is_file():
        pytest.skip(f"no reader model in {READER} (train it with `newsqa train-reader`)")
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **(env or {})}
    with log_path.open("w") as log:
        proc = subprocess.Popen([*command, "--port", str(port)], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, env=env)
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
            pytest.fail(f"{' '.join(command)} did not start:\n{log_path.read_text()}")
        try:
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python app.py`` on a free loopback port over a new, empty index (so it seeds itself)."""
    tmp = tmp_path_factory.mktemp("app")
    command = [sys.executable, str(ROOT / "app.py"), "--index", str(tmp / "index")]
    with running_app(command, tmp / "app.log") as url:
        assert "indexing" in (tmp / "app.log").read_text()  # the empty index was seeded, visibly
        yield url


@pytest.fixture(scope="module")
def seed_title() -> str:
    (doc,) = load([SEED_ARTICLE])
    return doc.title


@pytest.fixture(scope="module")
def shots():
    """docs/screenshots.py (docs/ is no package): its browser helpers are the tests' too, so the
    script that draws the docs' screenshots is tested with them."""
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "docs" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not module.CHROMIUM.exists():
        pytest.skip(f"{module.CHROMIUM} is missing (apt-get install -y chromium)")
    return module


@pytest.fixture(scope="module")
def browser(shots):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = shots.launch_chromium(playwright)
        yield chromium
        chromium.close()


def open_app(browser, app_url: str, viewport: dict[str, int]):
    tab = browser.new_page(viewport=viewport)
    tab.goto(app_url)
    tab.locator("#nqa-question textarea").wait_for()
    return tab


@pytest.fixture()
def page(browser, shots, app_url: str, tmp_path: Path):
    """A fresh desktop-sized tab on the app; a screenshot is left in the test's tmp dir."""
    tab = open_app(browser, app_url, shots.DESKTOP)
    yield tab
    tab.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    tab.close()


@pytest.fixture()
def ask(shots):
    """Ask in the page and return the reply, once its answer line is on screen."""
    return shots.ask


def upload_files(page, *paths: Path, reported: str) -> Any:
    """Upload ``paths`` on the Sources tab; its status line once it says ``reported``."""
    page.get_by_role("tab", name="Sources").click()
    page.locator("#nqa-files input[type=file]").set_input_files([str(p) for p in paths])
    page.locator("#nqa-upload").click()
    status = page.locator("#nqa-status")
    status.get_by_text(reported).wait_for()
    return status


def choose(page, title: str) -> None:
    """Choose the article titled ``title`` in the Sources tab's "Delete an article"."""
    page.locator("#nqa-doomed input").fill(title)
    page.get_by_role("option", name=title, exact=False).click()


def delete(page, title: str) -> None:
    """Delete the article titled ``title``, confirmed, on the Sources tab."""
    choose(page, title)
    page.locator("#nqa-delete").click()
    page.locator("#nqa-confirm").click()
    page.locator("#nqa-status").get_by_text(f"Deleted {title}").wait_for()


def confidence(reply) -> int:
    """The percentage a found reply shows, e.g. 91 for "91% confidence"."""
    return int(re.fullmatch(r"(\d+)% confidence", reply.locator(".nqa-score").first.inner_text())
               .group(1))


@pytest.mark.browser
def test_chat_answers_with_highlighted_citation_and_follows_up(page, ask,
                                                                seed_title: str) -> None:
    reply = ask(page, FIRST_LIST)
    assert "640" in reply.locator("strong").first.inner_text()
    assert "640" in reply.locator("mark").first.inner_text()
    assert seed_title in reply.locator(".nqa-card").first.inner_text()

    ask(page, "When were the direct talks?")
    follow_up = ask(page, "Where were those talks held?")
    assert "Istanbul" in follow_up.locator("strong").first.inner_text()
    titles = follow_up.locator(".nqa-card > strong").all_inner_texts()
    assert len(titles) == len(set(titles))  # one card per article, its quotes inside it
    assert follow_up.locator(".nqa-card blockquote").count() >= len(titles)
    # no floating "Conversation" label over the messages
    assert page.locator("#nqa-chat").get_by_text("Conversation", exact=True).count() == 0


@pytest.mark.browser
def test_threshold_slider_is_in_the_percent_the_replies_show(page, ask) -> None:
    slider = page.locator("#nqa-threshold input[type=number]")
    assert 0 <= float(slider.input_value()) <= 100
    shown = confidence(ask(page, FIRST_LIST))
    slider.fill(str(min(shown + 1, 100)))  # just above the confidence it showed: not found
    slider.press("Enter")
    assert render.NOT_FOUND in ask(page, FIRST_LIST).inner_text()
    slider.fill(str(shown - 1))  # just below it: found again, with the same confidence
    slider.press("Enter")
    assert confidence(ask(page, FIRST_LIST)) == shown


@pytest.mark.browser
def test_source_filter_says_when_there_is_nothing_to_filter(page, tmp_path: Path) -> None:
    """The seed article names no source, so the filter says so instead of opening empty; an
    article with a source makes it a working filter, and deleting it turns it off again."""
    from playwright.sync_api import expect

    source_filter = page.locator("#nqa-sources")
    expect(source_filter.get_by_role("combobox")).to_be_disabled()
    expect(source_filter).to_contain_text(app.NO_SOURCES)

    article = tmp_path / "gazette.jsonl"
    article.write_text(json.dumps({"title": "Ferry timetable changes", "source": "Harbour Gazette",
                                   "text": "The island ferry will leave at seven from May."})
                       + "\n", encoding="utf-8")
    page.get_by_role("tab", name="Sources").click()
    page.locator("#nqa-files input[type=file]").set_input_files(str(article))
    page.locator("#nqa-upload").click()
    page.locator("#nqa-status").get_by_text("Added 1 article(s)").wait_for()
    page.get_by_role("tab", name="Chat").click()
    expect(source_filter).to_contain_text(app.SOURCES_HINT)
    source_filter.get_by_role("combobox").click()
    expect(page.get_by_role("option", name="Harbour Gazette")).to_be_visible()
    page.keyboard.press("Escape")

    page.get_by_role("tab", name="Sources").click()
    delete(page, "Ferry timetable changes")
    page.get_by_role("tab", name="Chat").click()
    expect(source_filter.get_by_role("combobox")).to_be_disabled()
    expect(source_filter).to_contain_text(app.NO_SOURCES)


@pytest.mark.browser
def test_sources_tab_reports_in_its_status_line_not_in_toasts(page) -> None:
    page.get_by_role("tab", name="Sources").click()
    status = page.locator("#nqa-status")
    for button, message in (("Add files", "Choose one or more files to upload first."),
                            ("Add URL", "Type the address of an article or feed first."),
                            ("Delete", "Choose an article to delete first.")):
        page.get_by_role("button", name=button, exact=True).click()
        status.get_by_text(message).wait_for()
    assert page.get_by_test_id("toast-body").count() == 0
    page.get_by_role("tab", name="Chat").click()
    assert page.get_by_test_id("toast-body").count() == 0


@pytest.mark.browser
def test_long_question_scrolls_inside_a_capped_box(page) -> None:
    from playwright.sync_api import expect

    box = page.locator("#nqa-question textarea")
    box.fill(LONG_QUESTION)
    page.wait_for_function("(box) => box.scrollHeight > box.clientHeight", arg=box.element_handle())
    lines_shown = box.evaluate("""(box) => {
        const style = getComputedStyle(box);
        const padding = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
        return (box.clientHeight - padding) / parseFloat(style.lineHeight);
    }""")
    assert round(lines_shown) <= app.QUESTION_LINES
    expect(page.locator("#nqa-ask")).to_be_in_viewport()


@pytest.mark.browser
def test_phone_width_shows_each_question_with_its_answer(browser, shots, app_url: str) -> None:
    """At 390 px the reply to a question is taller than the chat; after each question the app
    scrolls to the question and its bold answer (``ask`` asserts the answer is on screen)."""
    from playwright.sync_api import expect

    phone = open_app(browser, app_url, shots.PHONE)
    for question in (FIRST_LIST, "Where were the direct talks held?"):
        reply = shots.ask(phone, question)
        expect(reply.locator(".nqa-answer strong")).to_be_in_viewport(ratio=1)
        expect(phone.locator("#nqa-chat .nqa-question").last).to_be_in_viewport()
    phone.close()


@pytest.mark.browser
def test_docs_screenshots_at_desktop_and_phone_width(browser, shots, app_url: str,
                                                     tmp_path: Path) -> None:
    """``python docs/screenshots.py`` draws docs/*.png with this same ``capture``."""
    shots.capture(browser, app_url, tmp_path)
    for name, viewport in (("chat.png", shots.DESKTOP), ("chat_phone.png", shots.PHONE),
                           ("sources.png", shots.DESKTOP)):
        header = (tmp_path / name).read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        size = (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big"))
        assert size == (viewport["width"], viewport["height"])


@pytest.mark.browser
def test_uploaded_html_is_listed_answered_from_and_never_runs(page, ask, tmp_path: Path) -> None:
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
    delete(page, "Harbour bridge reopens")
    assert "Harbour bridge" not in page.locator("#nqa-table").inner_text()


# ---- the Sources table, delete and undo, the conversation's download ---------------------------
QUARRY = [  # one word in every title; added oldest first, and dated 2024, 2025 and not at all
    {"id": "quarry-001", "title": "Quarry lake opens for swimmers", "published": "2024-07-02",
     "text": "The flooded quarry east of Tarvas opened to swimmers on Tuesday after the town "
             "council fenced the steep north bank and hired two lifeguards for the summer."},
    {"id": "quarry-002", "title": "Quarry road closed for repairs", "published": "2025-03-14",
     "text": "The gravel road to the old quarry will be closed for six weeks from Monday while "
             "crews rebuild the bridge over the mill stream, the roads office said."},
    {"id": "quarry-003", "title": "Quarry choir sings at the harbour",
     "text": "The quarry workers' choir, founded in 1921, gave its first concert by the harbour "
             "in forty years on Sunday, singing to a crowd of about three hundred people."},
]
LOCK_TITLE = "Vaski canal lock opens for the season"
LOCK_ARTICLE = (f"{LOCK_TITLE}\n\nThe keeper of the Vaski canal lock opened its gates for the "
                "season on Saturday and expects about 1,250 boats to pass before the autumn, "
                "the canal board said.\n")
OFF_TOPIC = "Who won the football world cup in 1998?"
SCREENS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1366, "height": 768}}


def cells(page) -> list[list[str]]:
    """The Sources table's rows as drawn (gradio draws the rows on screen: a short table's all)."""
    rows = page.locator("#nqa-table [role=row]").filter(has=page.locator("[role=gridcell]"))
    return [[text.strip() for text in row.get_by_role("gridcell").all_inner_texts()]
            for row in rows.all()]


def indexed(page) -> int:
    """How many articles the Sources tab's count line says are indexed."""
    line = page.locator("#nqa-count").inner_text()
    return int(re.search(r"([\d,]+) articles?\b", line).group(1).replace(",", ""))


@pytest.mark.browser
def test_gzipped_json_uploads_are_read_and_an_unknown_file_gets_one_line(page,
                                                                          tmp_path: Path) -> None:
    """The upload takes what `newsqa index` takes, gzipped JSON Lines and JSON among it
    (gradio's own file-type check matched the last suffix only, and refused ".gz" in a toast);
    a file that no loader reads gets the ingest layer's one line in the status line: no toast,
    and no "Choose one or more files to upload first"."""
    lines = tmp_path / "kilns.jsonl.gz"
    lines.write_bytes(gzip.compress(json.dumps({
        "title": "Kiln museum opens in Tarvas",
        "text": "A museum of the brick kilns that once stood along the Tarvas river opened on "
                "Friday in the last of them, restored over four years."}).encode()))
    whole = tmp_path / "ferries.json.gz"
    whole.write_bytes(gzip.compress(json.dumps([{
        "title": "Night ferry returns to Saare",
        "text": "The night ferry to Saare island will sail again from June after a pause of two "
                "summers, with cabins for eighty passengers."}]).encode()))
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.7\nscanned newspaper page\n")
    status = upload_files(page, lines, whole, scan, reported="Added 2 article(s)")
    assert status.inner_text().startswith("⚠ scan.pdf is not a supported file type")
    assert "Choose one or more files" not in status.inner_text()
    assert page.get_by_test_id("toast-body").count() == 0
    titles = [row[0] for row in cells(page)]
    assert {"Kiln museum opens in Tarvas", "Night ferry returns to Saare"} <= set(titles)


@pytest.mark.browser
def test_sources_table_counts_searches_and_lists_the_newest_first(page, tmp_path: Path) -> None:
    """The table says how many articles there are, narrows to those holding every word typed
    (title, source, id or the record's own id, in any case), and lists the newest first, the
    undated last."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Sources").click()
    count = page.locator("#nqa-count")
    expect(count).to_contain_text("newest first")
    total = indexed(page) + len(QUARRY)
    corpus = tmp_path / "quarry.jsonl"
    corpus.write_text("".join(json.dumps(record) + "\n" for record in QUARRY), encoding="utf-8")
    upload_files(page, corpus, reported=f"Added {len(QUARRY)} article(s)")
    expect(count).to_have_text(f"{total} articles, newest first.")

    search = page.locator("#nqa-search").get_by_role("textbox")
    search.fill("QUARRY")
    expect(count).to_have_text(f"3 of {total} articles match “QUARRY”, newest first.")
    newest_first = [QUARRY[1], QUARRY[0], QUARRY[2]]  # 2025, 2024, undated
    assert [(row[0], row[2], row[5]) for row in cells(page)] == [
        (r["title"], r.get("published", "undated"), r["id"]) for r in newest_first]

    search.fill("quarry-003")  # the record's own id
    expect(count).to_have_text(f"1 of {total} articles match “quarry-003”, newest first.")
    assert [row[0] for row in cells(page)] == [QUARRY[2]["title"]]
    search.fill("quarry zeppelin")  # every word must match
    expect(count).to_have_text(
        f"No article matches “quarry zeppelin” ({total} articles indexed).")
    search.fill("")
    expect(count).to_have_text(f"{total} articles, newest first.")


@pytest.mark.browser
def test_the_landing_page_says_how_many_articles_are_indexed(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    intro = page.locator("#nqa-intro")
    expect(intro).to_contain_text("indexed article")
    shown = int(re.search(r"the ([\d,]+) indexed", intro.inner_text()).group(1).replace(",", ""))
    page.get_by_role("tab", name="Sources").click()
    assert indexed(page) == shown
    article = tmp_path / "lock.txt"
    article.write_text(LOCK_ARTICLE, encoding="utf-8")
    upload_files(page, article, reported="Added 1 article(s)")
    expect(intro).to_have_text(sources.intro(shown + 1))
    delete(page, LOCK_TITLE)
    expect(intro).to_have_text(sources.intro(shown))


@pytest.mark.browser
def test_delete_asks_to_confirm_and_undo_adds_the_article_back(page, tmp_path: Path) -> None:
    """Delete names the article and waits for Confirm delete (Cancel keeps it); once deleted,
    Undo adds it back, and is offered only until the session's next write."""
    from playwright.sync_api import expect

    article = tmp_path / "lock.txt"
    article.write_text(LOCK_ARTICLE, encoding="utf-8")
    upload_files(page, article, reported="Added 1 article(s)")
    status, count = page.locator("#nqa-status"), page.locator("#nqa-count")
    confirm, undo = page.locator("#nqa-confirm"), page.locator("#nqa-undo")
    page.locator("#nqa-search").get_by_role("textbox").fill("Vaski")
    expect(count).to_contain_text("1 of")

    page.locator("#nqa-table [role=gridcell]").get_by_text(LOCK_TITLE).click()  # chooses it
    expect(page.locator("#nqa-doomed input")).to_have_value(re.compile(f"^{LOCK_TITLE} — "))
    page.locator("#nqa-delete").click()
    status.get_by_text(f"Delete {LOCK_TITLE}?").wait_for()
    expect(confirm).to_be_visible()
    page.locator("#nqa-cancel").click()
    status.get_by_text("Nothing was deleted.").wait_for()
    expect(confirm).to_be_hidden()
    assert [row[0] for row in cells(page)] == [LOCK_TITLE]

    page.locator("#nqa-delete").click()
    confirm.click()
    status.get_by_text(f"Deleted {LOCK_TITLE}.").wait_for()
    expect(count).to_contain_text("No article matches “Vaski”")
    undo.click()
    status.get_by_text(f"Restored {LOCK_TITLE}.").wait_for()
    expect(count).to_contain_text("1 of")
    assert [row[0] for row in cells(page)] == [LOCK_TITLE]
    expect(undo).to_be_hidden()

    delete(page, LOCK_TITLE)
    expect(undo).to_be_visible()
    other = tmp_path / "kiln.txt"
    other.write_text("Kiln chimney is listed\n\nThe last brick kiln chimney on the Tarvas river "
                     "was listed as a monument on Thursday.\n", encoding="utf-8")
    upload_files(page, other, reported="Added 1 article(s)")  # a write: no undo after it
    expect(undo).to_be_hidden()


@pytest.mark.browser
@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_the_ask_button_is_on_screen_without_scrolling(browser, app_url: str,
                                                       screen: str) -> None:
    """At phone width (390 x 844) the Ask button sits under the question box; on a laptop
    (1366 x 768) beside it: on both, the chat leaves it on screen when the page opens."""
    from playwright.sync_api import expect

    tab = open_app(browser, app_url, SCREENS[screen])
    expect(tab.locator("#nqa-ask")).to_be_in_viewport(ratio=1)
    assert tab.evaluate("window.scrollY") == 0
    tab.close()


@pytest.mark.browser
def test_candidate_answers_under_one_percent_are_left_out(page, ask, app_url: str) -> None:
    """The fold of other candidates lists those /ask returns of at least 1%: the weakest
    guesses (shown as "0%") are noise."""
    from gradio_client import Client

    client, left_out = Client(app_url, verbose=False), 0
    # a question about the current state reads every passage, so it has the most candidates
    for question in (FIRST_LIST, OFF_TOPIC, "Where were the direct talks held?",
                     "Where were the latest direct talks held?"):
        answer = client.predict(question, 5, api_name="/ask")
        reply = ask(page, question)
        kept = [a for a in answer["alternatives"] if a["score"] >= render.MIN_CANDIDATE]
        folded = reply.locator("details li")  # folded away: their text, not what is drawn
        assert folded.locator("strong").all_text_contents() == [a["text"] for a in kept]
        assert "0%" not in folded.locator(".nqa-score").all_text_contents()
        left_out += len(answer["alternatives"]) - len(kept)
        page.get_by_role("button", name="New conversation").click()  # no follow-up
    assert left_out  # the answers had candidates under 1%: the test saw some left out


@pytest.mark.browser
def test_the_conversation_downloads_as_json_and_markdown_with_citations(page, ask,
                                                                        app_url: str) -> None:
    from gradio_client import Client

    page.locator("#nqa-save-json").click()
    page.get_by_text(app.NOTHING_TO_SAVE).wait_for()
    ask(page, FIRST_LIST)
    answer = Client(app_url, verbose=False).predict(FIRST_LIST, 5, api_name="/ask")

    with page.expect_download() as saving:
        page.locator("#nqa-save-json").click()
    assert saving.value.suggested_filename == "newsqa-conversation.json"
    (saved,) = json.loads(Path(saving.value.path()).read_text(encoding="utf-8"))
    assert (saved["question"], saved["text"]) == (FIRST_LIST, answer["text"])
    assert [(c["doc_id"], c["start"], c["end"], c["quote"]) for c in saved["citations"]] == [
        (c["doc_id"], c["start"], c["end"], c["quote"]) for c in answer["citations"]]

    with page.expect_download() as saving:
        page.locator("#nqa-save-markdown").click()
    assert saving.value.suggested_filename == "newsqa-conversation.md"
    markdown = Path(saving.value.path()).read_text(encoding="utf-8")
    first = answer["citations"][0]
    assert f"## {export.md(FIRST_LIST)}\n\n**{export.md(answer['text'])}**" in markdown
    assert f"**{export.md(first['quote'])}**" in markdown
    assert export.md(first["title"]) in markdown


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
    status = page.locator("#nqa-status")
    status.get_by_text("is a binary file, not text").wait_for()
    assert status.inner_text().startswith("⚠ photo.txt ")  # the upload's name, not its path
    assert "/" not in status.inner_text()


@pytest.mark.browser
def test_url_field_reads_no_local_file(page, app_url: str, tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "keys.jsonl").write_text(
        json.dumps({"title": "Keys", "text": "The database password is hunter2."}) + "\n",
        encoding="utf-8")
    page.get_by_role("tab", name="Sources").click()
    table = page.locator("#nqa-table").inner_text()
    status = page.locator("#nqa-status")
    for typed in (str(vault), str(vault / "keys.jsonl"), vault.as_uri(), "/etc/passwd",
                  str(vault / "missing.txt"), "~/.ssh", "seeds"):
        page.locator("#nqa-url").get_by_role("textbox").fill(typed)
        page.get_by_role("button", name="Add URL").click()
        status.get_by_text(typed, exact=False).wait_for()
        # one line, the same for a path that exists and one that does not
        assert status.inner_text() == f"⚠ {typed} is not an http or https URL."
    assert page.locator("#nqa-table").inner_text() == table

    from gradio_client import Client

    result = Client(app_url, verbose=False).predict("What is the database password?", 5,
                                                    api_name="/ask")
    assert "hunter2" not in json.dumps(result)


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


@pytest.mark.parametrize("route", ["upload", "component_server"])  # both read multipart files
def test_one_upload_request_is_capped_in_total(app_url: str, route: str) -> None:
    part = b"word " * 1_500_000  # 7.5 MB: each file is under the 10 MB limit, the three are not
    response = httpx.post(f"{app_url}/gradio_api/{route}", timeout=60, files=[
        ("files", (f"part-{i}.txt", part, "text/plain")) for i in range(3)])
    assert response.status_code == 413
    assert f"at most {guard.MAX_UPLOAD_REQUEST_MB} MB in all" in response.text
    small = httpx.post(f"{app_url}/gradio_api/upload", timeout=60, files=[
        ("files", (f"part-{i}.txt", b"word " * 1000, "text/plain")) for i in range(3)])
    assert small.status_code == 200 and len(small.json()) == 3


def test_oversized_upload_is_refused(app_url: str) -> None:
    big = b"word " * (2_200_000)  # 11 MB, over the 10 MB limit
    response = httpx.post(f"{app_url}/gradio_api/upload",
                          files={"files": ("big.txt", big, "text/plain")}, timeout=60)
    assert response.status_code == 413
    assert "maximum allowed size" in response.text


# ---- what a request may carry ------------------------------------------------------------------
def call(url: str, api_name: str, data: list) -> tuple[str, Any]:
    """``/gradio_api/call/<api_name>`` with ``data``, as a program calls it over HTTP: the last
    event of its stream ("complete" or "error") and that event's data."""
    posted = httpx.post(f"{url}/gradio_api/call/{api_name}", json={"data": data}, timeout=60)
    event = ""
    with httpx.stream("GET", f"{url}/gradio_api/call/{api_name}/{posted.json()['event_id']}",
                      timeout=STARTUP_LIMIT_S) as stream:  # a hang guard, as for startup
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event in ("complete", "error"):
                return event, json.loads(line.removeprefix("data: "))
    pytest.fail(f"the event stream of {api_name} ended without a result")


@pytest.mark.parametrize("top_k", ["abc", 2.5, True])
def test_api_reports_a_bad_top_k_in_one_line(app_url: str, top_k: object) -> None:
    """``top_k`` reaches the facade as the client sent it: not cut to an int (2.5 is not 2), and
    text gets the facade's line rather than an error without a message."""
    event, data = call(app_url, "ask", [FIRST_LIST, top_k])
    assert event == "error" and data is not None  # not an error without a message
    assert data["error"] == f"top_k must be a whole number of at least 1, not {top_k!r}."


def exchange(url: str, request: bytes) -> tuple[int, str]:
    """``request``, raw bytes, sent on a new connection to the app at ``url``: the status and
    body of its answer, read until the app closes the connection."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_a_request_body_over_the_cap_is_refused_before_it_is_read(app_url: str) -> None:
    """A body declared one byte over ``MAX_REQUEST_MB`` is refused before it is sent; one that
    declares no length (chunked) is refused once one byte more than the cap has come, without
    waiting for its end; a chunked body under the cap is read, and the app answers on."""
    cap = guard.MAX_REQUEST_MB * 2**20
    refusal = (413, f"A request other than an upload may hold at most {guard.MAX_REQUEST_MB} MB.")
    head = "POST /gradio_api/call/ask HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\n"
    assert exchange(app_url, f"{head}Content-Length: {cap + 1}\r\n\r\n".encode()) == refusal

    def chunked(body: bytes) -> bytes:  # in 64 KiB chunks
        return b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 2**16]), body[i:i + 2**16])
                        for i in range(0, len(body), 2**16))

    over = json.dumps({"data": ["x" * cap, 5]}).encode()[:cap + 1]  # the rest never comes
    chunked_head = f"{head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
    assert exchange(app_url, chunked_head + chunked(over)) == refusal
    under = json.dumps({"data": [FIRST_LIST, 5]}).encode()
    status, text = exchange(app_url, chunked_head + chunked(under) + b"0\r\n\r\n")
    assert status == 200 and "event_id" in json.loads(text)
    event, (answer,) = call(app_url, "ask", [FIRST_LIST, 5])
    assert event == "complete" and "640" in answer["text"]


PROXIED_TITLE = "Varne lighthouse keeper retires"
PROXIED_PAGE = (f"<!DOCTYPE html><html><head><title>{PROXIED_TITLE}</title></head><body>"
                f"<article><h1>{PROXIED_TITLE}</h1><p>The keeper of the Varne lighthouse retired "
                "on Friday after thirty-one years, and the light will now be run from the "
                "harbour office in Folkestone.</p></article></body></html>").encode()


class Proxy(LoopbackServer):
    """An HTTP proxy on loopback that records the URL of every request it is asked to make and
    answers each with ``PROXIED_PAGE``, so a fetch that gets through is indexed too."""

    def __init__(self) -> None:
        super().__init__(ProxyHandler)
        self.requested: list[str] = []


class ProxyHandler(QuietHandler):
    server: Proxy

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.server.requested.append(self.path)
        self._answer(200, {"Content-Type": "text/html; charset=utf-8"}, PROXIED_PAGE)


@pytest.fixture(scope="module")
def proxied_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Proxy]]:
    """``python app.py`` whose outgoing HTTP goes through ``Proxy``: gradio's own downloader
    sends huggingface.co URLs through a configured proxy unchecked, so the proxy sees every
    fetch gradio makes for a request."""
    tmp = tmp_path_factory.mktemp("proxied")
    command = [sys.executable, str(ROOT / "app.py"), "--index", str(tmp / "index")]
    with serving(Proxy()) as proxy:
        env = {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url,
               "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        with running_app(command, tmp / "app.log", env) as url:
            yield url, proxy


def fn_index(url: str, api_name: str) -> int:
    """The number the browser posts to ``/gradio_api/queue/join`` to run the event
    ``api_name``."""
    config = httpx.get(f"{url}/config", timeout=60).json()
    return next(d["id"] for d in config["dependencies"] if d["api_name"] == api_name)


def test_an_event_may_name_only_a_file_uploaded_to_the_app(proxied_app: tuple[str, Proxy],
                                                            tmp_path: Path) -> None:
    """Gradio fetches a file an event names by URL, or copies one named by a server path, before
    any handler runs: whatever the event (the upload button's, or /ask's), it is refused at
    once and the proxy is never asked for the URL; the same page uploaded is then read, and
    added as new, so nothing of it was indexed before."""
    url, proxy = proxied_app
    remote = "http://huggingface.co/lighthouse.html"
    local = tmp_path / "lighthouse.html"
    local.write_bytes(PROXIED_PAGE)
    upload = fn_index(url, "add_files")
    for path in (remote, str(local)):
        named = {"path": path, "url": path, "orig_name": "lighthouse.html",
                 "meta": {"_type": "gradio.FileData"}}
        for route, body in (("queue/join", {"fn_index": upload, "data": [[named], ""],
                                            "session_hash": "s1", "trigger_id": None}),
                            ("call/ask", {"data": [named, 5]})):
            response = httpx.post(f"{url}/gradio_api/{route}", json=body, timeout=60)
            assert (response.status_code, response.text) == (
                400, f"{path!r} is not a file uploaded to this app: files are never fetched "
                     "from a URL or read from a server path.")
    assert remote not in proxy.requested

    (stored,) = httpx.post(f"{url}/gradio_api/upload", timeout=60, files={
        "files": ("lighthouse.html", PROXIED_PAGE, "text/html")}).json()
    uploaded = {"path": stored, "url": f"{url}/gradio_api/file={stored}",  # as the browser sends
                "orig_name": "lighthouse.html", "size": len(PROXIED_PAGE),
                "mime_type": "text/html", "meta": {"_type": "gradio.FileData"}}
    joined = httpx.post(f"{url}/gradio_api/queue/join", timeout=60, json={
        "fn_index": upload, "data": [[uploaded], ""], "session_hash": "s2",
        "trigger_id": None})
    assert joined.status_code == 200
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": "s2"},
                      timeout=STARTUP_LIMIT_S) as stream:
        done = next(message for line in stream.iter_lines() if line.startswith("data: ")
                    and (message := json.loads(line.removeprefix("data: ")))["msg"]
                    == "process_completed")
    status = done["output"]["data"][0]
    assert status == f"Added 1 article(s), 1 passage(s):<br>• {PROXIED_TITLE}"


# ---- sources that differ, and feeds: an app that may fetch from loopback ------------------------
DIFFER = ROOT / "tests" / "data" / "differ" / "toll.jsonl"  # two outlets, two dates, two tolls
TOLL = "What is the toll for the Aldergate bridge?"
FEED_PAGES = {  # path -> (headline, paragraphs)
    "/news/ferry.html": ("Island ferry gets a winter timetable", [
        "The island ferry will sail four times a day from November instead of six, the harbour "
        "board said on Thursday, because fewer visitors travel in the cold months.",
        "The first boat will leave the mainland pier at seven in the morning and the last one "
        "will return from the island at six in the evening, the board said."]),
    "/news/library.html": ("Town library reopens after a year of repairs", [
        "The town library reopened on Saturday after a year of repairs to its leaking roof and "
        "old heating, and lent more than three hundred books on its first day.",
        "The librarians said the reading room now has twice as many seats and that the "
        "children's corner moved to the sunny side of the building."]),
}


class NewsSite(LoopbackServer):
    """A news site on loopback: an RSS feed of ``FEED_PAGES``, the pages, and a broken feed."""

    def __init__(self) -> None:
        super().__init__(NewsHandler)

    def rss(self) -> bytes:
        items = "".join(f"<item><title>{headline}</title><link>{self.url}{path}</link>"
                        f"<guid>{path}</guid><pubDate>Thu, 06 Nov 2025 08:00:00 GMT</pubDate>"
                        f"<description>{paragraphs[0]}</description></item>"
                        for path, (headline, paragraphs) in FEED_PAGES.items())
        return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
                f"<title>Harbour Town News</title><link>{self.url}/</link>{items}"
                f"</channel></rss>").encode("utf-8")


class NewsHandler(QuietHandler):
    server: NewsSite

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path == "/feed.xml":
            return self._answer(200, {"Content-Type": "application/rss+xml"}, self.server.rss())
        if self.path == "/broken.xml":
            return self._answer(500, {}, b"internal error")
        if self.path in FEED_PAGES:
            headline, paragraphs = FEED_PAGES[self.path]
            body = "".join(f"<p>{p}</p>" for p in paragraphs)
            page = (f"<!DOCTYPE html><html><head><title>{headline}</title></head><body><article>"
                    f"<h1>{headline}</h1>{body}</article></body></html>")
            return self._answer(200, {"Content-Type": "text/html; charset=utf-8"},
                                page.encode("utf-8"))
        self._answer(404, {}, b"not found")


@pytest.fixture(scope="module")
def newsroom_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``newsqa serve --allow-private`` over an index of the two toll articles (so it does not
    seed itself): it may subscribe to feeds on loopback."""
    tmp = tmp_path_factory.mktemp("newsroom")
    index = str(tmp / "index")
    cli = [sys.executable, "-m", "qa.cli"]
    subprocess.run([*cli, "index", str(DIFFER), "--index", index], cwd=ROOT, check=True,
                   capture_output=True)
    with running_app([*cli, "serve", "--index", index, "--allow-private"],
                     tmp / "serve.log") as url:
        yield url


@pytest.mark.browser
def test_sources_that_differ_are_shown_side_by_side_newest_first(browser, shots,
                                                                  newsroom_url: str) -> None:
    """Two outlets give the toll on different days: the reply says "Sources differ" and shows
    each answer, quoted from its own article, with its outlet and date, the newest first."""
    records = sorted((json.loads(line) for line in DIFFER.read_text().splitlines()),
                     key=lambda r: r["published"], reverse=True)
    tab = open_app(browser, newsroom_url, shots.DESKTOP)
    reply = shots.ask(tab, TOLL)
    differ = reply.locator(".nqa-differ")
    assert differ.locator("p").first.inner_text() == "Sources differ"
    cells = differ.locator(".nqa-card")
    assert cells.count() == len(records)
    quotes = []
    for cell, record in zip(cells.all(), records):
        quote = cell.locator("strong").first.inner_text()
        meta = cell.locator(".nqa-meta").first.inner_text()
        assert quote in record["text"]  # each answer from its own article
        assert meta.startswith(f"{record['source']} · {record['published'][:10]}")
        assert record["title"] in cell.inner_text()
        quotes.append(quote)
    assert len(set(quotes)) == len(quotes)  # different answers
    tab.close()


@pytest.mark.browser
def test_feeds_panel_subscribes_refreshes_and_shows_a_broken_feed(browser, shots,
                                                                   newsroom_url: str) -> None:
    """Subscribe to a loopback feed and refresh it: the table shows when it was polled and how
    many items it brought, and its articles are indexed; a broken feed shows its error."""
    from playwright.sync_api import expect

    tab = open_app(browser, newsroom_url, shots.DESKTOP)
    with serving(NewsSite()) as site:
        tab.get_by_role("tab", name="Feeds").click()
        status, table = tab.locator("#nqa-feed-status"), tab.locator("#nqa-feeds")
        feed_url = tab.locator("#nqa-feed-url").get_by_role("textbox")
        feed_url.fill(f"{site.url}/feed.xml")
        tab.locator("#nqa-subscribe").click()
        status.get_by_text(f"Subscribed to {site.url}/feed.xml").wait_for()
        expect(table).to_contain_text("(not polled yet)")

        tab.locator("#nqa-refresh").click()
        status.get_by_text(f"{site.url}/feed.xml: {len(FEED_PAGES)} new article(s)").wait_for()
        row = table.locator("tbody tr").filter(has_text=f"{site.url}/feed.xml")
        cells = row.first.locator("td").all_text_contents()  # gradio also draws it hidden
        title, _, last_poll, last_success, items, error = (c.strip() for c in cells)
        assert title == "Harbour Town News"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", last_poll)
        assert last_success == last_poll and items == str(len(FEED_PAGES)) and error == ""

        feed_url.fill(f"{site.url}/broken.xml")
        tab.locator("#nqa-subscribe").click()
        status.get_by_text(f"Subscribed to {site.url}/broken.xml").wait_for()
        tab.locator("#nqa-refresh").click()
        status.get_by_text("HTTP 500").wait_for()
        assert "⚠" in status.inner_text()
        broken = table.locator("tbody tr").filter(has_text=f"{site.url}/broken.xml")
        expect(broken).to_contain_text("HTTP 500")

    tab.get_by_role("tab", name="Sources").click()
    for headline, _ in FEED_PAGES.values():
        expect(tab.locator("#nqa-table")).to_contain_text(headline)
    tab.close()
