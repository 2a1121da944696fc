"""The Following tab without a browser (qa.ui.following): the number an answer states, a
history or timeline as a chart's rows or a dated list, the table of followed questions and the
badge that counts the changes a page has not seen."""
from __future__ import annotations

import pytest

from qa.types import Citation, Followed, FollowEntry
from qa.ui import following
from qa.ui.following import Amount, Point, amount

TEXT = ("The council met on Monday. Drivers will pay a toll of 19 euros from June, the mayor "
        "said. Cyclists cross for free.")


def cite(quote: str, published: str = "", source: str = "Harbour Gazette",
         text: str = "") -> Citation:
    """A citation of ``quote`` in ``text`` (the quote alone when no text is given)."""
    text = text or quote
    start = text.index(quote)
    return Citation(f"doc-{quote}", f"Title {quote}", source, "", published, start,
                    start + len(quote), quote, passage=text)


def entry(text: str, published: str = "", recorded: str = "2026-01-05T10:00:00+00:00",
          source: str = "Harbour Gazette") -> FollowEntry:
    return FollowEntry(recorded, text, 0.8, cite(text, published, source) if text else None)


@pytest.mark.parametrize(("span", "expected"), [
    ("19", Amount(19, "")),
    ("1,200", Amount(1200, "")),
    ("$3.5 billion", Amount(3.5e9, "$")),
    ("£900 million", Amount(9e8, "£")),
    ("1.2bn", Amount(1.2e9, "")),
    ("12%", Amount(12, "%")),
    ("3 per cent", Amount(3, "%")),
    ("-3.2 percent", Amount(-3.2, "%")),
    ("twelve", Amount(12, "")),
    ("Twenty-three", Amount(23, "")),
    ("three hundred and five", Amount(305, "")),
    ("about 1,250 boats", Amount(1250, "boats")),
    ("4 euros.", Amount(4, "euros")),
])
def test_a_number_is_read_from_the_span_with_its_unit(span: str, expected: Amount) -> None:
    assert amount(span) == expected


@pytest.mark.parametrize("span", ["Istanbul", "June 2025", "12 March", "Monday", "",
                                  "between 12 and 19", "12 and 19", "one of the bridges",
                                  "a toll of 4 euros", "the mayor"])
def test_a_span_that_is_not_a_number_is_none(span: str) -> None:
    assert amount(span) is None


def test_a_history_is_charted_at_its_articles_dates_with_the_span_for_the_tooltip() -> None:
    """Each found answer at its article's date, else when it was recorded; the value in the
    axis's unit, the span and outlet kept for the tooltip; a not-found state is listed apart."""
    history = [entry("", recorded="2026-01-01T08:00:00+00:00"),
               entry("12 euros", "2025-03-03", source="Harbour Gazette"),
               entry("19 euros", "2025-03-10", source="Valley Courier"),
               entry("23", recorded="2026-01-04T09:00:00+00:00", source="Lakeview Post")]
    drawn = following.chart(following.history_points(history))
    assert drawn is not None and drawn.y_title == "euros"
    assert drawn.rows == [
        {"date": "2025-03-03", "value": 12, "answer": "12 euros", "outlet": "Harbour Gazette"},
        {"date": "2025-03-10", "value": 19, "answer": "19 euros", "outlet": "Valley Courier"},
        {"date": "2026-01-04T09:00:00+00:00", "value": 23, "answer": "23",
         "outlet": "Lakeview Post"}]
    assert [(p.date, p.answer) for p in drawn.left_out] == [("2026-01-01T08:00:00+00:00", "")]
    frame = drawn.frame()
    assert list(frame.columns) == list(following.CHART_COLUMNS)
    assert str(frame["date"].dt.date.iloc[0]) == "2025-03-03"


def test_big_amounts_are_charted_in_millions_or_billions() -> None:
    points = following.timeline_points([cite("$900 million", "2025-01-01"),
                                        cite("$3.5 billion", "2025-06-01")])
    drawn = following.chart(points)
    assert drawn.y_title == "$ billion"
    assert [row["value"] for row in drawn.rows] == [pytest.approx(0.9), pytest.approx(3.5)]


@pytest.mark.parametrize("answers", [["12", "Istanbul"], ["12 euros", "12%"], [""], []])
def test_no_chart_unless_every_answer_found_is_a_number_in_one_unit(answers) -> None:
    points = [Point(f"2025-0{i + 1}-01", text, cite(text) if text else None)
              for i, text in enumerate(answers)]
    assert following.chart(points) is None


def test_undated_articles_of_a_timeline_are_left_off_the_chart_and_listed() -> None:
    points = following.timeline_points([cite("12", "2025-03-03"), cite("19", "2025-04-01"),
                                        cite("23", "")])
    drawn = following.chart(points)
    assert [row["answer"] for row in drawn.rows] == ["12", "19"]
    assert [p.answer for p in drawn.left_out] == ["23"]
    assert "undated" in following.dated_list(drawn.left_out)
    assert following.chart(points[:1] + points[2:]) is None  # one point draws no line


def test_the_dated_list_quotes_the_answers_sentence_escaped() -> None:
    cited = cite("19 euros", "2025-03-10", source="<b>Courier</b>", text=TEXT)
    html = following.dated_list([Point("2025-03-10", "19 euros", cited),
                                 Point("2026-01-01T08:00:00+00:00", "", None)])
    assert html.count("<li>") == 2
    assert "2025-03-10 · &lt;b&gt;Courier&lt;/b&gt;" in html
    assert ("Drivers will pay a toll of <mark>19 euros</mark> from June, the mayor said."
            in html)
    assert "Monday" not in html and "Cyclists" not in html  # the sentence, not the passage
    assert "2026-01-01" in html and "not found" in html


def test_the_table_shows_the_latest_answer_its_article_and_the_last_check() -> None:
    latest = entry("19 euros", "2025-03-10T16:30:00", source="Valley Courier")
    followed = [Followed("f1", "What is the toll?", latest=latest, changes=2,
                         checked="2026-01-05T10:00:00+00:00"),
                Followed("f2", "Who is the mayor?", error="The index is locked.")]
    assert [dict(zip(following.HEADERS, row)) for row in following.rows(followed)] == [
        {"question": "What is the toll?", "latest answer": "19 euros", "confidence": "80%",
         "article": "2025-03-10 · Valley Courier", "changes": 2,
         "last checked": "2026-01-05 10:00 UTC", "error": "", "id": "f1"},
        {"question": "Who is the mayor?", "latest answer": "not found", "confidence": "",
         "article": "", "changes": 0, "last checked": "never", "error": "The index is locked.",
         "id": "f2"}]
    assert len(following.WIDTHS) == len(following.HEADERS)


def test_the_badge_counts_the_changes_the_page_has_not_seen() -> None:
    before = [Followed("f1", "q1", changes=2), Followed("f2", "q2", changes=1)]
    seen = following.counts(before)
    assert following.badge(before, seen) == "Following"
    after = [Followed("f1", "q1", changes=4), Followed("f2", "q2", changes=1),
             Followed("f3", "q3", changes=2)]  # followed elsewhere since: its first is no change
    assert following.badge(after, seen) == "Following (3 new)"
    assert following.badge(after, following.counts(after)) == "Following"
