"""The Gradio chat app: ask about the indexed articles, see the quoted passage, manage the sources.

This module and the Following tab's builder (``qa.ui.following``) are the only ones that import
gradio, and they call nothing but the ``NewsQA`` facade.
Every string it shows is rendered by ``qa.ui.render`` and ``qa.ui.sources`` (escaped; links for
http(s) only), the conversation's download by ``qa.ui.export``, and every request passes
``qa.ui.guard`` first. The event handlers are the named functions inside ``build_app``, each
closing over the facade it serves.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from starlette.middleware import Middleware

from qa.errors import NewsQAError
from qa.ingest.fetch import Fetcher
from qa.pipeline import NewsQA, OnChange
from qa.resources import SEEDS
from qa.store.base import DocumentInfo
from qa.types import AddReport, Answer, Document, FeedReport
from qa.ui.export import conversation_file
from qa.ui.following import following_tab
from qa.ui.guard import MAX_UPLOAD_REQUEST_MB, RequestGuard
from qa.ui.render import describe, describe_feeds, esc, render_answer, shown, when
from qa.ui.sources import (HEADERS, ID_COLUMN, INTRO, WIDTHS, count_line, intro, matching,
                           newest_first, rows)

MAX_UPLOAD = "10mb"  # per file, enforced by gradio before a file reaches the ingest layer
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
DATE_HINT = "YYYY-MM-DD (or YYYY-MM, YYYY)"
FEED_HEADERS = ["feed", "url", "last poll", "last success", "items", "last error"]
SOURCES_HINT = "Answer only from articles of these sources."
NO_SOURCES = "No indexed article names its source, so there is nothing to filter by yet."
NOTHING_TO_SAVE = "Nothing to download yet: ask a question first."
QUESTION_LINES = 4  # the question box grows to this many lines, then scrolls
# The chat is as tall as the screen leaves room for above the question box, at most 600 px, so
# the Ask button starts on screen (at phone width, CSS gives the box and the button under it
# the room they take there).
CHAT_HEIGHT = "min(600px, max(16rem, calc(100dvh - 17rem)))"
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

# Saves the conversation file that ``qa.ui.export.conversation_file`` made, in the browser: the
# server writes no file, and a download button would send the file of the click before.
SAVE_FILE = """(file) => {
  if (!file) return;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([file.text], {type: file.type}));
  link.download = file.name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
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
/* CHAT_HEIGHT at phone width: the question box is narrower there, and the Ask button under it */
@media (max-width: 640px) {
  #nqa-chat { height: max(14rem, calc(100dvh - 23rem)) !important; }
}
"""
# System fonts: the app runs offline, so a web font would be a failed request and a fallback.
THEME = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate",
                       font=["ui-sans-serif", "system-ui", "sans-serif"],
                       font_mono=["ui-monospace", "monospace"])


# ---- the app -------------------------------------------------------------------------------
def build_app(qa: NewsQA, *, top_k: int | None = None) -> gr.Blocks:
    """The Chat, Sources, Feeds and Following tabs over ``qa``, plus an ``/ask`` API endpoint for
    programs; ``top_k`` passages a question by default (None: ``qa.config.top_k``)."""
    top_k = qa.config.top_k if top_k is None else top_k

    def table_views(docs: list[DocumentInfo], query: str | None) -> tuple[str, list[list[Any]]]:
        query = query or ""  # None while the Sources tab was never opened (gradio draws it then)
        found = matching(docs, query)
        return count_line(len(found), len(docs), query), rows(found)

    def source_views(query: str | None = "") -> tuple:
        """The Chat tab's intro, the table (narrowed by ``query``) and its count, the source
        filter and the articles to delete: everything that shows what is indexed."""
        docs = newest_first(qa.documents())
        sources = sorted({d.source for d in docs if d.source})
        articles = [(f"{d.title or '(untitled)'} — {d.id}", d.id) for d in docs]
        # An empty list that opens would look broken: say why there is nothing to choose.
        source_filter = gr.Dropdown(choices=sources, interactive=bool(sources),
                                    info=SOURCES_HINT if sources else NO_SOURCES)
        return (intro(len(docs)), *table_views(docs, query), source_filter,
                gr.Dropdown(choices=articles, value=None))

    def search(query: str | None) -> tuple[str, list[list[Any]]]:
        return table_views(newest_first(qa.documents()), query)

    def respond(question: str, messages: list, history: History, answers: list[Answer],
                k: float, threshold: float, sources: list[str] | None, date_from: str,
                date_to: str, as_of: str) -> tuple[list, History, list[Answer], str]:
        try:
            answer = qa.ask(question, int(k), threshold=threshold / 100, sources=sources or None,
                            date_from=date_from.strip() or None, date_to=date_to.strip() or None,
                            history=history, as_of=as_of.strip() or None)
        except NewsQAError as error:
            gr.Warning(shown(error, qa.index_dir))
            return messages, history, answers, question
        messages = messages + [{"role": "user",
                                "content": f'<p class="nqa-question">{esc(answer.question)}</p>'},
                               {"role": "assistant", "content": render_answer(answer)}]
        return messages, history + [(answer.question, answer.text)], answers + [answer], ""

    def download(answers: list[Answer], kind: str) -> dict[str, str] | None:
        if not answers:
            gr.Warning(NOTHING_TO_SAVE)
            return None
        return conversation_file(answers, kind)

    # The Sources tab reports in its status line, never in toasts: a toast outlives the tab and
    # piles up over the Chat tab.
    def failed(error: NewsQAError, query: str | None) -> tuple:
        return (f"⚠ {esc(shown(error, qa.index_dir))}", *source_views(query))

    def added(report: AddReport, query: str | None) -> tuple:
        titles = {d.id: d.title for d in qa.documents()}
        return (describe(report, titles), *source_views(query))

    # A deleted article is kept in the session so that Undo can add it back, until the session
    # writes again: added back after a later change, it could undo that change (an upload of
    # the article's new version would be replaced by the old one).
    def undo_offer(doc: Document | None) -> tuple:
        """The Undo button and the article it adds back: shown for ``doc``, gone for None."""
        return gr.Button(visible=doc is not None), doc

    def undo_kept() -> tuple:
        """The Undo button and its article as they were: nothing was written."""
        return gr.skip(), gr.skip()

    # ``progress`` is unused by name: gradio sees it and shows the facade's tqdm bar in the page.
    def add_files(paths: list[str] | None, query: str,
                  progress=gr.Progress(track_tqdm=True)) -> tuple:
        if not paths:
            return ("⚠ Choose one or more files to upload first.", *source_views(query), None,
                    *undo_kept())
        try:  # only the uploaded files themselves: never a folder or a link
            return (*added(qa.add_uploads(paths, progress=True), query), None, *undo_offer(None))
        except NewsQAError as error:
            return (*failed(error, query), None, *undo_offer(None))

    def add_url(url: str, query: str, progress=gr.Progress(track_tqdm=True)) -> tuple:
        if not url.strip():
            return ("⚠ Type the address of an article or feed first.", *source_views(query), url,
                    *undo_kept())
        try:  # http(s) only: a local path typed here must read nothing and reveal nothing
            return (*added(qa.add_urls([url.strip()], progress=True), query), "",
                    *undo_offer(None))
        except NewsQAError as error:
            return (*failed(error, query), url, *undo_offer(None))

    def ask_delete(doc_id: str | None) -> tuple:
        """Delete's first step: name the article and offer Confirm delete."""
        if not doc_id:
            return "⚠ Choose an article to delete first.", gr.Row(visible=False), None
        try:
            title = qa.get(doc_id).title or doc_id
        except NewsQAError as error:
            return f"⚠ {esc(shown(error, qa.index_dir))}", gr.Row(visible=False), None
        return (f"Delete {esc(title)}? Confirm delete removes it from the index.",
                gr.Row(visible=True), doc_id)

    def delete(doc_id: str | None, query: str) -> tuple:
        """Delete's second step, for the article the first step named."""
        if not doc_id:  # a second click on Confirm delete, queued behind the first
            return gr.skip()
        hidden = gr.Row(visible=False), None
        try:
            doc = qa.get(doc_id)
            qa.delete(doc_id)
        except NewsQAError as error:
            return (*failed(error, query), *hidden, *undo_offer(None))
        return (f"Deleted {esc(doc.title or doc.id)}. Undo adds it back until your next change.",
                *source_views(query), *hidden, *undo_offer(doc))

    def restore(doc: Document | None, query: str) -> tuple:
        if doc is None:  # a second click on Undo, queued behind the first
            return gr.skip()
        try:
            report = qa.add([doc])
        except NewsQAError as error:
            return (*failed(error, query), *undo_offer(None))
        if doc.id not in report.added:  # e.g. added again meanwhile: say what happened
            return (*added(report, query), *undo_offer(None))
        return (f"Restored {esc(doc.title or doc.id)}.", *source_views(query), *undo_offer(None))

    def pick(event: gr.SelectData) -> str:
        """A click on a row of the table chooses its article to delete."""
        return event.row_value[ID_COLUMN]

    def feed_rows() -> list[list[Any]]:
        return [[f.title or "(not polled yet)", f.url, when(f.last_poll), when(f.last_success),
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

    def refresh(query: str | None, progress=gr.Progress(track_tqdm=True)) -> tuple:
        try:
            reports = qa.refresh_feeds()
        except NewsQAError as error:
            return (f"⚠ {esc(shown(error, qa.index_dir))}", feed_rows(), *source_views(query),
                    *undo_offer(None))
        return (describe_feeds(reports, qa.index_dir), feed_rows(), *source_views(query),
                *undo_offer(None))

    def ask_api(question: str, top_k: int = top_k) -> dict:
        """Answer a question from the indexed articles: the answer, its score and citations."""
        try:
            return qa.ask(question, top_k).to_dict()  # the JSON as sent: the facade checks it
        except NewsQAError as error:
            raise gr.Error(shown(error, qa.index_dir), print_exception=False) from None

    with gr.Blocks(title="newsqa", analytics_enabled=False) as app:
        gr.Markdown("# newsqa")
        intro_line = gr.Markdown(INTRO, elem_id="nqa-intro")  # with the count once loaded
        history = gr.State([])
        answers = gr.State([])  # the session's answers, for the conversation's download
        pending = gr.State(None)  # the article Delete asks to confirm
        deleted = gr.State(None)  # the article Undo adds back
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row():
                    with gr.Column(scale=3):
                        # No label: gradio floats it over the messages, where it hides them.
                        # No autoscroll to the bottom of a long reply: SHOW_ANSWER scrolls to
                        # the question and its answer instead.
                        chat = gr.Chatbot(label="Conversation", show_label=False,
                                          height=CHAT_HEIGHT, autoscroll=False,
                                          latex_delimiters=[], buttons=["copy"],
                                          feedback_options=None, elem_id="nqa-chat",
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
                        with gr.Row():
                            new_chat = gr.Button("New conversation", size="sm",
                                                 variant="secondary")
                            save_json = gr.Button("Download JSON", size="sm",
                                                  elem_id="nqa-save-json")
                            save_markdown = gr.Button("Download Markdown", size="sm",
                                                      elem_id="nqa-save-markdown")
                        saved = gr.JSON(visible=False)  # the file SAVE_FILE saves
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
                        # Any file is taken: the ingest layer says in the status line which it
                        # cannot read (gradio's own check would refuse corpus.jsonl.gz, as it
                        # matches the last suffix only, in a toast the status line contradicts).
                        files = gr.File(label="Upload articles (txt, md, html, json, jsonl, "
                                              "RSS/Atom, each also gzipped; up to 10 MB a "
                                              f"file, {MAX_UPLOAD_REQUEST_MB} MB at once)",
                                        file_count="multiple", height=200,
                                        elem_id="nqa-files")
                        upload = gr.Button("Add files", variant="primary", elem_id="nqa-upload")
                    with gr.Column():
                        url = gr.Textbox(label="Article or feed URL", placeholder="https://…",
                                         elem_id="nqa-url")
                        fetch = gr.Button("Add URL", variant="primary")
                        doomed = gr.Dropdown(label="Delete an article", elem_id="nqa-doomed",
                                             info="Or click its row in the table below.")
                        remove = gr.Button("Delete", variant="stop", elem_id="nqa-delete")
                        with gr.Row(visible=False) as confirming:
                            confirm = gr.Button("Confirm delete", variant="stop",
                                                elem_id="nqa-confirm")
                            cancel = gr.Button("Cancel", elem_id="nqa-cancel")
                        undo = gr.Button("Undo", visible=False, elem_id="nqa-undo")
                status = gr.HTML(elem_id="nqa-status", js_on_load=None)
                query = gr.Textbox(show_label=False, elem_id="nqa-search",
                                   placeholder="Search: words of a title, source, id or URL")
                count = gr.HTML(elem_id="nqa-count", js_on_load=None)
                table = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True,
                                     show_label=False, elem_id="nqa-table",
                                     column_widths=WIDTHS)
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
            following_tab(qa, app, top_k, QUESTIONS)

        views = [intro_line, count, table, sources, doomed]
        undo_io = [undo, deleted]
        settings = [k, threshold, sources, date_from, date_to, as_of]
        private = {"api_visibility": "private"}
        chat_io = dict(**QUESTIONS, fn=respond, inputs=[question, chat, history, answers,
                                                        *settings],
                       outputs=[chat, history, answers, question], **private)
        for asked in (question.submit(**chat_io), send.click(**chat_io)):
            asked.then(None, inputs=chat, js=SHOW_ANSWER, **private)
        new_chat.click(lambda: ([], [], []), outputs=[chat, history, answers], **private)
        chat.clear(lambda: ([], []), outputs=[history, answers], **private)  # the bin icon
        for button, kind in ((save_json, "json"), (save_markdown, "markdown")):
            button.click(functools.partial(download, kind=kind), inputs=answers, outputs=saved,
                         **private).then(None, inputs=saved, js=SAVE_FILE, **private)
        upload.click(add_files, inputs=[files, query], outputs=[status, *views, files, *undo_io],
                     **private)
        for added_url in (fetch.click, url.submit):
            added_url(add_url, inputs=[url, query], outputs=[status, *views, url, *undo_io],
                      **private)
        remove.click(ask_delete, inputs=doomed, outputs=[status, confirming, pending], **private)
        confirm.click(delete, inputs=[pending, query],
                      outputs=[status, *views, confirming, pending, *undo_io], **private)
        cancel.click(lambda: ("Nothing was deleted.", gr.Row(visible=False), None),
                     outputs=[status, confirming, pending], **private)
        # another article chosen: Confirm delete must not delete it unasked
        doomed.change(lambda: (gr.Row(visible=False), None), outputs=[confirming, pending],
                      **private)
        undo.click(restore, inputs=[deleted, query], outputs=[status, *views, *undo_io],
                   **private)
        table.select(pick, outputs=doomed, **private)
        query.change(search, inputs=query, outputs=[count, table], show_progress="hidden",
                    **private)
        app.load(source_views, outputs=views, show_progress="hidden", **private)
        for subscribed in (follow.click, feed_url.submit):
            subscribed(subscribe, inputs=feed_url, outputs=[feed_status, feed_table, feed_url],
                       **private)
        poll_now.click(refresh, inputs=query,
                       outputs=[feed_status, feed_table, *views, *undo_io], **private)
        # a background refresh (serve --watch) shows when the tab is opened
        feeds_tab.select(feed_rows, outputs=feed_table, **private)
        app.load(feed_rows, outputs=feed_table, **private)
        gr.api(ask_api, api_name="ask", **QUESTIONS)
    # Writes (upload, URL, delete, undo) keep Gradio's default of one at a time; questions share
    # one queue (see QUESTIONS); beyond MAX_QUEUED waiting requests a client is told the app is
    # busy at once, rather than waiting minutes.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(ANALYTICS_EVERY))
    app.queue(max_size=MAX_QUEUED)
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, *,
           block: bool = True) -> str:
    """Serve ``app`` with its theme and request limits, say where in one line and, with
    ``block``, keep serving until interrupted; returns the local URL.

    Gradio's own banner is off (``quiet``): beside the URL it tells the user to set
    ``share=True`` in ``launch()``, which nobody starting newsqa can act on.
    """
    _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=True,
                           quiet=True, theme=THEME, css=CSS, max_file_size=MAX_UPLOAD,
                           ssr_mode=False, footer_links=["api"],
                           app_kwargs={"middleware": [Middleware(RequestGuard,
                                                                 uploads=app.GRADIO_CACHE)]})
    print(f"Running on local URL:  {url}", flush=True)
    if block:
        app.block_thread()
    return url


