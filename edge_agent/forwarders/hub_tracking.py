"""What the MQTT forwarder has published and the hub has not confirmed yet (``confirm: hub``).

The bookkeeping behind :mod:`edge_agent.forwarders.mqtt`'s drain with the hub: every event
from its first publish to the hub's result (:class:`~edge_agent.forwarders.hub_confirm.
Tracked`), the resend schedule, the events held behind an earlier event of their alert,
the hub's presence, the counters of :class:`~edge_agent.interfaces.HubConfirmation`, and the
outbox writes that follow from them. No network I/O: the forwarder publishes, feeds the
PUBACKs and the messages of the results and hub-status topics in here, and writes what
:meth:`HubTracking.take_writes` returns with :meth:`HubTracking.write` in a worker thread.
Use on the event loop (``write`` excepted).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from edge_agent.forwarders.hub_confirm import HubPresence, Tracked, result_timeout_s
from edge_agent.interfaces import ForwarderStatus, HubConfirmation, OutboxItem
from edge_agent.outbox.store import AwaitingItem, Outbox, OutboxError
from edge_agent.wire.result import BadMessage, HubResult, parse_result

# The MQTT forwarder's logger: these messages were always its own (operators filter on it).
log = logging.getLogger("edge_agent.forwarders.mqtt")

Writes = tuple[list[int], list[int], list[tuple[int, HubResult, bool]]]
"""PUBACKed first sends (to be stored as awaiting), PUBACKed resends (their new send time)
and the hub's results (with whether the item was stored as awaiting), in the order
:meth:`HubTracking.write` applies them."""

MARK_AWAITING_AFTER_S: Final = 0.5
"""How long a PUBACKed event stays a leased queue item before it is stored as *awaiting
the hub*. A hub that answers sooner (the usual case) confirms it straight from the queue:
one outbox write per event instead of three (issue 16: the move to awaiting and back was
a quarter of the agent's CPU in a confirmed drain). Nothing is lost meanwhile: after a
crash a queued item is sent again exactly like an awaiting one."""


def encode_payload(payload: Any) -> bytes:
    """The wire form of an outbox payload: compact UTF-8 JSON, as stored."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def wire_body(item: OutboxItem) -> bytes:
    """What to publish for a leased item: the bytes the outbox stored when it handed them
    out (the same JSON :func:`encode_payload` would make, without making it again)."""
    return item.body if item.body is not None else encode_payload(item.payload)


def ids_of(item_id: int, payload: Any) -> tuple[str, str]:
    """(event id, alert id) of an outbox payload; an item without an alert id is its own
    alert (nothing to keep in order with)."""
    event_id = payload.get("event_id")
    alert_id = payload.get("alert_id")
    return (
        event_id if isinstance(event_id, str) else f"item-{item_id}",
        alert_id if isinstance(alert_id, str) else f"item-{item_id}",
    )


class HubTracking:
    """Events unconfirmed by the hub, by event id; see the module doc.

    ``status`` is the forwarder's (a rejection is its last error and a dead letter),
    ``hub_status`` the confirmation counters it reports; ``wake`` ends the drain's idle
    wait (a result or a presence change has something to do); ``ids`` reads (event id,
    order key) from a payload (:func:`ids_of` for alerts).
    """

    def __init__(
        self,
        status: ForwarderStatus,
        hub_status: HubConfirmation,
        *,
        results_topic: str,
        timeout_s: float,
        timeout_max_s: float,
        clock: Callable[[], float],
        wake: Callable[[], None],
        mark_after_s: float = MARK_AWAITING_AFTER_S,
        ids: Callable[[int, Any], tuple[str, str]] = ids_of,
    ) -> None:
        self.status = status
        self._ids = ids
        self.hub_status = hub_status
        self.results_topic = results_topic
        self.presence = HubPresence()
        self.held: dict[int, OutboxItem] = {}  # leased, behind an earlier event of its alert
        self._timeout_s = timeout_s
        self._timeout_max_s = timeout_max_s
        self._clock = clock
        self._wake = wake
        self._tracked: dict[str, Tracked] = {}  # event id → event not yet confirmed
        self._event_of: dict[int, str] = {}  # outbox item id → event id, for the PUBACKs
        self._busy_alerts: Counter[str] = Counter()  # alert id → its events tracked
        # PUBACKed first sends not yet stored as awaiting → when PUBACKed (time.monotonic:
        # not the injected clock, which tests stop): stored once MARK_AWAITING_AFTER_S old.
        self._unmarked: dict[int, float] = {}
        self._marked: set[int] = set()  # handed to a write as awaiting (or loaded so)
        self._mark_after_s = mark_after_s
        # No awaiting event is due before this (on the injected clock): due() is asked every
        # cycle and need not look at every tracked event before then.
        self._earliest_due = float("inf")
        self._resent: list[int] = []  # PUBACKed resends: their new send time to be stored
        self._finals: list[tuple[int, HubResult, bool]] = []  # results to write

    # -- what is tracked ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._tracked)

    def knows(self, item_id: int) -> bool:
        """Whether the outbox item is tracked (published, not confirmed)."""
        return item_id in self._event_of

    def is_free(self, event_id: str, alert_id: str) -> bool:
        """Whether an event can be published now: nothing of its alert is unconfirmed."""
        return not (self._busy_alerts[alert_id] or event_id in self._tracked)

    def track(self, tracked: Tracked) -> None:
        if tracked.phase == "awaiting":  # loaded from the outbox: due on its schedule
            self._earliest_due = min(self._earliest_due, tracked.due)
        self._tracked[tracked.event_id] = tracked
        self._event_of[tracked.item_id] = tracked.event_id
        self._busy_alerts[tracked.alert_id] += 1

    def _untrack(self, tracked: Tracked) -> None:
        self._tracked.pop(tracked.event_id, None)
        self._event_of.pop(tracked.item_id, None)
        self._busy_alerts[tracked.alert_id] -= 1
        if self._busy_alerts[tracked.alert_id] <= 0:
            del self._busy_alerts[tracked.alert_id]

    def _lookup(self, item_id: int) -> Tracked | None:
        event_id = self._event_of.get(item_id)
        return None if event_id is None else self._tracked.get(event_id)

    def _timeout(self, step: int) -> float:
        return result_timeout_s(step, self._timeout_s, self._timeout_max_s)

    def _set_due(self, tracked: Tracked, when: float) -> None:
        tracked.due = when
        self._earliest_due = min(self._earliest_due, when)

    def due(self) -> list[Tracked]:
        """What awaits the hub past its timeout, oldest first."""
        now = self._clock()
        if now < self._earliest_due:
            return []
        due: list[Tracked] = []
        earliest = float("inf")
        for tracked in self._tracked.values():
            if tracked.phase == "awaiting":
                earliest = min(earliest, tracked.due)
                if tracked.due <= now:
                    due.append(tracked)
        self._earliest_due = earliest  # due ones not resent now (a full window) included
        return sorted(due, key=lambda t: t.item_id)

    # -- the publishes' outcomes -------------------------------------------------------------

    def on_first_puback(self, item_id: int) -> None:
        tracked = self._lookup(item_id)
        if tracked is None or tracked.phase != "sending":
            return  # the hub's result came first: it is confirmed already
        tracked.phase = "awaiting"
        self._set_due(tracked, self._clock() + self._timeout(0))
        self._unmarked[item_id] = time.monotonic()

    def untrack_sending(self, item_id: int) -> None:
        """A first send failed: the item is nacked and stays queued, untracked."""
        tracked = self._lookup(item_id)
        if tracked is not None and tracked.phase == "sending":
            self._untrack(tracked)

    def strand(self, item_id: int) -> bool:
        """The connection dropped with this item in flight: True when it is to be nacked
        (a first send); a resend stays awaiting and goes again after the reconnect."""
        tracked = self._lookup(item_id)
        if tracked is None:
            return True
        if tracked.phase == "sending":
            self._untrack(tracked)
            return True
        tracked.phase = "awaiting"
        self._set_due(tracked, self._clock())
        return False

    def on_resend_done(self, item_id: int, failed: bool) -> bool:
        """A resend's PUBACK (or its failure). False when the event is no longer being
        resent (confirmed meanwhile): the outcome means nothing any more."""
        tracked = self._lookup(item_id)
        if tracked is None or tracked.phase != "resending":
            return False
        tracked.phase = "awaiting"
        if failed:
            self._set_due(tracked, self._clock() + self._timeout(0))
            return True
        tracked.step += 1
        self._set_due(tracked, self._clock() + self._timeout(tracked.step))
        self._resent.append(item_id)
        return True

    # -- the hub's messages ------------------------------------------------------------------

    def on_result(self, payload: bytes) -> None:
        """One message of the results topic."""
        try:
            result = parse_result(payload)
        except BadMessage as exc:
            self.hub_status.results_invalid += 1
            log.warning(
                "Hub result ignored: it does not follow the contract.",
                extra={"topic": self.results_topic, "error": str(exc), "bytes": len(payload)},
            )
            return
        tracked = self._tracked.get(result.event_id)
        if tracked is None or result.alert_id not in (None, tracked.alert_id):
            # Usual after a resend (the hub answers each copy) or a restart.
            self.hub_status.results_unknown += 1
            if result.status == "rejected":
                # Not usual, and maybe the only word of it: an event the hub answered
                # ``parked`` (final here) and later found poison is in no dead letters here.
                self.hub_status.rejected_unawaited += 1
                log.warning(
                    "Hub rejected an event this agent no longer awaits (answered parked "
                    "before, or a copy already dead-lettered); the hub's record holds it.",
                    extra={
                        "event_id": result.event_id[:100],
                        "reason": result.reason,
                    },
                )
                return
            log.debug(
                "Hub result for an event not awaited.",
                extra={"event_id": result.event_id[:100], "status": result.status},
            )
            return
        self._untrack(tracked)
        # Not stored as awaiting yet: the write acks it in the queue, nothing else to undo.
        self._unmarked.pop(tracked.item_id, None)
        marked = tracked.item_id in self._marked
        self._marked.discard(tracked.item_id)
        self._finals.append((tracked.item_id, result, marked))
        self.hub_status.results += 1
        if result.status == "rejected":
            self.hub_status.rejected_by_hub += 1
            self.status.last_error = result.reason
            log.error(
                "Hub rejected a message (an alert or plant data); moved to the dead letters.",
                extra={
                    "item_id": tracked.item_id,
                    "event_id": result.event_id,
                    "reason": result.reason,
                },
            )
        self._wake()

    def on_hub_status(self, replica: str, payload: bytes) -> None:
        """One message of ``{prefix}/hub/status/{replica}``."""
        before = self.presence.state
        try:
            self.presence.update(replica, payload)
        except BadMessage as exc:
            self.hub_status.hub_status_invalid += 1
            log.warning(
                "Hub status ignored: it does not follow the contract.",
                extra={"replica": replica[:100], "error": str(exc), "bytes": len(payload)},
            )
            return
        after = self.presence.state
        if after == before:
            return
        log.info(
            "Hub presence changed.",
            extra={"before": before, "after": after, "replicas": dict(self.presence.replicas)},
        )
        if after == "online":
            # A hub (back) online: what awaits goes at once, timeouts start afresh.
            now = self._clock()
            for tracked in self._tracked.values():
                tracked.step = 0
                if tracked.phase == "awaiting":
                    self._set_due(tracked, now)
        self._wake()

    # -- after a (re)start, and reporting ----------------------------------------------------

    def load(self, items: list[AwaitingItem]) -> None:
        """After a (re)start: rebuild the resend schedule of the items awaiting the hub on
        disk, from the time each was last sent."""
        now, wall = self._clock(), time.time()
        for item in items:
            if self._lookup(item.id) is not None:
                continue
            event_id, alert_id = self._ids(item.id, item.payload)
            self._marked.add(item.id)
            step = max(0, item.sends - 1)
            since_sent = max(0.0, wall - item.last_sent_at)
            self.track(
                Tracked(
                    item_id=item.id,
                    event_id=event_id,
                    alert_id=alert_id,
                    phase="awaiting",
                    body=encode_payload(item.payload),
                    first_sent=now - max(0.0, wall - item.first_sent_at),
                    due=now + max(0.0, self._timeout(step) - since_sent),
                    step=step,
                )
            )
        if items:
            log.info("Events awaiting the hub reloaded.", extra={"count": len(items)})

    def awaiting_hub(self) -> tuple[int, float | None]:
        """How many events the broker has and the hub has not confirmed, and how long
        (seconds) since the oldest was first sent."""
        waiting = [t for t in self._tracked.values() if t.phase != "sending"]
        if not waiting:
            return 0, None
        return len(waiting), max(0.0, self._clock() - min(t.first_sent for t in waiting))

    def report(self) -> None:
        """Publish the confirmation state in ``hub_status`` (health, metrics)."""
        count, oldest = self.awaiting_hub()
        presence = self.presence.state
        hub = self.hub_status
        hub.awaiting_hub = count
        hub.awaiting_hub_oldest_age_s = oldest
        hub.hub_presence = presence
        hub.held_for_hub = presence == "offline"
        hub.held_for_order = len(self.held)
        hub.summary = {
            "unknown": "hub presence unknown",
            "online": "hub online",
            "offline": "hub offline: holding",
        }[presence]
        hub.readiness_reasons = (
            [f"no hub is online: {count} events sent and held, new events wait in the outbox"]
            if presence == "offline"
            else []
        )

    # -- the outbox writes -------------------------------------------------------------------

    def mark_all_now(self) -> None:
        """The link went down or the forwarder stops: every PUBACKed event is stored as
        awaiting at the next write (its lease is given up; a forwarder started after this
        one resends it on its schedule, as before the grace existed)."""
        for item_id in self._unmarked:
            self._unmarked[item_id] = float("-inf")

    def has_writes(self) -> bool:
        if self._resent or self._finals:
            return True
        # PUBACK order: the first is the oldest.
        first = next(iter(self._unmarked.values()), None)
        return first is not None and time.monotonic() - first >= self._mark_after_s

    def take_writes(self) -> Writes:
        """What is to be written, handed over once (see :meth:`write`)."""
        sent: list[int] = []
        since = time.monotonic() - self._mark_after_s
        for item_id, acked_at in self._unmarked.items():
            if acked_at > since:
                break
            sent.append(item_id)
        for item_id in sent:
            del self._unmarked[item_id]
        self._marked.update(sent)
        writes = (sent, self._resent, self._finals)
        self._resent, self._finals = [], []
        return writes

    def write(self, outbox: Outbox, writes: Writes) -> int:
        """Store the PUBACKed sends as awaiting, note resends, then apply the hub's results
        (in that order: a result may arrive before its PUBACK was written). Returns how many
        the hub confirmed. Runs in a worker thread; a failed write is logged and retried by
        the next resend (the hub answers again from its record)."""
        sent, resent, finals = writes
        try:
            outbox.mark_awaiting(sent)
            outbox.note_resent(resent)
        except OutboxError as exc:
            # Not marked: the items stay queued and are sent again after a restart.
            log.error("Outbox write of sent items failed.", extra={"error": str(exc)})
        delivered = [item_id for item_id, result, _ in finals if result.status != "rejected"]
        # Only these can be stored as awaiting (a failed write above leaves them queued,
        # which the ack covers): the others skip a delete that finds nothing.
        marked = [i for i, result, was in finals if was and result.status != "rejected"]
        confirmed = 0
        try:
            # A result that overtook its PUBACK (or the grace) finds the item still queued.
            outbox.ack(delivered)
            outbox.confirm_awaiting(marked)
            confirmed = len(delivered)
            for item_id, result, _ in finals:
                if result.status == "rejected":
                    if not outbox.dead_letter_awaiting(item_id, result.reason):
                        outbox.dead_letter(item_id, result.reason)
                    self.status.dead_lettered += 1
        except OutboxError as exc:
            log.error("Outbox write of hub results failed.", extra={"error": str(exc)})
        return confirmed
