"""The README matches the code: "How it works" names every package and top-level module of
``qa/`` (and nothing that is not there), and the CLI section every ``newsqa`` command, each of
which has help text."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from qa.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The README's ``## title`` section, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"the README has no '## {title}' section"
    return match.group(1)


def architecture_table() -> set[str]:
    """What the first column of the "How it works" table names (``qa/store/``, ``qa/cli.py``)."""
    rows = [line for line in section("How it works").splitlines() if line.startswith("| `qa/")]
    return {re.match(r"\| `([^`]+)`", row).group(1) for row in rows}


def parts_of_qa() -> set[str]:
    """Every package of ``qa/``, subpackages included (``qa/store/local/``), and every module
    directly in it (``qa/cli.py``)."""
    qa = ROOT / "qa"
    packages = {f"{path.parent.relative_to(ROOT).as_posix()}/"
                for path in qa.rglob("__init__.py") if path.parent != qa}
    return packages | {path.relative_to(ROOT).as_posix() for path in qa.glob("*.py")}


def test_the_architecture_table_names_every_package_and_top_level_module() -> None:
    named, present = architecture_table(), parts_of_qa()
    assert len(present) > 20
    assert sorted(present - named) == [], "qa/ holds these, the README's table does not name them"
    assert sorted(named - present) == [], "the README's table names these, qa/ does not hold them"


def commands() -> dict[str, str | None]:
    """Every ``newsqa`` command with its help line (parsing builds them without their modules)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help for choice in sub._choices_actions}


def test_every_command_has_help_and_is_in_the_readme() -> None:
    found, cli = commands(), section("CLI")
    assert {"index", "ask", "serve", "eval", "calibrate", "train-reader"} <= set(found)
    assert [name for name, help in found.items() if not (help or "").strip()] == []
    assert [name for name in found if not re.search(rf"^newsqa {re.escape(name)}\b", cli, re.M)
            ] == [], "commands the README's CLI section does not show"
