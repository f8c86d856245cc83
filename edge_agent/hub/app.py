"""The running hub: MQTT consumer, per-site MaintainX clients, store, webhooks, health.

Lifecycle: ``Hub(config, base_dir)`` does no I/O; ``await hub.start()`` opens the store,
connects (in the background, retrying) and starts the listeners; ``await hub.close()``.

Alerts come from ``$share/<group>/{prefix}/+/alerts`` (QoS 1, MQTT v5 shared subscription:
replicas split the load) with manual acknowledgements: a message is acknowledged only once
:class:`~edge_agent.hub.consumer.AlertConsumer` says its outcome is durable (answered on
``{prefix}/{site}/results``). The replica's session lives only while it is connected (clean
start, session expiry 0 by default): the broker routes the group's alerts to live replicas
only, and what a dead replica held is resent by the agents, which resend every event the hub
has not answered. Site presence comes from the retained ``{prefix}/+/status``.

Hub presence: each replica publishes, retained, ``{prefix}/hub/status/{replica}``
``{"state": "online", ...}`` after every connect and ``offline`` as its last will and on a
clean stop; agents hold their events while every replica they know says ``offline``.

Supervision: the hub's tasks and its store's writer thread are watched. One that ends
unexpectedly makes ``/readyz`` fail and sets :attr:`Hub.failed`: the command then stops the hub
and exits non-zero, for systemd or the container runtime to restart it. On a stop, messages
being handled are finished (bounded by :data:`STOP_GRACE_S`); the rest stay unacknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry

from edge_agent.alerts import format_time_ns
from edge_agent.common.atomic import remove_stale_temporaries
from edge_agent.common.backoff import Backoff
from edge_agent.common.listen import parse_listen
from edge_agent.common.mqtt_link import Message, MqttError, MqttLink, Will, tls_context
from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.secrets import SecretError, resolve
from edge_agent.errors import EdgeAgentError
from edge_agent.hub.asset_kpis import AssetKpiRow, asset_kpis
from edge_agent.hub.commands import CommandResultRecorder
from edge_agent.hub.config import HubConfig
from edge_agent.hub.consumer import AlertConsumer, PublishFailed
from edge_agent.hub.drivers import MISSING_POSTGRES
from edge_agent.hub.health import STORE_PROBE_S, StoreHealth, readiness
from edge_agent.hub.key_check import KeyChecks
from edge_agent.hub.metrics import HubCollector
from edge_agent.hub.plant_consumer import PlantConsumer
from edge_agent.hub.plant_store import PlantStore, open_plant_store
from edge_agent.hub.presence import seen_at, status_state
from edge_agent.hub.prune import prune_loop
from edge_agent.hub.sites import SiteRuntime
from edge_agent.hub.store import HubStore, KpiRow, StoreError
from edge_agent.hub.webhook_secrets import load_webhook_secrets
from edge_agent.hub.webhooks import WebhookHandler, WebhookServer
from edge_agent.redaction import register_secret
from edge_agent.wire import topics

if TYPE_CHECKING:
    from edge_agent.hub.reload import HubReloader

log = logging.getLogger(__name__)

REFRESH_S: Final = 5.0
"""How often the KPIs and parked counts shown in /metrics are re-read from the store."""
STOP_GRACE_S: Final = 5.0
"""On a stop, how long messages being handled may take to finish (SIGTERM → exit ≤ 10 s)."""
WATCH_S: Final = 0.5
"""How often the store's writer is checked."""


def default_replica_id() -> str:
    """``{hostname}-{pid}`` reduced to a replica id (``[a-z0-9][a-z0-9-]{0,62}``)."""
    host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-") or "hub"
    return f"{host[:50]}-{os.getpid()}"[:63].strip("-")


def presence_payload(state: str, group: str, replica: str) -> bytes:
    """The retained JSON on ``{prefix}/hub/status/{replica}``."""
    body = {
        "state": state,
        "group": group,
        "replica": replica,
        "time": format_time_ns(time.time_ns()),
    }
    return json.dumps(body, separators=(",", ":")).encode()


