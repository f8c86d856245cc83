"""What the start-up damage check costs: `.venv/bin/python bench/outbox_open.py [EVENTS]`.

Fills an outbox with EVENTS (default 50,000) events of ≈ 700 bytes, then times
``integrity.find_damage`` (the check ``Outbox.open`` runs before diskcache sees the file:
``quick_check``, schema, settings, keys) and the whole ``Outbox.open``, and ``recover`` of
the same file set aside.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from edge_agent.outbox import Outbox
from edge_agent.outbox.aside import set_aside
from edge_agent.outbox.integrity import find_damage
from edge_agent.outbox.salvage import recover


def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name) / "outbox"
        with Outbox.open(directory, 2**40) as outbox:
            for start in range(0, events, 1000):
                count = min(events, start + 1000) - start
                outbox.put_many(
                    [{"event_id": f"ev-{start + n}", "pad": "x" * 600} for n in range(count)]
                )
        size = sum(path.stat().st_size for path in directory.iterdir())
        began = time.monotonic()
        find_damage(directory / "cache.db")
        check_s = time.monotonic() - began
        began = time.monotonic()
        Outbox.open(directory, 2**40).close()
        open_s = time.monotonic() - began
        set_aside(directory, "benchmark")
        with Outbox.open(directory, 2**40) as outbox:
            began = time.monotonic()
            (report,) = recover(outbox)
            recover_s = time.monotonic() - began
        print(
            f"{events} events, {size / 1e6:.1f} MB: find_damage {check_s * 1000:.0f} ms, "
            f"Outbox.open (check included) {open_s * 1000:.0f} ms, "
            f"recover {report.queued} events in {recover_s:.1f} s"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
