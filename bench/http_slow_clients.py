"""The health endpoint's server (edge_agent/common/http.py) against slow clients.

Starts a HealthServer in a child process, opens N connections that each send half a
request head and never finish it (the issue's slowloris), probes /healthz every 100
connections, and reports: the time to open them all, the slowest connect, the slowest
probe, the child's peak file descriptors and its resident memory. Also the import cost of
h11 on top of asyncio (what choosing it cost a gateway).

    .venv/bin/python bench/http_slow_clients.py [--clients 2000]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import time
import urllib.request

CHILD = """
import asyncio, logging, sys
from prometheus_client import CollectorRegistry
from edge_agent.common.health import HealthServer
from edge_agent.common.logs import configure_logging
configure_logging("info", "json", open("/dev/null", "w"))

class Source:
    def readiness(self): return True, {"ready": True}
    def liveness(self): return {"status": "ok"}

async def main():
    server = HealthServer("127.0.0.1:0", Source(), CollectorRegistry())
    await server.start()
    print(server.port, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""

IMPORT_COST = """
import asyncio, json, logging, resource, time
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
import h11
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{(time.perf_counter() - start) * 1000:.1f} {after - before}")
"""


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=2000)
    args = parser.parse_args()
    costs = [
        subprocess.run(
            [sys.executable, "-c", IMPORT_COST], capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(5)
    ]
    ms = sorted(float(c[0]) for c in costs)[2]
    kib = sorted(int(c[1]) for c in costs)[2]
    print(f"h11 import after asyncio: median {ms:.1f} ms, {kib} KiB")

    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        base_fds, base_rss = _fds(child.pid), _rss_kib(child.pid)
        slow: list[socket.socket] = []
        peak_fds = worst_connect = worst_probe = 0.0
        started = time.monotonic()
        for opened in range(1, args.clients + 1):
            before = time.monotonic()
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
            worst_connect = max(worst_connect, time.monotonic() - before)
            slow.append(sock)
            if opened % 10 == 0:
                peak_fds = max(peak_fds, _fds(child.pid))
            if opened % 100 == 0:
                readable, _, _ = select.select(slow, [], [], 0)
                for gone in readable:
                    gone.close()
                slow = [s for s in slow if s.fileno() != -1]
                before = time.monotonic()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
                    r.read()
                worst_probe = max(worst_probe, time.monotonic() - before)
        elapsed = time.monotonic() - started
        print(
            f"{args.clients} slow clients in {elapsed:.2f} s; slowest connect "
            f"{worst_connect * 1000:.1f} ms; slowest /healthz probe {worst_probe * 1000:.1f} ms"
        )
        print(
            f"server fds: {base_fds} idle, peak {peak_fds:.0f}; RSS {base_rss} KiB idle, "
            f"{_rss_kib(child.pid)} KiB after"
        )
        for sock in slow:
            sock.close()
    finally:
        child.kill()
        child.wait()


if __name__ == "__main__":
    main()
