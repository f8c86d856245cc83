"""Rule events as alert messages, with their work orders rendered from templates.

Templates use Python's format syntax over a fixed set of fields (``TEMPLATE_FIELDS``) and
nothing else: a field name is looked up whole in a flat mapping, so ``{asset.name}`` is a
key, not an attribute access, and ``{value.__class__}`` or ``{value[0]}`` are unknown fields.
Nothing is evaluated. A format spec that does not suit the value (``{value:.2f}`` on a
string), an unknown field or a malformed template never raises: the field falls back to its
plain text (or the template to its literal text) and ``TEMPLATE_ERRORS`` counts it.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, cast

from edge_agent.alerts import (
    ALERT_SCHEMA,
    AlertMessage,
    AssetRef,
    EventKind,
    HeldBy,
    Priority,
    WorkOrderRequest,
    format_time_ns,
    make_event_id,
)
from edge_agent.common.local_time import local_text
from edge_agent.common.time_units import elapsed_text
from edge_agent.common.value_text import number_text
from edge_agent.config.models import TEMPLATE_FIELDS, Rule, SiteConfig
from edge_agent.config.units import format_duration
from edge_agent.rules.events import CAUSE_STALE, LIFECYCLE_KINDS, AlarmEvent

log = logging.getLogger(__name__)

RULE_EVENT_KINDS: Final = (
    frozenset({"activated", "escalated", "cleared", "chattering"}) | LIFECYCLE_KINDS
)


class TemplateStats:
    """How many template fields or templates fell back to plain text."""

    errors = 0


TEMPLATE_ERRORS = TemplateStats()


_HUGE_NUMBER: Final = re.compile(r"[0-9]{4,}")


class _UnknownField(KeyError):
    pass


class SafeFormatter(string.Formatter):
    """``string.Formatter`` restricted to one flat mapping of fields."""

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if field_name not in kwargs:
            raise _UnknownField(field_name)
        return kwargs[field_name], field_name

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, str) and key in kwargs:
            return kwargs[key]
        raise _UnknownField(str(key))

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion in (None, "s", "r", "a"):
            return super().convert_field(value, conversion)
        raise ValueError(f"unknown conversion !{conversion}")

    def format_field(self, value: Any, format_spec: str) -> Any:
        if _HUGE_NUMBER.search(format_spec):
            # A width or precision of 1000 or more (a typo such as {value:>99999999}) would
            # build a huge string before the title is cut: the value prints plainly.
            TEMPLATE_ERRORS.errors += 1
            return "" if value is None else str(value)
        try:
            return format(value, format_spec)
        except (ValueError, TypeError):
            TEMPLATE_ERRORS.errors += 1
            return "" if value is None else str(value)


_FORMATTER: Final = SafeFormatter()


def template_fields(template: str) -> list[str]:
    """The field names a template uses (for the config checks); raises ValueError if the
    template is malformed."""
    names: list[str] = []
    for _, field_name, spec, _ in string.Formatter().parse(template):
        if field_name is not None:
            names.append(field_name)
        if spec:
            names.extend(template_fields(spec))
    return names


def render_template(template: str, fields: Mapping[str, Any]) -> str:
    """``template`` with ``fields`` filled in; never raises."""
    try:
        return _FORMATTER.vformat(template, (), fields)
    except (KeyError, ValueError, IndexError, TypeError, AttributeError) as exc:
        TEMPLATE_ERRORS.errors += 1
        log.warning(
            "Work order template could not be rendered; using its text as written.",
            extra={"template": template, "error": str(exc)},
        )
        return template


def template_values(event: AlarmEvent, config: SiteConfig, rule: Rule | None) -> dict[str, Any]:
    asset_id = rule.asset if rule is not None else ""
    asset = config.assets.get(asset_id)
    return {
        "asset.name": asset.name if asset is not None else asset_id,
        "asset.id": asset_id,
        "sensor.id": event.sensor_id or "",
        "value": event.value,
        "peak": event.peak,
        "limit": event.limit,
        "unit": _unit(config, rule, event.sensor_id) or "",
        "started_at": format_time_ns(event.started_ns) if event.started_ns is not None else "",
        "rule.id": event.rule_id or "",
        "priority": event.priority or "",
        "site.id": config.site.id,
        "site.name": config.site.name or config.site.id,
        "alert_id": event.alert_id or "",
        # How long the episode has lasted at this event, e.g. "12m30s" (0s at activation).
        "duration": (
            elapsed_text(event.time_ns - event.started_ns) if event.started_ns is not None else ""
        ),
    }


def _for_people(
    event: AlarmEvent, config: SiteConfig, rule: Rule | None, fields: dict[str, Any]
) -> dict[str, Any]:
    """The fields of the default texts as a person reads them: numbers to the sensor's
    decimals, times to the second in ``site.timezone`` (not ``300.1021901976017 degC/1m``
    since ``02:55:43.609317575Z``). A stale episode's time is when the last good reading
    came (its staleness was declared ``stale_after`` later)."""
    decimals = _decimals(config, event.sensor_id)
    started = event.started_ns
    if started is not None and event.cause == CAUSE_STALE and rule is not None:
        started -= config.stale_after_ns(rule)
    return {
        **fields,
        "value": number_text(event.value, decimals),
        "limit": number_text(event.limit, decimals),
        "peak": number_text(event.peak, decimals),
        "started_at": local_text(started, config.site.timezone) if started is not None else "",
    }


def _decimals(config: SiteConfig, sensor_id: str | None) -> int | None:
    """The sensor's ``decimals``, else those of its scale factor (0.01 → 2), else None."""
    sensor = config.sensors.get(sensor_id or "")
    if sensor is None:
        return None
    if sensor.decimals is not None:
        return sensor.decimals
    if sensor.scale is not None and sensor.scale.factor not in (0.0, 1.0):
        exponent = Decimal(repr(abs(sensor.scale.factor))).normalize().as_tuple().exponent
        return min(max(-exponent, 0), 10) if isinstance(exponent, int) else None
    return None


