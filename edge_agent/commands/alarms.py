"""``edge-agent alarms SITE.yaml list|shelve|unshelve|oos|return|ack ...``: the alarm
controls of the agent running on this site file, through its control socket
(``<storage.path>/control.sock``, mode 0600: run it as the agent's user).

``list`` prints every rule with its state and lifecycle (``--json`` for the rows; ``list
RULE`` or ``list --asset A`` only those);
``shelve RULE --for 2h --reason ...`` (or ``--until-clear``), ``unshelve RULE``,
``oos RULE|--asset A --reason ... [--for 8h]``, ``return RULE|--asset A``,
``ack RULE [--note ...]``. Each command is applied once (``--id`` asks again for a command's
result) and audited on the gateway (``alarm-audit.jsonl``). Exit status: 0 applied,
1 refused, 2 usage, 3 the agent is not running.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.commands.alarm_args import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    add_action_arguments,
    alarms_table,
    assets_lines,
    build_command,
    print_answer,
    printable,
)
from edge_agent.wire.commands import BUSY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, help="the site file of the running agent")
    add_action_arguments(parser)
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="override storage.path of the site file"
    )


def running_site(state_dir: Path) -> str | None:
    """The site id the agent on ``state_dir`` last ran (its last good configuration), or
    None when that cannot be read (no agent yet, another user's folder)."""
    from edge_agent.common.atomic import read_json_object
    from edge_agent.service.last_good import last_good_path

    site = read_json_object(last_good_path(state_dir)).get("site")
    site_id = site.get("id") if isinstance(site, dict) else None
    return site_id if isinstance(site_id, str) else None


def run(args: argparse.Namespace) -> int:
    import json

    from edge_agent.config.diagnostics import ConfigError
    from edge_agent.config.loader import load_site
    from edge_agent.config.state_dir import state_dir_of
    from edge_agent.service.control_socket import request, socket_path

    site_id: str | None = None
    try:
        config = load_site(args.site)
    except (ConfigError, OSError) as exc:
        why = (
            str(exc)
            if isinstance(exc, ConfigError)
            else f"edge-agent alarms: cannot read {args.site}: {exc.strerror}"
        )
        if args.state_dir is None:
            # A broken edit is when the agent runs on its last good copy: reach it anyway.
            print(why, file=sys.stderr)
            print(
                "edge-agent alarms: the site file is needed for its storage.path; give "
                "--state-dir to reach the running agent without it",
                file=sys.stderr,
            )
            return EXIT_USAGE
        print(
            f"edge-agent alarms: the site file does not load ({why.splitlines()[0]}); "
            "going on with --state-dir",
            file=sys.stderr,
        )
    else:
        site_id = config.site.id
    state_dir = args.state_dir if args.state_dir is not None else state_dir_of(config, args.site)
    path = socket_path(state_dir)
    running = running_site(state_dir)
    if running is not None and site_id is not None and running != site_id:
        # Two site files sharing a state folder: the agent there would take the command.
        print(
            f"edge-agent alarms: the agent on {state_dir} runs site {printable(running)}, "
            f"not {printable(site_id)} of {args.site}: name that site's file (or "
            "--state-dir)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.action == "list":
        document: dict[str, object] | str = {"query": "alarms"}
    else:
        document = build_command(args)
    if isinstance(document, str):
        print(f"edge-agent alarms: {document}", file=sys.stderr)
        return EXIT_USAGE
    try:
        answer = request(path, document, timeout_s=args.timeout)
    except (FileNotFoundError, ConnectionRefusedError):
        print(
            f"edge-agent alarms: the agent is not running for {args.site} "
            f"(nothing listens on {path})",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    except PermissionError:
        print(
            f"edge-agent alarms: {path} is the agent's own (mode 0600): run this as the "
            "agent's user (e.g. sudo -u edge-agent ...)",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    except TimeoutError:
        # The agent may have applied it: the id asks again without applying it twice.
        again = "" if args.action == "list" else f"; ask again with --id {document['id']}"
        print(f"edge-agent alarms: no answer within {args.timeout:g} s{again}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (OSError, ValueError) as exc:
        print(f"edge-agent alarms: {path}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.action != "list":
        return print_answer(
            answer, as_json=args.json, command="edge-agent alarms", sent_id=str(document["id"])
        )
    if answer.get("ok") is not True:
        message = str(answer.get("message"))
        print(f"edge-agent alarms: {printable(message)}", file=sys.stderr)
        return EXIT_UNREACHABLE if message.startswith(BUSY) else EXIT_REFUSED
    rows = answer.get("alarms")
    rows = rows if isinstance(rows, list) else []
    assets = answer.get("assets")
    asset_lines = (
        []
        if args.rule is not None
        else assets_lines(assets if isinstance(assets, list) else [], args.asset)
    )
    if args.rule is not None or args.asset is not None:
        # `list RULE` / `list --asset A`: those rows only (the agent answers every rule).
        rows = [
            row
            for row in rows
            if isinstance(row, dict)
            and (args.rule is None or row.get("rule") == args.rule)
            and (args.asset is None or row.get("asset") == args.asset)
        ]
        if not rows and not asset_lines:
            wanted = args.rule if args.rule is not None else f"--asset {args.asset}"
            print(f"edge-agent alarms: no rule matches {printable(wanted)}", file=sys.stderr)
            return EXIT_REFUSED
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(alarms_table(rows))
    for line in asset_lines:
        print(line)
    return EXIT_OK
