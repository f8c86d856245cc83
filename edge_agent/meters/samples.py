"""What every meter does with a reading before its own arithmetic: refuse what cannot be
trusted (bad quality, no number, a clock going backwards), and count why.

A refused reading never raises and never moves a meter's value: it is counted under its
:class:`Refusal`, so a meter that stops moving can say why.
"""

from __future__ import annotations

import math
from collections import Counter
from enum import StrEnum

from edge_agent.errors import EdgeAgentError
from edge_agent.readings import Quality, Reading


class Refusal(StrEnum):
    """Why a meter did not use a reading."""

    BAD_QUALITY = "bad_quality"
    NOT_A_NUMBER = "not_a_number"  # None, text, NaN or infinite
    NOT_AN_INTEGER = "not_an_integer"  # a register counter given a fraction
    OUT_OF_RANGE = "out_of_range"  # negative, beyond the register, or a message's bound
    CLOCK_BACKWARDS = "clock_backwards"
    ABSURD_JUMP = "absurd_jump"  # a counter's step beyond ``max_step``
    COUNTER_BACKWARDS = "counter_backwards"  # a counter's small fall: noise, not a reset


class MeterStateError(EdgeAgentError, ValueError):
    """A saved meter state that cannot be restored (wrong kind, missing or bad field)."""


def number_of(reading: Reading, refusals: Counter[Refusal]) -> float | None:
    """The reading's value as a finite number (a bool counts as 0 or 1), or None: refused
    and counted."""
    if reading.quality is Quality.BAD:
        refusals[Refusal.BAD_QUALITY] += 1
        return None
    value = reading.value
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float) or not math.isfinite(value):
        refusals[Refusal.NOT_A_NUMBER] += 1
        return None
    return value


def running_of(reading: Reading, refusals: Counter[Refusal]) -> bool | None:
    """Whether a running sensor says running (any non-zero value), or None: refused."""
    value = number_of(reading, refusals)
    return None if value is None else value != 0


# Readings in a row before the last one used after which the clock is taken as set back
# (a wall clock stepped a year ahead, then corrected): refusing them all would stop the
# meter until the clock caught up again, a year later.
CLOCK_CONFIRMATIONS = 3


def in_order(
    time_ns: int, last_ns: int | None, refusals: Counter[Refusal], behind: int = 0
) -> bool:
    """False (and counted) when ``time_ns`` is before the last reading the meter used,
    unless ``behind`` readings in a row already were: then the clock was set back, and the
    meter carries on from this time (counting nothing over the step)."""
    if last_ns is not None and time_ns < last_ns:
        if behind + 1 >= CLOCK_CONFIRMATIONS:
            return True
        refusals[Refusal.CLOCK_BACKWARDS] += 1
        return False
    return True
