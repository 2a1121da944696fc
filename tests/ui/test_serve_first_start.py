"""The first start of ``newsqa serve`` as `make run` meets it: no index and no exported models
yet. It says what it does in one line a step, with no warning and no hint the user cannot act
on, and the torch that the exports loaded is not in the server that answers afterwards."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
NEWSQA = Path(sys.executable).parent / "newsqa"  # the command `make run` runs
STARTUP_LIMIT_S = 300  # a hang guard for two exports on a busy machine, not a timing check
STEPS = {  # each one-time step of a first start, and the line that says the app is up
    "embedder": r"Preparing the embedder \S+ for ONNX Runtime \(once; under a minute\)…",
    "seeds": r"The index is empty: indexing \S+ … 1 article\(s\), \d+ passage\(s\)\.",
    "reader": r"Preparing the reader \S+ for ONNX Runtime \(once; under a minute\)…",
    "serving": r"Running on local URL:  http://127\.0\.0\.1:\d+/",
}
SERVING = re.compile(r"Running on local URL:\s+(http://127\.0\.0\.1:\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_first_start_says_one_line_a_step_and_keeps_torch_out_of_the_server(tmp_path):
    if not Path("/proc/self/maps").is_file():
        pytest.skip("reads the server's memory map from /proc (Linux)")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),  # no exports yet
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(NEWSQA), "serve", "--index", str(tmp_path / "index"),
                                 "--port", str(free_port())], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while not (url := SERVING.search(log.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"newsqa serve did not start:\n{log.read_text()}")
            time.sleep(1)
        assert httpx.get(url[1], timeout=30).status_code == 200
        libraries = Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lines = log.read_text().splitlines()
    assert not [line for line in lines if re.search("warning|share=True", line, re.I)]
    said = [next((step for step, pattern in STEPS.items() if re.fullmatch(pattern, line)), line)
            for line in lines]
    assert sorted(said) == sorted(STEPS), lines  # each step once, and nothing else
    assert "libtorch" not in libraries  # the exports ran in a child process