def seed(qa: NewsQA, seeds: Path | None) -> None:
    """On first start (empty index) index the shipped articles, saying so in one line (a
    progress bar for a few articles would only be noise in a server's log)."""
    if seeds is None or qa.documents():
        return
    print(f"The index is empty: indexing {seeds} …", end="", flush=True)
    report = qa.add_paths([seeds])
    print(f" {len(report.added)} article(s), {report.chunks} passage(s).", flush=True)


def serve(index_dir: str | Path = "index", host: str = "127.0.0.1", port: int | None = None, *,
          allow_private_urls: bool = False, seeds: Path | None = SEEDS,
          watch: str | None = None,
          on_refresh: Callable[[list[FeedReport]], object] | None = None,
          on_change: OnChange | None = None) -> None:
    """Open (or create) the index, seed it if empty, load the models and serve the app; with
    ``watch`` (an interval such as "15m"), refresh the subscribed feeds in the background,
    giving each round's reports to ``on_refresh`` and each changed answer of a followed
    question to ``on_change`` (the CLI prints both on the server's console; each feed's last
    error also shows in the Feeds tab, each change in the Following tab)."""
    qa = NewsQA(index_dir, fetcher=Fetcher(allow_private=allow_private_urls))
    seed(qa, seeds)
    qa.warm_up()
    if watch:
        qa.watch_in_background(watch, on_refresh=on_refresh, on_change=on_change)
    launch(build_app(qa), host, port)
