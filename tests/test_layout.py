"""The package's shape: no import cycle between the modules of ``qa/``, package ``__init__``s that
load no heavy library, and every package listed for the wheel.

Imports are read with ``ast``, so every one counts: at the top of a module, inside a function
(the lazy imports that keep a cold start short), and under ``TYPE_CHECKING``. A type-only cycle
counts too: it still means two modules that each need the other to be read, and only
``from __future__ import annotations`` keeps it from failing when the module runs.
``import qa.x.y`` (or ``from qa.x import y``, ``y`` a module) is an import of ``qa.x.y``; that
Python first runs ``qa/x/__init__.py`` is not counted, which is why those stay light (checked
below). Modules that the CLI imports by name (``importlib``, its heavy commands) are not seen.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QA = ROOT / "qa"
# What a package __init__ must not load: each takes from a few hundred ms to seconds to import.
HEAVY = ("faiss", "gradio", "torch", "onnxruntime", "transformers", "sentence_transformers",
         "trafilatura", "feedparser", "pymilvus", "matplotlib")


def modules() -> dict[str, Path]:
    """Every module of ``qa`` by its dotted name; a package by its ``__init__.py``."""
    found = {}
    for path in sorted(QA.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module of ``qa`` that ``name`` is, or that holds it (``qa.x.f`` -> ``qa.x``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``qa`` that module ``name`` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(_resolve(alias.name, known) for alias in node.names
                         if alias.name.split(".")[0] == "qa")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package, one level up per extra dot
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module.split(".")[0] != "qa":
                continue
            for alias in node.names:  # a submodule imported by name is that module
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in known else _resolve(module, known))
    return {m for m in found if m is not None and m != name}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan), as the list of
    modules along it, the first repeated at the end."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the number of modules
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    found = []
    for group in groups:
        start = min(group)
        path, seen = [start], {start}
        while True:  # walk inside the group until a module repeats: that closes a cycle
            nxt = min(m for m in graph[path[-1]] if m in group)
            if nxt in seen:
                found.append(path[path.index(nxt):] + [nxt])
                break
            path.append(nxt)
            seen.add(nxt)
    return found


def test_the_cycle_finder_finds_a_cycle_and_names_its_modules() -> None:
    graph = {"qa.a": {"qa.b"}, "qa.b": {"qa.c"}, "qa.c": {"qa.a", "qa.d"}, "qa.d": set()}
    assert cycles(graph) == [["qa.a", "qa.b", "qa.c", "qa.a"]]
    assert cycles({"qa.a": {"qa.a"}}) == [["qa.a", "qa.a"]]
    assert cycles({"qa.a": {"qa.b"}, "qa.b": set()}) == []


def test_imports_are_read_wherever_they_are(tmp_path: Path) -> None:
    source = ("from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
              "from qa.store import base\nimport qa.text\n"
              "if TYPE_CHECKING:\n    from qa.types import Filter\n"
              "def later():\n    from qa.store.local.store import Store\n"
              "    from . import cache\n    from .store.base import utc_now\n")
    path = tmp_path / "m.py"
    path.write_text(source, encoding="utf-8")
    known = modules()
    assert imports_of("qa.m", path, {**known, "qa.m": path}) == {
        "qa.store.base", "qa.text", "qa.types", "qa.store.local.store", "qa.cache"}


def test_no_import_cycle_between_modules() -> None:
    graph = import_graph()
    assert len(graph) > 30 and graph["qa.pipeline"]  # the walk found the package
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_storage_backends_never_import_the_factory() -> None:
    """``qa.store`` imports the backend a location needs; a backend imports ``qa.store.base``."""
    graph = import_graph()
    backends = [name for name in graph if name.startswith(("qa.store.local", "qa.store.milvus"))]
    assert backends and not [name for name in backends if "qa.store" in graph[name]]


def test_package_inits_import_no_heavy_library() -> None:
    """Importing every package (each ``__init__``) loads none of ``HEAVY``: what a package holds
    is imported where it is used, so a cold ``newsqa ask`` stays quick."""
    packages = sorted(name for name, path in modules().items() if path.name == "__init__.py")
    code = (f"import json, sys\nimport {', '.join(packages)}\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert len(packages) > 5 and json.loads(out.stdout) == []


def test_every_package_is_in_the_wheel() -> None:
    """pyproject.toml lists the packages a wheel holds: a new one left out would be missing
    from ``pip install .``."""
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {name for name, path in modules().items() if path.name == "__init__.py"}
    assert packages <= set(listed["tool"]["setuptools"]["packages"])
