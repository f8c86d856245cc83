"""A dead letter's time comes from the disk: an absurd one (a tampered or damaged row) is
shown as null in /readyz, never a failed health request."""

from __future__ import annotations

import math

import pytest

from edge_agent.service.app import _dead_at_text


@pytest.mark.parametrize("dead_at", [math.inf, -math.inf, math.nan, 1e300, -1e300, 2.6e11])
def test_a_dead_letter_time_no_date_can_hold_is_null(dead_at: float) -> None:
    assert _dead_at_text(dead_at) is None


def test_a_plausible_dead_letter_time_is_rfc3339() -> None:
    assert _dead_at_text(1_767_607_200.5) == "2026-01-05T10:00:00.5Z"
