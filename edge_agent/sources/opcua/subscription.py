"""Subscription mode: monitor every node, hand data changes to the sink in batches, and
watch the subscription so that a silent or spinning one rebuilds the session.

The session itself (connect, security, node ids, reconnect) is :mod:`.source`'s; this
module gets a connected client and raises :class:`~.failures.SessionLost` when the session
must be rebuilt.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import Subscription
from asyncua.observer import Observer
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from edge_agent.common.cancellation import stop_task
from edge_agent.interfaces import ConnectionStats, ReadingSink
from edge_agent.readings import Reading, bad
from edge_agent.sources.opcua import lean_publish
from edge_agent.sources.opcua.failures import (
    TRANSPORT_ERRORS,
    SessionLost,
    describe,
    status_name,
)
from edge_agent.sources.opcua.logger import log
from edge_agent.sources.opcua.values import ReadingFrom, ReadingFromLean

# More Republish requests than this within one watchdog window is asyncua's busy loop.
MAX_REPUBLISH_PER_WINDOW = 50
# Readings handed to the sink at once (whole responses; one response may be more).
MAX_BATCH = 10_000


class SubscriptionOwner(Protocol):
    """What the subscription counts into: the source's name, stats and counters."""

    name: str
    stats: ConnectionStats
    #: Notifications dropped because the reading queue was full.
    notifications_dropped: int
    #: Sessions rebuilt by the watchdog (silence, spinning, subscription status).
    subscription_rebuilds: int
    #: Publish responses neither decoder could read (asyncua's loop skips them).
    publish_decode_errors: int
    #: Publish responses the lean decoder left to asyncua's.
    publish_decoded_by_asyncua: int


@dataclass(frozen=True, slots=True)
class SubscriptionSettings:
    """The connection's subscription settings, in the units asyncua and the loop use."""

    sampling_ms: float
    watchdog_s: float
    poll_s: float
    deadband: float


class _ActivityObserver(Observer):
    """asyncua's observer hook: when the last publish response (data or keep-alive) arrived,
    and when each Republish request went out (to spot the busy loop)."""

    def __init__(self) -> None:
        self.last_publish_at = time.monotonic()
        self.republish_times: deque[float] = deque(maxlen=MAX_REPUBLISH_PER_WINDOW * 4)

    def on_notification(self, subscription_id: int | None, event_count: int) -> None:
        self.last_publish_at = time.monotonic()

    def on_request(self, request_type: str, duration: float, error: BaseException | None) -> None:
        if request_type == "RepublishRequest":
            self.republish_times.append(time.monotonic())

    def republishes_since(self, since: float) -> int:
        return sum(1 for moment in self.republish_times if moment >= since)


class _Notifications:
    """The subscription's data changes, one list per publish response, bounded in items:
    when full the oldest notifications are dropped and counted, never the connection's
    latest news.

    A list per response, not a queue entry per item: a put and a ``Queue.full`` for each
    of 10,000 items a second were a tenth of the agent's CPU (docs/performance.md §4).
    """

    def __init__(self, source: SubscriptionOwner, maxsize: int) -> None:
        self._source = source
        self.maxsize = maxsize
        # Items: asyncua's MonitoredItemNotification, or the lean decoder's tuples.
        self._lists: deque[list[Any]] = deque()
        self._count = 0  # items in ``_lists``
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return self._count

    def put(self, items: list[Any]) -> None:
        """Queue one response's items, dropping the oldest beyond ``maxsize``; never waits."""
        if not items:
            return
        excess = self._count + len(items) - self.maxsize
        if excess > 0:
            self._drop_oldest(excess, items)
            if len(items) > self.maxsize:  # one response larger than the whole bound
                items = items[len(items) - self.maxsize :]
        self._lists.append(items)
        self._count += len(items)
        self._ready.set()

    def _drop_oldest(self, excess: int, incoming: list[Any]) -> None:
        self._source.notifications_dropped += excess
        lists = self._lists
        while excess > 0 and lists:
            oldest = lists[0]
            if len(oldest) <= excess:
                lists.popleft()
                self._count -= len(oldest)
                excess -= len(oldest)
            else:
                lists[0] = oldest[excess:]
                self._count -= excess
                excess = 0
        # What is left of the excess comes off the front of ``incoming`` (see put).

    async def take(self, limit: int) -> list[list[Any]]:
        """Whole responses in arrival order, at least one, up to ``limit`` items unless the
        first alone is more; waits while there is none."""
        while not self._lists:
            self._ready.clear()
            await self._ready.wait()
        lists = self._lists
        taken = [lists.popleft()]
        total = len(taken[0])
        while lists and total + len(lists[0]) <= limit:
            taken.append(lists.popleft())
            total += len(taken[-1])
        self._count -= total
        return taken


