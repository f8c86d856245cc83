"""The floor of the agent's Modbus job, for ``bench/peers.py --floor``: the bare poller
(``bare_modbus_poller.py``) plus the least that any agent with threshold rules must do with
each poll, written as plainly as Python allows, and nothing else:

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

LIMIT = 70000
"""Above any uint16: the rules never trip (the agent's rules in ``bench/peers.py``)."""


async def poll(port: int, rate_ms: int, count: int) -> None:
    """Read the registers every ``rate_ms`` until killed, skipping missed boundaries, and
    do the floor's job with each poll."""
    from pymodbus.client import AsyncModbusTcpClient

    sensors = [f"r{i}" for i in range(count)]
    limits = [LIMIT] * count
    latest: dict[str, tuple[str, int, int]] = {}
    fired: list[tuple[str, int, int]] = []
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    if not await client.connect():
        raise SystemExit(f"cannot connect to 127.0.0.1:{port}")
    interval = rate_ms / 1000
    next_start = time.monotonic()
    print("polling", flush=True)
    while True:
        response = await client.read_holding_registers(0, count=count, device_id=1)
        if response.isError():
            raise SystemExit(f"read failed: {response}")
        now_ns = time.time_ns()
        for sensor, value, limit in zip(sensors, response.registers, limits, strict=True):
            reading = (sensor, value, now_ns)
            latest[sensor] = reading
            if value > limit:
                fired.append(reading)
        if fired:
            raise SystemExit(f"a rule tripped: {fired[0]}")
        next_start += interval
        now = time.monotonic()
        if now > next_start:
            next_start = now
        await asyncio.sleep(next_start - now)


if __name__ == "__main__":
    asyncio.run(poll(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
