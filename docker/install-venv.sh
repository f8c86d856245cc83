#!/bin/sh
# Builds the agent's virtualenv: the project as a wheel, every dependency as a binary wheel
# (or pure Python), no compiler needed. Dockerfile.arm64 runs it in its build stage and
# tests/service/test_dockerfile.py runs it on the test machine.
#   usage: install-venv.sh SOURCE_DIR VENV_DIR
# EDGE_AGENT_EXTRAS=postgres adds the PostgreSQL driver a hub with `dedup.backend: postgres`
# needs (the same as `pip install 'edge-agent[postgres]'`); the agent needs no extra.
set -eu
src="$1"
venv="$2"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --no-cache-dir --quiet --upgrade pip
"$venv/bin/pip" wheel --no-cache-dir --quiet --no-deps --wheel-dir "$wheels" "$src"
wheel="$(ls "$wheels"/edge_agent-*.whl)"
extras="${EDGE_AGENT_EXTRAS:-}"
"$venv/bin/pip" install --no-cache-dir --quiet --only-binary=:all: "$wheel${extras:+[$extras]}"
"$venv/bin/edge-agent" --version
