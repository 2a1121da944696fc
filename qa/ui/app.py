"""The Gradio chat app: ask about the indexed articles, see the quoted passage, manage the sources.

This is the only module that imports gradio, and it calls nothing but the ``NewsQA`` facade.
Article text, titles, sources and URLs are untrusted (uploaded HTML, fetched pages), so every
string is HTML-escaped before it is rendered and links are made only for http(s) URLs.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import gradio as gr
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.errors import NewsQAError, clip
from qa.ingest.fetch import Fetcher
from qa.pipeline import AddReport, FeedReport, NewsQA
from qa.recency import date_phrase
from qa.resources import SEEDS
from qa.types import Answer, Citation

MAX_UPLOAD = "10mb"  # per file, enforced by gradio before a file reaches the ingest layer
MAX_UPLOAD_REQUEST_MB = 20  # per upload request: gradio caps each file, not how many are sent
# Per other request (a question, an event, an API call), read before anything parses it. The
# largest is a question from the chat, which sends the whole conversation along (about 2 KB a
# reply): hundreds of questions fit.
MAX_REQUEST_MB = 1
UPLOAD_TYPES = [".txt", ".md", ".html", ".htm", ".json", ".jsonl", ".xml", ".rss", ".atom"]
PASSAGE_CONTEXT = 200  # characters of the cited passage shown on each side of the quote
MAX_CITATIONS = 3  # passages shown per answer; more would bury the conversation
# Questions from the chat and from /ask share one queue with this many running at once: the
# retrieval step is serialised by the facade, and the reader coalesces the reads that arrive
# together into one model batch, so several in flight raise throughput on a small CPU. At 50
# clients on 2 cores (benchmarks/load.py, alternating runs), 16 beat 8 (distinct questions p95
# 5.3-5.4 against 5.4-5.7 s), and 32 or 50 let the slowest wait longer behind bigger batches
# (distinct p95 4.9-5.3 s against 4.0-4.5 s for 16); more only holds memory for waiting requests.
QUESTIONS = {"concurrency_id": "questions", "concurrency_limit": 16}
MAX_QUEUED = 256  # requests waiting in all; 50 clients asking at once fit with room to spare
# Gradio recomputes a pandas summary of its last 10,000 queue events after every event, for a
# monitoring dashboard this app does not enable (2.5-9.5 ms of CPU each time, holding the GIL):
# at 50 clients, cached answers went from 59 to 95-119 a second without it (benchmarks/load.py).
# It is recomputed once per this many events instead (GRADIO_ANALYTICS_CACHE_FREQUENCY; a value
# set in the environment wins).
ANALYTICS_EVERY = 10_000
LISTED_TITLES = 10  # added articles named in the status line; a whole feed would drown it
NOT_FOUND = "I couldn't find the answer in the indexed articles."
DATE_HINT = "YYYY-MM-DD (or YYYY-MM, YYYY)"
TABLE_HEADERS = ["title", "source", "date", "chunks", "id"]
FEED_HEADERS = ["feed", "url", "last poll", "last success", "items", "last error"]
SOURCES_HINT = "Answer only from articles of these sources."
NO_SOURCES = "No indexed article names its source, so there is nothing to filter by yet."
QUESTION_LINES = 4  # the question box grows to this many lines, then scrolls
History = list[tuple[str, str]]

# Runs in the browser after each question: the chat shows the new question at its top (not the
# end of a long reply), and the page scrolls just enough to show it and the answer below it,
# which at phone width sits above the Ask button the user just pressed. It waits (a few frames at
# most) until the chat has drawn every question it was given.
SHOW_ANSWER = """async (messages) => {
  const asked = messages.filter((message) => message.role === "user").length;
  const questions = () => document.querySelectorAll("#nqa-chat .nqa-question");
  for (let frame = 0; frame < 100 && questions().length < asked; frame++) {
    await new Promise(requestAnimationFrame);
  }
  const question = [...questions()].pop();
  const answer = [...document.querySelectorAll("#nqa-chat .nqa-reply > p:first-child")].pop();
  if (!question || !answer) return;
  const y = window.scrollY;
  question.scrollIntoView({block: "start", behavior: "instant"});  // scrolls the chat, and
  window.scrollTo({top: y, behavior: "instant"});  // the page back where it was
  question.scrollIntoView({block: "nearest", behavior: "instant"});
  answer.scrollIntoView({block: "nearest", behavior: "instant"});
}"""

CSS = """
.nqa-reply p { margin: 0 0 .5em 0; }
.nqa-answer { font-size: 1.15em; }
.nqa-score { color: var(--body-text-color-subdued); font-size: .9em; margin-left: .4em; }
.nqa-passage { border-left: 3px solid var(--color-accent); margin: .4em 0; padding: .3em .8em;
               color: var(--body-text-color); }
