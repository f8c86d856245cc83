"""A stateful test: the engine against a deliberately naive model of one high rule."""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from edge_agent.readings import Quality, Reading
from edge_agent.rules import RuleEngine
from tests.rules.conftest import BASE_NS, SECOND, site


class Oracle:
    """One high rule, written the obvious way: at most one deadline, checked before each
    input; then the sample moves the state. A sample behind the clock (a tick went past
    it) counts at the clock."""

    def __init__(self, limit: float, deadband: float, inclusive: bool, on: int, off: int):
        self.limit, self.deadband, self.inclusive = limit, deadband, inclusive
        self.on, self.off = on, off
        self.state = "NORMAL"
        self.since = 0
        self.held: float | None = None
        self.last_time: int | None = None
        self.clock: int | None = None

    def trips(self, v: float) -> bool:
        return v >= self.limit if self.inclusive else v > self.limit

    def advance(self, now: int, out: list[tuple[int, str, Any]]) -> None:
        self.clock = now if self.clock is None else max(self.clock, now)
        if self.state == "PENDING" and self.since + self.on <= now:
            self.state = "ACTIVE"
            out.append((self.since + self.on, "activated", self.held))
        elif self.state == "CLEARING" and self.since + self.off <= now:
            self.state = "NORMAL"
            out.append((self.since + self.off, "cleared", self.held))

    def sample(self, t: int, v: float | None, out: list[tuple[int, str, Any]]) -> None:
        self.advance(t, out)
        if self.last_time is not None and t <= self.last_time:
            return
        self.last_time = t
        assert self.clock is not None
        t = self.clock
        if v is None:
            return
        self.held = v
        trips, clears = self.trips(v), v < self.limit - self.deadband
        if self.state == "NORMAL" and trips:
            self.state, self.since = "PENDING", t
            self.advance(t, out)
        elif self.state == "PENDING" and not trips:
            self.state = "NORMAL"
        elif self.state == "ACTIVE" and clears:
            self.state, self.since = "CLEARING", t
            self.advance(t, out)
        elif self.state == "CLEARING" and not clears:
            self.state = "ACTIVE"


class EngineMatchesOracle(RuleBasedStateMachine):
    @initialize(
        limit=st.sampled_from([50, 50.5]),
        deadband=st.sampled_from([0, 1, 3]),
        inclusive=st.booleans(),
        on=st.integers(0, 3),
        off=st.integers(0, 3),
    )
    def setup(self, limit: float, deadband: float, inclusive: bool, on: int, off: int) -> None:
        config = site(
            [
                {
                    "id": "hot",
                    "asset": "p101",
                    "sensor": "temp",
                    "high": {"limit": limit, "deadband": deadband},
                    "inclusive": inclusive,
                    "on_delay": f"{on}s",
                    "off_delay": f"{off}s",
                    "chattering": {"activations": 1000, "window": "1s"},
                }
            ],
            flood={"work_orders": 100000, "window": "1s"},
        )
        self.engine = RuleEngine(config)
        self.oracle = Oracle(limit, deadband, inclusive, on * SECOND, off * SECOND)
        self.now = BASE_NS

    def check(self, got: list[Any], want: list[tuple[int, str, Any]]) -> None:
        assert [(e.time_ns, e.kind, e.value) for e in got] == want

    @rule(
        step=st.integers(-SECOND, 3 * SECOND),
        value=st.one_of(st.none(), st.sampled_from([45, 47, 48.5, 49, 50, 50.5, 51, 60])),
    )
    def feed(self, step: int, value: float | None) -> None:
        t = max(self.now + step, BASE_NS)
        quality = Quality.GOOD if value is not None else Quality.BAD
        want: list[tuple[int, str, Any]] = []
        self.oracle.sample(t, value, want)
        self.check(self.engine.feed(Reading("temp", value, quality, t)), want)
        self.now = max(self.now, t)

    @rule(step=st.integers(0, 3 * SECOND))
    def tick(self, step: int) -> None:
        self.now += step
        want: list[tuple[int, str, Any]] = []
        self.oracle.advance(self.now, want)
        self.check(self.engine.tick(self.now), want)

    @invariant()
    def same_state(self) -> None:
        if hasattr(self, "engine"):
            assert self.engine.rule_states()["hot"] == self.oracle.state


EngineMatchesOracle.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestEngineMatchesOracle = EngineMatchesOracle.TestCase
