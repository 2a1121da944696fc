r"""Following a story (issue 24): what re-asking the followed questions adds to a feed poll, and
how many of a scripted story set's changes the history records.

1. **Cost.** Two indexes of the same 50 articles (one a town: how many homes are without power
   there), one with the 50 towns' questions followed. One poll of a loopback RSS feed adds the
   same 20 articles (new figures for 20 towns) to each: the poll's wall time without follows and
   with them, and the time added per question. Then the 50 questions are asked again twice more
   on the second index, once as ``NewsQA`` does it (``qa.follow.REASK_THREADS`` at once, so the
   reader reads them in batches) and once one at a time, to show what the batching saves.
2. **Changes recorded.** ``STORIES``: followed questions whose articles arrive one commit at a
   time, in date order, some repeating the last figure from another outlet and some about
   nothing followed. Each story says the answers its history should hold, in order; an entry
   counts as right when it is the expected answer at its place (normalised text, or the same
   with more or fewer words: "9" for "9 days"). Mismatched histories are printed.

    .venv/bin/python benchmarks/follow.py            # about two minutes on two busy cores

The reader and the embedder are the shipped ones, in ONNX Runtime (the default backend).
"""
from __future__ import annotations

import http.server
import itertools
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa import follow as following  # noqa: E402
from qa.ingest.fetch import Fetcher  # noqa: E402
from qa.pipeline import NewsQA  # noqa: E402
from qa.text import normalize_answer  # noqa: E402
from qa.types import Document  # noqa: E402

TOWNS = [a + b for a, b in itertools.product(
    ("Ald", "Bel", "Cor", "Dun", "Esk", "Fal", "Gar", "Hol", "Ivr", "Jor"),
    ("ford", "mere", "wick", "stead", "holm"))]
FOLLOWED = 50
POLLED = 20


def outage(town: str, homes: int, day: int) -> Document:
    """An article on ``town``'s power cut, dated ``day`` days ago."""
    text = (f"The number of homes without power in {town.title()} rose to {homes:,} on "
            f"Monday after the storm brought down lines across the valley, the utility said. "
            "Crews from three regions were working through the night, and schools stayed shut.")
    return Document(f"{town}-{day}", text, f"Storm cuts power in {town.title()}",
                    "Valley Times", published=str(date.today() - timedelta(days=day)),
                    date_source="feed")


def homes(n: int) -> int:
    """The new figure the poll brings for the ``n``-th town."""
    return 2_000 + 41 * n


def question(town: str) -> str:
    return f"How many homes are without power in {town.title()}?"


