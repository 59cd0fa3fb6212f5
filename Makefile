# Taube: `make run` serves on http://127.0.0.1:8080, `make test` runs the whole suite.
# Both set up what is missing first: a virtualenv in .venv with the project and its dev
# tools, and the web client (web/, TypeScript, built with npm into the Python package).
# `make test` also installs Debian's Chromium where it is missing (the browser tests
# drive it with Playwright; Playwright's own browser download is not used).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ./data
ARGS   ?=

WEB_BUILT := src/taube/web/static/.built
WEB_DEPS  := web/node_modules/.installed
WEB_SRC   := $(shell find web/src web/public -type f 2>/dev/null) web/package.json \
             $(wildcard web/*.mjs web/tsconfig*.json)
CHROMIUM  ?= /usr/bin/chromium

# The hot path compiled with mypyc (shipped with mypy; docs/performance.md 9.15): the same
# source, about a fifth fewer instructions per message. Each compiled module (.so beside its
# .py) takes precedence over its source at import, so they are rebuilt whenever any source
# changes (types cross modules); tests/conftest.py refuses to run on a stale build. Without a
# C compiler the build fails with a warning and everything runs as plain Python.
# `make clean-compiled` goes back to plain Python.
# Compiled modules must not await inside a `finally` or `except` block: mypyc 2.4 then
# re-raises exceptions that were already handled, even in other coroutines (mypyc issues
# 1114; tests/unit/test_compiled_modules.py checks it). That is why the connection's
# lifecycle cleanups live in taube/server/endpoints.py, which stays interpreted.
HOT_MODULES := taube/store/sqlite.py taube/store/unacked.py taube/store/records.py \
               taube/store/inbox_runs.py taube/store/sent_runs.py taube/store/tickets.py \
               taube/store/rows.py taube/core/delivery.py taube/core/directory.py \
               taube/core/clock.py taube/protocol/ids.py taube/server/after_commit.py \
               taube/server/framing.py taube/server/admission.py taube/server/limits.py \
               taube/server/wakeup.py taube/server/gateway.py taube/bus/local.py \
               taube/bus/subjects.py
PY_SRC      := $(shell find src/taube -name '*.py' 2>/dev/null)
COMPILED    := src/.compiled

.PHONY: run test lint typecheck fmt clean setup web web-test chromium compile clean-compiled

setup: $(STAMP) $(WEB_BUILT) $(COMPILED)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $(WEB_DEPS)

$(WEB_BUILT): $(WEB_DEPS) $(WEB_SRC)
	cd web && npm run --silent build
	touch $(WEB_BUILT)

web: $(WEB_BUILT)

# The browser's cryptography against the shared vectors, and its SDK (offline tests;
# the interop test skips without TAUBE_TEST_SERVER and TAUBE_CLI), under Node.
web-test: $(WEB_DEPS)
	cd web && npm run --silent test:crypto
	cd web && npm run --silent test:sdk

chromium:
	@test -x $(CHROMIUM) || command -v chromium >/dev/null || { \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }

$(COMPILED): $(STAMP) $(PY_SRC) Makefile
	@echo "compiling the hot path with mypyc (a minute or two)"
	@cd src && find . -name '*.so' -delete \
		&& ../$(BIN)/mypyc $(HOT_MODULES) > ../$(VENV)/mypyc.log 2>&1 \
		|| { tail -5 ../$(VENV)/mypyc.log; \
		     echo "WARNING: mypyc failed ($(VENV)/mypyc.log): running as plain Python"; \
		     find . -name '*.so' -delete; }
	touch $(COMPILED)

compile: $(COMPILED)

clean-compiled:
	find src -name '*.so' -delete
	rm -rf src/build $(COMPILED)

run: $(STAMP) $(WEB_BUILT) $(COMPILED)
	$(BIN)/taube serve --host 127.0.0.1 --port 8080 --data $(DATA) $(ARGS)

test: $(STAMP) $(WEB_BUILT) $(COMPILED) chromium lint web-test
	$(BIN)/pytest -q -m "not chaos" $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean: clean-compiled
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info \
		web/node_modules web/build src/taube/web/static

# Benchmarks (docs/performance.md): never part of `make test`. Each workload gets a fresh
# server on a free port, pinned to core 0, with the load generator on core 1.
# `make bench` runs every workload once (a few minutes) and prints the targets as met/short;
# `make bench ARGS="--runs 3 --duration 20s"` follows the method; `make bench-baseline
# ARGS=--json` prints the bare relay's figures as one JSON object, last.
.PHONY: bench bench-baseline

bench: $(STAMP) $(COMPILED)
	$(BIN)/python -m taube.bench.suite $(ARGS)

bench-baseline: $(STAMP) $(COMPILED)
	$(BIN)/python -m taube.bench.suite --baseline $(ARGS)

# The SQLite store's own instructions per message under Workload A's shape, for changes
# too small for same-minute pairs (taube/store/bench.py, docs/performance.md 9.22):
# callgrind over 4 and 8 rounds of 5,000 messages, the difference per message. About two
# minutes; needs valgrind (apt-get install valgrind).
.PHONY: bench-store
CALLGRIND = valgrind --tool=callgrind --callgrind-out-file=/dev/null $(BIN)/python \
	-m taube.store.bench --rounds

bench-store: $(STAMP) $(COMPILED)
	@command -v valgrind >/dev/null || { echo "bench-store needs valgrind"; exit 1; }
	@a=$$($(CALLGRIND) 4 2>&1 | sed -n 's/.*Collected : //p'); \
	 b=$$($(CALLGRIND) 8 2>&1 | sed -n 's/.*Collected : //p'); \
	 echo "store path: $$(( (b - a) / 20000 )) instructions per message (callgrind)"

# Cluster chaos tests at full scale (docs/operations.md, "Measured"): three real nodes on
# the PostgreSQL and NATS of TAUBE_TEST_POSTGRES_DSN / TAUBE_TEST_NATS_URL (default: both on
# loopback), 200 SDK clients and 30 s of traffic per scenario, a 2,000-client reconnect storm.
# About three minutes; prints the measured figures at the end. `make test` runs the same
# tests at small scale. Also the status scenario (tests/status, marked `chaos`): kill -9 of
# a node opens an incident within 60 s, clients on the other nodes hear it, it resolves
# itself after the restart (two to four minutes; not part of `make test`).
# CI=true: a missing service fails the run instead of skipping it.
.PHONY: chaos

chaos: $(STAMP)
	CI=true TAUBE_CHAOS_LONG=1 $(BIN)/pytest -q -o timeout=900 tests/cluster tests/status $(ARGS)

# Fuzzing (docs/security.md): hypothesis-generated WebSocket frames and schemathesis against
# /openapi.json of a real server, FUZZ_CASES cases each (default 10,000; `make test` runs 200
# of each), bounded to 30 minutes. Prints the cases run and the codes seen.
.PHONY: fuzz
FUZZ_CASES ?= 10000

fuzz: $(STAMP)
	FUZZ_CASES=$(FUZZ_CASES) $(BIN)/pytest -q -s -o timeout=1800 \
		tests/security/test_fuzz_frames.py tests/security/test_fuzz_openapi.py $(ARGS)
