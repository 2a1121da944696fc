"""The Following tab in Chromium (qa.ui.following; its pure parts: test_following.py): `newsqa
serve` over a real index of three dated articles whose toll rises, a question followed from the
tab, its timeline drawn as a chart with each article's span on hover, and a badge when another
process (`newsqa index`) changes the answer."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from qa.ui import following
from test_ui import ROOT, browser, open_app, running_app, shots  # noqa: F401 (fixtures)

QUESTION = "What is the toll for the Brennmoor tunnel?"
DATA = ROOT / "tests" / "data" / "following"
TUNNEL_FILE = DATA / "tunnel.jsonl"  # three articles, each stating the toll plainly: 12, 19, 23
LATER_FILE = DATA / "tunnel_later.jsonl"  # a fourth, later one: 27
TUNNEL = [json.loads(line) for line in TUNNEL_FILE.read_text(encoding="utf-8").splitlines()]
(FOURTH,) = [json.loads(line) for line in LATER_FILE.read_text(encoding="utf-8").splitlines()]
EVIL_QUESTION = 'Who runs the <img src=x onerror="window.__pwned=1"> Brennmoor tunnel?'
CLI = [sys.executable, "-m", "qa.cli"]
CHANGE_LIMIT_MS = 120_000  # a hang guard for the poll after another process's commit


def toll(record: dict) -> str:
    """The number of euros an article states."""
    return re.search(r"(\d+) euros", record["text"]).group(1)


@pytest.fixture(scope="module")
def tunnel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``newsqa serve`` over an index of the three tunnel articles, and the index's folder."""
    tmp = tmp_path_factory.mktemp("tunnel")
    index = tmp / "index"
    subprocess.run([*CLI, "index", str(TUNNEL_FILE), "--index", str(index)], cwd=ROOT,
                   check=True, capture_output=True)
    with running_app([*CLI, "serve", "--index", str(index)], tmp / "serve.log") as url:
        yield url, index


def followed_rows(page) -> list[dict[str, str]]:
    """The Following table's rows as drawn, by column, once it draws one (a tab just opened
    draws its table anew)."""
    page.locator("#nqa-followed [role=gridcell]").first.wait_for()
    rows = page.locator("#nqa-followed [role=row]").filter(has=page.locator("[role=gridcell]"))
    return [dict(zip(following.HEADERS, (t.strip() for t in row.get_by_role("gridcell")
                                          .all_inner_texts())))
            for row in rows.all()]


def hovered(page, point) -> dict[str, str]:
    """The chart's tooltip, by field, while the mouse is on ``point``."""
    point.hover(force=True)  # scrolled to; forced: the chart's hover layer lies over it
    tip = page.locator("#vg-tooltip-element.visible")
    tip.wait_for()
    fields = dict(tuple(c.strip() for c in row.locator("td").all_inner_texts())
                  for row in tip.locator("tr").all())
    page.mouse.move(0, 0)
    tip.wait_for(state="hidden")
    return fields


def follow(page, question: str) -> None:
    page.locator("#nqa-follow-q").get_by_role("textbox").fill(question)
    page.locator("#nqa-follow").click()


@pytest.mark.browser
def test_a_followed_toll_is_charted_and_a_change_from_another_process_shows_a_badge(
        browser, shots, tunnel: tuple[str, Path]) -> None:
    from playwright.sync_api import expect

    url, index = tunnel
    page = open_app(browser, url, shots.DESKTOP)
    page.get_by_role("tab", name="Following").click()
    status = page.locator("#nqa-follow-status")
    page.locator("#nqa-follow").click()  # nothing typed: the facade's one line
    expect(status).to_have_text("⚠ The question is empty.")

    follow(page, QUESTION)
    status.get_by_text(f"Following “{QUESTION}”").wait_for()
    (row,) = followed_rows(page)
    assert row["question"] == QUESTION and row["changes"] == "1"
    assert toll(TUNNEL[-1]) in row["latest answer"]  # the newest article's toll
    assert row["article"] == f"{TUNNEL[-1]['published']} · {TUNNEL[-1]['source']}"

    # The timeline: a point an article (those the reader found a span in), each at the
    # article's date with its own span and outlet on hover.
    points = page.locator("#nqa-timeline-chart svg .mark-symbol path")
    points.nth(1).wait_for(state="attached")  # a line: two points at least
    by_date = {record["published"]: record for record in TUNNEL}
    tips = [hovered(page, point) for point in points.all()]
    assert len({tip["article date"] for tip in tips}) == len(tips) <= len(TUNNEL)
    for tip in tips:
        record = by_date[tip["article date"][:10]]
        assert toll(record) in tip["answer"] and tip["answer"] in record["text"]
        assert tip["outlet"] == record["source"]
    # One answer so far: the history is a dated list, quoting the article's sentence.
    expect(page.locator("#nqa-history-chart")).to_be_hidden()
    history = page.locator("#nqa-history-list li")
    expect(history).to_have_count(1)
    assert history.locator("mark").inner_text() in TUNNEL[-1]["text"]

    # Another process indexes a fourth article: the answer changes, and the page says so.
    page.get_by_role("tab", name="Chat").click()
    subprocess.run([*CLI, "index", str(LATER_FILE), "--index", str(index)], cwd=ROOT,
                   check=True, capture_output=True)
    badge = page.get_by_role("tab", name=f"{following.LABEL} (1 new)")
    expect(badge).to_be_visible(timeout=CHANGE_LIMIT_MS)
    badge.click()
    expect(page.get_by_role("tab", name=following.LABEL, exact=True)).to_be_visible()
    (row,) = followed_rows(page)
    assert toll(FOURTH) in row["latest answer"] and row["changes"] == "2"
    history_points = page.locator("#nqa-history-chart svg .mark-symbol path")
    expect(history_points).to_have_count(2)  # two answers: now a chart
    tips = sorted((hovered(page, point) for point in history_points.all()),
                  key=lambda tip: tip["article date"])
    for tip, record in zip(tips, (TUNNEL[-1], FOURTH)):  # 23, then 27, at their articles' dates
        assert tip["article date"].startswith(record["published"])
        assert toll(record) in tip["answer"] and tip["outlet"] == record["source"]
    page.close()


