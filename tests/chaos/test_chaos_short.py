"""The short fault campaign (`make chaos-short`): three fixed seeds, 60 s of faults each, on
one estate; every episode the agents activated must become exactly one work order."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.campaign import run

SEEDS = [1, 2, 3]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_episode_becomes_exactly_one_work_order(tmp_path: Path) -> None:
    assert run(SEEDS, 60.0, tmp_path) == 0, "the campaign failed: its output says how"
