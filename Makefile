# make demo / make test work on a fresh machine: each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-sdk-floors lint typecheck bench docs docs-serve clean

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

LINT_DIRS := $(wildcard adaptive_router tests simulations benchmarks storage examples scripts notebooks)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck $(CHROMIUM) test-sdk-floors
	$(BIN)/python -m pytest -q -p no:cacheprovider --nbmake --nbmake-timeout=300 tests notebooks

# The provider, metering and capture tests against the oldest openai, anthropic and
# litellm that pyproject.toml admits (pinned in tests/sdk_floors.txt), in a virtual
# environment of their own: metering reaches into the SDKs, so the floors are tested, not
# assumed.
FLOORS := .venv-sdk-floors
SDK_TESTS := tests/test_providers.py tests/test_metering.py tests/test_capture.py \
	tests/test_capture_router.py tests/test_testing_streams.py tests/test_from_models.py \
	tests/test_repair.py tests/test_litellm.py

$(FLOORS)/.installed: pyproject.toml tests/sdk_floors.txt
	$(PYTHON) -m venv $(FLOORS)
	$(FLOORS)/bin/python -m pip install -q --upgrade pip
	$(FLOORS)/bin/python -m pip install -q -e ".[postgres]" -r tests/sdk_floors.txt \
		pytest pytest-timeout hypothesis
	touch $@

test-sdk-floors: $(FLOORS)/.installed
	$(FLOORS)/bin/python -m pytest -q -p no:cacheprovider $(SDK_TESTS)

# The documentation site (mkdocs.yml): --strict makes a broken link, anchor or reference an
# error. The test suite builds it too (tests/test_docs.py). Material's end-of-life notice
# about MkDocs 2 is not about this site: silenced.
DOCS_STAMP := $(VENV)/.installed-docs
export NO_MKDOCS_2_WARNING := 1

$(DOCS_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[docs,cli]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(DOCS_STAMP)
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(FLOORS) .mypy_cache .ruff_cache .pytest_cache site
