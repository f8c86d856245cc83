"""The agent's control socket: ``control.sock`` in the state directory, mode 0600 (the
gateway's own user only), one JSON request per line in, one JSON answer per line out.

Made so that it is never wider than 0600, even for an instant: bound inside a fresh
private folder (0700) of the state directory, set to 0600, then renamed into place (a
process-wide ``umask`` would also narrow what other threads create meanwhile).

Bounded: a line of at most :data:`MAX_LINE_BYTES`, :data:`MAX_CONNECTIONS` at once, each
closed after :data:`IDLE_TIMEOUT_S` without a full line (the loop's monotonic clock) or
after :data:`MAX_REQUESTS` requests. A bad request gets an error answer; nothing a client
sends ends the agent. A socket that cannot be made is logged and shown in ``/readyz``
(``controls``); the agent runs on without it. A socket file removed while the agent runs
(found within :data:`CHECK_INTERVAL_S`) is made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from edge_agent.errors import EdgeAgentError
from edge_agent.wire.commands import (
    BUSY,
    MAX_COMMAND_BYTES,
    CommandResult,
    encode,
    result_document,
)

log = logging.getLogger(__name__)

SOCKET_NAME: Final = "control.sock"
MAX_LINE_BYTES: Final = MAX_COMMAND_BYTES
MAX_CONNECTIONS: Final = 8
IDLE_TIMEOUT_S: Final = 10.0
MAX_REQUESTS: Final = 100
WRITE_TIMEOUT_S: Final = 5.0
LINGER_S: Final = 1.0
MAX_LINGER_BYTES: Final = 1024 * 1024
CHECK_INTERVAL_S: Final = 5.0
"""How often the socket file is checked to still be this agent's (removed: made again)."""
MAX_ANSWER_BYTES: Final = 64 * 1024 * 1024
"""The longest answer the CLI reads (``list`` of a very large site)."""
MAX_SOCKET_PATH: Final = 107
"""``sun_path`` holds 108 bytes with its NUL."""

Handler = Callable[[bytes, str | None], Awaitable[dict[str, Any]]]


class ControlSocketError(EdgeAgentError, OSError):
    """The control socket could not be made (path too long, not ours, I/O)."""


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


def bind_private(path: Path) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 from the first moment it is reachable
    there. A stale socket left by a killed agent is replaced (the state lock says no other
    agent runs on this folder); any other file there is refused."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ControlSocketError(
            f"control socket path {path} is longer than {MAX_SOCKET_PATH} bytes; "
            "use a shorter storage.path"
        )
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ControlSocketError(f"{path} exists and is not a socket; move it away")
    private = Path(tempfile.mkdtemp(prefix=".control-", dir=path.parent))  # mode 0700
    staged = private / "s"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if len(os.fsencode(staged)) > MAX_SOCKET_PATH:
            raise ControlSocketError(f"control socket path {staged} is too long")
        sock.bind(str(staged))
        os.chmod(staged, 0o600)
        os.replace(staged, path)
        sock.listen(MAX_CONNECTIONS)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            staged.unlink()
        raise
    finally:
        with contextlib.suppress(OSError):
            private.rmdir()
    return sock


def peer_of(writer: asyncio.StreamWriter) -> str | None:
    """``uid=N pid=M`` of the connected process (Linux ``SO_PEERCRED``), for the audit."""
    sock = writer.get_extra_info("socket")
    peercred = getattr(socket, "SO_PEERCRED", None)
    if sock is None or peercred is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
    except (OSError, struct.error):
        return None
    return f"uid={uid} pid={pid}"


