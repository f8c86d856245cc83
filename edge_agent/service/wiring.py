"""Building the agent's stages from a site file: the state on disk (outbox, rule state, rule
engine), the forwarder, and what tells whether a running source can be kept on reload.

Each stage module is imported where it is built, not at module level: each pulls in its
stage's libraries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edge_agent.common.atomic import remove_stale_temporaries
from edge_agent.config.models import SiteConfig
from edge_agent.errors import EdgeAgentError
from edge_agent.interfaces import Forwarder
from edge_agent.service import agent_clock
from edge_agent.sources import numeric_sensors_of

if TYPE_CHECKING:
    from edge_agent.forwarders.workorder_status import WorkOrderTracker
    from edge_agent.outbox.store import Outbox
    from edge_agent.rules import RuleEngine, RuleStateStore
    from edge_agent.service.rules_loop import RulesLoop

# The agent's logger name from before this module was split out of the pipeline: operators
# and their log filters know it.
log = logging.getLogger("edge_agent.service.pipeline")

LEDGER_SHARE_OF_CAP: Final = 4
"""The work-order ledger counts against ``storage.max_bytes`` up to 1/4 of it."""


class AgentError(EdgeAgentError):
    """The agent could not start (state directory, outbox, health port)."""


@dataclass
class OpenState:
    """What the agent keeps on disk, opened: the outbox, the rule state and the engine."""

    outbox: Outbox
    rule_store: RuleStateStore
    engine: RuleEngine


def _prepare_state_dir(state_dir: Path) -> None:
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise AgentError(f"cannot create state directory {state_dir}: {exc}") from exc
    # A crash in the middle of an atomic write leaves its temporary file: not ours to keep.
    remove_stale_temporaries(state_dir)


async def open_state(config: SiteConfig, state_dir: Path) -> OpenState:
    """Create the state directory if needed and open the outbox, the rule state and the
    rule engine on it (no network I/O). Raises :class:`AgentError`."""
    _prepare_state_dir(state_dir)
    from edge_agent.outbox.store import Outbox, OutboxError
    from edge_agent.rules import RuleEngine, RuleStateStore
    from edge_agent.service.state_formats import check_state_folder

    # A later release's files (a rollback) stop the start before any is opened.
    await asyncio.to_thread(check_state_folder, state_dir)
    try:
        # A damaged outbox is set aside, not fatal (docs/outbox.md, "A damaged outbox").
        outbox = await asyncio.to_thread(
            Outbox.open_or_replace, state_dir / "outbox", config.storage.max_bytes
        )
        rule_store = RuleStateStore.in_directory(state_dir, agent_clock.now_ns)
        # Not durable on its own: the handover saves the state together with the alert
        # messages it produced, then puts them in the outbox.
        # The saved state continues on this run's monotonic clock (see RuleEngine); the
        # alarm lifecycle's expiries count the time the agent was down (wall clock).
        engine = RuleEngine(
            config,
            rule_store,
            durable=False,
            resume_at=agent_clock.now_ns(),
            wall_now_ns=time.time_ns(),
        )
    except (OSError, OutboxError) as exc:
        raise AgentError(f"cannot open the state in {state_dir}: {exc}") from exc
    return OpenState(outbox, rule_store, engine)


@dataclass
class Delivery:
    """The forwarder for the site's ``forwarding`` section (None: alerts stay in the
    outbox), and the work-order tracker it feeds (MQTT mode only)."""

    forwarder: Forwarder | None
    work_orders: WorkOrderTracker | None


def build_delivery(config: SiteConfig, outbox: Outbox, state_dir: Path, base_dir: Path) -> Delivery:
    """The forwarder and what it feeds (construction does no I/O). The work-order ledger
    shares ``storage.max_bytes`` with the outbox, up to a quarter of it."""
    if config.forwarding is None:
        log.warning("No forwarding configured: alerts stay in the outbox.")
        return Delivery(None, None)
    from edge_agent.forwarders import build_forwarder, work_order_tracker

    tracker = work_order_tracker(config, state_dir)
    forwarder = build_forwarder(config, outbox, state_dir, base_dir, work_orders=tracker)
    # A week of ledger rows under a small cap must never leave the outbox no room (every
    # alert held with the destination healthy).
    shared = forwarder.stored_bytes
    share = config.storage.max_bytes // LEDGER_SHARE_OF_CAP
    outbox.shared_bytes = lambda: min(shared(), share)
    return Delivery(forwarder, tracker)


def hand_work_orders_to_rules(tracker: WorkOrderTracker, rules: RulesLoop) -> None:
    """Every change of a rule's work order (the hub's messages in MQTT mode, the status
    poller in direct mode) reaches the rule engine on the event loop: the tracker tells from
    paho's thread, the rules task applies it between batches (the alarm lifecycle)."""
    loop = asyncio.get_running_loop()

    def listener(change: StatusChange) -> None:
        try:
            loop.call_soon_threadsafe(rules.offer_work_order_status, change)
        except RuntimeError:  # the loop is closed: the agent is stopping
            log.debug("Work order change after the agent stopped; dropped.")

    tracker.listener = listener
    # What the map knows open is told once more at start: a change saved in the map just
    # before a crash may not have reached the saved rule state (the engine ignores a status
    # it already has). Closed ones are not: an old DONE must not start a verification.
    from edge_agent.forwarders.workorder_status import CLOSED, StatusChange

    for rule, entry in sorted(tracker.snapshot().items()):
        if entry.status not in CLOSED:
            change = StatusChange(rule, entry.work_order_id, entry.status, entry.assigned)
            rules.offer_work_order_status(change)


def source_signature(config: SiteConfig, connection: str) -> Any:
    """Everything that defines one source: its connection, its sensors and (OPC UA) which
    of them a rule compares as numbers. Two configs
    with the same signature for a connection can keep the running source. The sensors
    compare as models (frozen, equal when every option is): a dump of each, twice a reload,
    was ≈ 10 MiB of temporaries at 10,000 sensors that the process kept resident."""
    sensors = {
        sensor_id: sensor
        for sensor_id, sensor in config.sensors.items()
        if sensor.connection == connection
    }
    return (
        config.connections[connection].model_dump(mode="json", by_alias=True),
        config.defaults.poll,
        sensors,
        numeric_sensors_of(config, connection),
    )
