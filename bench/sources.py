"""Source benchmarks, one command: Modbus plan, OPC UA batching, and CPU/RSS of a poller.

1. Modbus: coalesced plan against one request per sensor (``bench/sources_modbus.py``).
2. OPC UA: ``bench/sources_opcua.py:run_opcua_bench`` when that file exists.
3. A process polling 10,000 Modbus registers (2,500 sensors) and 1,000 OPC UA nodes every
   second for ``--duration`` seconds (default 60), the simulators in other processes: its
   CPU (share of one core, from /proc) and resident memory. Goal: < 20 % and < 120 MiB.

Run: .venv/bin/python bench/sources.py [--duration 60] [--skip-modbus] [--skip-opcua]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from ports import free_port, wait_for_port  # noqa: E402
from sources_modbus import (  # noqa: E402
    bench_sensors,
    modbus_simulator,
    run_modbus_bench,
)

OPCUA_NODES = 1000
WARMUP_S = 5.0


def run_opcua_part() -> dict[str, float]:
    path = BENCH_DIR / "sources_opcua.py"
    if not path.exists():
        print("OPC UA: bench/sources_opcua.py is not there; skipped")
        return {}
    spec = importlib.util.spec_from_file_location("sources_opcua", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures: dict[str, float] = module.run_opcua_bench()
    return figures


# ---------------------------------------------------------------------- the poller process


async def _poll(modbus_port: int, opcua_port: int, run_s: float) -> dict[str, Any]:
    from edge_agent.config.models import Defaults, ModbusTcp, OpcUa, Sensor
    from edge_agent.sources.modbus.source import ModbusSource
    from edge_agent.sources.opcua.source import OpcUaSource

    defaults = Defaults()
    modbus = ModbusSource(
        "plc",
        ModbusTcp.model_validate(
            {"protocol": "modbus-tcp", "host": "127.0.0.1", "port": modbus_port, "poll": "1s"}
        ),
        bench_sensors(),
        defaults,
    )
    opcua_sensors = {
        f"n{i:05d}": Sensor.model_validate({"connection": "ua", "node": f"ns=2;s=Bench.N{i:05d}"})
        for i in range(OPCUA_NODES)
    }
    opcua = OpcUaSource(
        "ua",
        OpcUa.model_validate(
            {
                "protocol": "opcua",
                "endpoint": f"opc.tcp://127.0.0.1:{opcua_port}/edge-agent/demo/",
                "mode": "poll",
                "poll": "1s",
            }
        ),
        opcua_sensors,
        defaults,
        Path("."),
    )
    counts = {"plc": [0, 0], "ua": [0, 0]}  # batches, good readings

    def sink_for(name: str) -> Any:
        async def sink(readings: Any) -> None:
            counts[name][0] += 1
            counts[name][1] += sum(r.is_good for r in readings)

        return sink

    tasks = [
        asyncio.create_task(modbus.run(sink_for("plc"))),
        asyncio.create_task(opcua.run(sink_for("ua"))),
    ]
    print("polling", flush=True)
    await asyncio.sleep(run_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "modbus_batches": counts["plc"][0],
        "modbus_good": counts["plc"][1],
        "modbus_overruns": modbus.stats.overruns,
        "opcua_batches": counts["ua"][0],
        "opcua_good": counts["ua"][1],
        "opcua_overruns": opcua.stats.overruns,
    }


def poller_main(args: argparse.Namespace) -> int:
    summary = asyncio.run(_poll(args.modbus_port, args.opcua_port, args.run_s))
    print("SUMMARY " + json.dumps(summary), flush=True)
    return 0


# ---------------------------------------------------------------------- the measurement


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_load_test(duration_s: float) -> dict[str, float]:
    opcua_port = free_port()
    opcua = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "simulate",
            "opcua",
            "--port",
            str(opcua_port),
            "--nodes",
            str(OPCUA_NODES),
            "--control-port",
            "0",  # not the port after the simulator's, which may be taken
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        if not wait_for_port(opcua_port, timeout_s=90):
            raise RuntimeError("the OPC UA simulator did not listen")
        with modbus_simulator() as modbus_port:
            poller = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--poller",
                    "--modbus-port",
                    str(modbus_port),
                    "--opcua-port",
                    str(opcua_port),
                    "--run-s",
                    str(WARMUP_S + duration_s + 1),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert poller.stdout is not None
            poller.stdout.readline()  # "polling": the sources are built
            time.sleep(WARMUP_S)
            tick = os.sysconf("SC_CLK_TCK")
            start_ticks, start_wall = _cpu_ticks(poller.pid), time.monotonic()
            rss = []
            while time.monotonic() - start_wall < duration_s:
                rss.append(_rss_mib(poller.pid))
                time.sleep(1.0)
            cpu_s = (_cpu_ticks(poller.pid) - start_ticks) / tick
            wall_s = time.monotonic() - start_wall
            out, _ = poller.communicate(timeout=60)
    finally:
        opcua.send_signal(signal.SIGTERM)
        opcua.wait(timeout=20)
    summary = next(
        (json.loads(line[8:]) for line in out.splitlines() if line.startswith("SUMMARY ")), {}
    )
    figures = {
        "load_duration_s": wall_s,
        "load_cpu_percent_of_one_core": 100.0 * cpu_s / wall_s,
        "load_rss_max_mib": max(rss),
        "load_rss_last_mib": rss[-1],
        **{f"load_{k}": float(v) for k, v in summary.items()},
    }
    print(
        f"Load: 10,000 Modbus registers (2,500 sensors) + {OPCUA_NODES:,} OPC UA nodes "
        f"every 1 s for {wall_s:.0f} s"
    )
    print(
        f"  CPU {figures['load_cpu_percent_of_one_core']:.1f} % of one core (goal < 20 %), "
        f"RSS max {figures['load_rss_max_mib']:.1f} MiB (goal < 120 MiB)"
    )
    if summary:
        print(
            f"  cycles over the poller's whole run ({WARMUP_S + duration_s + 1:.0f} s with "
            f"warm-up): Modbus {summary['modbus_batches']} "
            f"({summary['modbus_good']} good readings, {summary['modbus_overruns']} overruns), "
            f"OPC UA {summary['opcua_batches']} "
            f"({summary['opcua_good']} good readings, {summary['opcua_overruns']} overruns)"
        )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="load test seconds")
    parser.add_argument("--skip-modbus", action="store_true")
    parser.add_argument("--skip-opcua", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--poller", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--modbus-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--opcua-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run-s", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.poller:
        return poller_main(args)
    figures: dict[str, float] = {}
    if not args.skip_modbus:
        figures.update(run_modbus_bench())
    if not args.skip_opcua:
        figures.update(run_opcua_part())
    if not args.skip_load:
        figures.update(run_load_test(args.duration))
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
