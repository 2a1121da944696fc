"""``python -m qa.training`` (``newsqa train-reader``) end to end on a tiny model and a tiny
synthetic data set."""
from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from qa.reader.model import Reader
from qa.training.command import parse_device, parse_fraction, parse_mix, parse_positive
from qa.training.data import DEFAULT_MIX, sample_examples
from qa.training.distill import project
from qa.types import Chunk

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov",
         "Donald Knuth", "Frances Allen", "John McCarthy"]
CITIES = ["London", "Paris", "Berlin", "Madrid", "Rome", "Vienna", "Prague", "Lisbon", "Dublin"]
STEPS = ["--max-steps", "8", "--save-every", "4"]

# Dies right after the checkpoint of step 4 is written, as a killed run would.
KILLED_AT_4 = """
import sys
import qa.training.loop as loop
from qa.training.command import main
save = loop.save_checkpoint
def save_then_die(model, tokenizer, optimizer, scheduler, step, out, args):
    save(model, tokenizer, optimizer, scheduler, step, out, args)
    if step == 4:
        raise SystemExit(3)
loop.save_checkpoint = save_then_die
main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One ``<stem>.jsonl.gz`` per file of the training mix, 40 easy questions each.

    Every answer is the first word of its context, so a few steps can learn where it is.
    """
    out = tmp_path_factory.mktemp("train_data")
    for f, stem in enumerate(DEFAULT_MIX):
        with gzip.open(out / f"{stem}.jsonl.gz", "wt", encoding="utf-8") as fh:
            for i in range(40):
                name, city = NAMES[i % len(NAMES)], CITIES[(i + f) % len(CITIES)]
                context = f"{city} is where {name} was born, before working on early computers."
                fh.write(json.dumps({
                    "id": f"{stem}-{i}", "title": name, "context": context,
                    "question": "Which city comes first?", "is_impossible": False,
                    "answers": [{"text": city, "answer_start": context.index(city)}],
                }) + "\n")
    return out


def train(args: list[str], script: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *(script or ["-m", "qa.training"]), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300)


def common_args(data_dir: Path, init: Path, out: Path) -> list[str]:
    return ["--data", str(data_dir), "--init", str(init), "--out", str(out), "--examples", "40",
            "--negative-rate", "0", "--batch-size", "4", "--lr", "1e-2", "--log-every", "1",
            "--threads", "1"]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, data_dir, tiny_model) -> Path:
    out = tmp_path_factory.mktemp("run") / "reader"
    done = train(common_args(data_dir, tiny_model, out) + STEPS + ["--export", str(out / "export")])
    assert done.returncode == 0, done.stderr
    return out


def losses(run: Path) -> list[float]:
    return json.loads((run / "losses.json").read_text())


def saved_step(run: Path) -> int:
    return torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=False)["step"]


def test_training_lowers_the_loss(full_run):
    curve = losses(full_run)
    assert len(curve) == 8
    # A clear drop, not batch-to-batch noise: with this data and lr it falls from ~3.2 to ~1.
    assert sum(curve[-3:]) / 3 < 0.8 * sum(curve[:3]) / 3


@pytest.mark.parametrize("weights", ["checkpoint", "export"])
def test_trained_weights_load_as_reader(full_run, weights):
    assert saved_step(full_run) == 8
    reader = Reader(model=full_run / weights, max_length=64, stride=16)
    text = "New York is where Grace Hopper was born, before working on early computers."
    spans = reader.read("Which city comes first?", [Chunk("d", 0, len(text), text)])
    assert spans and text[spans[0].start:spans[0].end] == spans[0].text
    assert reader.threshold == 0.0


def test_export_is_fp16(full_run):
    with safe_open(full_run / "export" / "model.safetensors", "pt") as weights:
        assert {weights.get_tensor(k).dtype for k in weights.keys()} == {torch.float16}
    assert not (full_run / "export" / "trainer_state.pt").exists()


