"""The Gradio chat app: ask about the indexed articles, see the quoted passage, manage the sources.

This is the only module that imports gradio, and it calls nothing but the ``NewsQA`` facade.
Article text, titles, sources and URLs are untrusted (uploaded HTML, fetched pages), so every
string is HTML-escaped before it is rendered and links are made only for http(s) URLs.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import gradio as gr

from qa.cli import answer_to_json
from qa.errors import NewsQAError
from qa.ingest import Fetcher
from qa.pipeline import AddReport, NewsQA
from qa.types import Answer, Citation

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
MAX_UPLOAD = "10mb"  # enforced by the server before a file reaches the ingest layer
UPLOAD_TYPES = [".txt", ".md", ".html", ".htm", ".json", ".jsonl", ".xml", ".rss", ".atom"]
PASSAGE_CONTEXT = 200  # characters of the cited passage shown on each side of the quote
MAX_CITATIONS = 3  # passages shown per answer; more would bury the conversation
LISTED_TITLES = 10  # added articles named in the status line; a whole feed would drown it
NOT_FOUND = "I couldn't find the answer in the indexed articles."
DATE_HINT = "YYYY-MM-DD (or YYYY-MM, YYYY)"
TABLE_HEADERS = ["title", "source", "date", "chunks", "id"]
History = list[tuple[str, str]]

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


def source_card(citation: Citation) -> str:
    """Title, source and date of a cited article."""
    title = title_link(citation)
    meta = " · ".join(esc(x) for x in (citation.source, citation.published[:10]) if x)
    meta_html = f'<div class="nqa-meta">{meta}</div>' if meta else ""
    return f'<div class="nqa-card"><strong>{title}</strong>{meta_html}</div>'


def cited(citation: Citation) -> str:
    passage = f'<blockquote class="nqa-passage">{highlight(citation)}</blockquote>'
    return passage + source_card(citation)


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


def render_answer(answer: Answer) -> str:
    """One chat reply as a single-line HTML block."""
    if not answer.found:
        body = (f"<p>{NOT_FOUND}</p>"
                + candidates("Possible answers — low confidence, not supported well enough",
                             answer.alternatives))
    else:
        body = (f"<p class='nqa-answer'><strong>{esc(answer.text)}</strong>"
                f"<span class='nqa-score'>{answer.score:.0%} confidence</span></p>"
                + "".join(cited(c) for c in answer.citations[:MAX_CITATIONS])
                + candidates("Other candidate answers", answer.alternatives))
    return f'<div class="nqa-reply">{body}</div>'


def describe(report: AddReport, titles: dict[str, str]) -> str:
    """What an upload or URL added, as escaped HTML for the status line."""
    lines = []
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


# ---- the app -------------------------------------------------------------------------------
def build_app(qa: NewsQA, *, top_k: int = 5) -> gr.Blocks:
    """The Chat and Sources tabs over ``qa``, plus an ``/ask`` API endpoint for programs."""

    def source_views() -> tuple[list[list[Any]], gr.Dropdown, gr.Dropdown]:
        docs = qa.documents()
        rows = [[d.title, d.source, d.published[:10], d.chunks, d.id] for d in docs]
        sources = sorted({d.source for d in docs if d.source})
        articles = [(f"{d.title or '(untitled)'} — {d.id}", d.id) for d in docs]
        return rows, gr.Dropdown(choices=sources), gr.Dropdown(choices=articles, value=None)

    def respond(question: str, messages: list, history: History, k: float, threshold: float,
                sources: list[str] | None, date_from: str,
                date_to: str) -> tuple[list, History, str]:
        try:
            answer = qa.ask(question, int(k), threshold=threshold, sources=sources or None,
                            date_from=date_from.strip() or None, date_to=date_to.strip() or None,
                            history=history)
        except NewsQAError as error:
            gr.Warning(str(error))
            return messages, history, question
        messages = messages + [{"role": "user", "content": f"<p>{esc(answer.question)}</p>"},
                               {"role": "assistant", "content": render_answer(answer)}]
        return messages, history + [(answer.question, answer.text)], ""

    def add(targets: list[str | Path]) -> tuple:
        try:
            report = qa.add_paths(targets, progress=True)
        except NewsQAError as error:
            gr.Warning(str(error))
            return (f"⚠ {esc(str(error))}", *source_views())
        titles = {d.id: d.title for d in qa.documents()}
        return (describe(report, titles), *source_views())

    # ``progress`` is unused by name: gradio sees it and shows the facade's tqdm bar in the page.
    def add_files(paths: list[str] | None, progress=gr.Progress(track_tqdm=True)) -> tuple:
        if not paths:
            gr.Warning("Choose one or more files to upload first.")
            return ("Choose one or more files to upload first.", *source_views(), None)
        return (*add([Path(p) for p in paths]), None)

    def add_url(url: str, progress=gr.Progress(track_tqdm=True)) -> tuple:
        if not url.strip():
            gr.Warning("Type the address of an article or feed first.")
            return ("Type the address of an article or feed first.", *source_views(), url)
        return (*add([url.strip()]), "")

    def delete(doc_id: str | None) -> tuple:
        if not doc_id:
            gr.Warning("Choose an article to delete first.")
            return ("Choose an article to delete first.", *source_views())
        try:
            title = qa.get(doc_id).title or doc_id
            qa.delete(doc_id)
        except NewsQAError as error:
            gr.Warning(str(error))
            return (f"⚠ {esc(str(error))}", *source_views())
        return (f"Deleted {esc(title)}.", *source_views())

    def ask_api(question: str, top_k: int = top_k) -> dict:
        """Answer a question from the indexed articles: the answer, its score and citations."""
        try:
            return answer_to_json(qa.ask(question, int(top_k)))
        except NewsQAError as error:
            raise gr.Error(str(error), print_exception=False) from None

    with gr.Blocks(title="newsqa", analytics_enabled=False) as app:
        gr.Markdown("# newsqa\nAsk about the indexed news articles — every answer is quoted "
                    "from them, with its source.")
        history = gr.State([])
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row():
                    with gr.Column(scale=3):
                        chat = gr.Chatbot(label="Conversation", height=600, latex_delimiters=[],
                                          buttons=["copy"], feedback_options=None,
                                          elem_id="nqa-chat",
                                          placeholder="Ask a question about the articles in "
                                                      "the **Sources** tab.")
                        with gr.Row():
                            question = gr.Textbox(show_label=False, scale=5, autofocus=True,
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
                            threshold = gr.Slider(0.0, 1.0, value=qa.reader.threshold, step=0.01,
                                                  label="Answer threshold",
                                                  info="Below this confidence, say not found.")
                            sources = gr.Dropdown(multiselect=True, label="Only these sources")
                            date_from = gr.Textbox(label="Published from", placeholder=DATE_HINT,
                                                   elem_id="nqa-date-from")
                            date_to = gr.Textbox(label="Published until", placeholder=DATE_HINT)
            with gr.Tab("Sources", id="sources"):
                table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True,
                                     label="Indexed articles", elem_id="nqa-table",
                                     column_widths=["40%", "15%", "12%", "8%", "25%"])
                status = gr.HTML(elem_id="nqa-status", js_on_load=None)
                with gr.Row():
                    with gr.Column():
                        files = gr.File(label="Upload articles (txt, md, html, json, jsonl, "
                                              "RSS/Atom; up to 10 MB)", file_count="multiple",
                                        file_types=UPLOAD_TYPES, elem_id="nqa-files")
                        upload = gr.Button("Add files", variant="primary", elem_id="nqa-upload")
                    with gr.Column():
                        url = gr.Textbox(label="Article or feed URL", placeholder="https://…",
                                         elem_id="nqa-url")
                        fetch = gr.Button("Add URL", variant="primary")
                        doomed = gr.Dropdown(label="Delete an article", elem_id="nqa-doomed")
                        remove = gr.Button("Delete", variant="stop")

        views = [table, sources, doomed]
        settings = [k, threshold, sources, date_from, date_to]
        chat_io = dict(fn=respond, inputs=[question, chat, history, *settings],
                       outputs=[chat, history, question], api_visibility="private")
        question.submit(**chat_io)
        send.click(**chat_io)
        new_chat.click(lambda: ([], []), outputs=[chat, history], api_visibility="private")
        chat.clear(lambda: [], outputs=history, api_visibility="private")  # the chat's bin icon
        upload.click(add_files, inputs=files, outputs=[status, *views, files],
                     api_visibility="private")
        fetch.click(add_url, inputs=url, outputs=[status, *views, url], api_visibility="private")
        url.submit(add_url, inputs=url, outputs=[status, *views, url], api_visibility="private")
        remove.click(delete, inputs=doomed, outputs=[status, *views], api_visibility="private")
        app.load(source_views, outputs=views, api_visibility="private")
        gr.api(ask_api, api_name="ask")
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, *,
           block: bool = True) -> str:
    """Serve ``app`` with its theme and upload limit; returns the local URL."""
    _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
                           theme=THEME, css=CSS, max_file_size=MAX_UPLOAD, ssr_mode=False,
                           footer_links=["api"])
    return url


def seed(qa: NewsQA, seeds: Path | None) -> None:
    """On first start (empty index) index the shipped articles, showing a progress bar."""
    if seeds is None or qa.documents():
        return
    print(f"The index is empty: indexing {seeds} …", flush=True)
    report = qa.add_paths([seeds], progress=True)
    print(f"Indexed {len(report.added)} article(s), {report.chunks} passage(s).", flush=True)


def serve(index_dir: str | Path = "index", host: str = "127.0.0.1", port: int | None = None, *,
          allow_private_urls: bool = False, seeds: Path | None = SEEDS) -> None:
    """Open (or create) the index, seed it if empty, load the models and serve the app."""
    qa = NewsQA(index_dir, fetcher=Fetcher(allow_private=allow_private_urls))
    seed(qa, seeds)
    qa.warm_up()
    launch(build_app(qa), host, port)
