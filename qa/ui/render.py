"""Rendering for the app, without Gradio: answers, citations and reports as HTML.

Pure functions: untrusted text in, escaped HTML out. Article text, titles, sources and URLs are
untrusted (uploaded HTML, fetched pages), so every string is HTML-escaped before it is rendered
and links are made only for http(s) URLs.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

from qa.errors import NewsQAError
from qa.recency import date_phrase
from qa.types import AddReport, Answer, Citation, FeedReport

PASSAGE_CONTEXT = 200  # characters of the cited passage shown on each side of the quote
MAX_CITATIONS = 3  # passages shown per answer; more would bury the conversation
MIN_CANDIDATE = 0.01  # candidate answers below 1% are noise: the fold leaves them out
LISTED_TITLES = 10  # added articles named in the status line; a whole feed would drown it
NOT_FOUND = "I couldn't find the answer in the indexed articles."


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


def around(citation: Citation) -> tuple[str, str, str]:
    """The text before the quote, the quote and the text after it, as much of the cited passage
    as is shown; located by offsets, never by searching, because the same words can occur
    earlier in the passage."""
    if not citation.passage:
        return "", citation.quote, ""
    start = citation.start - citation.passage_start
    end = citation.end - citation.passage_start
    before = citation.passage[max(0, start - PASSAGE_CONTEXT):start]
    after = citation.passage[end:end + PASSAGE_CONTEXT]
    if start > PASSAGE_CONTEXT:  # cut at a word boundary rather than mid-word
        before = "…" + before.partition(" ")[2]
    if end + PASSAGE_CONTEXT < len(citation.passage):
        after = after.rpartition(" ")[0] + "…"
    return before, citation.passage[start:end], after


def highlight(citation: Citation) -> str:
    """The cited passage around the quote, the quote in <mark>."""
    before, quote, after = around(citation)
    return f"{esc(before)}<mark>{esc(quote)}</mark>{esc(after)}"


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
    """One card per cited article: its title (linked to its URL), source, date and the user's
    id for it once, then each passage quoted from it, so two quotes from one article do not
    repeat its title."""
    first = citations[0]
    external = f"id {first.external_id}" if first.external_id else ""
    meta = " · ".join(esc(x) for x in (first.source, first.date_label, external) if x)
    meta_html = f'<div class="nqa-meta">{meta}</div>' if meta else ""
    passages = "".join(f'<blockquote class="nqa-passage">{highlight(c)}</blockquote>'
                       for c in citations)
    return f'<div class="nqa-card"><strong>{title_link(first)}</strong>{meta_html}{passages}</div>'


def candidates(summary: str, answers: Sequence[Answer]) -> str:
    """Other candidate answers, folded so they do not compete with the answer itself; those
    under ``MIN_CANDIDATE`` are left out (a fold of "0%" guesses is noise), and with them
    the fold when none is left."""
    answers = [a for a in answers if a.score >= MIN_CANDIDATE]
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


def when(timestamp: str) -> str:
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
