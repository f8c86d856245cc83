"""One site's meter readings gathered into ``POST /meterreadings`` batches.

The hub's workers handle one message each; a reading's worker hands it to its site's
:class:`ReadingBatcher` and waits. The batcher waits :data:`GATHER_S` for the readings that
arrive together (every worker busy with one), posts them in one request (at most
``max_batch``), and tells each worker how its reading fared. The site's MaintainX client paces
``/meterreadings`` to its own bucket (100 / 60 s per key): a batch, however large, is one
request of it. A batch MaintainX refuses because of one reading (400 naming ``[i]``) fails
that reading only; the others go again in the next request. A batch refused without naming
one (a 404: an unknown meter) is sent again reading by reading. Before a batch leaves,
MaintainX's 3-day rule is applied as the direct forwarder does (``maintainx/backdate.py``):
after an outage, a cumulative meter's old values are reduced to its latest, re-dated inside
the window; a gauge's older values are not sent (each reading is told which).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from edge_agent.errors import EdgeAgentError
from edge_agent.maintainx.backdate import reduce_stale
from edge_agent.maintainx.errors import BadRequest
from edge_agent.maintainx.meters import MAX_BATCH, ReadingBody, refused_index
from edge_agent.wire.plant import MeterReadingMessage

log = logging.getLogger(__name__)

GATHER_S: Final = 0.05
"""How long the first reading of a batch waits for others (the workers' messages in flight)."""

Post = Callable[[Sequence[ReadingBody]], Awaitable[int]]
Entry = tuple[ReadingBody, MeterReadingMessage | None, "asyncio.Future[str]"]
POSTED: Final = "posted"
SUPERSEDED: Final = "superseded"
"""An old value of a cumulative meter that a later one in its batch replaces (3-day rule)."""
STALE_GAUGE: Final = "stale_gauge"
"""A gauge's value older than MaintainX's 3-day window: not sent."""


class BatchAbandoned(EdgeAgentError):
    """The hub stopped before the reading's batch was posted (it was not: the agent resends)."""


class ReadingBatcher:
    """The batches of one site (use on the event loop)."""

    def __init__(
        self,
        post: Post,
        *,
        gather_s: float = GATHER_S,
        max_batch: int = MAX_BATCH,
        now_ns: Callable[[], int] = time.time_ns,
    ):
        self._post = post
        self._gather_s = gather_s
        self._max_batch = max(1, min(max_batch, MAX_BATCH))
        self._now_ns = now_ns
        self._waiting: list[Entry] = []
        self._task: asyncio.Task[None] | None = None
        self.requests = 0
        """Batches posted (accepted or not)."""
        self.largest = 0

    async def post(self, reading: ReadingBody, message: MeterReadingMessage | None = None) -> str:
        """Post ``reading`` in the next batch; returns :data:`POSTED` once MaintainX accepted
        it (with ``message``, MaintainX's 3-day rule applies first: :data:`SUPERSEDED` or
        :data:`STALE_GAUGE` when it is not to be sent), or raises what MaintainX answered
        (:class:`BadRequest` for this reading alone)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.append((reading, message, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="hub-reading-batches")
        # Shielded: a worker stopped meanwhile must not cancel its neighbours' batch.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        await asyncio.sleep(self._gather_s)
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: len(batch)]
            batch = self._within_three_days(batch)
            if batch:
                await self._send(batch)

    def _within_three_days(self, batch: list[Entry]) -> list[Entry]:
        """MaintainX's 3-day rule (``maintainx/backdate.py``, as the direct forwarder): what
        is older is reduced to what still matters; the rest is settled unsent."""
        checked = [(entry, entry[1]) for entry in batch if entry[1] is not None]
        if not checked:
            return batch
        reduction = reduce_stale(checked, self._now_ns())
        for entry in reduction.superseded:
            _settle([entry], None, SUPERSEDED)
        for entry in reduction.gauges_dropped:
            _settle([entry], None, STALE_GAUGE)
        kept = [entry for entry in batch if entry[1] is None]
        for (reading, message, future), at in reduction.send:
            kept.append((dataclasses.replace(reading, time_ns=at), message, future))
        return kept

    async def _send(self, batch: list[Entry]) -> None:
        self.requests += 1
        self.largest = max(self.largest, len(batch))
        try:
            await self._post([reading for reading, _, _ in batch])
        except BadRequest as exc:
            if len(batch) == 1:
                _settle(batch, exc)
                return
            index = refused_index(exc.body)
            if index is None or not 0 <= index < len(batch):
                # Refused without saying which (a 404 for an unknown meter): each alone, so
                # that one bad reading does not take its batch-mates with it.
                for one in batch:
                    await self._send([one])
                return
            # One reading refused the whole batch: it alone fails, the rest go again.
            _settle([batch[index]], exc)
            self._waiting[:0] = batch[:index] + batch[index + 1 :]
            return
        except asyncio.CancelledError:
            _settle(batch, BatchAbandoned("the hub stopped during the request"))
            raise
        except Exception as exc:  # MaintainXError and surprises alike reach each worker
            _settle(batch, exc)
            return
        _settle(batch, None)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        _settle(self._waiting, BatchAbandoned("the hub stopped"))
        self._waiting.clear()


def _settle(batch: Sequence[Entry], error: BaseException | None, outcome: str = POSTED) -> None:
    for _, _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(outcome)
        else:
            future.set_exception(error)
