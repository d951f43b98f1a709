# Two commands for a newcomer: `make demo` and `make test`. Each creates or refreshes the
# local .venv from pyproject.toml when needed, so nothing has to be run before them.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m streamyolo demo

# The suite is mostly CPU-bound: one test process per core, two at most (the tests that run
# cameras in real time are written to hold on a box as busy as that); then, by themselves, the
# few that measure time as it passes (marked alone).
test: $(STAMP)
	$(PY) -m pytest --numprocesses=auto --maxprocesses=2 -m "not alone"
	$(PY) -m pytest -m alone

lint: $(STAMP)
	$(PY) -m ruff check streamyolo tests scripts
	$(PY) -m mypy streamyolo

bench: $(STAMP)
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
