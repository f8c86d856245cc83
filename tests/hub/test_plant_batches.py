"""A site's readings gathered into batches (hub/plant_batches.py): the readings handled
together go in one request; a reading MaintainX refuses fails alone, named or not."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from edge_agent.hub.plant_batches import (
    POSTED,
    STALE_GAUGE,
    SUPERSEDED,
    BatchAbandoned,
    ReadingBatcher,
)
from edge_agent.maintainx.backdate import window_start_ns
from edge_agent.maintainx.errors import BadRequest, NotFound, TransientError
from edge_agent.maintainx.meters import ReadingBody
from edge_agent.wire.plant import MeterSpec, check_meter_reading
from tests.hub.plant_messages import reading as reading_message


class FakeMaintainX:
    """Records each batch; refuses what a test says."""

    def __init__(self, bad_meter: int | None = None, named: bool = True) -> None:
        self.batches: list[list[ReadingBody]] = []
        self.bad_meter = bad_meter
        self.named = named
        self.down = False

    async def post(self, batch: Sequence[ReadingBody]) -> int:
        self.batches.append(list(batch))
        if self.down:
            raise TransientError("503")
        for index, reading in enumerate(batch):
            if reading.meter_id == self.bad_meter:
                if self.named:
                    body = {"errors": [{"error": "no", "fieldPath": f"[{index}].readingDate"}]}
                    raise BadRequest("400", status=400, body=body)
                raise NotFound("404", status=404, body={"error": "meter"})
        return len(batch)


async def _post_all(batcher: ReadingBatcher, readings: list[ReadingBody]) -> list[object]:
    return await asyncio.gather(*(batcher.post(r) for r in readings), return_exceptions=True)


def readings(n: int, meter: int = 1) -> list[ReadingBody]:
    return [ReadingBody(meter, float(i), 1_780_000_000_000_000_000 + i) for i in range(n)]


async def test_readings_handled_together_go_in_one_request() -> None:
    mx = FakeMaintainX()
    batcher = ReadingBatcher(mx.post, gather_s=0.01, max_batch=500)
    outcomes = await _post_all(batcher, readings(40))
    assert outcomes == [POSTED] * 40
    assert [len(b) for b in mx.batches] == [40]
    # At most max_batch per request.
    small = ReadingBatcher(mx.post, gather_s=0.01, max_batch=15)
    await _post_all(small, readings(40))
    assert [len(b) for b in mx.batches[1:]] == [15, 15, 10]


@pytest.mark.parametrize("named", [True, False])
async def test_a_refused_reading_fails_alone(named: bool) -> None:
    mx = FakeMaintainX(bad_meter=9, named=named)
    batcher = ReadingBatcher(mx.post, gather_s=0.01)
    mixed = readings(5) + [ReadingBody(9, 1.0, 1)] + readings(5, meter=2)
    outcomes = await _post_all(batcher, mixed)
    assert [type(o).__name__ for o in outcomes] == ["str"] * 5 + [
        "BadRequest" if named else "NotFound"
    ] + ["str"] * 5
    # Each good reading was accepted in exactly one request that MaintainX took.
    taken = [r for b in mx.batches if all(r.meter_id != 9 for r in b) for r in b]
    assert len(taken) == 10 and set(taken) == set(readings(5) + readings(5, meter=2))


async def test_an_unavailable_maintainx_fails_the_batch_and_a_stop_abandons_it() -> None:
    mx = FakeMaintainX()
    mx.down = True
    batcher = ReadingBatcher(mx.post, gather_s=0.01)
    outcomes = await _post_all(batcher, readings(3))
    assert all(isinstance(o, TransientError) for o in outcomes)
    slow = ReadingBatcher(mx.post, gather_s=5.0)
    waiting = asyncio.ensure_future(slow.post(readings(1)[0]))
    await asyncio.sleep(0.05)
    await slow.close()
    with pytest.raises(BatchAbandoned):
        await waiting


async def test_the_three_day_rule_before_a_batch_leaves() -> None:
    """After a 4-day outage: a cumulative meter's old values are reduced to its latest,
    re-dated inside the window; one with a fresh value too only sends what is fresh; a
    gauge's old values are not sent. Each reading is told which."""
    mx = FakeMaintainX()
    now = 1_790_000_000 * 1_000_000_000
    day = 86_400 * 1_000_000_000
    old = now - 4 * day

    def message(meter: str, n: int, at: int, kind: str = "run_hours") -> object:
        spec = MeterSpec(meter, "Hours", kind)  # type: ignore[arg-type]
        data = reading_message("site-a", meter, n, time_ns=at, asset_mx=1, spec=spec)
        data["kind"] = kind
        return check_meter_reading(data)

    entries = [
        (ReadingBody(1, 1.0, old), message("rh", 0, old)),
        (ReadingBody(1, 2.0, old + 1), message("rh", 1, old)),  # rh: only old values
        (ReadingBody(2, 5.0, old), message("starts", 0, old, "starts")),
        (ReadingBody(2, 6.0, now - day), message("starts", 1, now - day, "starts")),
        (ReadingBody(3, 70.0, old), message("temp", 0, old, "gauge")),
    ]
    batcher = ReadingBatcher(mx.post, gather_s=0.01, now_ns=lambda: now)
    outcomes = await asyncio.gather(*(batcher.post(b, m) for b, m in entries))  # type: ignore[arg-type]
    assert outcomes == [SUPERSEDED, POSTED, SUPERSEDED, POSTED, STALE_GAUGE]
    [sent] = mx.batches
    assert [(r.meter_id, r.value) for r in sent] == [(1, 2.0), (2, 6.0)]
    assert sent[0].time_ns == window_start_ns(now)  # re-dated inside the window
    assert sent[1].time_ns == now - day + 1_000_000_000  # the message's own time
