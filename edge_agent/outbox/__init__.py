"""The durable outbox between the rules and the forwarders (see :mod:`.store`)."""

from edge_agent.outbox.store import (
    DeadLetter,
    Outbox,
    OutboxCorrupt,
    OutboxDamaged,
    OutboxError,
    OutboxFull,
    OutboxStats,
    PayloadRejected,
    PayloadTooLarge,
)

__all__ = [
    "DeadLetter",
    "Outbox",
    "OutboxCorrupt",
    "OutboxDamaged",
    "OutboxError",
    "OutboxFull",
    "OutboxStats",
    "PayloadRejected",
    "PayloadTooLarge",
]
