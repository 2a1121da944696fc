"""The Following tab: standing questions, their latest answers, and how each answer moved.

Pure functions (tested without a page) read the number an answer states (``amount``), turn a
question's history or timeline into the points of a chart or the lines of a dated list, and
count the changes that arrived since the page last looked (``badge``); ``following_tab`` draws
the tab inside ``qa.ui.app.build_app`` and calls nothing but the ``NewsQA`` facade.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import gradio as gr  # at the top: gradio reads the handlers' annotations (gr.SelectData) here

from qa.answer_type import CALENDAR, NUMBER_VALUES, SCALES
from qa.errors import NewsQAError
from qa.text import STOPWORDS
from qa.types import Citation, Followed, FollowEntry
from qa.ui.render import around, esc, shown, when

if TYPE_CHECKING:
    import pandas as pd

    from qa.pipeline import NewsQA

# ---- the number an answer states -----------------------------------------------------------
_QUALIFIER = (r"(?:about|around|approximately|roughly|nearly|almost|some|over|under|just over|"
              r"just under|more than|less than|fewer than|at least|at most|up to)\s+")
_CURRENCY = "$€£¥"
_DIGITS = re.compile(r"[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_SCALE = re.compile(rf"({'|'.join(SCALES)})s?(?![a-z])")
_PERCENT = {"%", "percent", "per cent"}
# A unit is a few words of letters ("euros", "people", "km"); a month or weekday means a date.
_UNIT = re.compile(r"[a-z][a-z'-]*(?: [a-z][a-z'-]*){0,2}")


@dataclass(frozen=True)
class Amount:
    """A number an answer states, in full ("$3.5 billion" is 3.5e9), and what it counts."""

    value: float
    unit: str  # "$", "%", "euros", "" when the span names nothing


def _words_value(words: list[str]) -> float | None:
    """"twenty-three" -> 23, "three hundred and five" -> 305, "a dozen" -> 12; None unless
    every word is part of the number."""
    total = current = 0.0
    counted = False
    for word in words:
        if word in NUMBER_VALUES:
            current += NUMBER_VALUES[word]
        elif word in ("hundred", "dozen"):
            current = (current or 1) * (100 if word == "hundred" else 12)
        elif word in ("thousand", "million", "billion", "trillion"):
            total, current = total + (current or 1) * SCALES[word], 0.0
        elif word in ("and", "a"):
            continue
        else:
            return None
        counted = True
    return total + current if counted else None


def amount(span: str) -> Amount | None:
    """The number ``span`` states: "19", "1,200", "about 1,250 boats", "$3.5 billion", "12%",
    "twelve", "4 euros"; None for a span that is not a number ("Istanbul", "June 2025",
    "between 12 and 19"), so a chart is drawn only where every answer is one."""
    text = span.strip().rstrip(".,;:").lower()
    text = re.sub(rf"^{_QUALIFIER}", "", text)
    currency = text[:1] if text[:1] in _CURRENCY else ""
    text = text[len(currency):].lstrip()
    digits = _DIGITS.match(text)
    if digits:
        value = float(digits.group().replace(",", "").replace("−", "-"))
        rest = text[digits.end():].strip()
        scale = _SCALE.match(rest)
        if scale:
            value *= SCALES[scale.group(1)]
            rest = rest[scale.end():].strip()
    else:  # number words, up to the first word that is not one
        words = re.split(r"[\s-]+", text)
        cut = next((i for i in range(len(words), 0, -1)
                    if _words_value(words[:i]) is not None), 0)
        if not cut:
            return None
        value, rest = _words_value(words[:cut]), " ".join(words[cut:])
    if rest in _PERCENT:
        return Amount(value, "%")
    if rest and (not _UNIT.fullmatch(rest) or (CALENDAR | STOPWORDS) & set(rest.split())):
        return None
    return Amount(value, currency or rest)


# ---- a history or a timeline as points -----------------------------------------------------
@dataclass(frozen=True)
class Point:
    """One answer in time: what it said, the article it quotes (None: not found) and its date,
    the article's own, else when it was recorded ("" for an undated article)."""

    date: str
    answer: str
    citation: Citation | None


def history_points(entries: Sequence[FollowEntry]) -> list[Point]:
    """A followed question's history, oldest first: each answer at its article's date, or at
    when it was recorded where the article is undated or nothing was found."""
    return [Point((e.citation.published if e.citation else "") or e.recorded, e.text, e.citation)
            for e in entries]


