"""Properties of the alarm lifecycle on generated traces of readings, commands and work
order statuses (hypothesis).

- A held activation never notifies: an independent model of the commands and statuses
  (intervals of shelved, out of service and maintenance per rule) says, for every
  activation, escalation and chattering event, whether a state held it; the engine's
  ``held`` and ``notify`` must agree, and no message with ``held`` notifies.
- No expiry is missed across restarts: the same steps with the state saved and loaded
  into a new engine before every step give the same events as one run.
- An episode still active when all its holds ended has exactly one notifying message: its
  release (``released``), unless the verification of a repair speaks for it (``reopened``)
  or the rule is chattering then; and no episode has more than one.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from edge_agent.readings import Quality, Reading
from edge_agent.rules import AlarmEvent, RuleEngine, RuleStateStore, to_alert_message
from edge_agent.rules.events import ACTIVE
from edge_agent.rules.lifecycle import parse_command
from edge_agent.rules.lifecycle_state import HELD_MAINTENANCE, HELD_OOS, HELD_SHELVED
from tests.rules.conftest import BASE_NS, SECOND, site

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
RULES: list[dict[str, Any]] = [
    {
        "id": "hot",
        "asset": "p101",
        "sensor": "temp",
        "high": {"limit": 50, "deadband": 2},
        "on_delay": "2s",
        "escalate": [{"above": 55, "priority": "HIGH"}],
        "ack_within": "5s",
        "verify_for": "6s",
        "chattering": {"activations": 3, "window": "20s"},
    },
    {"id": "cold", "asset": "p101", "sensor": "temp", "low": {"limit": 45}, "verify_for": "3s"},
    {
        "id": "lvl",
        "asset": "p102",
        "sensor": "level",
        "high": {"limit": 55},
        "off_delay": "1s",
        "verify_for": "0s",
    },
]
ASSET_OF = {"hot": "p101", "cold": "p101", "lvl": "p102"}
MAINTENANCE = ("IN_PROGRESS", "ON_HOLD")
NOTIFYING = ("activated", "escalated", "chattering")

Step = tuple[Any, ...]


@st.composite
def plans(draw: Any) -> list[tuple[int, Step]]:
    """Steps at nondecreasing times: readings, ticks, commands and work order statuses."""
    steps: list[tuple[int, Step]] = []
    t = BASE_NS
    for _ in range(draw(st.integers(1, 45))):
        t += draw(st.sampled_from([0, SECOND // 2, SECOND, 2 * SECOND, 3 * SECOND]))
        kind = draw(st.sampled_from(["read"] * 6 + ["tick", "cmd", "cmd", "wo"]))
        if kind == "read":
            sensor = draw(st.sampled_from(["temp", "level"]))
            steps.append((t, ("read", sensor, draw(st.sampled_from([40, 44, 47, 49, 52, 57])))))
        elif kind == "tick":
            steps.append((t, ("tick",)))
        elif kind == "cmd":
            action = draw(st.sampled_from(["shelve", "unshelve", "oos", "return", "ack"]))
            asset = action in ("oos", "return") and draw(st.booleans())
            target = draw(st.sampled_from(["p101", "p102"] if asset else list(ASSET_OF)))
            seconds = draw(st.sampled_from([None, 1, 3, 7]))
            if action == "shelve" and seconds is None:
                seconds = 4
            if action not in ("shelve", "oos"):
                seconds = None
            steps.append((t, ("cmd", action, "asset" if asset else "rule", target, seconds)))
        else:
            rule = draw(st.sampled_from(list(ASSET_OF)))
            status = draw(st.sampled_from(["OPEN", "IN_PROGRESS", "ON_HOLD", "DONE", "CANCELED"]))
            steps.append((t, ("wo", rule, draw(st.sampled_from([1, 2, 3])), status)))
    return steps


def apply_step(engine: RuleEngine, index: int, t: int, step: Step) -> list[AlarmEvent]:
    kind = step[0]
    if kind == "read":
        return engine.feed(Reading(step[1], step[2], Quality.GOOD, t))
    if kind == "tick":
        return engine.tick(t)
    if kind == "wo":
        return engine.work_order_status(step[1], step[2], step[3], t)
    _, action, target_kind, target, seconds = step
    data: dict[str, Any] = {"id": f"c{index}", "action": action, target_kind: target, "by": "p"}
    data["reason"] = "why"
    if seconds is not None:
        data["for"] = seconds
    command = parse_command(data, max_shelve_ns=3600 * SECOND)
    return engine.apply_command(command, t).events


@dataclass
class HoldModel:
    """The holds as intervals of (time, order), independent of the engine: a command or
    status at step k starts or ends a hold at (t, k + 0.5), after what that step fired; an
    expiry ends it at (until, -inf), before anything else at that instant."""

    spans: dict[tuple[str, str], list[list[float]]] = field(default_factory=dict)
    statuses: dict[str, dict[int, list[tuple[float, float, str]]]] = field(default_factory=dict)

    def _start(self, key: tuple[str, str], at: tuple[float, float], until: float) -> None:
        self._end(key, at)
        self.spans.setdefault(key, []).append([at[0], at[1], until, -math.inf])

    def _end(self, key: tuple[str, str], at: tuple[float, float]) -> bool:
        spans = self.spans.get(key)
        if spans and (spans[-1][2], spans[-1][3]) > at:
            spans[-1][2], spans[-1][3] = at
            return True
        return False

    def step(self, index: int, t: int, step: Step) -> None:
        at = (float(t), index + 0.5)
        if step[0] == "wo":
            _, rule, work_order, status = step
            history = self.statuses.setdefault(ASSET_OF[rule], {}).setdefault(work_order, [])
            history.append((at[0], at[1], status))
            return
        if step[0] != "cmd":
            return
        _, action, target_kind, target, seconds = step
        until = math.inf if seconds is None else float(t + seconds * SECOND)
        if action == "shelve":
            self._start(("shelved", target), at, until)
        elif action == "unshelve":
            self._end(("shelved", target), at)
        elif action == "oos":
            self._start(("oos", target), at, until)
        elif action == "return":
            self._end(("oos", target), at)

    def held(self, rule: str, e: int, k: float) -> str | None:
        """What holds ``rule`` for an event at time ``e`` made in step ``k`` (``k + 0.75``:
        once that step's command or status has applied)."""
        point = (float(e), float(k))

        def active(key: tuple[str, str]) -> bool:
            return any((s[0], s[1]) <= point < (s[2], s[3]) for s in self.spans.get(key, []))

        if active(("oos", rule)) or active(("oos", ASSET_OF[rule])):
            return HELD_OOS
        if active(("shelved", rule)):
            return HELD_SHELVED
        for history in self.statuses.get(ASSET_OF[rule], {}).values():
            latest = [s for ts, ks, s in history if (ts, ks) <= point]
            if latest and latest[-1] in MAINTENANCE:
                return HELD_MAINTENANCE
        return None


T_CI: Final = 1_767_607_200_000_000_000


@PROPERTY_SETTINGS
@given(plan=plans())
# Found in CI: a shelve expiring at the instant a command takes the asset out of service;
# the expiry and its release come first.
@example(
    plan=[(T_CI, ("tick",))]
    + [(T_CI, ("read", "temp", 40))] * 16
    + [
        (T_CI, ("cmd", "shelve", "rule", "cold", 7)),
        (T_CI + 500_000_000, ("read", "temp", 47)),
        (T_CI + 1_000_000_000, ("read", "temp", 40)),
        (T_CI + 4_000_000_000, ("tick",)),
        (T_CI + 7_000_000_000, ("cmd", "oos", "asset", "p101", None)),
    ]
)
def test_a_held_activation_never_notifies(plan: list[tuple[int, Step]]) -> None:
    config = site(RULES)
    engine = RuleEngine(config)
    model = HoldModel()
    for index, (t, step) in enumerate(plan):
        # What falls due at a command's instant (an expiry, its release) comes before the
        # command: the engine does it first; ticking first keeps those events apart.
        due = engine.tick(t) if step[0] == "cmd" else []
        events = apply_step(engine, index, t, step)
        for event in due + events:
            if event.released is not None:
                assert event.rule_id is not None and event.held is None
            elif event.kind in NOTIFYING and event.rule_id is not None:
                expected = model.held(event.rule_id, event.time_ns, index)
                assert event.held == expected, (event, expected)
                if expected is not None:
                    assert event.notify is False
            message = to_alert_message(event, config)
            if message is not None and "held" in message:
                assert message["notify"] is False
        for event in due:
            if event.released is not None and event.rule_id is not None:
                # Released by an expiry: free before the step's own command applies.
                assert model.held(event.rule_id, event.time_ns, index + 0.25) is None, event
        model.step(index, t, step)
        for event in events:
            if event.released is not None and event.rule_id is not None:
                # A release follows the end of the last hold (the step's own command).
                assert model.held(event.rule_id, event.time_ns, index + 0.75) is None, event


@PROPERTY_SETTINGS
@given(plan=plans())
def test_an_episode_active_when_its_holds_end_notifies_once(plan: list[tuple[int, Step]]) -> None:
    """After every step, each ACTIVE episode whose activation was held and which no state
    holds any more (the independent model says) has had its one release; a release that
    does not notify is counted as held by chattering (or the flood). Across the whole run,
    no episode has two notifying activations nor two releases."""
    config = site(RULES)
    engine = RuleEngine(config)
    model = HoldModel()
    held_episodes: set[str] = set()
    started: dict[str, int] = {}  # alert id → sequence number of its activation
    reopened: dict[str, int] = {}  # rule → sequence number of its latest reopen
    notifying: Counter[str] = Counter()
    releases: Counter[str] = Counter()
    sequence = 0
    for index, (t, step) in enumerate(plan):
        guarded = engine.guards.held_chattering + engine.guards.held_flood
        events = apply_step(engine, index, t, step)
        model.step(index, t, step)
        for event in events:
            sequence += 1
            rule, alert = event.rule_id, event.alert_id
            if event.kind == "reopened" and rule is not None:
                reopened[rule] = sequence
            if event.kind != "activated" or rule is None or alert is None:
                continue
            notifying[alert] += event.notify
            if event.released is None:
                started[alert] = sequence
                if event.held is not None:
                    held_episodes.add(alert)
                continue
            releases[alert] += 1
            assert alert in held_episodes, event
            if not event.notify:
                assert engine.guards.held_chattering + engine.guards.held_flood > guarded
        for compiled in engine.rules:
            alert = compiled.alert_id
            if compiled.state != ACTIVE or alert not in held_episodes:
                continue
            if model.held(compiled.id, t, index + 0.75) is not None:
                continue
            if compiled.life is not None and compiled.life.verifying is not None:
                continue  # the verdict speaks for it (reopened)
            if reopened.get(compiled.id, -1) > started[alert]:
                continue  # a reopened work order is its notification
            assert releases[alert] == 1, (compiled.id, alert, index)
    assert all(n <= 1 for n in notifying.values()), notifying
    assert all(n <= 1 for n in releases.values()), releases


def _ids_by_episode(events: list[AlarmEvent]) -> list[AlarmEvent]:
    numbers: dict[str | None, str] = {}
    return [replace(e, alert_id=numbers.setdefault(e.alert_id, str(len(numbers)))) for e in events]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans())
