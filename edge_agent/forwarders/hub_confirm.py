"""Delivery confirmed by the hub: its results, its presence, and when to publish again.

Pure logic, no I/O: :mod:`edge_agent.forwarders.hub_tracking` feeds it the messages of
``{prefix}/{site}/results`` and ``{prefix}/hub/status/+`` and asks it what to resend.

The contract with the hub (docs/outbox.md, "Confirmation by the hub"):

- a result: see :mod:`edge_agent.wire.result` (its reader, ``parse_result``, and the
  hub's writer live there together; the forwarder imports it from there);
- each hub replica keeps a retained ``{"state": "online"|"offline", ...}`` on
  ``{prefix}/hub/status/{replica}``; the hub is online when at least one replica's latest
  state is ``online``, offline when every known replica says ``offline``, and *unknown* when
  none was ever seen (then the agent resends on its timeout as if online).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

# The result's contract (reader and the hub's writer) lives in edge_agent.wire.result.
from edge_agent.wire.alert import SITE_PATTERN
from edge_agent.wire.result import BadMessage, loads_object

REPLICA_ID: Final = re.compile(SITE_PATTERN)  # a replica id has a site id's shape

Presence = Literal["unknown", "online", "offline"]


class HubPresence:
    """The latest retained state of every hub replica seen; see the module doc."""

    def __init__(self) -> None:
        self.replicas: dict[str, str] = {}
        # Asked for every item the drain hands to the window: kept, not recomputed.
        self._state: Presence = "unknown"

    @property
    def state(self) -> Presence:
        return self._state

    def _recompute(self) -> None:
        if not self.replicas:
            self._state = "unknown"
        elif any(state == "online" for state in self.replicas.values()):
            self._state = "online"
        else:
            self._state = "offline"

    def update(self, replica: str, payload: bytes) -> None:
        """Apply one message of ``{prefix}/hub/status/{replica}``; an empty payload (a
        retained message cleared) forgets the replica. Raises :class:`BadMessage`."""
        if not REPLICA_ID.match(replica):
            raise BadMessage("the topic does not end in a valid replica id")
        if not payload:
            self.replicas.pop(replica, None)
            self._recompute()
            return
        data = loads_object(payload)
        state = data.get("state")
        if state not in ("online", "offline"):
            raise BadMessage("state is not online or offline")
        self.replicas[replica] = str(state)
        self._recompute()


@dataclass
class Tracked:
    """An event published (or about to be) and not yet confirmed by the hub.

    ``phase``: ``sending`` (first publish, no PUBACK yet: a failure puts it back in the
    queue), ``awaiting`` (the broker has it; stored as awaiting in the outbox) or
    ``resending`` (awaiting and published again, PUBACK pending). ``body`` is what is
    published (the same bytes every time); ``first_sent`` and ``due`` are on the forwarder's
    monotonic clock; ``step`` counts timeouts since the last hub (re)appearance.
    """

    item_id: int
    event_id: str
    alert_id: str
    phase: Literal["sending", "awaiting", "resending"]
    body: bytes = b""
    first_sent: float = 0.0
    due: float = 0.0
    step: int = 0


def result_timeout_s(step: int, initial_s: float, max_s: float) -> float:
    """How long to wait for a result after the ``step``-th publish (0 for the first):
    ``initial_s`` doubling up to ``max_s``."""
    return min(max_s, initial_s * 2.0 ** min(step, 62))
