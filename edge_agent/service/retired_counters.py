"""What the sources and forwarders a reload replaced had counted, so counters never go down.

A reload that changes a connection or the forwarding section builds a new source or
forwarder, whose counters start at zero. Prometheus reads a counter that goes down as a
restart of the process, and the rates around a reload would be wrong. The agent keeps
here, for the life of the process, the totals of every stage object it stopped; the
metrics add them to the live object's counts.
"""

from __future__ import annotations

from typing import Any

from edge_agent.interfaces import ConnectionStats, ForwarderStatus


def source_counts(stats: ConnectionStats) -> dict[str, int]:
    """The counters of :class:`ConnectionStats` exported as metrics, by name."""
    return {
        "reads": stats.reads,
        "read_errors": stats.read_errors,
        "requests": stats.requests,
        "overruns": stats.overruns,
    }


def forwarder_counts(status: ForwarderStatus) -> dict[str, int]:
    """The counters of :class:`ForwarderStatus` (and of its ``hub``, when it has one)
    exported as metrics, by name."""
    counts = {"sent": status.sent, "failed": status.failed, "dead_lettered": status.dead_lettered}
    hub = status.hub
    if hub is not None:
        counts.update(
            results=hub.results,
            rejected_by_hub=hub.rejected_by_hub,
            results_unknown=hub.results_unknown,
            rejected_unawaited=hub.rejected_unawaited,
            results_invalid=hub.results_invalid,
            hub_status_invalid=hub.hub_status_invalid,
            resends=hub.resends,
        )
    return counts


def _count(value: Any) -> int:
    """A counter's value; anything else (a bug in a stage) counts nothing."""
    return value if type(value) is int and value > 0 else 0


class RetiredCounters:
    """Per-process totals of the sources (by connection name) and forwarders stopped."""

    def __init__(self) -> None:
        self._sources: dict[str, dict[str, int]] = {}
        self._forwarder: dict[str, int] = {}

    def retire_source(self, connection: str, stats: ConnectionStats) -> None:
        """Keep the counts of a source that is stopped for good."""
        kept = self._sources.setdefault(connection, {})
        for name, count in source_counts(stats).items():
            kept[name] = kept.get(name, 0) + _count(count)

    def retire_forwarder(self, status: ForwarderStatus) -> None:
        """Keep the counts of a forwarder that is stopped for good."""
        for name, count in forwarder_counts(status).items():
            self._forwarder[name] = self._forwarder.get(name, 0) + _count(count)

    def source(self, connection: str, name: str, live: int) -> int:
        """``live`` (the running source's count) plus what earlier sources counted."""
        return self._sources.get(connection, {}).get(name, 0) + _count(live)

    def forwarder(self, name: str, live: Any) -> int:
        """``live`` (the running forwarder's count, None if it has none) plus what earlier
        forwarders counted."""
        return self._forwarder.get(name, 0) + _count(live)

    def has_forwarder(self, name: str) -> bool:
        """Whether a stopped forwarder counted ``name`` (its series must not vanish)."""
        return name in self._forwarder
