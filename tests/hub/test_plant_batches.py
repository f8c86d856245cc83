"""A site's readings gathered into batches (hub/plant_batches.py): the readings handled
together go in one request; a reading MaintainX refuses fails alone, named or not."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from edge_agent.hub.plant_batches import BatchAbandoned, ReadingBatcher
from edge_agent.maintainx.errors import BadRequest, NotFound, TransientError
from edge_agent.maintainx.meters import ReadingBody


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
    assert outcomes == [None] * 40
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
    assert [type(o).__name__ for o in outcomes] == ["NoneType"] * 5 + [
        "BadRequest" if named else "NotFound"
    ] + ["NoneType"] * 5
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