@pytest.mark.browser
def test_a_followed_question_is_shown_as_text_and_removed_after_confirming(
        browser, shots, tunnel: tuple[str, Path]) -> None:
    from playwright.sync_api import expect

    url, _ = tunnel
    page = open_app(browser, url, shots.DESKTOP)
    page.get_by_role("tab", name="Following").click()
    status = page.locator("#nqa-follow-status")
    follow(page, EVIL_QUESTION)
    status.get_by_text(f"Following “{EVIL_QUESTION}”").wait_for()  # markup shown as text
    assert EVIL_QUESTION in [row["question"] for row in followed_rows(page)]
    page.locator("#nqa-unfollow").click()  # the question just followed is the one chosen
    status.get_by_text(f"Stop following “{EVIL_QUESTION}”?").wait_for()
    page.locator("#nqa-unfollow-cancel").click()
    expect(status).to_have_text("Nothing was removed.")
    assert EVIL_QUESTION in [row["question"] for row in followed_rows(page)]
    page.locator("#nqa-unfollow").click()
    page.locator("#nqa-unfollow-confirm").click()
    status.get_by_text("No longer following").wait_for()
    expect(page.locator("#nqa-followed")).not_to_contain_text(EVIL_QUESTION)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.close()


@pytest.mark.browser
def test_docs_screenshot_of_the_following_tab(browser, shots, tunnel: tuple[str, Path],
                                              tmp_path: Path) -> None:
    """``python docs/screenshots.py`` draws docs/following.png with this same
    ``capture_following``, over the same articles."""
    assert (shots.TUNNEL, shots.TUNNEL_LATER, shots.FOLLOWED) == (TUNNEL_FILE, LATER_FILE,
                                                                  QUESTION)
    url, _ = tunnel
    shots.capture_following(browser, url, tmp_path)
    header = (tmp_path / "following.png").read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    size = (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big"))
    assert size == (shots.FOLLOWING["width"], shots.FOLLOWING["height"])


@pytest.mark.browser
def test_over_milvus_lite_a_change_the_server_makes_itself_shows_a_badge(
        browser, shots, tmp_path: Path) -> None:
    """milvus-lite lets one process open its file, so the change comes from the app's own
    process, as ``serve --watch`` makes it: the app is served in this process over a
    ``milvus://`` index, and this process indexes the later article."""
    from playwright.sync_api import expect

    from qa.pipeline import NewsQA
    from qa.ui import app

    pytest.importorskip("milvus_lite")
    with NewsQA(f"milvus://{tmp_path}/index.db") as qa:
        qa.add_paths([TUNNEL_FILE])
        served = app.build_app(qa)
        url = app.launch(served, port=None, block=False)
        try:
            page = open_app(browser, url, shots.DESKTOP)
            page.get_by_role("tab", name="Following").click()
            follow(page, QUESTION)
            page.locator("#nqa-follow-status").get_by_text(f"Following “{QUESTION}”").wait_for()
            page.locator("#nqa-timeline-chart svg .mark-symbol path").nth(1).wait_for(
                state="attached")  # the timeline is a chart
            page.get_by_role("tab", name="Chat").click()
            qa.add_paths([LATER_FILE])
            expect(page.get_by_role("tab", name=f"{following.LABEL} (1 new)")).to_be_visible(
                timeout=CHANGE_LIMIT_MS)
            page.get_by_role("tab", name=f"{following.LABEL} (1 new)").click()
            (row,) = followed_rows(page)
            assert toll(FOURTH) in row["latest answer"] and row["changes"] == "2"
            page.close()
        finally:
            served.close()
