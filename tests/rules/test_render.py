"""Work-order templates and alert messages."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.alerts import ALERT_SCHEMA, make_event_id
from edge_agent.rules import AlarmEvent, RuleEngine, render_template, to_alert_message
from edge_agent.rules.render import TEMPLATE_ERRORS, TEMPLATE_FIELDS, template_fields
from tests.rules.conftest import reading, site

FIELDS: dict[str, Any] = {name: f"<{name}>" for name in TEMPLATE_FIELDS} | {
    "value": 7.345,
    "peak": 9,
    "limit": 7.0,
}


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("{asset.name} vibration {value:.1f} {unit}", "<asset.name> vibration 7.3 <unit>"),
        ("peak {peak:>4d} limit {limit:g}", "peak    9 limit 7"),
        ("{value!r} {rule.id!s}", "7.345 <rule.id>"),
        ("{{literal}} {site.id}", "{literal} <site.id>"),
        ("{value:{limit}}", "  7e+00"),  # nested spec: the limit 7.0 as width.precision
    ],
)
def test_fields_and_format_specs(template: str, rendered: str) -> None:
    assert render_template(template, FIELDS) == rendered


@pytest.mark.parametrize(
    "template",
    [
        "{value.__class__.__mro__}",  # no attribute access
        "{value[0]}",  # no indexing
        "{asset.name.upper}",
        "{0}",  # no positional fields
        "{os}",
        "{value",  # malformed
        "{value!x}",  # unknown conversion
    ],
)
def test_anything_else_falls_back_to_the_written_text(template: str) -> None:
    before = TEMPLATE_ERRORS.errors
    assert render_template(template, FIELDS) == template
    assert TEMPLATE_ERRORS.errors == before + 1


def test_spec_that_does_not_suit_the_value_falls_back_to_str() -> None:
    before = TEMPLATE_ERRORS.errors
    fields = FIELDS | {"value": "OPEN", "peak": None}
    assert render_template("{value:.2f} / {peak:d}", fields) == "OPEN / "
    assert TEMPLATE_ERRORS.errors == before + 2


def test_huge_width_or_precision_prints_the_value_plainly() -> None:
    before = TEMPLATE_ERRORS.errors
    fields = FIELDS | {"value": 7.5}
    assert render_template("{value:>999999999} {value:.5000f} {value:>999}", fields) == (
        "7.5 7.5 " + "7.5".rjust(999)
    )
    assert TEMPLATE_ERRORS.errors == before + 2


def test_template_fields_lists_names_for_config_checks() -> None:
    assert template_fields("{asset.name} {value:{limit}}") == ["asset.name", "value", "limit"]


RULE = {
    "id": "vib-high",
    "asset": "p101",
    "sensor": "temp",
    "high": {"limit": 7.1},
    "escalate": [{"above": 9, "priority": "HIGH"}],
    "work_order": {
        "title": "{asset.name}: vibration {value:.1f} {unit} over {limit}",
        "description": "Since {started_at} on {site.name}; peak {peak}. Alert {alert_id}",
        "categories": ["Vibration"],
        "assignees": [{"type": "TEAM", "id": 7}],
        "due_in": "4h",
    },
}


def test_alert_message_of_each_rule_event() -> None:
    config = site([RULE])
    engine = RuleEngine(config)
    activated, escalated = engine.feed(reading(0, 9.5))
    [cleared] = engine.feed(reading(60, 5))
    message = to_alert_message(activated, config)
    assert message is not None
    assert message["schema"] == ALERT_SCHEMA
    assert message["event_id"] == make_event_id(activated.alert_id or "", "activated")
    assert message["time"] == "2026-01-05T10:00:00Z"
    assert message["asset"] == {"id": "p101", "name": "Pump 101", "maintainx_id": None}
    assert message["unit"] == "degC" and message["limit"] == 7.1
    work_order = message["work_order"]
    assert work_order["title"] == "Pump 101: vibration 9.5 degC over 7.1"
    assert work_order["description"] == (
        f"Since 2026-01-05T10:00:00Z on Plant A; peak 9.5. Alert {activated.alert_id}"
    )
    assert work_order["categories"] == ["Vibration"]
    assert work_order["assignees"] == [{"type": "TEAM", "id": 7}]
    assert work_order["due_date"] == "2026-01-05T14:00:00Z"
    assert work_order["priority"] == "MEDIUM"
    escalated_message = to_alert_message(escalated, config)
    assert escalated_message is not None
    assert escalated_message["event_id"] == f"{activated.alert_id}:escalated:HIGH"
    assert escalated_message["priority"] == "HIGH"
    cleared_message = to_alert_message(cleared, config)
    assert cleared_message is not None
    assert cleared_message["event_id"] == f"{activated.alert_id}:cleared"
    assert cleared_message["alert_id"] == activated.alert_id


def test_sensor_events_are_not_alert_messages() -> None:
    config = site([RULE])
    assert to_alert_message(AlarmEvent(1, "stale", sensor_id="temp"), config) is None
    assert to_alert_message(AlarmEvent(1, "fresh", sensor_id="temp"), config) is None
    assert to_alert_message(AlarmEvent(1, "flood"), config) is None


def test_stale_alarm_work_order_is_about_the_sensor() -> None:
    config = site([{**RULE, "on_stale": "alarm", "stale_after": "30s"}])
    engine = RuleEngine(config)
    engine.feed(reading(0, 1))
    # The rule's own stale_after (30 s) is shorter than the sensor's: no sensor event yet.
    [activated] = engine.tick(reading(30, 0).source_time_ns)
    assert (activated.kind, activated.cause) == ("activated", "stale")
    message = to_alert_message(activated, config)
    assert message is not None
    assert message["work_order"]["title"] == "Pump 101: no data from temp"


def test_every_template_field_is_filled() -> None:
    config = site([RULE])
    [event, _] = RuleEngine(config).feed(reading(0, 9.5))
    from edge_agent.rules.render import template_values

    values = template_values(event, config, config.rules[0])
    assert set(values) == TEMPLATE_FIELDS
    assert values["duration"] == "0s"


def test_duration_is_written_for_people_to_the_second() -> None:
    """An episode's ``{duration}`` reads ``12m30s``, never the exact nanoseconds of the clock."""
    from edge_agent.rules.render import template_values

    config = site([RULE])
    engine = RuleEngine(config)
    engine.feed(reading(0, 9.5))
    [cleared] = [e for e in engine.feed(reading(750.123456789, 1.0)) if e.kind == "cleared"]
    assert template_values(cleared, config, config.rules[0])["duration"] == "12m30s"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "0s"), (59, "59s"), (3600, "1h"), (3605, "1h5s"), (93784, "1d2h3m4s"), (-5, "0s")],
)
def test_elapsed_text(seconds: float, text: str) -> None:
    from edge_agent.common.time_units import NS_PER_S, elapsed_text

    assert elapsed_text(round(seconds * NS_PER_S)) == text
