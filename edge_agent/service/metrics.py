"""Prometheus metrics for one agent, read from the live stages at scrape time.

A custom collector on a per-agent ``CollectorRegistry`` (never the global one: two agents
in one process, as in tests and the demo, must not share counters). The stages keep their
own counters (``ConnectionStats``, ``ForwarderStatus``, the outbox's stats, the rule
engine's states); this module only names them. Counters of sources and forwarders that a
reload replaced continue from the old object's count (``Agent.retired``), and the outbox's
gauges are counted in the store at each scrape (:mod:`edge_agent.outbox.counts`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge_agent.common.time_units import NS_PER_S
from edge_agent.service.alarm_metrics import alarm_metrics
from edge_agent.service.retired_counters import forwarder_counts
from edge_agent.service.work_order_metrics import work_order_metrics

if TYPE_CHECKING:
    from edge_agent.outbox.store import OutboxStats
    from edge_agent.service.pipeline import Agent
    from edge_agent.service.reload import ReloadReport

RULE_STATES = ("NORMAL", "PENDING", "ACTIVE", "CLEARING")


def as_mapping(stats: OutboxStats | None) -> Mapping[str, Any]:
    """The outbox's stats as a mapping (health's JSON, the demo's view); empty without an
    outbox."""
    return {} if stats is None else asdict(stats)


def _number(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return default


class AgentCollector(Collector):
    """Collects every ``edge_agent_*`` metric from one running :class:`Agent`."""

    def __init__(self, agent: Agent, reloads: ReloadReport) -> None:
        self._agent = agent
        self._reloads = reloads

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield from self._sources()
        yield from self._pipeline()
        yield from self._rules()
        yield from self._outbox()
        yield from work_order_metrics(self._agent)
        yield from self._hub()
        yield from self._forwarder()
        yield from self._reload()
        yield from alarm_metrics(self._agent)

    def _sources(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        labels = ["connection"]
        connected = GaugeMetricFamily(
            "edge_agent_source_connected", "1 when the connection is up", labels=labels
        )
        reads = CounterMetricFamily(
            "edge_agent_source_reads", "Poll cycles or notification batches read", labels=labels
        )
        errors = CounterMetricFamily(
            "edge_agent_source_read_errors",
            "Failed requests, and poll cycles with the connection down",
            labels=labels,
        )
        requests = CounterMetricFamily(
            "edge_agent_source_requests", "Protocol requests sent", labels=labels
        )
        overruns = CounterMetricFamily(
            "edge_agent_source_overruns", "Polls that took longer than the interval", labels=labels
        )
        latency = GaugeMetricFamily(
            "edge_agent_source_read_latency_seconds", "Latency of the last read", labels=labels
        )
        last_good = GaugeMetricFamily(
            "edge_agent_source_last_good_read_timestamp_seconds",
            "Unix time of the last good read (0: never)",
            labels=labels,
        )
        refused = GaugeMetricFamily(
            "edge_agent_source_refused",
            "1 while the peer refuses the connection for this cause (the log and /readyz "
            "say what to do)",
            labels=["connection", "cause"],
        )
        expiry = GaugeMetricFamily(
            "edge_agent_certificate_expiry_seconds",
            "Seconds until the certificate stops being valid (negative: expired)",
            labels=["connection", "which"],
        )
        now_s = time.time()
        retired = self._agent.retired
        for name, source in sorted(self._agent.sources.items()):
            stats = source.stats
            connected.add_metric([name], float(stats.connected))
            for which, end_s in sorted(stats.certificate_not_after.items()):
                expiry.add_metric([name, which], end_s - now_s)
            if stats.refused is not None:
                refused.add_metric([name, stats.refused], 1.0)
            reads.add_metric([name], retired.source(name, "reads", stats.reads))
            errors.add_metric([name], retired.source(name, "read_errors", stats.read_errors))
            requests.add_metric([name], retired.source(name, "requests", stats.requests))
            overruns.add_metric([name], retired.source(name, "overruns", stats.overruns))
            latency.add_metric([name], stats.last_latency_s)
            last_good.add_metric([name], stats.last_good_read_ns / NS_PER_S)
        yield from (connected, reads, errors, requests, overruns, latency, last_good, refused)
        yield expiry

    def _pipeline(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counters = self._agent.counters
        readings = CounterMetricFamily(
            "edge_agent_readings", "Readings received by the rules, by quality", labels=["quality"]
        )
        for quality, count in sorted(counters.readings.items()):
            readings.add_metric([quality], count)
        yield readings
        yield CounterMetricFamily(
            "edge_agent_alarm_events", "Alarm events emitted by the rules", counters.alarm_events
        )
        yield CounterMetricFamily(
            "edge_agent_alerts_queued",
            "Alert messages written to the outbox",
            counters.alerts_queued,
        )
        yield CounterMetricFamily(
            "edge_agent_alerts_recovered",
            "Alert messages found in the saved rule state at start-up and queued again",
            counters.alerts_recovered,
        )
        errors = CounterMetricFamily(
            "edge_agent_rule_errors",
            "Rule evaluations or alert renderings that raised, by rule "
            '(rule="" for an engine call that raised outside any one rule)',
            labels=["rule"],
        )
        skewed = CounterMetricFamily(
            "edge_agent_source_time_implausible",
            "Readings whose source timestamp was farther than defaults.source_time_skew from "
            "the agent's clock (used on the agent's time), by sensor",
            labels=["sensor"],
        )
        for sensor, count in sorted(self._agent.source_times.implausible.items()):
            skewed.add_metric([sensor], count)
        yield skewed
        wall_clock = self._agent.wall_clock
        store = self._agent.rule_store
        yield GaugeMetricFamily(
            "edge_agent_rule_state_discarded",
            "1 when the saved rule state could not be used at start and was set aside",
            float(store is not None and store.discarded is not None),
        )
        yield GaugeMetricFamily(
            "edge_agent_clock_implausible",
            "1 while the system clock is before this release or behind the saved rule state",
            float(wall_clock is not None and wall_clock.reason is not None),
        )
        engine = self._agent.engine
        per_rule = engine.faults.errors if engine is not None else {}
        for rule_id, count in sorted(per_rule.items()):
            errors.add_metric([rule_id], count)
        if counters.rule_errors:
            errors.add_metric([""], counters.rule_errors)
        yield errors
        faulted = GaugeMetricFamily(
            "edge_agent_rules_faulted", "Rules marked faulted (until a reload changes them)"
        )
        faulted.add_metric([], len(engine.faults.faulted) if engine is not None else 0)
        yield faulted
        yield GaugeMetricFamily(
            "edge_agent_start_time_seconds",
            "Unix time the agent started",
            self._agent.started_ns / NS_PER_S,
        )

    def _rules(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        state = GaugeMetricFamily(
            "edge_agent_rule_state", "1 for the state each rule is in", labels=["rule", "state"]
        )
        activations = CounterMetricFamily(
            "edge_agent_rule_activations", "Episodes started per rule", labels=["rule"]
        )
        engine = self._agent.engine
        if engine is not None:
            counted = self._agent.counters.activations
            for rule_id, current in sorted(engine.rule_states().items()):
                for name in dict.fromkeys([*RULE_STATES, current]):
                    state.add_metric([rule_id, name], float(name == current))
                activations.add_metric([rule_id], counted.get(rule_id, 0))
        yield state
        yield activations
        engine_counters = CounterMetricFamily(
            "edge_agent_rule_engine",
            "Readings the rules rejected, notifications held, state saves, by counter",
            labels=["counter"],
        )
        if engine is not None:
            for name, count in sorted(engine.counters.items()):
                engine_counters.add_metric([name], count)
        yield engine_counters

    def _outbox(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        # No outbox (not started): every gauge reads 0.
        stats = self._agent.outbox_stats()
        yield GaugeMetricFamily(
            "edge_agent_outbox_depth", "Alerts waiting for delivery", _number(stats and stats.depth)
        )
        yield GaugeMetricFamily(
            "edge_agent_outbox_bytes", "Bytes the outbox holds", _number(stats and stats.bytes)
        )
        yield GaugeMetricFamily(
            "edge_agent_outbox_max_bytes", "The outbox's cap", _number(stats and stats.cap_bytes)
        )
        yield GaugeMetricFamily(
            "edge_agent_outbox_oldest_age_seconds",
            "Age of the oldest undelivered alert (0: empty)",
            _number(stats and stats.oldest_age_s),
        )
        yield GaugeMetricFamily(
            "edge_agent_outbox_leased",
            "Alerts out for delivery now",
            _number(stats and stats.leased),
        )
        yield GaugeMetricFamily(
            "edge_agent_outbox_dead_letters",
            "Alerts that can never be delivered",
            _number(stats and stats.dead),
        )
        yield GaugeMetricFamily(
            "edge_agent_outbox_damaged",
            "Damaged outboxes set aside and awaiting 'edge-agent outbox SITE recover'",
            len(stats.damaged) if stats is not None else 0,
        )
        yield CounterMetricFamily(
            "edge_agent_outbox_replaced",
            "Times a damaged outbox store was set aside and replaced by a fresh one",
            _number(stats and stats.replaced),
        )
        yield CounterMetricFamily(
            "edge_agent_outbox_rows_refused",
            "Outbox rows that could not be decoded and became dead letters",
            _number(stats and stats.quarantined),
        )
        yield CounterMetricFamily(
            "edge_agent_outbox_refused",
            "Alert events the outbox refused (cap reached or disk full), each counted once",
            self._agent.counters.outbox_refused,
        )
        yield CounterMetricFamily(
            "edge_agent_outbox_retries",
            "Attempts to store alerts the outbox had refused before (held alerts retried)",
            self._agent.counters.outbox_retries,
        )
        yield GaugeMetricFamily(
            "edge_agent_outbox_wal_bytes",
            "The outbox's SQLite write-ahead log on disk (counted against the cap)",
            _number(stats and stats.wal_bytes),
        )
        yield GaugeMetricFamily(
            "edge_agent_outbox_refusing",
            "1 while the outbox refuses new events (cap reached or disk full)",
            _number(stats and stats.refusing),
        )
        yield GaugeMetricFamily(
            "edge_agent_alerts_held",
            "Alerts held while the outbox refuses them (cap, disk, errors); polling goes on",
            self._agent.holding_alerts,
        )
        history = self._agent.history
        if history is not None:
            yield CounterMetricFamily(
                "edge_agent_history_rows_written",
                "Readings written to the history file (on change, and once a minute unchanged)",
                history.written,
            )
            yield CounterMetricFamily(
                "edge_agent_history_rows_dropped",
                "Readings the history could not keep (its file failed, or its buffer was full)",
                history.dropped,
            )
            yield GaugeMetricFamily(
                "edge_agent_history_failed",
                "1 while the history file cannot be written (a full disk: the rules go on)",
                float(history.failed is not None),
            )
        yield CounterMetricFamily(
            "edge_agent_alerts_dropped",
            "Alerts dropped because more than storage.max_held_alerts were held (logged)",
            self._agent.hold.dropped,
        )
        yield CounterMetricFamily(
            "edge_agent_outbox_write_errors",
            "Outbox writes that failed for another reason than a full outbox (retried)",
            self._agent.counters.outbox_write_errors,
        )
        yield CounterMetricFamily(
            "edge_agent_alerts_rejected",
            "Alerts too large to ever store (logged)",
            self._agent.counters.alerts_rejected,
        )

    def _hub(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Confirmation by the hub (``forwarding.mqtt.confirm: hub``): kept by the MQTT
        forwarder, which holds in memory the same awaiting items as the outbox on disk."""
        forwarder = self._agent.forwarder
        hub = forwarder.status.hub if forwarder is not None else None
        yield GaugeMetricFamily(
            "edge_agent_outbox_awaiting_hub",
            "Alerts the broker acknowledged and the hub has not confirmed yet",
            _number(hub and hub.awaiting_hub),
        )
        yield GaugeMetricFamily(
            "edge_agent_outbox_awaiting_hub_oldest_age_seconds",
            "Time since the oldest alert awaiting the hub was first sent (0: none)",
            _number(hub and hub.awaiting_hub_oldest_age_s),
        )
        yield GaugeMetricFamily(
            "edge_agent_outbox_held_for_hub",
            "1 while every known hub replica is offline: nothing is sent or resent",
            _number(hub and hub.held_for_hub),
        )
        presence = GaugeMetricFamily(
            "edge_agent_hub_presence",
            "1 for the hub presence the agent sees (unknown: no hub status ever seen)",
            labels=["state"],
        )
        if hub is not None:
            for state in ("unknown", "online", "offline"):
                presence.add_metric([state], float(hub.hub_presence == state))
        yield presence
        results = CounterMetricFamily(
            "edge_agent_hub_results",
            "Messages on the results and hub-status topics, by outcome",
            labels=["outcome"],
        )
        retired = self._agent.retired
        live = forwarder_counts(forwarder.status) if forwarder is not None else {}
        for outcome, key in (
            ("confirmed", "results"),
            ("rejected", "rejected_by_hub"),
            ("unknown_event", "results_unknown"),
            ("invalid", "results_invalid"),
            ("invalid_hub_status", "hub_status_invalid"),
        ):
            if key in live or retired.has_forwarder(key):
                results.add_metric([outcome], retired.forwarder(key, live.get(key)))
        yield results
        yield CounterMetricFamily(
            "edge_agent_hub_rejected_unawaited",
            "Rejections of events no longer awaited (also counted as unknown_event results):"
            " only the hub's record holds them",
            retired.forwarder("rejected_unawaited", live.get("rejected_unawaited")),
        )
        yield CounterMetricFamily(
            "edge_agent_hub_resends",
            "Alerts published again because no hub result came in time",
            retired.forwarder("resends", live.get("resends")),
        )

    def _forwarder(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        forwarder = self._agent.forwarder
        if forwarder is None:
            return
        status = forwarder.status
        yield GaugeMetricFamily(
            "edge_agent_forwarder_connected", "1 when the forwarder can deliver", status.connected
        )
        yield GaugeMetricFamily(
            "edge_agent_forwarder_credentials_rejected",
            "1 when the destination refused our credentials",
            status.credentials_rejected,
        )
        yield GaugeMetricFamily(
            "edge_agent_forwarder_holding",
            "1 while the destination refuses every request alike (a configuration error)",
            status.holding is not None,
        )
        # Counted since the process started, across the forwarders a reload replaced.
        retired = self._agent.retired
        yield CounterMetricFamily(
            "edge_agent_forwarder_sent", "Alerts delivered", retired.forwarder("sent", status.sent)
        )
        yield CounterMetricFamily(
            "edge_agent_forwarder_failed",
            "Delivery attempts that failed",
            retired.forwarder("failed", status.failed),
        )
        yield CounterMetricFamily(
            "edge_agent_forwarder_dead_lettered",
            "Alerts moved to dead letters",
            retired.forwarder("dead_lettered", status.dead_lettered),
        )
        yield GaugeMetricFamily(
            "edge_agent_forwarder_last_delivery_timestamp_seconds",
            "Unix time of the last confirmed delivery (0: never)",
            status.last_delivery_ns / NS_PER_S,
        )

    def _reload(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        report = self._reloads
        reloads = CounterMetricFamily(
            "edge_agent_config_reloads", "Configuration reloads by outcome", labels=["outcome"]
        )
        for outcome, count in sorted(report.outcomes.items()):
            reloads.add_metric([outcome], count)
        yield reloads
        yield GaugeMetricFamily(
            "edge_agent_config_last_reload_success",
            "1 if the last reload was applied (or none happened), 0 if it was rejected",
            float(report.last_outcome != "rejected"),
        )
        yield GaugeMetricFamily(
            "edge_agent_config_errors",
            "Errors in the site file on disk that keep it from being applied",
            len(report.errors) if report.last_outcome == "rejected" else 0,
        )
        yield GaugeMetricFamily(
            "edge_agent_config_fallback",
            "1 while the agent runs its last good configuration because the site file is invalid",
            float(report.fallback is not None),
        )


def build_registry(agent: Agent, reloads: ReloadReport) -> CollectorRegistry:
    """A registry of this agent's metrics only."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent, reloads))
    from edge_agent.service.meters_metrics import MetersCollector

    registry.register(MetersCollector(agent))
    return registry
