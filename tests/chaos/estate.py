"""The estate of the campaign, all on loopback ephemeral ports: two Modbus plants and an OPC
UA server, the MaintainX emulator, mosquitto, two hub replicas and three site agents, with a
fault proxy (tests/chaos/proxy.py) on every networked pair.

site-a: Modbus → agent → MQTT → hub replicas → MaintainX (organization 101)
site-b: OPC UA → agent → MQTT → hub replicas → MaintainX (organization 202)
site-c: Modbus → agent → MaintainX directly (organization 303)
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.proxy import FaultProxy
from tests.conftest import REPO_ROOT, Broker, free_port
from tests.service.conftest import AgentProcess, BackgroundLoop

PG_DSN = os.environ.get("EDGE_AGENT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
KEYS = {"site-a": "chaos-key-a", "site-b": "chaos-key-b", "site-c": "chaos-key-c"}
ORGS = {"site-a": 101, "site-b": 202, "site-c": 303}
OPCUA_NODE = "Line1.P101.BearingTemp"


@dataclass(frozen=True)
class RuleSpec:
    """One site's rule as the workload drives it: values are unique per episode (the work
    order's title carries ``{value:.2f}``, which is how the checker finds the episode)."""

    site: str
    rule: str
    sensor: str
    limit: float
    deadband: float
    escalate_above: float
    normal: float
    medium: tuple[float, float]  # range of activation values that stay MEDIUM
    high: tuple[float, float]  # range of activation values that escalate to HIGH
    step: float
    on_delay_s: float = 1.0
    off_delay_s: float = 1.0


RULES = {
    "site-a": RuleSpec(
        "site-a", "vib-high", "p101_vibration", 7.1, 0.5, 15.0, 2.5, (7.5, 14.9), (15.5, 30.0), 0.01
    ),
    "site-b": RuleSpec(
        "site-b",
        "bearing-hot",
        OPCUA_NODE,
        85.0,
        3.0,
        95.0,
        60.0,
        (85.5, 94.5),
        (95.5, 130.0),
        0.01,
    ),
    "site-c": RuleSpec(
        "site-c",
        "current-high",
        "p101_vibration",
        60.0,
        2.0,
        80.0,
        35.0,
        (60.5, 79.5),
        (80.5, 300.0),
        0.01,
    ),
}


def _rule_document(spec: RuleSpec) -> dict[str, Any]:
    return {
        "id": spec.rule,
        "asset": "A-1",
        "sensor": spec.sensor.replace(".", "_").lower() if spec.site == "site-b" else spec.sensor,
        "high": {"limit": spec.limit, "deadband": spec.deadband},
        "on_delay": f"{int(spec.on_delay_s * 1000)}ms",
        "off_delay": f"{int(spec.off_delay_s * 1000)}ms",
        "priority": "MEDIUM",
        "escalate": [{"above": spec.escalate_above, "priority": "HIGH"}],
        "cooldown": "0s",
        # A guard the workload stays under: at most one activation every few seconds.
        "chattering": {"activations": 12, "window": "30s"},
        "work_order": {"title": "{site.id} {rule.id} {value:.2f}"},
    }


@dataclass
class Agent:
    site: str
    process: AgentProcess
    clock_file: Path
    faked: bool = False

    def start(self) -> None:
        env: dict[str, str] = {}
        if self.faked and LIBFAKETIME:
            env = {
                "LD_PRELOAD": LIBFAKETIME[0],
                "FAKETIME_TIMESTAMP_FILE": str(self.clock_file),
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                "FAKETIME_CACHE_DURATION": "1",
            }
        self.process.start(env)


