"""The engine on the agent's clock: received times, source timestamps, restarts, episode ids."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.alerts import make_alert_id, parse_time
from edge_agent.readings import Quality, Reading
from edge_agent.rules import AlarmEvent, RuleEngine, RuleStateStore
from tests.rules.conftest import SECOND, site

YEAR_9999_NS = parse_time("9999-12-31T23:59:59Z")
# A monotonic clock: small numbers, nothing to do with the wall clock.
BOOT = 1_000 * SECOND


def received(
    seconds: float, value: Any, sensor: str = "temp", source_ns: int | None = None
) -> Reading:
    """A reading as the agent hands it to the rules: stamped ``seconds`` after BOOT."""
    at = BOOT + round(seconds * SECOND)
    source = at if source_ns is None else source_ns
    return Reading(sensor, value, Quality.GOOD, source, received_ns=at)


def at(seconds: float) -> int:
    return BOOT + round(seconds * SECOND)


HOT = {"id": "hot", "asset": "p101", "sensor": "temp", "high": {"limit": 80}, "on_delay": "3s"}
STALE_ALARM = {
    "id": "flow-lost",
    "asset": "p101",
    "sensor": "flow",
    "low": {"limit": -1},
    "on_stale": "alarm",
}


def test_a_source_timestamp_in_year_9999_moves_no_deadline() -> None:
    engine = RuleEngine(site([HOT, STALE_ALARM]))
    events = engine.feed(received(0, 20, "flow"))
    events += engine.feed(received(0.5, 90))  # hot: pending, due at 3.5 s
    events += engine.feed(received(1, 20, "flow", source_ns=YEAR_9999_NS))
    events += engine.feed(received(1.5, 91, source_ns=YEAR_9999_NS))
    assert events == []
    assert engine.rule_states() == {"hot": "PENDING", "flow-lost": "NORMAL"}
    assert engine.now == at(1.5)
    assert engine.snapshot()["now"] == at(1.5)
    [activated] = engine.tick(at(3.5))
    assert (activated.kind, activated.time_ns) == ("activated", at(3.5))


def test_an_unchanged_value_polled_again_is_a_fresh_reading() -> None:
    """OPC UA lets a server keep SourceTimestamp at the last change: every poll of a steady
    value carries the same one. The sensor (stale after 8 s) must never go stale."""
    engine = RuleEngine(site([STALE_ALARM]))
    changed = parse_time("2026-01-05T10:00:00Z")
    events: list[AlarmEvent] = []
    for second in range(0, 60):
        events += engine.feed(received(second, 20, "flow", source_ns=changed))
        events += engine.tick(at(second + 0.5))
    assert events == []
    assert engine.counters["dropped_old_readings"] == 0
    assert engine.stale_sensors() == []


def test_two_samples_of_one_sensor_received_together_both_count() -> None:
    engine = RuleEngine(site([{**HOT, "on_delay": "0s"}]))
    events = engine.feed(received(1, 20)) + engine.feed(received(1, 90))
    assert [e.kind for e in events] == ["activated"]
    assert engine.counters["dropped_old_readings"] == 0


def test_a_trace_keeps_dropping_duplicate_times() -> None:
    """Replay's semantics on trace times are unchanged: no received time, a repeated time
    is a duplicate."""
    engine = RuleEngine(site([HOT]))
    t = parse_time("2026-01-05T10:00:00Z")
    engine.feed(Reading("temp", 20, Quality.GOOD, t))
    engine.feed(Reading("temp", 90, Quality.GOOD, t))
    assert engine.counters["dropped_old_readings"] == 1
    assert engine.rule_states() == {"hot": "NORMAL"}


def _restart(path: Path, config: Any, now_ns: int) -> RuleEngine:
    return RuleEngine(config, RuleStateStore(path), resume_at=now_ns)


def test_restart_on_a_clock_that_started_again_keeps_each_remaining_time(
    tmp_path: Path,
) -> None:
    """Saved on one boot's monotonic clock (about 1000 s), continued on the next boot's
    (about 5 s): the pending on-delay keeps its 3 s left and staleness (8 s after the last
    flow reading) its 7 s."""
    path = tmp_path / "rule-state.json"
    config = site([HOT, STALE_ALARM], stale_after="10m")
    first = RuleEngine(config, RuleStateStore(path))
    first.feed(received(0, 20, "flow"))
    first.feed(received(1, 90))  # hot due at 4 s
    first.close()  # saved at now = 1 s

    reboot = 5 * SECOND
    second = _restart(path, config, reboot)
    assert second.rule_states() == {"hot": "PENDING", "flow-lost": "NORMAL"}
    assert second.tick(reboot + 3 * SECOND - 1) == []
    [activated] = second.tick(reboot + 3 * SECOND)
    assert activated.kind == "activated"
    # A new episode after a restart is numbered in the restarted engine's own lineage.
    assert second.lineage not in ("", first.lineage)
    assert activated.alert_id == make_alert_id("plant-a", "hot", 1, second.lineage)
    # flow's last good reading was 1 s before the save: stale 7 s after the restart.
    assert second.tick(reboot + 7 * SECOND - 1) == []
    [stale, flow_activated] = second.tick(reboot + 7 * SECOND)
    assert (stale.kind, stale.sensor_id) == ("stale", "flow")
    assert (flow_activated.rule_id, flow_activated.cause) == ("flow-lost", "stale")


def test_restart_with_a_clock_far_ahead_fires_nothing_at_once(tmp_path: Path) -> None:
    """A state saved with year-9999 times (as today's main wrote them after a bad source
    timestamp) continues on the agent's clock: nothing fires at start."""
    path = tmp_path / "rule-state.json"
    config = site([HOT, STALE_ALARM])
    first = RuleEngine(config, RuleStateStore(path))
    first.feed(Reading("flow", 20, Quality.GOOD, YEAR_9999_NS))
    first.feed(Reading("temp", 90, Quality.GOOD, YEAR_9999_NS + SECOND))
    first.close()
    second = _restart(path, config, BOOT)
    assert second.tick(BOOT + 3 * SECOND - 1) == []
    assert [e.kind for e in second.tick(BOOT + 3 * SECOND)] == ["activated"]
    second.close()
    assert json.loads(path.read_text())["now"] == BOOT + 3 * SECOND


