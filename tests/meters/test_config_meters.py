"""The ``meters:`` section: valid entries load, and each mistake is reported with its file,
line and field, as `edge-agent validate` prints it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config.diagnostics import format_diagnostic
from edge_agent.config.loader import check_site_files
from edge_agent.config.models.meters import MeterKind, pm_amount
from tests.config.conftest import VALID_SITE

# The valid site of the config tests, with two more Modbus sensors and an asset with no
# MaintainX id.
SITE = VALID_SITE.replace(
    "  p101_running: {connection: plc1, register: {table: coil, address: 16}}\n",
    "  p101_running: {connection: plc1, register: {table: coil, address: 16}}\n"
    "  p101_strokes: {connection: plc1, register: {table: holding, address: 10, type: uint32}}\n"
    "  p101_flow: {connection: plc1, register: {table: holding, address: 20, type: float32}}\n",
).replace(
    '  P-101: {name: "Pump P-101", maintainx_id: 1001}\n',
    '  P-101: {name: "Pump P-101", maintainx_id: 1001}\n  F-2: {name: "Fan F-2"}\n',
)

GOOD_METERS = """\
meters:
  p101-run-hours:
    asset: P-101
    kind: run_hours
    sensor: p101_running
    every: 1m
    max_gap: 2m
    pm: {every: 500h, title: "P-101 500 h service", procedure_template_id: 12}
  p101-starts: {asset: P-101, kind: starts, sensor: p101_running, pm: {every: 1000, title: x}}
  p101-strokes: {asset: P-101, kind: counter, sensor: p101_strokes, bits: 32, max_step: 5000}
  p101-temp:
    asset: P-101
    kind: gauge
    sensor: p101_temp
    deadband: 0.5
    above: 90
    below: 5
    maintainx_meter_id: 53