def test_no_expiry_is_missed_across_restarts(plan: list[tuple[int, Step]]) -> None:
    """Saved and loaded before every step (and before the final tick), the engine gives
    the same events as one that ran through: every unshelve, return to service, overdue
    escalation and verdict at its time."""
    config = site(RULES)
    end = plan[-1][0] + 20 * SECOND
    whole = RuleEngine(config)
    expected = [e for i, (t, s) in enumerate(plan) for e in apply_step(whole, i, t, s)]
    expected += whole.tick(end)

    events: list[AlarmEvent] = []
    with tempfile.TemporaryDirectory() as folder:
        store = RuleStateStore(Path(folder) / "rules.json")
        engine = RuleEngine(config)
        for index, (t, step) in enumerate(plan):
            store.save(engine.snapshot())
            engine = RuleEngine(config, RuleStateStore(store.path), durable=False)
            events += apply_step(engine, index, t, step)
        store.save(engine.snapshot())
        engine = RuleEngine(config, RuleStateStore(store.path), durable=False)
        events += engine.tick(end)
    assert _ids_by_episode(events) == _ids_by_episode(expected)


def test_generated_plans_reach_every_state() -> None:
    """Not vacuous: with the same strategy (derandomized), examples hold activations for
    each reason, expire shelves and outs of service, escalate overdue and give verdicts."""
    seen: Counter[str] = Counter()

    @settings(
        max_examples=150, deadline=None, derandomize=True, database=None, phases=[Phase.generate]
    )
    @given(plan=plans())
    def sample(plan: list[tuple[int, Step]]) -> None:
        engine = RuleEngine(site(RULES))
        events = [e for i, (t, s) in enumerate(plan) for e in apply_step(engine, i, t, s)]
        events += engine.tick(plan[-1][0] + 20 * SECOND)
        for event in events:
            seen[f"held {event.held}"] += event.held is not None
            seen[event.kind] += 1
            seen["expiry"] += event.by == "edge-agent"
            seen["overdue"] += event.qualifier == "unacknowledged"
            seen[f"released {event.released}"] += event.released is not None

    sample()
    for key in (
        "held shelved",
        "held out_of_service",
        "held maintenance",
        "unshelved",
        "returned_to_service",
        "acknowledged",
        "verified",
        "reopened",
        "expiry",
        "overdue",
        "released shelved",
        "released out_of_service",
    ):
        assert seen[key] >= 3, (key, seen)
    # Rarer: a status that starts maintenance, an activation, then one that ends it.
    assert seen["released maintenance"] >= 1, seen
