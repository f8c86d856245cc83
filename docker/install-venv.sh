#!/bin/sh
# Builds the agent's virtualenv: the project as a wheel, every dependency as a binary wheel
# (or pure Python), no compiler needed. Dockerfile.arm64 runs it in its build stage and
# tests/service/test_dockerfile.py runs it on the test machine. Run over an existing
# VENV_DIR it upgrades in place (docs/operations.md, "Upgrade"). The commit shown by
# `edge-agent --version` comes from git in SOURCE_DIR, or from EDGE_AGENT_COMMIT.
#   usage: install-venv.sh SOURCE_DIR VENV_DIR
set -eu
src="$1"
venv="$2"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --no-cache-dir --quiet --upgrade pip
"$venv/bin/pip" wheel --no-cache-dir --quiet --no-deps --wheel-dir "$wheels" "$src"
"$venv/bin/pip" install --no-cache-dir --quiet --only-binary=:all: "$wheels"/edge_agent-*.whl
# Over an existing install pip keeps a same-version edge-agent ("already satisfied"): replace
# it, so that re-running this script always installs the code it was given (deps stay).
"$venv/bin/pip" install --no-cache-dir --quiet --no-deps --force-reinstall "$wheels"/edge_agent-*.whl
"$venv/bin/edge-agent" --version
