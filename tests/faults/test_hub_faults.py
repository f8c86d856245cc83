"""The hub's boundaries under inputs nobody scripted: alert messages (every field replaced by
any JSON value, out-of-range numbers and dates, raw bytes) and signed webhook bodies, all
against ONE running hub. After each, the invariants: the hub is alive and ready, a healthy
site's alarm still becomes its work order within seconds, every alert message with an event
id is answered, and no site key appears in anything the hub published."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_agent.hub.app import Hub
from edge_agent.hub.webhooks import SIGNATURE_HEADER, sign
from edge_agent.redaction import redact
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker, free_port
from tests.hub.conftest import KEY_A, KEY_B, Site, hub_dict, make_alert, start_hub, wait_until

HEALTHY_WITHIN_S = 10.0
WEBHOOK_SECRET = "whsec-faults"


class RunningHub:
    """One hub on its own event loop in a thread, shared by every example of the module."""

    def __init__(self, data: dict[str, Any], base_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hub-loop", daemon=True)
        self.thread.start()
        self.hub: Hub = self._run(start_hub(data, base_dir), 30)

    def _run(self, coro: Any, timeout_s: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self._run(self.hub.close(), 15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHub, Emulator, Site]]:
    folder = tmp_path_factory.mktemp("hub-faults")
    broker = Broker(port=free_port(), workdir=folder / "mosquitto")
    broker.workdir.mkdir()
    broker.start()
    with (
        pytest.MonkeyPatch.context() as env,
        Emulator(keys={KEY_A: [101], KEY_B: [202]}, rate_limiting=False) as mx,
    ):
        env.setenv("HUB_TEST_KEY_A", KEY_A)
        env.setenv("HUB_TEST_KEY_B", KEY_B)
        env.setenv("HUB_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
        running = RunningHub(hub_dict(broker, mx.url, folder / "state", webhooks=True), folder)
        site = Site(broker)
        site.subscribe("edge/v1/#")
        try:
            yield running, mx, site
        finally:
            site.close()
            running.close()
            broker.kill()


def _ready(hub: Hub) -> bool:
    try:
        url = f"http://127.0.0.1:{hub.health_port}/readyz"
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status) == 200
    except urllib.error.URLError:
        return False


def _invariants(running: RunningHub, mx: Emulator, site: Site) -> None:
    hub = running.hub
    assert hub.failure is None and _ready(hub)
    good = make_alert("site-b", random.randrange(1 << 40))
    site.publish("edge/v1/site-b/alerts", good)
    wait_until(
        lambda: any(
            (wo.get("externalData") or {}).get("alert_id") == good["alert_id"]
            for wo in mx.work_orders
        ),
        HEALTHY_WITHIN_S,
        "the healthy site's work order",
    )
    # What the hub published (the sites' own alerts, which may quote a key, are not).
    published = json.dumps(
        [body for topic, body, _ in list(site.received) if not topic.endswith("/alerts")]
    )
    assert KEY_A not in published and KEY_B not in published


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["2300-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "", KEY_A]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = [
    ("event_id",), ("alert_id",), ("event",), ("time",), ("time_ns",), ("rule",), ("sensor",),
    ("value",), ("peak",), ("limit",), ("unit",), ("priority",), ("notify",),
    ("related_work_order",), ("asset",), ("asset", "id"), ("asset", "maintainx_id"),
    ("work_order",), ("work_order", "title"), ("work_order", "description"),
    ("work_order", "assignees"), ("work_order", "categories"), ("work_order", "due_date"),
    ("work_order", "location_id"), ("work_order", "priority"),
]  # fmt: skip


@settings(max_examples=60)
@example(mutations=[(("event_id",), KEY_A)], drop=False)  # an id that is a key: not echoed
@example(mutations=[(("time",), "2300-01-01T00:00:00Z")], drop=False)  # issue 11's reproduction
@given(
    mutations=st.lists(st.tuples(st.sampled_from(FIELDS), json_values), min_size=1, max_size=3),
    drop=st.booleans(),
)
def test_any_alert_message_is_answered_and_the_hub_keeps_serving(
    setup: tuple[RunningHub, Emulator, Site], mutations: list[Any], drop: bool
) -> None:
    running, mx, site = setup
    message = make_alert("site-a", random.randrange(1 << 40))
    for path, value in mutations:
        target = message
        for key in path[:-1]:
            target = target[key] if isinstance(target.get(key), dict) else {}
        if drop:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    payload = json.dumps(message, allow_nan=True).encode()
    site.publish("edge/v1/site-a/alerts", payload)
    event_id = message.get("event_id")
    if isinstance(event_id, str) and 0 < len(event_id) <= 256:
        event_id = redact(event_id)  # the hub's answer never echoes a key
        wait_until(
            lambda: any(
                topic.endswith("site-a/results") and body.get("event_id") == event_id
                for topic, body, _ in list(site.received)
            ),
            HEALTHY_WITHIN_S,
            "the bad message's answer",
        )
    _invariants(running, mx, site)


@settings(max_examples=15)
@given(payload=st.binary(max_size=200))
def test_raw_bytes_never_stop_the_hub(
    setup: tuple[RunningHub, Emulator, Site], payload: bytes
) -> None:
    running, mx, site = setup
    site.publish("edge/v1/site-a/alerts", payload)
    _invariants(running, mx, site)


@settings(max_examples=30)
@given(
    body=st.one_of(
        st.dictionaries(
            st.sampled_from(["workOrderId", "newStatus", "orgId", "occurredAt", "oldStatus"]),
            json_values,
        ),
        st.fixed_dictionaries(
            {
                "workOrderId": st.integers(min_value=-(10**30), max_value=10**30),
                "newStatus": st.text(max_size=100),
                "occurredAt": json_values,
            }
        ),
    ),
    path=st.sampled_from(["/maintainx/webhooks/site-a", "/maintainx/webhooks"]),
)
def test_any_signed_webhook_body_is_answered_and_the_hub_keeps_serving(
    setup: tuple[RunningHub, Emulator, Site], body: dict[str, Any], path: str
) -> None:
    running, mx, site = setup
    raw = json.dumps(body, allow_nan=True).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{running.hub.webhook_port}{path}",
        data=raw,
        method="POST",
        headers={SIGNATURE_HEADER: sign(WEBHOOK_SECRET, int(time.time()), raw)},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status < 500
    _invariants(running, mx, site)
