"""`simulate modbus|opcua` on a port that is taken: one line on stderr naming the port that
is taken, and exit 1, as docs/simulators.md promises (asyncua printed its traceback, pymodbus
its own log line, modbus wrote to stdout, and a busy control port was reported as the
plant's port)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def _simulate(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "simulate", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )


@pytest.mark.parametrize("kind", ["modbus", "opcua"])
def test_a_busy_port_is_one_line_and_exit_1(kind: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _simulate(kind, "--port", str(port), "--control-port", "0")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"edge-agent simulate {kind}: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert "listening" not in done.stdout


def test_a_busy_control_port_names_the_control_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _simulate("modbus", "--port", "0", "--control-port", str(port))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"edge-agent simulate modbus: cannot listen on 127.0.0.1:{port} (control): "
        "Address already in use"
    ]
