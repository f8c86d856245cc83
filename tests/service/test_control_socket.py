"""The control socket on its own (in process, a real Unix socket, a plain handler): made
0600 and never wider, bounded (line length, connections, idle time), every request
answered, a handler's failure costs that request only, the file gone at the end."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from edge_agent.service.control_socket import (
    MAX_LINE_BYTES,
    ControlSocket,
    ControlSocketError,
    bind_private,
    request,
)
from edge_agent.wire.commands import BUSY


@pytest.fixture
def short_dir(tmp_path: Path) -> Path:
    # A Unix socket path holds 107 bytes: tmp_path may be deep.
    path = tmp_path / "s"
    path.mkdir(mode=0o700)
    return path


async def echo(line: bytes, peer: str | None) -> dict[str, Any]:
    if line == b"boom":
        raise RuntimeError("a bug below")
    return {"ok": True, "echo": line.decode(errors="replace"), "peer": peer}


async def exchange(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    answers: list[dict[str, Any]] = []
    try:
        for line in lines:
            writer.write(line)
            await writer.drain()
            async with asyncio.timeout(10):
                answer = await reader.readline()
            if not answer:
                break
            answers.append(json.loads(answer))
    finally:
        writer.close()
    return answers


async def serving(server: ControlSocket) -> asyncio.Task[None]:
    task = asyncio.create_task(server.run())
    async with asyncio.timeout(10):
        while not server.listening:
            await asyncio.sleep(0.01)
    return task


def test_bind_private_is_0600_replaces_a_stale_socket_and_refuses_other_files(
    short_dir: Path,
) -> None:
    path = short_dir / "control.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a killed agent's socket file stays behind
    sock = bind_private(path)
    try:
        mode = path.lstat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert sorted(p.name for p in short_dir.iterdir()) == ["control.sock"]
    finally:
        sock.close()
    path.unlink()
    path.write_text("not a socket")
    with pytest.raises(ControlSocketError, match="not a socket"):
        bind_private(path)
    assert path.read_text() == "not a socket"
    with pytest.raises(ControlSocketError, match="longer than"):
        bind_private(short_dir / ("x" * 120))


async def test_every_request_gets_an_answer_and_the_server_lives_on(short_dir: Path) -> None:
    path = short_dir / "control.sock"
    server = ControlSocket(path, echo)
    task = await serving(server)
    try:
        answers = await exchange(path, b"one\n", b"boom\n", b"two\n")
        assert [a["ok"] for a in answers] == [True, False, True]
        assert "internal error" in answers[1]["message"]
        assert answers[0]["peer"].startswith(f"uid={os.getuid()} pid=")
        [oversize] = await exchange(path, b"x" * (MAX_LINE_BYTES + 10) + b"\n", b"after\n")
        assert oversize["ok"] is False and str(MAX_LINE_BYTES) in oversize["message"]
        assert server.bad_lines == 1
        # A client that closes mid-line gets an answer too, and the next one is served.
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b'{"half": ')
        writer.write_eof()
        async with asyncio.timeout(10):
            half = json.loads(await reader.readline())
        writer.close()
        assert half["ok"] is False and "newline" in half["message"]
        assert (await exchange(path, b"three\n"))[0]["echo"] == "three"
        # The CLI's blocking client.
        answer = await asyncio.to_thread(request, path, {"query": "alarms"})
        assert json.loads(answer["echo"]) == {"query": "alarms"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not path.exists()


async def test_connections_and_idle_time_are_bounded(short_dir: Path) -> None:
    path = short_dir / "control.sock"
    server = ControlSocket(path, echo, max_connections=1, idle_timeout_s=0.3)
    task = await serving(server)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"hold\n")
        async with asyncio.timeout(10):
            assert json.loads(await reader.readline())["ok"] is True
        [busy] = await exchange(path, b"second\n")
        assert busy["ok"] is False and "busy" in busy["message"]
        assert server.refused_connections == 1
        # The first connection says nothing more: it is answered and closed.
        async with asyncio.timeout(10):
            idle = json.loads(await reader.readline())
            assert await reader.readline() == b""
        writer.close()
        assert idle["ok"] is False and "no request" in idle["message"]
        async with asyncio.timeout(10):
            while server.connections:
                await asyncio.sleep(0.01)
        assert (await exchange(path, b"third\n"))[0]["ok"] is True
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_socket_that_cannot_be_made_is_reported_not_fatal(short_dir: Path) -> None:
    path = short_dir / "control.sock"
    path.write_text("someone else's file")
    server = ControlSocket(path, echo)
    task = asyncio.create_task(server.run())
    async with asyncio.timeout(10):
        while server.error is None:
            await asyncio.sleep(0.01)
    assert not task.done()  # waits: the agent runs on without it
    assert "not a socket" in server.error
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert path.read_text() == "someone else's file"


async def test_the_cli_client_says_no_answer_rather_than_misreading_silence(
    short_dir: Path,
) -> None:
    """An agent that takes the line but answers nothing in time is a timeout, one that
    closes without a line says so: neither is "Expecting value: line 1 column 1"."""
    path = short_dir / "silent.sock"
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        if not release.is_set():
            await release.wait()  # the first client: no answer at all
        writer.write(b'{"ok": tr')  # the second: half an answer, then closed
        writer.close()

    server = await asyncio.start_unix_server(silent, path=str(path))
    try:
        with pytest.raises(TimeoutError, match="no answer within"):
            await asyncio.to_thread(request, path, {"query": "alarms"}, 0.2)
        release.set()
        with pytest.raises(ValueError, match="closed the connection without an answer"):
            await asyncio.to_thread(request, path, {"query": "alarms"}, 10.0)
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_a_socket_file_removed_while_running_is_made_again(short_dir: Path) -> None:
    """Removed (a cleanup of the state folder): made again, answering as before; replaced by
    a file of another kind: reported (not listening, the reason kept), that file left."""
    path = short_dir / "control.sock"
    server = ControlSocket(path, echo, check_interval_s=0.02)
    task = await serving(server)
    try:
        path.unlink()
        async with asyncio.timeout(10):
            while not (server.remade == 1 and server.listening and path.exists()):
                await asyncio.sleep(0.01)
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600
        assert (await exchange(path, b"again\n"))[0]["echo"] == "again"
        path.unlink()
        path.write_text("someone else's file")
        async with asyncio.timeout(10):
            while server.error is None:
                await asyncio.sleep(0.01)
        assert not server.listening and "not a socket" in server.error
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert path.read_text() == "someone else's file"


async def test_the_cli_client_reads_a_busy_answer_sent_before_its_line_was_read(
    short_dir: Path,
) -> None:
    """At the connection limit the agent answers `busy` and closes unread: the client must
    report that answer (exit 3, try again), not "Broken pipe"."""
    path = short_dir / "control.sock"
    server = ControlSocket(path, echo, max_connections=1)
    task = await serving(server)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"hold\n")
        async with asyncio.timeout(10):
            await reader.readline()
        big = {"query": "alarms", "pad": "x" * 200_000}  # more than a socket buffer holds
        for document in ({"query": "alarms"}, big):
            answer = await asyncio.to_thread(request, path, document, 10.0)
            assert answer["ok"] is False and answer["message"].startswith(BUSY)
        writer.close()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
