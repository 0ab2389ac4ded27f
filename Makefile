# The README's commands. `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint format bench simulator clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: install  ## install, then run the main job against the bundled simulator
	$(BIN)/ledger-etl demo

test: install  ## install, lint, then run the whole test suite (what CI runs)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	bash scripts/run-tests.sh

test-fast: install  ## the suite without the slow cases
	bash scripts/run-tests.sh -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m benchmarks

simulator: install  ## serve the simulator on 127.0.0.1:8765
	$(BIN)/ledger-etl simulator serve --host 127.0.0.1 --port 8765 --seed 42

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
