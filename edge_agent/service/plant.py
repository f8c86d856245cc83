"""The plant-data path of the agent (issue 14): the meters stage, the plant-data outbox it
fills and the forwarder that drains it, started, reloaded and stopped together.

A second outbox (``state_dir/plant-outbox``, the same package and the same durability as
the alerts' one, capped by ``storage.max_bytes`` on its own) keeps meter readings and
asset status changes apart from alarms: a backlog of readings after an outage never
delays a work order, and each side has its own pace at MaintainX.

Built only for a site file with ``meters:`` or an asset's ``downtime:``; a reload that adds
the first one starts it. Forwarding: ``maintainx`` mode drains it with
:class:`~edge_agent.forwarders.maintainx.plant.PlantForwarder`; ``mqtt`` mode with the
plant-data MQTT sink (:mod:`edge_agent.forwarders.plant_mqtt`: ``{prefix}/{site}/meters``
and ``.../assets``, confirmed by the hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edge_agent.config.models import SiteConfig
from edge_agent.interfaces import Forwarder
from edge_agent.readings import Reading
from edge_agent.service.meters_stage import MetersStage
from edge_agent.service.supervisor import Supervisor
from edge_agent.service.tasks import wait_done

if TYPE_CHECKING:
    from edge_agent.forwarders.workorder_status import WorkOrderTracker
    from edge_agent.outbox.store import Outbox
    from edge_agent.rules import AlarmEvent

log = logging.getLogger(__name__)

OUTBOX_DIR: Final = "plant-outbox"
IN_PROGRESS: Final = "IN_PROGRESS"


def wants_plant_data(config: SiteConfig) -> bool:
    """Whether the site file has meters or asset downtime."""
    return bool(config.meters) or any(a.downtime is not None for a in config.assets.values())


def build_plant_forwarder(
    config: SiteConfig, outbox: Outbox, state_dir: Path, base_dir: Path
) -> Forwarder | None:
    """The forwarder of the plant-data outbox for the site's forwarding mode, or None (the
    data stays queued)."""
    forwarding = config.forwarding
    if forwarding is not None and forwarding.mode == "maintainx" and forwarding.maintainx:
        from edge_agent.forwarders.maintainx.plant import PlantForwarder

        return PlantForwarder(forwarding.maintainx, config, outbox, state_dir, base_dir)
    if forwarding is not None and forwarding.mode == "mqtt" and forwarding.mqtt:
        from edge_agent.forwarders.plant_mqtt import plant_mqtt_forwarder

        return plant_mqtt_forwarder(forwarding.mqtt, config.site.id, outbox, base_dir)
    log.warning(
        "Plant data (meters, downtime) stays in its outbox: no forwarder for this mode yet.",
        extra={"mode": forwarding.mode if forwarding is not None else None},
    )
    return None


def planned_downtime(
    config: Callable[[], SiteConfig], tracker: WorkOrderTracker | None
) -> Callable[[str], bool] | None:
    """Whether a maintenance work order of an asset is in progress, from the hub's answers
    (MQTT mode: a rule of the asset whose work order is ``IN_PROGRESS``). None in direct
    mode: the direct forwarder does not follow work-order statuses yet (TODO issue 14:
    the direct ledger knows the work orders; their status needs a poll or the webhook),
    so downtime is always ``UNPLANNED`` there."""
    if tracker is None:
        return None

    def planned(asset_id: str) -> bool:
        rules = {rule.id for rule in config().rules if rule.asset == asset_id}
        return any(
            rule in rules and entry.status == IN_PROGRESS
            for rule, entry in tracker.snapshot().items()
        )

    return planned


class PlantData:
    """The plant-data path; ``start``, ``offer`` (from the rules loop's sink), ``apply``
    on reload, ``stop``."""

    def __init__(
        self,
        config: SiteConfig,
        state_dir: Path,
        base_dir: Path,
        supervisor: Supervisor,
        work_orders: WorkOrderTracker | None = None,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.base_dir = base_dir
        self.supervisor = supervisor
        self.work_orders = work_orders
        self.outbox: Outbox | None = None
        self.stage: MetersStage | None = None
        self.forwarder: Forwarder | None = None
        self._stage_task: asyncio.Task[None] | None = None
        self._forwarder_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the outbox, restore the meters, start the meters and forwarder tasks."""
        from edge_agent.outbox.store import Outbox

        self.outbox = await asyncio.to_thread(
            Outbox.open_or_replace, self.state_dir / OUTBOX_DIR, self.config.storage.max_bytes
        )
        from edge_agent.outbox.integrity import DB_NAME, highest_id

        planned = planned_downtime(lambda: self.config, self.work_orders)
        self.stage = await asyncio.to_thread(
            MetersStage, self.config, self.state_dir, self.outbox, self._wake, planned
        )
        highest = await asyncio.to_thread(highest_id, self.state_dir / OUTBOX_DIR / DB_NAME)
        await asyncio.to_thread(self.stage.recover, highest)
        self._stage_task = self.supervisor.start(self.stage.run(), "meters")
        self._start_forwarder()
        log.info(
            "Meters started.",
            extra={"meters": len(self.stage.meters), "downtime": len(self.stage.downtime)},
        )

    async def offer(self, readings: Sequence[Reading], wall_ns: int) -> None:
        if self.stage is not None:
            await self.stage.offer(readings, wall_ns)

    async def offer_events(self, events: Sequence[AlarmEvent]) -> None:
        if self.stage is not None:
            await self.stage.offer_events(events)

    async def apply(self, new: SiteConfig) -> list[str]:
        """A reload: meters kept, added and removed; the forwarder rebuilt when the
        forwarding changed. Returns what changed."""
        old, self.config = self.config, new
        changes: list[str] = []
        if self.stage is not None and (
            old.meters != new.meters or old.assets != new.assets or old.sensors != new.sensors
        ):
            self.stage.reconfigure(new)
            changes.append("meters")
        if old.forwarding != new.forwarding:
            await self._stop_forwarder()
            self._start_forwarder()
            changes.append("plant forwarder")
        return changes

    def reload_credentials(self) -> None:
        if self.forwarder is not None:
            self.forwarder.reload_credentials()

    async def stop(self) -> None:
        """Commit what the meters hold, stop the forwarder, close the outbox."""
        task, self._stage_task = self._stage_task, None
        if task is not None and self.stage is not None:
            self.supervisor.expect_end(task)
            with contextlib.suppress(asyncio.QueueFull):
                self.stage.queue.put_nowait(None)
            if not await wait_done(task, 3.0):
                log.warning("Meters did not drain in time; cancelling.")
                await self.supervisor.stop(task, 1.0)
        await self._stop_forwarder()
        if self.outbox is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.outbox.close)

    def health(self) -> dict[str, Any]:
        """The meters' counts and the forwarder's status, for ``/readyz``."""
        found: dict[str, Any] = self.stage.summary() if self.stage is not None else {}
        if self.outbox is not None:
            with contextlib.suppress(Exception):
                stats = self.outbox.stats()
                found["outbox"] = {"depth": stats.depth, "dead": stats.dead, "bytes": stats.bytes}
        if self.forwarder is not None:
            status = self.forwarder.status
            found["forwarder"] = {
                key: value
                for key, value in vars(status).items()
                if isinstance(value, int | str | bool | None)
            }
        return found

    def degraded(self, health: dict[str, Any]) -> list[str]:
        """What an operator should look at while the agent runs on (``/readyz`` under
        ``degraded``): plant data dead-lettered, a plant forwarder that cannot deliver."""
        found: list[str] = []
        dead = health.get("outbox", {}).get("dead")
        if dead:
            found.append(
                f"plant data: {dead} dead letter(s); see 'edge-agent outbox SITE dead --plant'"
            )
        forwarder = health.get("forwarder", {})
        if forwarder.get("credentials_rejected"):
            found.append("plant data: MaintainX credentials rejected; kept until a reload")
        elif forwarder.get("holding"):
            found.append(f"plant data held: {forwarder['holding']}")
        for meter, seconds in (health.get("silent") or {}).items():
            found.append(
                f"meter {meter}: every reading refused for {seconds:g} s "
                "(a stale or bad-quality sensor?); see 'refused' under meters"
            )
        if health.get("outbox_held"):
            found.append(
                f"plant data: {health['outbox_held']} message(s) held, the plant-data outbox "
                "refusing them (full?); put again with the next batch"
            )
        if health.get("outbox_dropped"):
            found.append(
                f"plant data: {health['outbox_dropped']} message(s) given up (not sent): "
                "the plant-data outbox refused them"
            )
        return found

    # ------------------------------------------------------------------ internals

    def _wake(self) -> None:
        # Called from the meters task (the event loop) after a commit.
        if self.forwarder is not None:
            self.forwarder.wake()

    def _start_forwarder(self) -> None:
        if self.outbox is None:
            return
        self.forwarder = build_plant_forwarder(
            self.config, self.outbox, self.state_dir, self.base_dir
        )
        if self.forwarder is not None:
            self._forwarder_task = self.supervisor.start(self.forwarder.run(), "plant-forwarder")

    async def _stop_forwarder(self) -> None:
        task, self._forwarder_task = self._forwarder_task, None
        forwarder, self.forwarder = self.forwarder, None
        if task is not None:
            await self.supervisor.stop(task, 3.0)
        if forwarder is not None:
            try:
                async with asyncio.timeout(3.0):
                    await forwarder.close()
            except Exception as exc:
                log.warning("Plant forwarder did not close cleanly.", extra={"error": repr(exc)})
