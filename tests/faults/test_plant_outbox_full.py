"""The plant-data outbox full (its cap, a full disk): what it refuses is held and put again,
in order, once there is room. Before, it was dropped: a lost OFFLINE left MaintainX showing
the asset running until its next change. Counted at the outbox: nothing lost, nothing twice.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.outbox.errors import OutboxFull
from edge_agent.outbox.integrity import DB_NAME, highest_id
from edge_agent.outbox.store import Outbox
from edge_agent.readings import Quality, Reading
from edge_agent.service.meters_held import trim_held
from edge_agent.service.meters_stage import MetersStage
from tests.meters.test_config_meters import SITE
from tests.meters.test_meters_stage import METERS, T0, load, with_downtime

S = 1_000_000_000
FILLER = {"schema": "filler", "text": "x" * 2000}


def _fill(outbox: Outbox) -> list[int]:
    """Items up to the cap, large then small, till not even a small one fits."""
    ids: list[int] = []
    for filler in (FILLER, {"schema": "filler"}):
        for _ in range(2000):  # bounded: the cap is reached long before
            try:
                ids.append(outbox.put(filler))
            except OutboxFull:
                break
    assert ids
    return ids


def test_status_changes_refused_by_a_full_outbox_are_held_and_queued_in_order(
    tmp_path: Path,
) -> None:
    (tmp_path / "state").mkdir()
    outbox = Outbox.open(tmp_path / "plant-outbox", max_bytes=60_000, lease_s=30.0)
    config = load(tmp_path, with_downtime(SITE) + METERS)
    stage = MetersStage(config, tmp_path / "state", outbox)
    filler = _fill(outbox)
    sent: list[dict[str, object]] = []
    for n in range(6):  # running, stopped, running...: ONLINE, OFFLINE, ONLINE...
        messages = stage.feed([Reading("p101_running", n % 2 == 0, Quality.GOOD, 0)], T0 + n * S)
        sent += messages
        stage.commit(messages)
    statuses = [m["status"] for m in sent if "status" in m]
    assert statuses == ["ONLINE", "OFFLINE", "ONLINE", "OFFLINE", "ONLINE", "OFFLINE"]
    summary = stage.summary()
    assert summary["outbox_held"] == len(sent) and summary["outbox_refused"] == len(sent)
    assert summary["outbox_dropped"] == 0
    # Room again (the filler delivered): the held messages go first, in order, once each.
    outbox.ack(filler)
    stage.commit([])
    queued = [item.payload for item in outbox.lease(1000)]
    assert queued == sent
    assert stage.summary()["outbox_held"] == 0
    stage.commit([])
    assert outbox.lease(1000) == []  # nothing twice
    outbox.close()


def test_a_restart_while_held_queues_them_once(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    outbox = Outbox.open(tmp_path / "plant-outbox", max_bytes=60_000, lease_s=30.0)
    config = load(tmp_path, with_downtime(SITE) + METERS)
    stage = MetersStage(config, tmp_path / "state", outbox)
    filler = _fill(outbox)
    stage.queued_through = filler[-1]  # the stage is the outbox's only writer
    messages = stage.feed([Reading("p101_running", False, Quality.GOOD, 0)], T0)
    stage.commit(messages)
    assert stage.summary()["outbox_held"] == len(messages) > 0
    outbox.ack(filler)
    # A restart: the held messages were saved as pending with the state.
    again = MetersStage(config, tmp_path / "state", outbox)
    assert again.recover(highest_id(tmp_path / "plant-outbox" / DB_NAME)) == len(messages)
    assert [item.payload for item in outbox.lease(1000)] == messages
    outbox.close()


def test_beyond_the_limit_meter_values_are_given_up_first() -> None:
    messages = [
        {"meter": "m", "value": n} if n % 2 else {"status": "OFFLINE", "n": n} for n in range(10)
    ]
    kept, dropped = trim_held(messages, limit=6)
    assert dropped == 4 and len(kept) == 6
    assert [m for m in kept if "status" in m] == [m for m in messages if "status" in m]
    kept, dropped = trim_held([{"status": "ONLINE", "n": n} for n in range(5)], limit=3)
    assert (dropped, [m["n"] for m in kept]) == (2, [2, 3, 4])
