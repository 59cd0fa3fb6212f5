# Taube: `make run` serves on http://127.0.0.1:8080, `make test` runs the whole suite.
# Both set up what is missing first (a virtualenv in .venv with the project and its dev tools).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ./data
ARGS   ?=

.PHONY: run test lint typecheck fmt clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/taube serve --host 127.0.0.1 --port 8080 --data $(DATA) $(ARGS)

test: $(STAMP) lint
	$(BIN)/pytest -q $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info

# Benchmarks (docs/performance.md): never part of `make test`. Each workload gets a fresh
# server on a free port, pinned to core 0, with the load generator on core 1.
# `make bench` runs every workload once (a few minutes) and prints the targets as met/short;
# `make bench ARGS="--runs 3 --duration 20s"` follows the method; `make bench-baseline
# ARGS=--json` prints the bare relay's figures as one JSON object, last.
.PHONY: bench bench-baseline

bench: $(STAMP)
	$(BIN)/python -m taube.bench.suite $(ARGS)

bench-baseline: $(STAMP)
	$(BIN)/python -m taube.bench.suite --baseline $(ARGS)

# Cluster chaos tests at full scale (docs/operations.md, "Measured"): three real nodes on
# the PostgreSQL and NATS of TAUBE_TEST_POSTGRES_DSN / TAUBE_TEST_NATS_URL (default: both on
# loopback), 200 SDK clients and 30 s of traffic per scenario, a 2,000-client reconnect storm.
# About three minutes; prints the measured figures at the end. `make test` runs the same
# tests at small scale. CI=true: a missing service fails the run instead of skipping it.
.PHONY: chaos

chaos: $(STAMP)
	CI=true TAUBE_CHAOS_LONG=1 $(BIN)/pytest -q -o timeout=900 tests/cluster $(ARGS)
