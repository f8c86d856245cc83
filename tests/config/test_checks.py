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
        ("{asset.location}", "; the asset fields are {asset.id}, {asset.name}"),
        ("{vaule:.1f}", "unknown template field {vaule}; did you mean {value}?"),
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


# --------------------------------------------------------------------------- value kinds

STATUS_SENSORS = (
    "  p101_running:",
    "  p101_name: {connection: plc1, register: {table: input, address: 40, type: string,"
    " length: 8}}\n"
    "  p101_state: {connection: plc1, register: {table: holding, address: 50, type: uint16}}\n"
    "  p101_running:",
)


def rule_on(sensor: str, condition: str, title: str | None = None) -> str:
    rule = f"  - id: r2\n    asset: P-101\n    sensor: {sensor}\n    {condition}\n"
    if title is not None:
        rule += f'    work_order: {{title: "{title}"}}\n'
    return VALID_SITE.replace(*STATUS_SENSORS).replace("forwarding:", rule + "forwarding:")


@pytest.mark.parametrize(
    ("sensor", "condition", "fragment"),
    [
        ("p101_running", 'equals: "off"', 'is a coil: it is never equal to "off"'),
        ("p101_running", "equals: 2", "never equal to the number 2; write true or false"),
        ("p101_name", "equals: 3", "reads text, never the number 3"),
        ("p101_state", "equals: running", 'reads numbers, never the text "running"'),
    ],
)
def test_equals_that_can_never_match_the_sensor(
    write: Write, sensor: str, condition: str, fragment: str
) -> None:
    found = problems(write, rule_on(sensor, condition))
    assert [(d.path, d.severity) for d in found] == [(("rules", 1, "equals"), "error")]
    assert fragment in found[0].message


@pytest.mark.parametrize(
    ("sensor", "condition"),
    [
        ("p101_running", "equals: false"),
        ("p101_running", "equals: 1"),  # 1 == true when the engine compares
        ("p101_name", 'equals: "PUMP-01"'),
        ("p101_state", "equals: 3"),
        ("p101_temp", "equals: running"),  # OPC UA: the type is known only at run time
    ],
)
def test_equals_that_fits_the_sensor(write: Write, sensor: str, condition: str) -> None:
    assert problems(write, rule_on(sensor, condition)) == []


def test_only_when_equals_text_on_a_coil(write: Write) -> None:
    text = VALID_SITE.replace(
        "    on_delay: 5s\n",
        "    on_delay: 5s\n    only_when: {sensor: p101_running, equals: 'true'}\n",
    )
    found = problems(write, text)
    assert [d.path for d in found] == [("rules", 0, "only_when", "equals")]
    assert 'never equal to "true"' in found[0].message


@pytest.mark.parametrize(
    ("sensor", "condition", "title", "fragment"),
    [
        ("p101_running", "equals: true", "{value:.1f}", "True prints as '1.0'"),
        ("p101_running", "equals: true", "{peak:>5}", "True prints as '1'"),
        ("p101_running", "equals: true", "{limit:d}", "limit is a bool here"),
        ("p101_name", 'equals: "X"', "{value:.1f}", "does not fit value, which is text here"),
        ("p101_state", "equals: 3", "{limit:.2f} {value:x}", None),
        ("p101_temp", "equals: 3", "{value:.1f}", None),
        ("p101_running", "equals: true", "{value} since {started_at}", None),
    ],
)
def test_template_format_specs_fit_what_the_rule_reads(
    write: Write, sensor: str, condition: str, title: str, fragment: str | None
) -> None:
    found = problems(write, rule_on(sensor, condition, title))
    if fragment is None:
        assert found == []
    else:
        assert [d.path for d in found] == [("rules", 1, "work_order", "title")]
        assert fragment in found[0].message


