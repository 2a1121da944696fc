"""Time in answers: which questions ask for the current state, how much newer articles count for
them, and which absolute date a relative one ("Monday", "last week") in an article stands for.

Recency is a multiplicative factor on the fused retrieval score, applied only to questions that
ask for the current state (``asks_for_current``)::

    factor = 1 + RECENCY_WEIGHT * 0.5 ** (age_days / HALF_LIFE_DAYS)

``age_days`` is the article's age at ``as_of`` ("now", today by default; set it for archives and
tests), counted from 0 for articles dated on or after it. A fresh article's score is doubled, one
``HALF_LIFE_DAYS`` old gets x1.5, a much older one x1. Undated articles get x1: no boost, and no
penalty either, since nothing says they are old.

The answer to such a question is chosen by the same factor (``qa.answer.compose_answer``):

1. Each article read answers with its best span only, as for "Sources differ" on any
   question: a weaker span in it that repeats another article's answer does not make it a
   source of that answer.
2. Each article's answer is weighed by its span score times the article's factor.
3. The answers close to the best weighed one (``qa.answer.CLOSE_SHARE`` of it) are the ones
   that differ ("Sources differ"); the newest article's answer among them is the answer.

The reader scores each passage on its own, so an older article that states its figure plainly
can outscore the newest one by more than ``CLOSE_SHARE`` while both answer the question. The
factor puts them back in reach, and the newest close one wins. It cannot pick a span the reader
all but ruled out: the answer keeps at least ``CLOSE_SHARE / (1 + RECENCY_WEIGHT)`` (a quarter)
of the reader's best span score. Nothing else changes: the span and confidence shown are the
reader's and the decision's, unweighed. Among undated articles every factor is 1 and no date
orders them, so the reader's best answer stays the answer.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

HALF_LIFE_DAYS = 7.0  # news moves in days: a week-old report counts half as "current"
RECENCY_WEIGHT = 1.0  # the boost of an article dated ``as_of``: its fused score is doubled

# "new" only in lower case: "New York" or "New Delhi" is no question about the current state
_CURRENT = re.compile(r"\b((?i:latest|now|currently|current|this week|still|newest|recent|"
                      r"recently|today|so far)|new)\b")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
_RELATIVE = re.compile(
    r"(?:on\s+|by\s+|since\s+|until\s+)?(?:(?P<which>last|this|next)\s+)?"
    r"(?P<unit>today|yesterday|tomorrow|week|month|year|" + "|".join(WEEKDAYS) + r")"
    r"(?:\s+(?:morning|afternoon|evening|night))?", re.IGNORECASE)


def asks_for_current(question: str) -> bool:
    """True for a question about how things stand now ("What is the latest offer?")."""
    return bool(_CURRENT.search(question))


def parse_day(value: str) -> date | None:
    """The calendar day of an ISO 8601 date or datetime, None for "" or anything else."""
    try:
        return date.fromisoformat(value[:10])
    except (TypeError, ValueError):
        return None


def today() -> date:
    return datetime.now(timezone.utc).date()


def recency_factor(published: str, as_of: date) -> float:
    """The multiplier of an article's fused score for a current-state question (module doc)."""
    day = parse_day(published)
    if day is None:
        return 1.0
    age = max(0, (as_of - day).days)
    return 1.0 + RECENCY_WEIGHT * 0.5 ** (age / HALF_LIFE_DAYS)


def resolve_relative_date(text: str, published: str) -> str:
    """The absolute date an answer such as "Monday", "yesterday" or "last week" stands for, read
    from the article's ``published`` date; "" when the answer is not (only) a relative date or
    the article is undated.

    A day comes back as "2025-06-02", a week as an ISO interval "2025-05-26/2025-06-01" (Monday
    to Sunday), a month as "2025-05", a year as "2025". A bare or "last" weekday is the latest
    such day on or before (for "last": before) the publication day, as news writes of days just
    past; "next" and "this" weekdays are the coming one (on or after).
    """
    day = parse_day(published)
    match = _RELATIVE.fullmatch(text.strip().rstrip(".,"))
    if day is None or match is None:
        return ""
    which, unit = (match["which"] or "").lower(), match["unit"].lower()
    step = {"last": -1, "next": 1}.get(which, 0)
    if unit in ("today", "yesterday", "tomorrow"):
        if which:
            return ""
        return (day + timedelta({"today": 0, "yesterday": -1, "tomorrow": 1}[unit])).isoformat()
    if unit in WEEKDAYS:
        offset = WEEKDAYS.index(unit) - day.weekday()
        if which in ("next", "this"):
            offset = offset % 7 or (7 if which == "next" else 0)
        else:
            offset = -((-offset) % 7) or (-7 if which == "last" else 0)
        return (day + timedelta(offset)).isoformat()
    if not which:  # a bare "week" or "month" is no date
        return ""
    if unit == "week":
        monday = day - timedelta(day.weekday()) + timedelta(7 * step)
        return f"{monday.isoformat()}/{(monday + timedelta(6)).isoformat()}"
    if unit == "month":
        months = day.year * 12 + day.month - 1 + step
        return f"{months // 12:04d}-{months % 12 + 1:02d}"
    return f"{day.year + step:04d}"


def date_phrase(resolved: str) -> str:
    """A resolved date as people read it: "2 June 2025", "26 May – 1 June 2025", "May 2025"."""
    if "/" in resolved:
        first, last = (date.fromisoformat(part) for part in resolved.split("/"))
        head = f"{first.day} {MONTHS[first.month - 1]}"
        if first.year != last.year:
            head += f" {first.year}"
        return f"{head} – {date_phrase(last.isoformat())}"
    if len(resolved) == 10:
        day = date.fromisoformat(resolved)
        return f"{day.day} {MONTHS[day.month - 1]} {day.year}"
    if len(resolved) == 7:
        return f"{MONTHS[int(resolved[5:]) - 1]} {resolved[:4]}"
    return resolved


def with_resolved(text: str, resolved: str) -> str:
    """The answer with its resolved date beside it, "Monday (2 June 2025)"; the quote unchanged."""
    return f"{text} ({date_phrase(resolved)})" if resolved else text
