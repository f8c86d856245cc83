"""Alerts the outbox did not take yet: a bounded, ordered hold beside the rules.

At the outbox's cap, on a full disk or while outbox writes fail, the rules keep polling and
evaluating: their alert messages wait here, in order, and are saved with the rule state
(``RuleStateStore.pending_messages``), so a restart loses none of them. The rules loop
offers them to the outbox again every ``retry`` seconds; nothing waits for that in between.

The hold is bounded (``storage.max_held_alerts``). When it is full the *newest* messages are
dropped, never the held ones: the held ones are a complete, ordered beginning of the
history (an episode's activation before its escalation and its clearing), the oldest are
the alarms left unattended the longest, and every one of them already has its place in the
rule state. Dropping the oldest would deliver clearings and escalations of episodes whose
activation was lost. A drop is logged (ERROR, with the alert ids), counted
(``edge_agent_alerts_dropped_total``) and said in ``/readyz``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

log = logging.getLogger(__name__)

HoldReason = Literal["cap", "disk", "error"]

REASON_TEXT: Final[dict[str, str]] = {
    "cap": "the outbox is at its cap, storage.max_bytes",
    "disk": "the disk is full",
    "error": "outbox writes fail",
}


@dataclass
class AlertHold:
    """Why alerts are held, when to offer them again, and how many were dropped."""

    limit: int
    reason: HoldReason | None = None
    dropped: int = 0
    """Messages dropped because the hold was full (since start)."""
    _retry_at: float = 0.0

    def admit(self, held: list[Any], new: list[Any]) -> list[Any]:
        """``held`` followed by as many of ``new`` as the limit leaves room for; the rest
        are dropped (logged and counted)."""
        room = max(0, self.limit - len(held))
        kept, dropped = new[:room], new[room:]
        if dropped:
            self.dropped += len(dropped)
            log.error(
                "Too many alerts held for the outbox; the newest are dropped.",
                extra={
                    "dropped": len(dropped),
                    "dropped_total": self.dropped,
                    "held": len(held) + len(kept),
                    "max_held_alerts": self.limit,
                    "reason": self.reason,
                    "alert_ids": sorted({str(m.get("alert_id")) for m in dropped}),
                },
            )
        return [*held, *kept]

    def due(self) -> bool:
        """Time to offer the held alerts to the outbox again (monotonic clock)."""
        return time.monotonic() >= self._retry_at

    def wait(self, reason: HoldReason, pause_s: float) -> None:
        """The outbox refused them for ``reason``: offer them again in ``pause_s``."""
        self.reason = reason
        self._retry_at = time.monotonic() + pause_s

    def clear(self) -> None:
        """Nothing is held any more."""
        self.reason = None
        self._retry_at = 0.0

    def readiness_reason(self, held: int, detail: str) -> str:
        """The ``/readyz`` reason while ``held`` alerts wait (``detail``: sizes, error)."""
        why = REASON_TEXT.get(self.reason or "cap", "the outbox refuses them")
        text = f"polling continues, {held} alerts held: {why}"
        if detail:
            text += f" ({detail})"
        if self.dropped:
            text += (
                f"; {self.dropped} alerts dropped since start because more than "
                f"{self.limit} were held (storage.max_held_alerts)"
            )
        return text
