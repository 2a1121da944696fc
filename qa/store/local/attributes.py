"""What a ``Filter`` keeps, as a mask over chunk ids: per chunk, its article's source and
publication date in numpy columns, so that a filtered search (``qa.store.local.vectors`` and
``qa.store.local.keywords``) builds no Python object per chunk."""
from __future__ import annotations

import re
from typing import Iterable

import numpy as np

from qa.types import Filter


class ChunkAttributes:
    """Per chunk id, its article's source and publication date, as numpy columns: what turns a
    ``Filter`` into a mask over chunk ids for ``VectorIndex.search`` without a Python object per
    chunk. Rows only ever arrive (chunk ids are never reused); removed chunks are masked by the
    vector index, which no longer holds them.

    Dates compare as the store's keyword filter compares them, as ISO prefixes: ``date_to``
    "2024-05" keeps all of May 2024. A date becomes a 14-digit number (YYYYMMDDhhmmss), its
    missing fields 0s in a date or a lower bound and 9s in an upper bound. Undated articles
    (and dates that are not ISO) pass the bounds unless ``include_undated`` is False.
    """

    UNDATED = -1

    def __init__(self) -> None:
        self._source = np.zeros(0, dtype=np.int32)
        self._published = np.zeros(0, dtype=np.int64)
        self._codes: dict[str, int] = {}
        self.last_id = 0  # the highest id added

    def extend(self, rows: Iterable[tuple[int, str, str]]) -> None:
        """Add (chunk id, source, published) rows of ids above ``last_id``."""
        rows = list(rows)
        if not rows:
            return
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        keys: dict[str, int] = {}
        published = np.fromiter(
            (keys[row[2]] if row[2] in keys else keys.setdefault(row[2], date_key(row[2]))
             for row in rows), dtype=np.int64, count=len(rows))
        source = np.fromiter((self._codes.setdefault(row[1].lower(), len(self._codes))
                              for row in rows), dtype=np.int32, count=len(rows))
        top = int(ids.max()) + 1
        self._source, self._published = grown(self._source, top), grown(self._published, top)
        self._source[ids], self._published[ids] = source, published
        self.last_id = max(self.last_id, top - 1)

    def mask(self, filter: Filter) -> np.ndarray:
        """True for the chunk ids whose article ``filter`` keeps (ids never added are False)."""
        size = self.last_id + 1
        mask = np.ones(size, dtype=bool)
        if filter.sources:
            codes = [self._codes[s.lower()] for s in filter.sources if s.lower() in self._codes]
            mask &= np.isin(self._source[:size], codes)
        published = self._published[:size]
        undated = published == self.UNDATED
        if not filter.include_undated:
            mask &= ~undated
        for bound, upper in ((filter.date_from, False), (filter.date_to, True)):
            if bound is not None:
                key = date_key(bound, upper=upper)
                mask &= (published <= key if upper else published >= key) | undated
        return mask


def grown(column: np.ndarray, size: int) -> np.ndarray:
    """``column`` with room for ``size`` ids, zero-filled; grown geometrically, as ids arrive in
    increasing order."""
    if size <= len(column):
        return column
    grown = np.zeros(max(size, 2 * len(column)), dtype=column.dtype)
    grown[:len(column)] = column
    return grown


_ISO_DATE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2}))?)?)?)?)?")


def date_key(value: str, *, upper: bool = False) -> int:
    """An ISO date prefix as a number that orders as prefixes compare (see ``ChunkAttributes``);
    ``ChunkAttributes.UNDATED`` when ``value`` does not start with an ISO date."""
    match = _ISO_DATE.match(value)
    if match is None:
        return ChunkAttributes.UNDATED
    digits = "".join(part for part in match.groups() if part)
    return int(digits.ljust(14, "9" if upper else "0"))
