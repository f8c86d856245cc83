"""A rate is never taken across a real outage of the PLC (issue 21 §2): 65 °C before the
Modbus simulator went away and 55 °C after it came back is not a fall of 10 °C in the
outage's length (it fired a "temperature rising" rule with rate -8.7 on main)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from edge_agent.config.models import SiteConfig
from edge_agent.readings import Reading
from edge_agent.rules import AlarmEvent, RuleEngine
from edge_agent.sources.modbus.source import ModbusSource

from .conftest import DEFAULTS, PlantThread, sensor, tcp
from .test_reconnect import wait_for


def _site(port: int) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "version": 1,
            "site": {"id": "plant-a"},
            "connections": {"plc": {"protocol": "modbus-tcp", "host": "127.0.0.1", "port": port}},
            "assets": {"p101": {"name": "Pump 101"}},
            "sensors": {
                "temp": {"connection": "plc", "register": {"table": "holding", "address": 2}}
            },
            "rules": [{"id": "temp-rate", "asset": "p101", "sensor": "temp", "rate": {"above": 5}}],
        }
    )


async def test_a_rate_is_not_taken_across_an_outage_of_the_plc() -> None:
    plant = PlantThread(registers=16, bits=16, profiles=False)
    plant.run_sync(lambda: plant.plant.set_registers("holding", 2, [65]))
    site = _site(plant.port)
    engine = RuleEngine(site)
    connection = tcp(plant.port, poll="200ms", timeout="200ms", backoff={"initial": "100ms"})
    source = ModbusSource(
        "plc",
        connection,
        {"temp": sensor(site.sensors["temp"].register_ or {})},
        DEFAULTS,
        rng=random.Random(3),
    )
    readings: list[Reading] = []
    events: list[AlarmEvent] = []

    async def sink(batch: Sequence[Reading]) -> None:
        for reading in batch:
            readings.append(reading)
            events.extend(engine.feed(reading))

    task = asyncio.create_task(source.run(sink))
    try:
        await wait_for(lambda: sum(r.is_good for r in readings) >= 3)
        plant.stop()
        seen = len(readings)
        await wait_for(lambda: any(not r.is_good for r in readings[seen:]))  # bad, not silence
        plant.run_sync(lambda: plant.plant.set_registers("holding", 2, [55]))
        plant.start()
        seen = len(readings)
        await wait_for(lambda: sum(r.is_good for r in readings[seen:]) >= 3, limit=1500)
        assert [r.value for r in readings[seen:] if r.is_good][:1] == [55]
        assert [e for e in events if e.rule_id == "temp-rate"] == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        plant.close()