def _unit(config: SiteConfig, rule: Rule | None, sensor_id: str | None) -> str | None:
    sensor = config.sensors.get(sensor_id or "")
    unit = sensor.unit if sensor is not None else None
    if rule is not None and rule.rate is not None:
        return f"{unit or ''}/{format_duration(rule.rate.per)}"
    return unit


def _find_rule(config: SiteConfig, rule_id: str) -> Rule | None:
    for rule in config.rules:
        if rule.id == rule_id:
            return rule
    return None


def to_alert_message(event: AlarmEvent, config: SiteConfig) -> AlertMessage | None:
    """The ``edge-agent/alert@2`` message of a rule event (None for stale, fresh, flood)."""
    if event.kind not in RULE_EVENT_KINDS or event.rule_id is None or event.alert_id is None:
        return None
    rule = _find_rule(config, event.rule_id)
    fields = template_values(event, config, rule)
    asset_id = fields["asset.id"]
    asset = config.assets.get(asset_id)
    priority = cast(Priority, event.priority or "NONE")
    template = rule.work_order if rule is not None else None
    if event.cause == CAUSE_STALE:
        plain = _for_people(event, config, rule, fields)
        title = render_template("{asset.name}: no data from {sensor.id}", plain)
        description = render_template(
            "Sensor {sensor.id} sent no good reading since {started_at}; "
            "rule {rule.id} cannot watch {asset.name}.",
            plain,
        )
    elif template is not None:
        title = render_template(template.title, fields)
        description = render_template(template.description, fields)
    else:
        plain = _for_people(event, config, rule, fields)
        title = render_template("{asset.name}: {rule.id} ({sensor.id} {value} {unit})", plain)
        description = render_template(
            "Rule {rule.id} on {asset.name}: {sensor.id} = {value} {unit}, limit {limit}, "
            "since {started_at}.",
            plain,
        )
    due_date = None
    if template is not None and template.due_in is not None and event.started_ns is not None:
        due_date = format_time_ns(event.started_ns + template.due_in)
    work_order: WorkOrderRequest = {
        "title": title[:1000],
        "description": description,
        "priority": priority,
        "categories": list(template.categories) if template is not None else [],
        "assignees": [a.model_dump() for a in template.assignees] if template else [],
        "due_date": due_date,
    }
    asset_ref: AssetRef = {
        "id": asset_id,
        "name": fields["asset.name"],
        "maintainx_id": asset.maintainx_id if asset is not None else None,
    }
    return _message(
        event,
        config,
        time_text=format_time_ns(event.time_ns),
        asset=asset_ref,
        location_id=asset.location_id if asset is not None else None,
        unit=_unit(config, rule, event.sensor_id),
        work_order=work_order,
    )


