"""``HubTracking.due()`` keeps a lower bound of the awaiting events' due times, so that a
cycle before it does not look at every tracked event (issue 16): it must return exactly
what a full look returns, whatever happens to the events (PUBACKs, resends that a full
window leaves due, failed resends, a dropped link, a hub coming online, reloads). A
hypothesis state machine checks it against the full look after every step."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from edge_agent.forwarders.hub_confirm import Tracked
from edge_agent.forwarders.hub_tracking import HubTracking
from edge_agent.interfaces import ForwarderStatus, HubConfirmation
from edge_agent.outbox.records import AwaitingItem
from edge_agent.wire.result import result_payload


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def online(state: str) -> bytes:
    return json.dumps(
        {"state": state, "group": "g", "replica": "hub-a", "time": "2026-12-05T00:00:00Z"}
    ).encode()


class DueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.hub = HubTracking(
            ForwarderStatus(),
            HubConfirmation(),
            results_topic="edge/v1/s/results",
            timeout_s=5.0,
            timeout_max_s=40.0,
            clock=self.clock,
            wake=lambda: None,
        )
        self.next_id = 1

    def _tracked(self, phase: str) -> list[Tracked]:
        return [t for t in self.hub._tracked.values() if t.phase == phase]

    @rule()
    def publish(self) -> None:
        item_id, self.next_id = self.next_id, self.next_id + 1
        self.hub.track(Tracked(item_id, f"ev-{item_id}", f"al-{item_id}", "sending", b"{}", 0.0))

    @rule(pick=st.integers(0, 50))
    @precondition(lambda self: self._tracked("sending"))
    def puback(self, pick: int) -> None:
        sending = self._tracked("sending")
        self.hub.on_first_puback(sending[pick % len(sending)].item_id)

    @rule(seconds=st.floats(0.0, 50.0))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(window=st.integers(0, 3))
    def resend_due(self, window: int) -> None:
        # As the forwarder does: only what fits in the window goes; the rest stays due.
        for tracked in self.hub.due()[:window]:
            tracked.phase = "resending"

    @rule(pick=st.integers(0, 50), failed=st.booleans())
    @precondition(lambda self: self._tracked("resending"))
    def resend_done(self, pick: int, failed: bool) -> None:
        resending = self._tracked("resending")
        self.hub.on_resend_done(resending[pick % len(resending)].item_id, failed)

    @rule(pick=st.integers(0, 50))
    @precondition(lambda self: self.hub._tracked)
    def link_drops_for(self, pick: int) -> None:
        tracked = list(self.hub._tracked.values())
        self.hub.strand(tracked[pick % len(tracked)].item_id)

    @rule(state=st.sampled_from(["online", "offline"]))
    def hub_status(self, state: str) -> None:
        self.hub.on_hub_status("hub-a", online(state))

    @rule(pick=st.integers(0, 50))
    @precondition(lambda self: self.hub._tracked)
    def result(self, pick: int) -> None:
        tracked = list(self.hub._tracked.values())[pick % len(self.hub._tracked)]
        self.hub.on_result(
            result_payload(
                "s",
                status="ok",
                time_ns=1_700_000_000_000_000_000,
                event_id=tracked.event_id,
                alert_id=tracked.alert_id,
                reason=None,
            )
        )

    @rule(ago=st.floats(0.0, 100.0), sends=st.integers(1, 5))
    def reload_one(self, ago: float, sends: int) -> None:
        item_id, self.next_id = self.next_id, self.next_id + 1
        wall = 1_764_900_000.0
        payload: dict[str, Any] = {"event_id": f"ev-{item_id}", "alert_id": f"al-{item_id}"}
        self.hub.load([AwaitingItem(item_id, payload, wall, wall, wall - ago, sends)])

    @invariant()
    def due_is_what_a_full_look_finds(self) -> None:
        now = self.clock()
        expected = sorted(
            t.item_id for t in self.hub._tracked.values() if t.phase == "awaiting" and t.due <= now
        )
        assert [t.item_id for t in self.hub.due()] == expected


DueMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_due_matches_a_full_look = DueMachine.TestCase
