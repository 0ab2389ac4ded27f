# The README's commands. `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo dev dev-postgres workers test test-all lint format bench simulator clean reliability

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: install  ## install, then run the main job against the bundled simulator
	$(BIN)/ledger-etl demo

test: install  ## install, lint, then run the tests (CI=true or RUN_SLOW=1 adds the slow cases)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	bash scripts/run-tests.sh

test-all: install  ## everything, the slow cases included (as CI runs it)
	RUN_SLOW=1 bash scripts/run-tests.sh

dev: install  ## the Dagster UI and daemon on http://127.0.0.1:3000, instance in dagster_home/
	DAGSTER_HOME=$(CURDIR)/dagster_home VENV=$(VENV) bash scripts/dev.sh

dev-postgres: install  ## the UI and daemon on the PostgreSQL instance (DAGSTER_POSTGRES_URL)
	@test -n "$$DAGSTER_POSTGRES_URL" || { echo "set DAGSTER_POSTGRES_URL, e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/dagster" >&2; exit 2; }
	DAGSTER_HOME=$(CURDIR)/dagster_home/postgres VENV=$(VENV) bash scripts/dev.sh

N ?= 2
workers: install  ## N Celery workers for the history jobs (docs/deploy.md)
	N=$(N) VENV=$(VENV) bash scripts/workers.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install  ## every benchmark; they print their figures
	$(BIN)/python -m benchmarks

reliability: install  ## every fault case on SQLite and PostgreSQL; rewrites docs/reliability.md
	$(BIN)/python -m tests.reliability.report

simulator: install  ## serve the simulator on 127.0.0.1:8765
	$(BIN)/ledger-etl simulator serve --host 127.0.0.1 --port 8765 --seed 42

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
