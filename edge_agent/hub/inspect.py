"""``edge-agent hub HUB.yaml sites`` and ``parked [--site S]``: what an operator asks while
the hub runs.

Parked events come from the store (shared by every replica, readable while they run). A
site's presence, last seen, credentials and block live in the running replica: they are
read from its ``/readyz`` (``health.listen``); when no replica answers there, those columns
say so instead of guessing.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Final

from edge_agent.alerts import format_time_ns
from edge_agent.common.listen import parse_listen
from edge_agent.hub.config import HubConfig
from edge_agent.hub.store import HubStore, ParkedEvent

READYZ_TIMEOUT_S: Final = 3.0
# The replica is on this host: an operator's http_proxy / HTTP_PROXY must not carry the call.
_DIRECT: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MAX_PARKED_SHOWN: Final = 1000


def live_sites(config: HubConfig) -> tuple[dict[str, Any] | None, str | None]:
    """The running replica's ``/readyz`` sites, or (None, why not)."""
    host, port = parse_listen(config.health.listen)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/readyz"
    try:
        with _DIRECT.open(url, timeout=READYZ_TIMEOUT_S) as response:
            body = response.read(1 << 20)
    except urllib.error.HTTPError as exc:  # 503 still carries the sites
        body = exc.read(1 << 20)
    except (OSError, ValueError) as exc:
        return None, f"no hub answers at {config.health.listen} ({type(exc).__name__})"
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, f"{config.health.listen} did not answer JSON"
    sites = data.get("sites") if isinstance(data, dict) else None
    if not isinstance(sites, dict):
        return None, f"{config.health.listen} answered without sites"
    return sites, None


def sites_report(config: HubConfig, store: HubStore) -> dict[str, Any]:
    """``{"hub_reachable", "note", "sites": {site: {...}}}`` for every configured site."""
    parked = store.pending_counts()
    live, why = live_sites(config)
    sites: dict[str, Any] = {}
    for site_id in config.sites:
        entry = (live or {}).get(site_id) or {}
        sites[site_id] = {
            "presence": entry.get("presence"),
            "last_seen": entry.get("last_seen"),
            "quiet": entry.get("quiet"),
            "credentials": entry.get("credentials"),
            "blocked": entry.get("blocked"),
            "block_reason": entry.get("block_reason"),
            "parked": parked.get(site_id, 0),
        }
    return {"hub_reachable": live is not None, "note": why, "sites": sites}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(header: Sequence[str], lines: Sequence[tuple[str, ...]], empty: str) -> str:
    widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    if not lines:
        out.append(empty)
    return "\n".join(out)


def sites_table(report: dict[str, Any]) -> str:
    header = ("SITE", "PRESENCE", "LAST SEEN", "QUIET", "CREDENTIALS", "BLOCKED", "PARKED")
    lines = []
    for site_id, s in report["sites"].items():
        blocked = _cell(s["blocked"])
        if s["blocked"] and s["block_reason"]:
            blocked = f"yes ({s['block_reason']})"
        lines.append(
            (
                site_id,
                _cell(s["presence"]),
                _cell(s["last_seen"]),
                _cell(s["quiet"]),
                _cell(s["credentials"]),
                blocked,
                str(s["parked"]),
            )
        )
    text = table(header, lines, "(no sites configured)")
    if report["note"]:
        text += f"\n{report['note']}: presence, credentials and blocked unknown"
    return text


def parked_rows(store: HubStore, site: str | None) -> list[ParkedEvent]:
    return store.parked(site, MAX_PARKED_SHOWN)


def parked_json(rows: list[ParkedEvent]) -> str:
    return json.dumps(
        {"parked": [asdict(r) | {"received": format_time_ns(r.received_ns)} for r in rows]},
        indent=2,
    )


def parked_table(rows: list[ParkedEvent]) -> str:
    now_ns = time.time_ns()
    header = ("SITE", "EVENT ID", "ALERT ID", "PARKED FOR", "ATTEMPTS", "REASON")
    lines = [
        (
            r.site,
            r.event_id,
            r.alert_id,
            f"{max(0, now_ns - r.received_ns) / 1e9:.0f}s",
            str(r.attempts),
            r.reason,
        )
        for r in rows
    ]
    text = table(header, lines, "(nothing parked)")
    if len(rows) >= MAX_PARKED_SHOWN:
        text += f"\n(the oldest {MAX_PARKED_SHOWN} shown)"
    return text
