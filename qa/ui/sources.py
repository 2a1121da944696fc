"""The Sources tab's table without Gradio: the indexed articles newest first, narrowed by a
search, and the lines that count them (the Chat tab's intro names the count too)."""
from __future__ import annotations

from typing import Any, Sequence

from qa.store.base import DocumentInfo
from qa.ui.render import esc

HEADERS = ["title", "source", "date", "chunks", "id", "record id"]
WIDTHS = ["36%", "13%", "11%", "7%", "17%", "16%"]
ID_COLUMN = HEADERS.index("id")
INTRO = "Ask about the indexed news articles — every answer is quoted from them, with its source."


def newest_first(docs: Sequence[DocumentInfo]) -> list[DocumentInfo]:
    """Dated articles newest first, then the undated (no date says where they belong); the
    latest added first among equals, so what was just indexed tops its group."""
    latest = list(reversed(docs))  # the store lists them in the order they were added
    dated = sorted((d for d in latest if d.published), key=lambda d: d.published, reverse=True)
    return dated + [d for d in latest if not d.published]


def matching(docs: Sequence[DocumentInfo], query: str) -> list[DocumentInfo]:
    """The articles whose title, source, id, record id or URL hold every word of ``query``, in
    any case; all of them for an empty query."""
    words = query.casefold().split()
    return [d for d in docs
            if all(word in "\n".join((d.title, d.source, d.id, d.external_id, d.url)).casefold()
                   for word in words)]


def rows(docs: Sequence[DocumentInfo]) -> list[list[Any]]:
    """The table's rows, one an article, in ``HEADERS`` order."""
    return [[d.title, d.source, d.published[:10] or "undated", d.chunks, d.id, d.external_id]
            for d in docs]


def articles(count: int) -> str:
    """"1 article", "1,234 articles"."""
    return f"{count:,} article{'' if count == 1 else 's'}"


def count_line(shown: int, total: int, query: str) -> str:
    """What the table holds, as escaped HTML: every article, or those the search matched."""
    if not total:
        return "No articles indexed yet: upload files or add a URL above."
    if not query.strip():
        return f"{articles(total)}, newest first."
    if not shown:
        return f"No article matches “{esc(query.strip())}” ({articles(total)} indexed)."
    return f"{shown:,} of {articles(total)} match “{esc(query.strip())}”, newest first."


def intro(total: int) -> str:
    """The Chat tab's first line (Markdown): how many articles the answers come from."""
    if not total:
        return "Nothing is indexed yet: add articles in the **Sources** tab, then ask about them."
    return (f"Ask about the {total:,} indexed article{'' if total == 1 else 's'} — every answer "
            f"is quoted from {'it' if total == 1 else 'them'}, with its source.")
