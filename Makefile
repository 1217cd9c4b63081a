# The two commands a new developer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench openapi settings-doc migrate seed worker clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: install, migrate, seed demo data once, serve on http://127.0.0.1:8000 with the worker
run: $(STAMP)
	$(BIN)/python -m app migrate
	$(BIN)/python -m app seed-demo
	$(BIN)/python -m app serve

## test: the whole suite (SQLite; PostgreSQL too when TEST_DATABASE_URL is set)
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff's rules and formatting, the import contracts (layers, core knows no domain, a domain's
## tables are its own) and the type checker; the settings are in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check app tests scripts migrations
	$(BIN)/ruff format --check app tests scripts migrations
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix app tests scripts migrations
	$(BIN)/ruff format app tests scripts migrations

## bench: benchmarks under scripts/bench (they print figures; they are not tests)
bench: $(STAMP)
	$(BIN)/python scripts/bench/identity.py
	$(BIN)/python scripts/bench/push.py
	$(BIN)/python scripts/bench/oidc.py
	$(BIN)/python scripts/bench/incidents.py
	$(BIN)/python scripts/bench/media.py
	$(BIN)/python scripts/bench/dossiers.py
	$(BIN)/python scripts/bench/camera.py

openapi: $(STAMP)
	$(BIN)/python -m app openapi

## settings-doc: docs/settings.md from the settings classes (a test fails when it is not current)
settings-doc: $(STAMP)
	$(BIN)/python -m app settings-doc

migrate: $(STAMP)
	$(BIN)/python -m app migrate

seed: $(STAMP)
	$(BIN)/python -m app seed-demo

worker: $(STAMP)
	$(BIN)/python -m app worker

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
