"""docs/hub.md says what the hub really publishes and answers (issue 20, section 5): every
example under "Payloads, field by field" has the fields, and the JSON types, of the real
output of a running hub, and every ``edge_agent_hub_*`` metric the page names is exported."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edge_agent.forwarders.mqtt import status_payload
from edge_agent.hub.webhooks import SIGNATURE_HEADER, sign
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import Site, async_wait_until, hub_dict, make_alert, start_hub

DOC = Path(__file__).resolve().parents[2] / "docs" / "hub.md"
EXAMPLE_RE = re.compile(r"<!-- example: (\S+) -->\s*```json\n(.*?)```", re.DOTALL)
# Fields whose documented value names the variant shown: they must match, not just the type.
SAME_VALUE = ("schema", "status", "action", "reason", "state", "result", "ready", "alive")
KEYED_BY_SITE = ("sites", "unknown_sites")


def documented() -> dict[str, Any]:
    examples = {name: json.loads(body) for name, body in EXAMPLE_RE.findall(DOC.read_text())}
    assert len(examples) >= 9, sorted(examples)
    return examples


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_same_shape(doc: Any, real: Any, where: str) -> None:
    """The same fields and JSON types (null on either side matches any type)."""
    if doc is None or real is None:
        return
    assert _kind(doc) == _kind(real), f"{where}: documented {doc!r}, output {real!r}"
    if isinstance(doc, list):
        if doc and real:
            assert_same_shape(doc[0], real[0], f"{where}[0]")
        return
    if not isinstance(doc, dict):
        return
    if where.rsplit(".", 1)[-1] in KEYED_BY_SITE:
        common = set(doc) & set(real)
        assert common or not doc, f"{where}: none of {sorted(doc)} in the output {sorted(real)}"
        for key in common:
            assert_same_shape(doc[key], real[key], f"{where}.{key}")
        return
    assert set(doc) == set(real), (
        f"{where}: documented but not output {sorted(set(doc) - set(real))}, "
        f"output but not documented {sorted(set(real) - set(doc))}"
    )
    for key, value in doc.items():
        if key in SAME_VALUE and not isinstance(value, dict | list):
            assert value == real[key], f"{where}.{key}: documented {value!r}, output {real[key]!r}"
        assert_same_shape(value, real[key], f"{where}.{key}")


def _get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    return body.decode() if path == "/metrics" else json.loads(body)


def _post(port: int, path: str, body: bytes) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method="POST",
        headers={SIGNATURE_HEADER: sign("whsec-test", int(time.time()), body)},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


async def test_every_documented_payload_matches_the_real_output(
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    running_hubs: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    examples = documented()
    monkeypatch.setenv("HUB_TEST_KEY_B", "a-key-maintainx-refuses")
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s", webhooks=True)
    hub = await start_hub(data, tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/#")
    site.publish("edge/v1/site-b/status", status_payload("online", "site-b"))
    base = random.randrange(1 << 40)
    site.publish("edge/v1/site-a/alerts", make_alert("site-a", base))
    site.publish("edge/v1/site-b/alerts", make_alert("site-b", base + 1))
    invalid = make_alert("site-a", base + 2)
    del invalid["work_order"]
    site.publish("edge/v1/site-a/alerts", invalid)
    site.publish("edge/v1/plant-z/alerts", make_alert("plant-z", base + 3))
    await async_wait_until(lambda: len(site.results()) >= 4, 20, "four results")
    by_status = {r["status"]: r for r in site.results() if r["site"] != "plant-z"}
    ok = by_status["ok"]
    answer = await asyncio.to_thread(
        _post,
        hub.webhook_port,
        "/maintainx/webhooks/site-a",
        json.dumps(
            {
                "workOrderId": ok["work_order_id"],
                "orgId": 101,
                "oldStatus": "IN_PROGRESS",
                "newStatus": "DONE",
                "occurredAt": "2030-01-05T11:30:00Z",
            }
        ).encode(),
    )
    await async_wait_until(lambda: site.on(f"workorders/{ok['work_order_id']}"), 10, "status")
    await async_wait_until(lambda: site.on(f"hub/status/{hub.replica_id}"), 10, "presence")
    await hub.refresh()

    real = {
        "result-ok": ok,
        "result-parked": by_status["parked"],
        "result-rejected": by_status["rejected"],
        "site-status": json.loads(status_payload("online", "site-a")),
        "hub-presence": site.on(f"hub/status/{hub.replica_id}")[0],
        "work-order": site.on(f"workorders/{ok['work_order_id']}")[0],
        "webhook-answer": answer,
        "healthz": await asyncio.to_thread(_get, hub.health_port, "/healthz"),
        "readyz": await asyncio.to_thread(_get, hub.health_port, "/readyz"),
    }
    assert set(examples) == set(real), "an example without a real counterpart, or the reverse"
    for name, example in examples.items():
        assert_same_shape(example, real[name], name)

    # Every metric the page names is one the hub exports.
    metrics = await asyncio.to_thread(_get, hub.health_port, "/metrics")
    exported = set(re.findall(r"^# TYPE (\w+) (\w+)", metrics, re.MULTILINE))
    names = {n for n, _ in exported} | {f"{n}_total" for n, kind in exported if kind == "counter"}
    named = set(re.findall(r"edge_agent_hub_[a-z_]*[a-z]", DOC.read_text()))
    prefixes = {n for n in named if any(e.startswith(n + "_") for e in names)}  # "…_kpi" etc.
    assert named - names - prefixes == set()
    site.close()
