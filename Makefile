# dydet developer tasks. `make test` builds .venv from scratch when it is missing (what CI runs: .ci/run).
# Override on the command line, e.g. `make install PYTHON=python3.12` or `make test PYTEST_ARGS="-x -k cli"`.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: install test test-slow lint format demo bench-core clean distclean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when pyproject.toml or this file changed since the last install.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e ".[dev]"
	touch $@

test: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-slow: install
	$(BIN)/pytest -q -m slow $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

demo: install
	$(BIN)/dydet train project=$(CURDIR)/runs name=demo exist_ok=True

bench-core: install
	$(BIN)/python benchmarks/bench_routes.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) runs
