"""The activation guards one by one: which guard holds a notification, what each counts, and
when chattering and a flood start and end (the golden cases see them only through traces)."""

from __future__ import annotations

from typing import Any

from edge_agent.rules.compiled import CompiledRule, compile_rule
from edge_agent.rules.guards import ActivationGuards, FloodGuard, is_chattering

from .conftest import SECOND, site


def guarded(**extra: Any) -> CompiledRule:
    rule = {"id": "r", "asset": "p101", "sensor": "temp", "high": {"limit": 80}, **extra}
    config = site([rule])
    return compile_rule(0, config.rules[0], config)


def counts(guards: ActivationGuards) -> tuple[int, int, int]:
    return guards.held_cooldown, guards.held_chattering, guards.held_flood


def test_cooldown_holds_an_activation_within_it_of_the_last_one() -> None:
    rule = guarded(cooldown="10s", chattering={"activations": 99, "window": "1s"})
    guards = ActivationGuards(FloodGuard(99, 60 * SECOND))
    assert guards.check(rule, 0) == (True, False, False)
    assert guards.check(rule, 9 * SECOND) == (False, False, False)  # 9 s after the last
    assert rule.last_activation == 9 * SECOND  # a held activation is still the last one
    assert guards.check(rule, 18 * SECOND) == (False, False, False)
    assert guards.check(rule, 28 * SECOND) == (True, False, False)  # exactly 10 s: notifies
    assert counts(guards) == (2, 0, 0)


def test_chattering_starts_at_n_within_the_window_and_ends_after_a_quiet_window() -> None:
    rule = guarded(chattering={"activations": 3, "window": "30s"})
    guards = ActivationGuards(FloodGuard(99, 60 * SECOND))
    assert guards.check(rule, 0)[:2] == (True, False)
    assert guards.check(rule, 10 * SECOND)[:2] == (True, False)
    assert guards.check(rule, 20 * SECOND)[:2] == (False, True)  # the third within 30 s
    assert is_chattering(rule, 49 * SECOND)
    assert guards.check(rule, 49 * SECOND)[:2] == (False, False)  # still: no second start
    assert not is_chattering(rule, 79 * SECOND)  # a whole window quiet
    assert guards.check(rule, 79 * SECOND)[:2] == (True, False)
    assert rule.chatter_times == [79 * SECOND]
    assert counts(guards) == (0, 2, 0)


def test_a_held_notification_is_counted_by_the_first_guard_that_holds_it() -> None:
    rule = guarded(cooldown="1m", chattering={"activations": 2, "window": "1m"})
    guards = ActivationGuards(FloodGuard(1, 60 * SECOND))
    guards.check(rule, 0)
    assert guards.check(rule, SECOND) == (False, True, False)  # cooldown, then chattering
    assert counts(guards) == (1, 0, 0)
    assert guards.flood.times == [0]  # a held activation never reaches the flood guard


def test_a_flood_holds_while_the_limit_fell_within_the_window_held_ones_included() -> None:
    flood = FloodGuard(2, 10 * SECOND)
    assert flood.admit(0) == (False, False)
    assert flood.admit(SECOND) == (False, False)
    assert flood.admit(2 * SECOND) == (True, True)  # the third within 10 s starts it
    assert flood.admit(3 * SECOND) == (True, False)
    assert flood.flooding
    assert flood.admit(11 * SECOND) == (True, False)  # 2 s and 3 s (held) are within 10 s
    assert flood.times == [3 * SECOND, 11 * SECOND]  # only the latest ``limit`` are kept
    assert flood.admit(14 * SECOND) == (False, False)  # only 11 s is left: under the limit
    assert (flood.flooding, flood.times) == (False, [11 * SECOND, 14 * SECOND])
    flood.clear()
    assert (flood.times, flood.flooding) == ([], False)
