"""One MQTT connection kept alive for asyncio code: paho's network thread bridged to a loop.

paho-mqtt 2.x runs its network loop in a thread (``loop_start``). Its callbacks here do
nothing but ``loop.call_soon_threadsafe``: every future and every piece of state is only
touched on the event loop, so no lock of ours is ever held while paho holds its own (paho
calls ``on_publish`` under its lock; a shared lock deadlocks).

Reconnecting is ours, not paho's: each connection is a fresh paho ``Client`` (so paho never
replays a stale in-memory queue behind our back), connected after an exponential backoff
with full jitter capped by the config (60 s by default). Sessions are persistent
(``clean_start=False`` / ``clean_session=False``; v5 with a session expiry), so the broker
keeps our subscriptions and queued QoS 1 messages across reconnects.

The agent's MQTT forwarder and the hub's consumer both stand on it (the hub passes
``subscriptions`` and ``on_message``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.common.backoff import Backoff
from edge_agent.common.mqtt_errors import (
    MqttConfigError,
    MqttDisconnected,
    MqttError,
    MqttPublishRefused,
)
from edge_agent.common.mqtt_failures import describe_connect_error, describe_socket_error
from edge_agent.common.mqtt_tls import tls_context, tls_files
from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.models import Mqtt
from edge_agent.config.secrets import SecretError, resolve
from edge_agent.redaction import redact_bytes

# The errors and the TLS helpers are part of this module's interface (forwarder, hub).
__all__ = [
    "Message",
    "MqttConfigError",
    "MqttDisconnected",
    "MqttError",
    "MqttLink",
    "MqttPublishRefused",
    "Will",
    "tls_context",
    "tls_files",
]

log = logging.getLogger(__name__)

DEFAULT_SESSION_EXPIRY_S: Final = 7 * 24 * 3600
CONNECT_TIMEOUT_S: Final = 10.0
ACK_TIMEOUT_KEEPALIVES: Final = 1.5
"""A PUBACK later than this many keepalives ends the connection (the broker gives a silent
client as long)."""
ACK_CHECK_S: Final = 1.0
"""How often the oldest unacknowledged publish is looked at."""

ProtocolName = Literal["5", "3.1.1"]


@dataclass(frozen=True)
class Will:
    """A message the broker publishes for us when we vanish (and our birth's counterpart)."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class Message:
    """A received message, delivered on the event loop."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    connection: int = 0
    """Which connection of the link delivered it: :meth:`MqttLink.ack_message` acknowledges
    only on that one (after a reconnect the broker redelivers it, maybe under another id)."""


class _PahoErrors(logging.Handler):
    """Hands each error line paho logs (network thread) to ``deliver``."""

    def __init__(self, deliver: Callable[[str], None]) -> None:
        super().__init__(logging.ERROR)
        self._deliver = deliver

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # never raise into paho's thread
            self._deliver(record.getMessage())


class MqttLink:
    """An MQTT connection that reconnects by itself; publish and receive from asyncio.

    Lifecycle: construct (no I/O), ``await start()`` (starts the background connection
    task and returns at once), ``await wait_connected()``, ``publish(...)`` and await the
    returned future, ``await close()``.

    ``birth`` is published (QoS 1) after every successful connect, before ``connected`` is
    set; ``will`` is registered with the broker on connect. ``on_message`` is called on the
    event loop for each message of ``subscriptions`` (re-subscribed after every connect);
    with ``manual_ack=True`` a QoS 1 message is acknowledged only when the handler calls
    :meth:`ack_message` (at-least-once processing).
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        tls: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        protocol: ProtocolName = "5",
        keepalive_s: int = 30,
        will: Will | None = None,
        birth: Callable[[], Will] | None = None,
        backoff: Backoff | None = None,
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        subscriptions: Sequence[tuple[str, int]] = (),
        on_message: Callable[[Message], None] | None = None,
        max_inflight: int = 20,
        manual_ack: bool = False,
        clean_start: bool = False,
        client_certificate: bool | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self._tls = tls
        self._username = username
        self._password = password
        self.protocol = protocol
        self._keepalive_s = max(1, keepalive_s)
        self._will = will
        self._birth = birth
        self._backoff = backoff or Backoff(0.5, 60.0)
        self._session_expiry_s = session_expiry_s
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._max_inflight = max_inflight
        self._manual_ack = manual_ack
        # MQTT v5 clean start: drop any session the broker kept for this client id (a hub
        # replica whose shared subscription must live only while it is connected).
        self._clean_start = clean_start
        # Whether the TLS context offers a client certificate (None: not known), for the
        # words of a refused handshake.
        self._client_certificate = client_certificate
        self._socket_errors: list[str] = []  # what paho logged as errors on this connection

        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._suback_pending: set[int] = set()
        self._closing = False
        self._pending: dict[int, asyncio.Future[None]] = {}
        # paho's callbacks, in order, for the loop: one wake-up of the loop per burst
        # rather than one per message (see _call).
        self._handoff: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._handoff_scheduled = False
        self._sent_at: dict[int, float] = {}  # mid → monotonic send time, until its PUBACK
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._lost: asyncio.Future[str] | None = None
        self.connects = 0
        self.connect_attempts = 0
        self._connection = 0  # numbers each paho client: see Message.connection
        self.last_error: str | None = None

    @classmethod
    def from_config(
        cls,
        config: Mqtt,
        client_id: str,
        base_dir: Path | None,
        **kwargs: Any,
    ) -> MqttLink:
        """Build from a ``forwarding.mqtt`` section: resolves the password secret and loads
        the TLS files (raises :class:`MqttConfigError`; no network I/O)."""
        password: str | None = None
        if config.password is not None:
            try:
                password = resolve(config.password, base_dir).reveal()
            except SecretError as exc:
                raise MqttConfigError(f"MQTT password: {exc}") from exc
        context = tls_context(config.tls, base_dir) if config.tls is not None else None
        port = config.port or (8883 if context is not None else 1883)
        return cls(
            config.host,
            port,
            client_id,
            tls=context,
            client_certificate=None if config.tls is None else config.tls.certificate is not None,
            username=config.username,
            password=password,
            protocol=config.protocol,
            keepalive_s=max(1, round(config.keepalive / NS_PER_S)),
            backoff=Backoff.from_config(config.backoff),
            max_inflight=config.inflight,
            **kwargs,
        )

    # -- state -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    @property
    def subscribed(self) -> bool:
        """True once the broker acknowledged every subscription of the current connection."""
        return self._subscribed.is_set()

    async def wait_subscribed(self) -> None:
        """Until the broker acknowledged every subscription of the current connection."""
        await self._subscribed.wait()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background connection task (returns at once; it retries forever)."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        # A run left behind by an earlier loop (closed before it ran) would hold every
        # callback back for good.
        self._handoff.clear()
        self._handoff_scheduled = False
        self._closing = False
        self._task = asyncio.create_task(self._maintain(), name=f"mqtt-link-{self.client_id}")

    async def close(self, farewell: Will | None = None, timeout_s: float = 2.0) -> None:
        """Publish ``farewell`` (e.g. the retained ``offline``) if connected, disconnect,
        and stop the background task. Pending publishes fail with MqttDisconnected."""
        self._closing = True
        if farewell is not None and self.connected:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
            # that arrives as the awaited future completes.
            with contextlib.suppress(MqttError, TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self.publish(
                        farewell.topic, farewell.payload, farewell.qos, farewell.retain
                    )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop_client("closed")

    # -- publish / receive -----------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        """Send one message; the future resolves when the broker acknowledged it (QoS 1:
        PUBACK) or fails with MqttDisconnected / MqttPublishRefused. Call on the loop."""
        loop = self._require_loop()
        future: asyncio.Future[None] = loop.create_future()
        client = self._client
        if client is None or not self.connected:
            future.set_exception(MqttDisconnected("not connected"))
            return future
        # The one door to the broker for the agent and the hub: no secret goes through it.
        info = client.publish(topic, redact_bytes(payload), qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            future.set_exception(MqttDisconnected(f"publish failed: {paho.error_string(info.rc)}"))
            return future
        if qos == 0:
            future.set_result(None)
            return future
        # Registered before any PUBACK can be handled: the callback only schedules
        # _on_publish_loop on this loop, which runs after we return.
        self._pending[info.mid] = future
        self._sent_at[info.mid] = time.monotonic()
        return future

    def ack_message(self, message: Message) -> None:
        """Acknowledge a received QoS 1 message (only when built with manual acks). A message
        delivered on an earlier connection is not acknowledged: its packet id may name
        another message now, and the broker redelivers it anyway."""
        client = self._client
        if client is not None and self.is_current(message) and message.qos > 0:
            client.ack(message.mid, message.qos)

    def is_current(self, message: Message) -> bool:
        """True while the connection that delivered ``message`` is still the live one."""
        return self._client is not None and message.connection == self._connection

    # -- connection management (event loop) -----------------------------------------------

    async def _maintain(self) -> None:
        while not self._closing:
            self.connect_attempts += 1
            try:
                await self._connect_once()
            except MqttConfigError:
                raise
            except Exception as exc:
                # OSError, TimeoutError and MqttError are the expected ones; anything else
                # (a paho surprise) is logged with its traceback but must not end this task:
                # a dead task would leave the link silently disconnected for good.
                if not isinstance(exc, OSError | MqttError | TimeoutError):
                    log.exception("Unexpected error while connecting to MQTT; retrying.")
                self.last_error = str(exc) or type(exc).__name__
                await self._drop_client(self.last_error)
                delay = self._backoff.next_delay()
                log.warning(
                    "MQTT connect failed; retrying.",
                    extra={
                        "host": self.host,
                        "port": self.port,
                        "client_id": self.client_id,
                        "error": self.last_error,
                        "retry_in_s": round(delay, 3),
                    },
                )
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            self.connects += 1
            log.info(
                "MQTT connected.",
                extra={"host": self.host, "port": self.port, "client_id": self.client_id},
            )
            assert self._lost is not None
            reason = await self._until_lost(self._lost)
            self.last_error = reason
            await self._drop_client(reason)
            if self._is_closing():
                return
            delay = self._backoff.next_delay()
            log.warning(
                "MQTT connection lost; reconnecting.",
                extra={
                    "host": self.host,
                    "port": self.port,
                    "reason": reason,
                    "retry_in_s": round(delay, 3),
                },
            )
            await asyncio.sleep(delay)

    async def _until_lost(self, lost: asyncio.Future[str]) -> str:
        """Why the connection ended: the broker's or paho's reason, or a PUBACK overdue. A
        link that swallows a PUBLISH and keeps passing the rest (a middlebox, a broker in
        trouble) leaves the message unacknowledged for good; QoS 1 resends only on a new
        connection, so an overdue PUBACK ends this one (found by the fault campaign)."""
        deadline_s = ACK_TIMEOUT_KEEPALIVES * self._keepalive_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(ACK_CHECK_S, deadline_s)):
                    return await asyncio.shield(lost)
            oldest = min(self._sent_at.values(), default=None)
            if oldest is not None and time.monotonic() - oldest > deadline_s:
                log.warning(
                    "No PUBACK in time; the connection is treated as broken.",
                    extra={
                        "host": self.host,
                        "port": self.port,
                        "waited_s": deadline_s,
                        "unacknowledged": len(self._sent_at),
                    },
                )
                return f"no PUBACK within {deadline_s:.0f} s"

    async def _connect_once(self) -> None:
        loop = self._require_loop()
        client = self._new_client()
        self._client = client
        self._connack = loop.create_future()
        self._lost = loop.create_future()
        properties: Properties | None = None
        if self.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._session_expiry_s
            clean_start: Any = self._clean_start
        else:
            clean_start = paho.MQTT_CLEAN_START_FIRST_ONLY  # ignored by 3.1.1
        self._socket_errors = []
        # connect() resolves the name, opens TCP and does the TLS handshake: blocking.
        try:
            await asyncio.to_thread(
                client.connect,
                self.host,
                self.port,
                self._keepalive_s,
                clean_start=clean_start,
                properties=properties,
            )
        except OSError as exc:
            described = describe_connect_error(exc, self.host, self.port)
            if described is None:
                raise
            raise MqttDisconnected(described) from exc
        self._set_nodelay(client)
        client.loop_start()
        waiting: set[asyncio.Future[Any]] = {self._connack, self._lost}
        done, _ = await asyncio.wait(
            waiting, timeout=CONNECT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if self._connack not in done:
            reason = self._lost.result() if self._lost in done else "no CONNACK in time"
            # A broker that refuses our certificate does so after the handshake (TLS 1.3):
            # paho then only says "Unspecified error"; the alert is in what it logged.
            refused = describe_socket_error(
                "\n".join(self._socket_errors), self._client_certificate
            )
            raise MqttDisconnected(refused or f"connect failed: {reason}")
        code = self._connack.result()
        if code.is_failure:
            raise MqttDisconnected(f"broker refused the connection: {code}")
        if self._birth is not None:
            birth = self._birth()
            client.publish(birth.topic, birth.payload, qos=birth.qos, retain=birth.retain)
        self._subscribed.clear()
        for topic, qos in self._subscriptions:
            _, mid = client.subscribe(topic, qos=qos)
            if mid is not None:
                self._suback_pending.add(mid)
        if not self._suback_pending:
            self._subscribed.set()
        self._connected.set()

    @staticmethod
    def _set_nodelay(client: paho.Client) -> None:
        # Small QoS 1 packets in a window: without TCP_NODELAY, Nagle's algorithm holds
        # each one back until the previous segment is acknowledged (tens of ms each).
        sock = client.socket()
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _new_client(self) -> paho.Client:
        self._connection += 1
        if self.protocol == "5":
            client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                userdata=self._connection,
                protocol=paho.MQTTv5,
                reconnect_on_failure=False,
                manual_ack=self._manual_ack,
            )
        else:
            client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                userdata=self._connection,
                clean_session=False,
                protocol=paho.MQTTv311,
                reconnect_on_failure=False,
                manual_ack=self._manual_ack,
            )
        client.max_inflight_messages_set(max(1, self._max_inflight))
        client.max_queued_messages_set(0)
        if self._tls is not None:
            client.tls_set_context(self._tls)
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        if self._will is not None:
            client.will_set(
                self._will.topic, self._will.payload, qos=self._will.qos, retain=self._will.retain
            )
        client.on_connect = self._cb_connect
        client.on_disconnect = self._cb_disconnect
        client.on_publish = self._cb_publish
        client.on_message = self._cb_message
        client.on_subscribe = self._cb_subscribe
        client.enable_logger(self._error_logger(client))
        return client

    def _error_logger(self, client: paho.Client) -> logging.Logger:
        """Where paho's error lines go (a broker's TLS alert is only there): kept for the
        connect error. A logger of its own at ERROR: paho's per-packet debug lines are then
        never formatted, and none reaches the agent's log."""
        logger = logging.Logger(f"{__name__}.paho", logging.ERROR)
        logger.propagate = False
        logger.addHandler(_PahoErrors(partial(self._call, self._on_log_error_loop, client)))
        return logger

    async def _drop_client(self, reason: str) -> None:
        """Forget the current client: fail its pending publishes, stop its thread."""
        self._connected.clear()
        self._subscribed.clear()
        self._suback_pending.clear()
        client, self._client = self._client, None
        pending, self._pending = self._pending, {}
        self._sent_at.clear()
        for future in pending.values():
            if not future.done():
                future.set_exception(MqttDisconnected(reason))
        if client is not None:
            client.on_connect = None
            client.on_disconnect = None
            client.on_publish = None
            client.on_message = None
            client.on_subscribe = None
            client.disable_logger()
            with contextlib.suppress(Exception):
                client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            with contextlib.suppress(Exception):
                client._reset_sockets()  # close paho's wake-up socket pair (no public API)

    def _is_closing(self) -> bool:
        return self._closing

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise MqttError("the link is not started")
        return self._loop

    # -- paho callbacks (network thread): only hand over to the loop ----------------------

    def _cb_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._call(self._on_connect_loop, client, reason_code)

    def _cb_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._call(self._on_disconnect_loop, client, str(reason_code))

    def _cb_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        self._call(
            self._on_publish_loop,
            client,
            mid,
            reason_code.is_failure,
            str(reason_code),
            reason_code.value,
        )

    def _cb_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        received = Message(
            topic=message.topic,
            payload=bytes(message.payload),
            qos=message.qos,
            retain=bool(message.retain),
            mid=message.mid,
            connection=userdata if isinstance(userdata, int) else 0,
        )
        self._call(self._on_message_loop, client, received)

    def _cb_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        failures = [str(code) for code in reason_codes if code.is_failure]
        self._call(self._on_subscribe_loop, client, mid, failures)

    def _call(self, func: Callable[..., None], *args: Any) -> None:
        """From paho's thread: run ``func(*args)`` on the loop, after what came before it.
        Only the first call of a burst wakes the loop (a write to its self-pipe each);
        the rest join the queue it empties (issue 16: a wake-up per PUBACK and per result
        was a tenth of a confirmed drain's CPU)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._handoff.append((func, args))
        if self._handoff_scheduled:
            return  # the loop has not emptied the queue yet: it takes this one too
        self._handoff_scheduled = True
        try:
            loop.call_soon_threadsafe(self._run_handoff)
        except RuntimeError:  # loop closing: nothing left to tell
            self._handoff_scheduled = False

    def _run_handoff(self) -> None:
        # Cleared before emptying: a callback queued from here on schedules a new run.
        self._handoff_scheduled = False
        handoff = self._handoff
        while handoff:
            func, args = handoff.popleft()
            try:
                func(*args)
            except Exception:  # one callback's bug must not drop the ones behind it
                log.exception("MQTT callback failed on the event loop.")

    # -- the same, on the loop --------------------------------------------------------------

    def _on_connect_loop(self, client: paho.Client, reason_code: ReasonCode) -> None:
        if client is self._client and self._connack is not None and not self._connack.done():
            self._connack.set_result(reason_code)

    def _on_log_error_loop(self, client: paho.Client, text: str) -> None:
        # The first errors say why; the rest follow from them.
        if client is self._client and len(self._socket_errors) < 5:
            self._socket_errors.append(text[:500])

    def _on_disconnect_loop(self, client: paho.Client, reason: str) -> None:
        if client is self._client and self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)

    def _on_publish_loop(
        self, client: paho.Client, mid: int, failed: bool, reason: str, code: int
    ) -> None:
        if client is not self._client:
            return
        future = self._pending.pop(mid, None)
        self._sent_at.pop(mid, None)
        if future is None or future.done():
            return
        if failed:
            future.set_exception(MqttPublishRefused(reason, code))
        else:
            future.set_result(None)

    def _on_subscribe_loop(self, client: paho.Client, mid: int, failures: list[str]) -> None:
        if client is not self._client:
            return
        if failures:
            log.error(
                "MQTT subscription refused.",
                extra={"client_id": self.client_id, "reasons": failures},
            )
        self._suback_pending.discard(mid)
        if not self._suback_pending:
            self._subscribed.set()

    def _on_message_loop(self, client: paho.Client, message: Message) -> None:
        if client is self._client and self._on_message is not None:
            try:
                self._on_message(message)
            except Exception:
                log.exception("MQTT message handler failed.", extra={"topic": message.topic})
