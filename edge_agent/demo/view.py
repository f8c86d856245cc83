"""The demo's live terminal view and its closing summary: plain text and ANSI redraws.

``snapshot`` reads the running agent and the emulator into a plain dict; ``render`` turns
that into the screen (pure, so it is easy to test and to print without a terminal).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path
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
STATE_MEANING = {
    "NORMAL": "",
    "PENDING": "over the limit, waiting out on_delay",
    "ACTIVE": "alarm raised: its alert goes to a work order",
    "CLEARING": "back within limits, waiting out off_delay",
}


def snapshot(service: Any, emulator: Any, elapsed_s: float, steps: list[str]) -> dict[str, Any]:
    """What the view shows, read from the live agent (``Service``) and the emulator."""
    agent = service.agent
    config = agent.config
    stale = set(agent.engine.stale_sensors()) if agent.engine is not None else set()
    started_ns = time.time_ns() - int(elapsed_s * 1e9)
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
                "stale": sensor_id in stale,
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
        "forwarder": None if forwarder is None else _forwarder_view(forwarder.status),
        "forwarding_to": _destination(config),
        "outbox_depth": stats.get("depth", 0),
        "dead_letters": stats.get("dead", 0),
        "events": [
            {
                "time": format_time_ns(e.time_ns),
                "at_s": (e.time_ns - started_ns) / 1e9,
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
        **plant_view(agent, emulator),
    }


def plant_view(agent: Any, emulator: Any) -> dict[str, Any]:
    """Meters and downtime (issue 14): what MaintainX holds of each meter (its latest value,
    its readings, its triggers) and of each asset's status, and what the agent still queues."""
    readings: dict[int, list[dict[str, Any]]] = {}
    for reading in emulator.readings:
        readings.setdefault(reading["meterId"], []).append(reading)
    triggers: dict[int, list[str]] = {}
    for trigger in emulator.store.all_meter_triggers():
        triggers.setdefault(trigger["meterId"], []).append(str(trigger["name"]))
    meters = [
        {
            "name": meter["name"],
            "unit": meter["unit"],
            "value": readings[meter["id"]][-1]["value"] if readings.get(meter["id"]) else None,
            "readings": len(readings.get(meter["id"], [])),
            "triggers": triggers.get(meter["id"], []),
        }
        for meter in emulator.store.all_meters()
    ]
    names = {a.maintainx_id: a.name or key for key, a in agent.config.assets.items()}
    downtime = [
        {
            "asset": names.get(asset_id, f"asset {asset_id}"),
            "status": changes[-1]["status"],
            "downtime_type": changes[-1].get("downtimeType"),
            "changes": len(changes),
        }
        for asset_id, changes in sorted(emulator.store.all_asset_statuses().items())
        if changes
    ]
    plant = getattr(agent, "plant", None)
    depth = None
    if plant is not None and plant.outbox is not None:
        with contextlib.suppress(Exception):
            depth = plant.outbox.stats().depth
    return {"meters": meters, "downtime": downtime, "plant_outbox_depth": depth}


def _destination(config: Any) -> str:
    forwarding = config.forwarding
    if forwarding is None:
        return "nowhere"
    return "the MQTT broker" if forwarding.mode == "mqtt" else "MaintainX"


def _forwarder_view(status: Any) -> dict[str, Any]:
    """``state``: up (its last attempt worked), down (its last attempt failed) or idle
    (nothing sent yet); with the last error and how long ago the last delivery was."""
    if status.connected:
        state = "up"
    elif status.last_error is None and status.sent == status.failed == 0:
        state = "idle"
    else:
        state = "down"
    last = status.last_delivery_ns
    return {
        "state": state,
        "error": status.last_error,
        "last_delivery_s": None if last is None else max(0.0, (time.time_ns() - last) / 1e9),
    }


def _forwarder_line(view: dict[str, Any]) -> str:
    forwarder, target = view["forwarder"], view.get("forwarding_to", "MaintainX")
    if forwarder is None:
        return f"{DIM}not configured: alerts stay in the outbox{RESET}"
    if forwarder["state"] == "down":
        why = f": {forwarder['error']}" if forwarder.get("error") else ""
        return f"to {target} {RED}DOWN{RESET}{why} {DIM}(retrying){RESET}"
    if forwarder["state"] == "idle":
        return f"to {target} {DIM}idle (nothing sent yet){RESET}"
    ago = forwarder.get("last_delivery_s")
    when = "" if ago is None else f" {DIM}(last delivery {ago:.0f} s ago){RESET}"
    return f"to {target} up{when}"


def _value(row: dict[str, Any]) -> str:
    value = row["value"]
    if row["quality"] is None:
        return "-"
    if row["quality"] != "good":
        stale = f" {YELLOW}STALE{RESET} {DIM}(no good reading for stale_after){RESET}"
        return f"{RED}{row['quality'].upper()}{RESET} {DIM}{row['reason'] or ''}{RESET}" + (
            stale if row.get("stale") else ""
        )
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.2f} {row['unit']}"
    return f"{value} {row['unit']}"


