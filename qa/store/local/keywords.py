"""The keyword side of retrieval: BM25 over chunk text and article titles, in SQLite FTS5.

The index is the FTS5 table ``keywords`` (rowid = chunk id) in the store's database, written in
the transaction that writes the chunks: a save commits both or neither, and a reader's snapshot
sees one generation of both. Adding or deleting a document touches its own rows only; nothing is
rebuilt from the whole corpus. ``benchmarks/keyword.py`` compares it with ``bm25s`` and the
``rank_bm25`` it replaced (build, add, query time and recall).

The table is contentless (``content=''``): the text is already in ``chunks``, and a copy would
double it on disk. Deleting from such a table takes the values that were indexed, so ``remove``
reads them from ``chunks`` and ``documents`` before those rows go. Every search checks its hits
against ``chunks`` (ids are never reused), so a posting left behind could never name another chunk.

An index made before the keyword index existed has no table. Its next writer builds it, in that
writer's transaction (``create``: one pass over the stored chunks, once); until then a reader logs
one warning and searches by vectors only, since a reader writes nothing.

User text never reaches FTS5 as query syntax: a question is cut into the retrieval vocabulary
(``qa.text.tokenize``: lower-cased words without stopwords), each word becomes a quoted FTS5
string, and the words are OR-ed. A question without such a word matches nothing.

Single letters are left out of the query: they are what possessives and initials leave ("world's"
gives "s", "U.S." gives "u" and "s"), they occur in most chunks, and every chunk a query matches
is scored. Leaving them out cut the 95th-percentile time of newsqa_cnn_dev questions over BBC from
15.9 to 9.3 ms and moved recall@5 by at most 0.2 points (benchmarks/keyword.py). Digits stay.

The work of one search is bounded, whatever the size of the index. FTS5 scores every chunk that
holds any query word, and ``bm25()`` costs about 1.7 µs per chunk at 1M chunks (it looks up each
one's length), with no top-k pruning: at 1M chunks a question's words matched 27k chunks at the
median and 208k at the 95th percentile (44 / 284 ms, benchmarks/scale.py). So each word's matches
are counted first (a count stops at the budget and costs about 0.1 µs a match), and the rarest
words are kept while their matches add up to at most ``SCORED_MATCHES``: only chunks holding a
kept word are scored, but they are scored with every word of the question, as
``(kept words OR-ed) AND (all words OR-ed)``, in which FTS5's ``bm25()`` counts the kept words
twice. A word in more chunks than the budget has a low inverse document frequency and weighs
least in BM25, and the dense side reads the question too. When even the rarest word is over the
budget, the words must all be present (AND), if that is within the budget; otherwise the keyword
side returns nothing and the dense side answers alone. An index with no more chunk ids than the
budget is searched exactly, all words OR-ed.

What the budget costs, simulated at the same share of a smaller index (the 7,661 chunks of the
newsqa_cnn_dev articles, budget 38 = 0.5%, as 5,000 is of 1M; 999 questions): hybrid recall@5 of
the gold article 85.0 against 85.3 exact, recall@1 66.6 against 67.4; dropping the common words
outright instead of scoring with them gave 84.0 and 64.9.
"""
from __future__ import annotations

import functools
import itertools
import json
import logging
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from qa.text import tokenize

log = logging.getLogger(__name__)