class ControlSocket:
    """Serves ``handler`` on the control socket; :meth:`run` is a supervised task."""

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        check_interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self.path = path
        self.check_interval_s = check_interval_s
        self.remade = 0
        """Times the socket file was found removed or replaced and made again."""
        self.handler = handler
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.error: str | None = None
        self.connections = 0
        self.refused_connections = 0
        self.bad_lines = 0
        self.listening = False
        self._server: asyncio.AbstractServer | None = None

    async def run(self) -> None:
        """Listen until cancelled; the socket file is removed at the end. When it cannot be
        made the reason is kept in :attr:`error` and the task waits (the agent runs on)."""
        try:
            sock = bind_private(self.path)
        except OSError as exc:
            self.error = str(exc)
            log.error(
                "Control socket not available; `edge-agent alarms` cannot reach this agent.",
                extra={"path": str(self.path), "error": self.error},
            )
            await asyncio.Event().wait()
            return
        inode = os.stat(self.path).st_ino
        try:
            while True:
                self._server = await asyncio.start_unix_server(
                    self._serve, sock=sock, limit=MAX_LINE_BYTES + 1
                )
                log.info("Control socket listening.", extra={"path": str(self.path)})
                self.listening = True
                await self._watch(inode)
                # The file is gone (a cleanup of the state folder, a person): nobody can
                # connect, so the socket is made again rather than reported up.
                self.listening = False
                self._server.close()
                sock.close()
                log.warning(
                    "Control socket file was removed or replaced; making it again.",
                    extra={"path": str(self.path)},
                )
                self.remade += 1
                try:
                    sock = bind_private(self.path)
                except OSError as exc:
                    self.error = str(exc)
                    log.error(
                        "Control socket not available; `edge-agent alarms` cannot reach "
                        "this agent.",
                        extra={"path": str(self.path), "error": self.error},
                    )
                    await asyncio.Event().wait()
                    return
                inode = os.stat(self.path).st_ino
        finally:
            self.listening = False
            if self._server is not None:
                self._server.close()
            sock.close()
            # Only our own file: a new agent on the same folder may have replaced it.
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == inode:
                    self.path.unlink()

    async def _watch(self, inode: int) -> None:
        """Returns when the socket file at :attr:`path` is no longer ours."""
        while True:
            await asyncio.sleep(self.check_interval_s)
            try:
                if os.lstat(self.path).st_ino == inode:
                    continue
            except FileNotFoundError:
                pass
            except OSError:
                continue  # cannot tell now (I/O): look again at the next check
            return

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.connections >= self.max_connections:
                self.refused_connections += 1
                await self._write(writer, _error(f"{BUSY} too many connections; try again"))
                return
            self.connections += 1
            try:
                await self._converse(reader, writer, peer_of(writer))
            finally:
                self.connections -= 1
            await _linger(reader, writer)
        except (OSError, TimeoutError):
            pass  # the client went away or stopped reading: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str | None
    ) -> None:
        for _ in range(MAX_REQUESTS):
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    line = await reader.readline()
            except TimeoutError:
                await self._write(writer, _error(f"no request within {self.idle_timeout_s:g} s"))
                return
            except ValueError:  # longer than the limit: the stream cannot be resynced
                self.bad_lines += 1
                await self._write(writer, _error(f"a request is at most {MAX_LINE_BYTES} bytes"))
                return
            if not line:
                return
            if not line.endswith(b"\n"):  # the client closed mid-line
                self.bad_lines += 1
                await self._write(writer, _error("a request ends with a newline"))
                return
            try:
                answer = await self.handler(line.rstrip(b"\r\n"), peer)
            except Exception:
                # A bug below must cost this request only, never the agent.
                log.exception("Control request failed.")
                answer = _error("internal error; see the agent's log")
            await self._write(writer, answer)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
        writer.write(encode(answer) + b"\n")
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await writer.drain()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close our side, then read and drop what the client still sends (bounded): closing
    with unread input resets the connection, and the client would lose our last answer."""
    if writer.can_write_eof():
        writer.write_eof()
    dropped = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER_S):
            while dropped < MAX_LINGER_BYTES:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                dropped += len(chunk)


def _error(message: str) -> dict[str, Any]:
    return result_document(CommandResult(None, False, message), time.time_ns())


def request(path: Path, document: dict[str, Any], timeout_s: float = 15.0) -> dict[str, Any]:
    """One request to a running agent's socket and its answer (the CLI's side; blocking).
    Raises OSError (``FileNotFoundError``/``ConnectionRefusedError``: no agent listens) and
    ValueError for an answer that is not a JSON object."""
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        # Answered before it read our line (busy): that answer is still to be read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(encode(document) + b"\n")
        chunks: list[bytes] = []
        size = 0
        complete = False
        while not complete:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer within {timeout_s:g} s")
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise TimeoutError(f"no answer within {timeout_s:g} s") from None
            except ConnectionResetError:
                break  # closed with our line unread: no answer (said below)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            complete = chunk.endswith(b"\n")
            if size > MAX_ANSWER_BYTES:
                raise ValueError(f"the agent's answer is longer than {MAX_ANSWER_BYTES} bytes")
        if not complete:
            # Closed without a full line: an agent stopping mid-request, not an answer.
            raise ValueError("the agent closed the connection without an answer")
        answer = json.loads(b"".join(chunks).decode("utf-8"))
    if not isinstance(answer, dict):
        raise ValueError("the agent's answer is not a JSON object")
    return answer


__all__ = ["SOCKET_NAME", "ControlSocket", "ControlSocketError", "bind_private", "request"]
