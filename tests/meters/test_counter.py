"""Counters: rollovers of 16/32-bit registers and device resets never make the total go
backwards; absurd jumps, fractions and values beyond the register are refused and counted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.meters import CounterMeter, MeterStateError, Refusal
from edge_agent.meters.counter import JUMP_CONFIRMATIONS
from edge_agent.readings import Quality
from edge_agent.wire.plant import MAX_VALUE
from tests.meters.conftest import SECOND, reading, through_json


def counter(bits: int | None = 16, **kw: float) -> CounterMeter:
    return CounterMeter("p101-strokes", every_ns=60 * SECOND, bits=bits, **kw)  # type: ignore[arg-type]


def feed_all(meter: CounterMeter, raws: list[float]) -> list[float]:
    totals = []
    for n, raw in enumerate(raws):
        meter.feed(reading(raw, n * SECOND))
        totals.append(meter.total)
    return totals


def test_a_16_bit_rollover_counts_the_wrapped_step() -> None:
    meter = counter(16)
    assert feed_all(meter, [65_000, 65_530, 4, 100]) == [0, 530, 540, 636]
    assert (meter.rollovers, meter.resets) == (1, 0)


def test_a_32_bit_rollover() -> None:
    meter = counter(32)
    assert feed_all(meter, [2**32 - 10, 5]) == [0, 15]
    assert meter.rollovers == 1


def test_a_device_reset_counts_from_zero_again() -> None:
    meter = counter(16)
    # From 30 000 down to 12: wrapping would be a 35 518 step (more than half the
    # register): the device restarted and has counted 12 since.
    assert feed_all(meter, [29_000, 30_000, 12, 20]) == [0, 1000, 1012, 1020]
    assert (meter.rollovers, meter.resets) == (0, 1)


def test_a_float_counter_falls_only_by_a_reset() -> None:
    meter = counter(None)
    assert feed_all(meter, [1000.5, 1010.0, 3.5, 4.0]) == [0, 9.5, 13.0, 13.5]
    assert meter.resets == 1


def test_an_absurd_jump_is_refused_and_a_glitch_leaves_no_trace() -> None:
    meter = counter(16, max_step=1000)
    assert feed_all(meter, [100, 110, 60_000, 120]) == [0, 10, 10, 20]
    assert meter.refused == {Refusal.ABSURD_JUMP: 1}
    assert meter.rebased == 0


def test_a_confirmed_jump_is_carried_on_from_without_adding_it() -> None:
    """A device swapped for one at another count: the meter does not freeze."""
    meter = counter(32, max_step=1000)
    jumped = [500_000 + 10 * n for n in range(JUMP_CONFIRMATIONS)]
    totals = feed_all(meter, [100, 110, *jumped, 500_100])
    assert totals[-1] == 10 + (500_100 - jumped[-1])
    assert meter.refused == {Refusal.ABSURD_JUMP: JUMP_CONFIRMATIONS}
    assert meter.rebased == 1


@pytest.mark.parametrize(
    ("raw", "quality", "refusal"),
    [
        (12.5, Quality.GOOD, Refusal.NOT_AN_INTEGER),
        (-1, Quality.GOOD, Refusal.OUT_OF_RANGE),
        (65_536, Quality.GOOD, Refusal.OUT_OF_RANGE),
        (float("nan"), Quality.GOOD, Refusal.NOT_A_NUMBER),
        (None, Quality.GOOD, Refusal.NOT_A_NUMBER),
        (200, Quality.BAD, Refusal.BAD_QUALITY),
    ],
)
def test_bad_register_values_are_refused(
    raw: float | None, quality: Quality, refusal: Refusal
) -> None:
    meter = counter(16)
    meter.feed(reading(100, 0))
    assert meter.feed(reading(raw, SECOND, quality)) is None
    meter.feed(reading(150, 2 * SECOND))
    assert meter.total == 50
    assert meter.refused == {refusal: 1}


def test_a_clock_going_backwards_is_refused() -> None:
    meter = counter(16)
    meter.feed(reading(100, 10 * SECOND))
    meter.feed(reading(200, 5 * SECOND))
    assert meter.total == 0 and meter.refused == {Refusal.CLOCK_BACKWARDS: 1}


def test_the_total_is_sent_when_it_moved_and_a_period_passed() -> None:
    meter = counter(16)
    sent = [meter.feed(reading(raw, t * SECOND)) for t, raw in [(0, 5), (30, 6), (60, 7), (120, 7)]]
    assert [(s.time_ns // SECOND, s.value) for s in sent if s is not None] == [(0, 0), (60, 2)]


def test_bad_arguments_and_a_damaged_state() -> None:
    with pytest.raises(ValueError):
        CounterMeter("c", every_ns=SECOND, bits=24)
    with pytest.raises(ValueError):
        CounterMeter("c", every_ns=SECOND, bits=16, max_step=0)
    meter = counter(16)
    meter.feed(reading(5, 0))
    before = meter.state()
    with pytest.raises(MeterStateError, match="rollovers"):
        meter.restore({**before, "rollovers": None})
    assert meter.state() == before


# ---------------------------------------------------------------------- properties

BITS = st.sampled_from([16, 32])


@given(BITS, st.lists(st.integers(min_value=0, max_value=2**32 - 1), max_size=80))
def test_the_total_never_goes_backwards_whatever_the_register_says(
    bits: int, raws: list[int]
) -> None:
    meter = counter(bits)
    totals = feed_all(meter, [raw % 2**bits for raw in raws])
    assert totals == sorted(totals)


events = st.one_of(
    st.tuples(st.just("count"), st.integers(min_value=0, max_value=20_000)),
    st.tuples(st.just("reset"), st.integers(min_value=0, max_value=50)),
)


@given(BITS, st.integers(min_value=0, max_value=2**16 - 1), st.lists(events, max_size=80))
def test_counts_are_exact_across_rollovers_and_monotonic_across_resets(
    bits: int, start: int, steps: list[tuple[str, int]]
) -> None:
    """The device counts ``n`` (wrapping in its register) or restarts and counts ``n``."""
    meter, device, true_total = counter(bits), start, 0
    meter.feed(reading(device, 0))
    totals = []
    for n, (event, amount) in enumerate(steps, start=1):
        if event == "reset" and 2 * amount >= device:
            # A fall to half or more of the last value reads as noise, not a reset
            # (test_a_counter_falling_by_one_is_noise_not_a_reset): count it instead.
            event = "count"
        device = amount if event == "reset" else (device + amount) % 2**bits
        true_total += amount
        meter.feed(reading(device, n * SECOND))
        totals.append(meter.total)
    assert totals == sorted(totals)
    assert not meter.refused
    if all(event == "count" for event, _ in steps):
        assert meter.total == true_total  # rollovers lose nothing


@given(
    BITS,
    st.lists(st.integers(min_value=0, max_value=40_000), max_size=60),
    st.data(),
)
def test_a_counter_survives_a_restart_anywhere(
    bits: int, steps: list[int], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(steps)))
    whole, split, device = counter(bits), counter(bits), 0
    for index, step in enumerate(steps):
        device = (device + step) % 2**bits
        if index == cut:
            restarted = counter(bits)
            restarted.restore(through_json(split))
            split = restarted
        assert split.feed(reading(device, index * SECOND)) == whole.feed(
            reading(device, index * SECOND)
        )
    assert split.state() == whole.state()


def test_a_step_of_exactly_max_step_is_plausible() -> None:
    meter = counter(32, max_step=1000)
    assert feed_all(meter, [100, 1100, 2101]) == [0, 1000, 1000]
    assert meter.refused == {Refusal.ABSURD_JUMP: 1}


def test_a_jump_confirmed_by_a_register_that_holds_still() -> None:
    """A stopped machine's swapped device reads the same value three times: confirmed."""
    meter = counter(32, max_step=1000)
    feed_all(meter, [100, *[900_000] * JUMP_CONFIRMATIONS, 900_005])
    assert meter.rebased == 1 and meter.total == 5