def timeline_points(citations: Sequence[Citation]) -> list[Point]:
    """``Answer.timeline``: each article's own answer at the article's date."""
    return [Point(c.published, c.quote, c) for c in citations]


def chart_scale(values: Sequence[float]) -> tuple[float, str]:
    """The scale the chart's axis counts in: millions and up as words ("3.5" billion), else 1."""
    largest = max((abs(v) for v in values), default=0)
    for word in ("trillion", "billion", "million"):
        if largest >= SCALES[word]:
            return SCALES[word], word
    return 1.0, ""


@dataclass(frozen=True)
class Chart:
    """The rows of a line chart (``frame``) and its y axis's title; ``left_out`` are the points
    it cannot place (not found, undated), listed under it."""

    rows: list[dict[str, Any]]
    y_title: str
    left_out: list[Point]

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        frame = pd.DataFrame(self.rows, columns=list(CHART_COLUMNS))
        frame["date"] = pd.to_datetime(frame["date"], utc=True, format="ISO8601")
        return frame


CHART_COLUMNS = ("date", "value", "answer", "outlet")  # the tooltip shows answer and outlet


def chart(points: Sequence[Point]) -> Chart | None:
    """The chart of ``points`` when every answer found parses as a number, in one unit, and at
    least two are dated; None otherwise (the points are then a dated list)."""
    found = [p for p in points if p.answer]
    amounts = [amount(p.answer) for p in found]
    units = {a.unit for a in amounts if a and a.unit}
    if not found or None in amounts or len(units) > 1:  # "19" and "23 people" are one unit
        return None
    drawn = [(p, a) for p, a in zip(found, amounts) if p.date]
    if len(drawn) < 2:  # one point draws no line
        return None
    scale, word = chart_scale([a.value for _, a in drawn])
    rows = [{"date": p.date, "value": a.value / scale, "answer": p.answer,
             "outlet": (p.citation.source or p.citation.title) if p.citation else ""}
            for p, a in drawn]
    y_title = " ".join(x for x in (*units, word) if x) or "number"
    return Chart(rows, y_title, [p for p in points if not (p.answer and p.date)])


def sentence(citation: Citation) -> str:
    """The sentence the answer is quoted from, as escaped HTML with the answer in <mark>: the
    cited passage around the quote (``render.around``), cut at the sentence's ends."""
    before, quote, after = around(citation)
    before = re.split(r"(?<=[.!?])\s+", before)[-1]
    end = re.search(r"[.!?](?=\s|$)", after)
    after = after[:end.end()] if end else after
    return f"{esc(before)}<mark>{esc(quote)}</mark>{esc(after)}"


def dated_list(points: Sequence[Point]) -> str:
    """The points as a dated list (escaped HTML): date, outlet, answer and the quoted sentence;
    "not found" where nothing was."""
    if not points:
        return ""
    items = []
    for point in points:
        cited = point.citation
        meta = " · ".join(esc(x) for x in (point.date[:10] or "undated",
                                            cited.source if cited else "") if x)
        answer = (f"<strong>{esc(point.answer)}</strong>" if point.answer
                  else "<em>not found</em>")
        quote = f"<blockquote class='nqa-passage'>{sentence(cited)}</blockquote>" if cited else ""
        items.append(f"<li><span class='nqa-meta'>{meta}</span> {answer}{quote}</li>")
    return f"<ol class='nqa-dated'>{''.join(items)}</ol>"


# ---- the followed questions ----------------------------------------------------------------
HEADERS = ["question", "latest answer", "confidence", "article", "changes", "last checked",
           "error", "id"]
WIDTHS = ["24%", "15%", "8%", "17%", "7%", "12%", "11%", "6%"]
ID_COLUMN = HEADERS.index("id")
LABEL = "Following"


def rows(followed: Sequence[Followed]) -> list[list[Any]]:
    """The table's rows, one a followed question, in ``HEADERS`` order (plain text: the table
    shows it as text)."""
    table = []
    for f in followed:
        latest = f.latest
        cited = latest.citation if latest else None
        article = " · ".join(x for x in (cited.published[:10] or "undated", cited.source)
                             if x) if cited else ""
        table.append([f.question, latest.text if latest and latest.text else "not found",
                      f"{latest.confidence:.0%}" if latest else "", article, f.changes,
                      when(f.checked), f.error, f.id])
    return table


def counts(followed: Sequence[Followed]) -> dict[str, int]:
    """How many history entries each followed question has: what a page has seen."""
    return {f.id: f.changes for f in followed}


