"""Rule engine benchmark: 10,000 sensors with one high-limit rule each, 1,000,000 readings.

Run: ``.venv/bin/python bench/rules.py`` (about a minute). Prints readings evaluated per
second on one core (engine without a state store), memory per rule (tracemalloc), the
bytecode instructions ``feed`` runs per reading (a count, so it does not move when other
processes share the machine, as timings do), and the cost of persisting state: durable
(fsync on every call that changed state, the default) and batched (``durable=False`` plus
a ``flush()`` every 10,000 readings).

``--tree DIR`` benchmarks the ``edge_agent`` of another checkout (say, ``main`` in a second
worktree) with this same bench: run both back to back, alternating, for a before/after.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

_parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
_parser.add_argument("--tree", type=Path, help="the checkout whose edge_agent is measured")
ARGS = _parser.parse_args()
sys.path.insert(0, str((ARGS.tree or Path(__file__).resolve().parent.parent).resolve()))

from edge_agent.alerts import parse_time  # noqa: E402
from edge_agent.config.models import SiteConfig  # noqa: E402
from edge_agent.readings import Quality, Reading  # noqa: E402
from edge_agent.rules import RuleEngine, RuleStateStore  # noqa: E402

SENSORS = 10_000
READINGS = 1_000_000
STORE_READINGS = 200_000
START = parse_time("2026-01-05T00:00:00Z")
STEP_NS = 1_000_000  # one reading per millisecond across the site: each sensor every 10 s


def make_config() -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "version": 1,
            "site": {"id": "bench"},
            "connections": {"plc": {"protocol": "modbus-tcp", "host": "127.0.0.1"}},
            "assets": {"a": {"name": "Asset"}},
            "sensors": {
                f"s{i}": {
                    "connection": "plc",
                    "register": {"table": "holding", "address": i % 60000},
                }
                for i in range(SENSORS)
            },
            "rules": [
                {
                    "id": f"r{i}",
                    "asset": "a",
                    "sensor": f"s{i}",
                    "high": {"limit": 80.0, "deadband": 5.0},
                    "on_delay": "20s",
                }
                for i in range(SENSORS)
            ],
        }
    )


def make_readings() -> list[Reading]:
    """Noise around 50; one sensor in 200 spends a stretch above the limit (transitions)."""
    rng = random.Random(4)
    good = Quality.GOOD
    hot = {f"s{i}" for i in rng.sample(range(SENSORS), SENSORS // 200)}
    out = []
    for n in range(READINGS):
        sensor = f"s{n % SENSORS}"
        value = 50.0 + rng.random() * 10
        if sensor in hot and (n // SENSORS) % 20 < 10:
            value += 40.0
        out.append(Reading(sensor, value, good, START + n * STEP_NS))
    return out


def run(
    engine: RuleEngine, readings: list[Reading], flush_every: int = 0
) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of this process, events."""
    feed = engine.feed
    events = 0
    gc.collect()
    began = time.perf_counter()
    cpu_began = time.process_time()
    if flush_every:
        for index, reading in enumerate(readings):
            found = feed(reading)
            if found:
                events += len(found)
            if index % flush_every == 0:
                engine.flush()
        engine.flush()
    else:
        for reading in readings:
            found = feed(reading)
            if found:
                events += len(found)
    return time.perf_counter() - began, time.process_time() - cpu_began, events


def instructions_per_reading(config: SiteConfig, readings: list[Reading]) -> float:
    """Bytecode instructions run by ``feed`` (and what it calls) per reading, after a warm-up
    that gives every rule and sensor live state."""
    engine = RuleEngine(config)
    warm = SENSORS * 3
    for reading in readings[:warm]:
        engine.feed(reading)
    count = 0

    def on_opcode(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "opcode":
            count += 1
        return on_opcode

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        return on_opcode

    sample = readings[warm:STORE_READINGS]
    feed = engine.feed
    sys.settrace(on_call)
    try:
        for reading in sample:
            feed(reading)
    finally:
        sys.settrace(None)
    return count / len(sample)


def main() -> None:
    config = make_config()
    readings = make_readings()
    engine_file = sys.modules[RuleEngine.__module__].__file__ or ""
    print(f"edge_agent from {Path(engine_file).parent.parent}")

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    engine = RuleEngine(config)
    for reading in readings[: SENSORS * 3]:  # every rule and sensor has live state
        engine.feed(reading)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"memory per rule (engine state incl. its sensor): {used / SENSORS:,.0f} bytes")

    best = best_cpu = 0.0
    for attempt in range(3):
        engine = RuleEngine(config)
        seconds, cpu, events = run(engine, readings)
        best = max(best, READINGS / seconds)
        best_cpu = max(best_cpu, READINGS / cpu)
        print(
            f"run {attempt + 1}: {READINGS:,} readings in {seconds:.3f} s wall "
            f"({READINGS / seconds:,.0f}/s), {cpu:.3f} s CPU ({READINGS / cpu:,.0f}/s), "
            f"{events:,} events"
        )
    print(
        f"best: {best:,.0f} readings/s wall, {best_cpu:,.0f} readings/s per CPU second "
        "(one core, no state store; wall figures drop when other processes share the core)"
    )

    print(
        f"feed: {instructions_per_reading(config, readings):.2f} bytecode instructions per "
        "reading (a count: the same on a busy machine)"
    )

    sample = readings[:STORE_READINGS]
    for label, durable, flush_every in (
        ("durable (save+fsync per changing call)", True, 0),
        ("batched (flush every 10,000 readings)", False, 10_000),
    ):
        with tempfile.TemporaryDirectory() as folder:
            store = RuleStateStore(Path(folder) / "rules.json")
            engine = RuleEngine(config, store, durable=durable)
            seconds, _, events = run(engine, sample, flush_every)
            saves = engine.counters["state_saves"]
            size = store.path.stat().st_size
        print(
            f"{label}: {STORE_READINGS:,} readings in {seconds:.2f} s = "
            f"{STORE_READINGS / seconds:,.0f}/s, {events} events, {saves} saves "
            f"({seconds / max(saves, 1) * 1000:.1f} ms/save), state file {size:,} bytes"
        )


if __name__ == "__main__":
    main()