def test_a_counter_falling_by_one_is_noise_not_a_reset() -> None:
    """A register that reads one less for a poll (a misread) must not add its whole count:
    taking 99 999 after 100 000 for a reset added 99 999 to the total."""
    meter = counter(32)
    assert feed_all(meter, [100_000, 100_001, 100_000, 100_001, 100_002]) == [0, 1, 1, 1, 2]
    assert meter.resets == 0 and meter.refused == {Refusal.COUNTER_BACKWARDS: 1}


def test_a_noisy_float_totaliser_never_adds_its_whole_count() -> None:
    meter = counter(None)
    totals = feed_all(meter, [5000.0, 5000.5, 5000.4, 5000.6])
    assert totals[-1] == pytest.approx(0.6) and meter.resets == 0


def test_a_confirmed_small_fall_is_carried_on_from_without_adding() -> None:
    meter = counter(16)
    feed_all(meter, [30_000, *[29_000] * JUMP_CONFIRMATIONS, 29_010])
    assert meter.total == 10 and meter.rebased == 1 and meter.resets == 0


def test_a_real_reset_and_a_rollover_beside_the_noise() -> None:
    meter = counter(16)
    # noise (-1), a rollover (65 530 -> 4), a reset (20 000 -> 7)
    assert feed_all(meter, [65_000, 64_999, 65_530, 4, 20_000, 7]) == [
        0,
        0,
        530,
        540,
        20_536,
        20_543,
    ]
    assert (meter.rollovers, meter.resets) == (1, 1)


def test_a_float_counter_whose_total_would_leave_the_wire_bound_is_refused() -> None:
    """Absurd values (1e308, then a 'reset', then 1e308 again) made the total infinite."""
    meter = counter(None)
    totals = feed_all(meter, [1e308, 0, 1e308, 0, 1e308, 5])
    assert all(t <= MAX_VALUE for t in totals) and meter.total == 5
    assert meter.refused[Refusal.OUT_OF_RANGE] == 2