# --------------------------------------------------------------------------- connections


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("10.0.7.21:502", "write host: 10.0.7.21 and port: 502"),
        ("tcp://10.0.7.21", "not a URL: write 10.0.7.21 (without tcp://"),
        ("'plc 1'", "is not a host name or address"),
    ],
)
def test_host_with_a_port_or_a_scheme(write: Write, host: str, fragment: str) -> None:
    text = VALID_SITE.replace("host: 127.0.0.1", f"host: {host}")
    found = problems(write, text)
    assert [d.path for d in found] == [("connections", "plc1", "host")]
    assert fragment in found[0].message


@pytest.mark.parametrize("host", ["127.0.0.1", "'::1'", "plc-1.plant.local", "'fe80::1'"])
def test_plain_hosts_are_fine(write: Write, host: str) -> None:
    assert problems(write, VALID_SITE.replace("host: 127.0.0.1", f"host: {host}")) == []


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("poll: 0s", ("connections", "plc1", "poll")),
        ("timeout: 0ms", ("connections", "plc1", "timeout")),
        ("backoff: {initial: 0s}", ("connections", "plc1", "backoff", "initial")),
        ("backoff: {initial: 5s, max: 1s}", ("connections", "plc1", "backoff", "max")),
    ],
)
def test_durations_that_must_not_be_zero(write: Write, setting: str, path: tuple[str, ...]) -> None:
    text = VALID_SITE.replace("port: 15020}", f"port: 15020, {setting}}}")
    found = problems(write, text)
    assert [(d.path, d.severity) for d in found] == [(path, "error")]


def test_zero_delays_are_fine(write: Write) -> None:
    text = VALID_SITE.replace("on_delay: 5s", "on_delay: 0s\n    off_delay: 0s")
    assert problems(write, text) == []


def test_unit_zero_is_broadcast_on_a_serial_bus_only(write: Write) -> None:
    text = VALID_SITE.replace(
        "  ua1:",
        "  bus: {protocol: modbus-rtu, device: /dev/ttyUSB0, unit_id: 0}\n"
        "  gw: {protocol: modbus-tcp, host: 127.0.0.1, framer: rtu, unit_id: 3}\n"
        "  ua1:",
    ).replace(
        "  p101_running:",
        "  on_bus: {connection: bus, unit_id: 5, register: {table: holding, address: 0}}\n"
        "  on_gw: {connection: gw, unit_id: 0, register: {table: holding, address: 0}}\n"
        "  on_gw2: {connection: gw, unit_id: 250, register: {table: holding, address: 0}}\n"
        "  on_tcp: {connection: plc1, unit_id: 0, register: {table: holding, address: 9}}\n"
        "  p101_running:",
    )
    found = [(d.path, d.message.split(":")[0]) for d in problems(write, text)]
    assert found == [
        (("connections", "bus", "unit_id"), "unit_id 0 is the broadcast address on a serial bus"),
        (("sensors", "on_gw", "unit_id"), "unit_id 0 is the broadcast address on a serial bus"),
        (
            ("sensors", "on_gw2", "unit_id"),
            "unit_id 250 is reserved on a serial bus; device addresses are 1–247",
        ),
    ]


@pytest.mark.parametrize(
    ("written", "hint"),
    [
        ("parity: none", "did you mean `N`?"),
        ("parity: even", "did you mean `E`?"),
        ("parity: NO", "did you mean `N`?"),  # "no parity", not O(dd)
    ],
)
def test_other_tools_words_for_values(write: Write, written: str, hint: str) -> None:
    text = VALID_SITE.replace(
        "  ua1:", f"  bus: {{protocol: modbus-rtu, device: /dev/ttyUSB0, {written}}}\n  ua1:"
    )
    found = problems(write, text)
    assert [d.path for d in found] == [("connections", "bus", "parity")]
    assert found[0].message.endswith(hint)