def badge(followed: Sequence[Followed], seen: dict[str, int]) -> str:
    """The tab's label: "Following", or "Following (2 new)" when answers changed since the page
    last looked (``seen``); a question followed since then counts its entries after the first."""
    new = sum(max(0, f.changes - seen.get(f.id, 1)) for f in followed)
    return f"{LABEL} ({new} new)" if new else LABEL


def choices(followed: Sequence[Followed]) -> list[tuple[str, str]]:
    """The followed questions to choose from: (question — id, id)."""
    return [(f"{f.question} — {f.id}", f.id) for f in followed]


# ---- the tab -------------------------------------------------------------------------------
POLL_S = 5  # how often an open page looks for changes (one read of the store, no model)
NOTHING_CHOSEN = "Choose a followed question first."
CHART_HEIGHT = 280


def following_tab(qa: NewsQA, app: gr.Blocks, top_k: int, questions: dict[str, Any]) -> None:
    """The Following tab, drawn where it is called (inside ``gr.Tabs``), with its events on
    ``app``; ``questions`` are the queue settings of the events that ask (the timeline)."""
    private = {"api_visibility": "private"}

    def views(followed: list[Followed], seen: dict[str, int], **pick: Any) -> tuple:
        """The tab's label (with the badge), the table and the questions to choose from
        (``pick``: the one chosen)."""
        return (gr.Tab(label=badge(followed, seen)), rows(followed),
                gr.Dropdown(choices=choices(followed), **pick))

    def failed(error: NewsQAError) -> str:
        return f"⚠ {esc(shown(error, qa.index_dir))}"

    def looked() -> tuple:
        """The page has seen every change so far: no badge (and the outlets to filter by)."""
        followed = qa.followed()
        sources = sorted({d.source for d in qa.documents() if d.source})
        return (counts(followed), counts(followed), *views(followed, counts(followed)),
                gr.Dropdown(choices=sources))

    def poll(seen: dict[str, int], known: dict[str, int]) -> tuple:
        """What changed since the last poll, by any process; nothing is sent when nothing
        did."""
        followed = qa.followed()
        if counts(followed) == known:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return counts(followed), *views(followed, seen)

    def follow(question: str, sources: list[str] | None, k: float,
               seen: dict[str, int]) -> tuple:
        try:
            new = qa.follow(question, sources=sources or None, top_k=int(k))
        except NewsQAError as error:
            return failed(error), question, seen, *views(qa.followed(), seen)
        seen = {**seen, new.id: new.changes}
        latest = new.latest
        said = f"“{esc(latest.text)}”" if latest and latest.text else "not found yet"
        return (f"Following “{esc(new.question)}” ({esc(new.id)}): {said}.", "", seen,
                *views(qa.followed(), seen, value=new.id))

    def history(follow_id: str | None) -> tuple:
        """The chosen question's history: a chart of its numbers, or a dated list."""
        if not follow_id:
            return "", no_chart(), ""
        try:
            return drawn(history_points(qa.history(follow_id)), "History of its answer")
        except NewsQAError as error:
            return failed(error), no_chart(), ""

    def timeline(follow_id: str | None) -> tuple:
        """Each article's own answer to the chosen question, oldest first."""
        chosen = next((f for f in qa.followed() if f.id == follow_id), None) if follow_id else None
        if chosen is None:
            return "", no_chart(), ""
        try:
            answer = qa.ask(chosen.question, chosen.top_k, sources=list(chosen.sources) or None,
                            timeline=True)
        except NewsQAError as error:
            return failed(error), no_chart(), ""
        return drawn(timeline_points(answer.timeline), "Timeline: each article's own answer")

    def pick(event: gr.SelectData) -> str:
        """A click on a row of the table chooses its question."""
        return event.row_value[ID_COLUMN]

    def ask_remove(follow_id: str | None) -> tuple:
        """Stop following's first step: name the question and offer Confirm."""
        chosen = next((f for f in qa.followed() if f.id == follow_id), None)
        if chosen is None:
            return f"⚠ {NOTHING_CHOSEN}", gr.Row(visible=False), None
        asked = f"Stop following “{esc(chosen.question)}”? Confirm removes it and its history."
        return asked, gr.Row(visible=True), chosen.id

    def remove(follow_id: str | None, seen: dict[str, int]) -> tuple:
        """The second step, for the question the first step named."""
        if not follow_id:  # a second click on Confirm, queued behind the first
            return gr.skip()
        try:
            qa.unfollow(follow_id)
        except NewsQAError as error:
            return failed(error), gr.Row(visible=False), None, *views(qa.followed(), seen)
        return (f"No longer following {esc(follow_id)}.", gr.Row(visible=False), None,
                *views(qa.followed(), seen, value=None))

    with gr.Tab(LABEL, id="following", elem_id="nqa-following-tab") as tab:
        with gr.Row():
            question = gr.Textbox(label="Follow a question", scale=4, elem_id="nqa-follow-q",
                                  placeholder="e.g. What is the toll for the Aldergate bridge?")
            sources = gr.Dropdown(multiselect=True, label="Only these sources", scale=2,
                                  elem_id="nqa-follow-sources")
            k = gr.Slider(1, 20, value=top_k, step=1, label="Passages to read (top-k)",
                          scale=2)
            add = gr.Button("Follow", variant="primary", scale=1, elem_id="nqa-follow")
        status = gr.HTML(elem_id="nqa-follow-status")
        table = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, show_label=False,
                             elem_id="nqa-followed", column_widths=WIDTHS)
        with gr.Row():
            picked = gr.Dropdown(label="Show a followed question", scale=4,
                                 elem_id="nqa-followed-pick",
                                 info="Or click its row in the table above.")
            drop = gr.Button("Stop following", variant="stop", scale=1, elem_id="nqa-unfollow")
        with gr.Row(visible=False) as confirming:
            confirm = gr.Button("Confirm", variant="stop", elem_id="nqa-unfollow-confirm")
            cancel = gr.Button("Cancel", elem_id="nqa-unfollow-cancel")
        plots = []
        with gr.Row():
            for name in ("history", "timeline"):
                with gr.Column():
                    plots.append([gr.HTML(elem_id=f"nqa-{name}-title"),
                                  gr.LinePlot(x="date", y="value", height=CHART_HEIGHT,
                                              tooltip=["answer", "outlet"], visible=False,
                                              x_axis_format="%Y-%m-%d",
                                              elem_id=f"nqa-{name}-chart"),
                                  gr.HTML(elem_id=f"nqa-{name}-list")])
    # On the page, not in the tab: a timer in a tab that is not open would not run.
    timer = gr.Timer(POLL_S)
    seen = gr.State({})  # each question's entries when the page last looked at the tab
    known = gr.State({})  # ... and when it last polled
    pending = gr.State(None)  # the question Stop following asks to confirm

    tab_views = [tab, table, picked]
    shown_history, shown_timeline = plots
    for opened in (app.load, tab.select):  # then the chosen question as it is now
        opened(looked, outputs=[seen, known, *tab_views, sources], show_progress="hidden",
               **private).then(history, inputs=picked, outputs=shown_history, **private).then(
            timeline, inputs=picked, outputs=shown_timeline, **questions, **private)
    timer.tick(poll, inputs=[seen, known], outputs=[known, *tab_views], show_progress="hidden",
               **private)
    for asked in (add.click, question.submit):
        asked(follow, inputs=[question, sources, k, seen],
              outputs=[status, question, seen, *tab_views], **private)
    picked.change(history, inputs=picked, outputs=shown_history, **private).then(
        timeline, inputs=picked, outputs=shown_timeline, **questions, **private)
    picked.change(lambda: (gr.Row(visible=False), None), outputs=[confirming, pending],
                  **private)  # another question chosen: Confirm must not remove it unasked
    table.select(pick, outputs=picked, **private)
    drop.click(ask_remove, inputs=picked, outputs=[status, confirming, pending], **private)
    confirm.click(remove, inputs=[pending, seen],
                  outputs=[status, confirming, pending, *tab_views], **private)
    cancel.click(lambda: ("Nothing was removed.", gr.Row(visible=False), None),
                 outputs=[status, confirming, pending], **private)


def no_chart() -> gr.LinePlot:
    """The update that hides a chart (made in a handler: made while the page is being built,
    it would be drawn as a new chart)."""
    return gr.LinePlot(visible=False)


def drawn(points: Sequence[Point], title: str) -> tuple:
    """A title, the chart (hidden unless ``chart`` draws the points) and the dated list of what
    it does not draw (all of them without a chart), for the tab's outputs."""
    if not points:
        return f"<strong>{title}</strong>: nothing yet.", no_chart(), ""
    plot = chart(points)
    if plot is None:
        return f"<strong>{title}</strong>", no_chart(), dated_list(points)
    rest = dated_list(plot.left_out)
    return (f"<strong>{title}</strong>",
            gr.LinePlot(plot.frame(), y_title=plot.y_title, x_title="article date",
                        visible=True),
            f"<p class='nqa-meta'>Not on the chart:</p>{rest}" if rest else "")
