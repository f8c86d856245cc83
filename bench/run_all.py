"""Run every benchmark in bench/, one after another, and print their figures.

Each benchmark is its own script (`python bench/<name>.py` runs one alone); this only
sequences them so that they never compete for the machine's cores.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Order: the pure ones first, the whole agent last.
BENCHMARKS = [
    "rules.py",
    "config_validate.py",
    "sources.py",
    "outbox.py",
    "mqtt_drain.py",
    "hub.py",
    "agent.py",
    "peers.py",
    "opcua_subscribe.py",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n===== bench/{name} =====", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(HERE / name)], check=False)
        print(f"----- bench/{name}: exit {done.returncode} in {time.monotonic() - started:.0f} s")
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
