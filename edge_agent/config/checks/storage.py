"""The outbox's byte cap: room for more than one alarm."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document
from edge_agent.config.units import format_size, parse_size

MIN_STORAGE_BYTES: Final = 1000
"""Below this the outbox cannot hold one alert: every alarm would be refused (an error)."""
SMALL_STORAGE_BYTES: Final = 1000**2
"""Below this it holds only minutes of a busy site's alarms (a warning: tests and very small
gateways may mean it)."""


def check_storage_size(doc: Document) -> Iterator[Diagnostic]:
    """`storage.max_bytes: 0B` leaves the outbox no room: every alarm would be refused."""
    raw = doc.get("storage", "max_bytes")
    if raw is None:
        return
    try:
        size = parse_size(raw)
    except ValueError:
        return  # the model reports a malformed size
    if size < MIN_STORAGE_BYTES:
        yield doc.at(
            ("storage", "max_bytes"),
            f"`max_bytes` {format_size(size)} is less than {format_size(MIN_STORAGE_BYTES)}: "
            "the outbox could not hold a single alarm (write e.g. 256MB)",
        )
    elif size < SMALL_STORAGE_BYTES:
        yield doc.at(
            ("storage", "max_bytes"),
            f"`max_bytes` {format_size(size)} is less than {format_size(SMALL_STORAGE_BYTES)}: "
            "the outbox holds only a short outage's alarms (write e.g. 256MB)",
            "warning",
        )
