"""The grace before a PUBACKed event is stored as awaiting the hub (issue 16): a result
within it confirms the event straight from the queue; past it, or when the link drops, the
event is on disk as awaiting, and a confirmation then removes that row. Against a real
outbox on disk; the hub's results are the hub's own JSON (``result_payload``)."""

from __future__ import annotations

from pathlib import Path

from edge_agent.forwarders.hub_confirm import Tracked
from edge_agent.forwarders.hub_tracking import HubTracking, ids_of
from edge_agent.interfaces import ForwarderStatus, HubConfirmation
from edge_agent.outbox import Outbox
from edge_agent.wire.result import result_payload

from .conftest import events


def tracking(mark_after_s: float) -> HubTracking:
    return HubTracking(
        ForwarderStatus(),
        HubConfirmation(),
        results_topic="edge/v1/s/results",
        timeout_s=60.0,
        timeout_max_s=600.0,
        clock=lambda: 1000.0,
        wake=lambda: None,
        mark_after_s=mark_after_s,
    )


def published(hub: HubTracking, outbox: Outbox, count: int) -> list[int]:
    """``count`` events leased, published and PUBACKed; their outbox ids."""
    ids = outbox.put_many(events("s", count))
    for item in outbox.lease(count):
        event_id, alert_id = ids_of(item.id, item.payload)
        hub.track(Tracked(item.id, event_id, alert_id, "sending", b"{}", 1000.0))
        hub.on_first_puback(item.id)
    return ids


def answer(hub: HubTracking, payload: dict[str, object], status: str = "ok") -> None:
    hub.on_result(
        result_payload(
            "s",
            status=status,
            time_ns=1_700_000_000_000_000_000,
            event_id=str(payload["event_id"]),
            alert_id=str(payload["alert_id"]),
            reason=None if status == "ok" else "bad_message",
        )
    )


def write(hub: HubTracking, outbox: Outbox) -> int:
    return hub.write(outbox, hub.take_writes()) if hub.has_writes() else 0


def test_a_result_within_the_grace_confirms_from_the_queue(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        hub = tracking(mark_after_s=3600.0)
        published(hub, outbox, 4)
        assert not hub.has_writes()  # PUBACKed, within the grace: nothing to write yet
        sent = events("s", 4)
        answer(hub, sent[0])
        answer(hub, sent[1])
        answer(hub, sent[2], "rejected")
        assert write(hub, outbox) == 2
        assert outbox.awaiting_count() == 0  # never stored as awaiting
        assert [d.reason for d in outbox.dead_letters()] == ["rejected by the hub: bad_message"]
        assert outbox.stats().depth == 1  # the fourth: still a (leased) queue row
        assert hub.awaiting_hub()[0] == 1


def test_past_the_grace_or_at_a_drop_the_event_is_stored_as_awaiting(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        hub = tracking(mark_after_s=0.0)
        ids = published(hub, outbox, 3)
        assert write(hub, outbox) == 0
        assert [a.id for a in outbox.awaiting()] == ids
        answer(hub, events("s", 3)[0])
        assert write(hub, outbox) == 1
        assert [a.id for a in outbox.awaiting()] == ids[1:]

        slow = tracking(mark_after_s=3600.0)
        later = published(slow, outbox, 2)
        slow.mark_all_now()  # the link dropped, or the forwarder stops
        write(slow, outbox)
        assert [a.id for a in outbox.awaiting()] == ids[1:] + later
        assert outbox.stats().depth == 0


def test_a_reopened_outbox_resends_what_was_not_yet_stored(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    with Outbox.open(directory, 10_000_000) as outbox:
        hub = tracking(mark_after_s=3600.0)
        ids = published(hub, outbox, 2)
    # A SIGKILL within the grace: the events are queue rows, handed out again at once.
    with Outbox.open(directory, 10_000_000) as outbox:
        assert [item.id for item in outbox.lease(10)] == ids
        assert outbox.awaiting_count() == 0