@dataclass
class Hub:
    name: str
    file: Path
    log: Path
    health_port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    registered: bool = False

    def start(self) -> None:
        # The first start registers the MaintainX webhook subscriptions (the technician's
        # DONE reaches the hub, so the next episode gets a work order of its own); later
        # starts keep the secrets in the state directory.
        register = [] if self.registered else ["--register-webhooks"]
        self.registered = True
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", "hub", str(self.file), *register],
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@dataclass
class Estate:
    workdir: Path
    loop: BackgroundLoop = field(default_factory=BackgroundLoop)
    proxies: dict[str, FaultProxy] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)
    hubs: dict[str, Hub] = field(default_factory=dict)
    assets: dict[str, int] = field(default_factory=dict)
    store: str = "sqlite"
    pg_schema: str | None = None
    emulator: Any = None
    broker: Broker | None = None
    plants: dict[str, Any] = field(default_factory=dict)
    opcua_mode: str = "poll"  # site-b's OPC UA connection: poll, or subscribe
    used_values: set[str] = field(default_factory=set)  # "site value" of every episode
    exits: list[str] = field(default_factory=list)  # processes that exited by themselves

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        from edge_agent.simulators.maintainx import Emulator
        from edge_agent.simulators.modbus import ModbusPlant
        from edge_agent.simulators.opcua import OpcUaSimulator

        self.workdir.mkdir(parents=True, exist_ok=True)
        for site in ("site-a", "site-c"):
            plant = ModbusPlant(port=0, profiles=False)
            self.loop.call(plant.start())
            self.plants[site] = plant
        opcua = OpcUaSimulator(port=0, update_interval_s=0.5)
        self.loop.call(opcua.start(), timeout=60)
        self.plants["site-b"] = opcua
        for spec in RULES.values():
            self.set_value(spec.site, spec.normal)

        self.emulator = Emulator(
            keys={KEYS[s]: [ORGS[s]] for s in KEYS}, rate_limiting=False
        ).start()
        for site, org in ORGS.items():
            self.assets[site] = self.emulator.add_asset(f"{site} asset", organization_id=org)

        self.broker = Broker(port=free_port(), workdir=self.workdir / "mosquitto")
        self.broker.workdir.mkdir(exist_ok=True)
        self.broker.start()

        self._proxy("plc-a", self.plants["site-a"].port)
        self._proxy("plc-b", opcua.port)
        self._proxy("plc-c", self.plants["site-c"].port)
        for name in ("mqtt-a", "mqtt-b", "mqtt-hub1", "mqtt-hub2"):
            self._proxy(name, self.broker.port)
        for name in ("mx-hub1", "mx-hub2", "mx-c"):
            self._proxy(name, self.emulator.port)

        dedup = self._dedup()
        group = f"chaos{uuid.uuid4().hex[:8]}"
        for n, name in enumerate(("hub1", "hub2")):
            self._hub(
                name, group, dedup if n == 0 or self.store == "postgres" else {"backend": "sqlite"}
            )
        for site in RULES:
            self._agent(site)
        for hub in self.hubs.values():
            hub.start()
            wait(lambda h=hub: " running" in h.log.read_text(errors="replace"), 60)  # type: ignore[misc]
        for agent in self.agents.values():
            agent.start()
        for agent in self.agents.values():
            agent.process.wait_ready(60)

    def _proxy(self, name: str, target_port: int) -> None:
        proxy = FaultProxy(name, target_port)
        self.loop.call(proxy.start())
        self.proxies[name] = proxy

    def _dedup(self) -> dict[str, Any]:
        try:
            import psycopg

            schema = f"chaos_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=2) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
        except Exception:
            self.store = "sqlite (PostgreSQL not reachable: hub2 has its own SQLite file)"
            return {"backend": "sqlite"}
        self.store, self.pg_schema = "postgres", schema
        return {"backend": "postgres", "dsn": "${CHAOS_PG_DSN}", "table_prefix": f"{schema}.hub_"}

    def _hub(self, name: str, group: str, dedup: dict[str, Any]) -> None:
        hooks = free_port()
        document = {
            "version": 1,
            "hub": {"id": name, "group": group, "retry_interval": "500ms"},
            "broker": {
                "host": "127.0.0.1",
                "port": self.proxies[f"mqtt-{name}"].port,
                "backoff": {"initial": "100ms", "max": "1s"},
            },
            "sites": {
                s: {"api_key": "${CHAOS_KEY_" + s[-1].upper() + "}", "organization_id": ORGS[s]}
                for s in ("site-a", "site-b")
            },
            "maintainx": {
                "base_url": f"http://127.0.0.1:{self.proxies[f'mx-{name}'].port}/v1",
                "timeout": "2s",
                "rate_limit": 1000000,
            },
            "dedup": dedup,
            "state_dir": str(self.workdir / name),
            "health": {"listen": f"127.0.0.1:{free_port()}"},
            "webhooks": {
                "listen": f"127.0.0.1:{hooks}",
                "public_url": f"http://127.0.0.1:{hooks}/maintainx/webhooks",
            },
        }
        path = self.workdir / f"{name}.yaml"
        path.write_text(json.dumps(document, indent=2))
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "CHAOS_PG_DSN": PG_DSN,
            "CHAOS_KEY_A": KEYS["site-a"],
            "CHAOS_KEY_B": KEYS["site-b"],
        }
        port = int(document["health"]["listen"].rsplit(":", 1)[1])  # type: ignore[index]
        self.hubs[name] = Hub(name, path, self.workdir / f"{name}.log", port, env)

    def _agent(self, site: str) -> None:
        spec = RULES[site]
        letter = site[-1]
        folder = self.workdir / site
        folder.mkdir(exist_ok=True)
        plc = self.proxies[f"plc-{letter}"].port
        if site == "site-b":
            connection: dict[str, Any] = {
                "protocol": "opcua",
                "endpoint": f"opc.tcp://127.0.0.1:{plc}/edge-agent/demo/",
                "mode": self.opcua_mode,
                **(
                    {"poll": "250ms"}
                    if self.opcua_mode == "poll"
                    else {"sampling_interval": "250ms"}
                ),
                "timeout": "2s",
                "security": {"policy": "None", "mode": "None"},
                "backoff": {"initial": "100ms", "max": "1s"},
            }
            sensors: dict[str, Any] = {
                _rule_document(spec)["sensor"]: {
                    "connection": "plc",
                    "node": f"ns=2;s={OPCUA_NODE}",
                }
            }
        else:
            connection = {
                "protocol": "modbus-tcp",
                "host": "127.0.0.1",
                "port": plc,
                "unit_id": 1,
                "timeout": "500ms",
                "backoff": {"initial": "100ms", "max": "1s"},
            }
            # The demo plant's int16 x 0.01 point (each Modbus site has its own plant).
            register = {"table": "holding", "address": 0, "type": "int16"}
            sensors = {
                spec.sensor: {"connection": "plc", "register": register, "scale": {"factor": 0.01}}
            }
        if site == "site-c":
            forwarding: dict[str, Any] = {
                "mode": "maintainx",
                "maintainx": {
                    "base_url": f"http://127.0.0.1:{self.proxies['mx-c'].port}/v1",
                    "api_key": "${MAINTAINX_API_KEY}",
                    "organization_id": ORGS[site],
                    "timeout": "2s",
                    "rate_limit": 100000,
                    "backoff": {"initial": "100ms", "max": "1s"},
                },
            }
        else:
            forwarding = {
                "mode": "mqtt",
                "mqtt": {
                    "host": "127.0.0.1",
                    "port": self.proxies[f"mqtt-{letter}"].port,
                    "backoff": {"initial": "100ms", "max": "1s"},
                    "result_timeout": "5s",
                    "result_timeout_max": "20s",
                },
            }
        health = free_port()
        document = {
            "version": 1,
            "site": {"id": site, "name": f"Chaos {site}"},
            "defaults": {
                "poll": "250ms",
                "stale_after": "30s",
                "flood": {"work_orders": 100000, "window": "10m"},
            },
            "connections": {"plc": connection},
            "assets": {"A-1": {"maintainx_id": self.assets[site], "name": f"{site} asset"}},
            "sensors": sensors,
            "rules": [_rule_document(spec)],
            "forwarding": forwarding,
            "storage": {"path": str(folder / "state")},
            "health": {"listen": f"127.0.0.1:{health}"},
        }
        path = folder / "site.yaml"
        path.write_text(json.dumps(document, indent=2))
        process = AgentProcess(path, folder / "state", health, folder / "agent.log")
        process.env["MAINTAINX_API_KEY"] = KEYS[site]
        clock = folder / "faketime"
        clock.write_text("+0\n")
        self.agents[site] = Agent(site, process, clock)

    # ------------------------------------------------------------------ plant

    def set_value(self, site: str, value: float) -> None:
        plant = self.plants[site]
        if site == "site-b":
            self.loop.call(plant.set_value(OPCUA_NODE, value))
        else:
            sensor = RULES[site].sensor
            self.loop.run(lambda: plant.set_value(sensor, value))

    # ------------------------------------------------------------------ stop

    def close(self, keep_schema: bool = False) -> None:
        for agent in self.agents.values():
            if agent.process.process is not None:
                agent.process.process.send_signal(signal.SIGCONT)
            agent.process.kill()
        for hub in self.hubs.values():
            if hub.process is not None:
                hub.process.send_signal(signal.SIGCONT)
            hub.stop()
        if self.broker is not None:
            if self.broker.process is not None:
                self.broker.process.send_signal(signal.SIGCONT)
            self.broker.kill()
        if self.emulator is not None:
            self.emulator.stop()
        for proxy in self.proxies.values():
            self.loop.call(proxy.close())
        for plant in self.plants.values():
            self.loop.call(plant.close(), timeout=30)
        self.loop.close()
        if self.pg_schema is not None and keep_schema:
            print(f"chaos: PostgreSQL schema {self.pg_schema} kept for inspection")
        elif self.pg_schema is not None:
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {self.pg_schema} CASCADE")


def wait(predicate: Any, timeout_s: float, step_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())
