"""The plant-data path at MaintainX's boundary (issue 14): meter readings and asset status
changes through API outages, timeouts after a write was stored, and a 4-day outage against
the 3-day back-dating rule. Counted at the emulator: nothing lost, nothing twice."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.forwarders.maintainx.plant_sink import parse_plant
from edge_agent.outbox.store import Outbox
from edge_agent.simulators.maintainx import Emulator, Faults
from edge_agent.simulators.maintainx_emulator.store import parse_iso
from edge_agent.wire.plant import PlantMessageError, PmSpec
from tests.meters.plant_data import (
    DAY,
    HOUR,
    KEY,
    SECOND,
    drained,
    reading,
    running_forwarder,
    status,
)


def _outbox(tmp_path: Path) -> Outbox:
    return Outbox.open(tmp_path / "plant-outbox", max_bytes=50_000_000, lease_s=30.0)


async def test_no_reading_lost_or_twice_through_an_api_outage(tmp_path: Path) -> None:
    """500s and connections dropped before anything is stored: every reading arrives
    exactly once (an outage says nothing was applied, so a resend is safe)."""
    faults = Faults(error_rate=0.3, drop_rate=0.2, seed=11)
    now = time.time_ns()
    with Emulator(keys={KEY: [1]}, rate_limiting=False, faults=faults) as mx:
        asset = mx.add_asset("Pump P-101")
        outbox = _outbox(tmp_path)
        sent = [
            reading(f"m{n % 5}", float(n), now - HOUR + n * SECOND, asset_mx=asset)
            for n in range(1200)
        ]
        outbox.put_many(sent)
        async with running_forwarder(tmp_path, outbox, mx.url, timeout="1s") as forwarder:
            await drained(outbox)
        stats = outbox.stats()
        outbox.close()
        injected = dict(mx.faults.injected)
        readings = mx.readings
        meters = mx.store.all_meters()
    assert injected.get("500", 0) > 0 and injected.get("drop", 0) > 0
    assert (stats.depth, stats.dead) == (0, 0)
    assert len(meters) == 5 and len({m["name"] for m in meters}) == 5  # each created once
    by_name = {m["id"]: m["name"] for m in meters}
    arrived = Counter((by_name[r["meterId"]], r["value"]) for r in readings)
    assert arrived == Counter((f"m{n % 5}", float(n)) for n in range(1200))
    assert forwarder.status.readings_sent == 1200


async def test_meter_and_trigger_created_once_under_5xx_and_timeouts(tmp_path: Path) -> None:
    """Creates stored but never answered (timeouts), and 500s: each meter and each trigger
    exists once; their ids are in the ledger before any reading is sent."""
    faults = Faults(timeout_after_store_rate=0.4, stall_s=0.6, error_rate=0.2, seed=3)
    now = time.time_ns()
    pm = PmSpec(500.0, "P-101 500 h service", None)
    with Emulator(keys={KEY: [1]}, rate_limiting=False, faults=faults) as mx:
        asset = mx.add_asset("Pump P-101")
        outbox = _outbox(tmp_path)
        messages = []
        for n in range(12):
            at = now - HOUR + n * SECOND
            messages.append(reading("hours", float(n), at, kind="run_hours", asset_mx=asset, pm=pm))
            messages.append(reading("temp", 50.0 + n, at, kind="gauge", asset_mx=asset, above=90.0))
        outbox.put_many(messages)
        async with running_forwarder(tmp_path, outbox, mx.url, timeout="300ms"):
            await drained(outbox)
        outbox.close()
        stalls = mx.faults.injected["timeout_after_store"]
        meters = mx.store.all_meters()
        triggers = mx.store.all_meter_triggers()
        readings = mx.readings
    assert stalls > 0
    assert sorted(m["name"] for m in meters) == ["hours", "temp"]
    assert sorted((t["condition"], t["name"]) for t in triggers) == [
        ("INCREMENTED_BY", "P-101 500 h service"),
        ("IS_GREATER", "temp above 90"),
    ]
    ledger = (tmp_path / "state" / "maintainx-meters.json").read_text()
    assert all(str(m["id"]) in ledger for m in meters)
    # A batch whose answer was lost is sent again (the API has no lookup for readings):
    # every reading arrived, none was lost.
    assert {(r["meterId"], r["value"]) for r in readings} >= {
        (m["id"], float(v)) for m in meters for v in (range(12) if m["name"] == "hours" else [])
    }


async def test_asset_status_changes_once_each_and_in_order(tmp_path: Path) -> None:
    """Status posts stored but unanswered, and 500s: each change arrives once, in order
    (a change is looked up on the asset before it is posted again)."""
    faults = Faults(timeout_after_store_rate=0.4, stall_s=0.6, error_rate=0.2, seed=5)
    now = time.time_ns() - HOUR
    with Emulator(keys={KEY: [1]}, rate_limiting=False, faults=faults) as mx:
        asset = mx.add_asset("Pump P-101")
        outbox = _outbox(tmp_path)
        changes = [status(n % 2 == 1, now + n * 60 * SECOND, asset_mx=asset) for n in range(10)]
        outbox.put_many(changes)
        async with running_forwarder(tmp_path, outbox, mx.url, timeout="300ms") as forwarder:
            await drained(outbox)
        outbox.close()
        stalls = mx.faults.injected["timeout_after_store"]
        rows = mx.store.all_asset_statuses()[asset]
    assert stalls > 0
    assert [(r["status"], r["downtimeType"]) for r in rows] == [
        ("OFFLINE", "UNPLANNED") if n % 2 == 0 else ("ONLINE", None) for n in range(10)
    ]
    assert forwarder.status.statuses_found >= 1  # a lost answer found applied, not reposted


async def test_a_four_day_outage_keeps_what_matters_within_three_days(tmp_path: Path) -> None:
    """Queued during a 4-day outage: a counter that stopped moving early keeps its latest
    value, dated inside MaintainX's window; a meter with values inside the window sends
    those; the gauge history beyond it is counted, not sent. MaintainX refuses nothing."""
    start = time.time_ns()
    with Emulator(keys={KEY: [1]}, rate_limiting=False) as mx:
        asset = mx.add_asset("Pump P-101")
        outbox = _outbox(tmp_path)
        during = []
        for n in range(96):  # one an hour for four days; the press stopped after 12 hours
            at = start + n * HOUR
            if n < 12:
                during.append(reading("strokes", float(n), at, asset_mx=asset))
            during.append(reading("hours", float(n), at, kind="run_hours", asset_mx=asset))
            during.append(reading("temp", float(n), at, kind="gauge", asset_mx=asset))
        outbox.put_many(during)
        mx.store.advance_clock(4 * DAY / SECOND)  # MaintainX's clock after the outage
        async with running_forwarder(
            tmp_path, outbox, mx.url, now_ns=lambda: time.time_ns() + 4 * DAY
        ) as forwarder:
            await drained(outbox)
        stats = outbox.stats()
        outbox.close()
        readings = mx.readings
        refused = [r for r in mx.requests if r.path.endswith("/meterreadings") and r.status != 201]
        names = {m["id"]: m["name"] for m in mx.store.all_meters()}
        maintainx_now = parse_iso(mx.store.now())
    assert refused == [] and (stats.depth, stats.dead) == (0, 0)
    by_meter: dict[str, list[tuple[float, datetime]]] = {}
    for r in readings:
        by_meter.setdefault(names[r["meterId"]], []).append(
            (r["value"], parse_iso(r["readingDate"]))
        )
    # The press's count, re-dated just inside the window (an hour's margin).
    [(value, dated)] = by_meter["strokes"]
    assert value == 11.0
    assert (
        maintainx_now - timedelta(days=3) < dated < maintainx_now - timedelta(days=3, minutes=-61)
    )
    # Values inside the window go as they are; older ones are superseded or dropped.
    hours = [v for v, _ in by_meter["hours"]]
    temps = [v for v, _ in by_meter["temp"]]
    assert hours == temps and hours == [float(n) for n in range(96)][-len(hours) :]
    assert 60 <= len(hours) <= 72
    status = forwarder.status
    assert status.stale_gauges_dropped == 96 - len(temps)
    assert status.stale_superseded == 11 + 96 - len(hours)
    assert status.redated == 1


@pytest.mark.parametrize("answer", [400, 404])
async def test_a_refused_reading_is_set_aside_and_the_rest_sent(
    tmp_path: Path, answer: int
) -> None:
    """MaintainX refuses a batch for one reading (400 naming it: dated beyond the window by
    a clock 5 days behind MaintainX's) or for one meter (404: deleted in MaintainX): that
    reading, or that meter's readings, go to the dead letters; the others arrive once."""
    now = time.time_ns()
    with Emulator(keys={KEY: [1]}, rate_limiting=False) as mx:
        asset = mx.add_asset("Pump P-101")
        outbox = _outbox(tmp_path)
        good = [reading("m", float(n), now - n * SECOND, asset_mx=asset) for n in range(5)]
        if answer == 400:
            bad = [reading("m", 99.0, now - 5 * DAY, asset_mx=asset)]
            clock = lambda: time.time_ns() - 5 * DAY  # noqa: E731 - the agent's clock behind
        else:
            bad = [reading("gone", 99.0, now - n, meter_id=987654) for n in range(3)]
            clock = time.time_ns
        outbox.put_many([*good[:2], *bad, *good[2:]])
        async with running_forwarder(tmp_path, outbox, mx.url, now_ns=clock):
            await drained(outbox)
        dead = outbox.stats().dead
        outbox.close()
        values = sorted(r["value"] for r in mx.readings)
    assert dead == len(bad) and values == [float(n) for n in range(5)]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = sorted(reading("m", 1.0, 1_780_000_000 * SECOND))


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), value=JSON, status_field=st.booleans())
def test_any_field_replaced_is_refused_never_raised(
    field: str, value: object, status_field: bool
) -> None:
    """Every field of a reading (or a status change) replaced by anything JSON holds: the
    check accepts it or refuses it with PlantMessageError, never another exception."""
    base = (
        status(False, 1_780_000_000 * SECOND, asset_mx=7)
        if status_field
        else reading("m", 1.0, 1_780_000_000 * SECOND)
    )
    message = {**base, field: value}
    with contextlib.suppress(PlantMessageError):
        parse_plant(message)


async def test_junk_in_the_plant_outbox_is_dead_lettered_and_the_rest_sent(
    tmp_path: Path,
) -> None:
    """Items no check accepts go to the dead letters with the field named; the valid
    readings around them arrive."""
    now = time.time_ns()
    with Emulator(keys={KEY: [1]}, rate_limiting=False) as mx:
        asset = mx.add_asset("Pump P-101")
        outbox = _outbox(tmp_path)
        good = [reading("m", float(n), now - n * SECOND, asset_mx=asset) for n in range(3)]
        junk: list[dict[str, object]] = [
            {"schema": "edge-agent/meter-reading@1"},
            {**good[0], "value": "12"},
            {**status(True, now, asset_mx=asset), "status": "MAYBE"},
            {"nothing": "here"},
        ]
        outbox.put_many([good[0], *junk, *good[1:]])
        async with running_forwarder(tmp_path, outbox, mx.url):
            await drained(outbox)
        stats = outbox.stats()
        outbox.close()
        values = sorted(r["value"] for r in mx.readings)
    assert stats.dead == len(junk) and values == [0.0, 1.0, 2.0]
