"""``newsqa ask --questions FILE``: a file of questions in, and their answers out as JSON Lines
or as CSV with their citations (the CLI writes them; ``qa.cli``).

A line of the file is a question as plain text, or a JSON object with a "question" and an
optional "id": the id goes out with the answer, so that answers map back to the user's
questions (a plain line's id is its line number). A line that is neither is named with its
problem, and the other lines are still asked.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from qa.errors import NewsQAError, clip

if TYPE_CHECKING:
    from qa.types import Answer

# A row a citation (one row with the citation columns empty for an answer without any);
# ``external_id`` is the id the user's data gave the cited article, where it gave one.
CSV_COLUMNS = ("id", "question", "answer", "confidence", "found", "doc_id", "external_id",
               "title", "source", "published", "start", "end", "quote")
_CITATION_COLUMNS = len(CSV_COLUMNS) - CSV_COLUMNS.index("doc_id")


class Line(NamedTuple):
    """One non-blank line of a questions file."""

    where: str  # "FILE, line N", to name it in a message
    id: str | int  # the record's "id", or the line number
    question: str  # "" where ``problem`` says why the line is no question
    problem: str = ""


def read_questions(name: str) -> list[Line]:
    """The non-blank lines of the file ``name`` (``-``: standard input), in order; a file that
    cannot be read, or holds none, is one ``NewsQAError``."""
    label = "standard input" if name == "-" else clip(name)
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as error:
        raise NewsQAError(f"{label} cannot be read: {error.strerror or error}.") from None
    lines = [_line(f"{label}, line {n}", n, line)
             for n, line in enumerate(data.splitlines(), 1) if line.strip()]
    if not lines:
        raise NewsQAError(f"{label} holds no questions.")
    return lines


def _line(where: str, n: int, line: bytes) -> Line:
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError as error:
        return Line(where, n, "", f"it is not UTF-8 text (a bad byte at {error.start + 1}).")
    if not text.startswith("{"):
        return Line(where, n, text)
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        return Line(where, n, "", f"it starts with {{ but is not a JSON object ({error.msg}).")
    qid, question = record.get("id", n), record.get("question")
    if isinstance(qid, bool) or not isinstance(qid, (str, int)):
        return Line(where, n, "", f'its "id" is neither text nor a whole number: '
                                  f"{clip(repr(qid))}.")
    if not isinstance(question, str):
        return Line(where, qid, "", 'it has no "question" text.')
    return Line(where, qid, question)


def csv_rows(qid: str | int, answer: Answer) -> list[list[object]]:
    """The ``CSV_COLUMNS`` rows of one answer: one a citation; ``found`` as JSON writes it."""
    head = [qid, answer.question, answer.text, round(answer.score, 4), json.dumps(answer.found)]
    cited = [[c.doc_id, getattr(c, "external_id", ""), c.title, c.source, c.published, c.start,
              c.end, c.quote] for c in answer.citations]
    return [head + rest for rest in cited or [[""] * _CITATION_COLUMNS]]
