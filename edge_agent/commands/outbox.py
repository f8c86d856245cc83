"""``edge-agent outbox SITE.yaml status|list|dead|retry|purge|recover``: the disk outbox.

The outbox lives in ``<storage.path>/outbox`` (or ``<--state-dir>/outbox``). ``status``
prints depth, bytes, the cap, the age of the oldest event, the events sent and awaiting the
hub's confirmation (with the age of the oldest), the hub presence the agent last saw and the
dead letters per reason;
``list`` the queued events; ``dead`` the dead letters with their reasons; ``retry`` moves
dead letters back to the end of the queue, with the site file's current asset mapping
(so a letter refused for a wrong asset is fixed in the site file, then retried);
``purge`` deletes the dead letters and asks for ``--yes``; ``recover`` salvages the events
of damaged outboxes the agent set aside (``outbox.damaged-<time>``) into the live one and
clears the readiness reason. ``--plant`` does the same on the plant-data outbox
(``<storage.path>/plant-outbox``: meter readings and asset status changes, docs/meters.md);
a dead letter of an asset with no ``maintainx_id`` is retried once the site file has it.
``--json`` prints
machine-readable output. Safe while the agent runs: each change is one SQLite transaction,
and the running agent counts the store itself at every ``/metrics`` and ``/readyz`` call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.config.models import SiteConfig
    from edge_agent.outbox import Outbox

ACTIONS = ("status", "list", "dead", "retry", "purge", "recover")
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, help="the site file (its storage section)")
    parser.add_argument("action", choices=ACTIONS, help="what to do")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--yes", action="store_true", help="confirm purge")
    parser.add_argument(
        "--id", dest="ids", type=int, action="append", help="retry only this dead letter"
    )
    parser.add_argument("--limit", type=int, default=50, help="list at most this many events")
    parser.add_argument(
        "--plant",
        action="store_true",
        help="the plant-data outbox (meter readings, asset downtime) instead of the alarms'",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="override storage.path of the site file"
    )


def run(args: argparse.Namespace) -> int:
    from edge_agent.common.schema_version import NewerFormatError
    from edge_agent.config.diagnostics import ConfigError
    from edge_agent.config.loader import load_site
    from edge_agent.config.state_dir import state_dir_of, state_left_behind
    from edge_agent.outbox import Outbox, OutboxError
    from edge_agent.service.secret_scan import register_config_secrets

    if args.action == "purge" and not args.yes:
        print(
            "edge-agent outbox: purge deletes every dead letter for good; "
            "run again with --yes to confirm",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        config = load_site(args.site)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"edge-agent outbox: cannot read {args.site}: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR
    # Dead-letter reasons quote remote error bodies: hide this site's secrets in them.
    register_config_secrets(config, args.site.absolute().parent)
    state_dir = args.state_dir if args.state_dir is not None else state_dir_of(config, args.site)
    left_behind = None if args.state_dir is not None else state_left_behind(config, args.site)
    if left_behind is not None:
        print(
            f"edge-agent outbox: note: storage.path is relative to the site file's folder "
            f"({state_dir}); {left_behind.absolute()} is not used",
            file=sys.stderr,
        )
    directory = state_dir / ("plant-outbox" if args.plant else "outbox")
    if not directory.is_dir():
        print(f"edge-agent outbox: no outbox at {directory} (has the agent run?)", file=sys.stderr)
        return EXIT_ERROR
    # ``retry`` re-applies the site file's current asset mapping (see :func:`_retry`).
    args.site_config = config
    try:
        with Outbox.open(directory, config.storage.max_bytes) as outbox:
            return _ACTIONS[args.action](outbox, args, directory)
    except (OutboxError, NewerFormatError) as exc:
        print(f"edge-agent outbox: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _emit(args: argparse.Namespace, document: Any, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print("\n".join(lines))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{seconds:.1f}s"


def _summary(payload: Any) -> str:
    """One line naming an alert event (falls back to the keys of an unknown payload)."""
    if not isinstance(payload, dict):
        return "-"
    if "meter" in payload or "status" in payload:  # plant data (wire/plant.py)
        keys: tuple[str, ...] = ("meter", "value", "time", "status", "started_at")
        return " ".join(str(payload[key]) for key in keys if key in payload)
    parts = [str(payload[key]) for key in ("event", "rule", "alert_id") if key in payload]
    return " ".join(parts) if parts else ",".join(sorted(payload))[:60]


REASON_CHARS = 100
"""Dead-letter reasons are grouped (and shown) by their first characters in ``status``."""


def _reason_counts(outbox: Outbox) -> list[tuple[str, int]]:
    """Dead letters per reason, most frequent first."""
    counts: dict[str, int] = {}
    for letter in outbox.dead_letters():
        reason = letter.reason[:REASON_CHARS]
        counts[reason] = counts.get(reason, 0) + 1
    return sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))


def _status(outbox: Outbox, args: argparse.Namespace, directory: Path) -> int:
    stats = outbox.stats()
    reasons = _reason_counts(outbox) if stats.dead else []
    share = 100.0 * stats.bytes / stats.cap_bytes if stats.cap_bytes else 0.0
    awaiting = outbox.awaiting_stats()
    hub = _hub_presence(outbox)
    document = {
        "path": str(directory),
        "depth": stats.depth,
        "bytes": stats.bytes,
        "cap_bytes": stats.cap_bytes,
        "oldest_age_s": stats.oldest_age_s,
        "awaiting_hub": awaiting.count,
        "awaiting_hub_oldest_age_s": awaiting.oldest_age_s,
        "hub": hub,
        "dead": stats.dead,
        "dead_reasons": [{"reason": reason, "count": count} for reason, count in reasons],
    }
    lines = [
        f"outbox:       {directory}",
        f"queued:       {stats.depth} event(s)",
        f"bytes:        {stats.bytes:,} of {stats.cap_bytes:,} ({share:.1f}%)",
        f"oldest:       {_age(stats.oldest_age_s)}",
        f"sent, awaiting the hub: {awaiting.count} event(s), oldest sent "
        f"{_age(awaiting.oldest_age_s)} ago",
        f"hub:          {hub['summary']}",
        f"dead letters: {stats.dead}",
    ]
    lines += [f"  {count:>6} × {reason}" for reason, count in reasons]
    _emit(args, document, lines)
    return EXIT_OK


def _hub_presence(outbox: Outbox) -> dict[str, Any]:
    """The hub presence the agent last saw (kept in the outbox by the MQTT forwarder)."""
    note = outbox.note("hub")
    if note is None:
        return {"state": None, "since": None, "summary": "no hub presence recorded"}
    state = str(note.get("state"))
    since = note.get("time") if isinstance(note.get("time"), int | float) else None
    age = _age(time.time() - since) if since is not None else "-"
    summary = {
        "online": f"online for {age}",
        "offline": f"offline for {age}: the agent holds its events until a hub is online",
        "unknown": "hub presence unknown (no hub status seen): resending on timeout",
    }.get(state, state)
    return {"state": state, "since": since, "summary": summary}


def _list(outbox: Outbox, args: argparse.Namespace, directory: Path) -> int:
    items = outbox.peek(max(0, args.limit))
    document = [
        {"id": item.id, "attempts": item.attempts, "payload": dict(item.payload)} for item in items
    ]
    lines = [f"{'ID':>8}  {'ATTEMPTS':>8}  EVENT"]
    lines += [f"{i.id:>8}  {i.attempts:>8}  {_summary(i.payload)}" for i in items]
    if not items:
        lines = ["the outbox is empty"]
    _emit(args, document, lines)
    return EXIT_OK


def _dead(outbox: Outbox, args: argparse.Namespace, directory: Path) -> int:
    letters = outbox.dead_letters()
    now = time.time()
    document = [
        {
            "id": d.id,
            "reason": d.reason,
            "attempts": d.attempts,
            "dead_at": d.dead_at,
            "payload": dict(d.payload),
            "raw": dict(d.raw) if d.raw is not None else None,
        }
        for d in letters
    ]
    lines = [f"{'ID':>8}  {'AGE':>8}  REASON"]
    lines += [
        f"{d.id:>8}  {_age(now - d.dead_at):>8}  {d.reason}  [{_summary(d.payload)}]"
        for d in letters
    ]
    if not letters:
        lines = ["no dead letters"]
    _emit(args, document, lines)
    return EXIT_OK


def _retry(outbox: Outbox, args: argparse.Namespace, directory: Path) -> int:
    """Move dead letters back, with the asset mapping of the site file as it is *now*: a
    letter refused for a deleted or wrong MaintainX asset id is fixed by correcting the site
    file and retrying, not by editing stored messages."""
    remapped: list[str] = []

    def current_mapping(payload: dict[str, Any]) -> dict[str, Any]:
        change = _remap_asset(payload, args.site_config)
        if change is not None:
            remapped.append(change)
        return payload

    moved = outbox.retry_dead(args.ids, rewrite=current_mapping)
    lines = [f"moved {moved} dead letter(s) back to the queue"]
    if remapped:
        lines.append(f"re-applied the site file's asset mapping to {len(remapped)} of them:")
        lines += [f"  {change}" for change in sorted(set(remapped))]
    _emit(args, {"retried": moved, "remapped": len(remapped)}, lines)
    return EXIT_OK


def _remap_asset(payload: dict[str, Any], config: SiteConfig) -> str | None:
    """Set ``payload["asset"]``'s MaintainX id and ``payload["work_order"]``'s location to
    the site file's mapping for its asset id; what changed
    (``P-101: maintainx_id 987654 → 1001``), or None."""
    asset = payload.get("asset")
    if not isinstance(asset, dict):
        return None
    configured = config.assets.get(str(asset.get("id")))
    if configured is None:
        return None
    changes: list[str] = []
    old = asset.get("maintainx_id")
    if old != configured.maintainx_id:
        payload["asset"] = {**asset, "maintainx_id": configured.maintainx_id}
        changes.append(f"maintainx_id {old} → {configured.maintainx_id}")
    # A work order's location comes from the asset too (``assets.*.location_id``): a letter
    # refused for a deleted location is fixed the same way.
    work_order = payload.get("work_order")
    if isinstance(work_order, dict):
        stored = work_order.get("location_id")
        if stored != configured.location_id:
            updated = {k: v for k, v in work_order.items() if k != "location_id"}
            if configured.location_id is not None:
                updated["location_id"] = configured.location_id
            payload["work_order"] = updated
            changes.append(f"location_id {stored} → {configured.location_id}")
    if not changes:
        return None
    return f"{asset.get('id')}: {', '.join(changes)}"


def _purge(outbox: Outbox, args: argparse.Namespace, directory: Path) -> int:
    deleted = outbox.purge()
    _emit(args, {"purged": deleted}, [f"deleted {deleted} dead letter(s)"])
    return EXIT_OK


def _recover(outbox: Outbox, args: argparse.Namespace, directory: Path) -> int:
    from edge_agent.outbox.salvage import recover

    reports = recover(outbox)
    document = [
        {
            "source": r.source,
            "queued": r.queued,
            "dead": r.dead,
            "already_imported": r.already_imported,
            "unreadable": r.unreadable,
        }
        for r in reports
    ]
    lines = []
    for r in reports:
        lines.append(
            f"{r.source}: {r.queued} event(s) back in the queue, {r.dead} dead letter(s), "
            f"{r.already_imported} imported by an earlier run, {len(r.unreadable)} unreadable"
        )
        lines += [f"  unreadable: {what}" for what in r.unreadable]
    if not reports:
        lines = ["no damaged outbox awaits recovery"]
    _emit(args, document, lines)
    return EXIT_OK


_ACTIONS = {
    "status": _status,
    "list": _list,
    "dead": _dead,
    "retry": _retry,
    "purge": _purge,
    "recover": _recover,
}
