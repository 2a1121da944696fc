"""The FAISS vector index: search with masks, incremental saves, readers, compaction, crashes."""
from __future__ import annotations

import itertools
import re
import sqlite3
from pathlib import Path

import faiss
import numpy as np
import pytest

from qa.errors import StoreError
from qa.store.local import vectors
from qa.store.local.attributes import ChunkAttributes, date_key
from qa.store.local.vectors import EXACT_SPEC, FaissVectors
from qa.types import Filter

ROOT = Path(__file__).resolve().parents[2]
DIMENSION = 384
DATABASE = "test.sqlite"


# ------------------------------------------------------------------------- a store in miniature


class Rows:
    """The float vectors of record in a table of the test database, as the store keeps them."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]

    def batches(self, size: int):
        cursor = self.db.execute("SELECT id, vector FROM rows ORDER BY id")
        while batch := cursor.fetchmany(size):
            ids = np.array([row[0] for row in batch], dtype=np.int64)
            yield ids, np.frombuffer(b"".join(row[1] for row in batch),
                                     dtype=np.float32).reshape(len(batch), DIMENSION)


class Side:
    """One process's view of an index directory, driving ``FaissVectors`` as the store does:
    changes in one write transaction, ``save`` before the commit, ``tidy`` after it."""

    def __init__(self, directory: Path) -> None:
        self.db = sqlite3.connect(directory / DATABASE)
        self.db.execute("PRAGMA journal_mode = WAL")
        for statement in (*vectors.SCHEMA,
                          "CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, vector BLOB)",
                          "CREATE TABLE IF NOT EXISTS meta (generation INTEGER)"):
            self.db.execute(statement)
        if self.db.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0:
            self.db.execute("INSERT INTO meta VALUES (0)")
        self.db.commit()
        self.vectors = FaissVectors(directory, DIMENSION, Rows(self.db))
        self.writing = False
        self.catch_up()

    def committed(self) -> int:
        return self.db.execute("SELECT generation FROM meta").fetchone()[0]

    def catch_up(self) -> None:
        self.db.execute("BEGIN")
        self.vectors.catch_up(self.db, self.committed())
        self.db.commit()

    def _begin(self) -> None:
        if not self.writing:
            self.catch_up()
            self.db.execute("BEGIN IMMEDIATE")
            self.writing = True

    def add(self, ids, rows: np.ndarray) -> None:
        self._begin()
        ids = np.asarray(ids, dtype=np.int64)
        self.db.executemany("INSERT INTO rows VALUES (?, ?)",
                            ((int(i), row.tobytes()) for i, row in zip(ids, rows)))
        self.vectors.add(ids, rows)

    def remove(self, ids) -> None:
        self._begin()
        self.db.executemany("DELETE FROM rows WHERE id = ?", ((int(i),) for i in ids))
        self.vectors.remove(np.asarray(ids, dtype=np.int64))

    def prepare(self) -> int:
        """A save up to its commit: the files are written, the rows recorded."""
        generation = self.committed() + 1
        self.db.execute("UPDATE meta SET generation = ?", (generation,))
        self.vectors.save(self.db, generation)
        return generation

    def save(self) -> None:
        self.prepare()
        self.db.commit()
        self.writing = False
        self.vectors.tidy(self.db)

    def search(self, vector: np.ndarray, k: int, allowed=None) -> list[int]:
        return [i for i, _ in self.vectors.search(vector, k, allowed)]


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def random_rows(n: int, seed: int = 0) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, DIMENSION)))


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("vectors-"))


def mask_of(ids, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[list(ids)] = True
    return mask


@pytest.fixture(scope="module")
def real_rows(embedder) -> tuple[np.ndarray, np.ndarray]:
    """3,000 real-ish vectors: MiniLM embeddings of 150 sentences of the README and the seed
    article, and perturbed copies of them (cosine about 0.9), as benchmarks/scale.py makes
    them; and queries: the embeddings of up to 100 other sentences."""
    text = (ROOT / "README.md").read_text() + (ROOT / "seeds").joinpath(
        "000_2ffe86633dc2dc73.txt").read_text()
    sentences = sorted({s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text)
                        if len(s.split()) >= 6})
    real = embedder.encode(sentences[:150])
    rng = np.random.default_rng(0)
    copies = real[rng.integers(0, len(real), 3000 - len(real))]
    noise = rng.standard_normal(copies.shape) * np.sqrt((1 / 0.9 ** 2 - 1) / DIMENSION)
    return np.vstack([real, unit(copies + noise)]), embedder.encode(sentences[150:250])


# ------------------------------------------------------------------------- search


def test_exact_index_adds_removes_and_finds_each_vector_itself(tmp_path):
    side = Side(tmp_path)
    rows = random_rows(50)
    side.add(np.arange(1, 51), rows)
    assert side.vectors.index_type == EXACT_SPEC and len(side.vectors) == 50
    for i in (1, 25, 50):
        best, score = side.vectors.search(rows[i - 1], 1)[0]
        assert best == i and score == pytest.approx(1.0, abs=1e-5)
    side.remove([25, 26])
    assert len(side.vectors) == 48
    assert not {25, 26} & set(side.search(rows[24], 48))
    assert len(side.search(rows[0], 100)) == 48


def test_a_mask_keeps_only_allowed_and_live_ids(tmp_path):
    side = Side(tmp_path)
    rows = random_rows(40)
    side.add(np.arange(40), rows)
    even = mask_of(range(0, 40, 2), 40)
    assert set(side.search(rows[3], 40, even)) == set(range(0, 40, 2))
    side.remove([0, 2])
    assert set(side.search(rows[3], 40, even)) == set(range(4, 40, 2))
    assert side.search(rows[3], 5, mask_of([1], 2)) == [1]  # a mask shorter than the ids
    assert side.search(rows[3], 5, np.zeros(40, dtype=bool)) == []


def test_ivf_recall_against_exact_search_on_real_vectors(tmp_path, monkeypatch, real_rows):
    """Past APPROXIMATE_FROM (lowered here) a save trains IVF on the stored vectors; probing a
    tenth of its lists, its top 10 must still be nearly the exact top 10."""
    rows, queries = real_rows
    monkeypatch.setattr(vectors, "APPROXIMATE_FROM", 1000)
    monkeypatch.setattr(vectors, "NPROBE", vectors.nlist_for(len(rows)) // 10)
    side = Side(tmp_path)
    side.add(np.arange(1, len(rows) + 1), rows)
    side.save()
    assert side.vectors.index_type == f"IVF{vectors.nlist_for(len(rows))},{vectors.CODEC}"
    truth = np.argsort(-(queries @ rows.T), axis=1)[:, :10] + 1
    recall = np.mean([len(set(side.search(q, 10)) & set(t)) / 10
                      for q, t in zip(queries, truth)])
    assert recall >= 0.9


def test_filtered_ivf_search_probes_by_how_much_the_mask_keeps(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors, "APPROXIMATE_FROM", 1000)
    monkeypatch.setattr(vectors, "NPROBE", 8)  # of 100 lists
    side = Side(tmp_path)
    rows = random_rows(4000)
    side.add(np.arange(4000), rows)
    side.save()
    nlist = vectors.nlist_for(4000)
    stats = faiss.cvar.indexIVF_stats

    def lists_probed(mask) -> int:
        stats.reset()
        side.vectors.search(rows[7], 10, mask)
        return stats.nlist

    assert lists_probed(None) == vectors.NPROBE
    most = mask_of(range(0, 4000), 4000)
    most[::10] = False  # keeps 90%
    some = mask_of(range(0, 4000, 20), 4000)  # keeps 5%
    assert vectors.NPROBE < lists_probed(most) < lists_probed(some) < nlist
    asked = mask_of(range(0, 4000, 200), 4000)  # 20 ids: every list, all found
    assert lists_probed(asked) == nlist
    assert sorted(side.search(rows[7], 50, asked)) == list(range(0, 4000, 200))
    few = mask_of(range(0, 4000, 800), 4000)  # 5 ids: exact over them, no list read
    assert lists_probed(few) == 0
    found = dict(side.vectors.search(rows[7], 3, few))
    scored = dict(side.vectors.search(rows[7], 4000))  # as every list's scan scores them
    assert list(found) == sorted(range(0, 4000, 800), key=lambda i: -scored[i])[:3]
    assert all(found[i] == pytest.approx(scored[i], abs=1e-5) for i in found)


# ------------------------------------------------------------------------- saving and loading


def test_a_small_save_writes_a_segment_of_what_it_added_and_records_removals(tmp_path):
    side = Side(tmp_path)
    rows = random_rows(130)
    side.add(np.arange(100), rows[:100])
    side.save()
    assert files(tmp_path) == ["vectors-1.faiss"]  # the first save is a base
    base = (tmp_path / "vectors-1.faiss").stat()

    side.add(np.arange(100, 110), rows[100:110])
    side.remove([5, 6])
    side.save()
    assert files(tmp_path) == ["vectors-1.faiss", "vectors-2.seg"]
    assert (tmp_path / "vectors-1.faiss").stat().st_mtime_ns == base.st_mtime_ns
    code_size = DIMENSION * 4  # exact: float codes
    assert (tmp_path / "vectors-2.seg").stat().st_size == 32 + 10 * (8 + code_size)
    assert side.db.execute("SELECT chunk_id, generation FROM vector_removals "
                           "ORDER BY chunk_id").fetchall() == [(5, 2), (6, 2)]

    fresh = Side(tmp_path)
    assert len(fresh.vectors) == 108
    assert fresh.search(rows[105], 1) == [105] and 5 not in fresh.search(rows[5], 108)


def test_a_reader_holding_a_generation_reads_only_the_newer_segments(tmp_path):
    writer = Side(tmp_path)
    rows = random_rows(120)
    writer.add(np.arange(100), rows[:100])
    writer.save()
    reader = Side(tmp_path)
    writer.add(np.arange(100, 110), rows[100:110])
    writer.remove([3])
    writer.save()
    # Were the reader to read the base again it would fail: it must read the segment alone.
    (tmp_path / "vectors-1.faiss").write_bytes(b"garbage")
    reader.catch_up()
    assert len(reader.vectors) == 109
    assert reader.search(rows[104], 1) == [104] and 3 not in reader.search(rows[3], 109)
    with pytest.raises(StoreError, match="vectors-1.faiss is corrupt"):
        Side(tmp_path)


def test_compaction_writes_a_new_base_and_keeps_the_previous_generations_files(tmp_path):
    writer = Side(tmp_path)
    rows = random_rows(200)
    writer.add(np.arange(100), rows[:100])
    writer.save()  # base 1: 100
    for generation, start in ((2, 100), (3, 110)):
        writer.add(np.arange(start, start + 10), rows[start:start + 10])
        writer.save()  # 10, then 20 changes since the base: under 25%
    assert files(tmp_path) == ["vectors-1.faiss", "vectors-2.seg", "vectors-3.seg"]
    writer.add(np.arange(120, 135), rows[120:135])
    writer.save()  # 35 changes of 135: a new base; generation 3's files stay for its readers
    assert files(tmp_path) == ["vectors-1.faiss", "vectors-2.seg", "vectors-3.seg",
                               "vectors-4.faiss"]
    assert writer.db.execute("SELECT generation, kind FROM vector_files").fetchall() == [
        (4, "base")]
    writer.add(np.arange(135, 136), rows[135:136])
    writer.save()
    assert files(tmp_path) == ["vectors-4.faiss", "vectors-5.seg"]
    reader = Side(tmp_path)
    assert len(reader.vectors) == 136 and reader.search(rows[135], 1) == [135]


def test_bulk_indexing_writes_a_bounded_multiple_of_the_final_index(tmp_path):
    """Saving after every small batch rewrote the whole index each time (quadratic bytes);
    segments and geometric compaction write a bounded multiple of the final size."""
    side = Side(tmp_path)
    rows = random_rows(2000)
    written = 0
    for start in range(0, 2000, 20):
        side.add(np.arange(start, start + 20), rows[start:start + 20])
        side.save()
        written += sum((tmp_path / name).stat().st_size for name in files(tmp_path)
                       if f"-{side.committed()}." in name)
    final = 2000 * DIMENSION * 4
    assert written <= (2 + 1 / vectors.COMPACT_SHARE) * final  # rewriting: 50x the final size
    assert len(Side(tmp_path).vectors) == 2000


def test_a_crash_between_the_segment_and_the_commit_leaves_the_committed_generation(tmp_path):
    writer = Side(tmp_path)
    rows = random_rows(120)
    writer.add(np.arange(100), rows[:100])
    writer.save()
    writer.add(np.arange(100, 105), rows[100:105])
    writer.prepare()  # the segment of generation 2 is on disk...
    assert "vectors-2.seg" in files(tmp_path)
    writer.db.close()  # ...and the process dies before the commit

    reader = Side(tmp_path)
    assert reader.committed() == 1 and len(reader.vectors) == 100
    assert reader.vectors.untidy()  # the uncommitted segment is a leftover
    reader.vectors.tidy(reader.db)
    assert files(tmp_path) == ["vectors-1.faiss"]

    other = Side(tmp_path)  # the next writer commits generation 2 with other vectors
    other.add(np.arange(105, 110), rows[105:110])
    other.save()
    again = Side(tmp_path)
    assert len(again.vectors) == 105 and again.search(rows[107], 1) == [107]
    assert 102 not in again.search(rows[102], 105)


def test_a_missing_base_is_rebuilt_from_the_stored_vectors_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors, "APPROXIMATE_FROM", 1000)
    writer = Side(tmp_path)
    rows = random_rows(1500)
    writer.add(np.arange(1500), rows)
    writer.save()
    writer.add(np.arange(1500, 1501), random_rows(1, seed=1))
    writer.save()  # a segment after the IVF base
    (tmp_path / "vectors-1.faiss").unlink()

    reader = Side(tmp_path)
    assert len(reader.vectors) == 1501 and reader.vectors.index_type.startswith("IVF")
    assert reader.vectors.untidy()
    reader.vectors.tidy(reader.db)
    assert files(tmp_path) == ["vectors-2.faiss"]
    assert reader.db.execute("SELECT generation, kind FROM vector_files").fetchall() == [
        (2, "base")]
    # the writer's index was trained apart from the rebuilt one: it must load the new base
    writer.add(np.arange(1501, 1502), random_rows(1, seed=2))
    writer.save()
    assert Side(tmp_path).search(random_rows(1, seed=2)[0], 1) == [1501]


def test_a_segment_of_another_base_or_a_short_one_is_a_store_error(tmp_path):
    writer = Side(tmp_path)
    rows = random_rows(110)
    writer.add(np.arange(100), rows[:100])
    writer.save()
    writer.add(np.arange(100, 101), rows[100:101])
    writer.save()
    segment = tmp_path / "vectors-2.seg"
    segment.write_bytes(segment.read_bytes()[:-1])
    with pytest.raises(StoreError, match="vectors-2.seg is corrupt"):
        Side(tmp_path)


# ------------------------------------------------------------------------- filter columns


def test_attribute_masks_compare_dates_as_iso_prefixes_and_sources_case_insensitively():
    """The mask must agree with the SQL filter's semantics: prefix comparison of ISO text."""
    published = ["", "2024", "2024-05", "2024-05-17", "2024-05-17T09:30:00Z", "2024-05-31",
                 "2024-06-01T00:00:00+02:00", "2023-12-31", "not a date"]
    sources = ["Reuters", "reuters", "BBC"]
    rows = [(i + 1, source, date) for i, (source, date) in
            enumerate(itertools.product(sources, published))]
    attributes = ChunkAttributes()
    attributes.extend(rows[:10])
    attributes.extend(rows[10:])
    bounds = [None, "2024", "2024-05", "2024-05-17", "2024-05-17T09", "2024-05-31T23:59:59"]

    def kept(row, flt: Filter) -> bool:
        _, source, date = row
        if flt.sources and source.lower() not in {s.lower() for s in flt.sources}:
            return False
        undated = date_key(date) == ChunkAttributes.UNDATED
        if undated:
            return flt.include_undated
        return ((flt.date_from is None or date[:len(flt.date_from)] >= flt.date_from)
                and (flt.date_to is None or date[:len(flt.date_to)] <= flt.date_to))

    for low, high, undated, chosen in itertools.product(
            bounds, bounds, (True, False), ((), ("REUTERS",), ("bbc", "nowhere"))):
        flt = Filter(sources=chosen, date_from=low, date_to=high, include_undated=undated)
        mask = attributes.mask(flt)
        assert [bool(mask[row[0]]) for row in rows] == [kept(row, flt) for row in rows], flt
