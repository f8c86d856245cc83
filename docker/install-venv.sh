#!/bin/sh
# Builds the agent's virtualenv: every dependency exactly as locked (hash-checked binary
# wheels or pure Python, no compiler needed), then the project as a wheel without resolving
# anything more. Dockerfile.arm64 and Dockerfile.hub run it in their build stage and
# tests/service/test_dockerfile.py runs it on the test machine. Run over an existing
# VENV_DIR it upgrades in place (docs/operations.md, "Upgrade"): the project wheel is
# force-reinstalled, so a same-version build still replaces the code. The commit shown by
# `edge-agent --version` comes from git in SOURCE_DIR, or from EDGE_AGENT_COMMIT.
#   usage: install-venv.sh SOURCE_DIR VENV_DIR [LOCK_FILE]
#   LOCK_FILE: default SOURCE_DIR/requirements/agent.txt; requirements/hub.txt for the hub.
# EDGE_AGENT_EXTRAS=postgres (the PostgreSQL driver a hub with `dedup.backend: postgres`
# needs, as `pip install 'edge-agent[postgres]'`) makes requirements/hub.txt the default lock.
set -eu
# Absolute: pip reads a bare relative name (`install-venv.sh edge-agent ...`, as in the
# upgrade steps) as a package to fetch from the index, not as this folder.
src="$(cd "$1" && pwd)"
venv="$2"
default_lock="$src/requirements/agent.txt"
[ "${EDGE_AGENT_EXTRAS:-}" = postgres ] && default_lock="$src/requirements/hub.txt"
lock="${3:-$default_lock}"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --no-cache-dir --quiet --require-hashes --only-binary=:all: -r "$lock"
"$venv/bin/pip" wheel --no-cache-dir --quiet --no-deps --wheel-dir "$wheels" "$src"
"$venv/bin/pip" install --no-cache-dir --quiet --no-deps --force-reinstall "$wheels"/edge_agent-*.whl
# The lock satisfies what the package declares (a stale lock stops the build here).
"$venv/bin/pip" check
"$venv/bin/edge-agent" --version
