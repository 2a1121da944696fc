"""The keyword side of retrieval: BM25 over chunk text and article titles, in SQLite FTS5.

The index is the FTS5 table ``keywords`` (rowid = chunk id) in the store's database, written in
the transaction that writes the chunks: a save commits both or neither, and a reader's snapshot
sees one generation of both. Adding or deleting a document touches its own rows only; nothing is
rebuilt from the whole corpus. ``benchmarks/keyword.py`` compares it with ``bm25s`` and the
``rank_bm25`` it replaced (build, add, query time and recall).

The table is contentless (``content=''``): the text is already in ``chunks``, and a copy would
double it on disk. Deleting from such a table takes the values that were indexed, so ``remove``
reads them from ``chunks`` and ``documents`` before those rows go. Every search joins ``chunks``
(ids are never reused), so a posting left behind could never name another chunk.

An index made before the keyword index existed has no table. Its next writer builds it, in that
writer's transaction (``create``: one pass over the stored chunks, once); until then a reader logs
one warning and searches by vectors only, since a reader writes nothing.

User text never reaches FTS5 as query syntax: a question is cut into the retrieval vocabulary
(``qa.retrieve.tokenize``: lower-cased words without stopwords), each word becomes a quoted FTS5
string, and the words are OR-ed. A question without such a word matches nothing.

Single letters are left out of the query: they are what possessives and initials leave ("world's"
gives "s", "U.S." gives "u" and "s"), they occur in most chunks, and every chunk a query matches
is scored. Leaving them out cut the 95th-percentile time of newsqa_cnn_dev questions over BBC from
15.9 to 9.3 ms and moved recall@5 by at most 0.2 points (benchmarks/keyword.py). Digits stay.
"""
from __future__ import annotations

import functools
import logging
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

from qa.retrieve import tokenize

log = logging.getLogger(__name__)

TABLE = "keywords"
# remove_diacritics 2: "café" and "cafe" are one word, as a user types either.
SCHEMA = (f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(title, text, content='', "
          "tokenize='unicode61 remove_diacritics 2')")
# bm25() weights of the (title, text) columns: a title word counts TITLE_WEIGHT times a word of
# the chunk; every chunk of an article carries its title. No question set here has real headlines
# (newsqa_cnn_dev's are placeholders), so benchmarks/keyword.py measures the weight on two others:
# recall@5 of the gold article, keyword side alone, for title weights 0 / 1 / 2 / 3 / 5:
#   BBC leads as questions, body under its headline (2,090 q)   73.7 / 83.8 / 85.4 / 85.7 / 85.8
#   SQuAD v1.1 dev, paragraphs under article titles (1,047 q)   94.8 / 94.9 / 94.7 / 94.7 / 94.3
# 2 takes most of the gain where headlines carry the question's words and costs SQuAD, whose
# titles are shared by ~50 paragraphs each, 2 questions.
TITLE_WEIGHT = 2.0
TEXT_WEIGHT = 1.0
WEIGHTS = (TITLE_WEIGHT, TEXT_WEIGHT)


def exists(db: sqlite3.Connection) -> bool:
    """Whether the database has the keyword index (an index made by an older newsqa has not)."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                      (TABLE,)).fetchone() is not None


def create(db: sqlite3.Connection) -> None:
    """Create the keyword index of an index that has none, indexing every stored chunk: the
    upgrade of an index made by an older newsqa, done once, by its first writer."""
    db.execute(SCHEMA)
    db.execute(f"INSERT INTO {TABLE} (rowid, title, text) SELECT c.id, d.title, c.text "
               "FROM chunks c JOIN documents d ON d.id = c.doc_id")


def add(db: sqlite3.Connection, title: str, chunks: Iterable[tuple[int, str]]) -> None:
    """Index one article's chunks, given as (chunk id, text), under its title."""
    db.executemany(f"INSERT INTO {TABLE} (rowid, title, text) VALUES (?, ?, ?)",
                   ((chunk_id, title, text) for chunk_id, text in chunks))


def remove(db: sqlite3.Connection, doc_id: str) -> None:
    """Unindex an article's chunks; call it before their rows are deleted (see above)."""
    db.execute(f"INSERT INTO {TABLE} ({TABLE}, rowid, title, text) "
               "SELECT 'delete', c.id, d.title, c.text FROM chunks c "
               "JOIN documents d ON d.id = c.doc_id WHERE c.doc_id = ?", (doc_id,))


def match_expression(query: str) -> str | None:
    """The FTS5 query for ``query``: its distinct words but single letters, each a quoted string
    (``tokenize`` yields runs of word characters, never a quote), OR-ed; None for no word."""
    terms = dict.fromkeys(t for t in tokenize(query) if len(t) > 1 or t.isdigit())
    return " OR ".join(f'"{term}"' for term in terms) or None


def search(db: sqlite3.Connection, query: str, k: int, where: str = "",
           params: Sequence[object] = (), *,
           weights: tuple[float, float] = WEIGHTS) -> list[tuple[int, float]]:
    """The ``k`` chunks that best match ``query``, as (chunk id, BM25 score), best first.

    FTS5's ``bm25()`` is negative, lower is better; the score returned is its negation, so
    higher is better and every match scores above 0. ``where`` (none: "") is a condition on the
    chunk's document ``d`` with its ``params`` (the store's translation of a ``Filter``).
    """
    expression = match_expression(query)
    if expression is None or k <= 0:
        return []
    ranked = (f"SELECT rowid AS id, -bm25({TABLE}, ?, ?) AS score FROM {TABLE} "
              f"WHERE {TABLE} MATCH ?")
    if where:  # every match is checked against the filter, then ranked
        rows = db.execute(
            f"SELECT k.id, k.score FROM ({ranked}) k JOIN chunks c ON c.id = k.id "
            f"JOIN documents d ON d.id = c.doc_id WHERE {where} "
            "ORDER BY k.score DESC, k.id LIMIT ?", (*weights, expression, *params, k))
    else:  # ranked first, so that only the k best are looked up in ``chunks``
        rows = db.execute(
            f"SELECT k.id, k.score FROM ({ranked} ORDER BY score DESC, id LIMIT ?) k "
            "JOIN chunks c ON c.id = k.id ORDER BY k.score DESC, k.id",
            (*weights, expression, k))
    return [(int(chunk_id), float(score)) for chunk_id, score in rows]


@functools.lru_cache(maxsize=None)  # one line per index and process, not one per question
def warn_missing(path: Path) -> None:
    """Say once that the index at ``path`` has no keyword index yet."""
    log.warning("The index at %s was made by an older newsqa and has no keyword index yet: "
                "questions use vector search only until the next change to the index (adding "
                "or deleting an article) builds it.", path)
