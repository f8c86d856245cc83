"""The one small HTTP/1.1 server of the project: the agent's and the hub's health endpoints
and the hub's MaintainX webhook endpoint all run on it.

Requests are parsed by h11 (already installed with httpx; ~10 ms and ~0.5 MiB to import on
top of asyncio) on asyncio streams: no framework, one request per connection. What a
gateway with ``ulimit -n 1024`` needs from it is bounds, all in :class:`Limits`:

- at most ``max_connections`` at once. When full, the connection that has waited longest
  without sending a whole request is closed to make room (slow clients cannot lock out a
  prober that asks at once); when every connection is already being answered, the new one
  gets 503 at once. Either way the file descriptors this server holds stay bounded.
- one timeout for the whole request (head and body), not per line: a client sending one
  header line every few seconds is cut after ``request_timeout_s``.
- the head (request line and headers) and the body are bounded in bytes.

Every response body passes :func:`edge_agent.redaction.redact_bytes`: a handler cannot put
a secret on the wire, whatever error text it quotes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final

import h11

from edge_agent.errors import EdgeAgentError
from edge_agent.redaction import redact_bytes

log = logging.getLogger(__name__)

_READ_CHUNK: Final = 16 * 1024
# The kernel's queue of connections not yet accepted (and how many asyncio accepts in one
# go). Too short and a burst of clients is dropped at SYN (a 1 s retransmit for a prober);
# what it costs is at most this many file descriptors more for an instant.
ACCEPT_BACKLOG: Final = 128


class ListenError(EdgeAgentError, OSError):
    """The server could not listen (address taken, not allowed, unknown host)."""


@dataclass(frozen=True)
class Limits:
    """The bounds of one server (see the module doc)."""

    max_connections: int = 64
    request_timeout_s: float = 5.0
    max_head_bytes: int = 16 * 1024
    max_body_bytes: int = 0
    handler_timeout_s: float = 30.0


@dataclass(frozen=True)
class Request:
    """One request as received: header names lower case, the body whole."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]


