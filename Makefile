# Two commands matter: `make demo` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench mutation venv dev-venv system-deps clean

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

## bench: every benchmark in bench/, figures printed.
bench: dev-venv
	$(BIN)/python bench/run_all.py

## mutation: how much of the pure core its tests pin (slow; SAMPLE=40 for a seeded sample).
mutation: dev-venv
	$(BIN)/python scripts/mutation.py $(if $(SAMPLE),--sample $(SAMPLE) --seed $(or $(SEED),1))

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
