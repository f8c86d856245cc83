"""The state-and-outbox handover: alert messages are made durable with the rule state that
produced them, then handed to the outbox, without ever making the rules wait.

One atomic write of the state file carries the new state and the alert messages not yet in
the outbox (``pending_messages``); then the messages go into the outbox. A crash between the
two finds them in the state file at start-up and queues them again with the same event and
alert ids (downstream deduplicates those). Saving the state after the outbox instead would
reopen the episode under a new alert id after such a crash: a second work order.

A full outbox (cap or disk) or a failing one never stops the rules: their alert messages
wait in a bounded, ordered hold (:mod:`edge_agent.service.held_alerts`) and are offered
again when due, while polling and evaluation go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from edge_agent.service.held_alerts import AlertHold

if TYPE_CHECKING:
    from edge_agent.outbox.store import Outbox
    from edge_agent.rules import RuleEngine, RuleStateStore
from edge_agent.service.refusals import RefusedAlerts

# The agent's logger name from before this module was split out of the pipeline: operators
# and their log filters know it.
log = logging.getLogger("edge_agent.service.pipeline")

OUTBOX_RETRY_S: Final = 1.0
"""How often alerts held by a full outbox are offered again (the forwarder may have drained
it); the rules go on meanwhile."""
OUTBOX_RETRY_MAX_S: Final = 30.0
"""The longest wait between retries after an outbox write error (doubling from 1 s)."""


@dataclass
class PipelineCounters:
    """What the pipeline itself counts (the stages count their own)."""

    readings: dict[str, int] = field(default_factory=lambda: {"good": 0, "uncertain": 0, "bad": 0})
    unknown_sensor_readings: int = 0
    alarm_events: int = 0
    activations: dict[str, int] = field(default_factory=dict)
    alerts_queued: int = 0
    outbox_refused: int = 0
    """Alert events the outbox refused, each counted once however often it is retried."""
    outbox_retries: int = 0
    """Attempts to store alerts the outbox had refused before."""
    alerts_rejected: int = 0
    outbox_write_errors: int = 0
    """Outbox writes that failed for another reason than a full outbox (locked, I/O)."""
    alerts_recovered: int = 0
    """Alerts found in the rule state at start-up (a crash before the outbox had them)."""
    rule_errors: int = 0
    """Engine calls that raised outside any one rule (per-rule errors: ``engine.faults``)."""
    state_save_errors: int = 0


class OutboxHandover:
    """Moves ``rule_store.pending_messages`` into the outbox and saves the rule state.

    Built with the agent (health reads the hold before anything starts); :meth:`attach`
    gives it the stores once they are open. ``wake`` is called after every successful put
    (the forwarder then looks at once instead of at its next idle poll).
    """

    def __init__(
        self, counters: PipelineCounters, max_held_alerts: int, wake: Callable[[], None]
    ) -> None:
        self.counters = counters
        self.hold = AlertHold(max_held_alerts)
        # Alerts waiting to enter the outbox, full or failing (the rules go on meanwhile).
        self.holding_alerts = 0
        # Why the last outbox write failed, if it did and no write succeeded since
        # (not set for a full outbox: that is ``holding_alerts`` and the outbox's own flag).
        self.outbox_write_error: str | None = None
        self._wake = wake
        self._refused = RefusedAlerts()
        self._error_pause = OUTBOX_RETRY_S
        self.outbox: Outbox | None = None
        self.rule_store: RuleStateStore | None = None
        self.engine: RuleEngine | None = None

    def attach(self, outbox: Outbox, rule_store: RuleStateStore, engine: RuleEngine) -> None:
        """The stores opened at start."""
        self.outbox = outbox
        self.rule_store = rule_store
        self.engine = engine

    def rule_state(self) -> RuleStateStore:
        """The rule state store: every caller runs after ``attach`` (at start)."""
        if self.rule_store is None:
            raise RuntimeError("the rule state is used before the agent opened it")
        return self.rule_store

    def _outbox(self) -> Outbox:
        if self.outbox is None:
            raise RuntimeError("the outbox is used before the agent opened it")
        return self.outbox

    @property
    def pending(self) -> bool:
        """Whether alert messages wait for the outbox."""
        return bool(self.rule_store is not None and self.rule_store.pending_messages)

    def admit(self, messages: list[dict[str, Any]]) -> None:
        """Make ``messages`` durable with the rule state, in one atomic write (the rules
        loop hands them to the outbox next). While the outbox refuses, the hold is bounded
        (see held_alerts); otherwise a burst goes whole to the outbox first."""
        store = self.rule_state()
        held = list(store.pending_messages)
        if self.hold.reason is None:
            store.pending_messages = [*held, *messages]
        else:
            store.pending_messages = self.hold.admit(held, messages)
        self.holding_alerts = len(store.pending_messages)
        self.save_rule_state(force=True)

    def recover(self) -> None:
        """Queue the alerts a crash left in the rule state (saved, not yet in the outbox)."""
        pending = list(self.rule_store.pending_messages) if self.rule_store is not None else []
        if not pending:
            return
        self.counters.alerts_recovered += len(pending)
        log.warning(
            "Queuing alerts saved with the rule state before the agent stopped.",
            extra={
                "alerts": len(pending),
                "alert_ids": sorted({str(m.get("alert_id")) for m in pending}),
            },
        )
        self.holding_alerts = len(pending)

    async def hand_over(self) -> None:
        """Offer ``rule_store.pending_messages`` to the outbox once; on success they leave
        the state file with its next save. Nothing the outbox raises ends the rules task,
        and nothing here waits for room (the rules loop offers them again when due):

        - full (cap or disk): held, offered again every ``OUTBOX_RETRY_S``;
        - an alert that can never be stored (too large, not JSON): counted, logged and
          dropped (see :meth:`_put_pending`);
        - any other error (a locked store, I/O): counted, logged with the reason and offered
          again after a doubling pause; the messages stay held (and saved with the rule state).
        """
        from edge_agent.outbox.store import OutboxError, OutboxFull

        store = self.rule_state()
        messages = list(store.pending_messages)
        self.counters.outbox_retries += self._refused.is_retry(messages)
        try:
            await self._put_pending(messages)
        except OutboxFull as exc:
            self._error_pause = OUTBOX_RETRY_S
            self.outbox_write_error = None
            first = self.hold.reason is None
            self.hold.wait("disk" if exc.disk_full else "cap", OUTBOX_RETRY_S)
            # Each refused alert event counted once, however often it is offered again;
            # the outbox logs every refusal itself.
            held = store.pending_messages
            self.counters.outbox_refused += self._refused.newly_refused(held)
            if first:
                log.error(
                    "Outbox is full; polling continues, alerts are held until it has room.",
                    extra={
                        "alerts": len(store.pending_messages),
                        "reason": self.hold.reason,
                        "max_held_alerts": self.hold.limit,
                    },
                )
        except Exception as exc:
            # OutboxError is the expected kind; anything else is a bug below us, but
            # must not cost the alerts or stop the rules either.
            pause = self._error_pause
            self._error_pause = min(pause * 2, OUTBOX_RETRY_MAX_S)
            self.hold.wait("error", pause)
            self.counters.outbox_write_errors += 1
            self.outbox_write_error = str(exc) or type(exc).__name__
            log.error(
                "Outbox write failed; the alerts stay with the rule state and are retried.",
                extra={
                    "error": self.outbox_write_error,
                    "error_type": type(exc).__name__,
                    "alerts": len(store.pending_messages),
                    "retry_in_s": pause,
                },
                exc_info=not isinstance(exc, OutboxError),
            )
        else:
            self._error_pause = OUTBOX_RETRY_S
        if len(store.pending_messages) > self.hold.limit:
            # A burst (or a state saved under a higher limit) larger than the hold.
            store.pending_messages = self.hold.admit([], store.pending_messages)
            self.save_rule_state(force=True)
        self.holding_alerts = len(store.pending_messages)
        if not store.pending_messages:
            # Also when the last of them left through ``_put_one_by_one`` before an error.
            if self.hold.reason is not None:
                log.info("Held alerts are in the outbox; nothing is held any more.")
            self.hold.clear()
            self.outbox_write_error = None

    async def _put_pending(self, messages: list[dict[str, Any]]) -> None:
        """Put ``messages`` (all of ``pending_messages``) in the outbox in one transaction;
        if one of them can never be stored, or they do not all fit under the cap, one at a
        time instead: what fits is stored, the rest waits in order. What was stored or
        rejected leaves ``pending_messages``; raises what else the outbox raised."""
        from edge_agent.outbox.calls import outbox_call
        from edge_agent.outbox.store import OutboxFull, PayloadRejected

        def stored(_ids: object = None) -> None:
            self.rule_state().pending_messages = []
            self._settle_pending()
            self._queued(len(messages))

        try:
            # Cancelled mid-put: the put still ends and is accounted for (``undo``).
            await outbox_call(self._outbox().put_many, messages, undo=stored)
        except PayloadRejected:
            await self._put_one_by_one(messages)
            return
        except OutboxFull:
            if len(messages) == 1:
                raise
            # A burst larger than the room left (even in an empty outbox, under a small
            # cap) must not wait for room it can never get: store what fits.
            await self._put_one_by_one(messages)
            return
        stored()

    def _settle_pending(self) -> None:
        # The state file still lists the messages now in the outbox; the next periodic
        # flush rewrites it. A crash before then queues them again: duplicates with the
        # same event ids, which every forwarder and the hub drop.
        if self.engine is not None:
            self.engine.mark_soft_changed()

    def _queued(self, count: int) -> None:
        self.counters.alerts_queued += count
        # The forwarder idles between outbox polls: a new alert goes out now, not at the
        # next poll.
        self._wake()

    async def _put_one_by_one(self, messages: list[dict[str, Any]]) -> None:
        """Store the messages one at a time; one that can never be stored is rejected
        (logged, counted). Each message leaves ``pending_messages`` once stored or rejected,
        so an error from the outbox (raised: full, I/O) leaves exactly the rest pending."""
        from edge_agent.outbox.calls import outbox_call
        from edge_agent.outbox.store import PayloadRejected

        for index, message in enumerate(messages):
            rest = messages[index + 1 :]

            def stored(_ids: object, rest: list[dict[str, Any]] = rest) -> None:
                self.rule_state().pending_messages = rest

            try:
                await outbox_call(self._outbox().put_many, [message], undo=stored)
            except PayloadRejected as exc:
                self.counters.alerts_rejected += 1
                log.error(
                    "Alert can never be stored in the outbox (too large or not JSON); rejected.",
                    extra={"alert_id": message.get("alert_id"), "error": str(exc)},
                )
            else:
                self._queued(1)
            self.rule_state().pending_messages = rest
            self._settle_pending()

    def save_rule_state(self, *, force: bool = False) -> None:
        """Save the rule state (and the pending messages) if anything changed, or always
        with ``force``."""
        if self.rule_store is None or self.engine is None:
            return
        if force:
            self.engine.mark_changed()
        # The engine logs and counts a failed save and stays dirty: the next flush retries.
        if not self.engine.flush():
            self.counters.state_save_errors += 1