@pytest.mark.parametrize(
    ("written", "hint"),
    [("real", "did you mean `float32`?"), ("DWORD", "did you mean `uint32`?")],
)
def test_device_manual_type_names(write: Write, written: str, hint: str) -> None:
    text = VALID_SITE.replace("address: 0, type: int16", f"address: 0, type: {written}")
    found = problems(write, text)
    assert [d.path for d in found] == [("sensors", "p101_vibration", "register", "type")]
    assert found[0].message.endswith(hint)


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("$MAINTAINX_API_KEY", "needs braces: write ${NAME}"),
        ("${maintainx-api-key}", "not a valid reference"),
        ("s3cr3t-k3y", "a secret must not be written in the site file"),
    ],
)
def test_secret_near_misses_never_echo_the_value(write: Write, written: str, fragment: str) -> None:
    text = VALID_SITE.replace('"${MAINTAINX_API_KEY}"', f'"{written}"')
    found = problems(write, text)
    assert [d.path for d in found] == [("forwarding", "maintainx", "api_key")]
    assert fragment in found[0].message and written not in found[0].message


def test_a_zero_stale_after_is_one_error_not_also_a_warning(write: Write) -> None:
    text = VALID_SITE.replace("unit: degC}", "unit: degC, stale_after: 0s}")
    found = problems(write, text)
    assert [(d.path, d.severity) for d in found] == [
        (("sensors", "p101_temp", "stale_after"), "error")
    ]


def test_direct_mode_warns_once_per_asset_without_a_maintainx_id(write: Write) -> None:
    text = VALID_SITE.replace(", maintainx_id: 1001}", "}").replace(
        "forwarding:",
        "  - {id: p101-cold, asset: P-101, sensor: p101_temp, low: {limit: 5}}\nforwarding:",
    )
    found = problems(write, text)
    assert [(d.severity, d.path, d.line) for d in found] == [("warning", ("rules", 0, "asset"), 16)]
    assert "asset `P-101` has no `maintainx_id`" in found[0].message
    # Over MQTT the hub maps assets: nothing to say.
    hub_mode = text.replace(
        'mode: maintainx\n  maintainx: {api_key: "${MAINTAINX_API_KEY}"}',
        "mode: mqtt\n  mqtt: {host: 127.0.0.1}",
    )
    assert problems(write, hub_mode) == []


def test_validate_strict_fails_on_warnings(write: Write) -> None:
    import subprocess
    import sys

    site = write("site.yaml", VALID_SITE.replace(", maintainx_id: 1001}", "}"))
    command = [sys.executable, "-m", "edge_agent", "validate", str(site)]
    lenient = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    strict = subprocess.run(
        [*command, "--strict"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (lenient.returncode, strict.returncode) == (0, 1)
    assert "warning: rules[0].asset" in strict.stdout


def test_a_rate_limit_below_one_register_step_per_poll_is_a_warning(write: Write) -> None:
    """0.1 degC at a 1 s poll is already 6 degC/1m: every change would trip `above: 5`."""
    sensor = "    register: {table: holding, address: 0, type: int16}\n"
    text = VALID_SITE.replace(sensor, sensor + "    scale: {factor: 0.1}\n").replace(
        "forwarding:",
        "  - {id: vib-rate, asset: P-101, sensor: p101_vibration, rate: {above: 5, per: 1m}}\n"
        "  - {id: vib-rate-ok, asset: P-101, sensor: p101_vibration, rate: {above: 7}}\n"
        "  - {id: vib-rate-slow, asset: P-101, sensor: p101_vibration, "
        "rate: {above: 5, per: 10s}}\n"
        "  - {id: vib-rate-window, asset: P-101, sensor: p101_vibration, "
        "rate: {above: 5, per: 1m, window: 30s}}\n"
        "forwarding:",
    )
    found = problems(write, text)
    assert [(d.severity, d.path) for d in found] == [("warning", ("rules", 1, "rate", "above"))]
    assert "(0.1 in one poll of 1s) is already a rate of 6 per 1m, above 5" in found[0].message
