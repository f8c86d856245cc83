# Two commands matter: `make demo` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench mutation venv dev-venv system-deps clean \
        lock sbom vulncheck wheelhouse chaos chaos-short

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

## test: installs what the tests need (mosquitto, systemd-analyze), then ruff, mypy, the
## vulnerability check of the lock (~2 s; says so when the advisory source is unreachable), pytest.
test: system-deps dev-venv lint typecheck vulncheck pytest

system-deps:
	./scripts/install-system-deps.sh

## lint: ruff, and the layering contracts of pyproject.toml ([tool.importlinter]).
lint:
	$(BIN)/ruff check edge_agent tests bench scripts
	$(BIN)/ruff format --check edge_agent
	$(BIN)/lint-imports --no-logo --no-cache

typecheck:
	$(BIN)/mypy --strict edge_agent

## pytest: PYTEST_WORKERS processes (pytest-xdist), each given whole test files, so a file's
## module fixtures (servers, brokers, agents) are still built once. Most of the suite waits on
## subprocesses, sockets and timers rather than the CPU. Two workers, one per core of CI's
## machine: with three, the CPU-bound OPC UA discover tests (10,000 nodes) timed out on a
## loaded 2-core machine. PYTEST_WORKERS=0 runs in one process. Files go out in collection order
## (--no-loadscope-reorder): xdist's default hands out the files with most tests first, which
## left the one-test, four-minute fault campaign (tests/chaos, collected first) to the very end.
PYTEST_WORKERS ?= 2
pytest:
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

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

## mutation: how much of the pure core its tests pin (slow; SAMPLE=40 for a seeded sample,
## MODULES=edge_agent/rules/compiled.py for some modules only).
mutation: dev-venv
	$(BIN)/python scripts/mutation.py $(if $(SAMPLE),--sample $(SAMPLE) --seed $(or $(SEED),1)) $(MODULES)

## lock: requirements/agent.txt (the runtime set) and requirements/hub.txt (+ postgres), every
## file of every pinned release hashed (amd64 and arm64 wheels alike). Keeps the pins it can;
## `make lock LOCK_FLAGS=--upgrade` moves them to the newest versions pyproject.toml allows.
LOCK_FLAGS ?=
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --no-config --universal --python-version 3.11 \
  --generate-hashes --quiet --custom-compile-command "make lock" $(LOCK_FLAGS)
lock: dev-venv
	$(UV_COMPILE) -o requirements/agent.txt
	$(UV_COMPILE) --extra postgres -o requirements/hub.txt

## sbom: CycloneDX SBOMs of the locked sets, in dist/ (built with each release), the root
## component carrying the release's version.
SBOM = $(BIN)/cyclonedx-py requirements --pyproject pyproject.toml --output-reproducible
sbom: dev-venv
	mkdir -p dist
	$(SBOM) -o dist/edge-agent-sbom.cdx.json requirements/agent.txt
	$(SBOM) -o dist/edge-agent-hub-sbom.cdx.json requirements/hub.txt
	$(BIN)/python scripts/sbom_version.py dist/edge-agent-sbom.cdx.json dist/edge-agent-hub-sbom.cdx.json

## vulncheck: known vulnerabilities of the locked set (OSV); accepted ones, with their
## reason, in requirements/vulncheck-accept.toml. An unreachable advisory source is said,
## not failed.
vulncheck: dev-venv
	$(BIN)/python scripts/vulncheck.py requirements/hub.txt

## wheelhouse: dist/edge-agent-wheelhouse-VERSION.tar.gz, every wheel of the agent for linux
## amd64 and arm64 (CPython 3.11-3.13), the lock files and install.sh: the air-gapped install
## (docs/operations.md). WHEELHOUSE_ARCHS, WHEELHOUSE_PYTHONS, WHEELHOUSE_SET=hub: see the script.
wheelhouse: venv
	PYTHON=$(BIN)/python scripts/wheelhouse.sh dist

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
