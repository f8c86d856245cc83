"""`simulate maintainx` on a port that is taken: one line and exit 1, like the other
simulators (a traceback before)."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_a_busy_port_is_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "edge_agent", "simulate", "maintainx", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"edge-agent simulate maintainx: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert "listening" not in done.stdout
