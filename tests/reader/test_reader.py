"""Reader mechanics (windows, offsets, batching, merging) with a tiny random QA model, and span
decoding on the shipped reader's real logits.

Answer quality is not tested with the tiny model: it is random, so only how spans are found,
located and merged is checked. Backends (torch, ONNX Runtime) are tested in
test_reader_backends.py.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertForQuestionAnswering

import qa.reader.model
from qa.chunk import Chunker
from qa.errors import NewsQAError, QuestionError
from qa.reader.backends import make_backend
from qa.reader.model import Reader, ReadWork, reading_rounds
from qa.reader.spans import best_spans, decode_spans, trim
from qa.reader.windows import Windower
from qa.resources import DEFAULT_READER
from qa.types import Chunk, Document, Span

ROOT = Path(__file__).resolve().parents[2]
SEED_ARTICLE = ROOT / "seeds" / "000_2ffe86633dc2dc73.txt"
SEED_QUESTIONS = ROOT / "tests" / "data" / "seed_questions.jsonl"

QUESTION = "When did the café open, and who reported it?"
TEXT = (
    "PARIS (AP) — The café “Le Monde” opened on 3 May 1990 in the U.S. embassy district.\n\n"
    "Its owner,  Jean-Luc Picard, said 640 POWs had eaten there; the mayor’s office disagreed. "
    "Critics called it “a relic” of the 1990s, while fans said the coffee was still the best "
    "in town. In 2024 the building was sold for $5.2 million to an investor from Lyon, who "
    "promised to keep the name, the staff and the menu unchanged for at least ten years."
)


@pytest.fixture(scope="session")
def reader(tiny_model) -> Reader:
    return Reader(model=tiny_model, max_length=64, stride=16, quantize=False)


def document(offset: int = 0) -> Document:
    """``TEXT`` preceded by ``offset`` characters, so chunks start at non-zero offsets."""
    return Document(id=f"doc{offset}", text="x. " * (offset // 3) + TEXT, title="Café")


def chunk(doc: Document, start: int, end: int) -> Chunk:
    return Chunk(doc.id, start, end, doc.text[start:end])


def assert_located(spans: list[Span], docs: dict[str, Document]) -> None:
    for s in spans:
        assert docs[s.doc_id].text[s.start:s.end] == s.text
        assert s.text == s.text.strip() and s.text


def test_spans_carry_document_offsets(reader):
    docs = {d.id: d for d in (document(30), document(300))}
    chunks = [chunk(d, 30 + i * 120, 30 + i * 120 + 160) for d in docs.values() for i in range(3)]
    spans = reader.read(QUESTION, chunks, top_n=40)
    assert len(spans) > 10
    assert {s.doc_id for s in spans} == set(docs)
    assert_located(spans, docs)
    assert all(c.start > 0 for c in chunks)


def test_long_chunk_is_read_in_several_windows(reader, tiny_model):
    doc = document(60)
    whole = chunk(doc, 60, len(doc.text))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    enc = tokenizer(QUESTION, whole.text, truncation="only_second", max_length=64, stride=16,
                    return_overflowing_tokens=True, return_offsets_mapping=True)
    assert len(enc["input_ids"]) >= 3
    first_window_end = max(end for (_, end), seq in
                           zip(enc["offset_mapping"][0], enc.sequence_ids(0)) if seq == 1)
    spans = reader.read(QUESTION, [whole], top_n=100)
    assert_located(spans, {doc.id: doc})
    assert max(s.end for s in spans) > whole.start + first_window_end


def test_batching_does_not_change_spans(tiny_model):
    docs = [document(0), document(45)]
    chunks = [chunk(d, i * 100, i * 100 + 150 + 40 * i) for d in docs for i in range(3)]
    one = Reader(tiny_model, max_length=64, stride=16, batch_size=1,
                 quantize=False).read(QUESTION, chunks, 30)
    many = Reader(tiny_model, max_length=64, stride=16, batch_size=16,
                 quantize=False).read(QUESTION, chunks, 30)
    assert [(s.doc_id, s.start, s.end) for s in one] == [(s.doc_id, s.start, s.end) for s in many]
    assert [s.score for s in one] == pytest.approx([s.score for s in many], rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_an_int8_reader_answers_a_question_read_beside_others_as_it_does_alone(backend):
    """int8 activations are quantised with one scale per model run: were windows of several
    questions run together (the app under load), a question's spans and scores would depend on
    the others'. The shipped model, int8, on the seed article's chunks."""
    seed = next((ROOT / "seeds").glob("*.txt")).read_text(encoding="utf-8")
    doc = Document("seed", seed, "Seed", "")
    chunks = Chunker(600, 1).split(doc)
    questions = ["How many POWs were on the first list?", "Who mediated the exchange?",
                 "How old were the prisoners?", "When did the exchange take place?",
                 "Where did the exchange happen?", "Who said the list was agreed?",
                 "What did Ukraine say about the prisoners?", "Which countries took part?"]
    reader = Reader(backend=backend, stages=None)
    assert reader.quantize
    alone = [reader.read_batch([q], [chunks])[0] for q in questions]
    together = reader.read_batch(questions, [chunks] * len(questions))
    assert [[(s.start, s.end) for s in spans] for spans in together] == [
        [(s.start, s.end) for s in spans] for spans in alone]
    # equal but for float rounding in decoding rows padded to another width (int8 in a shared
    # run moved them by 0.05 on average)
    assert [s.score for spans in together for s in spans] == pytest.approx(
        [s.score for spans in alone for s in spans], rel=1e-5)


def test_windows_run_longest_first_in_batches_cut_to_their_length(tiny_model):
    """Padding is compute that reads nothing: mixed windows are batched by length, and a batch
    is no wider than its longest window."""
    reader = Reader(tiny_model, max_length=64, stride=16, batch_size=3, quantize=False,
                    stages=None)  # one round: every window in one sorted run
    reader.warm_up()
    doc = document()
    chunks = [chunk(doc, 0, end) for end in (20, 120, 40, 100, 30, 140, 60)]
    fed: list[np.ndarray] = []
    logits = reader._backend.logits

    def recording(batch):
        fed.append(batch["attention_mask"].sum(axis=1))
        assert batch["input_ids"].shape[1] == fed[-1].max()  # no column of padding only
        return logits(batch)

    reader._backend.logits = recording
    try:
        spans = reader.read(QUESTION, chunks, 10)
    finally:
        del reader._backend.logits
    lengths = np.concatenate(fed)
    assert len(fed) > 1 and len(set(lengths.tolist())) > 3
    assert (np.diff(lengths) <= 0).all()  # longest first, across batches
    alone = Reader(tiny_model, max_length=64, stride=16, batch_size=1,
                   quantize=False).read(QUESTION, chunks, 10)
    assert [(s.start, s.end) for s in spans] == [(s.start, s.end) for s in alone]
    assert [s.score for s in spans] == pytest.approx([s.score for s in alone], rel=1e-4)


def test_work_counts_the_windows_and_tokens_the_model_runs(tiny_model):
    """Tokens read (no padding) and tokens computed (each model batch padded to its longest),
    against transformers' own windows of the same pairs."""
    reader = Reader(tiny_model, max_length=64, stride=16, batch_size=2, quantize=False,
                    stages=None)
    doc = document(60)
    chunks = [chunk(doc, 60, len(doc.text)), chunk(doc, 60, 100), chunk(doc, 150, 330)]
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))

    def expected(questions: int, texts: list[str]) -> ReadWork:
        lengths = sorted((len(ids) for text in texts for ids in tokenizer(
            QUESTION, text, truncation="only_second", max_length=64, stride=16,
            return_overflowing_tokens=True)["input_ids"]), reverse=True)
        return ReadWork(questions, len(lengths), sum(lengths),
                        sum(lengths[b] * len(lengths[b:b + 2]) for b in range(0, len(lengths), 2)))

    every = expected(1, [c.text for c in chunks])
    assert every.windows > 3 and every.padded_tokens > every.tokens  # several batches, padded
    before = reader.work
    reader.read(QUESTION, chunks)
    assert reader.work - before == every
    before = reader.work
    reader.read_batch([QUESTION, QUESTION], [chunks[2:], []])  # a question without chunks
    assert reader.work - before == expected(2, [chunks[2].text])


