"""What ``edge-agent alarms`` (local) and ``edge-agent hub HUB.yaml alarms`` (central) share:
the action arguments, the command they make, and how an answer is printed."""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import secrets
import socket
import sys
import time
import unicodedata
from collections.abc import Sequence
from typing import Any, Final

from edge_agent.wire.commands import BUSY, command_document

ACTIONS: Final = ("list", "shelve", "unshelve", "oos", "return", "ack")
COMMAND_ACTIONS: Final = ACTIONS[1:]
EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
"""The agent is not running (no socket), or no answer came from the site in time."""
MAX_TIMEOUT_S: Final = 600.0


def timeout_seconds(text: str) -> float:
    """``--timeout``: a finite number of seconds in (0, 600] (argparse's type: a usage error
    otherwise; ``nan`` and ``1e400`` would pass a plain comparison or overflow the socket)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds in (0, {MAX_TIMEOUT_S:g}]")
    return value


def printable(text: object) -> str:
    """``text`` safe for a terminal: control and format characters (escape sequences, line
    breaks, bidi overrides) shown escaped. A reason or a name may come from anyone who can
    send a command, and the terminal must not obey it or show one row as two."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
        else ch
        for ch in str(text)
    )


def add_action_arguments(parser: argparse.ArgumentParser, *, listing: bool = True) -> None:
    actions = ACTIONS if listing else COMMAND_ACTIONS
    parser.add_argument("action", choices=actions, help=" | ".join(actions))
    parser.add_argument("rule", nargs="?", help="the rule (or --asset for oos/return)")
    parser.add_argument("--asset", help="oos/return: a whole asset instead of one rule")
    parser.add_argument(
        "--for", dest="duration", metavar="DURATION", help="shelve/oos: how long (2h, 30m)"
    )
    parser.add_argument(
        "--until-clear", action="store_true", help="shelve: until the alarm clears (one-shot)"
    )
    parser.add_argument("--reason", default="", help="why (required for shelve and oos)")
    parser.add_argument("--note", help="ack: a note")
    parser.add_argument("--by", help="who (default: your user name on this machine)")
    parser.add_argument(
        "--id", dest="command_id", help="the command id (to ask again for a command's result)"
    )
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument(
        "--timeout", type=timeout_seconds, default=15.0, help="seconds to wait for the answer (15)"
    )


def new_command_id() -> str:
    """Unique enough for a person's commands: host, time, randomness."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-.")[:40] or "host"
    return f"{host}-{time.time_ns()}-{secrets.token_hex(4)}"


def who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def build_command(args: argparse.Namespace) -> dict[str, Any] | str:
    """The command ``args`` ask for, or why they cannot make one (a usage error)."""
    if (args.rule is None) == (args.asset is None):
        return f"{args.action}: name a rule, or --asset for oos/return (not both)"
    if not (math.isfinite(args.timeout) and 0 < args.timeout <= MAX_TIMEOUT_S):
        return f"--timeout: seconds in (0, {MAX_TIMEOUT_S:g}]"
    for name, text in (
        ("RULE", args.rule),
        ("--asset", args.asset),
        ("--for", args.duration),
        ("--reason", args.reason),
        ("--note", args.note),
        ("--by", args.by),
        ("--id", args.command_id),
    ):
        if text is not None and not _is_utf8(text):
            # Bytes of another encoding arrive as surrogates: they cannot go on the wire.
            shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            cut = shown if len(shown) <= 80 else shown[:80] + "…"
            return f"{name}: {printable(cut)} is not UTF-8 text"
    return command_document(
        args.command_id or new_command_id(),
        args.action,
        by=args.by or who(),
        time_ns=time.time_ns(),
        rule=args.rule,
        asset=args.asset,
        reason=args.reason,
        for_=args.duration,
        until_clear=args.until_clear,
        note=args.note,
    )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def print_answer(
    answer: dict[str, Any], *, as_json: bool, command: str, sent_id: str | None = None
) -> int:
    """Print an agent's answer; the exit status (0: applied or already applied; 3: busy,
    not taken now, as when no answer came)."""
    ok = answer.get("ok") is True
    message = answer.get("message")
    if not ok and isinstance(message, str) and message.startswith(BUSY):
        command_id = answer.get("id") or sent_id
        again = f"; ask again with --id {command_id}" if command_id else ""
        if as_json:
            print(json.dumps(answer, indent=2, ensure_ascii=False))
        else:
            print(f"{command}: not taken now: {printable(message)}{again}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if as_json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        repeat = " (already applied earlier: its first result)" if answer.get("repeat") else ""
        stream = sys.stdout if ok else sys.stderr
        prefix = "" if ok else f"{command}: refused: "
        print(f"{prefix}{printable(answer.get('message'))}{repeat}", file=stream)
    return EXIT_OK if ok else EXIT_REFUSED


def alarms_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per rule: its state and every lifecycle state it is in."""
    if not rows:
        return "no rules"
    header = ("RULE", "ASSET", "STATE", "PRIORITY", "LIFECYCLE")
    body = [
        (
            printable(row.get("rule")),
            printable(row.get("asset") or "-"),
            printable(row.get("state") or "-"),
            printable(row.get("priority") or "-"),
            printable(_lifecycle(row)),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for line in [header, *body]:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, line[-1]]).rstrip())
    return "\n".join(lines)


def assets_lines(rows: Sequence[Any], only: str | None = None) -> list[str]:
    """One line per asset out of service as a whole (``only``: that asset), after the
    table: an asset with no rule would show nowhere else."""
    lines = []
    for row in rows:
        if not isinstance(row, dict) or (only is not None and row.get("asset") != only):
            continue
        until = f" until {row['until']}" if row.get("until") else " (no expiry)"
        count = row.get("rules")
        lines.append(
            printable(
                f"asset {row.get('asset')} OUT OF SERVICE{until}{_who_why(row)}, "
                f"{count if isinstance(count, int) else '?'} rules"
            )
        )
    return lines


def _lifecycle(row: dict[str, Any]) -> str:
    parts: list[str] = []
    oos = row.get("out_of_service")
    if isinstance(oos, dict):
        until = f" until {oos['until']}" if oos.get("until") else ""
        parts.append(f"OUT OF SERVICE{until}{_who_why(oos)}")
    shelved = row.get("shelved")
    if isinstance(shelved, dict):
        until = "until clear" if shelved.get("until_clear") else f"until {shelved.get('until')}"
        parts.append(f"shelved {until}{_who_why(shelved)}")
    if row.get("maintenance") is not None:
        parts.append(f"maintenance (work order {row.get('maintenance')})")
    acknowledged = row.get("acknowledged")
    if isinstance(acknowledged, dict):
        parts.append(f"acknowledged by {acknowledged.get('by')}")
    verifying = row.get("verifying")
    if isinstance(verifying, dict):
        parts.append(f"verifying work order {verifying.get('work_order')}")
    return "; ".join(parts) or "-"


def _who_why(state: dict[str, Any]) -> str:
    reason = state.get("reason")
    return f" (by {state.get('by')}" + (f": {reason})" if reason else ")")


__all__ = [
    "ACTIONS",
    "EXIT_UNREACHABLE",
    "add_action_arguments",
    "alarms_table",
    "assets_lines",
    "build_command",
    "print_answer",
    "printable",
    "timeout_seconds",
]
