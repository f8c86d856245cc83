"""sd_notify over a real AF_UNIX datagram socket, path and abstract namespace."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.service.sdnotify import SystemdNotifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(5)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def _messages(sock: socket.socket, count: int) -> list[str]:
    return [sock.recv(4096).decode() for _ in range(count)]


def test_ready_reloading_stopping(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.reloading()
    assert notifier.ready()
    assert notifier.stopping()
    ready, reloading, ready_again, stopping = _messages(sock, 4)
    assert ready.splitlines()[0] == "READY=1"
    lines = reloading.splitlines()
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=") and int(lines[1].split("=")[1]) > 0
    assert ready_again.startswith("READY=1")
    assert stopping.splitlines()[0] == "STOPPING=1"


def test_abstract_namespace_socket() -> None:
    name = f"edge-agent-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(4096).startswith(b"READY=1")
    finally:
        sock.close()


async def test_watchdog_pings_at_half_the_interval(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert notifier.watchdog_interval_s == pytest.approx(0.1)
    task = asyncio.create_task(notifier.watchdog_loop())
    try:
        received = await asyncio.to_thread(_messages, sock, 3)
    finally:
        task.cancel()
    assert received == ["WATCHDOG=1"] * 3


def test_watchdog_meant_for_another_process_is_ignored(tmp_path: Path) -> None:
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": str(tmp_path / "x"), "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    )
    assert notifier.watchdog_interval_s is None


def test_without_systemd_nothing_is_sent_and_nothing_fails(tmp_path: Path) -> None:
    assert not SystemdNotifier({}).ready()
    # A socket path nobody listens on: logged, not raised.
    assert not SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).ready()
