# make demo / make test work on a fresh machine: each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

# The dashboard's browser test drives Debian's Chromium (never a downloaded browser).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y chromium chromium-driver

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The demo needs the command line, the two SDKs it drives against the bundled fake
# provider, and matplotlib for its PNG: a fraction of the install time of .[dev].
DEMO_EXTRAS := cli,openai,anthropic,plot
DEMO_STAMP := $(VENV)/.installed-demo

$(DEMO_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[$(DEMO_EXTRAS)]"
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/adaptive-router demo --db adaptive_router_demo.db

LINT_DIRS := $(wildcard adaptive_router tests simulations benchmarks storage)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck $(CHROMIUM)
	$(BIN)/python -m pytest -q -p no:cacheprovider --nbmake --nbmake-timeout=300 tests notebooks

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
