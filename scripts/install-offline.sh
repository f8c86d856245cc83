#!/bin/sh
# Installs edge-agent from the wheelhouse this script ships in (make wheelhouse), with no
# network: the locked dependencies, hash-checked, then the agent's own wheel.
#   usage: sh edge-agent-wheelhouse/install.sh VENV_DIR [agent|hub]
# Needs python3 (3.11 to 3.13) with its venv module; docs/operations.md, "Offline install".
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:?usage: install.sh VENV_DIR [agent|hub]}"
set_="${2:-agent}"
case "$set_" in agent|hub) ;; *) echo "install.sh: the set is agent or hub, not $set_" >&2; exit 2 ;; esac
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --no-index --find-links "$here/wheels" \
  --require-hashes --only-binary=:all: -r "$here/requirements/$set_.txt"
"$venv/bin/pip" install --quiet --no-index --no-deps --force-reinstall "$here"/wheels/edge_agent-*.whl
"$venv/bin/pip" check
"$venv/bin/edge-agent" --version
