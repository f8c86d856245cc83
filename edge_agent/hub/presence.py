"""When the hub last heard from each site, and which unconfigured sites talk to it.

"Last seen" is the last message of any kind from the site (status or alert), in the site's
own time where the message carries one (``time``): after a hub restart, the retained status
of a site that went offline yesterday still says yesterday. A message without a time counts
at its arrival, except a retained one (the broker kept it; the hub reading it says nothing
about the site). A time ahead of the hub's clock counts as now: a site whose clock runs fast
must not look alive for ever.

A site silent for longer than its ``quiet_after`` is *quiet*.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any, Final

from edge_agent.wire.alert import WireError, wire_time_ns

log = logging.getLogger(__name__)

MAX_UNKNOWN_SITES: Final = 100
"""Distinct unknown site ids remembered; the rest are counted under :data:`OTHER`."""
OTHER: Final = "(other)"


def message_time_ns(data: Any) -> int | None:
    """The ``time`` a site's JSON message carries, or None (absent, or not a valid time)."""
    if not isinstance(data, dict):
        return None
    try:
        return wire_time_ns(data.get("time"))
    except WireError:
        return None


def status_state(payload: bytes) -> tuple[str, int | None]:
    """A status message (``online``, ``{"state": "online", "time": ...}`` or the older
    ``{"status": ...}``) → (``online``/``offline``/``unknown``, its time or None)."""
    text = payload[:4096].decode("utf-8", "replace").strip()
    state, at = text, None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            state = str(data.get("state") or data.get("status") or "")
            at = message_time_ns(data)
    state = state.lower()
    return (state if state in ("online", "offline") else "unknown"), at


def seen_at(at_ns: int | None, now_ns: int, *, retained: bool) -> int | None:
    """When a message says the site was last heard of (None: it says nothing)."""
    if at_ns is None:
        return None if retained else now_ns
    return min(at_ns, now_ns)


def is_quiet(last_seen_ns: int, since_ns: int, now_ns: int, quiet_after_ns: int) -> bool:
    """Silent for longer than ``quiet_after``; a site never heard of counts from
    ``since_ns`` (the hub's start)."""
    return now_ns - (last_seen_ns or since_ns) > quiet_after_ns


class UnknownSites:
    """Site ids seen on the wire that the hub file does not configure: counted per id
    (bounded), each logged once."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def seen(self, site: str, what: str) -> None:
        key = site if site in self.counts or len(self.counts) < MAX_UNKNOWN_SITES else OTHER
        if key not in self.counts:
            log.warning(
                "Messages from a site this hub does not serve (logged once per site); "
                "add it to the hub file or fix the agent's site id.",
                extra={"site": key, "first": what},
            )
        self.counts[key] += 1
