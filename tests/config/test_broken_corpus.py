"""The corpus of broken site files: each holds one mistake engineers really make, and
``expected.json`` names the exact line, column, path and message the validator gives.

A case passes only if the validator reports exactly the expected problems: the mistake,
at the right place, and nothing else (no cascade of follow-on errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.diagnostics import format_diagnostic, format_path
from edge_agent.config.loader import check_site_files

from .conftest import BROKEN

EXPECTED: dict[str, dict[str, Any]] = json.loads(
    (BROKEN / "expected.json").read_text(encoding="utf-8")
)


def test_corpus_is_complete() -> None:
    files = {path.stem for path in BROKEN.glob("*.yaml")}
    assert files == set(EXPECTED), "every broken file has an expectation, and vice versa"
    assert len(files) >= 35


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN)  # diagnostics name the file as given: the bare file name
    config, diagnostics = check_site_files(Path(f"{name}.yaml"))
    expected = EXPECTED[name]["expect"]
    got = [
        {
            "line": d.line,
            "col": d.col,
            "severity": d.severity,
            "path": format_path(d.path),
            "message": d.message,
        }
        for d in diagnostics
    ]
    shown = "\n".join(format_diagnostic(d) for d in diagnostics)
    assert len(got) == len(expected), f"{EXPECTED[name]['mistake']}:\n{shown}"
    for want, have in zip(expected, got, strict=True):
        fragment = want["message"]
        assert fragment in have["message"], shown
        assert {**have, "message": fragment} == want, shown
        assert all(d.file == f"{name}.yaml" for d in diagnostics)
    if any(e["severity"] == "error" for e in expected):
        assert config is None
    else:
        assert config is not None, "warnings alone do not refuse a file"


def test_the_command_prints_every_case_as_file_line_col_severity_path_message() -> None:
    """The whole corpus through `edge-agent validate` in one process: one line per expected
    diagnostic, in the documented format, exit 1, never a traceback."""
    names = sorted(EXPECTED)
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "validate", *(f"{n}.yaml" for n in names)],
        capture_output=True,
        text=True,
        cwd=BROKEN,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    wanted = [
        (f"{name}.yaml:{e['line']}:{e['col']}: {e['severity']}: {e['path']}: ", e["message"])
        for name in names
        for e in EXPECTED[name]["expect"]
    ]
    assert len(lines) == len(wanted), done.stdout
    for prefix, fragment in wanted:
        assert any(line.startswith(prefix) and fragment in line for line in lines), prefix
