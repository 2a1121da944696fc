"""Regenerate docs/chat.png and docs/sources.png: ``python docs/screenshots.py``.

Serves the app over a temporary index of ``seeds/`` with the shipped reader, asks the seed
question in Chromium (``/usr/bin/chromium``, e.g. ``apt-get install chromium``) and captures
the Chat and Sources tabs. Rerun it whenever the reader model or the UI changes.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from qa import ui  # noqa: E402
from qa.pipeline import NewsQA  # noqa: E402

SEED_ARTICLE = ROOT / "seeds" / "000_2ffe86633dc2dc73.txt"
QUESTION = "How many POWs were on the first list?"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}


def capture(url: str, out: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
        page.goto(url)
        page.locator("#nqa-question textarea").fill(QUESTION)
        page.locator("#nqa-ask").click()
        page.locator("#nqa-chat .nqa-reply").wait_for(timeout=120_000)
        page.screenshot(path=str(out / "chat.png"))
        page.get_by_role("tab", name="Sources").click()
        page.locator("#nqa-files input[type=file]").set_input_files(str(SEED_ARTICLE))
        page.locator("#nqa-upload").click()  # shows the add report: "1 already indexed"
        page.locator("#nqa-status").get_by_text("already indexed").wait_for()
        page.screenshot(path=str(out / "sources.png"))
        browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, NewsQA(Path(tmp) / "index") as qa:
        ui.seed(qa, ui.SEEDS)
        qa.warm_up()
        app = ui.build_app(qa)
        url = ui.launch(app, port=None, block=False)
        try:
            capture(url, ROOT / "docs")
        finally:
            app.close()
    print(f"wrote {ROOT / 'docs' / 'chat.png'} and {ROOT / 'docs' / 'sources.png'}")


if __name__ == "__main__":
    main()