.nqa-passage mark { background: #fde68a; color: #1f2937; padding: 0 .15em; border-radius: 3px; }
.nqa-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .4em .7em;
            margin: .2em 0 .8em 0; }
.nqa-meta { color: var(--body-text-color-subdued); font-size: .85em; }
.nqa-reply details { margin-top: .4em; }
.nqa-reply summary { cursor: pointer; color: var(--body-text-color-subdued); }
#nqa-chat .nqa-question { scroll-margin-top: 3em; }  /* SHOW_ANSWER: clear of the bin icon */
"""
# System fonts: the app runs offline, so a web font would be a failed request and a fallback.
THEME = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate",
                       font=["ui-sans-serif", "system-ui", "sans-serif"],
                       font_mono=["ui-monospace", "monospace"])


# ---- rendering (pure functions: untrusted text in, escaped HTML out) -----------------------
def esc(text: str) -> str:
    """Escape untrusted text; newlines become <br> so the chat's markdown never sees a blank line
    (a blank line would end the HTML block and let markdown reinterpret the article text)."""
    return html.escape(text).replace("\r", "").replace("\n", "<br>")


def link(url: str, label_html: str) -> str:
    """``label_html`` linked to ``url`` if it is http(s); javascript:, data:, file: stay text."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return label_html
    href = html.escape(url.strip(), quote=True)
    return f'<a href="{href}" target="_blank" rel="noopener noreferrer nofollow">{label_html}</a>'


def highlight(citation: Citation) -> str:
    """The cited passage around the quote, the quote in <mark>; located by offsets, never by
    searching, because the same words can occur earlier in the passage."""
    if not citation.passage:
        return f"<mark>{esc(citation.quote)}</mark>"
    start = citation.start - citation.passage_start
    end = citation.end - citation.passage_start
    before = citation.passage[max(0, start - PASSAGE_CONTEXT):start]
    after = citation.passage[end:end + PASSAGE_CONTEXT]
    if start > PASSAGE_CONTEXT:  # cut at a word boundary rather than mid-word
        before = "…" + before.partition(" ")[2]
    if end + PASSAGE_CONTEXT < len(citation.passage):
        after = after.rpartition(" ")[0] + "…"
    return f"{esc(before)}<mark>{esc(citation.passage[start:end])}</mark>{esc(after)}"


def title_link(citation: Citation) -> str:
    """The cited article's title, linked when the article has a web address."""
    return link(citation.url, esc(citation.title or citation.doc_id))


def by_article(citations: Sequence[Citation]) -> list[list[Citation]]:
    """The citations grouped by article, in the order each article is first cited."""
    groups: dict[str, list[Citation]] = {}
    for citation in citations:
        groups.setdefault(citation.doc_id, []).append(citation)
    return list(groups.values())


def source_card(citations: Sequence[Citation]) -> str:
    """One card per cited article: its title, source and date once, then each passage quoted
    from it, so two quotes from one article do not repeat its title."""
    first = citations[0]
    meta = " · ".join(esc(x) for x in (first.source, first.date_label) if x)
    meta_html = f'<div class="nqa-meta">{meta}</div>' if meta else ""
    passages = "".join(f'<blockquote class="nqa-passage">{highlight(c)}</blockquote>'
                       for c in citations)
    return f'<div class="nqa-card"><strong>{title_link(first)}</strong>{meta_html}{passages}</div>'


def candidates(summary: str, answers: Sequence[Answer]) -> str:
    """Other candidate answers, folded so they do not compete with the answer itself."""
    if not answers:
        return ""
    items = "".join(
        f"<li><strong>{esc(a.text)}</strong> <span class='nqa-score'>{a.score:.0%}</span>"
        + (f"<div class='nqa-meta'>{title_link(a.citations[0])}</div>" if a.citations else "")
        + "</li>"
        for a in answers)
    return f"<details><summary>{summary} ({len(answers)})</summary><ul>{items}</ul></details>"


