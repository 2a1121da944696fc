# Two commands set up a fresh machine: `make run` serves the app, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
# pip shows its errors only (-qq): the warnings of a first install are about the machine's pip
# set-up (index locations it cannot read) or pip's own (the pip that venv bundles with Python
# 3.11 says "lxml does not provide the extra 'html_clean'", which it does), nothing make can act
# on. A failed install still stops here with pip's error.
PIP := $(PY) -m pip install --quiet --quiet --disable-pip-version-check

.PHONY: setup run test test-fast bench
setup: $(VENV)/.installed

# torch first, pinned to the CPU build on this disk, so nothing else pulls a CUDA build. One line
# per step, as each takes a while.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "Installing torch 2.13 (CPU) into $(VENV) (once; a minute or two)…"
	@$(PIP) torch==2.13.0
	@echo "Installing newsqa and its dependencies into $(VENV) (once; a minute or two)…"
	@$(PIP) -e '.[test]'
	@touch $@

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
