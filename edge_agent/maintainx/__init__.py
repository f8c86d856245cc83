"""MaintainX, shared by both applications: the client, its errors and rate pacing, the
durable alert → work order ledger, and the sync logic that turns alarm events into API calls.

The site's direct forwarder (``forwarders/maintainx/``) and the hub's consumer both stand on
this package; it imports neither of them, nor any other stage (a contract in pyproject.toml).
"""

from __future__ import annotations

from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.errors import (
    BadRequest,
    CredentialsRejected,
    MaintainXError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    TransientError,
)
from edge_agent.maintainx.ledger import SqliteLedger, ThreadedLedger, WorkOrderLedger
from edge_agent.maintainx.sync import SyncResult, apply_alert

__all__ = [
    "BadRequest",
    "CredentialsRejected",
    "MaintainXClient",
    "MaintainXError",
    "NotFound",
    "OutcomeUnknown",
    "RateLimited",
    "SqliteLedger",
    "SyncResult",
    "ThreadedLedger",
    "TransientError",
    "WorkOrderLedger",
    "apply_alert",
]