class HubError(EdgeAgentError):
    """The hub cannot start (store unreachable, listener port taken, bad secret)."""


def open_store(config: HubConfig, base_dir: Path) -> HubStore:
    """The configured store (blocking: call in a thread). Raises :class:`StoreError`."""
    if config.dedup.backend == "postgres":
        try:
            from edge_agent.hub.store_postgres import PostgresHubStore
        except ImportError as exc:
            raise StoreError(MISSING_POSTGRES) from exc

        assert config.dedup.dsn is not None
        try:
            dsn = resolve(config.dedup.dsn, base_dir).reveal()
        except SecretError as exc:
            raise StoreError(f"dedup.dsn: {exc}") from exc
        register_secret(dsn)
        return PostgresHubStore(
            dsn, pool_size=config.dedup.pool, table_prefix=config.dedup.table_prefix
        )
    from edge_agent.hub.store_sqlite import SqliteHubStore

    return SqliteHubStore(config.sqlite_path(base_dir))


class Hub:
    """One hub replica (see the module docstring)."""

    def __init__(self, config: HubConfig, base_dir: Path) -> None:
        self.config = config
        self.base_dir = base_dir
        self.state_dir = config.state_path(base_dir)
        self.prefix = config.broker.topic_prefix
        self.replica_id = config.hub.id or default_replica_id()
        # Claims are held in this replica's name: after a crash, the restarted replica takes
        # back its own claims at once instead of waiting for their leases to run out.
        self.owner = self.replica_id
        self.sites = {
            site_id: SiteRuntime(site_id, site, config, base_dir)
            for site_id, site in config.sites.items()
        }
        self.key_checks = KeyChecks()
        self.command_results = CommandResultRecorder(self.state_dir, self.prefix)
        self.reloader: HubReloader | None = None
        """Set by the command that knows the hub file's path (SIGHUP)."""
        self.store: HubStore | None = None
        self.consumer: AlertConsumer | None = None
        self.plant: PlantStore | None = None
        self.plant_consumer: PlantConsumer | None = None
        self.webhook_handler: WebhookHandler | None = None
        self.webhook_server: WebhookServer | None = None
        self.link: MqttLink | None = None
        self.pending_counts: dict[str, int] = {}
        self.kpi_rows: list[KpiRow] = []
        self.asset_kpi_rows: list[AssetKpiRow] = []
        self.store_health = StoreHealth()
        self.refresh_s = REFRESH_S
        self.started_ns = time.time_ns()
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self._health: Any = None
        self._webhook_secret: str | None = None
        self._workers: list[asyncio.Task[Any]] = []
        self._stopping = False
        self.failure: str | None = None
        self.failed = asyncio.Event()
        """Set when a task or the store's writer died: stop and exit non-zero."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(HubCollector(self))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cfg = self.config
        if cfg.webhooks is not None and cfg.webhooks.secret is not None:
            try:
                self._webhook_secret = resolve(cfg.webhooks.secret, self.base_dir).reveal()
            except SecretError as exc:
                raise HubError(f"webhooks.secret: {exc}") from exc
            register_secret(self._webhook_secret)
        remove_stale_temporaries(self.state_dir)
        for secrets in load_webhook_secrets(self.state_dir).values():
            for secret in secrets:
                register_secret(secret)
        try:
            self.store = await asyncio.to_thread(open_store, cfg, self.base_dir)
            self.plant = await asyncio.to_thread(open_plant_store, self.store)
        except StoreError as exc:
            raise HubError(f"cannot open the dedup store: {exc}") from exc
        for site in self.sites.values():
            site.open()
        self.key_checks.check(self.sites.values())
        self.consumer = AlertConsumer(
            prefix=self.prefix,
            sites=self.sites,
            store=self.store,
            publish=self._publish,
            owner=self.owner,
            max_message=cfg.hub.max_message,
            claim_lease_ns=cfg.hub.claim_lease,
            retry_interval_s=cfg.hub.retry_interval / NS_PER_S,
        )
        self.plant_consumer = PlantConsumer(
            prefix=self.prefix,
            sites=self.sites,
            plant=self.plant,
            publish=self._publish,
            max_message=cfg.hub.max_message,
            unknown=self.consumer.unknown,
            claims=self.store,
            owner=self.owner,
            claim_lease_ns=cfg.hub.claim_lease,
        )
        await self._start_listeners()
        self.link = self._make_link()
        await self.link.start()
        for index in range(cfg.hub.concurrency):
            self._workers.append(self._spawn(self._worker(), f"hub-worker-{index}"))
        self._spawn(self.consumer.retry_loop(), "hub-retry")
        self._spawn(self._refresh_loop(), "hub-refresh")
        self._spawn(self._watch_store(), "hub-store-watch")
        self._spawn(prune_loop(self.store, cfg.dedup.retention, self.plant), "hub-prune")
        log.info(
            "Hub started.",
            extra={"hub": self.replica_id, "group": cfg.hub.group, "sites": sorted(self.sites)},
        )

    async def _start_listeners(self) -> None:
        from edge_agent.common.health import HealthError, HealthServer

        cfg = self.config
        assert self.store is not None
        if cfg.webhooks is not None:
            self.webhook_handler = WebhookHandler(
                prefix=self.prefix,
                store=self.store,
                publish=self._publish,
                secrets=self._secrets_for,
                org_sites=self._org_sites(),
                known_sites=frozenset(self.sites),
                site_orgs={k: v.organization_id for k, v in cfg.sites.items()},
                max_body=cfg.webhooks.max_body,
                max_age_s=cfg.webhooks.max_age / NS_PER_S,
            )
            host, port = parse_listen(cfg.webhooks.listen)
            self.webhook_server = WebhookServer(host, port, self.webhook_handler)
            try:
                await self.webhook_server.start()
            except OSError as exc:
                raise HubError(
                    f"cannot listen for webhooks on {cfg.webhooks.listen}: {exc}"
                ) from exc
        self._health = HealthServer(cfg.health.listen, self, self.registry)
        try:
            await self._health.start()
        except HealthError as exc:
            raise HubError(str(exc)) from exc

    def _make_link(self) -> MqttLink:
        broker = self.config.broker
        password: str | None = None
        if broker.password is not None:
            try:
                password = resolve(broker.password, self.base_dir).reveal()
            except SecretError as exc:
                raise HubError(f"broker.password: {exc}") from exc
            register_secret(password)
        context = tls_context(broker.tls, self.base_dir) if broker.tls is not None else None
        group = self.config.hub.group
        presence = topics.hub_status(self.prefix, self.replica_id)
        return MqttLink(
            broker.host,
            broker.effective_port,
            f"edge-agent-hub-{self.replica_id}",
            tls=context,
            client_certificate=None if broker.tls is None else broker.tls.certificate is not None,
            username=broker.username,
            password=password,
            protocol="5",
            keepalive_s=max(1, round(broker.keepalive / NS_PER_S)),
            backoff=Backoff.from_config(broker.backoff),
            # The session, and the replica's place in the shared subscription, end with the
            # connection (see the module docstring); clean start drops one an older hub kept.
            session_expiry_s=round(broker.session_expiry / NS_PER_S),
            clean_start=True,
            will=Will(presence, presence_payload("offline", group, self.replica_id)),
            birth=lambda: Will(presence, presence_payload("online", group, self.replica_id)),
            subscriptions=[
                (topics.shared_alerts_filter(self.prefix, group), 1),
                (topics.site_status_filter(self.prefix), 1),
                (topics.shared_command_results_filter(self.prefix, group), 1),
                *((topic, 1) for topic in topics.shared_plant_filters(self.prefix, group)),
            ],
            on_message=self._on_message,
            max_inflight=100,
            # A message is acknowledged once its outcome is durable, on the connection that
            # delivered it; a hub killed before that gets it again from the broker.
            manual_ack=True,
        )

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_ended)
        self._tasks.append(task)
        return task

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        """Every hub task runs until the hub stops: one that ends before is a failure."""
        if self._stopping or task.cancelled():
            return
        error = task.exception()
        self.fail(
            f"task {task.get_name()} ended: {error!r}" if error else f"task {task.get_name()} ended"
        )

    def fail(self, reason: str) -> None:
        """The hub cannot go on: ``/readyz`` fails and :attr:`failed` is set (once)."""
        if self.failure is None:
            self.failure = reason
            log.critical("Hub failed; stopping for its supervisor.", extra={"reason": reason})
        self.failed.set()

    async def _watch_store(self) -> None:
        while True:
            store = self.store
            failure = store.failure() if store is not None else None
            if failure is not None:
                self.fail(f"dedup store failed: {failure}")
                return
            await asyncio.sleep(WATCH_S)

    async def close(self) -> None:
        """Stop: finish the messages being handled (at most :data:`STOP_GRACE_S`), leave the
        rest unacknowledged for the agents to resend, say ``offline``, disconnect."""
        self._stopping = True
        dropped = self._queue.qsize()
        while not self._queue.empty():
            self._queue.get_nowait()  # left unacknowledged: the agents resend them
        for _ in self._workers:
            self._queue.put_nowait(None)  # one stop mark per worker, after its message
        if self._workers:
            _, late = await asyncio.wait(self._workers, timeout=STOP_GRACE_S)
            if late or dropped:
                log.info(
                    "Hub stopping; unfinished alerts left to the agents' resend.",
                    extra={"queued": dropped, "unfinished": len(late)},
                )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.plant_consumer is not None:
            await self.plant_consumer.close()
        self._workers.clear()
        await self.key_checks.close()
        if self.reloader is not None:
            await self.reloader.close()
        if self.link is not None:
            group = self.config.hub.group
            farewell = Will(
                topics.hub_status(self.prefix, self.replica_id),
                presence_payload("offline", group, self.replica_id),
            )
            await self.link.close(farewell=farewell, timeout_s=1.0)
        if self.webhook_server is not None:
            await self.webhook_server.close()
        if self._health is not None:
            await self._health.close()
        for site in self.sites.values():
            await site.close()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None
        log.info("Hub stopped.", extra={"hub": self.replica_id, **self._totals()})

    def _totals(self) -> dict[str, int]:
        """What this replica did since it started (for the stop line)."""
        counters = [site.counters for site in self.sites.values()]
        return {
            "alerts_received": sum(c.alerts_received for c in counters),
            "work_orders_created": sum(c.work_orders_created for c in counters),
            "parked": sum(c.parked for c in counters),
            "rejected": sum(sum(c.rejected.values()) for c in counters),
        }

    # ------------------------------------------------------------------ messages

    @property
    def mqtt_connected(self) -> bool:
        return self.link is not None and self.link.connected

    def _on_message(self, message: Message) -> None:
        """On the loop, for every message: status now, alerts to the workers."""
        parts = topics.parse_site_topic(self.prefix, message.topic)
        if parts is not None and parts.kind == "status":
            self._presence(parts.site, message.payload, message.retain)
            assert self.link is not None
            self.link.ack_message(message)
            return
        if parts is None and self.command_results.record(message.topic, message.payload):
            assert self.link is not None
            self.link.ack_message(message)  # a site's answer to an alarm command: recorded
            return
        if not self._stopping:  # a stopping replica takes nothing new
            self._queue.put_nowait(message)

    def _presence(self, site_id: str, payload: bytes, retained: bool) -> None:
        site = self.sites.get(site_id)
        if site is None:
            if self.consumer is not None:
                self.consumer.unknown.seen(site_id, "status")
            return
        state, at_ns = status_state(payload)
        if state != site.presence.state:
            site.presence.changes += 1
            log.info("Site presence changed.", extra={"site": site_id, "presence": state})
        site.presence.state = state
        site.presence.seen(seen_at(at_ns, time.time_ns(), retained=retained))

    async def _worker(self) -> None:
        assert self.consumer is not None and self.link is not None
        assert self.plant_consumer is not None
        backoff = Backoff(0.2, 10.0)
        while True:
            message = await self._queue.get()
            if message is None:
                return  # the hub is stopping
            plant = self.plant_consumer.handles(message.topic)
            handle = self.plant_consumer.handle if plant else self.consumer.handle
            try:
                while True:
                    ok = await handle(message.topic, message.payload)
                    if ok:
                        self.link.ack_message(message)
                        backoff.reset()
                        break
                    if self._stopping or not self.link.is_current(message):
                        break  # left unacknowledged: the agent resends it
                    await asyncio.sleep(backoff.next_delay())
            except Exception:
                # The consumer answers every failure itself; this is a bug in it. Acknowledge
                # all the same: an unacknowledged message would hold a slot of the broker's
                # in-flight window for good, and enough of them starve every site.
                self.consumer.stats.poison += 1
                log.exception(
                    "Alert handling raised; acknowledged.", extra={"topic": message.topic}
                )
                self.link.ack_message(message)

    async def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if self.link is None:
            raise PublishFailed("no MQTT link")
        try:
            await self.link.publish(topic, payload, qos, retain)
        except MqttError as exc:
            raise PublishFailed(str(exc)) from exc

    async def _refresh_loop(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.refresh_s)

    async def refresh(self) -> None:
        """Re-read the parked counts and KPIs shown in ``/metrics``; this is also the
        store's probe for ``/readyz`` (bounded by :data:`STORE_PROBE_S`)."""
        if self.store is None:
            return
        try:
            async with asyncio.timeout(STORE_PROBE_S):
                self.pending_counts = await asyncio.to_thread(self.store.pending_counts)
                self.kpi_rows = await asyncio.to_thread(self.store.kpis)
                if self.plant is not None:
                    statuses = await asyncio.to_thread(self.plant.asset_statuses)
                    self.asset_kpi_rows = asset_kpis(statuses, time.time_ns())
        except (StoreError, TimeoutError) as exc:
            error = str(exc) or f"no answer within {STORE_PROBE_S:g} s"
            if self.store_health.error is None:
                log.warning("Dedup store unavailable; not ready.", extra={"error": error})
            self.store_health.failed(error)
            return
        if self.store_health.error is not None:
            log.info("Dedup store available again; ready.")
        self.store_health.ok()

    def sites_changed(self) -> None:
        """A reload added or removed sites in :attr:`sites`: tell who keeps a copy."""
        if self.consumer is not None:
            self.consumer.sites_changed()
        if self.plant_consumer is not None:
            self.plant_consumer.sites_changed()
        if self.webhook_handler is not None:
            self.webhook_handler.sites_changed(
                self._org_sites(),
                frozenset(self.sites),
                {k: v.organization_id for k, v in self.config.sites.items()},
            )

    # ------------------------------------------------------------------ webhooks

    def _secrets_for(self, site: str | None) -> list[str]:
        registered = load_webhook_secrets(self.state_dir)
        secrets = [self._webhook_secret] if self._webhook_secret else []
        if site is None:
            for values in registered.values():
                secrets.extend(values)
        else:
            secrets.extend(registered.get(site, []))
        return secrets

    def _org_sites(self) -> dict[int, str]:
        by_org: dict[int, list[str]] = {}
        for site_id, site in self.config.sites.items():
            if site.organization_id is not None:
                by_org.setdefault(site.organization_id, []).append(site_id)
        return {org: sites[0] for org, sites in by_org.items() if len(sites) == 1}

    # ------------------------------------------------------------------ health

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when the broker is connected and the store reachable; per-site detail."""
        return readiness(self)

    def liveness(self) -> dict[str, Any]:
        return {
            "alive": self.failure is None,
            "hub": self.replica_id,
            "started_ns": self.started_ns,
            "queued": self._queue.qsize(),
        }

    @property
    def health_port(self) -> int:
        return int(self._health.port) if self._health is not None else 0

    @property
    def webhook_port(self) -> int:
        return self.webhook_server.port if self.webhook_server is not None else 0
