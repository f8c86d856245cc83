"""Durations that parse but cannot be meant: zero, past a ceiling, a poll that floods a
device, a stale_after shorter than the poll."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from edge_agent.config.checks.common import (
    items_of,
    rules_of,
)
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document
from edge_agent.config.units import format_duration, parse_duration


def check_stale_vs_poll(doc: Document) -> Iterator[Diagnostic]:
    """A sensor that can go stale between two polls raises false stale alarms."""
    default_poll = doc.get("defaults", "poll") or "1s"
    for sensor_id, sensor in items_of(doc.get("sensors")):
        stale = sensor.get("stale_after")
        connection = sensor.get("connection")
        poll = doc.get("connections", connection, "poll") if isinstance(connection, str) else None
        try:
            stale_ns = parse_duration(stale) if stale is not None else None
            poll_ns = parse_duration(poll if poll is not None else default_poll)
        except ValueError:
            continue  # the model reports a malformed duration
        # 0s is an error of its own (check_positive_durations): say it once.
        if stale_ns is not None and 0 < stale_ns <= poll_ns:
            yield doc.at(
                ("sensors", sensor_id, "stale_after"),
                f"stale_after {format_duration(stale_ns)} is not longer than the poll "
                f"interval {format_duration(poll_ns)}: the sensor would go stale between polls",
                "warning",
            )


def _positive_duration_paths(doc: Document) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every duration that must be longer than zero, with what a zero would do."""
    spin = "it would poll without pause"
    yield ("defaults", "poll"), spin
    yield ("defaults", "stale_after"), "every reading would be stale at once"
    for name, connection in items_of(doc.get("connections")):
        here = ("connections", name)
        yield (*here, "poll"), spin
        yield (*here, "timeout"), "no request could ever be answered in time"
        if connection.get("protocol") == "opcua":
            yield (*here, "watchdog"), "every subscription would be rebuilt at once"
    for sensor_id, _sensor in items_of(doc.get("sensors")):
        yield ("sensors", sensor_id, "stale_after"), "every reading would be stale at once"
    for index, _rule in rules_of(doc):
        yield ("rules", index, "stale_after"), "every reading would be stale at once"
        yield ("rules", index, "rate", "per"), "a change per no time at all cannot be computed"
        yield ("rules", index, "flatline", "for"), "every second reading would be a flatline"
    yield ("forwarding", "maintainx", "timeout"), "no request could ever be answered in time"


def _backoff_paths(doc: Document) -> Iterator[tuple[str | int, ...]]:
    for name, _connection in items_of(doc.get("connections")):
        yield ("connections", name, "backoff")
    yield ("forwarding", "mqtt", "backoff")
    yield ("forwarding", "maintainx", "backoff")


def _duration_at(doc: Document, path: tuple[str | int, ...]) -> int | None:
    raw = doc.get(*path)
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except ValueError:
        return None  # the model reports a malformed duration


def check_positive_durations(doc: Document) -> Iterator[Diagnostic]:
    """`poll: 0s`, `timeout: 0s`, `backoff: {initial: 0s}`: valid durations that would make
    the agent spin, time out at once or reconnect without pause."""
    for path, consequence in _positive_duration_paths(doc):
        if _duration_at(doc, path) == 0:
            yield doc.at(path, f"`{path[-1]}` must be longer than 0s: {consequence}")
    for path in _backoff_paths(doc):
        initial = _duration_at(doc, (*path, "initial"))
        largest = _duration_at(doc, (*path, "max"))
        if initial == 0:
            yield doc.at(
                (*path, "initial"),
                "`initial` must be longer than 0s: reconnects would follow each other "
                "without pause (write e.g. 500ms)",
            )
        elif initial is not None and largest is not None and largest < initial:
            yield doc.at(
                (*path, "max"),
                f"backoff max {format_duration(largest)} is shorter than initial "
                f"{format_duration(initial)}",
            )


_HOUR: Final = parse_duration("1h")
_DAY: Final = parse_duration("1d")
# MQTT carries the keep-alive in a 16-bit count of seconds.
_MQTT_KEEPALIVE_MAX: Final = parse_duration("65535s")


