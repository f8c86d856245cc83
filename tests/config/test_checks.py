"""The whole-file checks, case by case, beyond the one-mistake corpus."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config.checks import template_problems
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.loader import check_site_files

from .conftest import VALID_SITE

Write = Callable[..., Path]


def problems(write: Write, text: str) -> list[Diagnostic]:
    _config, diagnostics = check_site_files(write("site.yaml", text))
    return diagnostics


@pytest.mark.parametrize(
    "template",
    [
        "{asset.name}: bearing {value:.1f} {unit}",
        "{{literal}} {rule.id} {priority:>6} {started_at} {alert_id} {site.name}",
        "peak {peak:8.2f} over {limit:g} for {duration}",
        "",
    ],
)
def test_good_templates(template: str) -> None:
    assert list(template_problems(template)) == []


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{value!r}", "conversions are not supported"),
        ("{value:{width}}", "nested fields"),
        ("{asset.__class__}", "unknown template field {asset.__class__}"),
        ("{0}", "unknown template field {0}"),
        ("{}", "unknown template field {}"),
        ("{unit:d}", "does not fit unit, which is text"),
        ("oops }", "write {{ and }} for literal braces"),
    ],
)
def test_bad_templates(template: str, fragment: str) -> None:
    found = list(template_problems(template))
    assert len(found) == 1 and fragment in found[0]


def test_every_cross_reference_error_at_once(write: Write) -> None:
    text = (
        VALID_SITE.replace("connection: ua1, node", "connection: ua2, node")
        .replace("asset: P-101\n", "asset: P-102\n")
        .replace("sensor: p101_temp\n", "sensor: p101_tmp\n")
    )
    found = [(d.path, d.message) for d in problems(write, text)]
    assert found == [
        (("sensors", "p101_temp", "connection"), "unknown connection `ua2`; did you mean `ua1`?"),
        (("rules", 0, "asset"), "unknown asset `P-102`; did you mean `P-101`?"),
        (("rules", 0, "sensor"), "unknown sensor `p101_tmp`; did you mean `p101_temp`?"),
    ]


def test_unknown_reference_without_a_near_name_lists_the_known(write: Write) -> None:
    text = VALID_SITE.replace("sensor: p101_temp\n", "sensor: zzz\n")
    assert [d.message for d in problems(write, text)] == [
        "unknown sensor `zzz` (known: p101_running, p101_temp, p101_vibration)"
    ]


def test_low_deadband_reaching_the_high_limit(write: Write) -> None:
    text = VALID_SITE.replace(
        "high: {limit: 85, deadband: 3}", "high: {limit: 85}\n    low: {limit: 80, deadband: 5}"
    )
    assert [(d.path, d.severity) for d in problems(write, text)] == [
        (("rules", 0, "low", "deadband"), "error")
    ]


def test_band_with_limits_the_wrong_way_round(write: Write) -> None:
    text = VALID_SITE.replace(
        "high: {limit: 85, deadband: 3}", "high: {limit: 10}\n    low: {limit: 20}"
    )
    assert [d.message for d in problems(write, text)] == [
        "high.limit 10 must be above low.limit 20"
    ]


def test_below_escalation_must_fall_with_priority(write: Write) -> None:
    text = VALID_SITE.replace(
        "high: {limit: 85, deadband: 3}",
        "low: {limit: 10}\n    priority: LOW\n"
        "    escalate: [{below: 5, priority: MEDIUM}, {below: 8, priority: HIGH}]",
    )
    found = problems(write, text)
    assert [(d.path, d.severity) for d in found] == [
        (("rules", 0, "escalate", 1, "below"), "error")
    ]
    assert "a higher priority needs a lower level" in found[0].message


def test_overlap_is_fine_for_the_same_type_and_for_bits(write: Write) -> None:
    text = VALID_SITE.replace(
        "  p101_running:",
        "  same: {connection: plc1, register: {table: holding, address: 0, type: int16}}\n"
        "  bit3: {connection: plc1, register: {table: holding, address: 0, type: bool, bit: 3}}\n"
        "  other_unit: {connection: plc1, unit_id: 2,"
        " register: {table: holding, address: 0, type: float32}}\n"
        "  p101_running:",
    )
    assert problems(write, text) == []


def test_high_on_a_discrete_input(write: Write) -> None:
    text = VALID_SITE.replace("sensor: p101_temp\n", "sensor: p101_running\n")
    assert [d.message for d in problems(write, text)] == [
        "`high` compares numbers but sensor `p101_running` is a bool (coil); "
        "use `equals: true` or `equals: false`"
    ]


def test_equals_on_a_numeric_sensor_is_fine(write: Write) -> None:
    text = VALID_SITE.replace("high: {limit: 85, deadband: 3}", "equals: 3")
    assert problems(write, text) == []


def test_nan_limit_is_refused(write: Write) -> None:
    text = VALID_SITE.replace("limit: 85", "limit: .nan")
    assert [d.path for d in problems(write, text)] == [("rules", 0, "high", "limit")]
