"""The small typed interfaces between the stages: sources → rules → outbox → forwarders.

Each stage is built against these, never against another stage's concrete class, so that
the service (``edge_agent.service``) can wire them and tests can drive one alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_agent.readings import Reading

ReadingSink = Callable[[Sequence[Reading]], Awaitable[None]]
"""Where a source delivers each poll cycle's (or notification batch's) readings. Awaiting it
is the backpressure: a source waits rather than dropping or piling up."""


@dataclass
class ConnectionStats:
    """The counters every source keeps (the same names for every protocol)."""

    connected: bool = False
    connect_attempts: int = 0
    reads: int = 0
    # Failed requests, and poll cycles whose readings were bad because the connection
    # was down (no request could be sent): never 0 while a PLC is unreachable.
    read_errors: int = 0
    requests: int = 0
    overruns: int = 0
    last_latency_s: float = 0.0
    last_good_read_ns: int = 0
    last_error: str | None = None
    # Why the peer refuses us, as a cause name (``client_certificate_untrusted``), while it
    # does; ``None`` when connected or failing for another reason (unreachable, timeout).
    refused: str | None = None
    # When each certificate the connection uses stops being valid (Unix seconds), by
    # which one it is (OPC UA: ``client``, ``server``).
    certificate_not_after: dict[str, float] = field(default_factory=dict)


class Source(Protocol):
    """One connection (a Modbus TCP device, an RTU bus, an OPC UA server) and its sensors.

    Lifecycle: constructed from config (no I/O), then ``run`` until cancelled. ``run``
    connects, retries with backoff and jitter, and never raises for I/O failures: a failed
    read becomes bad readings for the affected sensors. ``read_once`` is for
    ``edge-agent read``: connect, read every sensor once, return.
    """

    name: str
    stats: ConnectionStats

    async def run(self, sink: ReadingSink) -> None: ...

    async def read_once(self) -> list[Reading]: ...

    async def close(self) -> None: ...

    def reload_credentials(self) -> None:
        """Read certificate and key files again (SIGHUP); a source without any does
        nothing."""
        ...


@dataclass(frozen=True)
class OutboxItem:
    """One leased item: ``id`` is the outbox's key, ``payload`` the JSON object stored."""

    id: int
    payload: Mapping[str, Any]
    attempts: int = 0
    body: bytes | None = field(default=None, compare=False, repr=False)
    """``payload`` as the outbox stores it (compact UTF-8 JSON), to be sent as it is; None
    when the outbox did not hand it out (encode ``payload``)."""


@dataclass
class HubConfirmation:
    """What a forwarder that waits for the hub's results (MQTT, ``confirm: hub``) reports
    to health and metrics; the counters count since the forwarder was built."""

    awaiting_hub: int = 0
    """Events the broker acknowledged and the hub has not confirmed yet."""
    awaiting_hub_oldest_age_s: float | None = None
    hub_presence: str = "unknown"
    """``unknown`` (no hub status seen), ``online`` or ``offline``."""
    summary: str | None = None
    """The presence in words for health (``hub offline: holding``); None until the
    forwarder first reported, and health shows neither it nor the oldest age until then."""
    held_for_hub: bool = False
    held_for_order: int = 0
    """Leased events waiting behind an unconfirmed earlier event of their alert."""
    readiness_reasons: list[str] = field(default_factory=list)
    resends: int = 0
    results: int = 0
    results_unknown: int = 0
    rejected_unawaited: int = 0
    """Of ``results_unknown``, the rejections (a hub that answered ``parked`` first, then
    found the event poison; or a second copy's answer): the hub's record holds them."""
    results_invalid: int = 0
    hub_status_invalid: int = 0
    rejected_by_hub: int = 0


@dataclass
class ForwarderStatus:
    """What a forwarder reports to health and metrics. Each forwarder extends it with its
    own counters (``MqttStatus``, ``MaintainXStatus``); the service reads only these."""

    connected: bool = False
    credentials_rejected: bool = False
    sent: int = 0
    failed: int = 0
    dead_lettered: int = 0
    last_delivery_ns: int = 0
    last_error: str | None = None
    holding: str | None = None
    """Why the forwarder holds every item (its destination refuses every request alike: a
    configuration error), or None."""
    hub: HubConfirmation | None = None
    """Set by a forwarder whose items leave the outbox on the hub's result."""


class Forwarder(Protocol):
    """Drains the outbox to one destination. ``run`` leases, sends, acks on confirmed
    delivery, nacks otherwise, until cancelled."""

    # Read-only here: each forwarder keeps its own subclass of the status.
    @property
    def status(self) -> ForwarderStatus: ...

    async def run(self) -> None: ...

    async def close(self) -> None: ...

    def wake(self) -> None:
        """New items are in the outbox: look now rather than at the next idle poll (the
        service calls this after a put, on the event loop)."""
        ...

    def reload_credentials(self) -> None:
        """Read the credentials (keys, passwords, certificate files) again and use them
        (SIGHUP, a reload; on the event loop)."""
        ...

    def stored_bytes(self) -> int:
        """Bytes this forwarder keeps on disk beside the outbox, counted against
        ``storage.max_bytes`` with it (0 when it keeps nothing)."""
        ...
