"""What the CLI prints (``qa.cli``, ``qa.cli_follow``): text from articles, feeds and commands
with its control characters as spaces, JSON escaped likewise, and aligned tables.

What the CLI prints comes from articles and feeds (titles, sources, quotes, errors naming
them): their control characters could clear the screen, set the window title or write the
clipboard (OSC 52) of whoever reads the output. Text gets each as a space (a newline too: one
line a record); JSON, which escapes C0 itself, gets DEL and C1 escaped as well.
"""
from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Collection, Sequence

if TYPE_CHECKING:
    from qa.types import Citation

AS_SPACES = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)], " ")
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}
COLUMN_MAX = 64  # the widest a table's column is padded to (a feed's URL): longer cells stick out


def say(text: str, *, err: bool = False) -> None:
    """Print one line, on stderr with ``err``, every control character in it a space."""
    print(text.translate(AS_SPACES), file=sys.stderr if err else sys.stdout, flush=True)


def as_json(data: object, indent: int | None = 2) -> str:
    """``data`` as JSON (indented, or on one line with ``indent=None``) that no terminal reads a
    control character in."""
    return json.dumps(data, ensure_ascii=False, indent=indent).translate(_JSON_ESCAPES)


def table(rows: Sequence[Sequence[str]], right: Collection[int] = ()) -> list[str]:
    """``rows`` as lines of aligned columns, two spaces apart: each column but the last is
    padded to its widest cell, up to ``COLUMN_MAX``; those numbered in ``right`` (counts) are
    aligned to the right."""
    widths = [min(max(len(row[column]) for row in rows), COLUMN_MAX)
              for column in range(len(rows[0]) - 1)] if rows else []
    return ["  ".join([*(cell.rjust(width) if column in right else cell.ljust(width)
                         for column, (cell, width) in enumerate(zip(row, widths))),
                       row[-1]]).rstrip() for row in rows]


def cited(citation: Citation, *, ids: str | None = None, offsets: bool = True) -> str:
    """Where a quote comes from, as every CLI line gives it: "[id] title (outlet, date)" and
    its offsets; ``ids`` in place of the document id (with the user's id beside it)."""
    meta = ", ".join(x for x in (citation.source, citation.date_label) if x)
    return (f"[{ids or citation.doc_id}] {citation.title}" + (f" ({meta})" if meta else "")
            + (f" chars {citation.start}-{citation.end}" if offsets else ""))
