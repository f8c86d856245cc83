"""How long the stores that make delivery idempotent remember what they applied.

The agent's work-order ledger (``workorders.sqlite``) and the hub's event table answer
"already done" for an event id sent again. They are pruned by age, so the retention must be
longer than any window in which the same event can arrive again:

- an agent resends an event the hub has not confirmed after at most ``result_timeout_max``
  (at most :data:`MAX_RESEND_WINDOW_NS`, 24 h) while both are up;
- the MaintainX forwarder redelivers an applied event only after a crash before its ack
  (the outbox lease, 60 s, or the next start).

:data:`MIN_RETENTION_NS` (7 days) is several times the longest of those; the default, 90
days, also covers an agent cut off for weeks whose unconfirmed events come back, and an
alarm episode open for weeks whose clearing still finds its work order.
"""

from __future__ import annotations

from typing import Final

from edge_agent.common.time_units import NS_PER_DAY

MAX_RESEND_WINDOW_NS: Final = NS_PER_DAY
"""The longest ``forwarding.mqtt.result_timeout_max`` an agent accepts."""
MIN_RETENTION_NS: Final = 7 * NS_PER_DAY
DEFAULT_RETENTION_NS: Final = 90 * NS_PER_DAY
MAX_RETENTION_NS: Final = 366 * NS_PER_DAY
"""Every duration in a site file is at most a year (``config.units``)."""
PRUNE_INTERVAL_S: Final = 3600.0
"""How often a running store prunes (and once at start)."""


def check_retention(value_ns: int, setting: str) -> int:
    """``value_ns`` if it is a valid retention, else ValueError naming ``setting``."""
    if value_ns <= MAX_RESEND_WINDOW_NS or value_ns < MIN_RETENTION_NS:
        raise ValueError(
            f"{setting} must be at least 7d: longer than any window in which an event can be "
            "sent again (result_timeout_max is at most 24h), or a resent event would be "
            "applied twice"
        )
    if value_ns > MAX_RETENTION_NS:
        raise ValueError(f"{setting} must be at most 366d")
    return value_ns
