"""What the history's bucket index (docs/performance.md §4d) costs the readers and the agent's
start-up: one sensor's last hour and last day read on a big file (``--sensors`` every
``--step-s`` for 25 h), in this tree and ``--other-tree`` alternating; and the time the
writer's first open takes to replace the old (sensor, t) index, on that file and on one at
the default size cap (64 MB).

    .venv/bin/python bench/history_reads.py --other-tree ../before [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

NS_PER_S = 1_000_000_000
START_NS = 1_700_000_000 * NS_PER_S
OLD_SCHEMA = """
CREATE TABLE sensors (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE readings (
    sensor INTEGER NOT NULL, t INTEGER NOT NULL, k INTEGER NOT NULL, v REAL, s TEXT,
    q INTEGER NOT NULL
);
"""
OLD_INDEXES = """
CREATE INDEX readings_by_sensor ON readings (sensor, t);
CREATE INDEX readings_by_time ON readings (t);
"""
READER = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from edge_agent.history.store import HistoryStore
store = HistoryStore(Path(sys.argv[1]), 0, 0, read_only=True)
end = int(sys.argv[3])
out = {}
for span_s, label in ((3600, "1 h"), (86400, "1 day")):
    times = []
    for _ in range(int(sys.argv[4])):
        started = time.perf_counter()
        count = sum(1 for _ in store.rows(end - span_s * 10**9, sensor="s00500"))
        times.append((time.perf_counter() - started) * 1e3)
    out[f"{label} ({count:,} rows)"] = times
print(json.dumps(out))
"""


def old_file(path: Path, sensors: int, step_s: int, seconds: int) -> int:
    """A file as the store of before left it; the time of its last row."""
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(OLD_SCHEMA)
    db.executemany(
        "INSERT INTO sensors (id, name) VALUES (?, ?)",
        ((i, f"s{i:05d}") for i in range(sensors)),
    )
    db.execute("BEGIN")
    for second in range(0, seconds, step_s):
        at = START_NS + second * NS_PER_S
        db.executemany(
            "INSERT INTO readings VALUES (?, ?, 1, ?, NULL, 0)",
            ((i, at + i, random.random()) for i in range(sensors)),
        )
    db.execute("COMMIT")
    db.executescript(OLD_INDEXES)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return START_NS + (seconds - step_s) * NS_PER_S + sensors


def migrate(repo: Path, path: Path) -> float:
    """Seconds this tree's writer takes to open ``path`` (its index change), own process."""
    code = (
        "import sys, time; from pathlib import Path; sys.path.insert(0, sys.argv[2]);"
        "from edge_agent.history.store import HistoryStore; t = time.perf_counter();"
        "HistoryStore(Path(sys.argv[1]), 10**18, 10**12).close();"
        "print(time.perf_counter() - t)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), str(repo)], check=True, capture_output=True
    )
    return float(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--other-tree", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="reads of each span a round")
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--step-s", type=int, default=10)
    args = parser.parse_args()
    this = Path(__file__).resolve().parent.parent
    trees = {"this": this, "other": args.other_tree.resolve()}
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "cap.sqlite"  # 10,000 sensors a second to the 64 MB cap
        old_file(small, 10_000, 1, 90)
        size = small.stat().st_size
        print(
            f"writer's first open of an old file of {size / 1e6:.0f} MB: "
            f"{migrate(this, small):.2f} s; again: {migrate(this, small):.3f} s"
        )
        old = Path(folder) / "old.sqlite"
        end = old_file(old, args.sensors, args.step_s, 25 * 3600)
        new = Path(folder) / "new.sqlite"
        shutil.copyfile(old, new)
        print(
            f"writer's first open of an old file of {old.stat().st_size / 1e6:.0f} MB: "
            f"{migrate(this, new):.2f} s"
        )
        files = {"this": new, "other": old}  # each tree reads the file its writer keeps
        best: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                done = subprocess.run(
                    [
                        str(tree / ".venv" / "bin" / "python"),
                        "-c",
                        READER,
                        str(files[name]),
                        str(tree),
                        str(end),
                        str(args.repeats),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                for label, times in json.loads(done.stdout).items():
                    best.setdefault(label, {}).setdefault(name, []).append(statistics.median(times))
    print(
        f"one sensor's read of {args.sensors:,} sensors every {args.step_s} s, ms "
        "(median of each round, min–max over rounds):"
    )
    for label, by_tree in best.items():
        cells = [
            f"{name} {statistics.median(v):.1f} ({min(v):.1f}–{max(v):.1f})"
            for name, v in by_tree.items()
        ]
        print(f"  {label}: " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
