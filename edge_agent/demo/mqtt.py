"""The demo's MQTT mode: a local mosquitto on a free port and the hub (in this process)
between the agent and the MaintainX stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from edge_agent.demo.plant import free_port
from edge_agent.errors import EdgeAgentError

SITE_ID = "demo-plant"
KEY_VARIABLE = "EDGE_DEMO_HUB_MAINTAINX_KEY"


class DemoUnavailable(EdgeAgentError):
    """Something the MQTT mode needs is not installed."""


def mosquitto_binary() -> str:
    """The mosquitto executable, or :class:`DemoUnavailable` saying how to install it."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )
    if found is None:
        raise DemoUnavailable(
            "--mqtt needs the mosquitto broker (Debian: apt-get install mosquitto)"
        )
    return found


class DemoMqtt:
    """mosquitto + hub, started and stopped together."""

    def __init__(self, workdir: Path, api_key: str, maintainx_url: str) -> None:
        self.workdir = workdir
        self.api_key = api_key
        self.maintainx_url = maintainx_url
        self.port = free_port()
        self._broker: asyncio.subprocess.Process | None = None
        self._hub: Any = None

    def forwarding(self) -> dict[str, Any]:
        """The site file's ``forwarding.mqtt`` section for this broker."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "backoff": {"initial": "200ms", "max": "2s"},
        }

    async def start(self) -> None:
        from edge_agent.hub.app import Hub
        from edge_agent.hub.config import HubConfig

        binary = mosquitto_binary()
        broker_dir = self.workdir / "mosquitto"
        broker_dir.mkdir(parents=True, exist_ok=True)
        conf = broker_dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {broker_dir}/\n"
        )
        log_file = (broker_dir / "mosquitto.log").open("ab")
        self._broker = await asyncio.create_subprocess_exec(
            binary, "-c", str(conf), stdout=asyncio.subprocess.DEVNULL, stderr=log_file
        )
        log_file.close()
        await self._wait_for_broker()
        os.environ[KEY_VARIABLE] = self.api_key
        config = HubConfig.model_validate(
            {
                "hub": {"id": "demo-hub", "retry_interval": "1s"},
                "broker": {
                    "host": "127.0.0.1",
                    "port": self.port,
                    "backoff": {"initial": "200ms", "max": "2s"},
                },
                "sites": {SITE_ID: {"api_key": "${" + KEY_VARIABLE + "}"}},
                "maintainx": {"base_url": self.maintainx_url, "timeout": "2s"},
                "state_dir": str(self.workdir / "hub-state"),
                "health": {"listen": f"127.0.0.1:{free_port()}"},
            }
        )
        self._hub = Hub(config, self.workdir)
        await self._hub.start()

    async def _wait_for_broker(self) -> None:
        for _ in range(200):  # up to 10 s
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        raise DemoUnavailable(f"mosquitto did not listen on 127.0.0.1:{self.port}")

    async def parked(self) -> int:
        """Alerts the hub holds because MaintainX did not take them yet (it retries)."""
        store = None if self._hub is None else self._hub.store
        if store is None:
            return 0
        try:
            return sum((await asyncio.to_thread(store.pending_counts)).values())
        except Exception:  # a store error only means the demo stops waiting early
            return 0

    async def close(self) -> None:
        if self._hub is not None:
            await self._hub.close()
            self._hub = None
        broker, self._broker = self._broker, None
        if broker is not None and broker.returncode is None:
            broker.terminate()
            try:
                async with asyncio.timeout(10):
                    await broker.wait()
            except TimeoutError:
                broker.kill()
                await broker.wait()