def _plant_lines(view: dict[str, Any]) -> list[str]:
    """Meters and downtime beside the work orders (absent: the site has none)."""
    if "meters" not in view:
        return []
    lines = ["", f"{BOLD}meters at MaintainX{RESET}"]
    if not view["meters"]:
        lines.append(f"  {DIM}(none yet){RESET}")
    for meter in view["meters"]:
        value = "-" if meter["value"] is None else f"{meter['value']:.4g} {meter['unit']}"
        pm = f"; triggers: {', '.join(meter['triggers'])}" if meter["triggers"] else ""
        lines.append(
            f"  {meter['name']:<22} {value:<14} {DIM}({meter['readings']} readings{pm}){RESET}"
        )
    lines.append(f"{BOLD}asset downtime at MaintainX{RESET}")
    if not view["downtime"]:
        lines.append(f"  {DIM}(no status change yet){RESET}")
    for asset in view["downtime"]:
        status = asset["status"]
        shown = f"{GREEN}{status}{RESET}" if status == "ONLINE" else f"{RED}{status}{RESET}"
        kind = f" {asset['downtime_type']}" if asset.get("downtime_type") else ""
        lines.append(
            f"  {asset['asset']:<26} {shown}{kind} {DIM}({asset['changes']} changes){RESET}"
        )
    depth = view.get("plant_outbox_depth")
    if depth:
        lines.append(f"  {DIM}{depth} plant data item(s) waiting in the agent{RESET}")
    return lines


def _hub_lines(view: dict[str, Any]) -> list[str]:
    """MQTT mode: what the hub holds because MaintainX did not take it yet."""
    if "hub_parked" not in view:
        return []
    parked = view["hub_parked"]
    held = (
        f"{parked} alert(s) held for MaintainX {DIM}(retried until it answers){RESET}"
        if parked
        else "nothing held for MaintainX"
    )
    return [f"{BOLD}hub{RESET}        {held}"]


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
        meaning = STATE_MEANING.get(state, "")
        shown = f"{state:<10}{DIM}{meaning}{RESET}" if meaning else state
        lines.append(f"  {rule_id:<22} {STATE_COLOURS.get(state, '')}{shown}{RESET}")
    links = [
        f"{name} {'up' if up else RED + 'DOWN' + RESET}"
        for name, up in sorted(view["connections"].items())
    ]
    depth = view["outbox_depth"] or 0
    waiting = f"{depth} alert(s) waiting" if depth else "empty"
    if depth and (view["forwarder"] or {}).get("state") != "up":
        waiting += f" {DIM}(kept on disk until they can be sent){RESET}"
    lines += [
        "",
        f"{BOLD}sources{RESET}    " + "   ".join(links),
        f"{BOLD}forwarder{RESET}  " + _forwarder_line(view),
        f"{BOLD}outbox{RESET}     {waiting}, {view['dead_letters']} dead letters",
        *_hub_lines(view),
        "",
        f"{BOLD}work orders at MaintainX{RESET}",
    ]
    if not view["work_orders"]:
        lines.append(f"  {DIM}(none yet){RESET}")
    for wo in view["work_orders"]:
        lines.append(f"  #{wo['id']:<5} {wo['priority'] or '':<7} {wo['title']}")
    lines += _plant_lines(view)
    lines += ["", f"{BOLD}alarm events{RESET}"]
    for event in view["events"]:
        who = event["rule"] or event["sensor"] or "site"
        # Seconds since the start, like the scenario below, when known.
        when = f"{event['at_s']:5.1f} s" if "at_s" in event else event["time"][11:19]
        lines.append(f"  {when}  {event['kind']:<10} {who} {event['priority'] or ''}".rstrip())
    lines += ["", f"{BOLD}scenario{RESET}"]
    lines += [f"  {step}" for step in view["steps"]]
    text = "\n".join(lines)
    if not colour:
        for code in (BOLD, DIM, RED, GREEN, YELLOW, RESET):
            text = text.replace(code, "")
    return text


def command_name() -> str:
    """How the person who ran the demo runs the CLI: ``edge-agent`` when that is on PATH,
    else the path they used (``make demo`` runs ``.venv/bin/edge-agent``)."""
    invoked = Path(sys.argv[0])
    on_path = shutil.which("edge-agent")
    if invoked.name != "edge-agent" or (
        on_path is not None and Path(on_path).resolve() == invoked.resolve()
    ):
        return "edge-agent"
    with contextlib.suppress(ValueError):
        return str(invoked.resolve().relative_to(Path.cwd()))
    return str(invoked)


def _plant_summary(view: dict[str, Any]) -> list[str]:
    if "meters" not in view:
        return []
    lines = [
        f"  meters at MaintainX: {len(view['meters'])}",
        *(
            f"    {m['name']}: {m['readings']} readings, last "
            + ("-" if m["value"] is None else f"{m['value']:.4g} {m['unit']}")
            + (f" (triggers: {', '.join(m['triggers'])})" if m["triggers"] else "")
            for m in view["meters"]
        ),
        "  asset status changes at MaintainX: "
        + (
            ", ".join(f"{a['asset']} {a['changes']} (now {a['status']})" for a in view["downtime"])
            or "none"
        ),
    ]
    if view.get("plant_outbox_depth") is not None:
        lines.append(f"  plant data still in its outbox: {view['plant_outbox_depth']}")
    return lines


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
        *(
            [f"  alerts the hub still holds for MaintainX: {view['hub_parked']}"]
            if "hub_parked" in view
            else []
        ),
        *_plant_summary(view),
        "  final rule states: "
        + ", ".join(f"{rule}={state}" for rule, state in sorted(view["rules"].items())),
    ]
    if "CLEARING" in view["rules"].values():
        lines.append("    (CLEARING: back within limits, waiting out off_delay before NORMAL)")
    if log_path:
        lines.append(f"  the agent's log: {log_path} (delete its folder when you are done)")
    lines.append(
        f"Next: `{command_name()} validate configs/demo/site.yaml`, then write your own site "
        "file (configs/examples/)."
    )
    return "\n".join(lines)
