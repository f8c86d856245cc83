"""The alarm controls' metrics (see :mod:`edge_agent.service.alarm_controls`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge_agent.service.alarm_controls import OUTCOMES

if TYPE_CHECKING:
    from edge_agent.service.pipeline import Agent


def alarm_metrics(agent: Agent) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    counters = agent.controls.counters
    commands = CounterMetricFamily(
        "edge_agent_alarm_commands",
        "Alarm commands (shelve, oos, ack...) by door (socket, mqtt) and outcome (applied, "
        "refused by the engine, rejected as malformed, repeated id, unanswered, stale: too "
        "old or dated ahead)",
        labels=["via", "outcome"],
    )
    # Lines the socket refused before they were read whole (too long) are rejections too.
    unread = {("socket", "rejected"): agent.control_socket.bad_lines}
    for via in ("socket", "mqtt"):
        for outcome in OUTCOMES:
            count = counters.counts.get((via, outcome), 0) + unread.get((via, outcome), 0)
            commands.add_metric([via, outcome], count)
    yield commands
    yield CounterMetricFamily(
        "edge_agent_alarm_command_write_errors",
        "Alarm command ledger or audit log writes that failed",
        counters.audit_errors + counters.ledger_errors,
    )
    rows = agent.controls.alarms_rows()
    yield GaugeMetricFamily(
        "edge_agent_rules_out_of_service",
        "Rules out of service (evaluated, never notifying)",
        sum(1 for row in rows if row.get("out_of_service")),
    )
    yield GaugeMetricFamily(
        "edge_agent_rules_shelved",
        "Rules shelved (activations travel with notify: false)",
        sum(1 for row in rows if row.get("shelved")),
    )
    yield GaugeMetricFamily(
        "edge_agent_control_socket_up",
        "1 while the control socket (edge-agent alarms) can be reached",
        float(agent.control_socket.error is None and agent.control_socket.listening),
    )
