"""`edge-agent replay SITE.yaml TRACE.jsonl [--until TIME]`: try rules on recorded data.

Feeds the trace's readings through the site's rules (the clock follows the readings'
times; ``--until`` moves it further at the end) and prints every alarm event as one JSON
object per line, in time order. A bad trace line is reported with its line number and
nothing is printed (exit 1).

A trace may also hold the alarm lifecycle's commands and work order statuses (see
``rules/trace.py``); they go to the same engine calls as the agent's, and a command the
agent would refuse prints ``{"time", "command", "rule"|"asset", "ok": false, "message"}``
where it happened, and a work order status of a rule the site does not have
``{"time", "work_order", "rule", "status", "ok": false, "message"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from edge_agent.alerts import format_time_ns, parse_time
from edge_agent.commands.trace_input import (
    TraceInputError,
    bounded_lines,
    checked_items,
    open_trace,
)
from edge_agent.config.models import SiteConfig
from edge_agent.errors import EdgeAgentError
from edge_agent.readings import Reading
from edge_agent.rules.engine import RuleEngine
from edge_agent.rules.events import AlarmEvent
from edge_agent.rules.lifecycle import CommandError, parse_command
from edge_agent.rules.trace import TraceCommand, TraceError, TraceWorkOrder, decode_lines

Refusal = tuple[int, dict[str, object]]
"""A refused command's output line, with the number of events before it."""


class ReplayError(EdgeAgentError):
    """A site or trace that cannot be replayed; the message says where and why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, help="the site file (SITE.yaml)")
    parser.add_argument(
        "trace", type=Path, nargs="?", help="recorded readings, one JSON object a line"
    )
    parser.add_argument(
        "--recent",
        metavar="DURATION",
        help="instead of a trace: the agent's own history of the last DURATION (e.g. 24h)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        metavar="EDITED.yaml",
        help="with --recent: an edited site file; print the work orders of both, side by side",
    )
    parser.add_argument("--state-dir", type=Path, help="override storage.path of the site file")
    parser.add_argument(
        "--until",
        metavar="TIME",
        help="advance the clock to this RFC 3339 time after the last reading "
        "(fires delays and staleness that fall before it)",
    )


def load_site_config(path: Path) -> SiteConfig:
    """The site through the config loader (includes, checks); every error on failure."""
    from edge_agent.config.diagnostics import ConfigError
    from edge_agent.config.loader import load_site

    try:
        return load_site(path)
    except ConfigError as exc:
        raise ReplayError(str(exc)) from exc


def replay_readings(
    config: SiteConfig,
    lines: Iterable[str],
    until_ns: int | None = None,
    unknown: dict[str, list[int]] | None = None,
    refusals: list[Refusal] | None = None,
) -> tuple[list[AlarmEvent], RuleEngine]:
    """Run ``lines`` (trace text) through a fresh engine; raises TraceError on a bad line
    before any reading is applied. ``unknown`` collects the line numbers of readings of
    sensors the site does not have, by sensor id; ``refusals`` the commands the engine
    refused (see :func:`replay_output`)."""
    items = list(checked_items(lines))
    engine = RuleEngine(config)
    events: list[AlarmEvent] = []
    for line, item in items:
        if isinstance(item, TraceCommand):
            refusal = _apply_command(engine, config, item, events)
            if refusal is not None and refusals is not None:
                refusals.append((len(events), refusal))
        elif isinstance(item, TraceWorkOrder):
            if refusals is not None and not any(r.id == item.rule for r in config.rules):
                # The engine ignores it (as the agent does a status of a rule it lost):
                # said here, since a trace's rule name is more likely a typo.
                refusals.append((len(events), _unknown_rule_status(config, item)))
            events.extend(
                engine.work_order_status(
                    item.rule, item.work_order_id, item.status, item.time_ns, assigned=item.assigned
                )
            )
        else:
            if unknown is not None and item.sensor_id not in config.sensors:
                unknown.setdefault(item.sensor_id, []).append(line)
            events.extend(engine.feed(item))
    if until_ns is not None:
        events.extend(engine.tick(until_ns))
    return events, engine


def _unknown_rule_status(config: SiteConfig, item: TraceWorkOrder) -> dict[str, object]:
    return {
        "time": format_time_ns(item.time_ns),
        "work_order": item.work_order_id,
        "rule": item.rule,
        "status": item.status,
        "ok": False,
        "message": f"no rule {item.rule!r} at site {config.site.id}: the status changes nothing",
    }


def _apply_command(
    engine: RuleEngine, config: SiteConfig, item: TraceCommand, events: list[AlarmEvent]
) -> dict[str, object] | None:
    """Apply one command line; the line replay prints if the agent would refuse it."""
    data = item.data
    try:
        command = parse_command(data, max_shelve_ns=config.alarms.max_shelve)
    except CommandError as exc:
        ok, message = False, str(exc)
    else:
        outcome = engine.apply_command(command, item.time_ns)
        events.extend(outcome.events)
        ok, message = outcome.ok, outcome.message
    if ok:
        return None
    target = {"asset": data["asset"]} if "asset" in data else {"rule": data.get("rule")}
    return {
        "time": format_time_ns(item.time_ns),
        "command": data["action"],
        **target,
        "ok": False,
        "message": message,
    }


def replay_output(events: list[AlarmEvent], refusals: list[Refusal]) -> list[dict[str, object]]:
    """What replay prints: the events' lines with the refused commands where they were."""
    out: list[dict[str, object]] = []
    pending = iter(refusals)
    refusal = next(pending, None)
    for index, event in enumerate([*events, None]):
        while refusal is not None and refusal[0] == index:
            out.append(refusal[1])
            refusal = next(pending, None)
        if event is not None:
            out.append(event.to_replay_json())
    return out


