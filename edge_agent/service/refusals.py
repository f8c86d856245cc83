"""Which held alerts the outbox has refused already, so each is counted refused once.

While the outbox is full the rules keep the alerts it refused and offer them again every
second (and with every new event): counting each refusal would count the same ten alerts
910 times. ``edge_agent_outbox_refused_total`` counts alert events refused (once each);
``edge_agent_outbox_retries_total`` counts the attempts to store alerts refused before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _key(message: Any) -> object:
    """An alert message's identity: its event id (every rendered alert has one)."""
    event_id = message.get("event_id") if isinstance(message, Mapping) else None
    return event_id if isinstance(event_id, str) else id(message)


class RefusedAlerts:
    """The held alerts the outbox refused. Holds no more keys than alerts are held."""

    def __init__(self) -> None:
        self._refused: set[object] = set()

    def is_retry(self, pending: Sequence[Any]) -> bool:
        """Whether storing ``pending`` (all the held alerts) offers a refused one again.
        Forgets the refused alerts no longer held (stored or rejected since)."""
        keys = {_key(message) for message in pending}
        self._refused &= keys
        return bool(self._refused)

    def newly_refused(self, pending: Sequence[Any]) -> int:
        """The outbox refused ``pending`` (the alerts still held): how many of them it
        refused for the first time."""
        keys = {_key(message) for message in pending}
        new = keys - self._refused
        self._refused = keys
        return len(new)
