"""The demo's live terminal view and its closing summary: plain text and ANSI redraws.

``snapshot`` reads the running agent and the emulator into a plain dict; ``render`` turns
that into the screen (pure, so it is easy to test and to print without a terminal).
"""

from __future__ import annotations

from typing import Any

from edge_agent.alerts import format_time_ns
from edge_agent.service.metrics import as_mapping

CLEAR_SCREEN = "\x1b[H\x1b[2J"
BOLD, DIM, RED, GREEN, YELLOW, RESET = (
    "\x1b[1m",
    "\x1b[2m",
    "\x1b[31m",
    "\x1b[32m",
    "\x1b[33m",
    "\x1b[0m",
)
STATE_COLOURS = {"NORMAL": GREEN, "PENDING": YELLOW, "ACTIVE": RED, "CLEARING": YELLOW}


def snapshot(service: Any, emulator: Any, elapsed_s: float, steps: list[str]) -> dict[str, Any]:
    """What the view shows, read from the live agent (``Service``) and the emulator."""
    agent = service.agent
    config = agent.config
    readings = []
    for sensor_id, sensor in config.sensors.items():
        reading = agent.latest.get(sensor_id)
        readings.append(
            {
                "sensor": sensor_id,
                "value": None if reading is None else reading.value,
                "quality": None if reading is None else reading.quality.value,
                "reason": None if reading is None else reading.reason,
                "unit": sensor.unit or "",
            }
        )
    forwarder = agent.forwarder
    stats = as_mapping(agent.outbox_stats())
    return {
        "elapsed_s": elapsed_s,
        "site": config.site.name or config.site.id,
        "readings": readings,
        "rules": dict(agent.engine.rule_states()) if agent.engine is not None else {},
        "connections": {name: s.stats.connected for name, s in agent.sources.items()},
        "forwarder": None if forwarder is None else _forwarder_state(forwarder.status),
        "outbox_depth": stats.get("depth", 0),
        "dead_letters": stats.get("dead", 0),
        "events": [
            {
                "time": format_time_ns(e.time_ns),
                "kind": e.kind,
                "rule": e.rule_id,
                "sensor": e.sensor_id,
                "priority": e.priority,
            }
            for e in list(agent.recent_events)[-6:]
        ],
        "work_orders": [
            {
                "id": wo.get("id"),
                "title": wo.get("title"),
                "priority": wo.get("priority"),
                "asset_id": wo.get("assetId"),
            }
            for wo in emulator.work_orders
        ],
        "steps": steps[-6:],
    }


def _forwarder_state(status: Any) -> str:
    """up (it delivered), down (its last attempt failed) or idle (nothing sent yet)."""
    if status.connected:
        return "up"
    if status.last_error is None and status.sent == status.failed == 0:
        return "idle"
    return "down"


def _value(row: dict[str, Any]) -> str:
    value = row["value"]
    if row["quality"] is None:
        return "-"
    if row["quality"] != "good":
        return f"{RED}{row['quality'].upper()}{RESET} {DIM}{row['reason'] or ''}{RESET}"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.2f} {row['unit']}"
    return f"{value} {row['unit']}"


def render(view: dict[str, Any], colour: bool = True) -> str:
    """The whole screen as text (without the clear-screen prefix)."""
    lines = [
        f"{BOLD}edge-agent demo{RESET} — {view['site']} — {view['elapsed_s']:5.1f} s",
        "",
        f"{BOLD}readings{RESET}",
    ]
    lines += [f"  {row['sensor']:<20} {_value(row)}" for row in view["readings"]]
    lines += ["", f"{BOLD}rules{RESET}"]
    for rule_id, state in sorted(view["rules"].items()):
        lines.append(f"  {rule_id:<22} {STATE_COLOURS.get(state, '')}{state}{RESET}")
    links = [
        f"{name} {'up' if up else RED + 'DOWN' + RESET}"
        for name, up in sorted(view["connections"].items())
    ]
    forwarder = view["forwarder"]
    shown = {"up": "up", "idle": DIM + "idle" + RESET, "down": RED + "DOWN" + RESET}
    links.append("forwarder " + ("-" if forwarder is None else shown[forwarder]))
    lines += [
        "",
        f"{BOLD}links{RESET}   " + "   ".join(links),
        f"{BOLD}outbox{RESET}  {view['outbox_depth']} waiting, {view['dead_letters']} dead letters",
        "",
        f"{BOLD}work orders at MaintainX{RESET}",
    ]
    if not view["work_orders"]:
        lines.append(f"  {DIM}(none yet){RESET}")
    for wo in view["work_orders"]:
        lines.append(f"  #{wo['id']:<5} {wo['priority'] or '':<7} {wo['title']}")
    lines += ["", f"{BOLD}alarm events{RESET}"]
    for event in view["events"]:
        who = event["rule"] or event["sensor"] or "site"
        lines.append(
            f"  {event['time'][11:19]} {event['kind']:<10} {who} {event['priority'] or ''}"
        )
    lines += ["", f"{BOLD}scenario{RESET}"]
    lines += [f"  {step}" for step in view["steps"]]
    text = "\n".join(lines)
    if not colour:
        for code in (BOLD, DIM, RED, GREEN, YELLOW, RESET):
            text = text.replace(code, "")
    return text


def summary(view: dict[str, Any], duration_s: float, log_path: str | None) -> str:
    """The closing summary (plain text)."""
    work_orders = view["work_orders"]
    lines = [
        "",
        f"Demo finished after {duration_s:.0f} s.",
        f"  work orders created at MaintainX: {len(work_orders)}",
    ]
    lines += [f"    #{wo['id']} [{wo['priority']}] {wo['title']}" for wo in work_orders]
    lines += [
        f"  alerts still in the outbox: {view['outbox_depth']}"
        f" (dead letters: {view['dead_letters']})",
        "  final rule states: "
        + ", ".join(f"{rule}={state}" for rule, state in sorted(view["rules"].items())),
    ]
    if log_path:
        lines.append(f"  the agent's log: {log_path}")
    lines.append(
        "Next: `edge-agent validate configs/demo/site.yaml`, then write your own site file "
        "(configs/examples/)."
    )
    return "\n".join(lines)