def test_rounds_stop_once_a_span_scores_enough(tiny_model):
    """Chunks are read in rounds by rank (1, then 2-3, then the rest) until a span scores
    ``enough_score``; reading every round finds what reading everything at once finds."""
    docs = [document(30 * i) for i in range(5)]
    chunks = [chunk(d, 30 * i, 30 * i + 120) for i, d in enumerate(docs)]

    def read(**settings) -> tuple[list[Span], ReadWork]:
        reader = Reader(tiny_model, max_length=64, stride=16, quantize=False, **settings)
        spans = reader.read(QUESTION, chunks, top_n=50)
        return spans, reader.work

    first, work = read(stages=(1, 3), enough_score=0.0)  # any span is enough
    assert work.windows == 1 and {s.doc_id for s in first} == {docs[0].id}
    every, work = read(stages=(1, 3), enough_score=1.0)  # no span is
    assert work.windows == 5 and {s.doc_id for s in every} == {d.id for d in docs}
    at_once, work = read(stages=None)
    assert work.windows == 5
    assert [(s.doc_id, s.start, s.end) for s in every] == [
        (s.doc_id, s.start, s.end) for s in at_once]
    assert [s.score for s in every] == pytest.approx([s.score for s in at_once], rel=1e-4)
    highest = max(s.score for s in first)  # the first chunk's best: not enough, read 2-3
    _, work = read(stages=(1, 3), enough_score=math.nextafter(highest, 1.0))
    assert work.windows in (3, 5)


