"""Regenerate docs/chat.png, docs/chat_phone.png, docs/sources.png and docs/following.png:
``python docs/screenshots.py``.

Serves the app over a temporary index of ``seeds/`` and the two dated articles of
``tests/data/differ/`` (so the Sources table shows sources, dates and its order) with the shipped
reader, asks the seed question in Chromium (``/usr/bin/chromium``, e.g. ``apt-get install
chromium``) at desktop and at phone width, and captures the Chat and Sources tabs. Then it
replaces those articles with the tunnel articles of ``tests/data/following/`` (a toll that
rises), follows their question, adds the later article that changes its answer, and captures
the Following tab with its charts.
Rerun it whenever the reader model or the UI changes. tests/ui/test_ui.py runs the same
``capture``, and tests/ui/test_following_browser.py ``capture_following``, against their apps.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from qa.pipeline import NewsQA  # noqa: E402
from qa.ui import app as ui  # noqa: E402

SEED_ARTICLE = ROOT / "seeds" / "000_2ffe86633dc2dc73.txt"
DATED = ROOT / "tests" / "data" / "differ" / "toll.jsonl"
QUESTION = "How many POWs were on the first list?"
TUNNEL = ROOT / "tests" / "data" / "following" / "tunnel.jsonl"  # the toll: 12, 19, 23 euros
TUNNEL_LATER = ROOT / "tests" / "data" / "following" / "tunnel_later.jsonl"  # then 27
FOLLOWED = "What is the toll for the Brennmoor tunnel?"
SEARCH = "toll"  # in the titles of the two dated articles
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}  # an iPhone 12-15 in CSS pixels
FOLLOWING = {"width": 1280, "height": 1080}  # the tab's table and both charts
REPLY_LIMIT_MS = 120_000  # a hang guard for the first question on a busy machine


def launch_chromium(playwright) -> Browser:
    """The system Chromium, headless, with nothing that would reach the network."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)


def ask(page: Page, question: str) -> Locator:
    """Type ``question``, send it, and return its reply once the reply's answer line is on
    screen (the app scrolls it there after each question)."""
    replies = page.locator("#nqa-chat .nqa-reply")
    before = replies.count()
    page.locator("#nqa-question textarea").fill(question)
    page.locator("#nqa-ask").click()
    page.wait_for_function(f"document.querySelectorAll('#nqa-chat .nqa-reply').length > {before}",
                           timeout=REPLY_LIMIT_MS)
    reply = replies.nth(before)
    expect(reply.locator("p").first).to_be_in_viewport(ratio=1)
    return reply


def capture(browser: Browser, url: str, out: Path) -> None:
    """Write chat.png (desktop), chat_phone.png (phone width) and sources.png into ``out``."""
    for viewport, name in ((DESKTOP, "chat.png"), (PHONE, "chat_phone.png")):
        page = browser.new_page(viewport=viewport, device_scale_factor=1)
        page.goto(url)
        ask(page, QUESTION)
        page.screenshot(path=str(out / name), animations="disabled")
        page.close()
    page = browser.new_page(viewport=DESKTOP, device_scale_factor=1)
    page.goto(url)
    page.get_by_role("tab", name="Sources").click()
    page.locator("#nqa-files input[type=file]").set_input_files(str(SEED_ARTICLE))
    page.locator("#nqa-upload").click()  # shows the add report: "1 already indexed"
    page.locator("#nqa-status").get_by_text("already indexed").wait_for()
    page.locator("#nqa-search").get_by_role("textbox").fill(SEARCH)  # the table narrowed
    page.locator("#nqa-count").get_by_text(f"“{SEARCH}”").wait_for()
    page.screenshot(path=str(out / "sources.png"), animations="disabled")
    page.close()


def capture_following(browser: Browser, url: str, out: Path) -> None:
    """Write following.png into ``out``: ``FOLLOWED`` followed from the Following tab (a
    question followed before is the one shown), its history and timeline, and the tooltip of
    one point of the timeline (its answer span and outlet)."""
    page = browser.new_page(viewport=FOLLOWING, device_scale_factor=1)
    page.goto(url)
    page.get_by_role("tab", name="Following").click()
    page.locator("#nqa-follow-q").get_by_role("textbox").fill(FOLLOWED)
    page.locator("#nqa-follow").click()
    page.locator("#nqa-follow-status").get_by_text(f"Following “{FOLLOWED}”").wait_for()
    points = page.locator("#nqa-timeline-chart svg .mark-symbol path")
    points.nth(1).wait_for(state="attached", timeout=REPLY_LIMIT_MS)  # a chart: two points
    points.nth(1).hover(force=True)  # forced: the chart's hover layer lies over the point
    page.locator("#vg-tooltip-element.visible").wait_for()
    page.screenshot(path=str(out / "following.png"), animations="disabled")
    page.close()


def main() -> None:
    out = ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp, NewsQA(Path(tmp) / "index") as qa:
        ui.seed(qa, ui.SEEDS)
        qa.add_paths([DATED])
        qa.warm_up()
        app = ui.build_app(qa)
        url = ui.launch(app, port=None, block=False)
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                capture(browser, url, out)
                for doc in qa.documents():  # the tunnel articles alone: the Aldergate ones
                    qa.delete(doc.id)  # would answer its question too (a toll of 4 euros)
                qa.add_paths([TUNNEL])
                qa.follow(FOLLOWED, top_k=qa.config.top_k)  # the tab's top-k: the same follow
                qa.add_paths([TUNNEL_LATER])  # a second answer: the history is a chart too
                capture_following(browser, url, out)
                browser.close()
        finally:
            app.close()
    print(f"wrote chat.png, chat_phone.png, sources.png and following.png in {out}")


if __name__ == "__main__":
    main()