def resolved(resolved_date: str) -> str:
    """The absolute date of a relative-date answer, marked apart from the quote."""
    if not resolved_date:
        return ""
    return f" <span class='nqa-resolved'>({esc(date_phrase(resolved_date))})</span>"


def sources_differ(citations: Sequence[Citation]) -> str:
    """Each article's different answer side by side, newest first, with its outlet and date."""
    if not citations:
        return ""
    cells = "".join(
        f"<div class='nqa-card' style='flex:1 1 0;min-width:10em'>"
        f"<strong>{esc(c.quote)}</strong>{resolved(c.resolved_date)}"
        f"<div class='nqa-meta'>{' · '.join(esc(x) for x in (c.source, c.date_label) if x)}"
        f"</div><div class='nqa-meta'>{title_link(c)}</div></div>"
        for c in citations)
    return (f"<div class='nqa-differ'><p><strong>Sources differ</strong></p>"
            f"<div style='display:flex;gap:.5em;flex-wrap:wrap'>{cells}</div></div>")


def render_answer(answer: Answer) -> str:
    """One chat reply as a single-line HTML block."""
    if not answer.found:
        body = (f"<p>{NOT_FOUND}</p>"
                + candidates("Possible answers — low confidence, not supported well enough",
                             answer.alternatives))
    else:
        body = (f"<p class='nqa-answer'><strong>{esc(answer.text)}</strong>"
                + resolved(answer.resolved_date)
                + f"<span class='nqa-score'>{answer.score:.0%} confidence</span></p>"
                + sources_differ(answer.disagreement)
                + "".join(source_card(group)
                          for group in by_article(answer.citations[:MAX_CITATIONS]))
                + candidates("Other candidate answers", answer.alternatives))
    return f'<div class="nqa-reply">{body}</div>'


def describe(report: AddReport, titles: dict[str, str]) -> str:
    """What an upload or URL added, and what it could not read, as escaped HTML for the status
    line; the inputs that failed come first, as they are what needs the reader's attention."""
    lines = [f"⚠ {esc(error)}" for error in report.errors[:LISTED_TITLES]]
    if len(report.errors) > LISTED_TITLES:
        lines.append(f"⚠ … and {len(report.errors) - LISTED_TITLES} more not read.")
    if report.added:
        lines.append(f"Added {len(report.added)} article(s), {report.chunks} passage(s):")
        lines += [f"• {esc(titles.get(i, i))}" for i in report.added[:LISTED_TITLES]]
    if len(report.added) > LISTED_TITLES:
        lines.append(f"• … and {len(report.added) - LISTED_TITLES} more (see the table).")
    if report.unchanged:
        lines.append(f"{len(report.unchanged)} already indexed, not added again.")
    lines += [f"Near-duplicate not indexed: {esc(title)} "
              f"(same story as {esc(titles.get(kept, kept))})."
              for title, kept in report.near_duplicates]
    return "<br>".join(lines)


def describe_feeds(reports: Sequence[FeedReport], index_dir: Path) -> str:
    """What a refresh of the feeds did, one line a feed and one a problem, as escaped HTML."""
    if not reports:
        return "No feeds yet: subscribe to one above."
    lines = []
    for report in reports:
        items = report.items
        if report.error:
            lines.append(f"⚠ {esc(shown(NewsQAError(report.error), index_dir))}")
        elif report.not_modified:
            lines.append(f"{esc(report.url)}: not modified since the last refresh.")
        else:
            lines.append(f"{esc(report.url)}: {len(items.added)} new article(s), "
                         f"{len(items.unchanged) + len(items.near_duplicates)} already indexed.")
        lines += [f"⚠ {esc(error)}" for error in items.errors[:LISTED_TITLES]]
    return "<br>".join(lines)


def _when(timestamp: str) -> str:
    """An index time (ISO 8601, UTC) to the minute, or "never"."""
    return f"{timestamp[:16].replace('T', ' ')} UTC" if timestamp else "never"


