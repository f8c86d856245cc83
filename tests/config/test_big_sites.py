"""Big site files: every problem is still reported, and reporting stays cheap."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edge_agent.config.checks import KnownNames
from edge_agent.config.loader import check_site_files

Write = Callable[..., Path]


def big_site(sensors: int, rules: list[str]) -> str:
    lines = [
        "version: 1",
        "site: {id: big}",
        "connections:",
        "  plc1: {protocol: modbus-tcp, host: 127.0.0.1}",
        "assets:",
        "  P-1: {name: pump}",
        "sensors:",
    ]
    lines += [
        f"  s{i}: {{connection: plc1, register: {{table: holding, address: {i}}}}}"
        for i in range(sensors)
    ]
    lines.append("rules:")
    for index, sensor in enumerate(rules):
        lines += [f"  - id: r{index}", "    asset: P-1", f"    sensor: {sensor}"]
        lines.append("    high: {limit: 85}")
    return "\n".join(lines) + "\n"


def test_every_wrong_reference_is_reported_past_the_suggestion_budget(write: Write) -> None:
    sensors = 3_000
    wrong = [f"x{i}" for i in range(250)]
    _config, diagnostics = check_site_files(write("site.yaml", big_site(sensors, wrong)))
    unknown = [d for d in diagnostics if "unknown sensor" in d.message]
    assert [d.path for d in unknown] == [("rules", i, "sensor") for i in range(len(wrong))]
    assert [d.line for d in unknown] == [sensors + 11 + 4 * i for i in range(len(wrong))]
    # Within the budget each unknown name gets its nearest (when one is near enough);
    # past it, the known names.
    looked_up = KnownNames.BUDGET // sensors
    assert "`x15`; did you mean `s15`?" in unknown[15].message
    assert all("(known: s0, s1, s10" in d.message for d in unknown[looked_up:])
    assert all("did you mean" not in d.message for d in unknown[looked_up:])


def test_one_misspelling_repeated_is_looked_up_once(write: Write) -> None:
    sensors = 3_000
    wrong = ["s12x"] * 250  # one lookup: far more would exceed the budget
    _config, diagnostics = check_site_files(write("site.yaml", big_site(sensors, wrong)))
    unknown = [d for d in diagnostics if "unknown sensor" in d.message]
    assert len(unknown) == len(wrong)
    assert all(d.message.endswith("did you mean `s12`?") for d in unknown)
