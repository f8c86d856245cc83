"""A hold's expiry across restarts: the same wall-clock time after any number of them.

The saved state's ``now`` is the engine's last tick, earlier than the save; the store keeps
the rules' clock beside the wall clock at the save, so the gap between the tick and the
save is not lost at each restart (it was: 54-151 ms later per restart). The clocks here
are the test's own, read at the same instants, so the bound is exact: to the nanosecond.
"""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.common.time_units import NS_PER_HOUR, NS_PER_MINUTE, NS_PER_S
from edge_agent.rules import RuleEngine, RuleStateStore
from edge_agent.rules import store as store_module
from edge_agent.rules.lifecycle import DEFAULT_MAX_SHELVE_NS, parse_command
from tests.rules.conftest import BASE_NS, site

RULE = {"id": "hot", "asset": "p101", "sensor": "temp", "high": {"limit": 80}}


class Clocks:
    """A wall clock and a monotonic clock that starts again at every boot."""

    def __init__(self) -> None:
        self.wall = BASE_NS
        self.mono = 5 * NS_PER_S

    def time_ns(self) -> int:
        return self.wall

    def now(self) -> int:
        return self.mono

    def advance(self, ns: int) -> None:
        self.wall += ns
        self.mono += ns

    def reboot(self, down_ns: int, new_origin_ns: int) -> None:
        self.wall += down_ns
        self.mono = new_origin_ns


def _expiry_wall(engine: RuleEngine, clocks: Clocks) -> int:
    life = engine.lifecycle.life_of(engine.rules[0])
    assert life.shelved is not None and life.shelved.until is not None
    return life.shelved.until + clocks.wall - clocks.mono


restarts = st.lists(
    st.tuples(
        st.integers(0, 10 * NS_PER_MINUTE),  # running before the last tick
        st.integers(0, 2 * NS_PER_S),  # from the last tick to the save (the lost gap)
        st.integers(0, 10 * NS_PER_MINUTE),  # down
        st.integers(0, 10**15),  # the monotonic clock after the boot
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(restarts)
def test_a_shelve_expires_at_the_same_wall_time_after_any_restarts(
    steps: list[tuple[int, int, int, int]],
) -> None:
    clocks = Clocks()
    config = site([RULE], stale_after="1d")
    with TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "time", clocks)
        path = Path(folder) / "rules.json"
        engine = RuleEngine(config, RuleStateStore(path, clocks.now))
        shelve = {"id": "c1", "action": "shelve", "rule": "hot", "by": "a", "reason": "b"}
        command = parse_command({**shelve, "for": "8h"}, max_shelve_ns=DEFAULT_MAX_SHELVE_NS)
        assert engine.apply_command(command, clocks.now()).ok
        expiry = _expiry_wall(engine, clocks)
        for running, gap, down, origin in steps:
            clocks.advance(running)
            engine.tick(clocks.now())
            clocks.advance(gap)
            assert engine.close()
            clocks.reboot(down, origin)
            engine = RuleEngine(
                config,
                RuleStateStore(path, clocks.now),
                resume_at=clocks.now(),
                wall_now_ns=clocks.time_ns(),
            )
            assert _expiry_wall(engine, clocks) == expiry


def test_a_state_saved_without_the_rules_clock_still_counts_the_downtime(tmp_path: Path) -> None:
    """A state file from before this fix (no ``saved_clock_ns``): the downtime is counted
    from the save's wall time, as it was."""
    clocks = Clocks()
    config = site([RULE], stale_after="1d")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "time", clocks)
        path = tmp_path / "rules.json"
        engine = RuleEngine(config, RuleStateStore(path))
        shelve = {"id": "c1", "action": "shelve", "rule": "hot", "by": "a", "reason": "b"}
        command = parse_command({**shelve, "for": "2h"}, max_shelve_ns=DEFAULT_MAX_SHELVE_NS)
        assert engine.apply_command(command, clocks.now()).ok
        expiry = _expiry_wall(engine, clocks)
        engine.tick(clocks.now())
        assert engine.close()
        clocks.reboot(NS_PER_HOUR, 7 * NS_PER_S)
        again = RuleEngine(
            config, RuleStateStore(path), resume_at=clocks.now(), wall_now_ns=clocks.time_ns()
        )
        assert _expiry_wall(again, clocks) == expiry