def shown(error: NewsQAError, index_dir: Path) -> str:
    """The error as the page shows it: the index folder by its name, not by its server path.

    Upload errors already name files by their names, and URL errors name only the URL.
    """
    message = str(error)
    forms = {str(index_dir.absolute()), str(index_dir.resolve())}
    if len(index_dir.parts) > 1:  # a bare name such as "index" is no path, and too common a word
        forms.add(str(index_dir))
    for form in sorted(forms, key=len, reverse=True):  # the longest first: it contains the others
        message = message.replace(form, index_dir.resolve().name)
    return message


class RequestGuard:
    """Bounds every request body before the app reads it, and lets events name only uploaded
    files.

    An upload (a multipart body) must declare its length, at most ``MAX_UPLOAD_REQUEST_MB``:
    gradio's ``max_file_size`` caps each file, so one request could carry a thousand of them,
    and the HTTP server holds the client to the declared length. Any other body (a question, an
    event, a JSON API call) is read here, at most ``MAX_REQUEST_MB``: a declared length over it
    is refused at once, and a body that declares none (chunked) is counted as it arrives and cut
    off at the cap, never held whole.

    Gradio copies every file an event names (a ``FileData``) into its cache before any handler
    runs, and downloads it with its own client when its ``path`` is a URL: none of the
    ``Fetcher``'s rules (through a proxy, private addresses too), any size, at any pace. So a
    file must be named by a path inside gradio's upload folder, where ``/gradio_api/upload`` put
    it; an event naming any other is refused before gradio sees it. (The ``url`` the browser
    sends with a file is the file's link on this app, read by gradio only in an app that
    ``gr.load`` made.)
    """

    def __init__(self, app: ASGIApp, uploads: str) -> None:
        self.app = app
        self.uploads = Path(uploads).resolve()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        # gradio's own test for a multipart body: anything else may be parsed as JSON
        if headers.get(b"content-type", b"").startswith(b"multipart/form-data"):
            if length is None:
                await refuse(411, "An upload must declare its length (Content-Length).",
                             scope, receive, send)
            elif not length.isdigit() or int(length) > MAX_UPLOAD_REQUEST_MB * 2**20:
                await refuse(413, f"An upload may hold at most {MAX_UPLOAD_REQUEST_MB} MB in "
                             "all; upload fewer files at once.", scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        too_big = f"A request other than an upload may hold at most {MAX_REQUEST_MB} MB."
        if length is not None and (not length.isdigit() or int(length) > MAX_REQUEST_MB * 2**20):
            await refuse(413, too_big, scope, receive, send)
            return
        body = await read_body(receive, MAX_REQUEST_MB * 2**20)
        if body is None:
            await refuse(413, too_big, scope, receive, send)
            return
        problem = foreign_file(body, self.uploads)
        if problem:
            await refuse(400, problem, scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)


async def refuse(status: int, message: str, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer the request with ``message``, one line, and close the connection (a body left
    unread is not drained either); the app never sees the request."""
    response = PlainTextResponse(message, status_code=status, headers={"Connection": "close"})
    await response(scope, receive, send)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request's body; None once more than ``limit`` bytes arrive (the rest is never read),
    or if the client goes away first (the refusal then reaches no one)."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        size += len(message.get("body", b""))
        if size > limit:
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: ``body`` as it was read, then what the client does next (a
    disconnect, which streaming responses listen for)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def again() -> Message:
        return pending.pop() if pending else await receive()
    return again


def foreign_file(body: bytes, uploads: Path) -> str | None:
    """Why ``body`` is refused if, as JSON, it names a file (a dict gradio treats as a
    ``FileData``) outside ``uploads``; None if it names none, or is no JSON (gradio refuses
    that). JSON nested too deeply to read is refused too, as it cannot be checked."""
    try:
        stack = [json.loads(body)]
    except RecursionError:
        return "The request's JSON is nested too deeply."
    except ValueError:
        return None
    while stack:  # a loop, not recursion: the JSON may be nested as deep as the parser allows
        value = stack.pop()
        if isinstance(value, dict):
            meta, path = value.get("meta"), value.get("path")
            if (isinstance(meta, dict) and meta.get("_type") == "gradio.FileData"
                    and not uploaded(path, uploads)):
                return (f"{clip(repr(path))} is not a file uploaded to this app: files are "
                        "never fetched from a URL or read from a server path.")
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def uploaded(path: object, uploads: Path) -> bool:
    """Whether ``path`` is an absolute path (as ``/gradio_api/upload`` returns; a URL is not)
    inside ``uploads`` once links and ".." are resolved, as gradio resolves it."""
    if not isinstance(path, str) or not os.path.isabs(path):
        return False
    try:
        return uploads in Path(path).resolve().parents
    except (OSError, ValueError):  # a NUL byte, say
        return False


# ---- the app -------------------------------------------------------------------------------
def build_app(qa: NewsQA, *, top_k: int | None = None) -> gr.Blocks:
    """The Chat and Sources tabs over ``qa``, plus an ``/ask`` API endpoint for programs;
    ``top_k`` passages a question by default (None: ``qa.config.top_k``)."""
    top_k = qa.config.top_k if top_k is None else top_k

    def source_views() -> tuple[list[list[Any]], gr.Dropdown, gr.Dropdown]:
        docs = qa.documents()
        rows = [[d.title, d.source, d.published[:10] or "undated", d.chunks, d.id] for d in docs]
        sources = sorted({d.source for d in docs if d.source})
        articles = [(f"{d.title or '(untitled)'} — {d.id}", d.id) for d in docs]
        # An empty list that opens would look broken: say why there is nothing to choose.
        source_filter = gr.Dropdown(choices=sources, interactive=bool(sources),
                                    info=SOURCES_HINT if sources else NO_SOURCES)
        return rows, source_filter, gr.Dropdown(choices=articles, value=None)

    def respond(question: str, messages: list, history: History, k: float, threshold: float,
                sources: list[str] | None, date_from: str,
                date_to: str, as_of: str) -> tuple[list, History, str]:
        try:
            answer = qa.ask(question, int(k), threshold=threshold / 100, sources=sources or None,
                            date_from=date_from.strip() or None, date_to=date_to.strip() or None,
                            history=history, as_of=as_of.strip() or None)
        except NewsQAError as error:
            gr.Warning(shown(error, qa.index_dir))
            return messages, history, question
        messages = messages + [{"role": "user",
                                "content": f'<p class="nqa-question">{esc(answer.question)}</p>'},
                               {"role": "assistant", "content": render_answer(answer)}]
        return messages, history + [(answer.question, answer.text)], ""

    # The Sources tab reports in its status line, never in toasts: a toast outlives the tab and
    # piles up over the Chat tab.
    def failed(error: NewsQAError) -> tuple:
        return (f"⚠ {esc(shown(error, qa.index_dir))}", *source_views())

    def added(report: AddReport) -> tuple:
        titles = {d.id: d.title for d in qa.documents()}
        return (describe(report, titles), *source_views())

    # ``progress`` is unused by name: gradio sees it and shows the facade's tqdm bar in the page.
    def add_files(paths: list[str] | None, progress=gr.Progress(track_tqdm=True)) -> tuple:
        if not paths:
            return ("⚠ Choose one or more files to upload first.", *source_views(), None)
        try:  # only the uploaded files themselves: never a folder or a link
            return (*added(qa.add_uploads(paths, progress=True)), None)
        except NewsQAError as error:
            return (*failed(error), None)

    def add_url(url: str, progress=gr.Progress(track_tqdm=True)) -> tuple:
        if not url.strip():
            return ("⚠ Type the address of an article or feed first.", *source_views(), url)
        try:  # http(s) only: a local path typed here must read nothing and reveal nothing
            return (*added(qa.add_urls([url.strip()], progress=True)), "")
        except NewsQAError as error:
            return (*failed(error), url)

    def delete(doc_id: str | None) -> tuple:
        if not doc_id:
            return ("⚠ Choose an article to delete first.", *source_views())
        try:
            title = qa.get(doc_id).title or doc_id
            qa.delete(doc_id)
        except NewsQAError as error:
            return failed(error)
        return (f"Deleted {esc(title)}.", *source_views())

    def feed_rows() -> list[list[Any]]:
        return [[f.title or "(not polled yet)", f.url, _when(f.last_poll), _when(f.last_success),
                 f.items_seen, f.last_error] for f in qa.feeds()]

    def subscribe(url: str) -> tuple:
        if not url.strip():
            return "⚠ Type the address of an RSS or Atom feed first.", feed_rows(), url
        try:
            new = qa.subscribe(url)
        except NewsQAError as error:
            return f"⚠ {esc(shown(error, qa.index_dir))}", feed_rows(), url
        said = "Subscribed to" if new else "Already subscribed to"
        return f"{said} {esc(url.strip())}: Refresh now fetches its articles.", feed_rows(), ""

    def refresh(progress=gr.Progress(track_tqdm=True)) -> tuple:
        try:
            reports = qa.refresh_feeds()
        except NewsQAError as error:
            return (f"⚠ {esc(shown(error, qa.index_dir))}", feed_rows(), *source_views())
        return (describe_feeds(reports, qa.index_dir), feed_rows(), *source_views())

    def ask_api(question: str, top_k: int = top_k) -> dict:
        """Answer a question from the indexed articles: the answer, its score and citations."""
        try:
            return qa.ask(question, top_k).to_dict()  # the JSON as sent: the facade checks it
        except NewsQAError as error:
            raise gr.Error(shown(error, qa.index_dir), print_exception=False) from None

    with gr.Blocks(title="newsqa", analytics_enabled=False) as app:
        gr.Markdown("# newsqa\nAsk about the indexed news articles — every answer is quoted "
                    "from them, with its source.")
        history = gr.State([])
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row():
                    with gr.Column(scale=3):
                        # No label: gradio floats it over the messages, where it hides them.
                        # No autoscroll to the bottom of a long reply: SHOW_ANSWER scrolls to
                        # the question and its answer instead.
                        chat = gr.Chatbot(label="Conversation", show_label=False, height=600,
                                          autoscroll=False, latex_delimiters=[],
                                          buttons=["copy"], feedback_options=None,
                                          elem_id="nqa-chat",
                                          placeholder="Ask a question about the articles in "
                                                      "the **Sources** tab.")
                        with gr.Row():
                            question = gr.Textbox(show_label=False, scale=5, autofocus=True,
                                                  max_lines=QUESTION_LINES,
                                                  elem_id="nqa-question",
                                                  placeholder="e.g. How many POWs were on the "
                                                              "first list?")
                            send = gr.Button("Ask", variant="primary", scale=1,
                                             elem_id="nqa-ask")
                        new_chat = gr.Button("New conversation", size="sm", variant="secondary")
                    with gr.Column(scale=1, min_width=240):
                        with gr.Accordion("Settings", open=True):
                            k = gr.Slider(1, 20, value=top_k, step=1,
                                          label="Passages to read (top-k)")
                            # In %, as the replies show confidence; the facade takes 0-1.
                            threshold = gr.Slider(0, 100, step=0.1, elem_id="nqa-threshold",
                                                  value=round(qa.threshold * 100, 1),
                                                  label="Answer threshold (%)",
                                                  info="Below this confidence, say not found.")
                            sources = gr.Dropdown(multiselect=True, label="Only these sources",
                                                  elem_id="nqa-sources")
                            date_from = gr.Textbox(label="Published from", placeholder=DATE_HINT,
                                                   elem_id="nqa-date-from")
                            date_to = gr.Textbox(label="Published until", placeholder=DATE_HINT)
                            as_of = gr.Textbox(label="As of (for “latest” questions)",
                                               placeholder=DATE_HINT, elem_id="nqa-as-of",
                                               info="Empty: today.")
            with gr.Tab("Sources", id="sources"):  # the controls and their status first:
                with gr.Row():                        # a long table would push them down
                    with gr.Column():
                        files = gr.File(label="Upload articles (txt, md, html, json, jsonl, "
                                              "RSS/Atom; up to 10 MB a file, "
                                              f"{MAX_UPLOAD_REQUEST_MB} MB at once)",
                                        file_count="multiple",
                                        file_types=UPLOAD_TYPES, elem_id="nqa-files")
                        upload = gr.Button("Add files", variant="primary", elem_id="nqa-upload")
                    with gr.Column():
                        url = gr.Textbox(label="Article or feed URL", placeholder="https://…",
                                         elem_id="nqa-url")
                        fetch = gr.Button("Add URL", variant="primary")
                        doomed = gr.Dropdown(label="Delete an article", elem_id="nqa-doomed")
                        remove = gr.Button("Delete", variant="stop")
                status = gr.HTML(elem_id="nqa-status", js_on_load=None)
                table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True,
                                     label="Indexed articles", elem_id="nqa-table",
                                     column_widths=["40%", "15%", "12%", "8%", "25%"])
            with gr.Tab("Feeds", id="feeds") as feeds_tab:
                with gr.Row():
                    feed_url = gr.Textbox(label="RSS or Atom feed URL", placeholder="https://…",
                                          elem_id="nqa-feed-url", scale=4)
                    follow = gr.Button("Subscribe", variant="primary", scale=1,
                                       elem_id="nqa-subscribe")
                    poll_now = gr.Button("Refresh now", scale=1, elem_id="nqa-refresh")
                feed_status = gr.HTML(elem_id="nqa-feed-status")
                feed_table = gr.Dataframe(headers=FEED_HEADERS, interactive=False, wrap=True,
                                          label="Subscribed feeds", elem_id="nqa-feeds",
                                          column_widths=["14%", "20%", "13%", "13%", "6%",
                                                         "34%"])

        views = [table, sources, doomed]
        settings = [k, threshold, sources, date_from, date_to, as_of]
        chat_io = dict(**QUESTIONS, fn=respond, inputs=[question, chat, history, *settings],
                       outputs=[chat, history, question], api_visibility="private")
        for asked in (question.submit(**chat_io), send.click(**chat_io)):
            asked.then(None, inputs=chat, js=SHOW_ANSWER, api_visibility="private")
        new_chat.click(lambda: ([], []), outputs=[chat, history], api_visibility="private")
        chat.clear(lambda: [], outputs=history, api_visibility="private")  # the chat's bin icon
        upload.click(add_files, inputs=files, outputs=[status, *views, files],
                     api_visibility="private")
        fetch.click(add_url, inputs=url, outputs=[status, *views, url], api_visibility="private")
        url.submit(add_url, inputs=url, outputs=[status, *views, url], api_visibility="private")
        remove.click(delete, inputs=doomed, outputs=[status, *views], api_visibility="private")
        app.load(source_views, outputs=views, api_visibility="private")
        for subscribed in (follow.click, feed_url.submit):
            subscribed(subscribe, inputs=feed_url, outputs=[feed_status, feed_table, feed_url],
                       api_visibility="private")
        poll_now.click(refresh, outputs=[feed_status, feed_table, *views],
                       api_visibility="private")
        # a background refresh (serve --watch) shows when the tab is opened
        feeds_tab.select(feed_rows, outputs=feed_table, api_visibility="private")
        app.load(feed_rows, outputs=feed_table, api_visibility="private")
        gr.api(ask_api, api_name="ask", **QUESTIONS)
    # Writes (upload, URL, delete) keep Gradio's default of one at a time; questions share one
    # queue (see QUESTIONS); beyond MAX_QUEUED waiting requests a client is told the app is busy
    # at once, rather than waiting minutes.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(ANALYTICS_EVERY))
    app.queue(max_size=MAX_QUEUED)
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, *,
           block: bool = True) -> str:
    """Serve ``app`` with its theme and request limits; returns the local URL."""
    _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
                           theme=THEME, css=CSS, max_file_size=MAX_UPLOAD, ssr_mode=False,
                           footer_links=["api"],
                           app_kwargs={"middleware": [Middleware(RequestGuard,
                                                                 uploads=app.GRADIO_CACHE)]})
    return url


def seed(qa: NewsQA, seeds: Path | None) -> None:
    """On first start (empty index) index the shipped articles, showing a progress bar."""
    if seeds is None or qa.documents():
        return
    print(f"The index is empty: indexing {seeds} …", flush=True)
    report = qa.add_paths([seeds], progress=True)
    print(f"Indexed {len(report.added)} article(s), {report.chunks} passage(s).", flush=True)


def serve(index_dir: str | Path = "index", host: str = "127.0.0.1", port: int | None = None, *,
          allow_private_urls: bool = False, seeds: Path | None = SEEDS,
          watch: str | None = None,
          on_refresh: Callable[[list[FeedReport]], object] | None = None) -> None:
    """Open (or create) the index, seed it if empty, load the models and serve the app; with
    ``watch`` (an interval such as "15m"), refresh the subscribed feeds in the background,
    giving each round's reports to ``on_refresh`` (the CLI prints them on the server's
    console; each feed's last error also shows in the Feeds tab)."""
    qa = NewsQA(index_dir, fetcher=Fetcher(allow_private=allow_private_urls))
    seed(qa, seeds)
    qa.warm_up()
    if watch:
        qa.watch_in_background(watch, on_refresh=on_refresh)
    launch(build_app(qa), host, port)