def test_episode_ids_stay_distinct_when_readings_queue_behind_a_stall() -> None:
    """Issue 17 §1: readings that waited behind a stall are applied at one engine time
    (late readings): each episode still gets its own alert id."""
    engine = RuleEngine(site([{**HOT, "on_delay": "0s"}]))
    engine.tick(at(10))
    events: list[AlarmEvent] = []
    for k in range(20):  # flapping, all of it queued while the clock said 10 s
        events += engine.feed(received(k * 0.01, 90 if k % 2 == 0 else 10))
    activations = [e for e in events if e.kind == "activated"]
    assert len(activations) == 10
    assert len({e.alert_id for e in activations}) == 10
    assert {e.time_ns for e in activations} == {at(10)}


# ------------------------------------------------------------------ property: ids


@st.composite
def clock_scripts(draw: Any) -> list[tuple[str, int, int]]:
    """Steps of ("feed", dt, value), ("stall", n, 0) (n flapping readings at one time),
    ("tick", dt, 0), ("restart", new clock origin, 0), ("reload", 0, 0) (the rule removed
    from, or added back to, the configuration), ("keep", 0, 0) (a copy of the state file
    as it is now) and ("stale", new clock origin, 0) (a restart from that copy: the saves
    since failed, as on a full disk, while the alerts went out)."""
    steps = st.one_of(
        st.tuples(st.just("feed"), st.integers(-2 * SECOND, 2 * SECOND), st.sampled_from([10, 90])),
        st.tuples(st.just("stall"), st.integers(1, 8), st.just(0)),
        st.tuples(st.just("tick"), st.integers(0, 5 * SECOND), st.just(0)),
        st.tuples(st.just("restart"), st.integers(0, 10**6 * SECOND), st.just(0)),
        st.tuples(st.just("reload"), st.just(0), st.just(0)),
        st.tuples(st.just("keep"), st.just(0), st.just(0)),
        st.tuples(st.just("stale"), st.integers(0, 10**6 * SECOND), st.just(0)),
    )
    return draw(st.lists(steps, min_size=1, max_size=40))