@dataclass(frozen=True)
class Response:
    """What a handler answers."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class _Connection:
    task: asyncio.Task[None] | None
    writer: asyncio.StreamWriter
    opened: float
    answering: bool = False
    # Set when this server cancels the connection's task (eviction, close): the task then
    # ends quietly, since asyncio reports a cancelled connection callback as an error.
    cut: bool = False


@dataclass
class ServerStats:
    """What the server did, for metrics: ``dropped`` by reason (``evicted``, ``busy``,
    ``timeout``, ``bad_request``, ``too_large``, ``handler_error``)."""

    accepted: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


class HttpServer:
    """Serves ``handler`` on ``host:port`` within ``limits`` until :meth:`close`.

    ``name`` says which endpoint this is in log lines and metrics (``health``, ``webhooks``);
    ``on_drop`` hears every reason a request was refused (for an owner's own counters).
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        name: str,
        limits: Limits,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self._host = host
        self._on_drop = on_drop
        self._port = port
        self._handler = handler
        self.name = name
        self.limits = limits
        self.stats = ServerStats()
        self._server: asyncio.Server | None = None
        self._connections: dict[int, _Connection] = {}

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._accept, self._host, self._port, backlog=ACCEPT_BACKLOG
            )
        except OSError as exc:
            raise ListenError(exc.errno, exc.strerror or str(exc)) from exc

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._connections.values()):
            self._cut(connection)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self._server.wait_closed()
        self._server = None

    # -- one connection ------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        if len(self._connections) >= self.limits.max_connections and not self._make_room():
            self._drop("busy")
            # Tiny: it fits the socket buffer, so close (after the flush) without waiting.
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n")
            writer.write(b"Connection: close\r\n\r\n")
            writer.close()
            return
        key = id(writer)
        connection = _Connection(asyncio.current_task(), writer, time.monotonic())
        self._connections[key] = connection
        try:
            response = await self._answer(reader, connection)
            if response is not None:
                await self._send(writer, response)
        except asyncio.CancelledError:
            if not connection.cut:
                raise
        finally:
            self._connections.pop(key, None)
            if not writer.transport.is_closing():
                writer.transport.abort()

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for its request; False when every
        connection is being answered."""
        waiting = [c for c in self._connections.values() if not c.answering]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c.opened)
        self._connections.pop(id(oldest.writer), None)
        self._cut(oldest)
        self._drop("evicted")
        return True

    @staticmethod
    def _cut(connection: _Connection) -> None:
        connection.cut = True
        connection.writer.transport.abort()
        if connection.task is not None:
            connection.task.cancel()

    async def _answer(
        self, reader: asyncio.StreamReader, connection: _Connection
    ) -> Response | None:
        try:
            async with asyncio.timeout(self.limits.request_timeout_s):
                request = await self._read_request(reader, connection.writer)
        except TimeoutError:
            self._drop("timeout")
            return _plain(408, b"request not received in time\n")
        except _Refused as refused:
            self._drop(refused.reason)
            return refused.response
        except (ConnectionError, asyncio.IncompleteReadError):
            return None
        if request is None:  # closed before a request started: nothing to answer
            return None
        connection.answering = True
        try:
            async with asyncio.timeout(self.limits.handler_timeout_s):
                return await self._handler(request)
        except Exception:
            self._drop("handler_error")
            log.exception(
                "HTTP request failed.",
                extra={"server": self.name, "method": request.method, "path": request.path},
            )
            return _plain(500, b"internal error\n")

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | None:
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head_bytes)
        head: h11.Request | None = None
        body = bytearray()
        received = 0
        while True:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                status = 431 if exc.error_status_hint == 431 else 400
                raise _Refused(
                    "too_large" if status == 431 else "bad_request",
                    _plain(status, b"bad request\n"),
                ) from exc
            if event is h11.NEED_DATA:
                if parser.they_are_waiting_for_100_continue and head is not None:
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                data = await reader.read(_READ_CHUNK)
                received += len(data)
                parser.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
                if _content_length(event) > self.limits.max_body_bytes:
                    raise _Refused("too_large", _plain(413, b"request body too large\n"))
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.limits.max_body_bytes:
                    raise _Refused("too_large", _plain(413, b"request body too large\n"))
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return Request(
                    method=head.method.decode("ascii", errors="replace"),
                    target=head.target.decode("latin-1"),
                    headers={
                        name.decode("latin-1").lower(): value.decode("latin-1")
                        for name, value in head.headers
                    },
                    body=bytes(body),
                )
            elif isinstance(event, h11.ConnectionClosed):
                if received:
                    raise _Refused("bad_request", _plain(400, b"bad request\n"))
                return None

    async def _send(self, writer: asyncio.StreamWriter, response: Response) -> None:
        body = redact_bytes(response.body)
        phrase = _phrase(response.status)
        lines = [
            f"HTTP/1.1 {response.status} {phrase}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            "Connection: close",
            *(f"{name}: {value}" for name, value in response.headers),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            writer.write(head + body)
            # A client that does not read its answer holds the socket no longer than this.
            async with asyncio.timeout(self.limits.request_timeout_s):
                await writer.drain()
                writer.close()
                await writer.wait_closed()
        except (ConnectionError, TimeoutError):
            writer.transport.abort()

    def _drop(self, reason: str) -> None:
        self.stats.dropped[reason] += 1
        if self._on_drop is not None:
            self._on_drop(reason)
        if reason in ("evicted", "busy"):
            # The log filter folds a flood of these into one summary line.
            log.warning(
                "HTTP connection limit reached.",
                extra={
                    "server": self.name,
                    "action": reason,
                    "max_connections": self.limits.max_connections,
                },
            )


class _Refused(Exception):
    """A request refused before the handler: the reason counted and the answer to send."""

    def __init__(self, reason: str, response: Response) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response


def _content_length(request: h11.Request) -> int:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)  # h11 has checked it is digits
    return 0


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def _plain(status: int, text: bytes) -> Response:
    return Response(status, text)
