"""Tests for qa.chunk: the offset invariant on random text, and how sentences are packed."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import qa.chunk as chunk_module
from qa.chunk import Chunker, _sentences, _trim
from qa.ingest.documents import make_document
from qa.ingest.files import load
from qa.types import Chunk, Document

SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_2ffe86633dc2dc73.txt"

# Text made to hit the splitter's edge cases: sentence ends, quotes, blank lines, unicode spaces.
TRICKY = st.sampled_from([" ", "\n", "\n\n", "\t", "\u00a0", "\u2028", "\u3000",
                          ".", "!", "?", "...", "…", '"', "”", "'", ")", "Mr.", "U.S.",
                          "é", "漢", "🙂", "a", "word"])
TEXT = st.lists(st.one_of(TRICKY, st.text(max_size=12)), max_size=80).map("".join)


def check_invariants(doc: Document, chunks: list[Chunk], max_chars: int) -> None:
    """What every consumer of chunks relies on."""
    for chunk in chunks:
        assert chunk.doc_id == doc.id
        assert chunk.text == doc.text[chunk.start:chunk.end]
        assert chunk.text and chunk.text == chunk.text.strip()
        assert len(chunk.text) <= max_chars
    for before, after in zip(chunks, chunks[1:]):
        assert before.start < after.start and before.end < after.end
    covered = {i for chunk in chunks for i in range(chunk.start, chunk.end)}
    assert all(i in covered for i, char in enumerate(doc.text) if not char.isspace())


@given(text=TEXT | st.text(max_size=300), max_chars=st.integers(1, 120),
       overlap=st.integers(0, 3))
@example(text="", max_chars=5, overlap=1)
@example(text=" \n\n\t\u3000 ", max_chars=5, overlap=1)
@example(text="x" * 301, max_chars=100, overlap=1)
@example(text="A very long sentence without any stop " * 20, max_chars=50, overlap=2)
@example(text="One. Two. Three. Four.", max_chars=1, overlap=3)
def test_chunks_are_exact_bounded_ordered_and_cover_the_text(text: str, max_chars: int,
                                                             overlap: int) -> None:
    doc = Document(id="doc", text=text)
    check_invariants(doc, Chunker(max_chars, overlap).split(doc), max_chars)


def test_whitespace_only_document_has_no_chunks() -> None:
    assert Chunker().split(Document(id="doc", text=" \n\n ")) == []


def test_sentences_are_packed_greedily_without_overlap() -> None:
    doc = make_document("One. Two. Three.")
    texts = [c.text for c in Chunker(max_chars=10, overlap_sentences=0).split(doc)]
    assert texts == ["One. Two.", "Three."]


def test_next_window_repeats_the_last_sentence() -> None:
    doc = make_document("One. Two. Three.")
    texts = [c.text for c in Chunker(max_chars=11, overlap_sentences=1).split(doc)]
    assert texts == ["One. Two.", "Two. Three."]


def test_overlap_is_dropped_when_it_does_not_fit_with_the_next_sentence() -> None:
    doc = make_document("Aaaaaaaa. Bbbbbbbb. Cccccccccccccccc.")
    texts = [c.text for c in Chunker(max_chars=20, overlap_sentences=1).split(doc)]
    assert texts == ["Aaaaaaaa. Bbbbbbbb.", "Cccccccccccccccc."]


def test_sentence_ends_after_closing_quote_and_at_blank_line() -> None:
    doc = make_document('Headline without a stop\n\nHe said "Stop." Then he left.')
    texts = [c.text for c in Chunker(max_chars=24, overlap_sentences=0).split(doc)]
    assert texts == ["Headline without a stop", 'He said "Stop."', "Then he left."]


def test_long_sentence_is_split_at_whitespace() -> None:
    doc = make_document("word " * 99 + "end.")
    chunks = Chunker(max_chars=50, overlap_sentences=1).split(doc)
    check_invariants(doc, chunks, 50)
    assert len(chunks) > 1
    assert all(token in ("word", "end.") for c in chunks for token in c.text.split())


def test_text_without_whitespace_is_hard_split() -> None:
    doc = make_document("x" * 250)
    assert [len(c.text) for c in Chunker(max_chars=100).split(doc)] == [100, 100, 50]


def test_seed_article_chunks_are_whole_overlapping_sentences() -> None:
    doc = load([SEED])[0]
    # 800, not the default 600: one photo caption of the seed is a 640-character "sentence"
    # (no full stop), which a 600-character window must cut at a space.
    chunks = Chunker(max_chars=800).split(doc)
    check_invariants(doc, chunks, 800)
    assert len(chunks) > 1 and chunks[0].start == 0 and chunks[-1].end == len(doc.text)
    for chunk in chunks:
        assert chunk.start == 0 or doc.text[chunk.start - 1].isspace()
        assert chunk.text[-1] in '.!?"' or doc.text[chunk.end:].startswith("\n\n")
    assert all(after.start < before.end for before, after in zip(chunks, chunks[1:]))


def test_seed_article_chunks_do_not_overlap_without_overlap_sentences() -> None:
    doc = load([SEED])[0]
    chunks = Chunker(overlap_sentences=0).split(doc)
    check_invariants(doc, chunks, 800)
    assert all(before.end < after.start for before, after in zip(chunks, chunks[1:]))


@pytest.mark.parametrize("kwargs", [{"max_chars": 0}, {"overlap_sentences": -1}])
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Chunker(**kwargs)


# --- linear time on hostile text -------------------------------------------------------------

# The sentence pattern the scan replaced: right on any text, but retried from every character of
# a run of stops with no space after it (quadratic). Used here only as the reference behaviour.
BACKTRACKING_BREAK = re.compile(r"[.!?…]+[\"'”’»)\]]*\s+|\n\s*\n")


def backtracking_sentences(text: str) -> list[tuple[int, int]]:
    starts = [0] + [m.end() for m in BACKTRACKING_BREAK.finditer(text)]
    spans = (_trim(text, s, e) for s, e in zip(starts, starts[1:] + [len(text)]))
    return [span for span in spans if span is not None]


@given(text=TEXT | st.text(max_size=300))
@example(text="a\n \u2028\nb\n\u2028c.\")  \n\nd")
@example(text='x.".". y.\n) \n\nz')
def test_sentence_scan_splits_like_the_backtracking_pattern(text: str) -> None:
    assert _sentences(text) == backtracking_sentences(text)


class RecordingPattern:
    """A compiled pattern of ``qa.chunk`` that records how much text each call reads.

    A call reads from its start to where it stops: the end of its match, or the end of its range
    when it fails. Patterns with a greedy ``.*`` read to the end of their range in any case.
    Only positioned calls exist, so a ``finditer`` (whose retries cannot be seen) fails the test.
    """

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.reads_to_end = ".*" in pattern.pattern
        self.read = 0

    def _record(self, found: re.Match[str] | None, text: str, pos: int, endpos: int
                ) -> re.Match[str] | None:
        end = min(endpos, len(text))
        self.read += (found.end() if found and not self.reads_to_end else end) - pos
        return found

    def search(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self._record(self.pattern.search(text, pos, endpos), text, pos, endpos)

    def match(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self._record(self.pattern.match(text, pos, endpos), text, pos, endpos)


HOSTILE = {
    "stops and closing marks, no space": "x" + ".!?…\")»]" * 12_500,
    "dots, no space": "." * 100_000,
    "stops between closing marks": '.".' * 33_334,
    "one newline, then spaces": "a\n" + " " * 100_000 + "b",
    "newlines and spaces": "a" + "\n " * 50_000 + "b",
    "one long sentence of words": "word " * 20_000,
    "sentences of one letter": "a. " * 33_334,
}


@pytest.mark.parametrize("name", HOSTILE)
def test_chunking_reads_each_character_a_bounded_number_of_times(
        monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    text = HOSTILE[name]
    recorders = [RecordingPattern(value) for value in vars(chunk_module).values()
                 if isinstance(value, re.Pattern)]
    for recorder in recorders:
        for attr, value in vars(chunk_module).items():
            if value is recorder.pattern:
                monkeypatch.setattr(chunk_module, attr, recorder)
    doc = Document(id="doc", text=text)
    chunks = Chunker().split(doc)
    check_invariants(doc, chunks, 600)
    # about 4 reads a character (scan, trim, cut, trim piece); a backtracking pattern reads a
    # run of 100k stops ~5e9 times
    assert sum(r.read for r in recorders) <= 5 * len(text)


def test_100k_stops_without_space_are_cut_into_full_windows() -> None:
    doc = make_document("x" + ".!?…\")»]" * 12_500)
    chunks = Chunker(max_chars=600).split(doc)
    check_invariants(doc, chunks, 600)
    assert [len(c.text) for c in chunks] == [600] * 166 + [len(doc.text) - 166 * 600]
