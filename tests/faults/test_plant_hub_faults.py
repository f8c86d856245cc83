"""The hub's plant data boundaries (issue 14) under inputs nobody scripted, and MaintainX
misbehaving under them.

- Meter readings and asset status changes with any field replaced by any JSON value, or
  dropped, and raw bytes, on ``edge/v1/site-a/meters`` and ``.../assets``, all against ONE
  running hub: every message with a usable id is answered, the hub stays alive and ready, a
  healthy site's reading still reaches MaintainX once, and no site key appears in anything
  the hub published.
- MaintainX answering 500s, dropping connections and bursting 429s while two sites' plant
  data flows through the agent's sink and the hub: counted at the emulator, every reading
  arrives once, every status change once and in order, each meter and trigger is created
  once. With answers lost after MaintainX stored the write: meters, triggers and status
  changes still once; a reading at least once (the API cannot be asked about readings,
  docs/hub.md says so).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_agent.forwarders.plant_mqtt import plant_mqtt_forwarder
from edge_agent.maintainx.meters import iso_ms
from edge_agent.outbox import Outbox
from edge_agent.redaction import redact
from edge_agent.simulators.maintainx import Emulator, Faults
from tests.conftest import Broker, free_port
from tests.faults.test_hub_faults import RunningHub, _ready, json_values
from tests.forwarders_mqtt.conftest import mqtt_config, running
from tests.hub.conftest import KEY_A, KEY_B, Site, async_wait_until, hub_dict, start_hub, wait_until
from tests.hub.plant_messages import reading, status

HEALTHY_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningHub, Emulator, Site, dict[str, int]]]:
    folder = tmp_path_factory.mktemp("plant-hub-faults")
    broker = Broker(port=free_port(), workdir=folder / "mosquitto")
    broker.workdir.mkdir()
    broker.start()
    with (
        pytest.MonkeyPatch.context() as env,
        Emulator(keys={KEY_A: [101], KEY_B: [202]}, rate_limiting=False) as mx,
    ):
        env.setenv("HUB_TEST_KEY_A", KEY_A)
        env.setenv("HUB_TEST_KEY_B", KEY_B)
        env.setenv("HUB_TEST_WEBHOOK_SECRET", "whsec-plant")
        assets = {
            "site-a": mx.add_asset("Pump A", organization_id=101),
            "site-b": mx.add_asset("Pump B", organization_id=202),
        }
        hub = RunningHub(hub_dict(broker, mx.url, folder / "state"), folder)
        site = Site(broker)
        site.subscribe("edge/v1/#")
        try:
            yield hub, mx, site, assets
        finally:
            site.close()
            hub.close()
            broker.kill()


def _invariants(hub: RunningHub, mx: Emulator, site: Site, assets: dict[str, int]) -> None:
    assert hub.hub.failure is None and _ready(hub.hub)
    at = time.time_ns() - random.randrange(10**12)
    good = reading("site-b", "healthy", 1, time_ns=at, asset_mx=assets["site-b"])
    date = iso_ms(good["time_ns"])
    site.publish("edge/v1/site-b/meters", good)

    def posted() -> int:
        meters = {m["id"] for m in mx.store.all_meters() if m["assetId"] == assets["site-b"]}
        return sum(r["readingDate"] == date and r["meterId"] in meters for r in mx.readings)

    wait_until(lambda: posted() >= 1, HEALTHY_WITHIN_S, "the healthy site's reading")
    assert posted() == 1
    published = json.dumps(
        [
            body
            for topic, body, _ in list(site.received)
            if not topic.endswith(("/meters", "/assets", "/alerts"))
        ]
    )
    assert KEY_A not in published and KEY_B not in published


def _answered(site: Site, message_id: Any) -> None:
    if not (isinstance(message_id, str) and 0 < len(message_id) <= 256):
        return  # no id an agent could match: counted, not answered
    expected = redact(message_id)  # the hub's answer never echoes a key
    wait_until(
        lambda: any(
            topic.endswith("site-a/results/plant") and body.get("event_id") == expected
            for topic, body, _ in list(site.received)
        ),
        HEALTHY_WITHIN_S,
        "the message's answer",
    )


def _mutate(message: dict[str, Any], mutations: list[Any], drop: bool) -> dict[str, Any]:
    for path, value in mutations:
        target = message
        for key in path[:-1]:
            target = target[key] if isinstance(target.get(key), dict) else {}
        if drop:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    return message


READING_FIELDS = [
    ("schema",), ("site",), ("id",), ("meter",), ("asset",), ("asset", "id"),
    ("asset", "maintainx_id"), ("maintainx_meter_id",), ("meter_spec",),
    ("meter_spec", "name"), ("meter_spec", "unit"), ("meter_spec", "kind"),
    ("meter_spec", "pm"), ("meter_spec", "above"), ("value",), ("time",), ("time_ns",),
    ("kind",),
]  # fmt: skip
STATUS_FIELDS = [
    ("schema",), ("site",), ("id",), ("asset",), ("asset", "id"), ("asset", "maintainx_id"),
    ("status",), ("downtime_type",), ("started_at",), ("time_ns",), ("description",),
]  # fmt: skip


@settings(max_examples=40)
@example(mutations=[(("id",), KEY_A)], drop=False)  # an id that is a key: never echoed
@example(mutations=[(("maintainx_meter_id",), 999_999)], drop=False)  # no such meter: 404
@example(mutations=[(("value",), 1e300)], drop=False)
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(READING_FIELDS), json_values), min_size=1, max_size=3
    ),
    drop=st.booleans(),
)
def test_any_meter_reading_is_answered_and_the_hub_keeps_serving(
    setup: tuple[RunningHub, Emulator, Site, dict[str, int]], mutations: list[Any], drop: bool
) -> None:
    hub, mx, site, assets = setup
    at = time.time_ns() - random.randrange(10**12)
    message = _mutate(
        reading("site-a", "fuzzed", 1, time_ns=at, asset_mx=assets["site-a"]), mutations, drop
    )
    site.publish("edge/v1/site-a/meters", json.dumps(message, allow_nan=True).encode())
    _answered(site, message.get("id"))
    _invariants(hub, mx, site, assets)


@settings(max_examples=25)
@example(mutations=[(("asset", "maintainx_id"), None)], drop=False)  # not linked
@example(mutations=[(("started_at",), "2300-01-01T00:00:00Z")], drop=False)
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(STATUS_FIELDS), json_values), min_size=1, max_size=3
    ),
    drop=st.booleans(),
)
def test_any_asset_status_is_answered_and_the_hub_keeps_serving(
    setup: tuple[RunningHub, Emulator, Site, dict[str, int]], mutations: list[Any], drop: bool
) -> None:
    hub, mx, site, assets = setup
    at = time.time_ns() - random.randrange(10**12)
    state = random.choice(["OFFLINE", "ONLINE"])
    message = _mutate(status("site-a", state, at, asset_mx=assets["site-a"]), mutations, drop)
    site.publish("edge/v1/site-a/assets", json.dumps(message, allow_nan=True).encode())
    _answered(site, message.get("id"))
    _invariants(hub, mx, site, assets)


@settings(max_examples=10)
@given(payload=st.binary(max_size=200), kind=st.sampled_from(["meters", "assets"]))
def test_raw_bytes_on_plant_topics_never_stop_the_hub(
    setup: tuple[RunningHub, Emulator, Site, dict[str, int]], payload: bytes, kind: str
) -> None:
    hub, mx, site, assets = setup
    site.publish(f"edge/v1/site-a/{kind}", payload)
    _invariants(hub, mx, site, assets)


# ---------------------------------------------------------------------- MaintainX faults

N = 40
CHANGES = ["OFFLINE", "ONLINE", "OFFLINE", "ONLINE"]


@pytest.mark.parametrize("after_store", [False, True], ids=["before-store", "after-store"])
async def test_maintainx_faults_lose_nothing_and_create_once(
    mosquitto: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after_store: bool
) -> None:
    monkeypatch.setenv("HUB_TEST_KEY_A", KEY_A)
    monkeypatch.setenv("HUB_TEST_KEY_B", KEY_B)
    faults = Faults(seed=14)
    with Emulator(keys={KEY_A: [101], KEY_B: [202]}, rate_limiting=False, faults=faults) as mx:
        assets = {
            "site-a": mx.add_asset("Pump A", organization_id=101),
            "site-b": mx.add_asset("Pump B", organization_id=202),
        }
        if after_store:
            # Few writes (readings go in large batches): a high rate, so that some are lost.
            mx.faults.drop_after_store_rate = 0.3
        else:
            mx.faults.error_rate = 0.2
            mx.faults.drop_rate = 0.1
            mx.faults.burst_429_rate = 0.05
            mx.faults.burst_429_s = 0.3
        start = time.time_ns() - 3600 * 10**9
        outboxes = {s: Outbox.open(tmp_path / f"plant-{s}", 50_000_000) for s in assets}
        for site_id, asset in assets.items():
            for n in range(N):
                outboxes[site_id].put(reading(site_id, "rh", n, time_ns=start, asset_mx=asset))
            for i, change in enumerate(CHANGES):
                at = start + (i + 1) * 60 * 10**9
                outboxes[site_id].put(status(site_id, change, at, asset_mx=asset))
        data = hub_dict(mosquitto, mx.url, tmp_path / "hub", retry_interval="200ms")
        data["maintainx"]["timeout"] = "1s"
        hub = await start_hub(data, tmp_path)
        config = mqtt_config(
            mosquitto.port, "edge/v1", confirm="hub", result_timeout="1s", result_timeout_max="2s"
        )
        sinks = [
            plant_mqtt_forwarder(config, s, outboxes[s], tmp_path, idle_poll_s=0.01) for s in assets
        ]
        try:
            async with running(sinks[0]), running(sinks[1]):
                await async_wait_until(
                    lambda: all(
                        o.stats().depth == 0 and o.awaiting_count() == 0 for o in outboxes.values()
                    ),
                    120,
                    "every item confirmed by the hub",
                )
            # Nothing dead-lettered: every item was confirmed "ok".
            assert [o.stats().dead for o in outboxes.values()] == [0, 0]
        finally:
            await hub.close()
            for outbox in outboxes.values():
                outbox.close()
        assert sum(mx.faults.injected.values()) > 0, "no fault was injected"
        for site_id, asset in assets.items():
            meters = [m for m in mx.store.all_meters() if m["assetId"] == asset]
            assert len(meters) == 1, meters  # created once, however the answers got lost
            meter_id = meters[0]["id"]
            triggers = [t for t in mx.store.all_meter_triggers() if t["meterId"] == meter_id]
            assert len(triggers) == 1, triggers
            counted = Counter(r["readingDate"] for r in mx.readings if r["meterId"] == meter_id)
            assert len(counted) == N  # nothing lost
            if not after_store:
                assert set(counted.values()) == {1}  # nothing twice
            posted = [s["status"] for s in mx.store.all_asset_statuses().get(asset, [])]
            assert posted == CHANGES  # once each, in order
