"""A rate window keeps bounded memory whatever the poll rate, and a gap empties it."""

from __future__ import annotations

from edge_agent.readings import Quality
from edge_agent.rules import RuleEngine
from edge_agent.rules.series import WINDOW_SAMPLES, Rate
from tests.rules.conftest import reading, site

RATE = {"id": "temp-rate", "asset": "p101", "sensor": "temp"}


def test_a_window_keeps_at_most_its_sample_budget_at_any_poll_rate() -> None:
    engine = RuleEngine(site([{**RATE, "rate": {"above": 1000, "window": "1m"}}]))
    [rule] = (r.condition for r in engine.rules)
    assert isinstance(rule, Rate)
    for n in range(20_000):  # 200 s at a 10 ms poll
        engine.feed(reading(n / 100, 20.0 + (n % 7) / 10))
    assert rule.window_samples is not None
    assert WINDOW_SAMPLES / 2 <= len(rule.window_samples) <= WINDOW_SAMPLES + 1
    # A bad reading is a gap: the window starts anew.
    engine.feed(reading(200.5, None, quality=Quality.BAD))
    assert len(rule.window_samples) == 0
