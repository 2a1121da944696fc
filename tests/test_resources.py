"""A plain (non-editable) install finds the shipped reader and seeds: the wheel is built and
installed into a fresh virtual environment, outside this source tree, and answers a question."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from qa.resources import DEFAULT_READER, SEEDS, SOURCE_TREE

SCRIPT = """
import qa, qa.resources as r
from qa import NewsQA
print(qa.__file__)
print(r.DEFAULT_READER)
print(r.SEEDS)
with NewsQA("index") as q:
    q.add_paths([r.SEEDS])
    answer = q.ask("How many POWs were on the first list?")
print(answer.found, answer.citations[0].title if answer.citations else "")
"""


def test_source_tree_paths() -> None:
    assert DEFAULT_READER == SOURCE_TREE / "models" / "reader"
    assert SEEDS == SOURCE_TREE / "seeds"


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_has_the_reader_and_seeds(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(SOURCE_TREE)],
                   check=True)
    (wheel,) = (tmp_path / "dist").glob("newsqa-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The dependencies come from this environment (no registry in tests); a .pth line adds its
    # site-packages but not its .pth files, so this checkout's editable install stays out.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True)
    run = subprocess.run([python, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert run.returncode == 0, run.stderr
    package, reader, seeds, result = run.stdout.strip().splitlines()[-4:]
    assert Path(package) == Path(site) / "qa" / "__init__.py"
    assert Path(reader) == Path(site) / "newsqa_models" / "reader"
    assert Path(seeds) == Path(site) / "newsqa_seeds"
    assert result.startswith("True Russia and Ukraine carried out an exchange")