@settings(max_examples=150, deadline=None)
@given(script=clock_scripts(), on_delay=st.sampled_from(["0s", "1s"]))
def test_any_stalls_ticks_and_restarts_give_one_id_per_activation(
    script: list[tuple[str, int, int]], on_delay: str
) -> None:
    with_rule = site([{**HOT, "on_delay": on_delay, "off_delay": "0s"}])
    without = site([])
    config = with_rule
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rule-state.json"
        kept = Path(folder) / "kept.json"
        engine = RuleEngine(config, RuleStateStore(path))
        clock = BOOT
        activations: list[str | None] = []

        def note(events: list[AlarmEvent]) -> None:
            activations.extend(e.alert_id for e in events if e.kind == "activated")

        for kind, amount, value in script:
            if kind == "feed":
                clock = max(0, clock + amount)  # a negative step: a late reading
                note(engine.feed(Reading("temp", value, Quality.GOOD, 0, received_ns=clock)))
            elif kind == "stall":
                for k in range(amount * 2):
                    value = 90 if k % 2 == 0 else 10
                    note(engine.feed(Reading("temp", value, Quality.GOOD, 0, received_ns=clock)))
            elif kind == "tick":
                clock += amount
                note(engine.tick(clock))
            elif kind == "reload":
                config = without if config is with_rule else with_rule
                engine.reconfigure(config)
            elif kind == "keep":
                engine.flush()
                if path.exists():
                    kept.write_bytes(path.read_bytes())
            elif kind == "stale" and kept.exists():
                path.write_bytes(kept.read_bytes())
                clock = amount
                engine = RuleEngine(config, RuleStateStore(path), resume_at=clock)
            else:
                engine.close()
                clock = amount
                engine = RuleEngine(config, RuleStateStore(path), resume_at=clock)
        assert None not in activations
        assert len(set(activations)) == len(activations)


# ------------------------------------------------------------------ configuration


def test_source_time_skew_is_bounded_and_named(tmp_path: Path) -> None:
    from edge_agent.config.diagnostics import ConfigError
    from edge_agent.config.loader import load_site

    case = Path(__file__).parent.parent / "testcases" / "rules" / "alert_id_is_pinned"
    text = (case / "site.yaml").read_text()
    assert load_site(case / "site.yaml").defaults.source_time_skew == 600 * SECOND
    for bad in ("0s", "8d"):
        path = tmp_path / "site.yaml"
        path.write_text(
            text.replace("  stale_after: 10m", f"  stale_after: 10m\n  source_time_skew: {bad}")
        )
        try:
            load_site(path)
        except ConfigError as exc:
            assert "defaults.source_time_skew: must be between 1s and 7d" in str(exc)
        else:
            raise AssertionError(f"source_time_skew: {bad} was accepted")


def test_a_lost_or_damaged_state_starts_a_new_life_whose_ids_never_meet_the_old(
    tmp_path: Path,
) -> None:
    """Episode numbers start again at 1 when the rule state is gone (deleted, or damaged and
    moved aside): the new lineage keeps those ids apart from the ones the ledger and the hub
    already hold, so no new episode is dropped as a duplicate of an old one."""
    path = tmp_path / "rule-state.json"
    config = site([HOT])
    ids: list[str] = []
    for life in ("first", "deleted", "damaged"):
        if life == "deleted":
            path.unlink()
        if life == "damaged":
            path.write_text('{"version": ')
        engine = RuleEngine(config, RuleStateStore(path))
        base = 100 * len(ids)
        engine.feed(received(base, 90))
        [activated] = engine.tick(at(base + 3))
        assert activated.kind == "activated"
        ids.append(activated.alert_id)
        engine.close()
    assert len(set(ids)) == 3
    # Without a store (replay) there is no lineage: the same trace gives the same ids.
    assert RuleEngine(config).lineage == ""
