"""MaintainX: the client, the durable alert → work order ledger, the sync logic that turns
alarm events into API calls, and the forwarder that drains the outbox through them.

The client, ledger and sync modules know nothing about the site agent, so the hub reuses
them unchanged.
"""

from __future__ import annotations

from edge_agent.forwarders.maintainx.client import MaintainXClient
from edge_agent.forwarders.maintainx.errors import (
    BadRequest,
    CredentialsRejected,
    MaintainXError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    TransientError,
)
from edge_agent.forwarders.maintainx.ledger import (
    AbandonableLedger,
    SqliteLedger,
    WorkOrderLedger,
)
from edge_agent.forwarders.maintainx.sync import SyncResult, apply_alert

__all__ = [
    "AbandonableLedger",
    "BadRequest",
    "CredentialsRejected",
    "MaintainXClient",
    "MaintainXError",
    "NotFound",
    "OutcomeUnknown",
    "RateLimited",
    "SqliteLedger",
    "SyncResult",
    "TransientError",
    "WorkOrderLedger",
    "apply_alert",
]
