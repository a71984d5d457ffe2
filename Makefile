# Two commands for a newcomer: `make demo` and `make test`. Each creates the virtual
# environment and installs what it needs first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml examples/gatewise-prune/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]' -e examples/gatewise-prune
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gatewise run

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .gatewise .pytest_cache
