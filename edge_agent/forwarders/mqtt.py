"""The MQTT forwarder: drains the outbox to ``{prefix}/{site}/alerts`` at QoS 1.

With ``confirm: hub`` (the default) the broker is transport, not the store of record: a
PUBACK only moves the item to *sent, awaiting the hub* (still in the outbox, on disk), and
the item leaves the outbox when the hub's result for its ``event_id`` arrives on
``{prefix}/{site}/results`` (``ok``/``parked``: removed; ``rejected``: dead letter with the
hub's reason). Without a result within ``result_timeout`` (doubling up to
``result_timeout_max``) it is published again, same bytes and ids. While every known hub
replica says ``offline`` on ``{prefix}/hub/status/+`` nothing is published; when one comes
online, what awaits is published again at once. Events of one alert are published one at a
time (the next only after the hub confirmed the previous), so their order holds even
when the broker loses one. At most ``max_awaiting`` events are unconfirmed at once.

With ``confirm: broker`` (a plain MQTT consumer, no hub), an outbox item is acked when the
broker's PUBACK says success; an MQTT v5 failure
reason code (e.g. 0x87 not authorised) nacks it — it stays in the outbox, is counted in
``status.failed`` and retried after a backoff. At most ``inflight`` items are unacknowledged
at a time. When the connection drops, every item in flight is nacked (it keeps its place)
and, after the reconnect, sent again oldest first: the subscriber may see an event twice,
always with the same ``event_id``, and in order of first delivery per site.

Birth and will: ``{prefix}/{site}/status`` carries ``{"state": "online", ...}`` (published
retained at QoS 1 after every connect) and the last will ``{"state": "offline", ...}``
(retained, QoS 1), which the broker publishes if the agent vanishes; a clean shutdown
publishes ``offline`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

from edge_agent.alerts import format_time_ns
from edge_agent.common.backoff import Backoff
from edge_agent.common.file_stamps import CHECK_INTERVAL_S, RotationWatch
from edge_agent.common.mqtt_link import (
    Message,
    MqttConfigError,
    MqttDisconnected,
    MqttLink,
    MqttPublishRefused,
    Will,
    tls_context,
    tls_files,
)
from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.models import Mqtt
from edge_agent.forwarders.hub_confirm import (
    BadMessage,
    HubPresence,
    HubResult,
    Tracked,
    parse_result,
    result_timeout_s,
)
from edge_agent.interfaces import ForwarderStatus, HubConfirmation, OutboxItem
from edge_agent.outbox.calls import lease_items, outbox_call
from edge_agent.outbox.store import AwaitingItem, Outbox, OutboxError

log = logging.getLogger(__name__)

SETTINGS_RETRY_S: Final = 60.0
"""How often MQTT settings that could not be loaded (TLS files, password) are tried again."""
IDLE_POLL_S: Final = 0.05
"""How often an empty outbox is looked at again (the outbox has no wake-up signal)."""
HUB_NOTE: Final = "hub"
"""The outbox note holding the hub presence this forwarder last saw (for the status CLI)."""


@dataclass
class MqttStatus(ForwarderStatus):
    """The MQTT forwarder's status: the common fields and its own counters."""

    inflight: int = 0
    """Publishes not yet acknowledged by the broker."""
    refused_by_broker: int = 0
    reconnects: int = 0
    connect_attempts: int = 0
    tls_rotations: int | None = None
    """Rotated TLS files taken into use; None without TLS."""