class Feed(http.server.BaseHTTPRequestHandler):
    """One RSS feed of ``items`` (the polled articles, their text as the summary)."""

    items: list[Document] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        entries = "".join(
            f"<item><title>{d.title}</title><guid isPermaLink='false'>{d.id}</guid>"
            f"<pubDate>{format_datetime(datetime.fromisoformat(d.published + 'T08:00+00:00'))}"
            "</pubDate>"
            f"<description>{d.text}</description></item>" for d in self.items)
        body = ("<?xml version='1.0'?><rss version='2.0'><channel><title>Valley Times</title>"
                f"{entries}</channel></rss>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


def cost(folder: Path) -> dict[str, float | int]:
    """The poll's seconds without and with ``FOLLOWED`` questions followed, and re-asks."""
    towns = TOWNS[:FOLLOWED]
    base = [outage(town, 1_000 + 37 * n, 2) for n, town in enumerate(towns)]
    Feed.items = [outage(town, homes(n), 1) for n, town in enumerate(towns[:POLLED])]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    times = {}
    fetcher = Fetcher(allow_private=True)
    plain = NewsQA(folder / "plain", fetcher=fetcher, remember_answers=0)
    plain.warm_up()
    followed = NewsQA(folder / "followed", fetcher=fetcher, embedder=plain.embedder,
                      reader=plain.reader, remember_answers=0)
    for qa in (plain, followed):
        qa.add(base)
        qa.subscribe(url)
    for town in towns:
        followed.follow(question(town))
    for name, qa in (("poll without follows", plain), (f"poll with {FOLLOWED} follows",
                                                        followed)):
        start = time.perf_counter()
        reports = qa.refresh_feeds()
        times[name] = time.perf_counter() - start
        assert sum(len(r.items.added) for r in reports) == POLLED, reports
    now = {f.question: f for f in followed.followed()}
    right = sum(normalize_answer(now[question(town)].latest.text) == str(homes(n))
                for n, town in enumerate(towns[:POLLED]))
    spurious = sum(now[question(town)].changes > 1 for town in towns[POLLED:])
    batched = following.REASK_THREADS
    for threads in (batched, 1):
        following.REASK_THREADS = threads
        start = time.perf_counter()
        followed._reask()
        times[f"re-ask {FOLLOWED}, {threads} at a time"] = time.perf_counter() - start
    following.REASK_THREADS = batched
    server.shutdown()
    plain.close()
    followed.close()
    times["polled towns whose latest entry is the new figure"] = right
    times["other towns with a change recorded (should be 0)"] = spurious
    return times


# (question, [(outlet, ISO date, text, the answer the history should then hold, or None when
# the article changes nothing)]). Articles of all stories arrive in date order, one a commit.
STORIES = [
    ("What is the death toll from the floods in Valdoria?", [
        ("Valdoria Post", "2025-06-02", "The death toll from the floods in Valdoria rose to 12 "
         "on Monday, officials said.", "12"),
        ("Valdoria Post", "2025-06-03", "The death toll from the floods in Valdoria rose to 19 "
         "on Tuesday, officials said.", "19"),
        ("Valdoria Post", "2025-06-04", "The death toll from the floods in Valdoria rose to 23 "
         "on Wednesday, officials said.", "23"),
        ("Coast Herald", "2025-06-05", "The death toll from the floods in Valdoria stood at 23 "
         "on Thursday, officials said, as the river began to fall.", None)]),
    ("What is the price of a litre of petrol in Norland?", [
        ("Norland Daily", "2025-06-02", "A litre of petrol in Norland cost 1.62 euros on "
         "Monday, the motoring club said.", "1.62 euros"),
        ("Norland Daily", "2025-06-06", "The price of a litre of petrol in Norland rose to 1.71 "
         "euros on Friday, the motoring club said.", "1.71 euros"),
        ("Motor Weekly", "2025-06-07", "Drivers in Norland paid 1.71 euros for a litre of petrol "
         "on Saturday, the motoring club said.", None),
        ("Norland Daily", "2025-06-12", "The price of a litre of petrol in Norland fell to 1.58 "
         "euros on Thursday, the motoring club said.", "1.58 euros")]),
    ("Who is the coach of the Harbour City Hawks?", [
        ("Sports Desk", "2025-06-01", "Anna Berg, the coach of the Harbour City Hawks, said "
         "her team was ready for the final.", "Anna Berg"),
        ("Sports Desk", "2025-06-09", "The Harbour City Hawks appointed Tomas Reed as their new "
         "coach on Monday, a week after Anna Berg resigned.", "Tomas Reed")]),
    ("How many people have been evacuated from around Mount Kelso?", [
        ("Island News", "2025-06-03", "Authorities have evacuated 3,000 people from around Mount "
         "Kelso since the volcano began to rumble, officials said on Tuesday.", "3,000"),
        ("Island News", "2025-06-04", "The number of people evacuated from around Mount Kelso "
         "rose to 8,500 on Wednesday, officials said.", "8,500"),
        ("Wire Service", "2025-06-05", "A total of 11,200 people have now been evacuated from "
         "around Mount Kelso, officials said on Thursday.", "11,200")]),
    ("At what level did the Central Bank of Ostria set its interest rate?", [
        ("Finance Today", "2025-06-04", "The Central Bank of Ostria set its interest rate at "
         "4.5 percent on Wednesday.", "4.5 percent"),
        ("Finance Today", "2025-06-11", "The Central Bank of Ostria cut its interest rate to "
         "4.25 percent on Wednesday, its first cut in two years.", "4.25 percent"),
        ("Market Wire", "2025-06-12", "The Central Bank of Ostria kept its interest rate at 4.25 "
         "percent, its governor told reporters on Thursday.", None)]),
    ("How many days has the strike at the Port of Velden lasted?", [
        ("Port Gazette", "2025-06-04", "The strike at the Port of Velden has lasted 3 days, and "
         "ships are queuing off the coast, the harbour master said.", "3 days"),
        ("Port Gazette", "2025-06-10", "The strike at the Port of Velden has now lasted 9 days, "
         "the union said on Tuesday.", "9 days"),
        ("Port Gazette", "2025-06-16", "The strike at the Port of Velden has lasted 15 days, "
         "the longest in its history, the union said on Monday.", "15 days")]),
    ("Who leads the Green Party of Tarsia?", [
        ("Tarsia Times", "2025-06-02", "Elena Moss, who leads the Green Party of Tarsia, called "
         "for new elections on Monday.", "Elena Moss"),
        ("Capital Post", "2025-06-06", "The Green Party of Tarsia, led by Elena Moss, gained "
         "three seats in the regional vote.", None),
        ("Tarsia Times", "2025-06-13", "Victor Hale was elected to lead the Green Party of "
         "Tarsia on Friday after Elena Moss stepped down.", "Victor Hale")]),
]
DISTRACTORS = [  # articles that answer no followed question: they must change nothing
    ("Garden Weekly", "2025-06-03", "The summer flower show opened on Tuesday with roses from "
     "forty growers, and the judges praised the yellow varieties."),
    ("Sports Desk", "2025-06-08", "The city marathon was won by a runner from the coast in two "
     "hours and eleven minutes, a course record."),
]


def same(wanted: str, got: str) -> bool:
    """Normalised answers that are equal, or one the other with more words ("9" and "9 days"),
    the rule by which the answer tells two answers apart (``qa.answer.disagreement``)."""
    return f" {wanted} " in f" {got} " or f" {got} " in f" {wanted} "


def this_month(day: str) -> str:
    """A story's date ("2025-06-DD") moved to the last 20 days: followed questions are asked
    about the current state, as of today, where recent articles count more (``qa.recency``)."""
    return str(date.today() - timedelta(days=20 - int(day[8:10])))


def stories(folder: Path) -> dict[str, int]:
    """Commit each story article in date order; compare each history with its script."""
    qa = NewsQA(folder / "stories", remember_answers=0)
    qa.add([Document("seed", "The town library will open on Sundays from July, the council "
                     "said.", "Library hours", "Town Hall")])
    ids = {q: qa.follow(q).id for q, _ in STORIES}
    arrivals = sorted([(day, outlet, text, q) for q, steps in STORIES
                       for outlet, day, text, _ in steps]
                      + [(day, outlet, text, None) for outlet, day, text in DISTRACTORS])
    for n, (day, outlet, text, _) in enumerate(arrivals):
        qa.add([Document(f"a{n}", text, text[:40], outlet, published=this_month(day),
                         date_source="feed")])
    expected = right = recorded = 0
    for q, steps in STORIES:
        wanted = [normalize_answer(a) for *_, a in steps if a is not None]
        got = [normalize_answer(e.text) for e in qa.history(ids[q]) if e.found]
        expected, recorded = expected + len(wanted), recorded + len(got)
        matched = sum(same(w, g) for w, g in zip(wanted, got))
        right += matched
        if not matched == len(wanted) == len(got):
            error = next(f.error for f in qa.followed() if f.id == ids[q])
            print(f"  {q}\n    expected {wanted}\n    recorded {got}"
                  + (f"\n    its last error: {error}" if error else ""))
    qa.close()
    return {"expected changes": expected, "entries recorded": recorded,
            "recorded correctly": right}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        times = cost(Path(folder))
        plain, followed = (times["poll without follows"],
                           times[f"poll with {FOLLOWED} follows"])
        print(f"| measure ({POLLED} new articles a poll) | value |\n| --- | --- |")
        for name, value in times.items():
            print(f"| {name} | {value:.2f} s |" if isinstance(value, float) else
                  f"| {name} | {value} of {POLLED if 'polled' in name else FOLLOWED - POLLED} |")
        print(f"| time re-asking added to the poll | {followed - plain:.2f} s "
              f"({(followed - plain) / FOLLOWED * 1000:.0f} ms a question) |")
        counts = stories(Path(folder))
        share = counts["recorded correctly"] / counts["expected changes"]
        print(f"| story set: changes recorded correctly | {counts['recorded correctly']} of "
              f"{counts['expected changes']} ({share:.0%}); {counts['entries recorded']} "
              "entries recorded |")
        print(f"(whole run {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
