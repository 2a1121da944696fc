"""What the README and the error messages tell a new user to run works on a clone that `make`
set up: the `newsqa` command from its `.venv`, and extras from the source tree (newsqa is on no
package index, so `pip install 'newsqa[milvus]'` finds nothing)."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from qa.store.milvus.client import INSTALL_HINT
from test_docs import section

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent  # the environment these tests run in


def test_the_milvus_hint_installs_the_extra_from_the_source_tree_or_by_its_packages() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"]["optional-dependencies"]["milvus"]
    packages = [re.match(r"[A-Za-z0-9_.-]+", requirement)[0] for requirement in extra]
    assert "pip install -e '.[milvus]'" in INSTALL_HINT
    assert f"pip install {' '.join(packages)}" in INSTALL_HINT
    assert "newsqa[" not in INSTALL_HINT
    milvus = section("From one machine to a Milvus cluster")
    assert "`.venv/bin/pip install -e '.[milvus]'`" in milvus and "newsqa[" not in milvus


def test_the_readme_says_how_to_run_newsqa_from_the_environment_make_made() -> None:
    setup = section("Set up and run")
    assert "VENV ?= .venv\n" in (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\n. .venv/bin/activate\nnewsqa ask " in setup and "`.venv/bin/newsqa ask " in setup
    # what the activation does, here with the environment of these tests
    found = subprocess.run(["bash", "-c", f'. "{VENV}/bin/activate" && command -v newsqa && '
                            "newsqa --help"], capture_output=True, text=True, cwd=ROOT)
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines()[0] == str(VENV / "bin" / "newsqa")
