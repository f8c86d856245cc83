"""A reconfigure with the running config's own sections (an unchanged reload: the service
adopts them, ``service/config_reuse.py``) keeps every compiled rule, sensor state and
deadline, and the engine then decides exactly what a full rebuild would have (issue 16:
the rebuild of 10,000 sensors' objects left the freed ones as holes in the heap)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.config.models import SiteConfig
from edge_agent.rules import RuleEngine
from edge_agent.rules.engine import same_sections
from edge_agent.rules.snapshot import take_snapshot
from tests.rules.conftest import reading, site

RULES: list[dict[str, Any]] = [
    {
        "id": "hot",
        "asset": "p101",
        "sensor": "temp",
        "high": {"limit": 80, "deadband": 2},
        "on_delay": "3s",
        "off_delay": "2s",
    },
    {"id": "low-level", "asset": "p101", "sensor": "level", "low": {"limit": 10}},
    {"id": "flow-flat", "asset": "p101", "sensor": "flow", "flatline": {"for": "5s"}},
    {"id": "level-rise", "asset": "p101", "sensor": "level", "rate": {"above": 20, "per": "1s"}},
    {
        "id": "temp-chatter",
        "asset": "p101",
        "sensor": "temp",
        "high": {"limit": 50},
        "chattering": {"activations": 2, "window": "10s"},
        "cooldown": "2s",
    },
]


def adopted(old: SiteConfig) -> SiteConfig:
    """A new parse of the same site whose sections are the running one's (what the
    service's adoption makes of an unchanged reload)."""
    new = site(RULES)
    new.__dict__.update(old.__dict__)
    return new


def test_same_sections_means_every_section_is_the_running_instance() -> None:
    old = site(RULES)
    assert same_sections(old, old) and same_sections(old, adopted(old))
    assert not same_sections(old, site(RULES))  # equal, but other instances


def test_an_unchanged_reconfigure_keeps_the_engines_objects() -> None:
    config = site(RULES)
    engine = RuleEngine(config)
    engine.feed(reading(0, 90.0))
    rules, sensors, heap = list(engine.rules), dict(engine.sensors), list(engine._heap)
    new = adopted(config)
    engine.reconfigure(new)
    assert engine.config is new
    assert all(a is b for a, b in zip(engine.rules, rules, strict=True))
    assert all(engine.sensors[k] is v for k, v in sensors.items())
    assert engine._heap == heap
    engine.reconfigure(site(RULES))  # a new parse, not adopted: the full rebuild
    assert all(a is not b for a, b in zip(engine.rules, rules, strict=True))


samples = st.lists(
    st.tuples(
        st.sampled_from(["temp", "level", "flow"]),
        st.sampled_from([0.0, 5.0, 50.0, 79.0, 81.0, 95.0]),
        st.floats(0.05, 4.0),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=samples, after=samples)
def test_the_kept_engine_decides_as_the_rebuilt_one(
    before: list[tuple[str, float, float]], after: list[tuple[str, float, float]]
) -> None:
    config = site(RULES)
    kept, rebuilt = RuleEngine(config), RuleEngine(config)
    t = 0.0
    for sensor, value, step in before:
        t += step
        assert kept.feed(reading(t, value, sensor)) == rebuilt.feed(reading(t, value, sensor))
    kept.reconfigure(adopted(config))  # the fast path
    rebuilt.reconfigure(site(RULES))  # equal, not the same: the full rebuild
    events: tuple[list[Any], list[Any]] = ([], [])
    for sensor, value, step in after:
        t += step
        events[0].extend(kept.tick(int(reading(t, 0).source_time_ns)))
        events[1].extend(rebuilt.tick(int(reading(t, 0).source_time_ns)))
        events[0].extend(kept.feed(reading(t, value, sensor)))
        events[1].extend(rebuilt.feed(reading(t, value, sensor)))
    assert events[0] == events[1]
    assert take_snapshot(kept) == take_snapshot(rebuilt)
