"""The history's writes for a 10,000-item subscription, alone (``HistoryStore.append``):
CPU a row for batches of 7,000 changes (one a second, as ``HistoryRecorder.run`` writes
them; ``--sizes`` for other batch sizes), on a fresh file and on one that already holds
``--rows-per-sensor`` rows of each sensor (a file minutes old: where a ``(sensor, t)``
index put each sensor's end on a page of its own, docs/performance.md §4c–4d), with
SQLite's page cache as the store sets it and larger. ``--other-tree ../before`` runs the
same in both checkouts, alternating, ``--rounds`` times (each in its own process), and
gives each tree's medians and their spread.

    .venv/bin/python bench/opcua_history.py [--rows-per-sensor 300] [--batches 20]
        [--sizes 7000,35000] [--caches 0,65536] [--other-tree ../before --rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if "--tree" in sys.argv:  # a round of --other-tree: that checkout's store
    REPO = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()
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


def one_tree(args: argparse.Namespace, sizes: list[int]) -> dict[str, list[float]]:
    """Label → µs a row of each batch, for every file age and cache."""
    out: dict[str, list[float]] = {}
    for per_sensor in (0, args.rows_per_sensor):
        for cache_kib in [int(kib) for kib in args.caches.split(",")]:
            result = measure(per_sensor, args.batches, cache_kib or None, sizes)
            cache = f"cache {cache_kib // 1024} MiB" if cache_kib else "the store's cache"
            for size, times in result.items():
                label = (
                    f"{per_sensor:4d} rows a sensor before, {cache:17s}, {size:6,d} rows a write"
                )
                out[label] = times
    return out


def alternate(args: argparse.Namespace, passed: list[str]) -> None:
    """Each round: this tree, then the other, each in a process of its own venv."""
    trees = {"this": REPO, "other": args.other_tree.resolve()}
    medians: dict[str, dict[str, list[float]]] = {}
    for round_ in range(args.rounds):
        for name, tree in trees.items():
            python = tree / ".venv" / "bin" / "python"
            done = subprocess.run(
                [str(python), __file__, *passed, "--tree", str(tree), "--json"],
                check=True,
                capture_output=True,
                text=True,
            )
            for label, times in json.loads(done.stdout).items():
                medians.setdefault(label, {}).setdefault(name, []).append(statistics.median(times))
        print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)
    print("µs of CPU a row, median of each round's batches (min–max over rounds):")
    for label, by_tree in medians.items():
        cells = [
            f"{name} {statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})"
            for name, v in by_tree.items()
        ]
        print(f"  {label}: " + ", ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows-per-sensor", type=int, default=300)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument(
        "--sizes", default="7000", help="rows a write, comma-separated (7,000: one second)"
    )
    parser.add_argument("--caches", default="0,65536", help="KiB of page cache (0: the store's)")
    parser.add_argument("--other-tree", type=Path, help="also run this checkout, alternating")
    parser.add_argument("--rounds", type=int, default=3, help="with --other-tree")
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.other_tree is not None:
        passed = [
            f"--rows-per-sensor={args.rows_per_sensor}",
            f"--batches={args.batches}",
            f"--sizes={args.sizes}",
            f"--caches={args.caches}",
        ]
        alternate(args, passed)
        return 0
    result = one_tree(args, sizes)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"µs of CPU a row over {SENSORS:,} sensors (best / median of {args.batches}):")
    for label, times in result.items():
        print(f"  {label}: {min(times):.2f} / {statistics.median(times):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
