"""Metrics of the work orders the rules hear about (issue 13, the alarm lifecycle): the
changes handed to the rule engine, the messages refused, and direct mode's status polls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from edge_agent.service.pipeline import Agent


def work_order_metrics(agent: Agent) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """``edge_agent_work_order_*``: what the tracker and the status polls did since start."""
    tracker = agent.work_orders
    yield CounterMetricFamily(
        "edge_agent_work_order_changes",
        "Work order changes (new, status, assignee) handed to the rules",
        0 if tracker is None else tracker.changes,
    )
    yield CounterMetricFamily(
        "edge_agent_work_order_messages_ignored",
        "Work order messages refused (not JSON, another site, an implausible id or status)",
        0 if tracker is None else tracker.ignored,
    )
    yield CounterMetricFamily(
        "edge_agent_work_order_changes_dropped",
        "Work order changes dropped because too many waited for the rules",
        agent.rules.work_order_changes_dropped,
    )
    polls = CounterMetricFamily(
        "edge_agent_work_order_polls",
        "Direct mode: GET /workorders/{id} of the rules' open work orders, by outcome",
        labels=["outcome"],
    )
    forwarder = agent.forwarder
    status = getattr(forwarder.status, "status_polls", None) if forwarder is not None else None
    if status is not None:
        ok = status.polls - status.errors - status.rate_limited - status.gone - status.refused
        for outcome, count in (
            ("ok", ok),
            ("error", status.errors),
            ("rate_limited", status.rate_limited),
            ("gone", status.gone),
            ("refused", status.refused),
        ):
            polls.add_metric([outcome], max(0, count))
    yield polls