def test_the_first_round_reads_one_chunk_per_article_of_the_top_ranks(tiny_model):
    """Rounds (2, 3): the best chunk of each article in the top two, then the rest of the top
    three, then the rest; so a rival article ranked second is read beside the first even when
    the first chunk's answer is enough ("Sources differ" compares them)."""
    a, b, c = document(0), document(30), document(60)
    ranked = [chunk(a, 0, 100), chunk(a, 90, 200), chunk(b, 30, 130), chunk(c, 60, 160),
              chunk(a, 190, 290)]
    assert reading_rounds(ranked, (2, 3)) == [ranked[:1], ranked[1:3], ranked[3:]]
    assert reading_rounds(ranked, (3,)) == [[ranked[0], ranked[2]], [ranked[1], *ranked[3:]]]
    assert reading_rounds(ranked, ()) == [ranked]
    assert reading_rounds(ranked[:1], (2, 3)) == [ranked[:1], [], []]
    reader = Reader(tiny_model, max_length=64, stride=16, quantize=False, stages=(2, 3),
                    enough_score=0.0)  # any span is enough: only the first round is read
    rivals = [ranked[0], ranked[2], *ranked[3:]]
    spans = reader.read(QUESTION, rivals, top_n=50)
    assert reader.work.windows == 2 and {s.doc_id for s in spans} == {a.id, b.id}


@pytest.mark.parametrize("stages", [(0, 3), (3, 3), (3, 1)])
def test_bad_stages_are_refused(tiny_model, stages):
    with pytest.raises(NewsQAError, match="stages must be increasing"):
        Reader(tiny_model, stages=stages)
    with pytest.raises(NewsQAError, match="enough_score"):
        Reader(tiny_model, enough_score=1.5)


