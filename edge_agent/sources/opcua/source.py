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
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from edge_agent.common.backoff import PROBE_EVERY_S, Backoff, OutageLog
from edge_agent.common.cancellation import stop_if_cancelled, stop_task
from edge_agent.common.file_stamps import CHECK_INTERVAL_S, RotationWatch
from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.models import Defaults, OpcUa, SecurityPolicy, Sensor
from edge_agent.interfaces import ConnectionStats, ReadingSink
from edge_agent.readings import Reading, bad
from edge_agent.sources.opcua.errors import (
    OpcUaConnectError,
    OpcUaError,
    OpcUaRefused,
)
from edge_agent.sources.opcua.expiry import certificate_files, expiry_warning, not_after
from edge_agent.sources.opcua.failures import (
    TRANSPORT_ERRORS,
    SessionLost,
    describe,
    status_name,
)
from edge_agent.sources.opcua.files import security_files
from edge_agent.sources.opcua.logger import log
from edge_agent.sources.opcua.poll import PollMode
from edge_agent.sources.opcua.refusals import Attempt, ConnectSteps, named_refusal
from edge_agent.sources.opcua.security import ClientSecurity, apply_security
from edge_agent.sources.opcua.security import check_server_endpoint as _check_endpoint
from edge_agent.sources.opcua.subscription import (
    MAX_REPUBLISH_PER_WINDOW,
    SubscriptionMode,
    SubscriptionSettings,
    _ActivityObserver,
    _DataChangeHandler,
    _Notifications,
)
from edge_agent.sources.opcua.values import DataValues

NOT_CONNECTED = "not connected"
# The client's own health probe: 1 s (the default) drops busy servers for good.
MIN_CLIENT_WATCHDOG_S = 5.0
SESSION_TIMEOUT_MS = 120_000


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
        #: Sessions rebuilt by the watchdog (silence, spinning, subscription status).
        self.subscription_rebuilds = 0
        #: Notifications dropped because the reading queue was full.
        self.notifications_dropped = 0
        #: Publish responses neither decoder could read (asyncua's loop skips them).
        self.publish_decode_errors = 0
        #: Publish responses the lean decoder left to asyncua's (not a fault: counted to
        #: see how often the fast path is missed).
        self.publish_decoded_by_asyncua = 0
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
        # Both read paths turn DataValues into readings through this bound method: the
        # subscription's drain calls it once per data change, so it is not wrapped.
        self._values = DataValues(
            name, self._sensors, self._node_strings, numeric_sensors, self.stats
        )
        self.reading_from = self._values.reading_from
        self._poll = PollMode(
            name,
            self.stats,
            self._poll_s,
            connection.max_nodes_per_read,
            self.reading_from,
            self._bad_all,
        )
        self._subscription = SubscriptionMode(
            self,
            SubscriptionSettings(
                self._sampling_ms, self._watchdog_s, self._poll_s, connection.deadband
            ),
            self.reading_from,
            self._poll.read_limit,
            self._values.reading_from_lean,
        )
        self._client: Client | None = None
        self._connected = asyncio.Event()
        self._outage = OutageLog()
        self._disconnect_reason = NOT_CONNECTED
        self._backoff = Backoff.from_config(connection.backoff)
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
                    stop_if_cancelled()
                    self._note_down(str(exc), exc)
                    await asyncio.sleep(self._reconnect_delay())
                    continue
                self._backoff.reset()
                self._outage.ended()
                self._refused(None)
                try:
                    await self._serve_session(client, nodes, unresolved, sink)
                except SessionLost as exc:
                    stop_if_cancelled()
                    self._note_down(str(exc))
                except Exception as exc:  # a bug must not end the source: log it, rebuild
                    stop_if_cancelled()
                    log.exception("OPC UA session failed.", extra={"connection": self.name})
                    self._note_down(describe(exc))
                finally:
                    await self._close_client(client)
                # A lost session is retried after a jittered delay: a hundred agents that
                # lost the same server do not come back in step.
                await asyncio.sleep(self._reconnect_delay())
        finally:
            await stop_task(ticker)
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
            work = self._poll.run(client, nodes, unresolved, sink)
        else:
            work = self._subscription.run(client, nodes, unresolved, sink)
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
                await stop_task(rotated)
            finally:
                await stop_task(session)  # raises what ended the session (SessionLost)
        if rotated.done() and not rotated.cancelled():
            self.certificate_rotations += 1
            raise SessionLost("certificate files changed: reconnecting with them")

    async def _try_security(self) -> None:
        """Load the security files as the next session will (raises if they cannot be used)."""
        await apply_security(Client(self._config.endpoint), self._config, self._base_dir)

    @property
    def text_where_number(self) -> int:
        """Readings refused because a node held text where a rule needs a number."""
        return self._values.text_where_number

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
            limit = await self._poll.read_limit(client)
            return await self._poll.read_all(client, nodes, unresolved, limit)
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
            # when the attempt is cancelled (see failures.stop_if_cancelled).
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
            return OpcUaConnectError(f"server refused the session: {status_name(exc)}")
        if isinstance(exc, socket.gaierror):
            host = urlsplit(endpoint).hostname
            return OpcUaConnectError(
                f"the host {host!r} of {endpoint} does not resolve: {exc.strerror or exc}"
            )
        return OpcUaConnectError(f"cannot connect to {endpoint}: {describe(exc)}")

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


# Names that lived here before the subscription, the value conversion and the failure
# helpers had modules of their own; importers (tests) still find them here.
__all__ = [
    "MAX_REPUBLISH_PER_WINDOW",
    "NOT_CONNECTED",
    "TRANSPORT_ERRORS",
    "OpcUaSource",
    "SessionLost",
    "_ActivityObserver",
    "_DataChangeHandler",
    "_Notifications",
]
