"""The engine's compiled rules by exact values: the limit each kind reports, what counts as a
new peak, and which hot-path check a rule's state allows (pinned one by one, as the golden
cases only see them through whole traces)."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.rules.compiled import CompiledRule, SensorState, StaleWatcher, compile_rule
from edge_agent.rules.conditions import (
    ABOVE,
    AT_OR_ABOVE,
    AT_OR_BELOW,
    BAND,
    BELOW,
    EQUALS,
    FLATLINE,
    HIGH,
    LOW,
    RATE,
    Band,
    Equals,
    High,
    Low,
)
from edge_agent.rules.events import ACTIVE
from edge_agent.rules.series import Flatline, Rate

from .conftest import site


def compiled(**condition: Any) -> CompiledRule:
    rule = {"id": "r", "asset": "p101", "sensor": "temp", **condition}
    config = site([rule])
    return compile_rule(0, config.rules[0], config)


def test_each_condition_compiles_to_its_kind_and_limits() -> None:
    high = compiled(high={"limit": 80, "deadband": 2})
    assert isinstance(high.condition, High)
    assert (high.kind, high.condition.high_limit, high.condition.clear_below) == (HIGH, 80, 78)
    assert (high.limit, high.fast_limit) == (80, 80)
    low = compiled(low={"limit": 10, "deadband": 3})
    assert isinstance(low.condition, Low)
    assert (low.kind, low.condition.low_limit, low.condition.clear_above) == (LOW, 10, 13)
    assert (low.limit, low.fast_limit) == (10, 10)
    band = compiled(high={"limit": 80}, low={"limit": 20})
    assert isinstance(band.condition, Band)
    assert (band.kind, band.condition.high_limit, band.condition.low_limit) == (BAND, 80, 20)
    rate = compiled(rate={"above": 5, "per": "1m"})
    assert isinstance(rate.condition, Rate)
    assert (rate.kind, rate.condition.rate_limit, rate.limit) == (RATE, 5, 5)
    flat = compiled(flatline={"for": "10m", "tolerance": 0.5})
    assert isinstance(flat.condition, Flatline)
    assert (flat.kind, flat.limit) == (FLATLINE, 0.5)
    equals = compiled(equals="FAULT")
    assert isinstance(equals.condition, Equals)
    assert (equals.kind, equals.condition.target, equals.limit) == (EQUALS, "FAULT", "FAULT")
    # Only rate and flatline judge a series; only equals takes text and true/false.
    assert [r.condition.series for r in (high, low, band, rate, flat, equals)] == [
        False,
        False,
        False,
        True,
        True,
        False,
    ]
    assert [r.condition.wants_number for r in (high, low, band, rate, flat, equals)] == [
        True,
        True,
        True,
        True,
        True,
        False,
    ]


def test_a_rate_rules_direction_is_the_sign_its_rate_is_multiplied_by() -> None:
    for direction, sign in (("rising", 1), ("falling", -1), ("both", 0)):
        rate = compiled(rate={"above": 5, "per": "1m", "direction": direction}).condition
        assert isinstance(rate, Rate)
        assert rate.rate_sign == sign
        assert rate.rate_per == 60 * 10**9  # per minute, in ns
        assert (rate.rate_window, rate.window_samples) == (0, None)  # no window: two points
    windowed = compiled(rate={"above": 5, "per": "1m", "window": "5m"}).condition
    assert isinstance(windowed, Rate)
    assert windowed.rate_window == 300 * 10**9
    assert windowed.window_samples is not None and not windowed.window_samples


def test_rules_share_equal_stateless_parts_and_never_a_series() -> None:
    kinds: list[dict[str, Any]] = [
        {"high": {"limit": 80}},
        {"high": {"limit": 80}},
        {"high": {"limit": 80}, "inclusive": True},
        {"high": {"limit": 81}},
        {"equals": 1},
        {"equals": True},
        {"equals": 1},
        {"rate": {"above": 5, "per": "1m"}},
        {"rate": {"above": 5, "per": "1m"}},
        {"high": {"limit": 80}, "cooldown": "1m"},
    ]
    config = site(
        [
            {"id": f"r{n}", "asset": "p101", "sensor": "temp", **condition}
            for n, condition in enumerate(kinds)
        ]
    )
    shared: dict[tuple[Any, ...], Any] = {}
    rules = [compile_rule(key, rule, config, shared) for key, rule in enumerate(config.rules)]
    conditions = [rule.condition for rule in rules]
    assert conditions[0] is conditions[1] is conditions[9]
    assert conditions[2] is not conditions[0]  # inclusive differs
    assert conditions[3] is not conditions[0]
    assert conditions[4] is conditions[6]
    assert conditions[5] is not conditions[4]  # True equals 1 but is not reported as 1
    assert conditions[7] is not conditions[8]  # a rate holds its own samples
    assert rules[0].guard is rules[1].guard
    assert rules[9].guard is not rules[0].guard
    assert rules[9].guard.cooldown == 60 * 10**9


def test_a_band_reports_the_limit_on_the_side_of_its_peak() -> None:
    band = compiled(high={"limit": 80}, low={"limit": 20})  # midpoint 50
    assert band.limit == 80  # nothing held yet
    band.held = 10
    assert band.limit == 20
    band.peak = 50  # the midpoint itself counts as the high side; the peak wins over held
    assert band.limit == 80
    band.peak = 49.9
    assert band.limit == 20
    band.peak = True  # not a number: the high limit
    assert band.limit == 80


@pytest.mark.parametrize(
    ("condition", "value", "than", "expected"),
    [
        ({"high": {"limit": 80}}, 81, 80, True),
        ({"high": {"limit": 80}}, 80, 80, False),
        ({"high": {"limit": 80}}, 79, 80, False),
        ({"low": {"limit": 10}}, 9, 10, True),
        ({"low": {"limit": 10}}, 10, 10, False),
        ({"low": {"limit": 10}}, 11, 10, False),
        # A band's excursion is the distance past the nearer limit: 85 is 5 past, 17 is 3.
        ({"high": {"limit": 80}, "low": {"limit": 20}}, 85, 17, True),
        ({"high": {"limit": 80}, "low": {"limit": 20}}, 17, 85, False),
        ({"high": {"limit": 80}, "low": {"limit": 20}}, 14, 85, True),
        ({"high": {"limit": 80}, "low": {"limit": 20}}, 15, 85, False),  # as far: no new peak
        ({"rate": {"above": 5, "per": "1m", "direction": "rising"}}, 7, 6, True),
        ({"rate": {"above": 5, "per": "1m", "direction": "rising"}}, -9, 6, False),
        ({"rate": {"above": 5, "per": "1m", "direction": "rising"}}, 6, 6, False),
        ({"rate": {"above": 5, "per": "1m", "direction": "falling"}}, -7, -6, True),
        ({"rate": {"above": 5, "per": "1m", "direction": "falling"}}, 9, -6, False),
        ({"rate": {"above": 5, "per": "1m"}}, -7, 6, True),
        ({"rate": {"above": 5, "per": "1m"}}, 5, -6, False),
        ({"rate": {"above": 5, "per": "1m"}}, 6, -6, False),
        ({"flatline": {"for": "10m"}}, 1, 0, False),
        ({"equals": 3}, 3, 2, False),
    ],
)
def test_a_new_peak_is_a_further_excursion_for_the_rules_kind(
    condition: dict[str, Any], value: float, than: float, expected: bool
) -> None:
    assert compiled(**condition).more_extreme(value, than) is expected


def test_the_first_value_is_always_a_peak_and_a_non_number_never_is() -> None:
    high = compiled(high={"limit": 80})
    assert high.more_extreme(1, None) is True
    assert high.more_extreme("x", 1) is False
    assert high.more_extreme(100, "x") is False


def test_the_fast_check_is_for_normal_ungated_high_and_low_rules_only() -> None:
    assert compiled(high={"limit": 80}).fast == ABOVE
    assert compiled(low={"limit": 10}).fast == BELOW
    assert compiled(high={"limit": 80}, inclusive=True).fast == AT_OR_ABOVE
    assert compiled(low={"limit": 10}, inclusive=True).fast == AT_OR_BELOW
    assert len({0, ABOVE, BELOW, AT_OR_ABOVE, AT_OR_BELOW}) == 5
    assert compiled(high={"limit": 80}, low={"limit": 20}).fast == 0
    assert compiled(equals=1).fast == 0
    gated = compiled(high={"limit": 80}, only_when={"sensor": "running", "equals": True})
    assert (gated.gate_sensor, gated.gate_value, gated.gate_open) == ("running", True, False)
    assert gated.fast == 0
    active = compiled(high={"limit": 80})
    active.state = ACTIVE
    active.refresh_fast()
    assert active.fast == 0
    active.reset()
    assert active.fast == ABOVE


def test_the_fingerprint_is_sixteen_hex_digits_that_follow_the_rule() -> None:
    first = compiled(high={"limit": 80})
    assert len(first.fingerprint) == 16
    int(first.fingerprint, 16)
    assert first.fingerprint == compiled(high={"limit": 80}).fingerprint
    assert first.fingerprint != compiled(high={"limit": 81}).fingerprint


def test_a_sensor_takes_the_slow_path_while_gates_or_unqueued_or_fired_watchers_need_it() -> None:
    sensor = SensorState("temp", 10)
    assert sensor.slow is True  # until the engine has looked
    sensor.refresh_slow()
    assert sensor.slow is False  # nothing depends on it
    watcher = StaleWatcher(0, sensor, 10)
    sensor.watchers = (watcher,)
    sensor.refresh_slow()
    assert sensor.slow is True  # a watcher not yet queued
    watcher.queued = True
    sensor.refresh_slow()
    assert sensor.slow is False
    watcher.fired = True
    sensor.refresh_slow()
    assert sensor.slow is True  # a fired watcher: the next good reading is news
    watcher.fired = False
    sensor.gated = (compiled(high={"limit": 80}),)
    sensor.refresh_slow()
    assert sensor.slow is True


def test_every_kind_saves_the_same_series_keys_and_only_series_kinds_fill_them() -> None:
    kinds: list[dict[str, Any]] = [
        {"high": {"limit": 80}},
        {"low": {"limit": 10}},
        {"high": {"limit": 80}, "low": {"limit": 20}},
        {"equals": 1},
        {"rate": {"above": 5, "per": "1m"}},
        {"flatline": {"for": "10m"}},
    ]
    for condition in kinds:
        rule = compiled(**condition)
        assert rule.condition.dump() == {"flat_due": None, "prev": None, "anchor": None}
        assert rule.condition.is_initial()
    rate = compiled(rate={"above": 5, "per": "1m"}).condition
    saved: dict[str, Any] = {"flat_due": None, "prev": [20.5, 7], "anchor": None}
    rate.load(saved, exact=True, normal=True)
    assert rate.dump() == saved and not rate.is_initial()
    rate.load(saved, exact=False, normal=False)  # a running save may be behind: start anew
    assert rate.is_initial()
    flat = compiled(flatline={"for": "10m"}).condition
    saved = {"flat_due": 99, "prev": None, "anchor": [3.0, 9]}
    flat.load(saved, exact=False, normal=False)  # an open episode keeps its run
    assert flat.dump() == saved
    flat.load(saved, exact=False, normal=True)
    assert flat.dump() == {"flat_due": None, "prev": None, "anchor": None}
