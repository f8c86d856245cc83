# Two commands matter: `make demo` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench venv dev-venv system-deps clean chaos chaos-short

$(BIN)/edge-agent: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "edge-agent needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || \
	  { echo "Python's venv module is missing: sudo apt-get install python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

venv: $(BIN)/edge-agent

dev-venv: venv
	$(BIN)/pip install --quiet -e '.[dev]'

## demo: the simulated plant, the MaintainX stand-in and the agent, on one machine.
demo: venv
	$(BIN)/edge-agent demo

## test: installs what the tests need (mosquitto, systemd-analyze), then ruff, mypy, pytest.
test: system-deps dev-venv lint typecheck pytest

system-deps:
	./scripts/install-system-deps.sh

lint:
	$(BIN)/ruff check edge_agent tests bench
	$(BIN)/ruff format --check edge_agent

typecheck:
	$(BIN)/mypy --strict edge_agent

pytest:
	$(BIN)/pytest -q -p no:cacheprovider

## chaos-short: the fault campaign of `make test` alone (3 fixed seeds x 60 s of faults).
chaos-short: dev-venv
	$(BIN)/pytest -q -p no:cacheprovider -s tests/chaos

## chaos: a long campaign, e.g. `make chaos MINUTES=60 SEED=42` (SEED: random if unset).
MINUTES ?= 60
SEED ?=
chaos: dev-venv
	$(BIN)/python -m tests.chaos.campaign --seconds $$(( $(MINUTES) * 60 )) $(if $(SEED),--seed $(SEED))

## bench: every benchmark in bench/, figures printed.
bench: dev-venv
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