def test_a_plain_answer_in_the_top_chunks_ends_the_reading(shipped_reader):
    """The shipped reader, its default rounds: the top chunk states the answer plainly, so only
    the first round (the top two, of two articles) is read, and the answer is the one that
    reading all five gives."""
    texts = ["Maria Lopez, a 42-year-old teacher, was elected mayor of Springfield on Tuesday. "
             "She won 61 percent of the vote.",
             "Heavy rain flooded roads across the county on Monday, and schools closed early.",
             "The city council approved a new budget for road repairs after a long debate.",
             "A local bakery won a national prize for its rye bread, its owner said.",
             "Train services between the two cities will resume next month, officials said."]
    docs = [Document(id=f"d{i}", text=t, title="News") for i, t in enumerate(texts)]
    chunks = [chunk(d, 0, len(d.text)) for d in docs]
    question = "Who was elected mayor of Springfield?"
    before = shipped_reader.work
    spans = shipped_reader.read(question, chunks)
    assert (shipped_reader.work - before).windows == 2
    assert spans[0].text == "Maria Lopez"
    everything = Reader(stages=None).read(question, chunks)
    assert (everything[0].doc_id, everything[0].start, everything[0].end) == (
        spans[0].doc_id, spans[0].start, spans[0].end)
    assert_located(spans, {d.id: d for d in docs})
    before = shipped_reader.work  # a question about the current state compares every article
    assert shipped_reader.read(question, chunks, every_chunk=True)[0].text == "Maria Lopez"
    assert (shipped_reader.work - before).windows == 5
    before = shipped_reader.work
    shipped_reader.read_batch([question] * 2, [chunks] * 2, every_chunk=[False, True])
    assert (shipped_reader.work - before).windows == 2 + 5


def test_read_batch_matches_read(reader):
    doc_a, doc_b = document(0), document(90)
    lists = [[chunk(doc_a, 0, 200)], [chunk(doc_b, 150, 420), chunk(doc_b, 90, 300)]]
    questions = [QUESTION, "How much was the building sold for?"]
    batched = reader.read_batch(questions, lists, top_n=8)
    for q, chunks, spans in zip(questions, lists, batched):
        single = reader.read(q, chunks, top_n=8)
        assert [(s.start, s.end) for s in spans] == [(s.start, s.end) for s in single]
        assert [s.score for s in spans] == pytest.approx([s.score for s in single], abs=1e-6)


def test_overlapping_chunks_merge_duplicates(reader):
    doc = document(12)
    # b extends a, so both start with the same window and find the same spans in it.
    a, b = chunk(doc, 12, 200), chunk(doc, 12, 330)
    alone = {}
    for c in (a, b):
        for s in reader.read(QUESTION, [c], top_n=100):
            key = (s.start, s.end)
            alone[key] = alone.get(key, []) + [s.score]
    merged = reader.read(QUESTION, [a, b], top_n=100)
    keys = [(s.start, s.end) for s in merged]
    assert len(keys) == len(set(keys))
    twice = [s for s in merged if len(alone.get((s.start, s.end), [])) == 2]
    assert twice, "no span was found in both chunks"
    for s in twice:
        assert s.score == pytest.approx(max(alone[(s.start, s.end)]))
    for i, s in enumerate(merged):
        for t in merged[i + 1:]:
            shared = min(s.end, t.end) - max(s.start, t.start)
            assert shared < 0.5 * min(len(s.text), len(t.text))


def test_scores_are_probabilities_best_first(reader):
    doc = document(0)
    spans = reader.read(QUESTION, [chunk(doc, 0, 180), chunk(doc, 170, len(doc.text))], top_n=25)
    assert len(spans) > 2
    scores = [s.score for s in spans]
    assert all(0.0 < x <= 1.0 for x in scores)
    assert scores == sorted(scores, reverse=True)


def test_fp16_weights_are_read_in_fp32(tiny_model, tmp_path):
    """Shipped weights are fp16 on disk; reading must compute in fp32 like fp32 weights do."""
    model = BertForQuestionAnswering.from_pretrained(tiny_model).half()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    for name, dtype in (("fp16", torch.float16), ("fp32", torch.float32)):
        model.to(dtype).save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    doc = document(0)
    half, full = (Reader(tmp_path / name, max_length=64, stride=16, quantize=False).read(
        QUESTION, [chunk(doc, 0, 250)], top_n=10) for name in ("fp16", "fp32"))
    assert [(s.start, s.end) for s in half] == [(s.start, s.end) for s in full]
    assert [s.score for s in half] == pytest.approx([s.score for s in full], rel=1e-6)


