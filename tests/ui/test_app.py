"""The served app as a user meets it: started from a fresh clone by the README's command, and
kept consistent while another process writes its index."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qa.ingest.documents import make_document
from qa.ingest.files import load
from qa.pipeline import NewsQA

ROOT = Path(__file__).resolve().parents[2]
SEED_ARTICLE = ROOT / "seeds" / "000_2ffe86633dc2dc73.txt"
VENV = Path(sys.executable).parent.parent  # the environment these tests run in
STARTUP_LIMIT_S = 300  # loading torch and both models on a busy 2-core machine
LOCAL_URL = re.compile(r"Running on local URL:\s+(http://127\.0\.0\.1:\d+)")
ENV = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}

pytestmark = pytest.mark.slow


def wait_for_url(proc: subprocess.Popen, log: Path) -> str:
    """The app's URL once it prints it; fails with the log if it exits or takes too long."""
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline and proc.poll() is None:
        found = LOCAL_URL.search(log.read_text(errors="replace"))
        if found:
            return found[1]
        time.sleep(1)
    proc.kill()
    pytest.fail(f"the app did not start:\n{log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def seed_title() -> str:
    (doc,) = load([SEED_ARTICLE])
    return doc.title


def test_make_run_on_a_fresh_clone_answers_the_seed_question(tmp_path: Path, seed_title: str):
    """`git clone` + `make run`, as the README says, with this environment standing in for the
    one `make` would install (a clone's pyproject is new, so it is dated back to keep make from
    reinstalling; `make -q` proves that nothing but the start command runs)."""
    from gradio_client import Client

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    assert not (clone / "index").exists()  # the default index is made on first start
    os.utime(clone / "pyproject.toml", (0, 0))
    make = ["make", f"VENV={VENV}"]
    assert subprocess.run([*make, "-q", "setup"], cwd=clone).returncode == 0
    log = tmp_path / "run.log"
    with log.open("w") as out:  # the clone's code, not this checkout's editable install
        proc = subprocess.Popen([*make, "run"], cwd=clone, stdout=out, stderr=subprocess.STDOUT,
                                env={**ENV, "PYTHONPATH": str(clone)}, start_new_session=True)
    try:
        url = wait_for_url(proc, log)
        answer = Client(url, verbose=False).predict("How many POWs were on the first list?", 5,
                                                    api_name="/ask")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    assert answer["found"] and answer["citations"][0]["title"] == seed_title
    assert (clone / "index" / "manifest.json").is_file()


ARTICLES = [  # made-up facts, so only the added article can answer
    ("Quorvale elects a mayor", "The town of Quorvale elected Idris Pennington as its mayor on "
     "Tuesday. Pennington, a retired ferry captain, won 61 percent of the vote.",
     "Who did Quorvale elect as its mayor?"),
    ("Brindlemoor opens a library", "The village of Brindlemoor opened a new library on Friday. "
     "The building was designed by the architect Saskia Oyelaran and holds 20,000 books.",
     "Which architect designed the Brindlemoor library?"),
    ("Tessaly ferry resumes", "The ferry between Tessaly and Morrow Point resumed service on "
     "Sunday after a strike. The operator said boats would leave every 40 minutes.",
     "How often will the Tessaly ferry leave?"),
]


def test_the_app_answers_while_another_process_adds_and_deletes(tmp_path: Path,
                                                                 seed_title: str) -> None:
    """Questions keep coming from a client while this test process, another writer, changes the
    index under the running app: no error, and every change is seen by the next question."""
    from gradio_client import Client

    index, log = tmp_path / "index", tmp_path / "app.log"
    writer = NewsQA(index)
    writer.add_paths([SEED_ARTICLE])
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--index", str(index)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=ENV)
    try:
        url = wait_for_url(proc, log)
        asked, errors, done = [], [], threading.Event()

        def keep_asking() -> None:
            client = Client(url, verbose=False)
            while not done.is_set():
                try:
                    result = client.predict("How many POWs were on the first list?", 5,
                                            api_name="/ask")
                    asked.append(result["citations"][0]["title"] if result["found"] else "")
                except Exception as error:  # noqa: BLE001 - any failure is what we count
                    errors.append(repr(error))

        background = threading.Thread(target=keep_asking)
        background.start()
        client = Client(url, verbose=False)
        try:
            for title, text, question in ARTICLES:
                doc = make_document(text, title=title)
                writer.add([doc])
                added = client.predict(question, 5, api_name="/ask")
                assert added["found"] and added["citations"][0]["doc_id"] == doc.id, added
                writer.delete(doc.id)
                gone = client.predict(question, 5, api_name="/ask")
                assert doc.id not in {c["doc_id"] for c in gone["citations"]}
                assert doc.id not in {c["doc_id"] for a in gone["alternatives"]
                                      for c in a["citations"]}
        finally:
            done.set()
            background.join(timeout=120)
    finally:
        stop(proc)
        writer.close()
    assert errors == []
    assert asked and set(asked) == {seed_title}
