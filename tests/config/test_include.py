"""`include:`: files relative to the including file, merged, with errors in their own file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edge_agent.config.diagnostics import format_diagnostic
from edge_agent.config.loader import check_site_files, load_site

from .conftest import VALID_SITE

Write = Callable[..., Path]

PUMP_RULES = """\
# rules owned by the pump team
sensors:
  p101_flow: {connection: plc1, register: {table: input, address: 100, type: float32}}
rules:
  - id: p101-flow-low
    asset: P-101
    sensor: p101_flow
    low: {limit: 80, deadband: 5}
"""


def site_with(include: str) -> str:
    return VALID_SITE.replace("version: 1\n", f"version: 1\ninclude: {include}\n")


def test_included_rules_and_sensors_are_merged(write: Write) -> None:
    write("site/rules/pumps.yaml", PUMP_RULES)
    config = load_site(write("site/site.yaml", site_with("[rules/pumps.yaml]")))
    assert [rule.id for rule in config.rules] == ["p101-hot", "p101-flow-low"]
    assert "p101_flow" in config.sensors


def test_an_error_points_into_the_included_file(write: Write, tmp_path: Path) -> None:
    write("site/rules/pumps.yaml", PUMP_RULES.replace("sensor: p101_flow", "sensor: p101_flwo"))
    _config, diagnostics = check_site_files(
        write("site/site.yaml", site_with("[rules/pumps.yaml]"))
    )
    assert [format_diagnostic(d) for d in diagnostics] == [
        f"{tmp_path}/site/rules/pumps.yaml:7:13: error: rules[1].sensor: "
        "unknown sensor `p101_flwo`; did you mean `p101_flow`?"
    ]


def test_a_yaml_error_in_an_included_file_names_that_file(write: Write) -> None:
    write("rules.yaml", "rules:\n  - id: x\n    asset: [P-101\n")
    _config, diagnostics = check_site_files(write("site.yaml", site_with("rules.yaml")))
    assert len(diagnostics) == 1
    assert diagnostics[0].file.endswith("rules.yaml") and not diagnostics[0].file.endswith(
        "site.yaml"
    )
    # At the `[` that is never closed (line 3), not at the end of the file.
    assert (diagnostics[0].line, diagnostics[0].col) == (3, 12)
    assert "this `[` is never closed" in diagnostics[0].message


def test_an_id_defined_twice_across_files(write: Write) -> None:
    write("more.yaml", "assets:\n  P-101: {name: again}\n")
    _config, diagnostics = check_site_files(write("site.yaml", site_with("more.yaml")))
    assert [(Path(d.file).name, d.line, d.message) for d in diagnostics] == [
        ("more.yaml", 2, "`P-101` is already defined in assets (line 8)")
    ]


def test_duplicate_rule_id_across_files_names_the_other_file(write: Write) -> None:
    write("more.yaml", PUMP_RULES.replace("p101-flow-low", "p101-hot"))
    _config, diagnostics = check_site_files(write("site.yaml", site_with("more.yaml")))
    assert [(Path(d.file).name, d.line) for d in diagnostics] == [("more.yaml", 5)]
    assert "already used by the rule at line 16" in diagnostics[0].message


def test_missing_include_points_at_the_include_line(write: Write) -> None:
    _config, diagnostics = check_site_files(write("site.yaml", site_with("[a.yaml, gone.yaml]")))
    by_message = {d.message: (d.line, d.col) for d in diagnostics}
    assert by_message == {
        "cannot include a.yaml: no such file": (2, 11),
        "cannot include gone.yaml: no such file": (2, 19),
    }


def test_include_cycle_is_an_error_not_a_hang(write: Write) -> None:
    write("a.yaml", "include: b.yaml\n")
    write("b.yaml", "include: a.yaml\n")
    _config, diagnostics = check_site_files(write("site.yaml", site_with("a.yaml")))
    assert [d.message for d in diagnostics] == ["cannot include a.yaml: it includes itself"]


def test_nested_include_is_relative_to_its_own_file(write: Write) -> None:
    write("conf/rules/index.yaml", "include: [pumps/p101.yaml]\n")
    write("conf/rules/pumps/p101.yaml", PUMP_RULES)
    config = load_site(write("conf/site.yaml", site_with("rules/index.yaml")))
    assert [rule.id for rule in config.rules] == ["p101-hot", "p101-flow-low"]


def test_an_included_file_cannot_replace_a_value(write: Write) -> None:
    write("more.yaml", "version: 2\nsite: {id: other}\n")
    _config, diagnostics = check_site_files(write("site.yaml", site_with("more.yaml")))
    assert [(d.line, d.message.split(";")[0]) for d in diagnostics] == [
        (1, "`version` is already set in line 1"),
        (2, "`id` is already defined in site (line 3)"),
    ]


def test_validating_an_included_file_alone_says_what_to_do(write: Write) -> None:
    _config, diagnostics = check_site_files(write("pumps.yaml", PUMP_RULES))
    assert len(diagnostics) == 1
    assert "validate that site file instead" in diagnostics[0].message


def test_include_pattern_in_sorted_order(write: Write) -> None:
    write("rules/b.yaml", PUMP_RULES.replace("p101-flow-low", "b-rule").replace("p101_flow", "fb"))
    write("rules/a.yaml", PUMP_RULES.replace("p101-flow-low", "a-rule").replace("p101_flow", "fa"))
    config = load_site(write("site.yaml", site_with("[rules/*.yaml]")))
    assert [rule.id for rule in config.rules] == ["p101-hot", "a-rule", "b-rule"]


def test_include_pattern_without_matches_is_a_warning(write: Write) -> None:
    config, diagnostics = check_site_files(write("site.yaml", site_with("rules/*.yaml")))
    assert config is not None
    assert [(d.severity, d.message) for d in diagnostics] == [
        ("warning", "include pattern rules/*.yaml matches no file")
    ]


def test_further_files_merge_as_if_included(write: Write) -> None:
    extra = write("elsewhere/pumps.yaml", PUMP_RULES)
    config, diagnostics = check_site_files([write("site.yaml", VALID_SITE), extra])
    assert diagnostics == [] and config is not None
    assert [rule.id for rule in config.rules] == ["p101-hot", "p101-flow-low"]
