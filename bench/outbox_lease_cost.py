"""The outbox's CPU per event of a drain, without a broker: lease a window, make the bytes
to publish, ack — two checkouts alternating, each in its own process (issue 16).

    .venv/bin/python bench/outbox_lease_cost.py --other-tree ../before --rounds 5

Per round and checkout: 10,000 hub-shaped alerts put in a fresh outbox, then drained in
windows of 100 (``lease(100)``; per item the bytes a forwarder publishes: the stored bytes
where the outbox hands them out, else the payload encoded as the forwarder does; one ``ack``
of the 100). Prints the CPU microseconds per event of the lease (with the bytes) and of the
ack, best of the round's three drains (the machine is shared). The fsync of each ack is not
CPU; the wall time per event is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
COUNT = 10_000
WINDOW = 100


def child(tree: Path, work: Path) -> dict[str, float]:
    sys.path.insert(0, str(tree))
    sys.path.insert(0, str(BENCH_DIR))
    from outbox_agent_cpu import hub_event

    from edge_agent.forwarders.hub_tracking import encode_payload
    from edge_agent.outbox import Outbox

    def body(item: Any) -> bytes:
        stored = getattr(item, "body", None)
        return stored if stored is not None else encode_payload(item.payload)

    events = [hub_event(i, 1_764_900_000_000_000_000) for i in range(COUNT)]
    best: dict[str, float] = {}
    for attempt in range(3):
        with Outbox.open(work / f"outbox-{attempt}", 2_000_000_000) as outbox:
            for start in range(0, COUNT, 1000):
                outbox.put_many(events[start : start + 1000])
            lease_cpu = ack_cpu = 0.0
            wall = time.perf_counter()
            sent = 0
            while sent < COUNT:
                began = time.process_time()
                items = outbox.lease(WINDOW)
                bodies = [body(item) for item in items]
                leased = time.process_time()
                outbox.ack([item.id for item in items])
                lease_cpu += leased - began
                ack_cpu += time.process_time() - leased
                sent += len(bodies)
            wall = time.perf_counter() - wall
        for key, value in (("lease_us", lease_cpu), ("ack_us", ack_cpu), ("wall_us", wall)):
            best[key] = min(best.get(key, float("inf")), value / COUNT * 1e6)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other-tree", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.work)))
        return 0
    trees = {"this": ROOT}
    if args.other_tree is not None:
        trees = {"other": args.other_tree.resolve(), "this": ROOT}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for round_no in range(1, args.rounds + 1):
        order = list(trees.items())
        if round_no % 2 == 0:
            order.reverse()
        for name, tree in order:
            with tempfile.TemporaryDirectory(prefix="bench-lease-cost-") as tmp:
                python = tree / ".venv" / "bin" / "python"
                command = [str(python), str(Path(__file__).resolve()), "--child", str(tree)]
                done = subprocess.run(
                    [*command, "--work", tmp], capture_output=True, text=True, cwd=tree
                )
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
            result = json.loads(done.stdout.splitlines()[-1])
            results[name].append(result)
            print(
                f"round {round_no} {name:5} ({tree.name}): lease + bytes"
                f" {result['lease_us']:.1f} us, ack {result['ack_us']:.1f} us CPU per event;"
                f" wall {result['wall_us']:.1f} us",
                flush=True,
            )
    for name, runs in results.items():
        lease = [r["lease_us"] for r in runs]
        ack = [r["ack_us"] for r in runs]
        print(
            f"{name}: lease + bytes median {statistics.median(lease):.1f} us"
            f" ({min(lease):.1f}-{max(lease):.1f}), ack median {statistics.median(ack):.1f} us"
            f" ({min(ack):.1f}-{max(ack):.1f}) CPU per event"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
