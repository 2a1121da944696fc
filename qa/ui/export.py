"""The conversation as a file to download, without Gradio: JSON for programs (each answer as
``/ask`` and ``newsqa ask --json`` give it: ``Answer.to_dict``), Markdown for people (each
question, its answer and confidence, and every citation's title, source, date, quote and link).

Article text, titles and URLs are untrusted, so the Markdown shows them as text: HTML and
Markdown syntax in them is escaped, and links are made only for http(s) URLs.
"""
from __future__ import annotations

import html
import json
import re
from typing import Sequence
from urllib.parse import quote, urlsplit

from qa.recency import date_phrase
from qa.types import Answer, Citation
from qa.ui.render import NOT_FOUND, around

# format -> (file name, media type)
FORMATS = {"json": ("newsqa-conversation.json", "application/json"),
           "markdown": ("newsqa-conversation.md", "text/markdown")}
URL_SAFE = ":/?#@!$&'*+,;=%~"  # kept in a link's URL; the rest, ( ) < > and spaces, escaped
MARKDOWN_SYNTAX = re.compile(r"([\\`*_\[\]~|#])")  # what could make text a link or emphasis


def conversation_file(answers: Sequence[Answer], kind: str) -> dict[str, str]:
    """The file for the browser to save: its name, media type and text."""
    name, media_type = FORMATS[kind]
    text = as_json(answers) if kind == "json" else as_markdown(answers)
    return {"name": name, "type": media_type, "text": text}


def as_json(answers: Sequence[Answer]) -> str:
    return json.dumps([answer.to_dict() for answer in answers], ensure_ascii=False, indent=2)


def as_markdown(answers: Sequence[Answer]) -> str:
    return "\n\n".join(["# newsqa conversation", *map(_answer, answers)]) + "\n"


def md(text: str) -> str:
    """Untrusted text as literal Markdown on one line: whitespace runs become one space, HTML is
    escaped and Markdown syntax backslashed."""
    text = html.escape(re.sub(r"\s+", " ", text), quote=False)
    return MARKDOWN_SYNTAX.sub(r"\\\1", text)


def md_link(url: str, label: str) -> str:
    """``label`` (Markdown) linked to ``url`` if it is http(s); any other scheme stays text."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return label
    return f"[{label}]({quote(url.strip(), safe=URL_SAFE)})"


def _answer(answer: Answer) -> str:
    lines = [f"## {md(answer.question)}", ""]
    if not answer.found:
        lines.append(f"_{md(NOT_FOUND)}_")
        return "\n".join(lines)
    resolved = f" ({md(date_phrase(answer.resolved_date))})" if answer.resolved_date else ""
    lines.append(f"**{md(answer.text)}**{resolved} — {answer.score:.0%} confidence")
    if answer.disagreement:
        lines += ["", "Sources differ:"]
        lines += [f"- **{md(c.quote)}** — {_about(c)}" for c in answer.disagreement]
    lines += ["", "Sources:"] if answer.citations else []
    for number, citation in enumerate(answer.citations, 1):
        before, quoted, after = around(citation)
        lines += [f"{number}. {_about(citation)}",
                  f"   > {md(before)}**{md(quoted)}**{md(after)}"]
    return "\n".join(lines)


def _about(citation: Citation) -> str:
    """The cited article: its title (linked), source, date and ids."""
    title = md_link(citation.url, md(citation.title or citation.doc_id))
    ids = f"article {md(citation.doc_id)}" + (f", record {md(citation.external_id)}"
                                              if citation.external_id else "")
    return " · ".join(x for x in (title, md(citation.source), md(citation.date_label), ids) if x)