class _DataChangeHandler:
    """Takes the subscription's publish responses in place of asyncua's ``Subscription``
    and turns their data changes into readings, in batches, on the drain task.

    asyncua's own callback makes two dataclasses and a queue entry per notification (its
    iterator mode) or a task each (its handler mode: ≈ 30 % of the agent's CPU at 10,000
    items, measured); this one queues each response's list of items as it came off the
    wire (:class:`_Notifications`, which counts drops: asyncua's overflow policies drop
    silently) and notes a bad subscription status for the watchdog.

    With ``reading_from_lean`` the session's responses are decoded by the lean decoder
    (:mod:`.lean_publish`): a Good scalar data change arrives as a plain tuple, not as
    five objects (docs/performance.md §4c).
    """

    def __init__(
        self,
        source: SubscriptionOwner,
        reading_from: ReadingFrom,
        handles: Mapping[int, str],
        maxsize: int,
        reading_from_lean: ReadingFromLean | None = None,
    ) -> None:
        self._source = source
        self._reading_from = reading_from
        self._reading_from_lean = reading_from_lean
        self._handles = handles
        self.events = _Notifications(source, maxsize)
        self.status_problem: str | None = None
        self._subscription: Subscription | None = None
        self._observer: Observer | None = None
        self._callbacks: dict[int, Any] = {}

    def attach(self, client: Client, subscription: Subscription) -> None:
        """Make ``subscription``'s publish responses come here instead of to asyncua's
        ``Subscription.publish_callback``."""
        # Private to asyncua 2.x's session: fail loudly at start if it moves.
        callbacks = getattr(client.uaclient, "_subscription_callbacks", None)
        subscription_id = subscription.subscription_id
        if (
            not isinstance(callbacks, dict)
            or subscription_id is None
            or callbacks.get(subscription_id) != subscription.publish_callback
        ):
            raise RuntimeError("asyncua's session has no subscription callback to replace")
        self._subscription = subscription
        self._observer = client.uaclient.observer
        self._callbacks = callbacks
        callbacks[subscription_id] = self.published
        if self._reading_from_lean is not None:
            lean_publish.install(client.uaclient.session, self._takes_lean, self._source)
        # asyncua registers ``subscription.publish_callback`` again when it recreates the
        # subscription (its stale watchdog, a transfer after a reconnect) and awaits it when
        # it republishes a gap: shadow the method so that each of those comes here too.
        subscription.publish_callback = self._published_async  # type: ignore[method-assign, assignment]

    def _takes_lean(self, subscription_id: int) -> bool:
        """Whether the session hands ``subscription_id``'s responses here (asyncua's own
        callback, if it ever took them back, must get asyncua's objects)."""
        return self._callbacks.get(subscription_id) in (self.published, self._published_async)

    async def _published_async(self, result: ua.PublishResult) -> None:
        self.published(result)

    def still_attached(self) -> bool:
        """Whether the session still hands this subscription's responses here (a path of
        asyncua that registers its own callback would leave the agent with no data and a
        fed watchdog: the connection looks healthy and delivers nothing)."""
        subscription = self._subscription
        if subscription is None or subscription.subscription_id is None:
            return True  # being recreated: asyncua registers the callback as it finishes
        return self._callbacks.get(subscription.subscription_id) in (
            self.published,
            self._published_async,
        )

    def published(self, result: ua.PublishResult) -> None:
        """One publish response (or a status asyncua makes up when the link drops): what
        ``Subscription.publish_callback`` does, without an event object per item."""
        message = result.NotificationMessage
        if message.NotificationData is None:
            return
        subscription = self._subscription
        if subscription is not None:  # kept as asyncua keeps them
            subscription.last_publish_at = time.monotonic()
            subscription.last_sequence_number = int(message.SequenceNumber)
        produced = 0
        for notification in message.NotificationData:
            if isinstance(notification, ua.DataChangeNotification):
                items = notification.MonitoredItems
                self.events.put(items)
                produced += len(items)
            elif isinstance(notification, ua.StatusChangeNotification):
                produced += 1
                code = notification.Status
                if code is not None and not code.is_good():
                    self.status_problem = f"subscription status {code.name}"
            else:  # no event items are made: nothing else is expected
                log.warning(
                    "OPC UA notification of an unexpected kind ignored.",
                    extra={"kind": type(notification).__name__},
                )
        if self._observer is not None:
            self._observer.on_notification(result.SubscriptionId, produced)

    def readings(self, published: list[list[Any]]) -> list[Reading]:
        """The readings of a batch of responses' items (handles of no sensor are skipped)."""
        now_ns = time.time_ns()
        handles, reading_from = self._handles, self._reading_from
        lean = self._reading_from_lean
        out = []
        for items in published:
            for item in items:
                if type(item) is tuple:  # the lean decoder's (only with ``lean`` set)
                    sensor_id = handles.get(item[0])
                    if sensor_id is not None:
                        out.append(lean(sensor_id, item, now_ns))  # type: ignore[misc]
                    continue
                sensor_id = handles.get(item.ClientHandle)
                if sensor_id is not None:
                    out.append(reading_from(sensor_id, item.Value, now_ns))
        return out


