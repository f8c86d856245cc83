"""The history's writes for a 10,000-item subscription, alone (``HistoryStore.append``):
CPU a row for batches of 7,000 changes (one a second, as ``HistoryRecorder.run`` writes
them; ``--sizes`` for other batch sizes), on a fresh file and on one that already holds
``--rows-per-sensor`` rows of each sensor (a file minutes old: each sensor's end of the
``(sensor, t)`` index on a page of its own), with SQLite's page cache as the store sets
it and larger.

    .venv/bin/python bench/opcua_history.py [--rows-per-sensor 300] [--batches 20]
        [--sizes 7000,35000] [--caches 0,65536]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge_agent.history.store import HistoryStore, Row  # noqa: E402
from edge_agent.readings import Quality  # noqa: E402

SENSORS = 10_000
BATCH = 7_000
NS_PER_S = 1_000_000_000


def fill(store: HistoryStore, names: list[str], per_sensor: int, start_ns: int) -> int:
    """``per_sensor`` rows of every sensor, a batch a second; the next second's time."""
    t = start_ns
    total = per_sensor * len(names)
    rows = 0
    while rows < total:
        batch = [
            Row(names[(rows + i) % len(names)], t, random.random() * 100, Quality.GOOD)
            for i in range(BATCH)
        ]
        store.append(batch)
        rows += BATCH
        t += NS_PER_S
    return t


def measure(
    per_sensor: int, batches: int, cache_kib: int | None, sizes: list[int]
) -> dict[int, list[float]]:
    """µs of CPU a row for ``batches`` appends of each size, in turn, on one file."""
    names = [f"t{i:05d}" for i in range(SENSORS)]
    result: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = HistoryStore(Path(folder) / "history.sqlite", 10**18, 10**12)
        if cache_kib is not None:
            store._db.execute(f"PRAGMA cache_size=-{cache_kib}")
        t = fill(store, names, per_sensor, 1_700_000_000 * NS_PER_S)
        at = 0
        for size in sizes:
            times = result[size] = []
            for _ in range(batches):
                batch = [
                    Row(names[(at + i) % SENSORS], t + i, random.random(), Quality.GOOD)
                    for i in range(size)
                ]
                at += size
                started = time.process_time()
                store.append(batch)
                times.append((time.process_time() - started) / size * 1e6)
                t += NS_PER_S
        store.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows-per-sensor", type=int, default=300)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument(
        "--sizes", default="7000", help="rows a write, comma-separated (7,000: one second)"
    )
    parser.add_argument("--caches", default="0,65536", help="KiB of page cache (0: the store's)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"µs of CPU a row over {SENSORS:,} sensors (best / median of {args.batches}):")
    for per_sensor in (0, args.rows_per_sensor):
        for cache_kib in [int(kib) for kib in args.caches.split(",")]:
            result = measure(per_sensor, args.batches, cache_kib or None, sizes)
            cache = f"cache {cache_kib // 1024} MiB" if cache_kib else "the store's cache"
            for size, times in result.items():
                print(
                    f"  {per_sensor:4d} rows a sensor before, {cache:17s}, {size:6,d} rows a "
                    f"write: {min(times):.2f} / {statistics.median(times):.2f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
