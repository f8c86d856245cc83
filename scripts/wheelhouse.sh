#!/usr/bin/env bash
# One archive with every wheel an air-gapped gateway needs: the locked set
# (requirements/agent.txt) for each platform and Python version, our own wheel, and the lock
# files, so that the gateway installs with
# `pip install --no-index --find-links`: its install.sh (scripts/install-offline.sh) does that
# (docs/operations.md, "Offline install").
#   usage: wheelhouse.sh OUT_DIR
#   WHEELHOUSE_ARCHS    CPU architectures (default: "x86_64 aarch64")
#   WHEELHOUSE_PYTHONS  CPython versions (default: "3.11 3.12 3.13")
#   WHEELHOUSE_SET      agent, or hub (agent + the PostgreSQL driver) (default: agent)
#   PYTHON              the interpreter that runs pip (default: python3)
# Every download is checked against the lock's hashes (--require-hashes).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: wheelhouse.sh OUT_DIR}"
archs="${WHEELHOUSE_ARCHS:-x86_64 aarch64}"
pythons="${WHEELHOUSE_PYTHONS:-3.11 3.12 3.13}"
set_="${WHEELHOUSE_SET:-agent}"
case "$set_" in agent|hub) ;; *) echo "WHEELHOUSE_SET is agent or hub, not $set_" >&2; exit 2 ;; esac
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/edge-agent-wheelhouse"
mkdir -p "$stage/wheels" "$stage/requirements" "$out"

"$python" -m pip wheel --quiet --no-cache-dir --no-deps --wheel-dir "$stage/wheels" "$root"
# Every pin, its environment marker dropped: pip judges a marker by the Python that runs it,
# not by --python-version, so a build on Python 3.12 would leave out what only 3.11 installs
# (wait-for2; python_full_version < '3.12') and the 3.11 gateway could not install offline.
# The gateway's pip judges the markers again, against itself.
lock="$work/$set_.txt"
sed -E 's/^([A-Za-z0-9._-]+==[^ ;]+) *;[^\\]*\\$/\1 \\/' "$root/requirements/$set_.txt" >"$lock"
for arch in $archs; do
  for version in $pythons; do
    # glibc 2.28 and older: Debian 10+, Raspberry Pi OS, Ubuntu 20.04+.
    "$python" -m pip download --quiet --no-cache-dir --no-deps --require-hashes \
      --only-binary=:all: --implementation cp --python-version "$version" \
      --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" \
      --platform "manylinux2014_$arch" \
      --dest "$stage/wheels" -r "$lock"
  done
done
cp "$root/requirements/agent.txt" "$root/requirements/hub.txt" "$stage/requirements/"
cp "$root/scripts/install-offline.sh" "$stage/install.sh"

own="$(cd "$stage/wheels" && ls edge_agent-*.whl)"
version="$(echo "$own" | cut -d- -f2)"
name="edge-agent-wheelhouse"
[ "$set_" = agent ] || name="edge-agent-$set_-wheelhouse"
archive="$out/$name-$version.tar.gz"
tar -C "$work" -czf "$archive" edge-agent-wheelhouse
echo "$archive: $(find "$stage/wheels" -name '*.whl' | wc -l) wheels," \
  "$(du -h "$archive" | cut -f1), $set_ set for $archs and CPython $pythons"
