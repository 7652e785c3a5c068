# Loom: `make start` runs it, `make test` tests it. Everything else is installed on demand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip

.PHONY: start dev test test-py test-ui lint typecheck bench soak ui clean

$(BIN)/python:
	@echo "==> Creating the Python environment in .venv"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall when pyproject.toml changes.
$(VENV)/.stamp-runtime: pyproject.toml | $(BIN)/python
	@echo "==> Installing Loom's Python packages (the first time takes a minute or two)"
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	@echo "==> Installing Loom's Python packages and the test tools"
	$(PIP) install --quiet -e ".[dev]"
	touch $@ $(VENV)/.stamp-runtime

frontend/node_modules/.stamp: frontend/package.json frontend/package-lock.json
	@echo "==> Installing the UI's packages (npm ci)"
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Rebuild the UI when any of its sources is newer than the build.
UI_SOURCES := $(shell find frontend/src frontend/index.html frontend/vite.config.ts frontend/package.json -type f 2>/dev/null)
frontend/dist/index.html: $(UI_SOURCES) frontend/node_modules/.stamp
	@echo "==> Building the UI into frontend/dist"
	cd frontend && npm run --silent build

ui: frontend/dist/index.html

start: $(VENV)/.stamp-runtime ui
	@echo "==> Starting Loom (Ctrl+C stops it)"
	$(BIN)/loom serve

dev: $(VENV)/.stamp-runtime frontend/node_modules/.stamp
	@echo "API on :8100, Vite dev server with hot reload on :5173"
	$(BIN)/loom serve & cd frontend && npm run dev; kill %1

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check backend tests benchmarks
	$(BIN)/ruff format --check backend tests benchmarks

typecheck: $(VENV)/.stamp-dev
	$(BIN)/mypy

# The suites that drive Loom through `start_loom` run twice: against one in-process server,
# then against the scaled form (two `loom serve --no-worker` + two `loom worker` processes
# sharing Postgres and Redis). Not tests/runs/test_long_thread.py: most of it drives the
# compiled graph directly, whatever the topology.
CLUSTER_SUITES := tests/runs/test_guide_runs.py tests/runs/test_stream.py \
	tests/runs/test_concurrency_and_access.py tests/runs/test_multitask.py \
	tests/runs/test_faults.py tests/runs/test_agent_tools.py \
	tests/runs/test_db_faults.py tests/runs/test_redis_faults.py \
	tests/retrieval/test_runs.py tests/retrieval/test_ingest.py \
	tests/api/test_guide_assistants_threads.py tests/api/test_isolation.py \
	tests/api/test_chat_ui_support.py tests/api/test_limits.py tests/api/test_pagination.py

# The Python suite includes the browser tests (tests/e2e), which need the built UI.
test-py: $(VENV)/.stamp-dev ui
	$(BIN)/pytest -q
	LOOM_TEST_TOPOLOGY=cluster $(BIN)/pytest -q $(CLUSTER_SUITES)

test-ui: frontend/node_modules/.stamp
	cd frontend && npm run --silent typecheck && npm test --silent

test: lint typecheck test-ui test-py

# The figures, then a 5-minute soak (50 streams, RSS every 10 s and its slope).
bench: $(VENV)/.stamp-dev
	$(BIN)/python -m benchmarks.run --soak 300 $(BENCH_ARGS)

soak: $(VENV)/.stamp-dev
	$(BIN)/python -m benchmarks.run --soak-only $(BENCH_ARGS)

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist .pytest_cache .mypy_cache .ruff_cache
