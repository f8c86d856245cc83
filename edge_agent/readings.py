"""What every source produces: one ``Reading`` per sensor per sample."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, cast


class Quality(StrEnum):
    """OPC UA's three-way quality, used for Modbus too."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


Value = float | int | bool | str | None

READING_FIELDS: Final = (
    "sensor_id",
    "value",
    "quality",
    "source_time_ns",
    "reason",
    "raw",
    "received_ns",
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample of one sensor.

    ``value`` is ``None`` when the quality is bad and there is no value at all. ``reason``
    says why a reading is not good (``"illegal data address"``, ``"BadSensorFailure"``,
    ``"timeout"``...). ``raw`` holds what came off the wire (registers, or the OPC UA
    status text) so that ``edge-agent read`` can show it to an installer.

    Two times: ``source_time_ns`` is what the source says (OPC UA's SourceTimestamp, the
    wall clock at a Modbus read): reported, never trusted for deadlines. ``received_ns`` is
    the agent's own monotonic clock when the reading reached the rules (see
    :meth:`received`; the running agent's rules loop passes its batch's arrival stamp to
    the engine beside the reading instead of making this copy); the engine runs on it when
    set, else on the source time (a recorded trace, which ``replay`` runs on its own times).
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
        return new_reading(
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


class _ReadingUnderConstruction:
    """``Reading``'s layout without its frozen ``__setattr__``: see :func:`new_reading`."""

    __slots__ = READING_FIELDS

    def __init__(
        self,
        sensor_id: str,
        value: Value,
        quality: Quality,
        source_time_ns: int,
        reason: str | None,
        raw: tuple[int, ...] | str | None,
        received_ns: int | None,
    ) -> None:
        self.sensor_id = sensor_id
        self.value = value
        self.quality = quality
        self.source_time_ns = source_time_ns
        self.reason = reason
        self.raw = raw
        self.received_ns = received_ns


# For a hot loop that builds many readings inline (the Modbus block decoder): an
# ``object.__new__(UnfrozenReading)``, every one of the seven slots stored, then its
# ``__class__`` set to ``Reading`` is exactly what :func:`new_reading` returns, without the
# call (≈ 0.1 µs a reading at 10,000 a second).
UnfrozenReading: Final = _ReadingUnderConstruction

_new_object: Final = object.__new__


def new_reading(
    sensor_id: str,
    value: Value,
    quality: Quality,
    source_time_ns: int,
    reason: str | None = None,
    raw: tuple[int, ...] | str | None = None,
    received_ns: int | None = None,
) -> Reading:
    """``Reading(...)``, built in a fraction of the time: for the poll path's hot loops.

    A frozen dataclass sets each field through ``object.__setattr__`` (≈ 0.9 µs for a
    reading); a poll at 10 ms of 100 sensors builds 10,000 readings a second. This fills a
    plain object with the same slots (``object.__new__`` and plain stores: no ``__init__``
    frame) and then gives it ``Reading``'s class, which CPython allows for identical
    layouts (pinned by a test); the result is an ordinary, frozen ``Reading``.
    """
    built: Any = _new_object(_ReadingUnderConstruction)
    built.sensor_id = sensor_id
    built.value = value
    built.quality = quality
    built.source_time_ns = source_time_ns
    built.reason = reason
    built.raw = raw
    built.received_ns = received_ns
    built.__class__ = Reading
    return cast(Reading, built)


def bad(sensor_id: str, reason: str, time_ns: int, raw: str | None = None) -> Reading:
    """A bad reading: the sensor could not be read, and this says why."""
    return new_reading(sensor_id, None, Quality.BAD, time_ns, reason, raw)
