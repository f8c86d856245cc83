"""The MQTT forwarder: drains the outbox to ``{prefix}/{site}/alerts`` at QoS 1.

An outbox item is acked only when the broker's PUBACK says success; an MQTT v5 failure
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
from functools import partial
from pathlib import Path
from typing import Any, Final

from edge_agent.alerts import format_time_ns
from edge_agent.config.models import Mqtt
from edge_agent.forwarders.mqtt_link import (
    Message,
    MqttDisconnected,
    MqttLink,
    MqttPublishRefused,
    Will,
)
from edge_agent.interfaces import ForwarderStatus, OutboxItem
from edge_agent.outbox.calls import lease_items, outbox_call
from edge_agent.outbox.store import Outbox, OutboxError
from edge_agent.sources.backoff import Backoff

log = logging.getLogger(__name__)

IDLE_POLL_S: Final = 0.05
"""How often an empty outbox is looked at again (the outbox has no wake-up signal)."""


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
    there raises :class:`~edge_agent.forwarders.mqtt_link.MqttConfigError`), connects
    with backoff and drains the outbox until cancelled.

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
    ) -> None:
        self.config = config
        self.site_id = site_id
        self.outbox = outbox
        self.base_dir = base_dir
        self.client_id = config.client_id or f"edge-agent-{site_id}"
        self.alerts_topic = f"{config.topic_prefix}/{site_id}/alerts"
        self.status_topic = f"{config.topic_prefix}/{site_id}/status"
        self.window = config.inflight
        self.status = ForwarderStatus()
        self.status.extra.update({"inflight": 0, "refused_by_broker": 0, "reconnects": 0})
        self._idle_poll_s = idle_poll_s
        self._link: MqttLink | None = None
        self._inflight: dict[int, OutboxItem] = {}
        self._acks: list[int] = []
        self._nacks: list[tuple[int, str]] = []
        self._wake = asyncio.Event()
        self._refusal_backoff = Backoff.from_config(config.backoff)
        self._refused_since_flush = False
        self._subscriptions = list(subscriptions)
        self._on_message = on_message

    def _will(self, state: str) -> Will:
        return Will(self.status_topic, status_payload(state, self.site_id), qos=1, retain=True)

    async def run(self) -> None:
        """Connect (and reconnect) and drain the outbox until cancelled."""
        link = MqttLink.from_config(
            self.config,
            self.client_id,
            self.base_dir,
            will=self._will("offline"),
            birth=partial(self._will, "online"),
            subscriptions=self._subscriptions,
            on_message=self._on_message,
        )
        self._link = link
        await link.start()
        try:
            while True:
                while not link.connected:
                    # Keep health informed while the broker is unreachable.
                    self.status.last_error = link.last_error
                    self.status.extra["connect_attempts"] = link.connect_attempts
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
                    # cancel that arrives as the awaited event fires, and run() would never
                    # stop (reproduced).
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await link.wait_connected()
                self.status.connected = True
                self.status.extra["reconnects"] = max(0, link.connects - 1)
                try:
                    await self._drain_while_connected(link)
                finally:
                    self.status.connected = False
                    await self._settle()
                self.status.last_error = link.last_error
        finally:
            await self._close_link()

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
                self.status.extra["inflight"] = len(self._inflight)
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
            self._acks.append(item_id)
        elif isinstance(exc, MqttPublishRefused):
            self.status.failed += 1
            self.status.extra["refused_by_broker"] += 1
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
        """Write the acks and nacks collected by the PUBACK callbacks. One worker-thread
        call for all of them, which a cancel lets finish: none is dropped half-way."""
        if not (self._acks or self._nacks):
            return
        acks, self._acks = self._acks, []
        nacks, self._nacks = self._nacks, []
        acked = await outbox_call(self._write_settled, acks, nacks, undo=self._count_sent)
        self._count_sent(acked)

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
        self._nacks.extend((item_id, "disconnected") for item_id in stranded)
        self.status.extra["inflight"] = 0
        await self._flush()
