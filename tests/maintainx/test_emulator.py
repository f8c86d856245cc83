"""The emulator itself: keys and organizations, headers, pagination, webhooks, faults, CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from edge_agent.simulators.maintainx import SIGNATURE_HEADER, Emulator
from tests.conftest import REPO_ROOT, free_port, wait_for_port


def _get(
    mx: Emulator, path: str, key: str | None, org: int | None = None, **kw: Any
) -> httpx.Response:
    headers = {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if org is not None:
        headers["x-organization-id"] = str(org)
    return httpx.request(kw.pop("method", "GET"), mx.url + path, headers=headers, timeout=5, **kw)


def test_keys_organizations_and_the_request_log() -> None:
    with Emulator(keys={"one": [1], "both": [1, 2]}, rate_limiting=False) as mx:
        made = _get(mx, "/workorders", "one", method="POST", json={"title": "org 1"})
        assert made.status_code == 200
        assert _get(mx, "/workorders", None).status_code == 401
        unauthorized = _get(mx, "/workorders", "wrong")
        assert unauthorized.status_code == 401 and unauthorized.content == b""
        missing = _get(mx, "/workorders", "both")
        assert missing.status_code == 400
        assert missing.json() == {"errors": [{"error": "Missing x-organization-id header."}]}
        assert _get(mx, "/workorders", "one", org=2).status_code == 403
        org2 = _get(mx, "/workorders", "both", org=2).json()["workOrders"]
        org1 = _get(mx, "/workorders", "both", org=1).json()["workOrders"]
        assert org2 == [] and [w["title"] for w in org1] == ["org 1"]
        # Another organization's work order does not exist for this key.
        wo = made.json()["id"]
        assert _get(mx, f"/workorders/{wo}", "both", org=2).status_code == 404
        assert [r.api_key for r in mx.requests] == [
            "one",
            None,
            "wrong",
            "both",
            "one",
            "both",
            "both",
            "both",
        ]
        assert mx.requests[5].organization_id == 2
        # Every answer, errors included, carries the rate-limit headers.
        for answer in (made, unauthorized, missing):
            assert {"x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"} <= set(
                answer.headers
            )


def test_cursor_pagination_and_query_errors() -> None:
    with Emulator(keys={"k": [1]}, rate_limiting=False) as mx:
        for n in range(5):
            _get(mx, "/workorders", "k", method="POST", json={"title": f"WO {n}"})
        page = _get(mx, "/workorders", "k", params={"limit": 2}).json()
        titles = [w["title"] for w in page["workOrders"]]
        while page["nextCursor"]:
            page = _get(
                mx, "/workorders", "k", params={"limit": 2, "cursor": page["nextCursor"]}
            ).json()
            titles += [w["title"] for w in page["workOrders"]]
        assert titles == [f"WO {n}" for n in range(5)]
        assert page["nextPageUrl"] is None
        assert "externalData" not in page["workOrders"][0]  # as in the real list schema
        assert _get(mx, "/workorders", "k", params={"limit": 500}).status_code == 400
        assert _get(mx, "/workorders", "k", params={"cursor": "garbage!"}).status_code == 400
        assert _get(mx, "/workorders", "k", params={"assets": "x"}).json() == {
            "error": "assets must be integers"
        }
        bad = _get(mx, "/workorders", "k", method="POST", json={"title": "x", "status": "OPEN"})
        assert bad.status_code == 400  # there is no status on create
        assert bad.json()["errors"][0]["fieldPath"] == "status"


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.received
    server.shutdown()
    server.server_close()


def test_status_change_sends_a_signed_webhook(receiver: tuple[str, list[Any]]) -> None:
    url, received = receiver
    with Emulator(keys={"k": [7]}, rate_limiting=False) as mx:
        subscription = _get(
            mx,
            "/subscriptions",
            "k",
            method="POST",
            json={
                "type": "WORK_ORDER_STATUS_CHANGE",
                "url": url,
                "filters": {"oneOfStatuses": ["DONE"]},
            },
        ).json()
        assert subscription["status"] == "VALID" and len(subscription["secret"]) >= 32
        wo = _get(mx, "/workorders", "k", method="POST", json={"title": "x"}).json()["id"]
        _get(mx, f"/workorders/{wo}/status", "k", method="PATCH", json={"status": "IN_PROGRESS"})
        mx.change_status(wo, "DONE")  # as a technician in the app
        assert mx.wait_for(lambda: len(mx.webhook_deliveries) >= 1, 10)
    assert len(received) == 1  # IN_PROGRESS was filtered out
    headers, body = received[0]
    payload = json.loads(body)
    assert payload["workOrderId"] == wo and payload["orgId"] == 7
    assert (payload["oldStatus"], payload["newStatus"]) == ("IN_PROGRESS", "DONE")
    signature = {k: v for k, v in (p.split("=", 1) for p in headers[SIGNATURE_HEADER].split(","))}
    expected = hmac.new(
        subscription["secret"].encode(), f"{signature['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(signature["v1"], expected)
    assert abs(int(signature["t"]) - time.time()) < 300


def test_faults_latency_drops_and_after_store() -> None:
    with Emulator(keys={"k": [1]}, rate_limiting=False) as mx:
        mx.faults.drop_after_store_rate = 1.0
        with pytest.raises(httpx.RemoteProtocolError):
            _get(mx, "/workorders", "k", method="POST", json={"title": "stored, no answer"})
        assert [w["title"] for w in mx.work_orders] == ["stored, no answer"]
        mx.faults.reset()
        mx.faults.latency_s = 0.2
        started = time.monotonic()
        assert _get(mx, "/workorders", "k").status_code == 200
        assert time.monotonic() - started >= 0.2
        assert mx.faults.injected["drop_after_store"] == 1
        assert [r.fault for r in mx.requests] == ["drop_after_store", None]


def test_meter_readings_reject_old_dates_for_automated_meters() -> None:
    with Emulator(keys={"k": [1]}, rate_limiting=False) as mx:
        meter = _get(
            mx,
            "/meters",
            "k",
            method="POST",
            json={"name": "T", "unit": "Celsius", "measurementType": "AUTOMATED_SENSOR"},
        ).json()["id"]
        ok = _get(mx, "/meterreadings", "k", method="POST", json=[{"meterId": meter, "value": 1.5}])
        old = _get(
            mx,
            "/meterreadings",
            "k",
            method="POST",
            json=[{"meterId": meter, "value": 1.5, "readingDate": "2020-01-01T00:00:00Z"}],
        )
        assert ok.status_code == 201 and ok.json()[0]["meterId"] == meter
        assert old.status_code == 400
        assert len(mx.readings) == 1


def test_command_line_emulator() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "simulate",
            "maintainx",
            "--port",
            str(port),
            "--api-key",
            "cli-key",
            "--org",
            "3",
            "--asset",
            "Pump",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_s=20)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/workorders",
            json={"title": "from the CLI"},
            headers={"Authorization": "Bearer cli-key"},
            timeout=5,
        )
        assert answer.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/v1/workorders", timeout=5).status_code == 401
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert b"listening on http://127.0.0.1:" in out
    assert b"cli-key" not in out