class SubscriptionMode:
    """``mode: subscribe`` on one connected session, until the session must be rebuilt."""

    def __init__(
        self,
        source: SubscriptionOwner,
        settings: SubscriptionSettings,
        reading_from: ReadingFrom,
        read_limit: Callable[[Client], Awaitable[int]],
        reading_from_lean: ReadingFromLean | None = None,
    ) -> None:
        self._source = source
        self._settings = settings
        self._reading_from = reading_from
        self._reading_from_lean = reading_from_lean
        self._read_limit = read_limit

    def parameters(self) -> ua.CreateSubscriptionParameters:
        """Publishing interval = sampling interval; a keep-alive at least three times per
        watchdog window, so a healthy but quiet subscription is never taken for silent."""
        sampling_ms = self._settings.sampling_ms
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = sampling_ms
        keepalive_s = self._settings.watchdog_s / 3
        params.RequestedMaxKeepAliveCount = max(1, int(keepalive_s * 1000 / max(sampling_ms, 1.0)))
        params.RequestedLifetimeCount = max(10_000, 3 * params.RequestedMaxKeepAliveCount)
        params.MaxNotificationsPerPublish = 0  # no limit
        params.PublishingEnabled = True
        params.Priority = 0
        return params

    def monitored_item(self, handle: int, node_id: ua.NodeId) -> ua.MonitoredItemCreateRequest:
        item = ua.MonitoredItemCreateRequest()
        item.ItemToMonitor = ua.ReadValueId()
        item.ItemToMonitor.NodeId = node_id
        item.ItemToMonitor.AttributeId = AttributeIds.Value
        item.MonitoringMode = ua.MonitoringMode.Reporting
        params = ua.MonitoringParameters()
        params.ClientHandle = handle
        params.SamplingInterval = self._settings.sampling_ms
        params.QueueSize = 1
        params.DiscardOldest = True
        if self._settings.deadband > 0:
            params.Filter = ua.DataChangeFilter(
                Trigger=ua.DataChangeTrigger.StatusValue,
                DeadbandType=ua.DeadbandType.Absolute,
                DeadbandValue=self._settings.deadband,
            )
        item.RequestedParameters = params
        return item

    async def run(
        self,
        client: Client,
        nodes: Mapping[str, ua.NodeId],
        unresolved: Mapping[str, str],
        sink: ReadingSink,
    ) -> None:
        """Subscribe to every node and serve the subscription until it must be rebuilt."""
        name = self._source.name
        observer = client.uaclient.observer
        assert isinstance(observer, _ActivityObserver)
        handles = {handle: sensor_id for handle, sensor_id in enumerate(nodes, start=1)}
        handler = _DataChangeHandler(
            self._source,
            self._reading_from,
            handles,
            maxsize=max(1000, 4 * len(nodes)),
            reading_from_lean=self._reading_from_lean,
        )
        failed: dict[str, str] = dict(unresolved)
        try:
            subscription = await client.create_subscription(self.parameters(), None)
            handler.attach(client, subscription)
            limit = await self._read_limit(client)
            items = [self.monitored_item(h, nodes[s]) for h, s in handles.items()]
            for start in range(0, len(items), limit):
                results = await subscription.create_monitored_items(items[start : start + limit])
                for item, result in zip(items[start : start + limit], results, strict=True):
                    if isinstance(result, ua.StatusCode):
                        sensor_id = handles[item.RequestedParameters.ClientHandle]
                        failed[sensor_id] = result.name
        except UaStatusCodeError as exc:
            raise SessionLost(f"cannot subscribe: {status_name(exc)}") from exc
        except (TimeoutError, *TRANSPORT_ERRORS, UaError) as exc:
            raise SessionLost(f"cannot subscribe: {describe(exc)}") from exc
        if failed:
            log.warning(
                "OPC UA monitored items failed.",
                extra={"connection": name, "failed": dict(list(failed.items())[:20])},
            )
        consumer = asyncio.create_task(self._drain(handler, sink), name=f"opcua-{name}-drain")
        try:
            await self._watch(client, subscription, observer, handler, failed, sink)
        finally:
            await stop_task(consumer)

    async def _drain(self, handler: _DataChangeHandler, sink: ReadingSink) -> None:
        """Hand queued readings to the sink in batches; awaiting the sink is the
        backpressure (the queue bounds what waits meanwhile)."""
        events = handler.events
        stats = self._source.stats
        while True:
            readings = handler.readings(await events.take(MAX_BATCH))
            if not readings:
                continue  # only handles of no sensor
            stats.reads += 1
            stats.last_good_read_ns = time.time_ns()
            await sink(readings)

    async def _watch(
        self,
        client: Client,
        subscription: Subscription,
        observer: _ActivityObserver,
        handler: _DataChangeHandler,
        failed: Mapping[str, str],
        sink: ReadingSink,
    ) -> None:
        """The subscription watchdog. Rebuild the session when the transport is gone,
        when nothing (no data change, no keep-alive) arrived for ``watchdog``, when the
        client spins on Republish, or when the server reports the subscription bad."""
        watchdog_s, poll_s = self._settings.watchdog_s, self._settings.poll_s
        tick_s = min(poll_s, watchdog_s / 4, 1.0)
        observer.last_publish_at = time.monotonic()
        last_failed_emit = 0.0
        while True:
            await asyncio.sleep(tick_s)
            now = time.monotonic()
            if client.uaclient.state is not UaClientState.CONNECTED:
                raise SessionLost(f"client state {client.uaclient.state.value}")
            silent_for = now - observer.last_publish_at
            reason: str | None = None
            if silent_for > watchdog_s:
                reason = f"subscription silent for {silent_for:.1f}s (no data, no keep-alive)"
            elif observer.republishes_since(now - watchdog_s) > MAX_REPUBLISH_PER_WINDOW:
                reason = "client spinning on Republish"
            elif handler.status_problem is not None:
                reason = handler.status_problem
            elif not handler.still_attached():
                reason = "asyncua took the subscription's responses back"
            if reason is not None:
                self._source.subscription_rebuilds += 1
                log.warning(
                    "OPC UA subscription rebuilt.",
                    extra={
                        "connection": self._source.name,
                        "reason": reason,
                        "subscription_id": subscription.subscription_id,
                    },
                )
                raise SessionLost(reason)
            if failed and now - last_failed_emit >= poll_s:
                # Failed monitored items never notify; keep saying so, like a poll would.
                last_failed_emit = now
                stamp = time.time_ns()
                await sink([bad(sensor_id, why, stamp, why) for sensor_id, why in failed.items()])
