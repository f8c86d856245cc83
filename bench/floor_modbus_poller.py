"""The floor of the agent's Modbus job, for ``bench/peers.py --floor``: the bare poller
(``bare_modbus_poller.py``, its very loop) plus the least that any agent with threshold
rules must do with each poll, written as plainly as Python allows, and nothing else:

- one time stamp for the poll;
- per register: one reading record (sensor id, value, time), kept as that sensor's latest
  (what health and metrics read), and its value compared with its rule's limit (the rules
  never trip, as in ``bench/peers.py``).

No quality, no staleness, no on/off delays, no history, no check of the values or of the
clock, no counters: what the agent does beyond this is its features, priced one by one by
``bench/peers.py --stages``. Imports only pymodbus, like the bare poller.

    python bench/floor_modbus_poller.py PORT RATE_MS COUNT
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

from bare_modbus_poller import poll

LIMIT = 70000
"""Above any uint16: the rules never trip (the agent's rules in ``bench/peers.py``)."""


def least_work(count: int) -> Callable[[Any], None]:
    """The job's least work on one poll's response, for ``count`` sensors and rules."""
    sensors = [f"r{i}" for i in range(count)]
    limits = [LIMIT] * count
    latest: dict[str, tuple[str, int, int]] = {}

    def job(response: Any) -> None:
        now_ns = time.time_ns()
        for sensor, value, limit in zip(sensors, response.registers, limits, strict=True):
            reading = (sensor, value, now_ns)
            latest[sensor] = reading
            if value > limit:
                raise SystemExit(f"a rule tripped: {reading}")

    return job


if __name__ == "__main__":
    count = int(sys.argv[3])
    asyncio.run(poll(int(sys.argv[1]), int(sys.argv[2]), count, least_work(count)))