def test_resume_continues_a_killed_run(tmp_path, data_dir, tiny_model, full_run):
    out = tmp_path / "reader"
    args = common_args(data_dir, tiny_model, out) + STEPS
    killed = train(args, ["-c", KILLED_AT_4])
    assert killed.returncode == 3, killed.stderr
    assert saved_step(out) == 4 and not (out / "losses.json").exists()

    resumed = train(args + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at step 4 of 8" in resumed.stderr
    assert saved_step(out) == 8
    assert losses(out) == pytest.approx(losses(full_run)[4:], rel=1e-4)


def test_mix_option_parses_shares_and_rejects_bad_entries():
    assert parse_mix("squad_v1.1_train=0.8, qed_nq=0.2") == {"squad_v1.1_train": 0.8, "qed_nq": 0.2}
    for bad in ("", "squad_v1.1_train", "qed_nq=0", "qed_nq=-1", "=0.5", "qed_nq=lots",
                "qed_nq=nan", "qed_nq=inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_mix(bad)


def test_device_option_accepts_this_machines_devices_only():
    assert parse_device("cpu") == "cpu"
    for bad in ("gpu", "", "cuda:x"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a torch device"):
            parse_device(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="cpu or cuda"):
        parse_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(argparse.ArgumentTypeError, match="no CUDA GPU"):
            parse_device("cuda")


def test_mix_names_the_files_it_samples(tmp_path, data_dir, tiny_model):
    out = tmp_path / "reader"
    args = common_args(data_dir, tiny_model, out) + ["--max-steps", "1", "--mix", "qed_nq=1"]
    done = train(args)
    assert done.returncode == 0, done.stderr
    assert "qed_nq: 40 of 40 questions" in done.stderr
    assert "squad_v1.1_train:" not in done.stderr


def write_questions(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """(title, context, question, answer) rows as a training file."""
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for n, (title, context, question, answer) in enumerate(rows):
            fh.write(json.dumps({"id": str(n), "title": title, "context": context,
                                 "question": question, "is_impossible": False,
                                 "answers": [{"text": answer,
                                              "answer_start": context.index(answer)}]}) + "\n")


def test_hard_negatives_are_other_articles_paragraphs_that_match_without_the_answer(tmp_path):
    lovelace = "Ada Lovelace wrote the first program for the engine in London."
    turing = "Alan Turing read the program notes of Ada Lovelace in Manchester."
    turing_london = "Alan Turing gave a lecture on the engine program in London."
    hopper = "Grace Hopper built the first compiler in Philadelphia."
    write_questions(tmp_path / "f.jsonl.gz", [
        ("Lovelace", lovelace, "Where did Ada Lovelace write the first program for the engine?",
         "London"),
        ("Turing", turing, "Where did Alan Turing read the program notes?", "Manchester"),
        ("Turing", turing_london, "What did Alan Turing give a lecture on?", "the engine program"),
        ("Hopper", hopper, "What did Grace Hopper build first?", "compiler"),
    ])
    examples = sample_examples(tmp_path, 4, 0.0, random.Random(0), {"f": 1.0}, 1.0)
    negatives = {e.question: e.context for e in examples if e.answer_start < 0}
    assert negatives == {
        # the best match holds "London", so the next one is taken; never its own article's
        "Where did Ada Lovelace write the first program for the engine?": turing,
        "Where did Alan Turing read the program notes?": lovelace,
        # "first" is in Lovelace's paragraph only
        "What did Grace Hopper build first?": lovelace,
        # "What did Alan Turing give a lecture on?": no other article has "give" or "lecture"
    }
    without = sample_examples(tmp_path, 4, 0.0, random.Random(0), {"f": 1.0})
    assert without == sample_examples(tmp_path, 4, 0.0, random.Random(0), {"f": 1.0}, 0.0)
    assert all(e.answer_start >= 0 for e in without)


# ---- distillation ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def teacher(tmp_path_factory, data_dir) -> Path:
    """A tiny MPNet reader with its own WordPiece vocabulary and no segment ids (as
    all-mpnet-base-v2 has none), trained on the gold spans: another tokeniser than the student's."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import MPNetConfig, MPNetForQuestionAnswering, PreTrainedTokenizerFast

    base = tmp_path_factory.mktemp("teacher_base")
    # Whole words for the question and the cities it was trained on; every other word (the
    # names, "Oslo") falls apart into letters, so no student token lines up with those pieces.
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = (["<s>", "<pad>", "</s>", "[UNK]", ".", ",", "?"] + letters
             + [f"##{c}" for c in letters]
             + ("which city comes first is where was born before working on early computers "
                + " ".join(CITIES).lower()).split())
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                            cls_token="<s>", sep_token="</s>", pad_token="<pad>",
                            unk_token="[UNK]", model_input_names=["input_ids", "attention_mask"],
                            ).save_pretrained(base)
    torch.manual_seed(0)
    MPNetForQuestionAnswering(MPNetConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, pad_token_id=tok.token_to_id("<pad>")),
    ).save_pretrained(base)
    out = tmp_path_factory.mktemp("teacher") / "reader"
    done = train(common_args(data_dir, base, out) + ["--max-steps", "40", "--export",
                                                     str(out / "export")])
    assert done.returncode == 0, done.stderr
    return out / "export"


def first_city(reader: Reader) -> list[str]:
    """The reader's answers on sentences it never saw: the first word is the city."""
    answers = []
    for city, name in (("Oslo", "Ada Lovelace"), ("Paris", "Donald Knuth"),
                       ("Rome", "Alan Turing")):
        text = f"{city} is where {name} was born, before working on early computers."
        answers.append(reader.read("Which city comes first?",
                                   [Chunk("d", 0, len(text), text)])[0].text)
    return answers


def test_a_student_learns_from_the_teacher_alone(tmp_path, data_dir, tiny_model, teacher):
    """With the whole loss on the teacher's distributions (no gold span), the student, which
    tokenises differently, finds the answers: the distributions reached the right tokens."""
    reader = Reader(teacher, max_length=64, stride=16, backend="torch", quantize=False)
    oslo, *known = first_city(reader)
    # "Oslo" is o ##s ##l ##o to the teacher, which ends it early; the student's token is "oslo"
    assert known == ["Paris", "Rome"] and oslo and "Oslo".startswith(oslo)
    out = tmp_path / "student"
    done = train(common_args(data_dir, tiny_model, out)
                 + ["--max-steps", "40", "--teacher", str(teacher), "--distill-weight", "1"])
    assert done.returncode == 0, done.stderr
    assert "span distributions for 42 windows" in done.stderr
    student = Reader(out / "checkpoint", max_length=64, stride=16, backend="torch",
                     quantize=False)
    assert first_city(student) == ["Oslo", "Paris", "Rome"]


def test_project_moves_each_tokens_mass_to_the_token_holding_its_edge():
    """"Alan Turing won": the teacher cuts al|an tur|ing won, the student alan turing won."""
    none = [-1, -1]
    teacher_spans = np.array([none, none, [0, 2], [2, 4], [5, 8], [8, 11], [12, 15], none])
    student_spans = np.array([none, none, none, [0, 4], [5, 11], [12, 15], none])
    probs = np.array([0.1, 0.0, 0.2, 0.05, 0.4, 0.05, 0.2, 0.0])
    start = project(probs, teacher_spans, student_spans, "start")
    np.testing.assert_allclose(start, [0.1, 0, 0, 0.25, 0.45, 0.2, 0], atol=1e-6)
    end = project(probs, teacher_spans, student_spans, "end")
    np.testing.assert_allclose(end, [0.1, 0, 0, 0.25, 0.45, 0.2, 0], atol=1e-6)
    # mass on "tur" alone: a start lands on "turing", and so does an end (its last character)
    lone = np.array([0.0, 0, 0, 0, 1.0, 0, 0, 0])
    assert project(lone, teacher_spans, student_spans, "start").argmax() == 4
    assert project(lone, teacher_spans, student_spans, "end").argmax() == 4


def test_distillation_options_are_checked():
    assert parse_fraction("0.5") == 0.5 and parse_positive("2") == 2.0
    for bad in ("-0.1", "1.5", "nan", "half"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_fraction(bad)
    for bad in ("0", "-2", "inf", "warm"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_positive(bad)


@pytest.mark.parametrize("option, message", [
    ("--teacher", "newsqa: error: Cannot load the teacher {missing}: "),
    ("--data", "newsqa: error: The training file {missing}/squad_v1.1_train.jsonl.gz is missing."),
])
def test_a_missing_teacher_or_data_is_one_line(tmp_path, data_dir, tiny_model, capsys, option,
                                                message):
    from qa.cli import main

    missing = tmp_path / "missing"
    args = common_args(data_dir, tiny_model, tmp_path / "out") + ["--max-steps", "1"]
    assert main(["train-reader", *args, option, str(missing)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(message.format(missing=missing))
