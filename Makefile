# Every target installs what it needs: a fresh clone needs only python3 (3.11+).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The real folders; teledispatch/{producer,worker,simulator} link to the top-level ones.
SRC    := teledispatch producer worker simulator tests bench
# Test processes for `make test` (pytest-xdist; a file's tests stay in one process). Every test
# owns its Redis, database, simulator and workers, so they run side by side.
TEST_PROCS ?= 2

.PHONY: install demo test chaos unit component integration lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the real pipeline (simulator + worker + Redis) on embedded defaults and show the result.
demo: $(STAMP)
	$(BIN)/teledispatch demo

## Lint, type-check, then every test (unit + integration with real Redis, Celery, SQLite, PostgreSQL)
## except the slowest fault runs, which `make chaos` runs (CI runs both).
test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not chaos" -n $(TEST_PROCS) --dist loadfile --durations=15

## Fault runs with workers killed (kill -9) every few seconds; about 3 minutes.
chaos: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m chaos --durations=10

## The tiers, one folder each: unit (pure, no services), component (real Redis/PostgreSQL/sockets,
## no Celery), integration (Celery workers + simulator), meta (the repository itself).
unit: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit tests/meta

component: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/component

integration: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/integration

lint: $(STAMP)
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix $(SRC)
	$(BIN)/ruff format $(SRC)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
