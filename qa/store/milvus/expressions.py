"""Milvus boolean expressions: string literals, and a ``Filter`` over the chunk fields."""
from __future__ import annotations

import json
from typing import Iterable

from qa.types import Filter


def literal(value: str) -> str:
    """A Milvus string literal (double quotes, backslash escapes: JSON's are valid)."""
    return json.dumps(value, ensure_ascii=False)


def strings(values: Iterable[str]) -> str:
    return "[" + ", ".join(literal(v) for v in values) + "]"


def filter_expression(filter: Filter | None) -> str:
    """``filter`` as a Milvus boolean expression over the chunk fields ("" keeps all).

    Sources are compared lower-cased (the chunk stores its source lower-cased). Date bounds are
    inclusive ISO prefixes, compared as strings: ``published >= from`` keeps every date from
    ``from`` on, and ``published <= to or published like "to%"`` every date up to the end of
    ``to`` (``"2024-05"`` keeps all of May). Undated articles pass the bounds unless
    ``include_undated`` is False.
    """
    if filter is None or filter.empty:
        return ""
    terms = []
    if filter.sources:
        terms.append(f"source_lc in {strings(sorted({s.lower() for s in filter.sources}))}")
    undated = 'published == "" or ' if filter.include_undated else ""
    if filter.date_from is not None:
        terms.append(f"({undated}published >= {literal(filter.date_from)})")
    if filter.date_to is not None:
        to = filter.date_to
        terms.append(f"({undated}published <= {literal(to)} or "
                     f"published like {literal(to + '%')})")
    if not filter.include_undated:
        terms.append('published != ""')
    return " and ".join(terms)


def both(*expressions: str) -> str:
    return " and ".join(f"({e})" for e in expressions if e)
