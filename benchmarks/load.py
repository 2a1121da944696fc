"""Load on the served app: many concurrent clients asking questions over the `/ask` API.

    python benchmarks/load.py [--clients 50] [--questions 4] [--index DIR] [--client http]

Starts ``app.py`` on a free loopback port over a fresh index of ``seeds/`` (or ``--index``),
then runs one client alone (the baseline) and ``--clients`` clients at once, each in its own
thread asking ``--questions`` of the seed questions in turn. A client speaks Gradio's HTTP API
(``POST /gradio_api/call/ask``, then the event's result stream: what ``curl`` or a non-Python
client does) with ``http.client``; ``--client gradio`` uses ``gradio_client.Client`` instead.
The load runs on the app's own 2 cores, and ``gradio_client`` spends about 0.1 s of CPU per
request itself (20 s for 200 requests, against 0.4 s with ``http.client``), which the app then
lacks: with it the numbers measure the clients as much as the app.
The app remembers answers per index generation (``qa.cache``), so three kinds of traffic are
run: "distinct", where a numbered suffix makes every question text unique and nothing can come
from the cache (the CPU-bound worst case); "repeated", the 15 seed questions as they are, which
many clients ask at once (a story everyone asks about: each answer is read once, while the
clients asking it wait); and "again", the same once more, every answer from the cache. Prints,
per run: requests, errors,
p50/p95 latency, throughput and the server's RSS, and the ratios of the loaded runs to the
baseline, measured in the same run. Traffic goes to 127.0.0.1 only, and every loop is bounded.
"""
from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "tests" / "data" / "seed_questions.jsonl"
STARTUP_LIMIT_S = 300
REQUEST_TIMEOUT_S = 120
url_runs: collections.Counter[str] = collections.Counter()  # numbers the distinct questions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> tuple[float, float]:
    """Current and peak resident memory of a process, from /proc (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    kb = {key: int(value) for key, value in re.findall(r"(VmRSS|VmHWM):\s+(\d+) kB", status)}
    return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024


def start_app(index: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--index", str(index),
                                 "--port", str(port)], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if "Running on local URL" in log.read_text(errors="replace"):
            return proc, url
        time.sleep(1)
    proc.kill()
    raise SystemExit(f"the app did not start:\n{log.read_text(errors='replace')}")


class HttpClient:
    """Gradio's HTTP API for one named endpoint: POST the inputs, then read the event's stream
    (server-sent events) until it completes or fails. A client keeps one session, as a browser
    tab and ``gradio_client`` do: the app builds each new session's state once (a sixth of the
    app's CPU per request when every request came with a new one)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.session = uuid.uuid4().hex

    def ask(self, question: str, top_k: int) -> str:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            connection.request("POST", "/gradio_api/call/ask",
                               json.dumps({"data": [question, top_k], "session_hash": self.session}),
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            posted = response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {posted[:200]!r}")
            connection.request("GET", f"/gradio_api/call/ask/{json.loads(posted)['event_id']}")
            stream = connection.getresponse().read().decode("utf-8", "replace")
        finally:
            connection.close()
        if "event: complete" not in stream:  # "event: error", or a cut stream
            raise RuntimeError(" ".join(stream.split())[:200])
        return stream


class GradioClient:
    """The same request through ``gradio_client`` (its own connection and threads)."""

    def __init__(self, url: str) -> None:
        from gradio_client import Client

        self.api = Client(url, verbose=False)

    def ask(self, question: str, top_k: int) -> object:
        return self.api.submit(question, top_k, api_name="/ask").result(
            timeout=REQUEST_TIMEOUT_S)


CLIENTS = {"http": HttpClient, "gradio": GradioClient}


def run_clients(url: str, clients: int, per_client: int, questions: list[str],
                distinct: bool, kind: str = "http") -> tuple[list[float], list[str], float]:
    """Latencies (s) of all requests, their errors, and the wall time of the whole run."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        try:
            api = CLIENTS[kind](url)
        finally:
            ready.wait()
        for i in range(per_client):
            question = questions[(n + i) % len(questions)]
            if distinct:  # never asked before: the answer has to be computed
                question = f"{question} (#{url_runs[url]}-{n}-{i})"
            t = time.perf_counter()
            try:
                api.ask(question, 5)
                with lock:
                    latencies.append(time.perf_counter() - t)
            except Exception as error:  # noqa: BLE001 - every failure counts as an error
                with lock:
                    errors.append(f"{type(error).__name__}: {error}")

    url_runs[url] += 1
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()  # connections made: time the questions only
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--questions", type=int, default=4, help="questions per client")
    ap.add_argument("--index", type=Path, help="an existing index (default: a fresh seeds index)")
    ap.add_argument("--client", choices=sorted(CLIENTS), default="http",
                    help="how clients call /ask (default: http, see above)")
    args = ap.parse_args()
    questions = [json.loads(line)["question"]
                 for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_app(args.index or Path(tmp) / "index", Path(tmp) / "app.log")
        try:
            run_clients(url, 1, 2, questions, True, args.client)  # warm-up: first-call costs
            rows = []
            for clients, per_client, distinct in ((1, args.questions * 4, True),
                                                  (args.clients, args.questions, True),
                                                  (args.clients, args.questions, False),
                                                  (args.clients, args.questions, False)):
                latencies, errors, wall = run_clients(url, clients, per_client, questions,
                                                      distinct, args.client)
                rss, peak = rss_mb(proc.pid)
                kind = "distinct" if distinct else "again" if rows[-1][1] == "repeated" \
                    else "repeated"
                rows.append((clients, kind,
                             len(latencies) + len(errors), len(errors),
                             statistics.median(latencies) if latencies else float("nan"),
                             statistics.quantiles(latencies, n=20)[18] if len(latencies) > 1
                             else float("nan"),
                             len(latencies) / wall, rss, peak, errors[:3]))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"clients call /ask through {args.client}")
    print(f"{'clients':>7} {'questions':>9} {'requests':>8} {'errors':>6} {'p50 s':>6} "
          f"{'p95 s':>6} {'req/s':>6} {'RSS MB':>7} {'peak MB':>7}")
    for clients, kind, requests, errors, p50, p95, rate, rss, peak, _ in rows:
        print(f"{clients:>7} {kind:>9} {requests:>8} {errors:>6} {p50:>6.2f} {p95:>6.2f} "
              f"{rate:>6.2f} {rss:>7.0f} {peak:>7.0f}")
    base = rows[0]
    for loaded in rows[1:]:
        print(f"\n{loaded[0]} clients, {loaded[1]} vs 1 client: throughput "
              f"{loaded[6] / base[6]:.2f}x, p50 {loaded[4] / base[4]:.1f}x, "
              f"p95 {loaded[5] / base[5]:.1f}x")
        for sample in loaded[9]:
            print("error:", sample)


if __name__ == "__main__":
    main()
