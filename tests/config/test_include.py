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


# A file that is not the plant's: its lines parse as YAML keys and used to be printed back
# as "unknown key `root`" with the hash after it.
FOREIGN = "root:$6$Zx9SECRETHASH:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"


def test_an_absolute_include_outside_the_site_folder_is_refused_unread(
    write: Write, tmp_path: Path
) -> None:
    foreign = write("etc/shadow", FOREIGN)
    site = write("site/site.yaml", site_with(f"[{foreign}]"))
    _config, diagnostics = check_site_files(site)
    shown = "\n".join(format_diagnostic(d) for d in diagnostics)
    assert [(d.file, d.line, d.col, d.message) for d in diagnostics] == [
        (
            str(site),
            2,
            11,
            f"cannot include {foreign}: it is outside the site file's folder "
            f"({tmp_path / 'site'}); to include files from another folder, name it with "
            "`include_root:`",
        )
    ]
    assert "SECRETHASH" not in shown and "daemon" not in shown


def test_a_glob_of_a_foreign_folder_is_refused_as_a_whole(write: Write, tmp_path: Path) -> None:
    write("etc/shadow", FOREIGN)
    write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    site = write("site/site.yaml", site_with(f'["{tmp_path}/etc/*"]'))
    _config, diagnostics = check_site_files(site)
    assert len(diagnostics) == 1
    assert diagnostics[0].message.startswith(f"cannot include {tmp_path}/etc/*: it is outside")
    assert "/bin/bash" not in diagnostics[0].message and "SECRETHASH" not in diagnostics[0].message


def test_a_relative_path_out_of_the_tree_needs_include_root(write: Write) -> None:
    write("shared/pumps.yaml", PUMP_RULES)
    site = write("site/site.yaml", site_with("[../shared/pumps.yaml]"))
    _config, diagnostics = check_site_files(site)
    assert [d.message.split(":")[0] for d in diagnostics] == ["cannot include ../shared/pumps.yaml"]
    site.write_text(site.read_text().replace("version: 1\n", "version: 1\ninclude_root: ..\n"))
    config = load_site(site)
    assert [rule.id for rule in config.rules] == ["p101-hot", "p101-flow-low"]


def test_a_symbolic_link_out_of_the_tree_is_refused(write: Write) -> None:
    foreign = write("etc/shadow", FOREIGN)
    site = write("site/site.yaml", site_with("[rules/*.yaml]"))
    (site.parent / "rules").mkdir()
    (site.parent / "rules" / "pumps.yaml").symlink_to(foreign)
    _config, diagnostics = check_site_files(site)
    assert [d.message.split(":")[0] for d in diagnostics] == ["cannot include rules/pumps.yaml"]
    assert "SECRETHASH" not in diagnostics[0].message


def test_include_root_belongs_to_the_site_file_only(write: Write) -> None:
    write("site/rules/pumps.yaml", "include_root: /\n" + PUMP_RULES)
    _config, diagnostics = check_site_files(
        write("site/site.yaml", site_with("[rules/pumps.yaml]"))
    )
    assert [(Path(d.file).name, d.line, d.message.split(":")[0]) for d in diagnostics] == [
        ("pumps.yaml", 1, "`include_root")
    ]
