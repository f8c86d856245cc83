"""What every source produces: one ``Reading`` per sensor per sample."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Quality(StrEnum):
    """OPC UA's three-way quality, used for Modbus too."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


Value = float | int | bool | str | None


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample of one sensor.

    ``value`` is ``None`` when the quality is bad and there is no value at all. ``reason``
    says why a reading is not good (``"illegal data address"``, ``"BadSensorFailure"``,
    ``"timeout"``...). ``raw`` holds what came off the wire (registers, or the OPC UA
    status text) so that ``edge-agent read`` can show it to an installer.

    Two times: ``source_time_ns`` is what the source says (OPC UA's SourceTimestamp, the
    wall clock at a Modbus read): reported, never trusted for deadlines. ``received_ns`` is
    the agent's own monotonic clock when the reading reached the rules (set by the running
    agent, see :meth:`received`); the engine runs on it when set, else on the source time
    (a recorded trace, which ``replay`` runs on its own times).
    """

    sensor_id: str
    value: Value
    quality: Quality
    source_time_ns: int
    reason: str | None = None
    raw: tuple[int, ...] | str | None = None
    received_ns: int | None = None

    @property
    def time_ns(self) -> int:
        """The time the rules use: when the agent received it, else the source's time."""
        received = self.received_ns
        return self.source_time_ns if received is None else received

    def received(self, at_ns: int) -> Reading:
        """This reading as received by the agent at ``at_ns`` (its monotonic clock)."""
        return Reading(
            self.sensor_id,
            self.value,
            self.quality,
            self.source_time_ns,
            self.reason,
            self.raw,
            at_ns,
        )

    @property
    def is_good(self) -> bool:
        return self.quality is Quality.GOOD


def bad(sensor_id: str, reason: str, time_ns: int, raw: str | None = None) -> Reading:
    """A bad reading: the sensor could not be read, and this says why."""
    return Reading(sensor_id, None, Quality.BAD, time_ns, reason, raw)