def _duration_limits(doc: Document) -> Iterator[tuple[tuple[str | int, ...], int, str]]:
    """Every duration with a ceiling of its own: ``(path, longest, why)``. Each ceiling is
    far above what a plant uses; a value past it is a typo (`600m` for `600s`, an extra
    zero) that would leave a sensor unwatched or an alarm unsent for days. The table is in
    docs/configuration.md; every duration is also at most a year (units.MAX_DURATION_NS)."""
    unread = "a sensor read less often than that is not monitored"
    late = "a peer that slow is down; say so sooner"
    backoff = "an outage would be noticed as over that much later"
    yield ("defaults", "poll"), _HOUR, unread
    yield ("defaults", "stale_after"), 7 * _DAY, "a dead sensor would go unnoticed for a week"
    yield ("defaults", "chattering", "window"), _DAY, "it counts activations, not a history"
    yield ("defaults", "flood", "window"), _DAY, "it counts work orders, not a history"
    for name, connection in items_of(doc.get("connections")):
        here = ("connections", name)
        yield (*here, "poll"), _HOUR, unread
        yield (*here, "timeout"), 5 * parse_duration("1m"), late
        yield (*here, "request_delay"), parse_duration("10s"), "it is paid before every request"
        if connection.get("protocol") == "opcua":
            yield (*here, "sampling_interval"), _HOUR, unread
            yield (*here, "watchdog"), _HOUR, "a silent subscription would go unnoticed"
    for path in _backoff_paths(doc):
        yield (*path, "initial"), _HOUR, backoff
        yield (*path, "max"), _HOUR, backoff
    for sensor_id, _sensor in items_of(doc.get("sensors")):
        yield ("sensors", sensor_id, "stale_after"), 7 * _DAY, "a dead sensor would go unnoticed"
    for index, _rule in rules_of(doc):
        rule_at: tuple[str | int, ...] = ("rules", index)
        yield (*rule_at, "stale_after"), 7 * _DAY, "a dead sensor would go unnoticed"
        yield (*rule_at, "on_delay"), _DAY, "an alarm would be held that long before it is raised"
        yield (*rule_at, "off_delay"), _DAY, "an alarm would be held that long after it cleared"
        yield (*rule_at, "cooldown"), 30 * _DAY, "a recurring fault would go unreported for a month"
        yield (*rule_at, "chattering", "window"), _DAY, "it counts activations, not a history"
        yield (*rule_at, "rate", "per"), _DAY, "a rate is a change over minutes or hours"
        yield (*rule_at, "flatline", "for"), 30 * _DAY, "a frozen sensor would go unnoticed"
        yield (*rule_at, "ack_within"), _DAY, "an unanswered alarm would wait a day to escalate"
        yield (*rule_at, "verify_for"), 7 * _DAY, "a repair's verdict would come a week late"
    for asset_id, _asset in items_of(doc.get("assets")):
        yield (
            ("assets", asset_id, "downtime", "min_duration"),
            _HOUR,
            "every stop and start of the asset would reach MaintainX that late",
        )
    # A shelve is for hours (a known fault during a shift); longer is out of service.
    yield ("alarms", "max_shelve"), 7 * _DAY, "a shelved alarm is forgotten; use out of service"
    yield ("alarms", "max_command_age"), _DAY, "a command that old no longer meets the plant"
    yield ("forwarding", "mqtt", "keepalive"), _MQTT_KEEPALIVE_MAX, "MQTT counts it in 16 bits"
    yield ("forwarding", "maintainx", "timeout"), 5 * parse_duration("1m"), late


def check_duration_limits(doc: Document) -> Iterator[Diagnostic]:
    """`poll: 600m`, `on_delay: 30d`, `cooldown: 365d`: valid durations that would leave a
    plant unwatched. Each has a ceiling far above what is ever meant."""
    for path, longest, why in _duration_limits(doc):
        value = _duration_at(doc, path)
        if value is not None and value > longest:
            yield doc.at(
                path,
                f"`{path[-1]}` {format_duration(value)} is longer than "
                f"{format_duration(longest)}, the most it may be: {why}",
            )


_SHORTEST_POLL: Final = parse_duration("10ms")


def check_poll_floor(doc: Document) -> Iterator[Diagnostic]:
    """`poll: 0.000001s` is valid as a duration but polls a PLC thousands of times a second
    (found in review: 2,000 Modbus requests a second and half a core, on one sensor)."""
    paths: list[tuple[str | int, ...]] = [("defaults", "poll")]
    paths += [("connections", name, "poll") for name, _ in items_of(doc.get("connections"))]
    for path in paths:
        value = _duration_at(doc, path)
        # 0s has its own message (a loop without pause).
        if value is not None and 0 < value < _SHORTEST_POLL:
            yield doc.at(
                path,
                f"`poll` {format_duration(value)} is shorter than "
                f"{format_duration(_SHORTEST_POLL)}: the device would be asked thousands of "
                "times a second",
            )