TABLE = "keywords"
# remove_diacritics 2: "café" and "cafe" are one word, as a user types either.
SCHEMA = (f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(title, text, content='', "
          "tokenize='unicode61 remove_diacritics 2')")
# bm25() weights of the (title, text) columns: a title word counts TITLE_WEIGHT times a word of
# the chunk; every chunk of an article carries its title. No question set here has real headlines
# (newsqa_cnn_dev's are placeholders), so benchmarks/keyword.py measures the weight on two others:
# recall@5 of the gold article, keyword side alone, for title weights 0 / 1 / 2 / 3 / 5:
#   BBC leads as questions, body under its headline (2,090 q)   73.4 / 83.6 / 85.1 / 85.5 / 85.1
#   SQuAD v1.1 dev, paragraphs under article titles (1,047 q)   94.8 / 94.9 / 94.7 / 94.7 / 94.3
# 2 takes most of the gain where headlines carry the question's words and costs SQuAD, whose
# titles are shared by ~50 paragraphs each, 2 questions.
TITLE_WEIGHT = 2.0
TEXT_WEIGHT = 1.0
WEIGHTS = (TITLE_WEIGHT, TEXT_WEIGHT)
# The most matches one search scores (see above). At 1M chunks (benchmarks/scale.py), budgets of
# 5,000 and 10,000 gave keyword p50 / p95 of 9.7 / 24.5 and 12.6 / 26.5 ms, the common words'
# document frequencies included (bm25() reads each word's whole list for them).
SCORED_MATCHES = 5_000


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


def query_terms(query: str) -> list[str]:
    """The words of ``query`` a search looks for: its distinct retrieval words (``tokenize``
    yields runs of word characters, never a quote) but single letters."""
    return list(dict.fromkeys(t for t in tokenize(query) if len(t) > 1 or t.isdigit()))


def _quoted(terms: Sequence[str], operator: str) -> str:
    """An FTS5 query of ``terms``, each a quoted string, joined by ``operator`` (OR, AND)."""
    return f" {operator} ".join(f'"{term}"' for term in terms)


def _matches(db: sqlite3.Connection, expression: str, limit: int) -> int:
    """How many chunks match ``expression``, counted up to ``limit`` (no scoring)."""
    return db.execute(f"SELECT count(*) FROM (SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH ? "
                      "LIMIT ?)", (expression, limit)).fetchone()[0]


def _affordable_expression(db: sqlite3.Connection, terms: Sequence[str],
                          budget: int = SCORED_MATCHES) -> str | None:
    """The FTS5 query for ``terms`` that scores at most ``budget`` chunks (see above); None
    when nothing affordable matches."""
    if not terms:
        return None
    if (db.execute("SELECT max(id) FROM chunks").fetchone()[0] or 0) <= budget:
        return _quoted(terms, "OR")  # a small index: all of it costs less than the budget
    counts = {term: _matches(db, f'"{term}"', budget + 1) for term in terms}
    present = sorted((term for term in terms if counts[term]), key=counts.__getitem__)
    if not present:
        return None
    kept, total = [], 0
    for term in present:  # rarest first
        if total + counts[term] > budget:
            break
        kept.append(term)
        total += counts[term]
    if kept == present:
        return _quoted(kept, "OR")
    if kept:  # match by the kept words, score by all (the kept ones twice: FTS5 sums phrases)
        return f"({_quoted(kept, 'OR')}) AND ({_quoted(present, 'OR')})"
    every = _quoted(present, "AND")
    return every if _matches(db, every, budget + 1) <= budget else None


def search(db: sqlite3.Connection, query: str, k: int, allowed: np.ndarray | None = None, *,
           weights: tuple[float, float] = WEIGHTS,
           budget: int = SCORED_MATCHES) -> list[tuple[int, float]]:
    """The ``k`` chunks that best match ``query``, as (chunk id, BM25 score), best first.

    FTS5's ``bm25()`` is negative, lower is better; the score returned is its negation, so
    higher is better and every match scores above 0. ``allowed`` (None: every chunk) is the
    store's mask over chunk ids for a ``Filter``: the ranked matches are read best first until
    ``k`` of them pass it, so a filter adds no work per match. At most ``budget`` matches are
    scored (see above).
    """
    expression = _affordable_expression(db, query_terms(query), budget)
    if expression is None or k <= 0:
        return []
    ranked = db.execute(f"SELECT rowid, -bm25({TABLE}, ?, ?) AS score FROM {TABLE} "
                        f"WHERE {TABLE} MATCH ? ORDER BY score DESC, rowid"
                        + (" LIMIT ?" if allowed is None else ""),
                        (*weights, expression) + ((k,) if allowed is None else ()))
    if allowed is None:
        hits = ranked.fetchall()
    else:
        hits = list(itertools.islice(((i, score) for i, score in ranked
                                      if i < len(allowed) and allowed[i]), k))
    # a posting whose chunk is gone (it cannot be: both change in one transaction) never counts
    present = {row[0] for row in db.execute(
        "SELECT id FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps([i for i, _ in hits]),))}
    return [(int(i), float(score)) for i, score in hits if i in present]


@functools.lru_cache(maxsize=None)  # one line per index and process, not one per question
def warn_missing(path: Path) -> None:
    """Say once that the index at ``path`` has no keyword index yet."""
    log.warning("The index at %s was made by an older newsqa and has no keyword index yet: "
                "questions use vector search only until the next change to the index (adding "
                "or deleting an article) builds it.", path)
