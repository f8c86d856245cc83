"""The loader: marks, duplicate keys, YAML 1.1 words, files that are not site files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config.diagnostics import (
    ConfigError,
    Diagnostic,
    format_diagnostic,
    format_path,
    summarize,
)
from edge_agent.config.loader import (
    check_site_files,
    load_document,
    load_model,
    load_site,
    site_base_dir,
)
from edge_agent.config.models import SiteConfig
from edge_agent.config.yaml_reader import parse_yaml

from .conftest import VALID_SITE

Write = Callable[..., Path]


def test_valid_site_loads(write: Write) -> None:
    config = load_site(write("site.yaml", VALID_SITE))
    assert config.site.id == "plant-07"
    assert config.rules[0].on_delay == 5_000_000_000
    assert config.sensors["p101_vibration"].register_ is not None


@pytest.mark.parametrize("written", ["high", "High", " HIGH "])
def test_priority_is_read_whatever_its_case(write: Write, written: str) -> None:
    text = VALID_SITE.replace(
        "    on_delay: 5s\n",
        f"    on_delay: 5s\n    priority: '{written}'\n"
        "    escalate: [{above: 95, priority: high}]\n",
    )
    rule = load_site(write("site.yaml", text)).rules[0]
    assert rule.priority == "HIGH" and rule.escalate[0].priority == "HIGH"


def test_format_is_file_line_col_severity_path_message() -> None:
    diagnostic = Diagnostic("site.yaml", 12, 5, "error", ("rules", 0, "high", "limit"), "bad")
    assert format_diagnostic(diagnostic) == "site.yaml:12:5: error: rules[0].high.limit: bad"
    assert format_path(()) == "(file)"


def test_summary_counts_errors_and_warnings() -> None:
    error = Diagnostic("a.yaml", 1, 1, "error", (), "x")
    warning = Diagnostic("a.yaml", 2, 1, "warning", (), "y")
    assert summarize([error, error, warning], ["a.yaml"]) == "2 errors, 1 warning in a.yaml"
    assert summarize([], ["a.yaml"]) == "no problems in a.yaml"


def test_every_value_has_its_line_and_column() -> None:
    data, source, problems = parse_yaml("a:\n  b: [1, {c: x}]\n", "f.yaml")
    assert problems == []
    assert data == {"a": {"b": [1, {"c": "x"}]}}
    mark = source.values[("a", "b", 1, "c")]
    assert (mark.line, mark.col) == (2, 14)
    assert source.keys[("a", "b")].col == 3


def test_all_duplicate_keys_are_reported_at_the_second_key(write: Write) -> None:
    text = VALID_SITE.replace(
        "  P-101: {name:", "  P-101: {name: one}\n  P-101: {name: two}\n  P-102: {name:"
    ).replace("    on_delay: 5s\n", "    on_delay: 5s\n    on_delay: 6s\n")
    _config, diagnostics = check_site_files(write("site.yaml", text))
    duplicates = [d for d in diagnostics if "duplicate key" in d.message]
    assert [(d.line, d.col, d.path) for d in duplicates] == [
        (8, 3, ("assets", "P-101")),
        (22, 5, ("rules", 0, "on_delay")),
    ]
    assert "first at line 7" in duplicates[0].message


@pytest.mark.parametrize(
    ("written", "meant"), [("on", "true"), ("off", "false"), ("yes", "true"), ("No", "false")]
)
def test_yaml11_boolean_words_where_a_bool_goes(write: Write, written: str, meant: str) -> None:
    text = VALID_SITE.replace("    on_delay: 5s\n", f"    on_delay: 5s\n    inclusive: {written}\n")
    _config, diagnostics = check_site_files(write("site.yaml", text))
    assert [d.message for d in diagnostics] == [
        f"`{written}` is text in YAML 1.2, not a boolean; write {meant}"
    ]


def test_quoted_yaml11_word_is_text_on_purpose(write: Write) -> None:
    text = VALID_SITE.replace('name: "Pump P-101"', 'name: "on"')
    text = text.replace("high: {limit: 85, deadband: 3}", 'equals: "on"')
    config, diagnostics = check_site_files(write("site.yaml", text))
    assert diagnostics == []
    assert config is not None and config.rules[0].equals == "on"


def test_yaml11_word_in_a_text_field_is_fine(write: Write) -> None:
    config, diagnostics = check_site_files(
        write("site.yaml", VALID_SITE.replace('"Pump P-101"', "no"))
    )
    assert diagnostics == [] and config is not None
    assert config.assets["P-101"].name == "no"


def test_anchors_and_merge_keys(write: Write) -> None:
    text = VALID_SITE.replace(
        "  plc1: {protocol: modbus-tcp, host: 127.0.0.1, port: 15020}",
        "  plc1: &plc {protocol: modbus-tcp, host: 127.0.0.1, port: 15020}\n"
        "  plc2: {<<: *plc, port: 15021}",
    )
    config = load_site(write("site.yaml", text))
    plc2 = config.connections["plc2"]
    assert plc2.protocol == "modbus-tcp" and plc2.port == 15021


def test_an_alias_that_contains_itself_is_an_error(write: Write) -> None:
    _config, diagnostics = check_site_files(write("site.yaml", VALID_SITE + "x: &a [*a]\n"))
    assert any("refers to the mapping or list that contains it" in d.message for d in diagnostics)


def test_alias_bomb_is_refused(write: Write) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    _config, diagnostics = check_site_files(write("site.yaml", "\n".join(lines) + "\n"))
    assert [d.message for d in diagnostics] == ["holds more than 200000 values (alias bomb?)"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "is a binary file"),
        (b"site:\n  name: M\xfcnchen\n", "is not UTF-8 text (byte 0xfc)"),
        ("just some words\n", "its top level is a single value"),
        ("- a\n- b\n", "its top level is a list"),
        ("a: b: c\n", "not valid YAML: mapping values are not allowed here"),
        ("a: 1\x07\n", "contains the control character U+0007"),
        ("[" * 5000, "nested"),
    ],
)
def test_not_a_site_file_is_one_clear_error(
    write: Write, content: str | bytes, message: str
) -> None:
    path = write("site.yaml", content)
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    assert len(caught.value.diagnostics) == 1
    assert message in caught.value.diagnostics[0].message
    assert caught.value.diagnostics[0].file == str(path)


def test_non_utf8_points_at_the_byte(write: Write) -> None:
    _config, diagnostics = check_site_files(write("site.yaml", b"version: 1\nname: M\xfcnchen\n"))
    assert (diagnostics[0].line, diagnostics[0].col) == (2, 8)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    _config, missing = check_site_files(tmp_path / "nope.yaml")
    _config, folder = check_site_files(tmp_path)
    assert [d.message for d in missing] == ["no such file"]
    assert "is a directory" in folder[0].message


def test_warnings_alone_keep_the_config(write: Write) -> None:
    text = VALID_SITE.replace("deadband: 3}", "deadband: 90}")
    config, diagnostics = check_site_files(write("site.yaml", text))
    assert config is not None
    assert [d.severity for d in diagnostics] == ["warning"]
    assert load_site(write("again.yaml", text)) == config


def test_load_site_raises_with_every_error(write: Write) -> None:
    text = VALID_SITE.replace("on_delay: 5s", "on_delay: 5").replace("port: 15020", "port: 0")
    with pytest.raises(ConfigError) as caught:
        load_site(write("site.yaml", text))
    assert [d.path for d in caught.value.errors] == [
        ("connections", "plc1", "port"),
        ("rules", 0, "on_delay"),
    ]
    assert str(caught.value).count("\n") == 1


def test_missing_key_points_at_its_parent(write: Write) -> None:
    text = VALID_SITE.replace('name: "Pump P-101", maintainx_id: 1001', "maintainx_id: 1001")
    _config, diagnostics = check_site_files(write("site.yaml", text))
    assert [(d.line, d.col, d.path, d.message) for d in diagnostics] == [
        (7, 3, ("assets", "P-101", "name"), "`name` is required")
    ]


def test_union_of_values_gets_one_message(write: Write) -> None:
    text = VALID_SITE.replace("high: {limit: 85, deadband: 3}", "equals: [1, 2]")
    _config, diagnostics = check_site_files(write("site.yaml", text))
    assert [d.message for d in diagnostics] == [
        "expected true or false, a number or text, got a list"
    ]


def test_load_model_works_for_other_models(write: Write) -> None:
    """The hub reuses the machinery with its own model and checks."""
    from pydantic import BaseModel, ConfigDict

    class Tiny(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str
        port: int = 1

    def check(doc: object) -> list[Diagnostic]:
        return []

    model, diagnostics = load_model(write("tiny.yaml", "name: x\nprot: 2\n"), Tiny, [check])
    assert model is None
    assert [(d.line, d.message) for d in diagnostics] == [
        (2, "unknown key `prot`; did you mean `port`?")
    ]


def test_base_dir_is_the_site_files_folder(tmp_path: Path) -> None:
    assert site_base_dir(tmp_path / "etc" / "site.yaml") == (tmp_path / "etc").absolute()


def test_document_exposes_marks_for_checks(write: Write) -> None:
    doc, problems = load_document(write("site.yaml", VALID_SITE))
    assert doc is not None and problems == []
    mark = doc.mark(("rules", 0, "high", "limit"))
    assert (mark.line, mark.col) == (18, 19)
    assert doc.get("rules", 0, "sensor") == "p101_temp"
    assert doc.get("rules", 5, "sensor") is None
    assert SiteConfig.model_validate(doc.data).site.id == "plant-07"


def test_an_empty_value_points_at_its_key_not_the_next_line(write: Write) -> None:
    text = "version: 1\nsite: {id: plant-07}\nassets:\nrules:\n  - id:\n    asset: P-101\n"
    _config, diagnostics = check_site_files(write("site.yaml", text))
    found = {(d.line, d.col, format_path(d.path), d.message) for d in diagnostics}
    assert (
        3,
        1,
        "assets",
        "`assets:` is empty: indent its entries under it, write `assets: {}`, or remove the line",
    ) in found
    assert (5, 5, "rules[0].id", "expected text, got nothing (null)") in found


def test_a_reused_anchor_is_our_warning_not_library_noise(
    write: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    text = VALID_SITE.replace("assets:\n", "defaults: &x {poll: 2s}\nassets:\n").replace(
        "site: {", "site: &x {"
    )
    _config, diagnostics = check_site_files(write("site.yaml", text))
    assert [(d.line, d.col, d.severity) for d in diagnostics] == [(6, 11, "warning")]
    assert diagnostics[0].message.startswith("anchor &x is defined again (first at line 2)")
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ('site: {id: a, name: "Plant 7}\nb: 1\n', 1, 21, "quoted text is never closed"),
        ("site: {id: a\n", 1, 7, "this `{` is never closed: add `}`"),
        ("rules: [a, b\n", 1, 8, "this `[` is never closed: add `]`"),
        ("s: {connection: c register: 1}\n", 1, 27, "a ',' or '}' is missing before this"),
        ("site: {name: 'it's'}\n", 1, 18, "a ' inside '...' is written ''"),
        ("site: {name: @home}\n", 1, 14, "a value cannot start with @: put it in quotes"),
        ("site:\n  id: a\n   name: b\n", 3, 8, "or the indentation is off"),
        ("site:\n  id: a\n name: b\n", 3, 2, "indented differently from the lines before"),
    ],
)
def test_syntax_slips_in_plain_words_where_the_fix_goes(
    text: str, line: int, col: int, fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "site.yaml")
    (problem,) = caught.value.diagnostics
    assert (problem.line, problem.col) == (line, col), problem.message
    assert fragment in problem.message
    assert "<" not in problem.message, "no parser token names such as <stream end>"
