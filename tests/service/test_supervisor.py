"""Every task is started through the supervisor: one that ends on its own ends the process
(issue 10, section 1).

Reproduced on main: the rules task died, ``/readyz`` said "task rules has stopped", but
``/healthz`` said ok and the systemd watchdog kept being pinged, so nothing restarted the
agent. Here a real task dies of an injected bug: the MQTT forwarder of a reloaded site
raises as it starts (see ``faulty_forwarder_agent.py``; no real fault is left that ends a
task: an unusable TLS file now holds alerts instead, see tests/forwarders_mqtt/test_tls.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.models import SiteConfig
from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.service.app import Service
from edge_agent.service.sdnotify import SystemdNotifier
from edge_agent.service.supervisor import EXIT_TASK_FAILED, Supervisor
from tests.service import faulty_forwarder_agent
from tests.service.conftest import (
    AgentProcess,
    BackgroundLoop,
    direct_site,
    orders_for,
    steady_plant,
    wait_until,
)
from tests.service.rule_agent import HEALTHY_RULE, fault_site_document, write_document

# ---------------------------------------------------------------------------- the supervisor


async def test_a_task_that_returns_or_raises_is_a_failure() -> None:
    supervisor = Supervisor()

    async def returns() -> None:
        return None

    async def raises() -> None:
        raise RuntimeError("boom")

    supervisor.start(returns(), "quiet")
    supervisor.start(raises(), "loud")
    async with asyncio.timeout(5):
        while len(supervisor.failures) < 2:
            await supervisor.failed.wait()
            await asyncio.sleep(0)
    assert not supervisor.alive
    assert sorted(supervisor.reasons()) == [
        "task loud ended unexpectedly (RuntimeError: boom)",
        "task quiet ended unexpectedly (returned)",
    ]


async def test_ends_that_were_asked_for_are_not_failures() -> None:
    supervisor = Supervisor()
    forever = supervisor.start(asyncio.Event().wait(), "forever")
    assert await supervisor.stop(forever, 5.0)

    async def reload_once() -> bool:
        return True

    await supervisor.start(reload_once(), "reload", one_shot=True)
    drained = supervisor.start(asyncio.sleep(0), "drained")
    supervisor.expect_end(drained)
    await drained
    late = supervisor.start(asyncio.Event().wait(), "late")
    supervisor.shutdown()
    late.cancel()
    await asyncio.wait({late})
    await asyncio.sleep(0)  # done callbacks run in the next iteration
    assert supervisor.alive and supervisor.failures == []


async def test_a_foreign_cancellation_is_a_failure() -> None:
    supervisor = Supervisor()
    task = supervisor.start(asyncio.Event().wait(), "source:plc1")
    await asyncio.sleep(0)
    task.cancel()
    async with asyncio.timeout(5):
        await supervisor.failed.wait()
    assert supervisor.reasons() == ["task source:plc1 ended unexpectedly (cancelled)"]


# ---------------------------------------------------------------------------- in the service


def faulty_forwarding() -> dict[str, Any]:
    """MQTT forwarding: with :func:`faulty_forwarder_agent.inject`, its forwarder raises."""
    return {"mode": "mqtt", "mqtt": {"host": "127.0.0.1", "port": 1}}


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


def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _datagrams_within(sock: socket.socket, seconds: float) -> list[str]:
    """Everything received during ``seconds`` (an absence is proven over a bounded time)."""
    received: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            received.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return received


def _drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):  # the queue is empty: done
        while True:
            sock.recv(4096)
    sock.setblocking(True)


async def test_healthz_fails_and_watchdog_stops_as_soon_as_a_task_is_gone(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid())}
    )
    state = tmp_path / "state"
    document = fault_site_document(state, [HEALTHY_RULE])
    site_path = write_document(tmp_path / "site.yaml", document)
    service = Service(site_path, SiteConfig.model_validate(document), state, notifier=notifier)
    await service.start()
    try:
        port = service.health.port
        pings = await asyncio.to_thread(_datagrams_within, sock, 0.3)
        assert "WATCHDOG=1" in pings
        assert (await asyncio.to_thread(_get, port, "/healthz"))[0] == 200

        # The reloaded forwarder has a bug and raises as it starts.
        monkeypatch.setattr(MqttForwarder, "_prepare_outbox", faulty_forwarder_agent._raises)
        document["forwarding"] = faulty_forwarding()
        await service.agent.apply_config(SiteConfig.model_validate(document))
        async with asyncio.timeout(10):
            await service.supervisor.failed.wait()
        status, body = await asyncio.to_thread(_get, port, "/healthz")
        assert status == 503
        assert body["status"] == "failed" and body["alive"] is False
        [failure] = body["failures"]
        assert failure.startswith("task forwarder ended unexpectedly (RuntimeError:")
        status, ready = await asyncio.to_thread(_get, port, "/readyz")
        assert status == 503 and failure in ready["reasons"]
        # Pings sent before the failure wait in the socket: read them first (a send is
        # synchronous, so none is still on its way). Then ten intervals without a ping.
        await asyncio.to_thread(_drain, sock)
        after = await asyncio.to_thread(_datagrams_within, sock, 0.5)
        assert "WATCHDOG=1" not in after
    finally:
        await service.stop()


# ---------------------------------------------------------------------------- a real process


def test_a_dead_task_ends_the_process_with_its_status_after_saving_state(
    background: BackgroundLoop,
    plant: Any,
    emulator: Any,
    make_agent: Callable[[dict[str, Any]], AgentProcess],
    health_port: int,
    tmp_path: Path,
) -> None:
    """``edge-agent run``: an alarm is open (its work order made), then a reload brings a
    forwarder that raises. The process exits with 70, says which task and why, and the
    saved rule state still holds the open episode, so the restart continues it."""
    document = direct_site(plant, emulator, health_port, tmp_path)
    agent = make_agent(document)
    agent.launcher = [sys.executable, str(Path(faulty_forwarder_agent.__file__))]
    before = {wo["id"] for wo in emulator.work_orders}
    with steady_plant(background, plant):
        agent.start()
        agent.wait_ready()
        background.run(lambda: plant.set_value("m201_current", 75.0))
        wait_until(lambda: orders_for(emulator, 1002, before), what="the current work order")
        document["forwarding"] = faulty_forwarding()
        write_document(agent.site, document)
        agent.signal(signal.SIGHUP)
        assert agent.process is not None
        code = agent.process.wait(30)
    agent.process = None
    assert code == EXIT_TASK_FAILED
    logs = agent.logs()
    [line] = [
        json.loads(raw)
        for raw in logs.splitlines()
        if raw.startswith("{") and "Task ended unexpectedly" in raw
    ]
    assert line["task"] == "forwarder" and line["error"].startswith("RuntimeError")
    assert faulty_forwarder_agent.INJECTED in line["error"]
    assert line["exit_code"] == EXIT_TASK_FAILED
    assert "Rule state saved." in logs
    assert "Agent exits after a task ended unexpectedly." in logs
    saved = json.loads((tmp_path / "state" / "rule-state.json").read_text())
    assert "m201-current-high" in json.dumps(saved)
