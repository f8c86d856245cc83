"""A DataValue as a ``Reading``: status → quality, the SourceTimestamp kept, the sensor's
scale applied, and text or non-finite numbers where a rule needs a number made bad.

Called once per value on both read paths (a poll's Read response, a subscription's data
change), so it stays one method with no per-call lookups beyond the sensor's scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from asyncua import ua

from edge_agent.config.models import Sensor
from edge_agent.interfaces import ConnectionStats
from edge_agent.readings import Quality, Reading, Value, bad, new_reading
from edge_agent.sources.opcua.lean_decode import LeanItem
from edge_agent.sources.opcua.logger import log
from edge_agent.sources.opcua.status import pick_time_ns, quality_of, ticks_to_ns

#: A Good status code's name (``StatusCode.name`` looks it up each time).
GOOD_NAME: Final = "Good"

#: ``DataValues.reading_from``: a sensor's DataValue (or none) at a time as a reading.
ReadingFrom = Callable[[str, ua.DataValue | None, int], Reading]
#: ``DataValues.reading_from_lean``: the same for a lean decoder's item.
ReadingFromLean = Callable[[str, LeanItem, int], Reading]


class DataValues:
    """Converts one connection's DataValues to readings and counts the text it refuses."""

    def __init__(
        self,
        name: str,
        sensors: Mapping[str, Sensor],
        node_strings: Mapping[str, str],
        numeric_sensors: frozenset[str],
        stats: ConnectionStats,
    ) -> None:
        self._name = name
        self._sensors = sensors
        self._node_strings = node_strings
        #: Sensors a rule compares as numbers (high, low, rate, flatline).
        self._numeric_sensors = numeric_sensors
        self._stats = stats
        #: Readings refused because a node held text where a rule needs a number.
        self.text_where_number = 0
        self._text_reported: set[str] = set()
        #: (factor, offset) of the sensors with a scale, for the inline path.
        self._scales = {
            sensor_id: (sensor.scale.factor, sensor.scale.offset)
            for sensor_id, sensor in sensors.items()
            if sensor.scale is not None
        }

    def reading_from(self, sensor_id: str, dv: ua.DataValue | None, now_ns: int) -> Reading:
        """A DataValue as a ``Reading``: status → quality, SourceTimestamp kept."""
        if dv is None:
            return bad(sensor_id, "no value", now_ns)
        # The common case inline (a subscription's ≈ 10,000 a second): Good and a float.
        # The same reading as the general path (a property test holds them together);
        # anything else takes it.
        status, variant = dv.StatusCode, dv.Value
        if (
            (status is None or status.value == 0)
            and variant is not None
            and type(variant.Value) is float
        ):
            value = variant.Value
            scale = self._scales.get(sensor_id)
            if scale is not None:
                value = value * scale[0] + scale[1]
            if value - value == 0.0:  # finite (NaN and ±inf give NaN)
                time_ns = pick_time_ns(dv.SourceTimestamp, dv.ServerTimestamp, now_ns)
                return new_reading(sensor_id, value, Quality.GOOD, time_ns, None, GOOD_NAME)
        return self.reading_from_any(sensor_id, dv, now_ns)

    def reading_from_lean(self, sensor_id: str, item: LeanItem, now_ns: int) -> Reading:
        """:meth:`reading_from` of the DataValue asyncua would have made of a lean item
        (``lean_decode.as_data_value``; a property test holds them together): a Good
        boolean or number, its timestamps as DateTime ticks."""
        _, value, source, server, _ = item
        picked = ticks_to_ns(source)  # the source time, else the server's, else ours
        if picked is None:
            picked = ticks_to_ns(server)
        time_ns = now_ns if picked is None else picked
        if type(value) is bool:
            return new_reading(sensor_id, value, Quality.GOOD, time_ns, None, GOOD_NAME)
        scale = self._scales.get(sensor_id)
        if scale is not None:
            value = value * scale[0] + scale[1]
        elif type(value) is int:
            return new_reading(sensor_id, value, Quality.GOOD, time_ns, None, GOOD_NAME)
        if value - value == 0.0:  # finite (NaN and ±inf give NaN)
            return new_reading(sensor_id, value, Quality.GOOD, time_ns, None, GOOD_NAME)
        why = f"not a finite number ({value})"
        return Reading(sensor_id, None, Quality.BAD, time_ns, why, GOOD_NAME)

    def reading_from_any(self, sensor_id: str, dv: ua.DataValue, now_ns: int) -> Reading:
        """:meth:`reading_from` for every kind of DataValue (the general path)."""
        status = dv.StatusCode if dv.StatusCode is not None else ua.StatusCode()
        time_ns = pick_time_ns(dv.SourceTimestamp, dv.ServerTimestamp, now_ns)
        quality = quality_of(status.value)
        status_name = status.name
        if quality is Quality.BAD:
            return Reading(sensor_id, None, Quality.BAD, time_ns, status_name, status_name)
        raw = dv.Value.Value if dv.Value is not None else None
        value = self._plain_value(sensor_id, raw)
        if value is None:
            why = "no value" if raw is None else f"unsupported value type {type(raw).__name__}"
            return Reading(sensor_id, None, Quality.BAD, time_ns, why, status_name)
        if isinstance(value, str) and sensor_id in self._numeric_sensors:
            return self._text_for_a_number(sensor_id, value, time_ns, status_name)
        if isinstance(value, float) and not math.isfinite(value):
            # NaN never crosses a limit and inf always does: neither is a measurement.
            # Bad here, so `read` and `run` say the same.
            why = f"not a finite number ({value})"
            return Reading(sensor_id, None, Quality.BAD, time_ns, why, status_name)
        reason = status_name if quality is Quality.UNCERTAIN else None
        return Reading(sensor_id, value, quality, time_ns, reason, status_name)

    def _text_for_a_number(
        self, sensor_id: str, text: str, time_ns: int, status_name: str
    ) -> Reading:
        """A String node (``"99.5"``) under a rule that compares numbers: a limit never
        trips on text, so the reading is bad, counted, and logged once per sensor."""
        self.text_where_number += 1
        self._stats.read_errors += 1
        why = f"text {text[:40]!r} where a rule needs a number (the node is a String)"
        if sensor_id not in self._text_reported:
            self._text_reported.add(sensor_id)
            log.error(
                "OPC UA node holds text where a rule needs a number.",
                extra={
                    "connection": self._name,
                    "sensor": sensor_id,
                    "node": self._node_strings.get(sensor_id),
                    "value": text[:40],
                },
            )
        return Reading(sensor_id, None, Quality.BAD, time_ns, why, status_name)

    def _plain_value(self, sensor_id: str, raw: Any) -> Value:
        if isinstance(raw, bool | str):
            return raw
        if isinstance(raw, int | float):
            scale = self._sensors[sensor_id].scale
            if scale is None:
                return raw
            return raw * scale.factor + scale.offset
        return None
