"""The alarm lifecycle's settings: rule ``ack_within`` and ``verify_for``, asset
``maintenance: {while: [...]}``, site ``alarms: {max_shelve}``; their defaults, and the
errors and warnings with their place in the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.common.time_units import NS_PER_HOUR, NS_PER_MINUTE
from edge_agent.config.loader import check_site_files

from .conftest import VALID_SITE

Write = Callable[..., Path]


def _found(write: Write, text: str) -> list[tuple[tuple[str | int, ...], str, str]]:
    _config, diagnostics = check_site_files(write("site.yaml", text))
    return [(d.path, d.severity, d.message) for d in diagnostics]


def test_defaults(write: Write) -> None:
    config, diagnostics = check_site_files(write("site.yaml", VALID_SITE))
    assert diagnostics == [] and config is not None
    assert config.alarms.max_shelve == 8 * NS_PER_HOUR
    assert config.alarms.max_command_age == 10 * NS_PER_MINUTE
    assert config.rules[0].ack_within is None
    assert config.rules[0].verify_for == 30 * NS_PER_MINUTE
    assert config.assets["P-101"].maintenance.while_ == ["IN_PROGRESS", "ON_HOLD"]


def test_every_field_set(write: Write) -> None:
    text = (
        VALID_SITE.replace("on_delay: 5s", "on_delay: 5s\n    ack_within: 15m\n    verify_for: 1h")
        .replace("maintainx_id: 1001}", "maintainx_id: 1001, maintenance: {while: [ON_HOLD]}}")
        .replace("connections:", "alarms: {max_shelve: 4h, max_command_age: 2m}\nconnections:", 1)
    )
    config, diagnostics = check_site_files(write("site.yaml", text))
    assert diagnostics == [] and config is not None
    assert config.alarms.max_shelve == 4 * NS_PER_HOUR
    assert config.alarms.max_command_age == 2 * NS_PER_MINUTE
    assert config.rules[0].ack_within == 15 * NS_PER_MINUTE
    assert config.rules[0].verify_for == NS_PER_HOUR
    assert config.assets["P-101"].maintenance.while_ == ["ON_HOLD"]


@pytest.mark.parametrize(
    ("old", "new", "path", "severity", "fragment"),
    [
        (
            "on_delay: 5s",
            "on_delay: 5s\n    ack_within: 0s",
            ("rules", 0, "ack_within"),
            "error",
            "every alarm would be overdue at once",
        ),
        (
            "on_delay: 5s",
            "on_delay: 5s\n    ack_within: 2d",
            ("rules", 0, "ack_within"),
            "error",
            "the most it may be",
        ),
        (
            "on_delay: 5s",
            "on_delay: 5s\n    verify_for: 500ms",
            ("rules", 0, "verify_for"),
            "warning",
            "not longer than the sensor's poll interval 1s",
        ),
        (
            "maintainx_id: 1001}",
            "maintainx_id: 1001, maintenance: {while: [IN_PROGRESS, DONE]}}",
            ("assets", "P-101", "maintenance", "while", 1),
            "error",
            "DONE ends a work order",
        ),
        (
            "maintainx_id: 1001}",
            "maintainx_id: 1001, maintenance: {while: [ON_HOLD, ON_HOLD]}}",
            ("assets", "P-101", "maintenance", "while", 1),
            "warning",
            "listed twice",
        ),
        (
            "connections:",
            "alarms: {max_shelve: 30d}\nconnections:",
            ("alarms", "max_shelve"),
            "error",
            "use out of service",
        ),
        (
            "connections:",
            "alarms: {max_command_age: 2d}\nconnections:",
            ("alarms", "max_command_age"),
            "error",
            "no longer meets the plant",
        ),
    ],
)
def test_lifecycle_settings_that_cannot_be_meant(
    write: Write, old: str, new: str, path: tuple[str | int, ...], severity: str, fragment: str
) -> None:
    found = _found(write, VALID_SITE.replace(old, new, 1))
    assert [(p, s) for p, s, _ in found] == [(path, severity)]
    assert fragment in found[0][2]


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("maintainx_id: 1001}", "maintainx_id: 1001, maintenance: {while: [FIXED]}}", "FIXED"),
        ("connections:", "alarms: {max_shelve: 0s}\nconnections:", "max_shelve"),
        ("connections:", "alarms: {max_command_age: 0s}\nconnections:", "max_command_age"),
        ("connections:", "alarms: {max_shelf: 2h}\nconnections:", "max_shelf"),
        ("on_delay: 5s", "on_delay: 5s\n    verify_for: 30", "verify_for"),
    ],
)
def test_malformed_lifecycle_settings_are_errors(
    write: Write, old: str, new: str, fragment: str
) -> None:
    found = _found(write, VALID_SITE.replace(old, new, 1))
    assert found and all(s == "error" for _, s, _ in found)
    assert any(fragment in m or fragment in str(p) for p, _, m in found)
