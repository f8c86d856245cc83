"""Which meters are silent (every reading refused past their limit), on a clock the test
moves: no time passes in the test."""

from __future__ import annotations

from edge_agent.service.meters_silence import SILENT_AFTER_NS, Silence

S = 1_000_000_000


def test_silent_past_its_limit_until_a_reading_is_used() -> None:
    now = [0]
    silence = Silence(lambda: now[0])
    limits = {"hours": 2 * S, "temp": None}
    silence.note("hours", True)
    silence.note("temp", True)
    now[0] = 2 * S
    assert silence.silent(limits) == {}  # not longer than max_gap yet
    silence.note("hours", True)  # still refusing: counted from the first refusal
    now[0] = 3 * S
    assert silence.silent(limits) == {"hours": 3.0}
    now[0] = SILENT_AFTER_NS + S
    assert set(silence.silent(limits)) == {"hours", "temp"}  # no max_gap: 5 minutes
    silence.note("hours", False)
    assert set(silence.silent(limits)) == {"temp"}
    silence.keep(["hours"])  # temp removed by a reload
    assert silence.silent(limits) == {}
