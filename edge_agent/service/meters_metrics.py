"""Prometheus metrics of the meters and the plant-data path (issue 14), read from the live
stage at scrape time (as :mod:`edge_agent.service.metrics`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from edge_agent.service.pipeline import Agent

_FORWARDER_COUNTERS = (
    ("readings_sent", "edge_agent_plant_readings_sent", "Meter readings MaintainX accepted"),
    ("batches", "edge_agent_plant_batches", "POST /meterreadings batches accepted"),
    ("statuses_sent", "edge_agent_plant_statuses_sent", "Asset status changes posted"),
    (
        "statuses_found",
        "edge_agent_plant_statuses_found",
        "Asset status changes MaintainX already had (not posted twice)",
    ),
    (
        "stale_gauges_dropped",
        "edge_agent_plant_stale_gauges_dropped",
        "Gauge readings older than MaintainX's 3-day window, not sent",
    ),
    (
        "stale_superseded",
        "edge_agent_plant_stale_superseded",
        "Cumulative readings beyond the 3-day window replaced by a later one",
    ),
    ("redated", "edge_agent_plant_redated", "Cumulative readings re-dated inside the 3-day window"),
    (
        "dead_lettered",
        "edge_agent_plant_dead_lettered",
        "Plant data items moved to the dead letters",
    ),
)


class MetersCollector(Collector):
    """``edge_agent_meter_*`` and ``edge_agent_plant_*`` from one agent's plant-data path."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        plant = self._agent.plant
        stage = plant.stage if plant is not None else None
        refused = CounterMetricFamily(
            "edge_agent_meter_refused",
            "Readings a meter (or downtime:ASSET) refused, by reason",
            labels=["meter", "reason"],
        )
        queued = CounterMetricFamily(
            "edge_agent_meter_values_queued", "Meter values put in the plant-data outbox"
        )
        statuses = CounterMetricFamily(
            "edge_agent_asset_statuses_queued", "Asset status changes put in the plant-data outbox"
        )
        lost = CounterMetricFamily(
            "edge_agent_meter_outbox_refused",
            "Plant data the plant-data outbox refused (full: held and put again), each once",
        )
        dropped = CounterMetricFamily(
            "edge_agent_meter_outbox_dropped",
            "Plant data given up: held beyond the limit, or never storable (not sent)",
        )
        held = GaugeMetricFamily(
            "edge_agent_meter_outbox_held", "Plant data refused by the outbox, held for the next"
        )
        state_errors = CounterMetricFamily(
            "edge_agent_meter_state_errors", "Meter states not restored or not written"
        )
        errors = CounterMetricFamily(
            "edge_agent_meter_errors", "Readings a meter failed on (a bug; the others go on)"
        )
        silent = GaugeMetricFamily(
            "edge_agent_meter_silent",
            "1 while a meter (or downtime:ASSET) has refused every reading past its max_gap "
            "(else 5 minutes): a stale or bad-quality sensor",
            labels=["meter"],
        )
        if stage is not None:
            now_silent = stage.summary()["silent"]
            keys = [*stage.meters, *(f"downtime:{asset}" for asset in stage.downtime)]
            for key in sorted(keys):
                silent.add_metric([key], 1.0 if key in now_silent else 0.0)
            for meter, reasons in sorted(stage.refusals().items()):
                for reason, count in sorted(reasons.items()):
                    refused.add_metric([meter, reason], count)
            counters = stage.counters
            queued.add_metric([], counters.values_queued)
            statuses.add_metric([], counters.statuses_queued)
            lost.add_metric([], counters.outbox_refused)
            dropped.add_metric([], counters.outbox_dropped)
            held.add_metric([], stage.summary()["outbox_held"])
            state_errors.add_metric([], counters.state_errors)
            errors.add_metric([], counters.meter_errors)
        yield from (refused, queued, statuses, lost, dropped, held, state_errors, errors, silent)
        status = plant.forwarder.status if plant is not None and plant.forwarder else None
        for name, metric, text in _FORWARDER_COUNTERS:
            family = CounterMetricFamily(metric, text)
            if status is not None:
                family.add_metric([], float(getattr(status, name, 0)))
            yield family
        depth = GaugeMetricFamily("edge_agent_plant_outbox_depth", "Plant data items queued")
        if plant is not None and plant.outbox is not None:
            # A scrape never fails for one family.
            with contextlib.suppress(Exception):
                depth.add_metric([], plant.outbox.stats().depth)
        yield depth
