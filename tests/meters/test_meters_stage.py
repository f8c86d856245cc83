"""The meters stage of the agent (issue 14): readings in, plant data messages out, the
state in ``meters.json`` carried across restarts and reloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.alerts import format_time_ns
from edge_agent.config.loader import check_site_files
from edge_agent.config.models import SiteConfig
from edge_agent.readings import Quality, Reading
from edge_agent.service.meters_stage import STATE_FILE, MetersStage
from edge_agent.wire.plant import check_asset_status, check_meter_reading
from tests.meters.test_config_meters import SITE

S = 1_000_000_000
T0 = 1_780_000_000 * S

METERS = """\
meters:
  p101-run-hours: {asset: P-101, kind: run_hours, sensor: p101_running, every: 1s, max_gap: 1h,
                   pm: {every: 500h, title: "P-101 500 h service"}}
  p101-strokes: {asset: P-101, kind: counter, sensor: p101_strokes, bits: 32, every: 1s}
  p101-temp: {asset: P-101, kind: gauge, sensor: p101_temp, every: 10s, deadband: 5}
"""


def load(tmp_path: Path, text: str) -> SiteConfig:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    config, diagnostics = check_site_files(path)
    assert config is not None, diagnostics
    return config


def with_downtime(text: str) -> str:
    return text.replace(
        '  P-101: {name: "Pump P-101", maintainx_id: 1001}\n',
        '  P-101: {name: "Pump P-101", maintainx_id: 1001, downtime: {running: p101_running}}\n',
    )


def stage(tmp_path: Path, config: SiteConfig) -> MetersStage:
    (tmp_path / "state").mkdir(exist_ok=True)
    return MetersStage(config, tmp_path / "state", None)


def feed(stage: MetersStage, sensor: str, value: Any, at: int) -> list[dict[str, Any]]:
    messages = stage.feed([Reading(sensor, value, Quality.GOOD, 0)], at)
    stage.commit(messages)
    return messages


def values(messages: list[dict[str, Any]], meter: str) -> list[float]:
    return [m["value"] for m in messages if m.get("meter") == meter]


def test_messages_follow_the_wire_schema(tmp_path: Path) -> None:
    config = load(tmp_path, with_downtime(SITE) + METERS)
    meters = stage(tmp_path, config)
    out = feed(meters, "p101_running", True, T0) + feed(meters, "p101_running", True, T0 + 2 * S)
    out += feed(meters, "p101_running", False, T0 + 3 * S)
    readings = [check_meter_reading(m) for m in out if "meter" in m]
    statuses = [check_asset_status(m) for m in out if "status" in m]
    assert [r.value for r in readings] == [0.0, 2 / 3600, 3 / 3600]
    first = readings[0]
    assert first.meter_spec.pm is not None and first.meter_spec.pm.every == 500.0
    assert first.meter_spec.unit == "Hours" and first.asset.maintainx_id == 1001
    assert first.id == f"{config.site.id}/meter/p101-run-hours/{T0}"
    assert [(s.status, s.downtime_type) for s in statuses] == [
        ("ONLINE", None),
        ("OFFLINE", "UNPLANNED"),
    ]


def test_run_hours_and_downtime_carry_on_after_a_restart(tmp_path: Path) -> None:
    config = load(tmp_path, with_downtime(SITE) + METERS)
    first = stage(tmp_path, config)
    feed(first, "p101_running", True, T0)
    feed(first, "p101_running", True, T0 + 10 * S)
    again = stage(tmp_path, config)  # a restart: only the file carries the state
    out = feed(again, "p101_running", True, T0 + 30 * S)
    assert values(out, "p101-run-hours") == [30 / 3600]
    assert [m for m in out if "status" in m] == []  # ONLINE was reported before the restart
    out = feed(stage(tmp_path, config), "p101_running", False, T0 + 31 * S)
    assert [m["status"] for m in out if "status" in m] == ["OFFLINE"]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.booleans()), min_size=1, max_size=40),
)
def test_a_counter_through_restarts_never_goes_backwards(
    tmp_path_factory: Any, steps: list[tuple[int, bool]]
) -> None:
    """Any register values (rollovers, resets, absurd jumps) with a restart before any
    reading: the values sent never go backwards, and equal those of a run without
    restarts."""
    tmp_path = tmp_path_factory.mktemp("counter")
    config = load(tmp_path, SITE + METERS)
    restarted = stage(tmp_path, config)
    unbroken = MetersStage(config, tmp_path_factory.mktemp("unbroken"), None)
    sent: list[float] = []
    oracle: list[float] = []
    for index, (raw, restart) in enumerate(steps):
        at = T0 + index * 2 * S
        if restart:
            restarted = stage(tmp_path, config)
        sent += values(feed(restarted, "p101_strokes", raw, at), "p101-strokes")
        oracle += values(
            unbroken.feed([Reading("p101_strokes", raw, Quality.GOOD, 0)], at), "p101-strokes"
        )
    assert sent == sorted(sent)
    assert sent == oracle


def test_a_reload_keeps_unchanged_meters_and_drops_removed_ones(tmp_path: Path) -> None:
    config = load(tmp_path, SITE + METERS)
    meters = stage(tmp_path, config)
    feed(meters, "p101_running", True, T0)
    feed(meters, "p101_running", True, T0 + 60 * S)
    kept = meters.meters["p101-run-hours"].meter
    fewer = load(
        tmp_path,
        SITE
        + METERS.replace(
            METERS.splitlines(keepends=True)[-1],  # p101-temp
            "",
        ).replace("every: 1s, max_gap: 1h", "every: 2s, max_gap: 1h"),
    )
    meters.reconfigure(fewer)
    meters.commit([])
    assert sorted(meters.meters) == ["p101-run-hours", "p101-strokes"]
    assert meters.meters["p101-run-hours"].meter is not kept  # rebuilt: its `every` changed
    assert values(feed(meters, "p101_running", True, T0 + 120 * S), "p101-run-hours") == [
        120 / 3600
    ]
    saved = json.loads((tmp_path / "state" / STATE_FILE).read_text())
    assert sorted(saved["meters"]) == ["p101-run-hours", "p101-strokes"]
    meters.reconfigure(config)  # added back: a new meter, from nothing
    assert values(feed(meters, "p101_temp", 40.0, T0 + 121 * S), "p101-temp") == [40.0]


def test_a_damaged_state_starts_that_meter_afresh_and_says_so(tmp_path: Path) -> None:
    config = load(tmp_path, SITE + METERS)
    meters = stage(tmp_path, config)
    feed(meters, "p101_running", True, T0)
    feed(meters, "p101_running", True, T0 + 60 * S)
    path = tmp_path / "state" / STATE_FILE
    data = json.loads(path.read_text())
    data["meters"]["p101-strokes"] = {"schema": "edge-agent/meter-state@1", "kind": "counter"}
    path.write_text(json.dumps(data))
    again = stage(tmp_path, config)
    assert again.counters.state_errors == 1 and "p101-strokes" in (again.counters.last_error or "")
    assert values(feed(again, "p101_running", True, T0 + 90 * S), "p101-run-hours") == [90 / 3600]
    assert again.meters["p101-run-hours"].meter.state()["running_ns"] == 90 * S
    path.write_text("{not json")
    assert stage(tmp_path, config).counters.state_errors == 1


def test_refusals_are_counted_per_meter(tmp_path: Path) -> None:
    config = load(tmp_path, SITE + METERS)
    meters = stage(tmp_path, config)
    feed(meters, "p101_strokes", 10, T0)
    feed(meters, "p101_strokes", 10.5, T0 + S)
    feed(meters, "p101_strokes", 11, T0 - S)
    meters.feed([Reading("p101_temp", None, Quality.BAD, 0)], T0)
    assert meters.refusals() == {
        "p101-strokes": {"not_an_integer": 1, "clock_backwards": 1},
        "p101-temp": {"bad_quality": 1},
    }


def test_values_pending_at_a_crash_are_queued_once(tmp_path: Path) -> None:
    """The state is written with the batch as pending, then the batch is put: a crash
    before the put queues it at the next start; a crash after it does not queue it again."""
    from edge_agent.outbox.integrity import DB_NAME, highest_id
    from edge_agent.outbox.store import Outbox

    config = load(tmp_path, SITE + METERS)
    (tmp_path / "state").mkdir()
    box_dir = tmp_path / "state" / "plant-outbox"
    with Outbox.open(box_dir, max_bytes=10_000_000) as outbox:
        meters = MetersStage(config, tmp_path / "state", outbox)
        meters.recover(highest_id(box_dir / DB_NAME))
        feed(meters, "p101_strokes", 5, T0)  # queued: one value
        # Crash before the put: the state has the batch pending, the outbox does not.
        lost = meters.feed([Reading("p101_strokes", 9, Quality.GOOD, 0)], T0 + 2 * S)
        meters._write_state(lost)
    with Outbox.open(box_dir, max_bytes=10_000_000) as outbox:
        again = MetersStage(config, tmp_path / "state", outbox)
        assert again.recover(highest_id(box_dir / DB_NAME)) == 1
        # Crash after the put: pending in the state and in the outbox.
        feed(again, "p101_strokes", 12, T0 + 4 * S)
    with Outbox.open(box_dir, max_bytes=10_000_000) as outbox:
        third = MetersStage(config, tmp_path / "state", outbox)
        assert third.recover(highest_id(box_dir / DB_NAME)) == 0
        queued = [item.payload["value"] for item in outbox.peek(10)]
    assert queued == [0.0, 4.0, 7.0]


def test_a_meter_that_fails_leaves_the_others_running(tmp_path: Path) -> None:
    config = load(tmp_path, SITE + METERS)
    meters = stage(tmp_path, config)

    def broken(reading: Reading) -> None:
        raise ZeroDivisionError("a bug")

    meters.meters["p101-strokes"].meter.feed = broken  # type: ignore[method-assign]
    out = feed(meters, "p101_strokes", 5, T0) + feed(meters, "p101_temp", 20.0, T0)
    assert values(out, "p101-temp") == [20.0] and values(out, "p101-strokes") == []
    assert meters.counters.meter_errors == 1
    assert "ZeroDivisionError" in (meters.summary()["last_error"] or "")


async def test_a_rule_as_an_assets_downtime(tmp_path: Path) -> None:
    """``downtime: {rule: ...}``: OFFLINE UNPLANNED from the episode's activation, ONLINE
    from its clear, each once (an escalation or a repeated event says nothing new)."""
    from edge_agent.rules import AlarmEvent

    text = SITE.replace(
        '  P-101: {name: "Pump P-101", maintainx_id: 1001}\n',
        '  P-101: {name: "Pump P-101", maintainx_id: 1001, downtime: {rule: p101-hot}}\n',
    )
    meters = stage(tmp_path, load(tmp_path, text))
    events = [
        AlarmEvent(T0, "activated", rule_id="p101-hot", priority="HIGH"),
        AlarmEvent(T0 + S, "escalated", rule_id="p101-hot", priority="HIGH"),
        AlarmEvent(T0 + 2 * S, "activated", rule_id="other", priority="HIGH"),
        AlarmEvent(T0 + 60 * S, "cleared", rule_id="p101-hot"),
    ]
    await meters.offer_events(events)
    out: list[dict[str, Any]] = []
    while not meters.queue.empty():
        readings, at = meters.queue.get_nowait()  # type: ignore[misc]
        out += meters.feed(readings, at)
    changes = [check_asset_status(m) for m in out]
    assert [(c.status, c.downtime_type, c.time_ns) for c in changes] == [
        ("OFFLINE", "UNPLANNED", T0),
        ("ONLINE", None, T0 + 60 * S),
    ]
    assert changes[0].description == "rule p101-hot active (edge-agent)"


def test_a_reload_moving_a_counter_to_another_register_adds_no_jump(tmp_path: Path) -> None:
    """The counter keeps its total when its sensor changes, not the old register's level:
    the new register's first value is a level to count from, not a step (nor a reset)."""
    register = "  p101_strokes: {connection: plc1, register: {table: holding, address: 10, "
    register += "type: uint32}}\n"
    two = SITE.replace(register, register + register.replace("strokes", "strokes2"))
    config = load(tmp_path, two + METERS)
    meters = stage(tmp_path, config)
    feed(meters, "p101_strokes", 1_000_000, T0)
    assert values(feed(meters, "p101_strokes", 1_000_010, T0 + 2 * S), "p101-strokes") == [10]
    moved = load(tmp_path, two + METERS.replace("sensor: p101_strokes,", "sensor: p101_strokes2,"))
    meters.reconfigure(moved)
    feed(meters, "p101_strokes2", 500, T0 + 4 * S)  # far below the old register: no reset
    out = feed(meters, "p101_strokes2", 505, T0 + 6 * S)
    assert values(out, "p101-strokes") == [15]
    again = stage(tmp_path, moved)  # and after a restart
    assert values(feed(again, "p101_strokes2", 507, T0 + 8 * S), "p101-strokes") == [17]


