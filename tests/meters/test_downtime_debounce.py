"""Asset downtime with ``min_duration`` (issue 14): a toggling running sensor posts a
change only once the new state held that long, at the time it really began; a restart in
the middle of a debounce loses nothing."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.meters.downtime import DowntimeTracker, StatusChange
from tests.meters.conftest import SECOND, reading, through_json

T0 = 1_780_000_000 * SECOND

# (running?, seconds since the reading before): a sensor that toggles every poll or so,
# sometimes holds, sometimes goes quiet for a while.
polls = st.lists(
    st.tuples(st.booleans(), st.integers(min_value=1, max_value=40)), min_size=1, max_size=80
)
min_durations = st.integers(min_value=0, max_value=60).map(lambda s: s * SECOND)


def _timed(sequence: list[tuple[bool, int]]) -> list[tuple[bool, int]]:
    timed, at = [], T0
    for running, gap_s in sequence:
        at += gap_s * SECOND
        timed.append((running, at))
    return timed


def _feed(tracker: DowntimeTracker, timed: list[tuple[bool, int]]) -> list[StatusChange]:
    found = []
    for running, at in timed:
        change = tracker.feed(reading(1.0 if running else 0.0, at))
        if change is not None:
            found.append(change)
    return found


@dataclass
class _Run:
    running: bool
    start_ns: int
    last_ns: int


def _expected(timed: list[tuple[bool, int]], min_ns: int) -> list[tuple[str, int]]:
    """The oracle, told in runs of equal readings: a run is posted (at its first reading)
    when it differs from the last posted state and its last reading is min_ns after its
    first."""
    runs: list[_Run] = []
    for running, at in timed:
        if runs and runs[-1].running == running:
            runs[-1].last_ns = at
        else:
            runs.append(_Run(running, at, at))
    posted: list[tuple[str, int]] = []
    for run in runs:
        status = "ONLINE" if run.running else "OFFLINE"
        if (not posted or posted[-1][0] != status) and run.last_ns - run.start_ns >= min_ns:
            posted.append((status, run.start_ns))
    return posted


@settings(max_examples=300, deadline=None)
@given(polls, min_durations)
def test_posted_statuses_alternate_each_held_at_exact_times(
    sequence: list[tuple[bool, int]], min_ns: int
) -> None:
    timed = _timed(sequence)
    changes = _feed(DowntimeTracker("P-101", min_ns), timed)
    posted = [(c.status, c.time_ns) for c in changes]
    assert posted == _expected(timed, min_ns)
    # They alternate, each held at least min_duration before the next one began.
    assert all(a.status != b.status for a, b in zip(changes, changes[1:], strict=False))
    assert all(b.time_ns - a.time_ns >= min_ns for a, b in zip(changes, changes[1:], strict=False))
    # Each is the time a reading first showed that state (MaintainX's downtime is exact).
    began = {at for n, (running, at) in enumerate(timed) if n == 0 or timed[n - 1][0] != running}
    assert {c.time_ns for c in changes} <= began
    assert all((c.downtime_type is None) == (c.status == "ONLINE") for c in changes)


@settings(max_examples=300, deadline=None)
@given(polls, min_durations, st.data())
def test_a_restart_mid_debounce_loses_nothing(
    sequence: list[tuple[bool, int]], min_ns: int, data: st.DataObject
) -> None:
    timed = _timed(sequence)
    cut = data.draw(st.integers(min_value=0, max_value=len(timed)))
    whole = _feed(DowntimeTracker("P-101", min_ns), timed)
    before = DowntimeTracker("P-101", min_ns)
    first = _feed(before, timed[:cut])
    after = DowntimeTracker("P-101", min_ns)
    after.restore(through_json(before))
    assert first + _feed(after, timed[cut:]) == whole


def test_a_toggle_shorter_than_min_duration_posts_nothing() -> None:
    tracker = DowntimeTracker("P-101", 30 * SECOND)
    timed = [(True, T0), (True, T0 + 30 * SECOND)]  # ONLINE, held 30 s: posted at T0
    timed += [(n % 2 == 0, T0 + (31 + n) * SECOND) for n in range(59)]  # toggles every 1 s
    changes = _feed(tracker, timed)
    assert [(c.status, c.time_ns) for c in changes] == [("ONLINE", T0)]
    # Then it stops for good: OFFLINE posted at the time it stopped, once it held 30 s.
    stop_ns = T0 + 200 * SECOND
    assert tracker.feed(reading(0.0, stop_ns)) is None
    assert tracker.feed(reading(0.0, stop_ns + 29 * SECOND)) is None
    change = tracker.feed(reading(0.0, stop_ns + 30 * SECOND))
    assert change is not None and (change.status, change.time_ns) == ("OFFLINE", stop_ns)
    assert change.downtime_type == "UNPLANNED"


def test_a_state_saved_before_the_debounce_is_read() -> None:
    """A state file written by a release without ``pending``: nothing pending."""
    old = DowntimeTracker("P-101")
    old.feed(reading(1.0, T0))
    state = through_json(old)
    for key in ("pending", "pending_ns", "pending_planned"):
        del state[key]
    tracker = DowntimeTracker("P-101", 10 * SECOND)
    tracker.restore(state)
    assert (tracker.status, tracker.pending) == ("ONLINE", None)