def test_no_chunks_no_spans(reader):
    assert reader.read(QUESTION, []) == []
    assert reader.read_batch([], []) == []


def test_bad_inputs_raise(reader):
    doc = document(0)
    with pytest.raises(QuestionError):
        reader.read("   ", [chunk(doc, 0, 50)])
    # 64 tokens - 3 special - 16 stride - 1 context token leaves room for 44 question tokens.
    assert reader.read(" ".join(["why"] * 44), [chunk(doc, 0, 300)])
    with pytest.raises(QuestionError, match="too long"):
        reader.read(" ".join(["why"] * 45), [chunk(doc, 0, 300)])
    with pytest.raises(NewsQAError, match="top_n"):
        reader.read(QUESTION, [chunk(doc, 0, 50)], top_n=0)
    with pytest.raises(NewsQAError):
        reader.read_batch([QUESTION], [])
    with pytest.raises(NewsQAError, match="stride"):
        Reader(max_length=64, stride=64)


def test_int8_is_the_cpu_default_and_refused_elsewhere(tiny_model):
    assert Reader(tiny_model).quantize
    assert not Reader(tiny_model, quantize=False).quantize
    assert Reader(tiny_model, device="cpu:0").quantize
    assert not Reader(tiny_model, device="cuda").quantize
    with pytest.raises(NewsQAError, match="CPU only"):
        Reader(tiny_model, device="cuda", quantize=True)
    with pytest.raises(NewsQAError, match="not a torch device"):
        Reader(tiny_model, device="gpu")


@pytest.mark.slow
def test_int8_reader_answers_like_fp32(shipped_reader):
    """The CPU default (int8 Linear layers) picks the fp32 model's answers on the seed article.

    Every chunk is read (no rounds): where a round stops depends on a score crossing
    ``enough_score``, and the scores of the two precisions differ a little."""
    doc = Document("seed", SEED_ARTICLE.read_text(encoding="utf-8"))
    chunks = Chunker().split(doc)
    records = [json.loads(line) for line in SEED_QUESTIONS.read_text().splitlines() if line]
    questions = [r["question"] for r in records if r["answers"]]
    int8, fp32 = Reader(stages=None), Reader(quantize=False, stages=None)
    assert int8.quantize and int8.calibration_key == shipped_reader.calibration_key
    int8_spans = int8.read_batch(questions, [chunks] * len(questions), top_n=1)
    fp32_spans = fp32.read_batch(questions, [chunks] * len(questions), top_n=1)
    assert [s[0].text for s in int8_spans] == [s[0].text for s in fp32_spans]
    # Scores move a little (measured: at most 0.12 with reader v3, 0.16 with v3.1, on one
    # question each); the decisions in newsqa_reader.json are fitted on the int8 scores.
    assert [s[0].score for s in int8_spans] == pytest.approx([s[0].score for s in fp32_spans],
                                                             abs=0.2)


def test_bad_model_path_raises(tmp_path):
    with pytest.raises(NewsQAError, match="does not exist"):
        Reader(model=tmp_path / "nothing").warm_up()
    with pytest.raises(NewsQAError, match="Cannot load") as empty:
        Reader(model=str(tmp_path)).warm_up()  # exists, but holds no model
    assert "train-reader" not in str(empty.value)


def test_missing_default_model_says_how_to_train(tmp_path, monkeypatch):
    monkeypatch.setattr(qa.reader.model, "DEFAULT_READER", tmp_path / "reader")
    with pytest.raises(NewsQAError, match="newsqa train-reader"):
        Reader().warm_up()


def test_threshold_comes_from_calibration_file(tiny_model, tmp_path):
    model = tmp_path / "reader"
    shutil.copytree(tiny_model, model)
    assert Reader(model).threshold == 0.0
    (model / "newsqa_reader.json").write_text(json.dumps({"threshold": 0.37, "f1": 80.1}))
    assert Reader(model).threshold == pytest.approx(0.37)
    assert Reader(model, threshold=0.5).threshold == 0.5
    (model / "newsqa_reader.json").write_text(json.dumps({"f1": 80.1}))
    with pytest.raises(NewsQAError, match="threshold"):
        Reader(model).threshold


