"""End to end, direct mode: Modbus plant → `edge-agent run` (a real process) → MaintainX
emulator over HTTP. Also what the running process shows: health, metrics, sd_notify,
JSON logs without secrets, SIGTERM."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from tests.service.conftest import (
    API_KEY,
    AgentProcess,
    BackgroundLoop,
    direct_site,
    holds,
    orders_for,
    site_document,
    steady_plant,
    wait_until,
    work_orders,
)


class _Notifications:
    """What the agent tells systemd, read as it comes (like systemd does), with the
    watchdog pings counted apart."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.watchdog_pings = 0
        self._states: queue.Queue[list[str]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                lines = self.sock.recv(4096).decode().splitlines()
            except OSError:  # closed at the end of the test (or nothing for 30 s)
                return
            if lines == ["WATCHDOG=1"]:
                self.watchdog_pings += 1
            else:
                self._states.put(lines)

    def next(self) -> list[str]:
        return self._states.get(timeout=10)


def test_threshold_crossing_makes_exactly_one_work_order(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = tmp_path / "notify.sock"
    notify.bind(str(notify_path))
    notify.settimeout(30)
    agent: AgentProcess = make_agent(direct_site(plant, emulator, health_port, tmp_path))
    before = {wo["id"] for wo in work_orders(emulator)}
    with steady_plant(background, plant), contextlib.closing(notify):
        agent.start({"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "300000"})
        notes = _Notifications(notify)
        ready = agent.wait_ready()
        assert ready["sources"]["plc1"]["connected"] is True
        assert notes.next()[0] == "READY=1"

        status, health = agent.json("/healthz")
        assert status == 200 and health["status"] == "ok" and health["site"] == "test-plant"
        assert agent.metric("edge_agent_source_connected", connection="plc1") == 1.0
        assert agent.metric("edge_agent_rule_state", rule="p101-vibration-high", state="NORMAL")

        background.run(lambda: plant.set_value("p101_vibration", 9.5))
        created = wait_until(
            lambda: orders_for(emulator, 1001, before), 20, "a work order for P-101"
        )
        assert len(created) == 1
        order = created[0]
        assert order["title"] == "Cooling-water pump P-101: vibration 9.50 mm/s"
        assert order["priority"] == "MEDIUM"
        assert order["assetId"] == 1001
        # The episode stays open while the value stays high: still exactly one work order.
        holds(lambda: len(orders_for(emulator, 1001, before)) == 1, 2.0, "one P-101 order")
        assert agent.metric("edge_agent_rule_state", rule="p101-vibration-high", state="ACTIVE")
        assert agent.metric("edge_agent_rule_activations_total", rule="p101-vibration-high") == 1
        assert agent.metric("edge_agent_forwarder_sent_total") >= 1
        assert agent.metric("edge_agent_outbox_depth") == 0
        assert (agent.metric("edge_agent_forwarder_last_delivery_timestamp_seconds") or 0) > 0

        # SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again.
        agent.signal(signal.SIGHUP)
        reloading = notes.next()
        assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")
        assert notes.next()[0] == "READY=1"
        wait_until(
            lambda: agent.json("/healthz")[1]["config"]["reloads"]["applied"] == 1, 10, "reload"
        )

        for path in ("/healthz", "/readyz", "/metrics"):
            assert API_KEY not in agent.get(path)[1], path

        assert agent.stop() == 0
        assert notes.next()[0] == "STOPPING=1"
        assert notes.watchdog_pings >= 2  # every 150 ms (half of WATCHDOG_USEC)

    logs = agent.logs()
    lines = [line for line in logs.splitlines() if line.strip()]
    assert lines, "the agent logged"
    for line in lines:
        event = json.loads(line)  # one JSON object per line (stderr is not a terminal)
        assert {"time", "level", "logger", "message"} <= set(event)
    assert API_KEY not in logs
    # Nothing written to the state directory holds the key either.
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_bad_site_file_is_refused_with_validate_lines(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nsite: {id: Bad Id}\n")
    agent = AgentProcess(site, tmp_path / "state", 1, tmp_path / "agent.log")
    agent.start()
    assert agent.process is not None
    assert agent.process.wait(30) == 2
    assert f"{site}:2:" in agent.logs() or "site.yaml:2:" in agent.logs()


def test_health_port_taken_is_a_clear_startup_error(
    plant: Any, tmp_path: Path, health_port: int
) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", health_port))
    blocker.listen()
    try:
        document = site_document(
            modbus_port=plant.port,
            health_port=health_port,
            storage=tmp_path / "state",
            forwarding={"mode": "mqtt", "mqtt": {"host": "127.0.0.1", "port": 1}},
        )
        site = tmp_path / "site.yaml"
        site.write_text(json.dumps(document))
        agent = AgentProcess(site, tmp_path / "state", health_port, tmp_path / "agent.log")
        agent.start()
        assert agent.process is not None
        assert agent.process.wait(30) == 1
        assert "cannot listen on 127.0.0.1" in agent.logs()
        assert "Traceback" not in agent.logs()
    finally:
        blocker.close()
