"""Fixtures shared by every test area: free loopback ports and a real mosquitto broker
(and the hypothesis settings every area runs with).

Area-specific fixtures live in ``tests/<area>/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The package installed as a user installs it (one venv per session), for any area's test.
from tests.install.installed_package import installed_agent  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parent.parent

# No per-example deadline: on a loaded 2-core CI machine a pure-CPU example can stall past
# hypothesis' 200 ms default, which fails the run as "flaky" without any bug.
settings.register_profile("edge-agent", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CI explores the same examples on every run (a submission is judged on its own change);
# a developer's runs explore new ones, which is how the fault suite finds the next defect.
settings.register_profile(
    "edge-agent-ci",
    parent=settings.get_profile("edge-agent"),
    derandomize=True,
)
settings.load_profile("edge-agent-ci" if os.environ.get("CI") else "edge-agent")


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if found is None:
        pytest.fail("mosquitto is not installed: run `make test` (it installs it)")
    return found


@dataclass
class Broker:
    """A mosquitto process on a free loopback port that a test may stop and start again."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
        )
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "mosquitto.log").open("ab"),
        )
        wait_for_port(self.host, self.port)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto broker on a free loopback port, for one test."""
    broker = Broker(port=free_port(), workdir=tmp_path / "mosquitto")
    broker.workdir.mkdir()
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
