"""The MaintainX emulator can be stopped and started again (the demo's network outage):
while stopped nothing answers, keep-alive connections included; once started again it
serves on the same port, with its work orders, and its webhooks fire again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from edge_agent.simulators.maintainx import Emulator
from tests.service.conftest import wait_until

KEY = "restart-key-7d1e"


class _Receiver(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        _Receiver.received.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    _Receiver.received = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_emulator_stops_for_real_and_starts_again(receiver: str) -> None:
    emulator = Emulator(keys={KEY: 1}, rate_limiting=False).start()
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        emulator.store.create_subscription(1, {"type": "WORK_ORDER_STATUS_CHANGE", "url": receiver})
        with httpx.Client(base_url=emulator.url, headers=headers, timeout=5) as client:
            created = client.post("/workorders", json={"title": "Pump P-101: bearing hot"})
            assert created.status_code == 200, created.text
            work_order_id = int(created.json()["id"])
            port = emulator.port

            emulator.stop()
            # The same (kept-alive) client gets no answer: the connection was cut.
            with pytest.raises(httpx.TransportError):
                client.get(f"/workorders/{work_order_id}")

            emulator.start()
            assert emulator.port == port
            again = client.get(f"/workorders/{work_order_id}")
            assert again.status_code == 200
            assert again.json()["workOrder"]["title"] == "Pump P-101: bearing hot"

        # The webhook sender runs again after the restart.
        emulator.change_status(work_order_id, "DONE")
        wait_until(lambda: _Receiver.received, 10, "the status webhook")
        assert b'"DONE"' in _Receiver.received[0]
    finally:
        emulator.stop()
