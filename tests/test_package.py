"""The package's public surface: the entry point, the version, every subcommand's help."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edge_agent import __version__
from edge_agent.cli import COMMANDS, main
from tests.conftest import REPO_ROOT


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    printed = capsys.readouterr().out.strip()
    assert re.fullmatch(
        rf"edge-agent {re.escape(__version__)} \(commit ([0-9a-f]{{7,40}}|unknown)\)", printed
    )


def test_the_version_has_one_source() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "edge_agent.__version__"
    }


def test_the_commit_is_the_embedded_one_else_git_else_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from edge_agent import build_info

    monkeypatch.setattr(build_info, "_embedded", lambda: None)
    # Running from this checkout: git's answer, when git and the history are there.
    assert re.fullmatch(r"[0-9a-f]{7,40}|unknown", build_info.commit())
    monkeypatch.setattr(build_info, "_from_checkout", lambda: None)
    assert build_info.commit() == "unknown"
    assert build_info.version_line().endswith("(commit unknown)")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: edge-agent" in capsys.readouterr().out


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert __version__ in done.stdout
