"""``edge-agent hub HUB.yaml alarms SITE shelve|unshelve|oos|return|ack RULE ...``: an alarm
command to one site's agent over MQTT, and its answer (see :mod:`edge_agent.hub.commands`).
Exit status: 0 applied, 1 refused, 2 usage, 3 no answer in time (or broker unreachable)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from edge_agent.commands.alarm_args import (
    COMMAND_ACTIONS,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    build_command,
    print_answer,
    timeout_seconds,
)


def add_hub_alarm_arguments(parser: argparse.ArgumentParser) -> None:
    """The alarm command's arguments beside the hub's own (``alarms SITE VERB RULE``)."""
    group = parser.add_argument_group("alarms SITE ACTION RULE")
    parser.add_argument("verb", nargs="?", help="alarms: " + " | ".join(COMMAND_ACTIONS))
    parser.add_argument("rule", nargs="?", help="alarms: the rule (or --asset for oos/return)")
    group.add_argument("--asset", help="oos/return: a whole asset instead of one rule")
    group.add_argument("--for", dest="duration", metavar="DURATION", help="shelve/oos: 2h, 30m")
    group.add_argument("--until-clear", action="store_true", help="shelve until it clears")
    group.add_argument("--reason", default="", help="why (required for shelve and oos)")
    group.add_argument("--note", help="ack: a note")
    group.add_argument("--by", help="who (default: your user name on this machine)")
    group.add_argument("--id", dest="command_id", help="the command id (to ask again)")
    group.add_argument(
        "--timeout", type=timeout_seconds, default=20.0, help="seconds to wait for the answer (20)"
    )


def hub_alarms(config: Any, base_dir: Path, args: argparse.Namespace) -> int:
    from edge_agent.hub.commands import HubCommandError, send_command

    site = args.what
    if args.verb == "list":
        # The rows are for the gateway's own users (the agent answers no query on MQTT).
        print(
            "edge-agent hub: alarms: list is answered on the gateway only: run "
            "`edge-agent alarms SITE.yaml list` there",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if site is None or args.verb not in COMMAND_ACTIONS:
        print(
            "edge-agent hub: alarms SITE " + "|".join(COMMAND_ACTIONS) + " RULE [options]",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if site not in config.sites:
        print(f"edge-agent hub: no site {site!r} in the hub file", file=sys.stderr)
        return EXIT_USAGE
    args.action = args.verb
    command = build_command(args)
    if isinstance(command, str):
        print(f"edge-agent hub: {command}", file=sys.stderr)
        return EXIT_USAGE
    # The link's retries are the CLI's business: its last error is in the message below.
    logging.getLogger("edge_agent.common.mqtt_link").setLevel(logging.ERROR)
    try:
        result = asyncio.run(send_command(config, base_dir, site, command, args.timeout))
    except HubCommandError as exc:
        print(f"edge-agent hub: alarms: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if result is None:
        print(
            f"edge-agent hub: no answer from {site} within {args.timeout:g} s; the agent "
            f"applies the command when it gets it. Ask again with --id {command['id']} "
            "to see its result (it is applied once).",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    answer = {
        "id": result.id,
        "ok": result.ok,
        "message": result.message,
        **({"repeat": True} if result.repeat else {}),
    }
    return print_answer(
        answer, as_json=args.json, command=f"edge-agent hub: {site}", sent_id=command["id"]
    )