@pytest.mark.parametrize("text, expected", [
    (" “Le Monde”, ", "Le Monde"),
    ("640 POWs.", "640 POWs"),
    ("the U.S.", "the U.S."),
    ("PARIS (AP)", "PARIS (AP)"),
    ("(AP", "AP"),
    ("$5.2 million;", "$5.2 million"),
    (" ,.;", ""),
])
def test_trim_moves_offsets_past_edge_punctuation(text, expected):
    padded = "ab" + text + "cd"
    start, end = trim(padded, 2, 2 + len(text))
    assert padded[start:end] == expected


def test_best_spans_keeps_max_score_and_collapses_overlaps():
    spans = [
        Span("d", 10, 18, "640 POWs", 0.2), Span("d", 10, 18, "640 POWs", 0.5),
        Span("d", 6, 18, "the 640 POWs", 0.3), Span("e", 10, 18, "640 POWs", 0.1),
        Span("d", 40, 44, "1990", 0.4),
    ]
    assert best_spans(spans, top_n=5) == [spans[1], spans[4], spans[3]]
    assert best_spans(spans, top_n=2) == [spans[1], spans[4]]


def reference_decode(start: np.ndarray, end: np.ndarray, context: np.ndarray, top_k: int,
                     max_tokens: int) -> list[tuple[int, int, float]]:
    """The decoding rule written out plainly: softmax over the context tokens and CLS (in
    float64), every span of context tokens that does not end before it starts and is at most
    ``max_tokens`` long, scored p(start) * p(end), best first."""
    allowed = [i for i, c in enumerate(context) if c or i == 0]

    def softmax(logits: np.ndarray) -> dict[int, float]:
        top = max(float(logits[i]) for i in allowed)
        exp = {i: math.exp(float(logits[i]) - top) for i in allowed}
        return {i: e / sum(exp.values()) for i, e in exp.items()}

    p_start, p_end = softmax(start), softmax(end)
    tokens = [i for i, c in enumerate(context) if c]
    spans = sorted(((p_start[f] * p_end[e], f, e) for f in tokens for e in tokens
                    if 0 <= e - f < max_tokens), reverse=True)
    return [(f, e, p) for p, f, e in spans[:top_k]]


@pytest.fixture(scope="module")
def seed_logits():
    """The shipped reader's fp32 logits for the seed questions over the seed article's chunks
    (one question over the whole article, which needs several windows)."""
    article = SEED_ARTICLE.read_text(encoding="utf-8")
    chunks = Chunker().split(Document("seed", article))
    questions = [json.loads(line)["question"]
                 for line in SEED_QUESTIONS.read_text().splitlines() if line]
    texts = [chunks[i % len(chunks)].text for i in range(len(questions))] + [article]
    windows = Windower(DEFAULT_READER, 256, 96).windows(questions + questions[:1], texts)
    backend = make_backend("torch", device="cpu", quantize=False, cache_dir=None)
    backend.load(DEFAULT_READER)
    start, end = backend.logits(windows.inputs)
    assert len(windows.pairs) > len(texts)  # the whole article took several windows
    return start, end, windows.context


@pytest.mark.parametrize("top_k, max_tokens", [(20, 30), (60, 3), (1, 30)])
def test_decode_spans_matches_the_rule_on_real_logits(seed_logits, top_k, max_tokens):
    start, end, context = seed_logits
    for w in range(len(start)):
        ours = decode_spans(start[w], end[w], context[w], top_k, max_tokens)
        expected = reference_decode(start[w], end[w], context[w], top_k, max_tokens)
        assert [(f, e) for f, e, _ in ours] == [(f, e) for f, e, _ in expected]
        assert [p for *_, p in ours] == pytest.approx([p for *_, p in expected], rel=1e-5)


