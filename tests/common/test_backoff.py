"""Exponential backoff with full jitter."""

from __future__ import annotations

import random

import pytest

from edge_agent.common.backoff import Backoff
from edge_agent.config.models import BackoffSettings


def test_delays_stay_under_a_doubling_ceiling_capped_at_max() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(7))
    ceilings = []
    for _ in range(10):
        ceiling = backoff.ceiling()
        delay = backoff.next_delay()
        assert 0.0 <= delay <= ceiling
        ceilings.append(ceiling)
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]


def test_reset_goes_back_to_the_first_step() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(1))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.ceiling() == 0.5


def test_jitter_spreads_a_herd_of_agents() -> None:
    # A hundred agents losing the network together do not come back in step.
    delays = [Backoff(1.0, 60.0, random.Random(seed)).next_delay() for seed in range(100)]
    assert len({round(d, 3) for d in delays}) > 90
    assert min(delays) < 0.2 and max(delays) > 0.8


def test_thousands_of_failures_do_not_overflow() -> None:
    backoff = Backoff(0.1, 30.0)
    for _ in range(5000):
        assert backoff.next_delay() <= 30.0


def test_from_config_reads_durations_in_nanoseconds() -> None:
    backoff = Backoff.from_config(BackoffSettings.model_validate({"initial": "250ms", "max": "4s"}))
    assert (backoff.initial_s, backoff.max_s) == (0.25, 4.0)


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)


def test_a_capped_delay_stays_jittered_below_the_cap() -> None:
    backoff = Backoff(30.0, 60.0, random.Random(3))
    delays = [backoff.next_delay_within(4.8) for _ in range(200)]
    assert all(d <= 4.8 for d in delays)
    assert len({round(d, 3) for d in delays}) > 100  # not all the same: agents stay apart