def test_a_reload_changing_a_meters_kind_starts_it_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load(tmp_path, SITE + METERS)
    meters = stage(tmp_path, config)
    feed(meters, "p101_strokes", 1_000, T0)
    feed(meters, "p101_strokes", 1_100, T0 + 2 * S)
    gauge = METERS.replace(
        "kind: counter, sensor: p101_strokes, bits: 32,", "kind: gauge, sensor: p101_strokes,"
    )
    meters.reconfigure(load(tmp_path, SITE + gauge))
    assert values(feed(meters, "p101_strokes", 1_150, T0 + 4 * S), "p101-strokes") == [1150]
    # Its MaintainX meter is the same (found by name): the operator is told.
    assert any(
        "changed kind" in r.message and getattr(r, "meter", "") == "p101-strokes"
        for r in caplog.records
    )


def test_a_restart_with_the_counter_on_another_register_adds_no_jump(tmp_path: Path) -> None:
    """The site file edited while the agent was stopped: the saved state says which
    register it counted, so the new one's first value is a level, not a reset."""
    config = load(tmp_path, SITE + METERS)
    meters = stage(tmp_path, config)
    feed(meters, "p101_strokes", 1_000_000, T0)
    feed(meters, "p101_strokes", 1_000_010, T0 + 2 * S)
    moved = SITE.replace("address: 10, type: uint32", "address: 12, type: uint32")
    again = stage(tmp_path, load(tmp_path, moved + METERS))
    feed(again, "p101_strokes", 500, T0 + 4 * S)
    assert values(feed(again, "p101_strokes", 505, T0 + 6 * S), "p101-strokes") == [15]
    # unchanged: the level carries on across a restart as before
    same = stage(tmp_path, load(tmp_path, moved + METERS))
    assert values(feed(same, "p101_strokes", 507, T0 + 8 * S), "p101-strokes") == [17]


def test_downtime_min_duration_survives_a_restart_mid_debounce(tmp_path: Path) -> None:
    """``min_duration: 30s``: a stop seen, the agent restarted before it held 30 s; after
    the restart it is posted once, at the time it began."""
    text = with_downtime(SITE + METERS).replace(
        "downtime: {running: p101_running}", "downtime: {running: p101_running, min_duration: 30s}"
    )
    config = load(tmp_path, text)
    first = stage(tmp_path, config)
    out = feed(first, "p101_running", True, T0) + feed(first, "p101_running", True, T0 + 30 * S)
    assert [(m["status"], m["started_at"]) for m in out if "status" in m] == [
        ("ONLINE", format_time_ns(T0))
    ]
    assert [m for m in feed(first, "p101_running", False, T0 + 40 * S) if "status" in m] == []
    again = stage(tmp_path, config)  # a restart: only the file carries the pending stop
    assert [m for m in feed(again, "p101_running", False, T0 + 60 * S) if "status" in m] == []
    out = feed(again, "p101_running", False, T0 + 70 * S)
    assert [(m["status"], m["started_at"]) for m in out if "status" in m] == [
        ("OFFLINE", format_time_ns(T0 + 40 * S))
    ]