def test_decode_spans_only_returns_context_tokens():
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=(2, 12)).astype(np.float32) * 3
    context = np.array([False] * 4 + [True] * 5 + [False] * 3)  # CLS, question, SEP | ... | pad
    spans = decode_spans(start, end, context, top_k=100, max_answer_tokens=30)
    assert len(spans) == 15  # every span of 5 context tokens: 5 + 4 + 3 + 2 + 1
    assert all(context[f] and context[e] and f <= e for f, e, _ in spans)
    assert sum(p for *_, p in spans) < 1.0  # CLS and lone ends keep part of the mass
    assert decode_spans(start, end, np.zeros(12, dtype=bool), 5, 30) == []


def test_windows_match_the_transformers_tokenizer():
    """The windower reads tokenizer.json through ``tokenizers`` without transformers; it must cut
    exactly the windows transformers' tokenizer cuts (scores depend on them)."""
    questions = [QUESTION, "Who sold it?", "For how much was the building sold in 2024?"]
    texts = [TEXT, TEXT[:90], TEXT * 3]  # one window, a padded one, several overlapping ones
    enc = AutoTokenizer.from_pretrained(str(DEFAULT_READER))(
        questions, texts, truncation="only_second", max_length=64, stride=16,
        return_overflowing_tokens=True, return_offsets_mapping=True, padding=True,
        return_tensors="np")
    windows = Windower(DEFAULT_READER, 64, 16).windows(questions, texts)
    assert set(windows.inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    for name, values in windows.inputs.items():
        np.testing.assert_array_equal(values, enc[name])
    assert windows.pairs == enc["overflow_to_sample_mapping"].tolist()
    assert windows.offsets == [[tuple(o) for o in row] for row in enc["offset_mapping"].tolist()]
    assert windows.context.tolist() == [[s == 1 for s in enc.sequence_ids(w)]
                                        for w in range(len(windows.pairs))]
    assert len(windows.pairs) > 5 and not windows.inputs["attention_mask"].all()


def test_calibration_key_names_weights_backend_and_precision(tiny_model, tmp_path):
    digest = hashlib.sha256((tiny_model / "model.safetensors").read_bytes()).hexdigest()[:16]
    assert Reader(tiny_model).calibration_key == f"{digest}/torch-int8"
    assert Reader(tiny_model, quantize=False).calibration_key == f"{digest}/torch-fp32"
    assert Reader(tiny_model, backend="onnx").calibration_key == f"{digest}/onnx-int8"
    assert Reader(tiny_model, backend="onnx", quantize=False).calibration_key.endswith("/onnx-fp32")
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert Reader(copy).calibration_key == f"{digest}/torch-int8"  # same weights, other folder
    model = BertForQuestionAnswering.from_pretrained(copy)
    with torch.no_grad():
        model.qa_outputs.bias += 1.0
    model.save_pretrained(copy)  # retrained weights: their calibration no longer holds
    assert not Reader(copy).calibration_key.startswith(digest)
    with pytest.raises(NewsQAError, match="no weights file"):
        Reader(tmp_path).calibration_key


def test_concurrent_reads_are_coalesced_and_answer_as_alone(reader):
    """Threads calling ``read`` at once share model batches and get what a lone call gets; a bad
    question among them fails alone."""
    doc = document()
    chunks = [chunk(doc, 0, 120), chunk(doc, 100, 250)]
    questions = [f"{QUESTION} {n}" for n in range(8)]
    alone = [reader.read(q, chunks, 5) for q in questions]
    sizes: list[int] = []
    read_batch = reader.read_batch

    def counting(qs, chunk_lists, top_n=5, **options):
        sizes.append(len(qs))
        time.sleep(0.05)  # keep the model busy so that the other threads queue up behind it
        return read_batch(qs, chunk_lists, top_n, **options)

    reader.read_batch = counting
    try:
        with ThreadPoolExecutor(len(questions) + 1) as pool:
            futures = [pool.submit(reader.read, q, chunks, 5) for q in questions]
            too_long = pool.submit(reader.read, "why " * 200, chunks, 5)
            together = [f.result() for f in futures]
            with pytest.raises(QuestionError, match="too long"):
                too_long.result()
    finally:
        del reader.read_batch
    assert together == alone
    assert sum(sizes) == len(questions) and max(sizes) > 1  # fewer, bigger batches
