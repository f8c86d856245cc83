"""The plant data messages (``wire/plant.py``) and the 3-day reduction
(``maintainx/backdate.py``), both pure."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.maintainx.backdate import reduce_stale, window_start_ns
from edge_agent.wire import topics
from edge_agent.wire.plant import (
    CUMULATIVE_KINDS,
    PlantMessageError,
    check_asset_status,
    check_meter_reading,
)
from tests.meters.plant_data import DAY, HOUR, SECOND, reading, status

NOW = 1_780_000_000 * SECOND


def test_a_message_comes_back_as_it_went() -> None:
    message = reading("p101-hours", 12.5, NOW, kind="run_hours", asset_mx=7)
    assert check_meter_reading(message).to_json() == message
    change = status(False, NOW, asset_mx=7, planned=True)
    assert check_asset_status(change).to_json() == change
    assert topics.meters("edge/v1", "plant-a") == "edge/v1/plant-a/meters"
    assert topics.assets("edge/v1", "plant-a") == "edge/v1/plant-a/assets"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"value": math.nan}, "value"),
        ({"value": -1.0}, "value"),  # a counter never goes below 0
        ({"value": True}, "value"),
        ({"kind": "totaliser"}, "kind"),
        ({"site": "Plant A"}, "site"),
        ({"id": ""}, "id"),
        ({"time_ns": NOW + 1}, "time_ns"),
        ({"time": "yesterday"}, "time"),
        ({"maintainx_meter_id": 0}, "maintainx_meter_id"),
        ({"asset": {"id": "P-101", "maintainx_id": "7"}}, "asset.maintainx_id"),
        ({"meter_spec": {"name": "m", "unit": "h", "kind": "gauge"}}, "meter_spec.kind"),
        ({"schema": "edge-agent/meter-reading@2"}, "schema"),
        ({"meter": "a\x00b"}, "meter"),
    ],
)
def test_a_bad_reading_names_its_field(change: dict[str, Any], field: str) -> None:
    message = {**reading("m", 3.0, NOW), **change}
    with pytest.raises(PlantMessageError, match=f"^{field}"):
        check_meter_reading(message)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "BROKEN"}, "status"),
        ({"downtime_type": None}, "downtime_type"),  # OFFLINE needs one
        ({"started_at": "2026-13-01T00:00:00Z"}, "started_at"),
        ({"description": 5}, "description"),
    ],
)
def test_a_bad_status_names_its_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(PlantMessageError, match=f"^{field}"):
        check_asset_status({**status(False, NOW, asset_mx=7), **change})


def test_anything_else_is_refused_not_raised() -> None:
    for junk in (None, [], "text", {"schema": 1}, {"a": [1] * 3}):
        with pytest.raises(PlantMessageError):
            check_meter_reading(junk)
        with pytest.raises(PlantMessageError):
            check_asset_status(junk)


KINDS = ("gauge", "counter", "run_hours", "starts")


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 5 * DAY)),
        max_size=40,
    ),
    st.sampled_from(KINDS),
)
def test_the_reduction_sends_only_what_fits_and_loses_no_latest_value(
    entries: list[tuple[str, int]], gauge_or_other: str
) -> None:
    """Whatever the batch: nothing is sent dated before the window; each cumulative meter
    with nothing inside the window sends its latest value (re-dated, once); every reading is
    sent, superseded or dropped, exactly once, and only gauges are dropped."""
    kinds = {"a": "counter", "b": "gauge", "c": gauge_or_other}
    messages = [
        check_meter_reading(
            reading(meter, float(n), NOW - age, kind=kinds[meter])  # type: ignore[arg-type]
        )
        for n, (meter, age) in enumerate(entries)
    ]
    items = list(range(len(messages)))
    result = reduce_stale(list(zip(items, messages, strict=True)), NOW)
    start = window_start_ns(NOW)
    assert sorted([i for i, _ in result.send] + result.superseded + result.gauges_dropped) == items
    assert all(t >= start for _, t in result.send)
    assert all(messages[i].kind == "gauge" for i in result.gauges_dropped)
    assert all(messages[i].kind in CUMULATIVE_KINDS for i in result.superseded)
    for meter in kinds:
        mine = [m for m in messages if m.meter == meter]
        if not mine or mine[0].kind not in CUMULATIVE_KINDS:
            continue
        if all(m.time_ns < start for m in mine):
            latest = max(reversed(mine), key=lambda m: m.time_ns)  # of a tie, the later
            assert [(messages[i], t) for i, t in result.send if messages[i].meter == meter] == [
                (latest, start)
            ]
    assert result.redated == sum(t != messages[i].time_ns for i, t in result.send)
    assert window_start_ns(NOW) == NOW - 3 * DAY + HOUR
