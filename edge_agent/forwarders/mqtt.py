"""The MQTT forwarder: drains the outbox to ``{prefix}/{site}/alerts`` at QoS 1.

What it publishes where, and how the hub's results name an item, is its
:class:`~edge_agent.forwarders.routes.Route`: alert events by default; the plant-data outbox
with :class:`~edge_agent.forwarders.plant_mqtt.PlantRoute` (``meters``/``assets``, answered
on ``results/plant``). What follows says "alert" for any item.

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
from edge_agent.forwarders.delivery import (
    DeadLetter,
    Delivered,
    DeliveryLoop,
    DestinationHold,
    Retry,
    Words,
)
from edge_agent.forwarders.hub_confirm import HubPresence, Tracked
from edge_agent.forwarders.hub_tracking import HubTracking, encode_payload, wire_body
from edge_agent.forwarders.routes import AlertRoute, Route
from edge_agent.interfaces import ForwarderStatus, HubConfirmation, OutboxItem
from edge_agent.outbox.calls import outbox_call
from edge_agent.outbox.store import AwaitingItem, Outbox, OutboxError
from edge_agent.wire import topics

__all__ = [
    "AlertRoute",
    "MqttForwarder",
    "MqttStatus",
    "Route",
    "encode_payload",
    "status_payload",
]

log = logging.getLogger(__name__)

_WORDS: Final = Words(
    lease_failed="Outbox lease failed.",
    ack_failed="Outbox ack failed.",
    nack_failed="Outbox nack failed.",
)
LEASE_RETRY_S: Final = 1.0
"""How long to wait after the outbox failed to lease."""

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


def _log_reply_failure(topic: str, future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        log.warning("Reply not published.", extra={"topic": topic, "error": str(error)})


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
        route: Route | None = None,
    ) -> None:
        self.config = config
        self.site_id = site_id
        self.outbox = outbox
        self.base_dir = base_dir
        self.route: Route = route or AlertRoute(config.topic_prefix, site_id)
        self.client_id = (config.client_id or f"edge-agent-{site_id}") + self.route.client_suffix
        self.alerts_topic = topics.alerts(config.topic_prefix, site_id)
        self.status_topic = topics.site_status(config.topic_prefix, site_id)
        self.window = config.inflight
        self.status = MqttStatus()
        self._idle_poll_s = idle_poll_s
        self._link: MqttLink | None = None
        self._inflight: dict[int, OutboxItem] = {}
        # The shared delivery loop, with this forwarder as its sink: it leases the free
        # window, and the PUBACK callbacks report to it.
        self._loop = DeliveryLoop(
            self,
            outbox,
            self.status,
            log,
            _WORDS,
            backoff=Backoff.from_config(config.backoff),
            lease_retry_s=lambda: LEASE_RETRY_S,
            # Its pump only publishes (resends, held items): one worker call a cycle.
            lease_with_writes=True,
        )
        self._wake = self._loop.wake
        self._reload = asyncio.Event()
        # Rotated TLS files: the link is rebuilt with them once they load.
        self._rotation = (
            RotationWatch(f"mqtt {config.host}", tls_files(config.tls, base_dir), files_check_s)
            if config.tls is not None
            else None
        )
        if self._rotation is not None:
            self.status.tls_rotations = 0
        self._hold = DestinationHold(self.status, log)
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        # Topics with a handler of their own (the agent's alarm commands), see listen().
        self._listeners: dict[str, Callable[[Message], None]] = {}
        # -- confirmation by the hub (confirm: hub) --
        self.confirm_by_hub = config.confirm == "hub"
        self.results_topic = self.route.results_topic
        self.hub_status_prefix = topics.hub_status_under(config.topic_prefix)
        self.max_awaiting = config.max_awaiting
        self._clock = clock
        self._presence_saved: str | None = None
        self._loaded_awaiting = False
        # Always there (the hub's counters are simply never counted without a hub); the
        # service sees it only with confirm: hub.
        self.hub_status = HubConfirmation()
        self._hub = HubTracking(
            self.status,
            self.hub_status,
            results_topic=self.results_topic,
            timeout_s=config.result_timeout / NS_PER_S,
            timeout_max_s=config.result_timeout_max / NS_PER_S,
            clock=clock,
            wake=self._wake.set,
            ids=self._ids,
        )
        if self.confirm_by_hub:
            self.status.hub = self.hub_status
            for topic in (self.results_topic, topics.hub_status_filter(self.config.topic_prefix)):
                if all(topic != known for known, _ in self._subscriptions):
                    self._subscriptions.append((topic, 1))

    @property
    def presence(self) -> HubPresence:
        """The hub replicas' presence as last seen (``confirm: hub``)."""
        return self._hub.presence

    def awaiting_hub(self) -> tuple[int, float | None]:
        """How many events the broker has and the hub has not confirmed, and how long
        (seconds) since the oldest was first sent."""
        return self._hub.awaiting_hub()

    def listen(self, topic: str, handler: Callable[[Message], None]) -> None:
        """Also subscribe to ``topic`` (QoS 1, exactly: no wildcard) and hand each of its
        messages to ``handler`` on the event loop. Call before :meth:`run`."""
        self._listeners[topic] = handler
        if all(topic != known for known, _ in self._subscriptions):
            self._subscriptions.append((topic, 1))

    def publish_reply(self, topic: str, payload: bytes) -> bool:
        """Publish ``payload`` on ``topic`` at QoS 1, beside the alerts (an answer to a
        command); False when not connected. A broker refusal is logged, not retried: the
        sender asks again (a resent command id gets the same answer)."""
        link = self._link
        if link is None or not link.connected:
            return False
        future = link.publish(topic, payload, qos=1)
        future.add_done_callback(partial(_log_reply_failure, topic))
        return True

    def _will(self, state: str) -> Will:
        return Will(self.status_topic, status_payload(state, self.site_id), qos=1, retain=True)

    def _ids(self, item_id: int, payload: Any) -> tuple[str, str]:
        """The route's ids of a payload loaded from the outbox (a payload without one was
        never published: its own ids)."""
        return self.route.ids(item_id, payload) or (f"item-{item_id}", f"item-{item_id}")

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
                    will=self._will("offline") if self.route.announces else None,
                    birth=partial(self._will, "online") if self.route.announces else None,
                    subscriptions=self._subscriptions,
                    on_message=self._received,
                )
            except MqttConfigError as exc:
                self._hold.hold(
                    f"MQTT settings: {exc}",
                    "MQTT settings cannot be used; every alert is held until they are "
                    "fixed (tried again each minute and on reload).",
                    {"error": str(exc)},
                )
                self.status.last_error = str(exc)
                self.status.connected = False
                self._reload.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SETTINGS_RETRY_S):
                        await self._reload.wait()
                continue
            self._hold.release("MQTT settings load again; connecting.")
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
            drain = asyncio.ensure_future(self._drain(link))
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
            await link.close(farewell=self._will("offline") if self.route.announces else None)

    # -- the drain loop --------------------------------------------------------------------

    def wake(self) -> None:
        """New items are in the outbox: look now rather than at the next idle poll (the
        service calls this after a put; call on the event loop)."""
        self._wake.set()

    def stored_bytes(self) -> int:
        """Nothing kept beside the outbox: the hub holds the work orders."""
        return 0

    async def _drain(self, link: MqttLink) -> None:
        """Run the delivery loop while the link is up (see the module doc)."""
        while link.connected:
            if self.confirm_by_hub and not self._loaded_awaiting:
                await self._prepare_outbox()
            pause = await self._loop.cycle()
            if pause is None:
                await self._wake.idle(self._idle_poll_s)
            elif pause > 0:
                # The broker refused a publish: give it (and the operator) a pause rather
                # than hammering the same item.
                await asyncio.sleep(pause)

    # -- the sink of the delivery loop -------------------------------------------------------

    def free(self) -> int:
        """The free window (with ``confirm: hub``: also under ``max_awaiting``, and none
        while every hub is offline)."""
        free = self.window - len(self._inflight)
        if not self.confirm_by_hub:
            return free
        if self.presence.state == "offline":
            return 0
        return min(free, self.max_awaiting - len(self._hub) - len(self._hub.held))

    async def submit(self, item: OutboxItem) -> bool:
        """Publish ``item`` at QoS 1; its PUBACK reports to the loop (:meth:`_on_done`)."""
        link = self._link
        assert link is not None
        if self.confirm_by_hub:
            return self._offer(link, item)
        if item.id in self._inflight:
            return False  # its lease ran out while in flight: still ours
        # Not connected any more? publish() then fails at once and the item is nacked
        # like any other in flight.
        topic = self.route.topic_for(item.payload)
        future = link.publish(topic, wire_body(item), qos=1)
        self._inflight[item.id] = item
        future.add_done_callback(partial(self._on_done, item.id))
        self.status.inflight = len(self._inflight)
        return True

    async def pump(self) -> int:
        """With ``confirm: hub``, before leasing: report, keep the presence, publish again
        what is due and what was held behind its alert."""
        if not self.confirm_by_hub:
            return 0
        self._hub.report()
        await self._save_presence()
        link = self._link
        if self.presence.state == "offline" or link is None:
            return 0
        return self._resend_due(link) + self._send_held(link)

    def take_writes(self) -> Callable[[], int] | None:
        """The hub's writes (sends, resends, results), in the loop's worker-thread call."""
        if not self._hub.has_writes():
            return None
        return partial(self._hub.write, self.outbox, self._hub.take_writes())

    def ack_failed(self, exc: OutboxError) -> float:
        return 0.0  # not ordered: never asked

    def _on_done(self, item_id: int, future: asyncio.Future[None]) -> None:
        self._wake.set()
        if self._inflight.pop(item_id, None) is None:
            return  # already nacked by _settle: a second nack could free a new lease
        report = self._loop.report
        if future.cancelled():
            report(Retry(item_id, "cancelled"))
            return
        exc = future.exception()
        if exc is None:
            if self.confirm_by_hub:
                self._hub.on_first_puback(item_id)
            else:
                report(Delivered(item_id))
            return
        if self.confirm_by_hub:
            self._hub.untrack_sending(item_id)
        if isinstance(exc, MqttPublishRefused):
            self.status.failed += 1
            self.status.refused_by_broker += 1
            self.status.last_error = str(exc)
            report(Retry(item_id, str(exc), backoff=True))
            log.error(
                f"Broker refused an {self.route.what}; it stays in the outbox.",
                extra={"item_id": item_id, "reason": exc.reason, "code": exc.code},
            )
        elif isinstance(exc, MqttDisconnected):
            report(Retry(item_id, f"disconnected: {exc}"))
        else:
            report(Retry(item_id, f"{type(exc).__name__}: {exc}"))

    async def _settle(self) -> None:
        """After a disconnect: let the failed futures report, then nack what was in flight."""
        await asyncio.sleep(0)
        stranded = list(self._inflight)
        self._inflight.clear()
        if self.confirm_by_hub:
            stranded = [item_id for item_id in stranded if self._hub.strand(item_id)]
        for item_id in stranded:
            self._loop.report(Retry(item_id, "disconnected"))
        self._loop.strand("disconnected")
        self._hub.mark_all_now()
        self.status.inflight = 0
        # A refusal's pause is kept for the next connection.
        await self._loop.settle(pausing=False)

    # -- confirmation by the hub -----------------------------------------------------------

    def _on_resend_done(self, item_id: int, future: asyncio.Future[None]) -> None:
        self._wake.set()
        if self._inflight.pop(item_id, None) is None:
            return  # stranded by _settle
        error = None if future.cancelled() else future.exception()
        if not self._hub.on_resend_done(item_id, future.cancelled() or error is not None):
            return  # confirmed meanwhile
        if isinstance(error, MqttPublishRefused):
            self.status.failed += 1
            self.status.refused_by_broker += 1
            self._loop.back_off()
            log.error(
                "Broker refused a resent alert; it stays in the outbox.",
                extra={"item_id": item_id, "reason": error.reason, "code": error.code},
            )

    def _received(self, message: Message) -> None:
        """Every message of the link's subscriptions, on the event loop."""
        listener = self._listeners.get(message.topic)
        if listener is not None:
            try:
                listener(message)
            except Exception:
                log.exception("Message handler failed.", extra={"topic": message.topic})
            return
        if self.confirm_by_hub:
            if message.topic.startswith(self.hub_status_prefix):
                topic = message.topic[len(self.hub_status_prefix) :]
                self._hub.on_hub_status(topic, message.payload)
                return
            if message.topic == self.results_topic:
                self._hub.on_result(message.payload)
        if self._on_message is not None:
            try:
                self._on_message(message)
            except Exception:
                log.exception("Message handler failed.", extra={"topic": message.topic})

    async def _load_awaiting(self) -> None:
        """After a (re)start: rebuild the resend schedule of the items awaiting the hub on
        disk, from the time each was last sent."""
        items: list[AwaitingItem] = await outbox_call(self.outbox.awaiting)
        self._hub.load(items)

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

    def _offer(self, link: MqttLink, item: OutboxItem) -> bool:
        """Publish a newly leased item, or hold it behind an earlier event of its alert."""
        if item.id in self._inflight or item.id in self._hub.held or self._hub.knows(item.id):
            return False  # its lease ran out while it was ours
        ids = self.route.ids(item.id, item.payload)
        if ids is None:
            # The hub can never confirm it (nor would it accept it).
            self._loop.report(DeadLetter(item.id, "no event id: the hub cannot confirm it"))
            return False
        event_id, alert_id = ids
        if not self._hub.is_free(event_id, alert_id):
            self._hub.held[item.id] = item
            return False
        self._publish_first(link, item, event_id, alert_id)
        return True

    def _publish_first(
        self, link: MqttLink, item: OutboxItem, event_id: str, alert_id: str
    ) -> None:
        tracked = Tracked(item.id, event_id, alert_id, "sending", wire_body(item), self._clock())
        self._hub.track(tracked)
        # Not connected any more? publish() then fails at once and the item is nacked.
        future = link.publish(self.route.topic_for(item.payload), tracked.body, qos=1)
        self._inflight[item.id] = item
        future.add_done_callback(partial(self._on_done, item.id))

    def _send_held(self, link: MqttLink) -> int:
        """Publish held items whose alert has nothing unconfirmed any more, oldest first."""
        published = 0
        held = self._hub.held
        for item_id in sorted(held):
            if len(self._inflight) >= self.window:
                break
            item = held[item_id]
            event_id, alert_id = self._ids(item.id, item.payload)
            if not self._hub.is_free(event_id, alert_id):
                continue
            del held[item_id]
            self._publish_first(link, item, event_id, alert_id)
            published += 1
        return published

    def _resend_due(self, link: MqttLink) -> int:
        """Publish again, oldest first, what awaits the hub past its timeout."""
        published = 0
        for tracked in self._hub.due():
            if len(self._inflight) >= self.window:
                break
            tracked.phase = "resending"
            future = link.publish(self._topic_of_body(tracked.body), tracked.body, qos=1)
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

    def _topic_of_body(self, body: bytes) -> str:
        """Where a tracked item goes again (only its bytes are kept)."""
        if isinstance(self.route, AlertRoute):
            return self.route.topic
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        return self.route.topic_for(payload if isinstance(payload, dict) else {})

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
