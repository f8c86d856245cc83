"""``validate`` warns at each ``${VAR}`` of a site file (and its includes) that is unset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.cli import main

from .conftest import VALID_SITE

Write = Callable[..., Path]


def test_an_unset_variable_is_a_warning_with_file_and_line(
    write: Write, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MAINTAINX_API_KEY")
    path = write("site.yaml", VALID_SITE)
    line = next(
        n for n, text in enumerate(VALID_SITE.splitlines(), 1) if "${MAINTAINX_API_KEY}" in text
    )
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{path}:{line}:")
    assert "warning: forwarding.maintainx.api_key: ${MAINTAINX_API_KEY} is not set" in out.out
    assert "1 warning" in out.err

    monkeypatch.setenv("MAINTAINX_API_KEY", "set-now")
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == ""
