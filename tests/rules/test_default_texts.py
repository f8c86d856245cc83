"""The default work-order texts as a person reads them: values to the sensor's decimals,
times to the second in the site's time zone, a stale episode dated by its last good reading
(issue 21 §2: not `300.1021901976017 degC/1m` since `02:55:43.609317575Z`)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent.common.value_text import number_text
from edge_agent.config.models import SiteConfig
from edge_agent.rules import RuleEngine, to_alert_message
from tests.rules.conftest import reading


def config(rules: list[dict[str, Any]], zone: str = "UTC", **temp: Any) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "version": 1,
            "site": {"id": "plant-a", "name": "Plant A", "timezone": zone},
            "defaults": {"stale_after": "10m"},
            "connections": {"plc": {"protocol": "modbus-tcp", "host": "127.0.0.1"}},
            "assets": {"p101": {"name": "Pump 101"}},
            "sensors": {
                "temp": {
                    "connection": "plc",
                    "register": {"table": "holding", "address": 0},
                    "unit": "degC",
                    **temp,
                }
            },
            "rules": rules,
        }
    )


def first_work_order(site: SiteConfig, *values: tuple[float, Any]) -> dict[str, Any]:
    engine = RuleEngine(site)
    events = [event for t, v in values for event in engine.feed(reading(t, v))]
    message = to_alert_message(events[0], site)
    assert message is not None
    return dict(message["work_order"])


HIGH = {"id": "temp-high", "asset": "p101", "sensor": "temp", "high": {"limit": 80}}


def test_a_fractional_value_is_rounded_and_the_time_is_local_to_the_second() -> None:
    site = config([HIGH], zone="Europe/Berlin")
    order = first_work_order(site, (0.609317575, 80.1021901976017))
    assert order["title"] == "Pump 101: temp-high (temp 80.10 degC)"
    assert order["description"] == (
        "Rule temp-high on Pump 101: temp = 80.10 degC, limit 80, since 2026-01-05 11:00:00 CET."
    )


def test_decimals_come_from_the_sensor_else_its_scale_factor() -> None:
    assert "temp 81.3 degC" in first_work_order(config([HIGH], decimals=1), (0, 81.26))["title"]
    scaled = config([HIGH], scale={"factor": 0.01})
    assert "temp 81.25 degC" in first_work_order(scaled, (0, 81.25))["title"]
    assert "temp 81 degC" in first_work_order(config([HIGH]), (0, 81))["title"]


def test_a_rate_is_rounded_too() -> None:
    rate = {"id": "temp-rate", "asset": "p101", "sensor": "temp", "rate": {"above": 5}}
    order = first_work_order(config([rate]), (0, 20.0), (1, 25.0017))
    assert order["title"] == "Pump 101: temp-rate (temp 300.10 degC/1m)"


def test_a_stale_episode_says_when_the_last_good_reading_came() -> None:
    stale = {**HIGH, "on_stale": "alarm", "stale_after": "30s"}
    site = config([stale], zone="America/Chicago")
    engine = RuleEngine(site)
    engine.feed(reading(5, 50))
    [activated] = engine.tick(reading(35, 0).source_time_ns)
    message = to_alert_message(activated, site)
    assert message is not None
    assert message["work_order"]["description"] == (
        "Sensor temp sent no good reading since 2026-01-05 04:00:05 CST; "
        "rule temp-high cannot watch Pump 101."
    )


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [
        (7, None, "7"),
        (7.0, None, "7"),
        (7.346, None, "7.35"),
        (7.346, 0, "7"),
        (True, 2, "True"),
        ("OPEN", 1, "OPEN"),
        (None, 1, ""),
        (1e300, None, "1e+300"),
        (-0.5, 3, "-0.500"),
    ],
)
def test_number_text(value: Any, decimals: int | None, text: str) -> None:
    assert number_text(value, decimals) == text


def test_an_unknown_time_zone_is_a_config_error_that_names_the_fix() -> None:
    with pytest.raises(ValidationError, match="not a known time zone; write an IANA name"):
        config([HIGH], zone="Mars/Olympus")
    with pytest.raises(ValidationError, match="decimals"):
        config([HIGH], decimals=11)


def test_the_message_carries_decimals_and_time_zone_for_the_comments_written_later() -> None:
    """The hub writes the escalated/cleared comments from the message alone: the agent puts
    the sensor's decimals and a non-UTC site time zone in it (and leaves out the defaults)."""
    engine_site = config([HIGH], zone="Europe/Berlin", decimals=1)
    [activated] = RuleEngine(engine_site).feed(reading(0, 81.26))
    message = to_alert_message(activated, engine_site)
    assert message is not None
    assert (message.get("decimals"), message.get("timezone")) == (1, "Europe/Berlin")
    plain_site = config([HIGH])
    [activated] = RuleEngine(plain_site).feed(reading(0, 81))
    message = to_alert_message(activated, plain_site)
    assert message is not None
    assert "decimals" not in message and "timezone" not in message
