"""The OPC UA source: one server, its sensors, batched polls or a watched subscription.

Lifecycle (the ``Source`` protocol): constructed from config without I/O, then ``run``
until cancelled. ``run`` owns reconnection: asyncua's ``auto_reconnect`` is off and every
loss (transport gone, a silent or spinning subscription, too many timeouts) tears the
client down and builds a fresh session after a jittered backoff. A fresh session never takes
asyncua's transfer/republish path, which spins at 100% CPU against servers that answer a
Republish of an unknown message with an empty one (LIBRARIES.md); the watchdog still counts
Republish requests in case a server finds another way to trigger it.

While there is no session, every sensor yields a bad ``not connected`` reading each poll
interval, so the rules see bad quality rather than silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.observer import Observer
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from edge_agent.common.backoff import PROBE_EVERY_S, Backoff, OutageLog
from edge_agent.common.file_stamps import CHECK_INTERVAL_S, RotationWatch
from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.models import Defaults, OpcUa, SecurityPolicy, Sensor
from edge_agent.interfaces import ConnectionStats, ReadingSink
from edge_agent.readings import Quality, Reading, Value, bad
from edge_agent.sources.opcua.errors import (
    OpcUaConnectError,
    OpcUaError,
    OpcUaRefused,
)
from edge_agent.sources.opcua.expiry import certificate_files, expiry_warning, not_after
from edge_agent.sources.opcua.files import security_files
from edge_agent.sources.opcua.refusals import Attempt, ConnectSteps, named_refusal
from edge_agent.sources.opcua.security import ClientSecurity, apply_security
from edge_agent.sources.opcua.security import check_server_endpoint as _check_endpoint
from edge_agent.sources.opcua.status import pick_time_ns, quality_of

log = logging.getLogger(__name__)

NOT_CONNECTED = "not connected"
HARD_MAX_NODES_PER_READ = 1000
# Consecutive read timeouts before the session is considered dead and rebuilt.
MAX_CONSECUTIVE_TIMEOUTS = 3
# More Republish requests than this within one watchdog window is asyncua's busy loop.
MAX_REPUBLISH_PER_WINDOW = 50
# The client's own health probe: 1 s (the default) drops busy servers for good.
MIN_CLIENT_WATCHDOG_S = 5.0
SESSION_TIMEOUT_MS = 120_000
OVERRUN_LOG_INTERVAL_S = 60.0
MAX_NODES_PER_READ_NODE = ua.NodeId(
    ua.Int32(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
)
# Transport-level failures: the session is gone, reconnect.
TRANSPORT_ERRORS = (ConnectionError, OSError, EOFError)


class SessionLost(OpcUaError):
    """Internal: the session must be torn down and rebuilt (the message says why)."""


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


class _Notifications(asyncio.Queue[Any]):
    """The subscription's event queue (asyncua's iterator mode), bounded: when it is full
    the oldest notification is dropped and counted, never the connection's latest news."""

    def __init__(self, source: OpcUaSource, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self._source = source

    def put_nowait(self, item: Any) -> None:
        if self.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.get_nowait()
            self._source.notifications_dropped += 1
        super().put_nowait(item)


class _DataChangeHandler:
    """Turns the subscription's events into readings, in batches, on the drain task.

    asyncua's iterator mode queues events without a task each (its handler mode spawns
    a task per notification: ≈ 30 % of the agent's CPU at 10,000 items, measured). The
    subscription's queue is replaced by :class:`_Notifications` so that drops are
    counted (asyncua's own overflow policies drop silently).
    """

    def __init__(self, source: OpcUaSource, handles: Mapping[int, str], maxsize: int) -> None:
        self._source = source
        self._handles = handles
        self.events = _Notifications(source, maxsize)
        self.status_problem: str | None = None

    def attach(self, subscription: Subscription) -> None:
        """Make ``subscription`` (created in iterator mode) queue into :attr:`events`."""
        # A private attribute of asyncua 2.x's Subscription: fail loudly if it moves.
        if not isinstance(subscription._event_queue, asyncio.Queue):
            raise RuntimeError("asyncua's Subscription has no _event_queue to replace")
        subscription._event_queue = self.events

    def readings(self, events: list[Any]) -> list[Reading]:
        """The readings in a batch of events; a bad subscription status is noted."""
        now_ns = time.time_ns()
        handles, reading_from = self._handles, self._source.reading_from
        out = []
        for event in events:
            if isinstance(event, DataChangeEvent):
                item = event.data.monitored_item
                sensor_id = handles.get(int(item.ClientHandle))
                if sensor_id is not None:
                    out.append(reading_from(sensor_id, item.Value, now_ns))
            elif isinstance(event, StatusChangeEvent):
                code = event.notification.Status
                if code is not None and not code.is_good():
                    self.status_problem = f"subscription status {code.name}"
        return out


class OpcUaSource:
    """Reads one OPC UA server's sensors by batched polling or by a subscription.

    ``mode: poll`` reads every node once per poll interval with the Read service, in
    chunks of at most min(the server's MaxNodesPerRead, ``max_nodes_per_read``).
    ``mode: subscribe`` monitors every node (sampling interval, optional absolute
    deadband) and rebuilds the session when the subscription goes silent or spins.
    """

    def __init__(
        self,
        name: str,
        connection: OpcUa,
        sensors: Mapping[str, Sensor],
        defaults: Defaults,
        base_dir: Path,
        numeric_sensors: frozenset[str] = frozenset(),
        files_check_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self.name = name
        self.stats = ConnectionStats()
        #: Sensors a rule compares as numbers (high, low, rate, flatline).
        self._numeric_sensors = numeric_sensors
        #: Readings refused because a node held text where a rule needs a number.
        self.text_where_number = 0
        self._text_reported: set[str] = set()
        #: Sessions rebuilt by the watchdog (silence, spinning, subscription status).
        self.subscription_rebuilds = 0
        #: Notifications dropped because the reading queue was full.
        self.notifications_dropped = 0
        self._config = connection
        self._base_dir = base_dir
        self._sensors = dict(sensors)
        self._node_strings: dict[str, str] = {}
        for sensor_id, sensor in self._sensors.items():
            if sensor.node is None:
                raise OpcUaError(f"sensor {sensor_id} on OPC UA connection {name} has no `node:`")
            self._node_strings[sensor_id] = sensor.node
        self._poll_s = (connection.poll or defaults.poll) / NS_PER_S
        self._timeout_s = connection.timeout / NS_PER_S
        self._watchdog_s = max(connection.watchdog / NS_PER_S, 0.1)
        self._sampling_ms = (connection.sampling_interval or connection.poll or defaults.poll) / 1e6
        self._client: Client | None = None
        self._connected = asyncio.Event()
        self._outage = OutageLog()
        self._disconnect_reason = NOT_CONNECTED
        self._backoff = Backoff.from_config(connection.backoff)
        self._overrun_logged_at = -math.inf
        # Rotated certificate files: the session is rebuilt with them once they load.
        files = security_files(connection, base_dir)
        self._rotation = RotationWatch(f"opcua {name}", files, files_check_s) if files else None
        #: Sessions rebuilt because the certificate files changed.
        self.certificate_rotations = 0
        self._certificate_files = certificate_files(connection, base_dir)
        self._expiry_warned: set[tuple[str, float]] = set()

    # ------------------------------------------------------------------ public API

    async def run(self, sink: ReadingSink) -> None:
        """Connect, read or subscribe, reconnect on loss; until cancelled."""
        ticker = asyncio.create_task(
            self._bad_while_disconnected(sink), name=f"opcua-{self.name}-down"
        )
        try:
            while True:
                try:
                    client, nodes, unresolved = await self._open_session()
                except OpcUaError as exc:
                    _stop_if_cancelled()
                    self._note_down(str(exc), exc)
                    await asyncio.sleep(self._reconnect_delay())
                    continue
                self._backoff.reset()
                self._outage.ended()
                self._refused(None)
                try:
                    await self._serve_session(client, nodes, unresolved, sink)
                except SessionLost as exc:
                    _stop_if_cancelled()
                    self._note_down(str(exc))
                except Exception as exc:  # a bug must not end the source: log it, rebuild
                    _stop_if_cancelled()
                    log.exception("OPC UA session failed.", extra={"connection": self.name})
                    self._note_down(_describe(exc))
                finally:
                    await self._close_client(client)
                # A lost session is retried after a jittered delay: a hundred agents that
                # lost the same server do not come back in step.
                await asyncio.sleep(self._reconnect_delay())
        finally:
            await _stop_task(ticker)
            await self.close()

    def _reconnect_delay(self) -> float:
        """The jittered backoff, capped so a returning server is tried at least every
        ``max(poll, 5 s)``."""
        return self._backoff.next_delay_within(max(self._poll_s, PROBE_EVERY_S))

    def reload_credentials(self) -> None:
        """SIGHUP: look at the certificate files now; a session is rebuilt when they changed
        and load (call on the event loop)."""
        if self._rotation is not None:
            self._rotation.poke()

    async def _serve_session(
        self,
        client: Client,
        nodes: Mapping[str, ua.NodeId],
        unresolved: Mapping[str, str],
        sink: ReadingSink,
    ) -> None:
        """Poll or subscribe on the session until it is lost or new certificate files load."""
        if self._config.mode == "poll":
            work = self._poll_loop(client, nodes, unresolved, sink)
        else:
            work = self._subscribe_loop(client, nodes, unresolved, sink)
        if self._rotation is None:
            await work
            return
        session = asyncio.create_task(work, name=f"opcua-{self.name}-session")
        rotated = asyncio.create_task(
            self._rotation.wait_for_rotation(self._try_security), name=f"opcua-{self.name}-certs"
        )
        try:
            await asyncio.wait({session, rotated}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            try:
                await _stop_task(rotated)
            finally:
                await _stop_task(session)  # raises what ended the session (SessionLost)
        if rotated.done() and not rotated.cancelled():
            self.certificate_rotations += 1
            raise SessionLost("certificate files changed: reconnecting with them")

    async def _try_security(self) -> None:
        """Load the security files as the next session will (raises if they cannot be used)."""
        await apply_security(Client(self._config.endpoint), self._config, self._base_dir)

    async def read_once(self) -> list[Reading]:
        """Connect, read every sensor once, disconnect (for ``edge-agent read``).

        Never raises for I/O failures: a server that cannot be reached gives bad readings
        whose reason says why.
        """
        try:
            client, nodes, unresolved = await self._open_session()
        except OpcUaError as exc:
            now = time.time_ns()
            return [bad(sensor_id, str(exc), now) for sensor_id in self._sensors]
        try:
            limit = await self._read_limit(client)
            return await self._read_all(client, nodes, unresolved, limit)
        except SessionLost as exc:
            return self._bad_all(str(exc))
        except TimeoutError:
            return self._bad_all("timeout")
        finally:
            await self._close_client(client)

    async def close(self) -> None:
        """Close the session if one is open."""
        client, self._client = self._client, None
        if client is not None:
            await self._close_client(client)

    # ------------------------------------------------------------------ readings

    def reading_from(self, sensor_id: str, dv: ua.DataValue | None, now_ns: int) -> Reading:
        """A DataValue as a ``Reading``: status → quality, SourceTimestamp kept."""
        if dv is None:
            return bad(sensor_id, "no value", now_ns)
        status = dv.StatusCode if dv.StatusCode is not None else ua.StatusCode()
        time_ns = pick_time_ns(dv.SourceTimestamp, dv.ServerTimestamp, now_ns)
        quality = quality_of(status.value)
        status_name = status.name
        if quality is Quality.BAD:
            return Reading(sensor_id, None, Quality.BAD, time_ns, status_name, status_name)
        raw = dv.Value.Value if dv.Value is not None else None
        value = self._plain_value(sensor_id, raw)
        if value is None:
            why = "no value" if raw is None else f"unsupported value type {type(raw).__name__}"
            return Reading(sensor_id, None, Quality.BAD, time_ns, why, status_name)
        if isinstance(value, str) and sensor_id in self._numeric_sensors:
            return self._text_for_a_number(sensor_id, value, time_ns, status_name)
        if isinstance(value, float) and not math.isfinite(value):
            # NaN never crosses a limit and inf always does: neither is a measurement.
            # Bad here, so `read` and `run` say the same.
            why = f"not a finite number ({value})"
            return Reading(sensor_id, None, Quality.BAD, time_ns, why, status_name)
        reason = status_name if quality is Quality.UNCERTAIN else None
        return Reading(sensor_id, value, quality, time_ns, reason, status_name)

    def _text_for_a_number(
        self, sensor_id: str, text: str, time_ns: int, status_name: str
    ) -> Reading:
        """A String node (``"99.5"``) under a rule that compares numbers: a limit never
        trips on text, so the reading is bad, counted, and logged once per sensor."""
        self.text_where_number += 1
        self.stats.read_errors += 1
        why = f"text {text[:40]!r} where a rule needs a number (the node is a String)"
        if sensor_id not in self._text_reported:
            self._text_reported.add(sensor_id)
            log.error(
                "OPC UA node holds text where a rule needs a number.",
                extra={
                    "connection": self.name,
                    "sensor": sensor_id,
                    "node": self._node_strings.get(sensor_id),
                    "value": text[:40],
                },
            )
        return Reading(sensor_id, None, Quality.BAD, time_ns, why, status_name)

    def _plain_value(self, sensor_id: str, raw: Any) -> Value:
        if isinstance(raw, bool | str):
            return raw
        if isinstance(raw, int | float):
            scale = self._sensors[sensor_id].scale
            if scale is None:
                return raw
            return raw * scale.factor + scale.offset
        return None

    def _bad_all(self, reason: str) -> list[Reading]:
        now = time.time_ns()
        return [bad(sensor_id, reason, now) for sensor_id in self._sensors]

    def _note_down(self, reason: str, exc: OpcUaError | None = None) -> None:
        self._connected.clear()
        self.stats.connected = False
        self.stats.last_error = reason
        self._disconnect_reason = f"{NOT_CONNECTED}: {reason}"
        self._refused(exc if isinstance(exc, OpcUaRefused) else None)
        log.log(
            self._outage.level(time.monotonic()),
            "OPC UA connection down.",
            extra={
                "connection": self.name,
                "reason": reason,
                "failed_attempts": self._outage.failures,
            },
        )

    def _watch_expiry(self) -> None:
        """Look at the certificates' end of validity; warn once per certificate that
        expires within 30 days (a renewed one is a new certificate: warned about anew)."""
        if not self._certificate_files:
            return
        ends = not_after(self._certificate_files)
        self.stats.certificate_not_after = ends
        now_s = time.time()
        for which, end_s in ends.items():
            warning = expiry_warning(which, end_s, now_s)
            if warning is not None and (which, end_s) not in self._expiry_warned:
                self._expiry_warned.add((which, end_s))
                log.warning(
                    "OPC UA certificate expires soon.",
                    extra={
                        "connection": self.name,
                        "which": which,
                        "file": str(self._certificate_files[which]),
                        "warning": warning,
                    },
                )

    def _refused(self, exc: OpcUaRefused | None) -> None:
        """Keep the refusal's cause for /readyz and the metric, and log it once per change of
        cause (a refusal repeats at every attempt until someone fixes it)."""
        cause = exc.cause.value if exc is not None else None
        if cause == self.stats.refused:
            return
        self.stats.refused = cause
        if exc is not None:
            log.warning(
                "OPC UA connection refused.",
                extra={"connection": self.name, "cause": cause, "reason": str(exc)},
            )

    async def _bad_while_disconnected(self, sink: ReadingSink) -> None:
        """Every poll interval without a session: a bad reading for every sensor."""
        while True:
            await asyncio.sleep(self._poll_s)
            if not self._connected.is_set():
                self.stats.read_errors += 1  # a poll interval read bad: a failed read
                await sink(self._bad_all(self._disconnect_reason))

    # ------------------------------------------------------------------ sessions

    async def _open_session(self) -> tuple[Client, dict[str, ua.NodeId], dict[str, str]]:
        """One connection attempt: a connected client, the sensors' node ids, and the
        sensors whose node id cannot be resolved on this server (with the reason)."""
        self.stats.connect_attempts += 1
        self._watch_expiry()
        config = self._config
        client = Client(
            config.endpoint,
            timeout=self._timeout_s,
            watchdog_intervall=max(MIN_CLIENT_WATCHDOG_S, 2 * self._timeout_s),
            auto_reconnect=False,
        )
        client.name = client.description = f"edge-agent {self.name}"
        client.session_timeout = SESSION_TIMEOUT_MS
        observer = _ActivityObserver()
        client.uaclient.observer = observer
        secured: ClientSecurity | None = None
        steps = ConnectSteps(client)
        session_open = False
        try:
            if self._rotation is not None:
                self._rotation.loaded()
            secured = await apply_security(client, config, self._base_dir)
            if secured is not None:
                await _check_endpoint(
                    config.endpoint,
                    config.security.policy,
                    config.security.mode,
                    secured.trusted,
                    self._timeout_s,
                )
            # asyncio.timeout, not wait_for: no inner task whose error nobody retrieves
            # when the attempt is cancelled (see _stop_if_cancelled).
            async with asyncio.timeout(self._timeout_s * 2):
                await client.connect()
            session_open = True
            nodes, unresolved = await self._resolve_nodes(client)
        except Exception as exc:
            # connect() cleans up after itself when it fails; a session that opened is closed.
            if session_open:
                await self._close_client(client)
            attempt = Attempt(steps.current, secured, config.username)
            raise await self._connect_error(exc, attempt) from exc
        self._client = client
        self.stats.connected = True
        self._connected.set()
        log.info(
            "OPC UA session open.",
            extra={
                "connection": self.name,
                "endpoint": config.endpoint,
                "security": config.security.policy.value
                if config.security.policy is not SecurityPolicy.NONE
                else "None",
                "mode": config.mode,
            },
        )
        return client, nodes, unresolved

    async def _connect_error(self, exc: Exception, attempt: Attempt) -> OpcUaError:
        """asyncua's and the network's errors in the project's terms: a refusal names its
        cause and its fix."""
        if isinstance(exc, OpcUaError):
            return exc
        named = await named_refusal(exc, attempt, self._config, self._timeout_s)
        if named is not None:
            return named
        endpoint = self._config.endpoint
        if isinstance(exc, TimeoutError):
            return OpcUaConnectError(f"timeout connecting to {endpoint}")
        if isinstance(exc, UaStatusCodeError):
            return OpcUaConnectError(f"server refused the session: {_status_name(exc)}")
        if isinstance(exc, socket.gaierror):
            host = urlsplit(endpoint).hostname
            return OpcUaConnectError(
                f"the host {host!r} of {endpoint} does not resolve: {exc.strerror or exc}"
            )
        return OpcUaConnectError(f"cannot connect to {endpoint}: {_describe(exc)}")

    async def _resolve_nodes(self, client: Client) -> tuple[dict[str, ua.NodeId], dict[str, str]]:
        nodes: dict[str, ua.NodeId] = {}
        unresolved: dict[str, str] = {}
        namespaces: list[str] | None = None
        for sensor_id, text in self._node_strings.items():
            if text.startswith("nsu="):
                uri, _, rest = text[len("nsu=") :].partition(";")
                if namespaces is None:
                    namespaces = list(await client.get_namespace_array())
                if uri not in namespaces:
                    unresolved[sensor_id] = f"namespace {uri} is not on the server"
                    continue
                text = f"ns={namespaces.index(uri)};{rest}"
            try:
                nodes[sensor_id] = ua.NodeId.from_string(text)
            except (ValueError, UaError) as exc:
                unresolved[sensor_id] = f"bad node id {text!r}: {exc}"
        return nodes, unresolved

    async def _close_client(self, client: Client) -> None:
        if self._client is client:
            self._client = None
        try:
            await asyncio.wait_for(client.disconnect(), timeout=self._timeout_s)
        except Exception as exc:  # closing a dead session fails in many ways; none matter
            log.debug(
                "OPC UA disconnect failed.", extra={"connection": self.name, "error": repr(exc)}
            )
            with contextlib.suppress(Exception):
                client.disconnect_socket()

    # ------------------------------------------------------------------ poll mode

    async def _read_limit(self, client: Client) -> int:
        """min(server MaxNodesPerRead (0 = no limit), max_nodes_per_read, 1000)."""
        limit = min(self._config.max_nodes_per_read, HARD_MAX_NODES_PER_READ)
        try:
            [dv] = await client.uaclient.read_attributes(
                [MAX_NODES_PER_READ_NODE], AttributeIds.Value
            )
        except (TimeoutError, UaError):
            return limit
        except TRANSPORT_ERRORS as exc:
            raise SessionLost(_describe(exc)) from exc
        server_limit = dv.Value.Value if dv.Value is not None else None
        good = dv.StatusCode is None or dv.StatusCode.is_good()
        if good and isinstance(server_limit, int) and server_limit > 0:
            limit = min(limit, server_limit)
        return limit

    async def _read_all(
        self,
        client: Client,
        nodes: Mapping[str, ua.NodeId],
        unresolved: Mapping[str, str],
        limit: int,
    ) -> list[Reading]:
        """One poll cycle: every node, in chunks of ``limit``, one Read request each.

        A chunk the server refuses (a service fault) gives bad readings for its sensors
        only; a transport failure raises :class:`SessionLost`.
        """
        sensor_ids = list(nodes)
        node_ids = list(nodes.values())
        readings: list[Reading] = []
        for start in range(0, len(node_ids), limit):
            chunk_ids = sensor_ids[start : start + limit]
            self.stats.requests += 1
            try:
                values = await client.uaclient.read_attributes(
                    node_ids[start : start + limit], AttributeIds.Value
                )
            except UaStatusCodeError as exc:
                self.stats.read_errors += 1
                reason = _status_name(exc)
                now = time.time_ns()
                readings += [bad(sensor_id, reason, now, reason) for sensor_id in chunk_ids]
                continue
            except TRANSPORT_ERRORS as exc:
                raise SessionLost(_describe(exc)) from exc
            now = time.time_ns()
            readings += [
                self.reading_from(sensor_id, dv, now)
                for sensor_id, dv in zip(chunk_ids, values, strict=False)
            ]
            if len(values) < len(chunk_ids):  # a server that answers short: never lose a sensor
                readings += [bad(s, "no result from server", now) for s in chunk_ids[len(values) :]]
        now = time.time_ns()
        readings += [bad(sensor_id, reason, now) for sensor_id, reason in unresolved.items()]
        return readings

    async def _poll_loop(
        self,
        client: Client,
        nodes: Mapping[str, ua.NodeId],
        unresolved: Mapping[str, str],
        sink: ReadingSink,
    ) -> None:
        limit = await self._read_limit(client)
        timeouts = 0
        next_cycle = time.monotonic()
        while True:
            if client.uaclient.state is not UaClientState.CONNECTED:
                raise SessionLost(f"client state {client.uaclient.state.value}")
            started = time.monotonic()
            try:
                readings = await self._read_all(client, nodes, unresolved, limit)
            except TimeoutError:
                timeouts += 1
                self.stats.read_errors += 1
                if timeouts >= MAX_CONSECUTIVE_TIMEOUTS:
                    raise SessionLost(f"{timeouts} read timeouts in a row") from None
                readings = self._bad_all("timeout")
            else:
                timeouts = 0
                self.stats.reads += 1
                self.stats.last_good_read_ns = time.time_ns()
            self.stats.last_latency_s = time.monotonic() - started
            await sink(readings)
            next_cycle = self._next_cycle(next_cycle)
            await asyncio.sleep(max(0.0, next_cycle - time.monotonic()))

    def _next_cycle(self, previous: float) -> float:
        """The next cycle's start; an overrun is counted and the schedule restarts from
        now instead of firing the missed cycles back to back."""
        upcoming = previous + self._poll_s
        now = time.monotonic()
        if now > upcoming:
            self.stats.overruns += 1
            # Logged at most once a minute: a poll that always overruns must not flood logs.
            if now - self._overrun_logged_at >= OVERRUN_LOG_INTERVAL_S:
                self._overrun_logged_at = now
                log.warning(
                    "OPC UA poll cycle overran its interval.",
                    extra={
                        "connection": self.name,
                        "interval_s": self._poll_s,
                        "cycle_s": self.stats.last_latency_s,
                        "overruns": self.stats.overruns,
                    },
                )
            return now
        return upcoming

    # ------------------------------------------------------------------ subscribe mode

    def _subscription_parameters(self) -> ua.CreateSubscriptionParameters:
        """Publishing interval = sampling interval; a keep-alive at least three times per
        watchdog window, so a healthy but quiet subscription is never taken for silent."""
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = self._sampling_ms
        keepalive_s = self._watchdog_s / 3
        params.RequestedMaxKeepAliveCount = max(
            1, int(keepalive_s * 1000 / max(self._sampling_ms, 1.0))
        )
        params.RequestedLifetimeCount = max(10_000, 3 * params.RequestedMaxKeepAliveCount)
        params.MaxNotificationsPerPublish = 0  # no limit
        params.PublishingEnabled = True
        params.Priority = 0
        return params

    def _monitored_item(self, handle: int, node_id: ua.NodeId) -> ua.MonitoredItemCreateRequest:
        item = ua.MonitoredItemCreateRequest()
        item.ItemToMonitor = ua.ReadValueId()
        item.ItemToMonitor.NodeId = node_id
        item.ItemToMonitor.AttributeId = AttributeIds.Value
        item.MonitoringMode = ua.MonitoringMode.Reporting
        params = ua.MonitoringParameters()
        params.ClientHandle = handle
        params.SamplingInterval = self._sampling_ms
        params.QueueSize = 1
        params.DiscardOldest = True
        if self._config.deadband > 0:
            params.Filter = ua.DataChangeFilter(
                Trigger=ua.DataChangeTrigger.StatusValue,
                DeadbandType=ua.DeadbandType.Absolute,
                DeadbandValue=self._config.deadband,
            )
        item.RequestedParameters = params
        return item

    async def _subscribe_loop(
        self,
        client: Client,
        nodes: Mapping[str, ua.NodeId],
        unresolved: Mapping[str, str],
        sink: ReadingSink,
    ) -> None:
        observer = client.uaclient.observer
        assert isinstance(observer, _ActivityObserver)
        handles = {handle: sensor_id for handle, sensor_id in enumerate(nodes, start=1)}
        handler = _DataChangeHandler(self, handles, maxsize=max(1000, 4 * len(nodes)))
        failed: dict[str, str] = dict(unresolved)
        try:
            subscription = await client.create_subscription(self._subscription_parameters(), None)
            handler.attach(subscription)
            limit = await self._read_limit(client)
            items = [self._monitored_item(h, nodes[s]) for h, s in handles.items()]
            for start in range(0, len(items), limit):
                results = await subscription.create_monitored_items(items[start : start + limit])
                for item, result in zip(items[start : start + limit], results, strict=True):
                    if isinstance(result, ua.StatusCode):
                        sensor_id = handles[item.RequestedParameters.ClientHandle]
                        failed[sensor_id] = result.name
        except UaStatusCodeError as exc:
            raise SessionLost(f"cannot subscribe: {_status_name(exc)}") from exc
        except (TimeoutError, *TRANSPORT_ERRORS, UaError) as exc:
            raise SessionLost(f"cannot subscribe: {_describe(exc)}") from exc
        if failed:
            log.warning(
                "OPC UA monitored items failed.",
                extra={"connection": self.name, "failed": dict(list(failed.items())[:20])},
            )
        consumer = asyncio.create_task(self._drain(handler, sink), name=f"opcua-{self.name}-drain")
        try:
            await self._watch(client, subscription, observer, handler, failed, sink)
        finally:
            await _stop_task(consumer)

    async def _drain(self, handler: _DataChangeHandler, sink: ReadingSink) -> None:
        """Hand queued readings to the sink in batches; awaiting the sink is the
        backpressure (the queue bounds what waits meanwhile)."""
        events = handler.events
        while True:
            batch = [await events.get()]
            while len(batch) < 10_000:
                try:
                    batch.append(events.get_nowait())
                except asyncio.QueueEmpty:
                    break
            readings = handler.readings(batch)
            if not readings:
                continue  # a status change, or asyncua's end-of-subscription marker
            self.stats.reads += 1
            self.stats.last_good_read_ns = time.time_ns()
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
        tick_s = min(self._poll_s, self._watchdog_s / 4, 1.0)
        observer.last_publish_at = time.monotonic()
        last_failed_emit = 0.0
        while True:
            await asyncio.sleep(tick_s)
            now = time.monotonic()
            if client.uaclient.state is not UaClientState.CONNECTED:
                raise SessionLost(f"client state {client.uaclient.state.value}")
            silent_for = now - observer.last_publish_at
            reason: str | None = None
            if silent_for > self._watchdog_s:
                reason = f"subscription silent for {silent_for:.1f}s (no data, no keep-alive)"
            elif observer.republishes_since(now - self._watchdog_s) > MAX_REPUBLISH_PER_WINDOW:
                reason = "client spinning on Republish"
            elif handler.status_problem is not None:
                reason = handler.status_problem
            if reason is not None:
                self.subscription_rebuilds += 1
                log.warning(
                    "OPC UA subscription rebuilt.",
                    extra={
                        "connection": self.name,
                        "reason": reason,
                        "subscription_id": subscription.subscription_id,
                    },
                )
                raise SessionLost(reason)
            if failed and now - last_failed_emit >= self._poll_s:
                # Failed monitored items never notify; keep saying so, like a poll would.
                last_failed_emit = now
                stamp = time.time_ns()
                await sink([bad(sensor_id, why, stamp, why) for sensor_id, why in failed.items()])


async def _stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel a helper task and wait for it, without swallowing a cancellation aimed at
    the task that is waiting (``suppress(CancelledError)`` would: ``run`` would never end)."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


def _stop_if_cancelled() -> None:
    """Raise the cancellation an ``asyncio.wait_for`` swallowed. On Python 3.11, when the
    awaited call fails just as the task is cancelled, ``wait_for`` (asyncua uses it inside
    ``connect()``) raises the call's error instead of ``CancelledError``: ``run`` took it for
    a failed attempt and went on, and whoever cancelled it waited for ever (22 of 200
    cancellations of a fast-failing unsecured client were lost; 0 with this check)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _status_name(exc: UaStatusCodeError) -> str:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return ua.StatusCode(ua.UInt32(code)).name
    return str(exc) or type(exc).__name__


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["NOT_CONNECTED", "OpcUaSource"]
