"""`edge-agent read` against a raw TCP server on loopback that answers every request with
a malformed Modbus frame: a bad reading and a clear reason, never asyncio's "Fatal error
... Traceback" on the installer's terminal."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# MBAP header + PDU, each wrong in its own way.
GARBAGE = {
    # a read answer whose byte count (4) is more than the frame holds: pymodbus raised
    # out of data_received and asyncio printed a traceback
    "byte count past the frame": "0001000000050103040000",
    "byte count of ten": "00010000000501030a0001",
    "length field of 65535": "00010000ffff0103" + "00" * 300,
    "noise": bytes(range(256)).hex(),
}


class GarbageServer:
    """Answers anything it receives with ``payload``, on a free loopback port."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                while conn.recv(4096):
                    conn.sendall(self.payload)
            except OSError:
                return

    def close(self) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux (each teardown
        # waited out the join); shutdown() does, and accept() then raises OSError.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the garbage server's accept loop did not end"


@pytest.fixture(params=sorted(GARBAGE))
def garbage_server(request: pytest.FixtureRequest) -> Iterator[GarbageServer]:
    server = GarbageServer(bytes.fromhex(GARBAGE[request.param]))
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("verbose", [False, True])
def test_malformed_frames_give_a_bad_reading_and_no_traceback(
    garbage_server: GarbageServer, tmp_path: Path, verbose: bool
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\n"
        "site: {id: garbage}\n"
        "connections:\n"
        f"  plc: {{protocol: modbus-tcp, host: 127.0.0.1, port: {garbage_server.port},"
        " timeout: 500ms}\n"
        "sensors:\n"
        "  x: {connection: plc, register: {table: holding, address: 3}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "read", str(site), *(["-v"] if verbose else [])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Fatal error" not in done.stderr, done.stderr
    assert done.stdout.splitlines()[1].split()[:3] == ["x", "-", "bad"]