def _message(
    event: AlarmEvent,
    config: SiteConfig,
    *,
    time_text: str,
    asset: AssetRef,
    location_id: int | None,
    unit: str | None,
    work_order: WorkOrderRequest,
) -> AlertMessage:
    """The message around a rendered (or plain) work order: ids, event and reading."""
    assert event.rule_id is not None and event.alert_id is not None
    priority = cast(Priority, event.priority or "NONE")
    if location_id is not None:
        work_order["location_id"] = location_id
    qualifier = event.qualifier or (priority if event.kind == "escalated" else "")
    message: AlertMessage = {
        "schema": ALERT_SCHEMA,
        "site": config.site.id,
        "event_id": make_event_id(event.alert_id, event.kind, qualifier),
        "alert_id": event.alert_id,
        "event": cast(EventKind, event.kind),
        "time": time_text,
        "time_ns": event.time_ns,
        "rule": event.rule_id,
        "sensor": event.sensor_id or "",
        "asset": asset,
        "value": event.value,
        "peak": event.peak,
        "limit": event.limit,
        "unit": unit,
        "priority": priority,
        "notify": event.notify,
        "work_order": work_order,
    }
    # For the comments written later from this message (at the hub, too).
    decimals = _decimals(config, event.sensor_id)
    if decimals is not None:
        message["decimals"] = decimals
    if config.site.timezone != "UTC":
        message["timezone"] = config.site.timezone
    # The lifecycle's fields (@2), only when set.
    if event.held is not None:
        message["held"] = cast(HeldBy, event.held)
    if event.released is not None:
        message["released"] = cast(HeldBy, event.released)
    if event.by is not None:
        message["by"] = event.by[:200]
    if event.reason is not None:
        message["reason"] = event.reason[:1000]
    if event.work_order_id is not None:
        message["work_order_id"] = event.work_order_id
        if event.kind == "activated" and event.held is None:
            # After a repair that did not hold: the reopened work order gets the comment,
            # never a second one (the hub's and the direct forwarder's existing path).
            message["related_work_order"] = event.work_order_id
    if event.comment:
        message["comment"] = event.comment[:20_000]
    return message


def _time_or_ns(time_ns: int | None) -> str:
    """RFC 3339 if the time can be written as a date, else the raw nanoseconds."""
    if time_ns is None:
        return ""
    try:
        return format_time_ns(time_ns)
    except (ValueError, OverflowError, OSError):
        return f"{time_ns} ns"


def plain_alert_message(event: AlarmEvent, config: SiteConfig, error: str) -> AlertMessage | None:
    """The alert message of a rule event whose :func:`to_alert_message` raised: the same
    ids and fields, with a title and description in plain words that say why (no template,
    no due date), so that a rule that cannot be rendered still makes its work order."""
    if event.kind not in RULE_EVENT_KINDS or event.rule_id is None or event.alert_id is None:
        return None
    rule = _find_rule(config, event.rule_id)
    asset_id = rule.asset if rule is not None else ""
    asset = config.assets.get(asset_id)
    asset_name = asset.name if asset is not None and asset.name else asset_id
    priority = cast(Priority, event.priority or "NONE")
    template = rule.work_order if rule is not None else None
    sensor = event.sensor_id or ""
    work_order: WorkOrderRequest = {
        "title": f"{asset_name}: {event.rule_id} ({sensor} {event.value})"[:1000],
        "description": (
            f"Rule {event.rule_id} on {asset_name}: {sensor} = {event.value}, "
            f"limit {event.limit}, since {_time_or_ns(event.started_ns)}. "
            f"The rule's work order could not be rendered ({error}): "
            "fix the rule and reload the agent."
        ),
        "priority": priority,
        "categories": list(template.categories) if template is not None else [],
        "assignees": [a.model_dump() for a in template.assignees] if template else [],
        "due_date": None,
    }
    return _message(
        event,
        config,
        time_text=_time_or_ns(event.time_ns),
        asset={
            "id": asset_id,
            "name": asset_name,
            "maintainx_id": asset.maintainx_id if asset is not None else None,
        },
        location_id=asset.location_id if asset is not None else None,
        unit=None,
        work_order=work_order,
    )


__all__ = [
    "TEMPLATE_ERRORS",
    "TEMPLATE_FIELDS",
    "SafeFormatter",
    "plain_alert_message",
    "render_template",
    "template_fields",
    "template_values",
    "to_alert_message",
]