def status_payload(state: str, site_id: str) -> bytes:
    """The retained status message: ``{"state": "online"|"offline", "site": ..., "time": ...}``."""
    document = {"state": state, "site": site_id, "time": format_time_ns(time.time_ns())}
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def encode_payload(payload: Any) -> bytes:
    """The wire form of an outbox payload: compact UTF-8 JSON, as stored."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class MqttForwarder:
    """:class:`edge_agent.interfaces.Forwarder` to an MQTT broker (the hub's).

    Construction does no I/O; ``run`` resolves the password, loads the TLS files (a problem
    there holds every event, with the reason in ``status.holding``), connects with backoff
    and drains the outbox until cancelled.

    ``subscriptions`` (topic, QoS) and ``on_message`` (called on the event loop) let the
    agent listen on the same connection, e.g. to the hub's answers and work-order statuses.
    """

    def __init__(
        self,
        config: Mqtt,
        site_id: str,
        outbox: Outbox,
        base_dir: Path,
        *,
        idle_poll_s: float = IDLE_POLL_S,
        subscriptions: Sequence[tuple[str, int]] = (),
        on_message: Callable[[Message], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        files_check_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self.config = config
        self.site_id = site_id
        self.outbox = outbox
        self.base_dir = base_dir
        self.client_id = config.client_id or f"edge-agent-{site_id}"
        self.alerts_topic = f"{config.topic_prefix}/{site_id}/alerts"
        self.status_topic = f"{config.topic_prefix}/{site_id}/status"
        self.window = config.inflight
        self.status = MqttStatus()
        self._idle_poll_s = idle_poll_s
        self._link: MqttLink | None = None
        self._inflight: dict[int, OutboxItem] = {}
        self._acks: list[int] = []
        self._nacks: list[tuple[int, str]] = []
        self._wake = asyncio.Event()
        self._reload = asyncio.Event()
        # Rotated TLS files: the link is rebuilt with them once they load.
        self._rotation = (
            RotationWatch(f"mqtt {config.host}", tls_files(config.tls, base_dir), files_check_s)
            if config.tls is not None
            else None
        )
        if self._rotation is not None:
            self.status.tls_rotations = 0
        self._refusal_backoff = Backoff.from_config(config.backoff)
        self._refused_since_flush = False
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        # -- confirmation by the hub (confirm: hub) --
        self.confirm_by_hub = config.confirm == "hub"
        self.results_topic = f"{config.topic_prefix}/{site_id}/results"
        self.hub_status_prefix = f"{config.topic_prefix}/hub/status/"
        self.max_awaiting = config.max_awaiting
        self._timeout_s = config.result_timeout / NS_PER_S
        self._timeout_max_s = config.result_timeout_max / NS_PER_S
        self._clock = clock
        self.presence = HubPresence()
        self._tracked: dict[str, Tracked] = {}  # event id → event not yet confirmed
        self._event_of: dict[int, str] = {}  # outbox item id → event id, for the PUBACKs
        self._busy_alerts: Counter[str] = Counter()  # alert id → its events tracked
        self._held: dict[int, OutboxItem] = {}  # leased, behind an earlier event of its alert
        self._sent: list[int] = []  # PUBACKed first sends: to be stored as awaiting
        self._resent: list[int] = []  # PUBACKed resends: their new send time to be stored
        self._finals: list[tuple[int, HubResult]] = []  # results to write
        self._presence_saved: str | None = None
        self._loaded_awaiting = False
        # Always there (the hub's counters are simply never counted without a hub); the
        # service sees it only with confirm: hub.
        self.hub_status = HubConfirmation(hub_presence=self.presence.state)
        if self.confirm_by_hub:
            self.status.hub = self.hub_status
            for topic in (self.results_topic, f"{self.hub_status_prefix}+"):
                if all(topic != known for known, _ in self._subscriptions):
                    self._subscriptions.append((topic, 1))

    def _will(self, state: str) -> Will:
        return Will(self.status_topic, status_payload(state, self.site_id), qos=1, retain=True)

    async def run(self) -> None:
        """Connect (and reconnect) and drain the outbox until cancelled. Settings that
        cannot work (an unreadable TLS file, an unset password) hold every event and say so
        in ``status.holding``; they are tried again every ``SETTINGS_RETRY_S`` and at once
        on :meth:`reload_credentials`, which also rebuilds a working link (rotated
        certificates, keys and password take effect). Changed TLS files do the same by
        themselves once they load (looked at every ``files_check_s``)."""
        watcher = None
        if self._rotation is not None:
            watcher = asyncio.create_task(self._watch_tls_files(self._rotation), name="mqtt-tls")
        try:
            while True:
                link = await self._open_link()
                self._link = link
                await self._prepare_outbox()
                await link.start()
                try:
                    await self._serve(link)
                finally:
                    await self._close_link()
                self._reload.clear()
                log.info("MQTT link rebuilt with the reloaded settings.")
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    async def _watch_tls_files(self, rotation: RotationWatch) -> None:
        tls = self.config.tls
        assert tls is not None

        async def trial() -> None:
            tls_context(tls, self.base_dir)

        while True:
            await rotation.wait_for_rotation(trial)
            self.status.tls_rotations = (self.status.tls_rotations or 0) + 1
            self._reload.set()

    def reload_credentials(self) -> None:
        """SIGHUP: read the password and TLS files again and reconnect with them (call on
        the event loop)."""
        self._reload.set()

    async def _open_link(self) -> MqttLink:
        """The link, once its settings load; until then hold, say why, and retry."""
        while True:
            if self._rotation is not None:
                self._rotation.loaded()
            try:
                link = MqttLink.from_config(
                    self.config,
                    self.client_id,
                    self.base_dir,
                    will=self._will("offline"),
                    birth=partial(self._will, "online"),
                    subscriptions=self._subscriptions,
                    on_message=self._received if self.confirm_by_hub else self._on_message,
                )
            except MqttConfigError as exc:
                if self.status.holding is None:
                    log.error(
                        "MQTT settings cannot be used; every alert is held until they are "
                        "fixed (tried again each minute and on reload).",
                        extra={"error": str(exc)},
                    )
                self.status.holding = f"MQTT settings: {exc}"
                self.status.last_error = str(exc)
                self.status.connected = False
                self._reload.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SETTINGS_RETRY_S):
                        await self._reload.wait()
                continue
            if self.status.holding is not None:
                log.info("MQTT settings load again; connecting.")
            self.status.holding = None
            return link

    async def _serve(self, link: MqttLink) -> None:
        """Drain through ``link`` until cancelled or a reload asks for a new link."""
        while not self._reload.is_set():
            while not link.connected and not self._reload.is_set():
                # Keep health informed while the broker is unreachable.
                self.status.last_error = link.last_error
                self.status.connect_attempts = link.connect_attempts
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
                # cancel that arrives as the awaited event fires, and run() would never
                # stop (reproduced).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await link.wait_connected()
            if self._reload.is_set():
                return
            self.status.connected = True
            self.status.reconnects = max(0, link.connects - 1)
            drain = asyncio.ensure_future(
                self._drain_for_hub(link)
                if self.confirm_by_hub
                else self._drain_while_connected(link)
            )
            reload = asyncio.ensure_future(self._reload.wait())
            try:
                await asyncio.wait({drain, reload}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                reload.cancel()
                drain.cancel()  # nothing if it ended: the link dropped
                # Its own cancel handling settles what it had in flight. A cancel of run()
                # itself still propagates from here.
                [outcome] = await asyncio.gather(drain, return_exceptions=True)
                self.status.connected = False
                await self._settle()
            if isinstance(outcome, Exception):
                raise outcome  # a bug in the drain: the supervisor's to see
            self.status.last_error = link.last_error

    async def close(self) -> None:
        """Publish ``offline``, disconnect; items in flight go back to the outbox."""
        await self._close_link()
        await self._settle()

    async def _close_link(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.close(farewell=self._will("offline"))

    # -- the drain loop --------------------------------------------------------------------

    def wake(self) -> None:
        """New items are in the outbox: look now rather than at the next idle poll (the
        service calls this after a put; call on the event loop)."""
        self._wake.set()

    def stored_bytes(self) -> int:
        """Nothing kept beside the outbox: the hub holds the work orders."""
        return 0

    async def _drain_while_connected(self, link: MqttLink) -> None:
        while link.connected:
            # Cleared before looking at the outbox: a wake() or PUBACK from now on ends
            # the idle wait below at once instead of being lost.
            self._wake.clear()
            await self._flush()
            if self._refused_since_flush:
                # The broker refused a publish: give it (and the operator) a pause rather
                # than hammering the same item.
                self._refused_since_flush = False
                await asyncio.sleep(self._refusal_backoff.next_delay())
                continue
            free = self.window - len(self._inflight)
            sent = 0
            if free > 0:
                items = await self._lease(free)
                for item in items:
                    if item.id in self._inflight:
                        continue  # its lease ran out while in flight: still ours
                    # Not connected any more? publish() then fails at once and the item
                    # is nacked like any other in flight.
                    future = link.publish(self.alerts_topic, encode_payload(item.payload), qos=1)
                    self._inflight[item.id] = item
                    future.add_done_callback(partial(self._on_done, item.id))
                    sent += 1
                self.status.inflight = len(self._inflight)
            if sent == 0:
                if self._acks or self._nacks:
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle_poll_s):  # not wait_for: see run()
                        await self._wake.wait()

    async def _lease(self, count: int) -> list[OutboxItem]:
        try:
            return await lease_items(self.outbox, count)
        except OutboxError as exc:
            self.status.last_error = str(exc)
            log.error("Outbox lease failed.", extra={"error": str(exc)})
            await asyncio.sleep(1.0)
            return []

    def _on_done(self, item_id: int, future: asyncio.Future[None]) -> None:
        self._wake.set()
        if self._inflight.pop(item_id, None) is None:
            return  # already nacked by _settle: a second nack could free a new lease
        if future.cancelled():
            self._nacks.append((item_id, "cancelled"))
            return
        exc = future.exception()
        if exc is None:
            if self.confirm_by_hub:
                self._on_first_puback(item_id)
            else:
                self._acks.append(item_id)
            return
        if self.confirm_by_hub:
            self._untrack_sending(item_id)
        if isinstance(exc, MqttPublishRefused):
            self.status.failed += 1
            self.status.refused_by_broker += 1
            self.status.last_error = str(exc)
            self._refused_since_flush = True
            self._nacks.append((item_id, str(exc)))
            log.error(
                "Broker refused an alert; it stays in the outbox.",
                extra={
                    "item_id": item_id,
                    "reason": exc.reason,
                    "code": exc.code,
                    "topic": self.alerts_topic,
                },
            )
        elif isinstance(exc, MqttDisconnected):
            self._nacks.append((item_id, f"disconnected: {exc}"))
        else:
            self._nacks.append((item_id, f"{type(exc).__name__}: {exc}"))

    async def _flush(self) -> None:
        """Write the acks and nacks collected by the PUBACK callbacks (and, with
        ``confirm: hub``, the sends, resends and results). One worker-thread call for all
        of them, which a cancel lets finish: none is dropped half-way."""
        if not (self._acks or self._nacks or self._sent or self._resent or self._finals):
            return
        acks, self._acks = self._acks, []
        nacks, self._nacks = self._nacks, []
        sent, self._sent = self._sent, []
        resent, self._resent = self._resent, []
        finals, self._finals = self._finals, []
        acked = await outbox_call(
            self._write_all, acks, nacks, sent, resent, finals, undo=self._count_sent
        )
        self._count_sent(acked)

    def _write_all(
        self,
        acks: list[int],
        nacks: list[tuple[int, str]],
        sent: list[int],
        resent: list[int],
        finals: list[tuple[int, HubResult]],
    ) -> int:
        acked = self._write_settled(acks, nacks)
        if sent or resent or finals:
            acked += self._write_hub(sent, resent, finals)
        return acked

    def _count_sent(self, acked: int) -> None:
        if acked:
            self.status.sent += acked
            self.status.last_delivery_ns = time.time_ns()
            self._refusal_backoff.reset()

    def _write_settled(self, acks: list[int], nacks: list[tuple[int, str]]) -> int:
        """Ack (one transaction), then nack by reason; returns how many were acked. Runs in
        a worker thread."""
        acked = 0
        if acks:
            try:
                self.outbox.ack(acks)
            except OutboxError as exc:
                # Not acked on disk: they will be sent again (same event ids): a duplicate,
                # never a loss.
                log.error("Outbox ack failed.", extra={"error": str(exc), "count": len(acks)})
            else:
                acked = len(acks)
        by_reason: dict[str, list[int]] = {}
        for item_id, reason in nacks:
            by_reason.setdefault(reason, []).append(item_id)
        for reason, ids in by_reason.items():
            try:
                self.outbox.nack(ids, reason)
            except OutboxError as exc:
                # The leases expire on their own: the items are redelivered then.
                log.error("Outbox nack failed.", extra={"error": str(exc)})
        return acked

    async def _settle(self) -> None:
        """After a disconnect: let the failed futures report, then nack what was in flight."""
        await asyncio.sleep(0)
        stranded = list(self._inflight)
        self._inflight.clear()
        if self.confirm_by_hub:
            stranded = [item_id for item_id in stranded if self._strand(item_id)]
        self._nacks.extend((item_id, "disconnected") for item_id in stranded)
        self.status.inflight = 0
        await self._flush()

    # -- confirmation by the hub -----------------------------------------------------------

    def _write_hub(
        self, sent: list[int], resent: list[int], finals: list[tuple[int, HubResult]]
    ) -> int:
        """Store the PUBACKed sends as awaiting, note resends, then apply the hub's results
        (in that order: a result may arrive before its PUBACK was written). Returns how many
        the hub confirmed. Runs in a worker thread; a failed write is logged and retried by
        the next resend (the hub answers again from its record)."""
        try:
            self.outbox.mark_awaiting(sent)
            self.outbox.note_resent(resent)
        except OutboxError as exc:
            # Not marked: the items stay queued and are sent again after a restart.
            log.error("Outbox write of sent items failed.", extra={"error": str(exc)})
        delivered = [item_id for item_id, result in finals if result.status != "rejected"]
        confirmed = 0
        try:
            # A result that overtook its PUBACK finds the item still queued: ack covers it.
            self.outbox.ack(delivered)
            self.outbox.confirm_awaiting(delivered)
            confirmed = len(delivered)
            for item_id, result in finals:
                if result.status == "rejected":
                    if not self.outbox.dead_letter_awaiting(item_id, result.reason):
                        self.outbox.dead_letter(item_id, result.reason)
                    self.status.dead_lettered += 1
        except OutboxError as exc:
            log.error("Outbox write of hub results failed.", extra={"error": str(exc)})
        return confirmed

    def _track(self, tracked: Tracked) -> None:
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

    def _on_first_puback(self, item_id: int) -> None:
        tracked = self._lookup(item_id)
        if tracked is None or tracked.phase != "sending":
            return  # the hub's result came first: it is confirmed already
        tracked.phase = "awaiting"
        tracked.due = self._clock() + self._timeout(0)
        self._sent.append(item_id)

    def _untrack_sending(self, item_id: int) -> None:
        """A first send failed: the item is nacked and stays queued, untracked."""
        tracked = self._lookup(item_id)
        if tracked is not None and tracked.phase == "sending":
            self._untrack(tracked)

    def _strand(self, item_id: int) -> bool:
        """The connection dropped with this item in flight: True when it is to be nacked
        (a first send); a resend stays awaiting and goes again after the reconnect."""
        tracked = self._lookup(item_id)
        if tracked is None:
            return True
        if tracked.phase == "sending":
            self._untrack(tracked)
            return True
        tracked.phase = "awaiting"
        tracked.due = self._clock()
        return False

    def _on_resend_done(self, item_id: int, future: asyncio.Future[None]) -> None:
        self._wake.set()
        if self._inflight.pop(item_id, None) is None:
            return  # stranded by _settle
        tracked = self._lookup(item_id)
        if tracked is None or tracked.phase != "resending":
            return  # confirmed meanwhile
        tracked.phase = "awaiting"
        error = None if future.cancelled() else future.exception()
        if future.cancelled() or error is not None:
            tracked.due = self._clock() + self._timeout(0)
            if isinstance(error, MqttPublishRefused):
                self.status.failed += 1
                self.status.refused_by_broker += 1
                self._refused_since_flush = True
                log.error(
                    "Broker refused a resent alert; it stays in the outbox.",
                    extra={"item_id": item_id, "reason": error.reason, "code": error.code},
                )
            return
        tracked.step += 1
        tracked.due = self._clock() + self._timeout(tracked.step)
        self._resent.append(item_id)

    def _received(self, message: Message) -> None:
        """Every message of the link's subscriptions, on the event loop."""
        if message.topic.startswith(self.hub_status_prefix):
            self._on_hub_status(message.topic[len(self.hub_status_prefix) :], message.payload)
            return
        if message.topic == self.results_topic:
            self._on_result(message.payload)
        if self._on_message is not None:
            try:
                self._on_message(message)
            except Exception:
                log.exception("Message handler failed.", extra={"topic": message.topic})

    def _on_result(self, payload: bytes) -> None:
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
            log.debug(
                "Hub result for an event not awaited.",
                extra={"event_id": result.event_id[:100], "status": result.status},
            )
            return
        self._untrack(tracked)
        self._finals.append((tracked.item_id, result))
        self.hub_status.results += 1
        if result.status == "rejected":
            self.hub_status.rejected_by_hub += 1
            self.status.last_error = result.reason
            log.error(
                "Hub rejected an alert; moved to the dead letters.",
                extra={
                    "item_id": tracked.item_id,
                    "event_id": result.event_id,
                    "reason": result.reason,
                },
            )
        self._wake.set()

    def _on_hub_status(self, replica: str, payload: bytes) -> None:
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
                    tracked.due = now
        self._wake.set()

    async def _load_awaiting(self) -> None:
        """After a (re)start: rebuild the resend schedule of the items awaiting the hub on
        disk, from the time each was last sent."""
        items: list[AwaitingItem] = await outbox_call(self.outbox.awaiting)
        now, wall = self._clock(), time.time()
        for item in items:
            if self._lookup(item.id) is not None:
                continue
            event_id, alert_id = _ids_of(item.id, item.payload)
            step = max(0, item.sends - 1)
            since_sent = max(0.0, wall - item.last_sent_at)
            self._track(
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

    async def _prepare_outbox(self) -> None:
        """Before the first connect: with ``confirm: hub`` reload what awaits the hub; with
        ``confirm: broker`` put it back in the queue (a site that switched modes). A
        failure is logged and tried again at the next connect."""
        try:
            if self.confirm_by_hub:
                if not self._loaded_awaiting:
                    await self._load_awaiting()
            else:
                moved = await outbox_call(self.outbox.requeue_awaiting)
                if moved:
                    log.warning(
                        "Events awaiting a hub put back in the queue (confirm: broker).",
                        extra={"count": moved},
                    )
            self._loaded_awaiting = True
        except OutboxError as exc:
            self.status.last_error = str(exc)
            log.error("Outbox awaiting items unreadable.", extra={"error": str(exc)})

    async def _drain_for_hub(self, link: MqttLink) -> None:
        """The drain loop with ``confirm: hub``; see the module doc."""
        while link.connected:
            self._wake.clear()
            if not self._loaded_awaiting:
                await self._prepare_outbox()
            await self._flush()
            self._report()
            await self._save_presence()
            if self._refused_since_flush:
                self._refused_since_flush = False
                await asyncio.sleep(self._refusal_backoff.next_delay())
                continue
            published = 0
            if self.presence.state != "offline":
                published += self._resend_due(link)
                published += self._send_held(link)
                free = min(
                    self.window - len(self._inflight),
                    self.max_awaiting - len(self._tracked) - len(self._held),
                )
                if free > 0:
                    for item in await self._lease(free):
                        published += await self._offer(link, item)
            if published == 0:
                if self._acks or self._nacks or self._sent or self._resent or self._finals:
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle_poll_s):  # not wait_for: see run()
                        await self._wake.wait()

    async def _offer(self, link: MqttLink, item: OutboxItem) -> int:
        """Publish a newly leased item, or hold it behind an earlier event of its alert."""
        if item.id in self._inflight or item.id in self._held or item.id in self._event_of:
            return 0  # its lease ran out while it was ours
        if not isinstance(item.payload.get("event_id"), str):
            # The hub can never confirm it (nor would it accept it).
            await outbox_call(
                self.outbox.dead_letter, item.id, "no event_id: the hub cannot confirm it"
            )
            self.status.dead_lettered += 1
            return 0
        event_id, alert_id = _ids_of(item.id, item.payload)
        if self._busy_alerts[alert_id] or event_id in self._tracked:
            self._held[item.id] = item
            return 0
        self._publish_first(link, item, event_id, alert_id)
        return 1

    def _publish_first(
        self, link: MqttLink, item: OutboxItem, event_id: str, alert_id: str
    ) -> None:
        tracked = Tracked(
            item.id, event_id, alert_id, "sending", encode_payload(item.payload), self._clock()
        )
        self._track(tracked)
        # Not connected any more? publish() then fails at once and the item is nacked.
        future = link.publish(self.alerts_topic, tracked.body, qos=1)
        self._inflight[item.id] = item
        future.add_done_callback(partial(self._on_done, item.id))

    def _send_held(self, link: MqttLink) -> int:
        """Publish held items whose alert has nothing unconfirmed any more, oldest first."""
        published = 0
        for item_id in sorted(self._held):
            if len(self._inflight) >= self.window:
                break
            item = self._held[item_id]
            event_id, alert_id = _ids_of(item.id, item.payload)
            if self._busy_alerts[alert_id] or event_id in self._tracked:
                continue
            del self._held[item_id]
            self._publish_first(link, item, event_id, alert_id)
            published += 1
        return published

    def _resend_due(self, link: MqttLink) -> int:
        """Publish again, oldest first, what awaits the hub past its timeout."""
        now = self._clock()
        due = [t for t in self._tracked.values() if t.phase == "awaiting" and t.due <= now]
        published = 0
        for tracked in sorted(due, key=lambda t: t.item_id):
            if len(self._inflight) >= self.window:
                break
            tracked.phase = "resending"
            future = link.publish(self.alerts_topic, tracked.body, qos=1)
            self._inflight[tracked.item_id] = OutboxItem(tracked.item_id, {})
            future.add_done_callback(partial(self._on_resend_done, tracked.item_id))
            published += 1
        if published:
            self.hub_status.resends += published
            log.info(
                "Events without a hub result published again.",
                extra={"count": published, "hub_presence": self.presence.state},
            )
        return published

    def awaiting_hub(self) -> tuple[int, float | None]:
        """How many events the broker has and the hub has not confirmed, and how long
        (seconds) since the oldest was first sent."""
        waiting = [t for t in self._tracked.values() if t.phase != "sending"]
        if not waiting:
            return 0, None
        return len(waiting), max(0.0, self._clock() - min(t.first_sent for t in waiting))

    def _report(self) -> None:
        """Publish the confirmation state in ``status.hub`` (health, metrics)."""
        count, oldest = self.awaiting_hub()
        presence = self.presence.state
        hub = self.hub_status
        hub.awaiting_hub = count
        hub.awaiting_hub_oldest_age_s = oldest
        hub.hub_presence = presence
        hub.held_for_hub = presence == "offline"
        hub.held_for_order = len(self._held)
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

    async def _save_presence(self) -> None:
        """Keep the presence in the outbox for ``edge-agent outbox status`` (on change)."""
        state = self.presence.state
        if state == self._presence_saved:
            return
        note = {"state": state, "replicas": dict(self.presence.replicas), "time": time.time()}
        try:
            await outbox_call(self.outbox.set_note, HUB_NOTE, note)
        except OutboxError as exc:
            log.warning("Hub presence not saved in the outbox.", extra={"error": str(exc)})
            return
        self._presence_saved = state


def _ids_of(item_id: int, payload: Any) -> tuple[str, str]:
    """(event id, alert id) of an outbox payload; an item without an alert id is its own
    alert (nothing to keep in order with)."""
    event_id = payload.get("event_id")
    alert_id = payload.get("alert_id")
    return (
        event_id if isinstance(event_id, str) else f"item-{item_id}",
        alert_id if isinstance(alert_id, str) else f"item-{item_id}",
    )
