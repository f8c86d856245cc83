"""`edge-agent demo`: the simulated plant, the MaintainX stand-in and the agent, scripted.

Within about 30 seconds a pump overheats and a work order appears, a sensor fails, the
network to MaintainX drops and comes back, and the work order buffered meanwhile arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from edge_agent.demo.script import DEFAULT_DURATION_S

MQTT_NOT_AVAILABLE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION_S,
        help=f"seconds to run (default {DEFAULT_DURATION_S:.0f}; the script needs about 30)",
    )
    parser.add_argument(
        "--no-ui", action="store_true", help="no live view: the agent's log on stderr instead"
    )
    parser.add_argument(
        "--mqtt",
        action="store_true",
        help="go through a local mosquitto and the hub instead of straight to MaintainX",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to put the demo's site file, state and log (default: a new temp folder)",
    )


def run(args: argparse.Namespace) -> int:
    from edge_agent.common.logs import configure_logging
    from edge_agent.demo.runner import DemoOptions, run_demo

    if args.mqtt:
        from edge_agent.demo.mqtt import DemoUnavailable, mosquitto_binary

        try:
            mosquitto_binary()
        except DemoUnavailable as exc:
            print(f"edge-agent demo: {exc}", file=sys.stderr)
            return MQTT_NOT_AVAILABLE
    if args.duration <= 0:
        print("edge-agent demo: --duration must be positive", file=sys.stderr)
        return 2
    workdir: Path | None = args.workdir
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    ui = not args.no_ui and sys.stdout.isatty()
    if ui:
        import tempfile

        workdir = workdir or Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
        # The live view owns the terminal: the agent's log goes to a file.
        log_file = (workdir / "agent.log").open("a", encoding="utf-8")
        configure_logging("info", "json", log_file)
    else:
        configure_logging("info", "auto")
    options = DemoOptions(duration_s=args.duration, ui=ui, workdir=workdir, mqtt=args.mqtt)
    result = asyncio.run(run_demo(options))
    return 0 if result is not None else 1
