"""The C parser is only a fast path: for any text, loading with it gives exactly what the
pure-Python parser gives (data, every mark, every problem, every error message)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge_agent.config import yaml_fast
from edge_agent.config.diagnostics import ConfigError
from edge_agent.config.yaml_reader import parse_yaml

needs_c = pytest.mark.skipif(not yaml_fast.available(), reason="ruamel.yaml.clib not installed")

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted(
    path
    for folder in ("tests/config/broken", "configs", "edge_agent/demo", "tests/testcases")
    for path in (ROOT / folder).rglob("*.yaml")
)

SNIPPETS = [
    "",
    "# only a comment\n",
    "---\n",
    "a: on\nb: yes\nc: 0o17\nd: 010\ne: 1_000\nf: 1:20\ng: .inf\nh: ~\ni:\nj: 'x'\n",
    "k: 2020-01-01\nl: 0x1F\nm: .NaN\nn: -.5e3\no: +12\np: TRUE\nq: Null\nr: 0b101\n",
    "defaults: &d {poll: 1s, unit: bar}\ns1:\n  <<: *d\n  unit: mbar\ns2: {<<: [*d], x: 1}\n",
    "a: &x 1\nb: &x 2\nc: *x\n",  # a reused anchor: a warning
    "a: *nowhere\n",
    "a: &loop [*loop]\n",
    "a: 1\na: 2\nb: {c: 1, c: 2}\na: 3\n",
    "q: !!str 5\nr: !!int x\ns: !custom 1\nt: !!binary aGk=\n",
    "? [a, b]\n: 1\n{x: 1}: 2\n",
    "p: |\n  x\n  y\nf: >-\n  folded\n  text\n",
    'name: "ü °C"\nüber: 3\n',
    "a: 1\r\nb:\r\n  - x\r\n  - y\r\n",
    "a: 1\n---\nb: 2\n",
    "%YAML 1.1\n---\na: on\n",
    "a: 1\x85b: 2\n",
    "a:\n\t- 1\n",
    "a: b: c\n",
    "a: [1, 2\n",
    "a: {x: 1 y: 2}\n",
    "a: 'unclosed\n",
    "a: @x\n",
    "- a\nb: 1\n",
    "a:\n  b: 1\n c: 2\n",
    "items:\n- a\n- b\nnext: 1\n",
    "- - - x\n  - y\n- {a: [1, {b: c}]}\n",
    "[" * 100 + "]" * 100,
    "[" * 5000,
    "[" * 5000 + "]" * 5000,
    "a:" + " [" * 70 + " 1" + " ]" * 70 + "\n",
    "x: ${SECRET}\ny: {z: ${OTHER}}\n",
]


def outcome(text: str, *, fast: bool) -> Any:
    """Everything the reader returns, or the complete error, in comparable form."""
    try:
        data, source, problems = parse_yaml(text, "site.yaml", fast=fast)
    except ConfigError as exc:
        return ("error", exc.diagnostics)
    return ("ok", repr(data), source, problems)


@needs_c
@pytest.mark.parametrize("text", SNIPPETS, ids=range(len(SNIPPETS)))
def test_snippets_read_the_same_fast_and_pure(text: str) -> None:
    assert outcome(text, fast=True) == outcome(text, fast=False)


@needs_c
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(ROOT)))
def test_project_files_read_the_same_fast_and_pure(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", errors="replace")
    assert outcome(text, fast=True) == outcome(text, fast=False)


# Pieces of YAML, so that most texts are nearly valid and reach deep into both parsers.
PIECES = [
    *"ab1.-_:,[]{}'\"#&*!|>?%@~< \n\t",
    *["ü", "\r\n", "\n  ", "\n    ", ": ", "- ", "? ", "key", "on", "0o7", "1.5", "~", "null"],
    *["&x ", "*x", "<<: ", "!!str ", "!!int ", "!t ", "|\n", ">-\n", "---\n", "...\n", "${S}"],
]
YAMLISH = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@needs_c
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
@example("a: &x [1]\nb: *x\n<<: *x\n")
@example("a:\n  - b\n  -\n  - c: ~\n")
def test_any_text_reads_the_same_fast_and_pure(text: str) -> None:
    assert outcome(text, fast=True) == outcome(text, fast=False)


@needs_c
def test_a_plain_site_takes_the_fast_path() -> None:
    composed, root = yaml_fast.compose_fast("version: 1\nsensors:\n  s1: {connection: plc}\n")
    assert composed
    assert root is not None


@needs_c
def test_deep_nesting_goes_to_the_pure_parser_instead_of_the_c_stack() -> None:
    # 100,000 levels overflow the C composer's stack and kill the process.
    deep = "[" * 100_000 + "]" * 100_000
    assert yaml_fast.compose_fast(deep) == (False, None)
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_yaml(deep, "site.yaml")
