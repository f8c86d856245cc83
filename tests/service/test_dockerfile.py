"""What can be proven about Dockerfile.arm64 without a Docker engine.

1. Every locked runtime dependency (requirements/agent.txt) has an aarch64 wheel or pure
   Python for CPython 3.11, with its hash in the lock (``pip download --require-hashes
   --only-binary=:all: --platform manylinux2014_aarch64``): the image builds without a
   compiler on an arm64 gateway.
2. The Dockerfile's build command (``docker/install-venv.sh``) and its ENTRYPOINT/CMD run
   here in a clean virtualenv; the HEALTHCHECK command is valid Python that fails when
   nothing is ready.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, free_port

DOCKERFILE = REPO_ROOT / "Dockerfile.arm64"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = current.partition(" ")
            out.append((word.upper(), rest.strip()))
            current = ""
    return out


def _pypi_reachable() -> bool:
    try:
        with socket.create_connection(("pypi.org", 443), timeout=5):
            return True
    except OSError:
        return False


def test_dockerfile_shape() -> None:
    instructions = _instructions()
    froms = [args for word, args in instructions if word == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    assert all("--platform=linux/arm64" in f and "python:3.11-slim" in f for f in froms)
    users = [args for word, args in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(word == "VOLUME" and "/var/lib/edge-agent" in args for word, args in instructions)
    health = [args for word, args in instructions if word == "HEALTHCHECK"]
    assert health and "/readyz" in health[0]


@pytest.mark.slow
def test_runtime_dependencies_have_aarch64_wheels(tmp_path: Path) -> None:
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable from this machine: cannot resolve aarch64 wheels")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-cache-dir",
            "--only-binary=:all:",
            "--platform",
            "manylinux2014_aarch64",
            "--platform",
            "manylinux_2_28_aarch64",
            "--platform",
            "manylinux_2_17_aarch64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--dest",
            str(tmp_path),
            # The lock the image installs: every pin, checked against its aarch64 hashes.
            "--no-deps",
            "--require-hashes",
            "-r",
            str(REPO_ROOT / "requirements" / "agent.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    wheels = sorted(p.name for p in tmp_path.iterdir())
    assert wheels and all(name.endswith(".whl") for name in wheels), wheels
    for name in wheels:
        platform_tag = name[:-4].split("-")[-1]
        assert platform_tag == "any" or "aarch64" in platform_tag, name
    locked = {
        line.split("==")[0].lower().replace("-", "_")
        for line in (REPO_ROOT / "requirements" / "agent.txt").read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    }
    assert {name.split("-")[0].lower() for name in wheels} == locked


@pytest.mark.slow
def test_install_and_entry_commands_run_in_a_clean_virtualenv(tmp_path: Path) -> None:
    instructions = _instructions()
    runs = [args for word, args in instructions if word == "RUN" and "install-venv.sh" in args]
    assert len(runs) == 1, "the build stage installs through docker/install-venv.sh"
    # The build stage copies exactly these into its WORKDIR; do the same, so the build
    # never writes into the working tree.
    # Named as docs/operations.md ("Upgrade") names the unpacked release.
    src = tmp_path / "edge-agent"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    shutil.copytree(
        REPO_ROOT / "edge_agent", src / "edge_agent", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO_ROOT / "requirements", src / "requirements")
    venv = tmp_path / "opt-edge-agent"
    command = shlex.split(runs[0])
    assert command[-2:] == ["/src", "/opt/edge-agent"]
    script = REPO_ROOT / "docker" / "install-venv.sh"
    done = subprocess.run(
        ["sh", str(script), str(src), str(venv)], capture_output=True, text=True, timeout=170
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "edge-agent" in done.stdout

    entrypoint = json.loads(next(a for w, a in instructions if w == "ENTRYPOINT"))
    cmd = json.loads(next(a for w, a in instructions if w == "CMD"))
    executable = venv / "bin" / entrypoint[0]
    assert executable.exists()
    version = subprocess.run([str(executable), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "edge-agent" in version.stdout
    # The default CMD is `run SITE --state-dir DIR`: the installed command accepts it and
    # reports a missing site file as a configuration error, not a crash.
    site = tmp_path / "site.yaml"
    default = [str(executable), cmd[0], str(site), *cmd[2:]]
    default[default.index("/var/lib/edge-agent")] = str(tmp_path / "state")
    missing = subprocess.run(default, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2, missing.stderr
    assert "Traceback" not in missing.stderr

    # HEALTHCHECK: the venv's python runs the probe; with nothing listening it fails.
    health = next(a for w, a in instructions if w == "HEALTHCHECK")
    probe = json.loads(health[health.index("CMD") + 3 :].strip())
    assert probe[0] == "python"
    port = free_port()
    probe_code = probe[2].replace("127.0.0.1:9108", f"127.0.0.1:{port}")
    failed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe_code], capture_output=True, timeout=30
    )
    assert failed.returncode != 0

    # Re-run over the install, as an upgrade does: new code under the same version number
    # replaces the old (pip alone keeps an installed version as "already satisfied"), and
    # --version names the commit it was built from (the image build passes it this way).
    (src / "edge_agent" / "upgrade_marker.py").write_text("BUILD = 2\n")
    # As the upgrade steps write it: `install-venv.sh edge-agent /opt/edge-agent`, the source
    # a bare relative name (pip takes one for a package on the index unless the script
    # makes it a path).
    again = subprocess.run(
        ["sh", str(script), src.name, str(venv)],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=tmp_path,
        env={**os.environ, "EDGE_AGENT_COMMIT": "0123456789abcdef"},
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(commit 0123456789ab)" in again.stdout
    marker = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import edge_agent.upgrade_marker"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,  # not the repository's own edge_agent folder
    )
    assert marker.returncode == 0, "the second run kept the old code: " + marker.stderr
