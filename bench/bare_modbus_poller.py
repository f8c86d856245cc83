"""The bare pymodbus poller that ``bench/peers.py`` compares the agent with: one request
for ``count`` holding registers every ``rate_ms``, nothing else. Kept in its own file so
that it imports only pymodbus (its RSS is the library's, not the benchmark's).

    python bench/bare_modbus_poller.py PORT RATE_MS COUNT
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any


async def poll(
    port: int, rate_ms: int, count: int, job: Callable[[Any], None] | None = None
) -> None:
    """Read the registers every ``rate_ms`` until killed, skipping missed boundaries.
    ``job`` (``floor_modbus_poller.py``'s) is given each response, when there is one."""
    from pymodbus.client import AsyncModbusTcpClient

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
        if job is not None:
            job(response)
        next_start += interval
        now = time.monotonic()
        if now > next_start:
            next_start = now
        await asyncio.sleep(next_start - now)


if __name__ == "__main__":
    asyncio.run(poll(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
