"""Where the shipped reader and seed articles are: ``models/`` and ``seeds/`` beside the source
tree (a clone, an editable install), else the copies a wheel installs as the package data
``newsqa_models`` and ``newsqa_seeds`` (see pyproject.toml)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SOURCE_TREE = Path(__file__).resolve().parents[1]


def bundled(folder: str, package: str) -> Path:
    """``SOURCE_TREE/folder`` when present, else the installed ``package``'s directory."""
    local = SOURCE_TREE / folder
    if local.is_dir() and (SOURCE_TREE / "pyproject.toml").is_file():  # not site-packages/models
        return local
    spec = importlib.util.find_spec(package)  # a data-only (namespace) package: no __init__
    if spec is None or not spec.submodule_search_locations:
        return local  # neither: callers say that it is missing, naming this path
    return Path(next(iter(spec.submodule_search_locations)))


DEFAULT_READER = bundled("models", "newsqa_models") / "reader"
SEEDS = bundled("seeds", "newsqa_seeds")
