"""``simulate maintainx`` for rehearsing a key rotation and a webhook: one key per
organization (``--key KEY=ORG``), and the admin endpoints to add or revoke a key and to move
a work order's status as a technician would (the webhook fires)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT, free_port, wait_for_port


class _Hook(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_per_key_organizations_revoke_and_status_change(hook: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "simulate",
            "maintainx",
            "--port",
            str(port),
            "--no-rate-limit",
            "--key",
            "key-north=101",
            "--key",
            "key-south=202",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        wait_for_port("127.0.0.1", port, 20)
        api = f"http://127.0.0.1:{port}/v1"
        admin = f"http://127.0.0.1:{port}/_emulator"

        def call(method: str, path: str, key: str, **kw: Any) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}"}
            return httpx.request(method, api + path, headers=headers, timeout=5, **kw)

        north = call("POST", "/workorders", "key-north", json={"title": "north"}).json()["id"]
        call("POST", "/workorders", "key-south", json={"title": "south"})
        # Each key sees its own organization only.
        titles = [w["title"] for w in call("GET", "/workorders", "key-south").json()["workOrders"]]
        assert titles == ["south"]
        sub = call(
            "POST",
            "/subscriptions",
            "key-north",
            json={"type": "WORK_ORDER_STATUS_CHANGE", "url": hook},
        )
        assert sub.status_code == 201

        # A rotation: the new key is added, the old one revoked (401 from then on).
        added = httpx.post(
            admin + "/keys", json={"key": "key-north-2", "organizations": [101]}, timeout=5
        )
        assert added.status_code == 201
        assert httpx.delete(admin + "/keys/key-north", timeout=5).status_code == 204
        assert call("GET", "/workorders?limit=1", "key-north").status_code == 401
        assert call("GET", f"/workorders/{north}", "key-north-2").status_code == 200
        assert httpx.delete(admin + "/keys/key-north", timeout=5).status_code == 404

        # A technician closes the work order: its status moves and the webhook fires.
        moved = httpx.patch(
            f"{admin}/workorders/{north}/status", json={"status": "DONE"}, timeout=5
        )
        assert moved.status_code == 200 and moved.json()["workOrder"]["status"] == "DONE"
        deadline = 100
        while not _Hook.bodies and deadline:
            threading.Event().wait(0.1)
            deadline -= 1
        assert _Hook.bodies and _Hook.bodies[0]["workOrderId"] == north
        assert _Hook.bodies[0]["newStatus"] == "DONE" and _Hook.bodies[0]["orgId"] == 101
        bad = httpx.patch(f"{admin}/workorders/{north}/status", content=b"{", timeout=5)
        assert bad.status_code == 400
        assert httpx.get(admin + "/nothing", timeout=5).status_code == 404
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    text = out.decode()
    assert "key 1: organization 101" in text and "/_emulator" in text
    assert "key-north" not in text


def test_key_org_must_be_key_equals_positive_id() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "simulate", "maintainx", "--key", "nokey"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "KEY=ORG" in done.stderr