def run(args: argparse.Namespace) -> int:
    if (args.trace is None) == (args.recent is None):
        print("edge-agent replay: give a TRACE file or --recent DURATION", file=sys.stderr)
        return 2
    if args.rules is not None and args.recent is None:
        print("edge-agent replay: --rules goes with --recent", file=sys.stderr)
        return 2
    if args.recent is not None:
        return _run_recent(args)
    until_ns = None
    if args.until is not None:
        try:
            until_ns = parse_time(args.until)
        except ValueError as exc:
            print(f"edge-agent replay: --until {args.until!r}: {exc}", file=sys.stderr)
            return 2
    try:
        config = load_site_config(args.site)
    except ReplayError as exc:
        print(exc, file=sys.stderr)
        return 1
    unknown: dict[str, list[int]] = {}
    refusals: list[Refusal] = []
    try:
        with open_trace(args.trace) as trace:
            lines = decode_lines(bounded_lines(trace))
            events, engine = replay_readings(config, lines, until_ns, unknown, refusals)
    except TraceInputError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{args.trace}: error: cannot read the trace: {exc.strerror}", file=sys.stderr)
        return 1
    except TraceError as exc:
        print(f"{args.trace}:{exc.line}: error: {exc.message}", file=sys.stderr)
        return 1
    out = sys.stdout
    for line in replay_output(events, refusals):
        out.write(json.dumps(line) + "\n")
    out.flush()
    _report_unknown_sensors(args.trace, unknown, list(config.sensors))
    rejected = {name: n for name, n in engine.counters.items() if n and "readings" in name}
    if rejected:
        summary = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in rejected.items())
        print(f"edge-agent replay: {summary}", file=sys.stderr)
    return 0


def _report_unknown_sensors(trace: Path, unknown: dict[str, list[int]], known: list[str]) -> None:
    """One warning per sensor id the site lacks, at its first line: a typo in a trace (or
    a sensor renamed in the site file) would otherwise only be a count."""
    from edge_agent.config.messages import suggest

    for sensor_id, lines in sorted(unknown.items(), key=lambda item: item[1][0]):
        meant = suggest(sensor_id, known)
        hint = f" (did you mean `{meant}`?)" if meant else ""
        # Escaped and cut: the id comes from the trace and may hold control characters.
        shown = sensor_id.encode("unicode_escape").decode("ascii")
        shown = shown if len(shown) <= 64 else shown[:61] + "..."
        print(
            f"{trace}:{lines[0]}: warning: unknown sensor `{shown}`{hint}; "
            f"{len(lines)} reading(s) skipped",
            file=sys.stderr,
        )


def _run_recent(args: argparse.Namespace) -> int:
    """The agent's history of the last ``--recent`` through the rules (and ``--rules``)."""
    import time

    from edge_agent.commands.replay_recent import events_of, outcome, side_by_side
    from edge_agent.config.state_dir import state_dir_of
    from edge_agent.config.units import parse_duration
    from edge_agent.history.store import HistoryError, as_reading, open_for_reading

    try:
        window_ns = parse_duration(args.recent)
        config = load_site_config(args.site)
        edited = load_site_config(args.rules) if args.rules is not None else None
    except ValueError as exc:
        print(f"edge-agent replay: --recent {args.recent!r}: {exc}", file=sys.stderr)
        return 2
    except ReplayError as exc:
        print(exc, file=sys.stderr)
        return 1
    now_ns = time.time_ns()
    try:
        store = open_for_reading(args.state_dir or state_dir_of(config, args.site))
        try:
            # Streamed once per set of rules, not held (a day of a plant is millions of
            # rows), each pass to the same instant while the agent goes on writing.
            count = [0]
            seen: set[str] = set()

            def readings() -> Iterator[Reading]:
                count[0] = 0
                for row in store.rows(now_ns - window_ns, now_ns):
                    count[0] += 1
                    seen.add(row.sensor)
                    yield as_reading(row)

            events = events_of(config, readings(), now_ns)
            print(
                f"edge-agent replay: {count[0]} readings of the last {args.recent}",
                file=sys.stderr,
            )
            # A rule with nothing to read makes no work orders: said, or it reads as a fix.
            quiet = {
                (rule.sensor, rule.id)
                for rules in (config, edited)
                if rules is not None
                for rule in rules.rules
                if rule.sensor not in seen
            }
            for sensor, rule_id in sorted(quiet):
                print(
                    f"edge-agent replay: no readings of {sensor} (rule {rule_id}) in the history",
                    file=sys.stderr,
                )
            if edited is None:
                for event in events:
                    sys.stdout.write(json.dumps(event.to_replay_json()) + "\n")
                current = outcome(events)
                print(
                    f"{len(current.work_orders)} work orders would have been made",
                    file=sys.stderr,
                )
                return 0
            current = outcome(events)
            changed = outcome(events_of(edited, readings(), now_ns))
        finally:
            store.close()
    except HistoryError as exc:
        print(f"edge-agent replay: {exc}", file=sys.stderr)
        return 1
    print("\n".join(side_by_side(current, changed, config.site.timezone)))
    return 0
