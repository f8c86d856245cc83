"""Runs the demo: the plant and MaintainX stand-ins, the agent (in this process, exactly as
``edge-agent run`` builds it), the scripted faults, the live view and the summary."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edge_agent.demo.plant import DemoPlant, write_demo_site
from edge_agent.demo.script import SCRIPT
from edge_agent.demo.view import CLEAR_SCREEN, render, snapshot, summary
from edge_agent.service.tasks import cancel_and_wait, wait_event

log = logging.getLogger(__name__)

REFRESH_S = 0.5
DRAIN_S = 30.0
"""At the end, the longest wait for buffered work orders to reach MaintainX (it ends as soon
as nothing is held; a loaded gateway can need far more than the usual second or two)."""


@dataclass
class DemoOptions:
    duration_s: float
    ui: bool
    workdir: Path | None = None
    mqtt: bool = False


@dataclass
class DemoResult:
    work_orders: list[dict[str, Any]]
    outbox_depth: int
    text: str


async def run_demo(options: DemoOptions, out: TextIO | None = None) -> DemoResult:
    """Run the whole demo; returns what happened (also printed to ``out``)."""
    from edge_agent.config.loader import load_site
    from edge_agent.service.app import Service
    from edge_agent.service.sdnotify import SystemdNotifier

    stream = out if out is not None else sys.stdout
    # A folder the demo made is the demo's to remove; one the user named is theirs.
    owned = options.workdir is None
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    plant = DemoPlant()
    stop = asyncio.Event()
    steps: list[str] = []
    service: Service | None = None

    def reload() -> None:
        # SIGHUP, as `edge-agent run` takes it (the docs' hot reload), instead of its
        # default action, which ends the demo without a word.
        if service is not None:
            service.request_reload()

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload)
    relay: Any = None
    started = time.monotonic()
    try:
        print("Starting the simulated plant and the MaintainX stand-in...", file=stream)
        await plant.start()
        os.environ["MAINTAINX_API_KEY"] = plant.api_key
        mqtt_section = None
        if options.mqtt:
            from edge_agent.demo.mqtt import DemoMqtt

            print("Starting mosquitto and the hub (MQTT mode)...", file=stream)
            relay = DemoMqtt(workdir, plant.api_key, plant.maintainx.url)
            await relay.start()
            mqtt_section = relay.forwarding()
        site = write_demo_site(
            workdir / "site.yaml", plant.ports(), workdir / "state", mqtt=mqtt_section
        )
        config = await asyncio.to_thread(load_site, site)
        service = Service(site, config, workdir / "state", notifier=SystemdNotifier({}))
        await service.start()
        print(f"Agent running on {site} (health: {config.health.listen}).", file=stream)
        started = time.monotonic()
        script = asyncio.create_task(_play(plant, steps, stop), name="demo-script")
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if elapsed >= options.duration_s:
                break
            if options.ui:
                view = snapshot(service, plant.maintainx, elapsed, steps)
                if relay is not None:
                    view["hub_parked"] = await relay.parked()
                stream.write(CLEAR_SCREEN + render(view) + "\n")
                stream.flush()
            await wait_event(stop, REFRESH_S)
        # Not ``suppress(CancelledError)`` around ``await script``: that would also swallow
        # a cancellation of the demo itself.
        await cancel_and_wait(script, 5.0)
        await _drain(service, plant, relay)
        view = snapshot(service, plant.maintainx, time.monotonic() - started, steps)
        if relay is not None:
            view["hub_parked"] = await relay.parked()
        if options.ui:
            stream.write(CLEAR_SCREEN + render(view) + "\n")
        log_path = str(workdir / "agent.log") if options.ui else None
        text = summary(view, time.monotonic() - started, log_path)
        print(text, file=stream)
        return DemoResult(view["work_orders"], int(view["outbox_depth"] or 0), text)
    finally:
        if service is not None:
            await service.stop()
        if relay is not None:
            await relay.close()
        await plant.close()
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGHUP)


async def _play(plant: DemoPlant, steps: list[str], stop: asyncio.Event) -> None:
    started = time.monotonic()
    for step in SCRIPT:
        delay = step.at_s - (time.monotonic() - started)
        if delay > 0:
            await asyncio.sleep(delay)
        steps.append(f"{step.at_s:5.1f} s  {step.says}")
        log.info("Demo step.", extra={"at_s": step.at_s, "step": step.says})
        try:
            await step.action(plant)
        except Exception:
            log.exception("Demo step failed.", extra={"step": step.says})


async def _drain(service: Any, plant: DemoPlant, relay: Any) -> None:
    """Bring MaintainX back if the run ended during the outage, and give the outbox (and in
    MQTT mode the hub) a few seconds to hand on what they hold, so the summary shows where
    every alert went."""
    try:
        await asyncio.to_thread(plant.maintainx.start)  # does nothing if it is running
    except OSError as exc:  # its port was taken while it was down
        log.error("MaintainX stand-in could not listen again.", extra={"error": str(exc)})
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        stats = service.agent.outbox_stats()
        waiting = 0 if stats is None else stats.depth
        plant_data = getattr(service.agent, "plant", None)
        if plant_data is not None and plant_data.outbox is not None:
            waiting += (await asyncio.to_thread(plant_data.outbox.stats)).depth
        if relay is not None:
            waiting += await relay.parked()
        if waiting == 0:
            return
        await asyncio.sleep(0.2)