"""


def diagnose(tmp_path: Path, meters: str) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(SITE + meters, encoding="utf-8")
    _config, diagnostics = check_site_files(path)
    lines = [format_diagnostic(d) for d in diagnostics if d.path[:1] == ("meters",)]
    return [line.removeprefix(str(tmp_path) + "/") for line in lines]


def test_good_meters_load(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE + GOOD_METERS, encoding="utf-8")
    config, diagnostics = check_site_files(path)
    assert config is not None, diagnostics
    meters = config.meters
    assert list(meters) == ["p101-run-hours", "p101-starts", "p101-strokes", "p101-temp"]
    run_hours = meters["p101-run-hours"]
    assert run_hours.kind is MeterKind.RUN_HOURS and run_hours.every == 60 * 10**9
    assert run_hours.pm is not None and run_hours.pm.amount == 500.0
    assert run_hours.pm.procedure_template_id == 12
    assert run_hours.maintainx_unit(None) == "Hours"
    assert meters["p101-strokes"].bits == 32
    assert meters["p101-temp"].maintainx_unit("degC") == "degC"
    assert meters["p101-temp"].every == 5 * 60 * 10**9  # the default


@pytest.mark.parametrize(
    ("meters", "expected"),
    [
        (
            "meters:\n  m: {asset: P-101, kind: gauge, sensor: p101_tmp}\n",
            "site.yaml:27:42: error: meters.m.sensor: unknown sensor `p101_tmp`; "
            "did you mean `p101_temp`?",
        ),
        (
            "meters:\n  m: {asset: P-102, kind: gauge, sensor: p101_temp}\n",
            "site.yaml:27:14: error: meters.m.asset: unknown asset `P-102`; did you mean `P-101`?",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: counter, sensor: p101_flow}\n",
            "site.yaml:27:44: error: meters.m.sensor: a counter counts whole numbers but "
            "sensor `p101_flow` is float32: use an integer register, or a gauge",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: counter, sensor: p101_strokes, bits: 16}\n",
            "site.yaml:27:64: error: meters.m.bits: sensor `p101_strokes` is uint32 (32 bits): "
            "it rolls over at 2^32, not 2^16",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: gauge, sensor: p101_temp, bits: 16}\n",
            "site.yaml:27:53: error: meters.m.bits: `bits` is for counter meters, not gauge",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: run_hours, sensor: p101_running, above: 5}\n",
            "site.yaml:27:60: error: meters.m.above: `above` is for gauge meters, not run_hours",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: run_hours, sensor: p101_running,"
            " pm: {every: 500, title: x}}\n",
            "site.yaml:27:72: error: meters.m.pm.every: a run-hours PM is a run time with a "
            "unit, e.g. 500h, not a bare number",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: starts, sensor: p101_running,"
            " pm: {every: 10h, title: x}}\n",
            "site.yaml:27:69: error: meters.m.pm.every: a starts PM is a count (e.g. 10000), "
            "not a time",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: gauge, sensor: p101_temp, above: 5, below: 10}\n",
            "site.yaml:27:60: error: meters.m.above: `above: 5` is not above `below: 10`: one "
            "of the triggers would always hold",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: run_hours, sensor: p101_running, max_gap: 500ms}\n",
            "site.yaml:27:69: error: meters.m.max_gap: max_gap 500ms is shorter than the "
            "sensor's poll (1s): no interval would ever count as run time",
        ),
        (
            "meters:\n  m: {asset: F-2, kind: gauge, sensor: p101_temp}\n",
            "site.yaml:27:14: warning: meters.m.asset: asset `F-2` has no `maintainx_id`: the "
            "meter would be created on no asset in MaintainX, and its PM work orders on none",
        ),
    ],
)
def test_each_mistake_is_reported_where_it_was_written(
    tmp_path: Path, meters: str, expected: str
) -> None:
    assert diagnose(tmp_path, meters) == [expected]


@pytest.mark.parametrize(
    ("meters", "fragment"),
    [
        ("meters:\n  m: {asset: P-101, kind: totaliser, sensor: p101_temp}\n", "meters.m.kind"),
        (
            "meters:\n  m: {asset: P-101, kind: counter, sensor: p101_strokes, bits: 24}\n",
            "16, 32 or 64",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: gauge, sensor: p101_temp, every: 5}\n",
            "needs a unit",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: gauge, sensor: p101_temp, deadband: -1}\n",
            "meters.m.deadband",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: gauge, sensor: p101_temp, evry: 5m}\n",
            "meters.m.evry",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: starts, sensor: p101_running,"
            " pm: {every: 0, title: x}}\n",
            "more than 0",
        ),
        # Beyond what a plant data message carries: every reading would be dead-lettered.
        (
            "meters:\n  m: {asset: P-101, kind: gauge, sensor: p101_temp, above: 1e308}\n",
            "meters.m.above: 1e+308 is beyond what MaintainX is sent",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: gauge, sensor: p101_temp, below: -1e16}\n",
            "meters.m.below: -1e+16 is beyond",
        ),
        (
            "meters:\n  m: {asset: P-101, kind: starts, sensor: p101_running,"
            " pm: {every: 1e308, title: x}}\n",
            "meters.m.pm.every: 1e+308 is beyond",
        ),
    ],
)
def test_single_values_are_checked_by_the_model(tmp_path: Path, meters: str, fragment: str) -> None:
    found = diagnose(tmp_path, meters)
    assert any(fragment in line and ": error: " in line for line in found), found


def test_one_maintainx_meter_is_claimed_once(tmp_path: Path) -> None:
    found = diagnose(
        tmp_path,
        "meters:\n"
        "  a: {asset: P-101, kind: gauge, sensor: p101_temp, maintainx_meter_id: 53}\n"
        "  b: {asset: P-101, kind: gauge, sensor: p101_temp, maintainx_meter_id: 53}\n",
    )
    assert found == [
        "site.yaml:28:73: error: meters.b.maintainx_meter_id: MaintainX meter 53 is already "
        "meter `a`'s: two meters would send readings into one"
    ]


@pytest.mark.parametrize(
    ("every", "amount"), [("500h", 500.0), ("10000h", 10000.0), ("30d", 720.0), (250, 250.0)]
)
def test_pm_amounts_in_the_meters_unit(every: str | int, amount: float) -> None:
    assert pm_amount(every) == amount


@pytest.mark.parametrize("every", ["0h", "soon", True, -5])
def test_bad_pm_amounts(every: object) -> None:
    with pytest.raises(ValueError):
        pm_amount(every)  # type: ignore[arg-type]


def test_the_gap_bound_defaults_to_three_polls(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE + GOOD_METERS, encoding="utf-8")
    config, _ = check_site_files(path)
    assert config is not None
    assert config.meters["p101-run-hours"].gap_bound(10**9) == 120 * 10**9  # its max_gap
    assert config.meters["p101-starts"].gap_bound(2 * 10**9) == 6 * 10**9


def test_two_meters_of_one_maintainx_name_on_one_asset(tmp_path: Path) -> None:
    """A meter is found again by its name on its asset: two of one name would be one."""
    found = diagnose(
        tmp_path,
        "meters:\n"
        "  a: {asset: P-101, kind: gauge, sensor: p101_temp, name: Temp}\n"
        "  b: {asset: P-101, kind: gauge, sensor: p101_temp, name: Temp}\n"
        "  c: {asset: F-2, kind: gauge, sensor: p101_temp, name: Temp}\n",
    )
    assert [line for line in found if "error" in line] == [
        "site.yaml:28:59: error: meters.b.name: meter `a` has the MaintainX name `Temp` on "
        "asset `P-101` too: a meter is found by its name, so both would send into one"
    ]


def _downtime(tmp_path: Path, asset_line: str) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(
        SITE.replace('  P-101: {name: "Pump P-101", maintainx_id: 1001}\n', asset_line),
        encoding="utf-8",
    )
    _config, diagnostics = check_site_files(path)
    lines = [format_diagnostic(d) for d in diagnostics if d.path[:1] == ("assets",)]
    return [line.removeprefix(str(tmp_path) + "/") for line in lines]


def test_asset_downtime_names_a_running_sensor(tmp_path: Path) -> None:
    good = '  P-101: {name: "Pump P-101", maintainx_id: 1001, downtime: {running: p101_running}}\n'
    assert _downtime(tmp_path, good) == []
    typo = good.replace("p101_running}", "p101_runing}")
    [line] = _downtime(tmp_path, typo)
    assert ": error: assets.P-101.downtime.running: unknown sensor `p101_runing`" in line
    assert "did you mean `p101_running`?" in line
    unlinked = '  P-101: {name: "Pump P-101", downtime: {running: p101_running}}\n'
    [line] = _downtime(tmp_path, unlinked)
    assert ": warning: assets.P-101.downtime: asset `P-101` has no `maintainx_id`" in line
    extra = good.replace("{running: p101_running}", "{running: p101_running, stopped: x}")
    assert any("assets.P-101.downtime.stopped" in line for line in _downtime(tmp_path, extra))


def test_asset_downtime_from_a_rule_of_the_asset(tmp_path: Path) -> None:
    line = '  P-101: {name: "Pump P-101", maintainx_id: 1001, downtime: {rule: %s}}\n'
    [warning] = _downtime(tmp_path, line % "p101-hot")
    assert ": warning: assets.P-101.downtime.rule: rule `p101-hot` is not priority HIGH" in warning
    [error] = _downtime(tmp_path, line % "p101-hott")
    assert "unknown rule `p101-hott`; did you mean `p101-hot`?" in error
    both = line.replace("{rule: %s}", "{rule: p101-hot, running: p101_running}")
    assert any("one of `running`" in found for found in _downtime(tmp_path, both))


def test_downtime_min_duration_is_bounded_where_it_was_written(tmp_path: Path) -> None:
    line = (
        '  P-101: {name: "Pump P-101", maintainx_id: 1001,'
        " downtime: {running: p101_running, min_duration: %s}}\n"
    )
    assert _downtime(tmp_path, line % "30s") == []
    assert _downtime(tmp_path, line % "0s") == []
    [long] = _downtime(tmp_path, line % "2h")
    assert long.startswith("site.yaml:7:") and "longer than 1h" in long
    assert ": error: assets.P-101.downtime.min_duration:" in long
    [bad] = _downtime(tmp_path, line % "soon")
    assert "assets.P-101.downtime.min_duration" in bad
