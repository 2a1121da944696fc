# Two commands set up a fresh machine: `make run` serves the app, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: setup run test test-fast bench
setup: $(VENV)/.installed

# torch first, pinned to the CPU build on this disk, so nothing else pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test]'
	touch $@

run: setup
	$(VENV)/bin/newsqa serve

test: setup
	$(VENV)/bin/pytest -q

# Without the tests that train or evaluate a model or drive a browser: a few minutes.
test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow and not browser"

bench: setup
	$(PY) benchmarks/index_speed.py
	$(PY) benchmarks/reader_speed.py
