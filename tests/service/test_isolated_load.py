"""The site check in a child process gives the same result as the check in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config.diagnostics import format_diagnostic
from edge_agent.config.loader import check_site_files
from edge_agent.service import isolated_load
from tests.conftest import REPO_ROOT


@pytest.fixture(autouse=True)
def _always_isolate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolated_load, "ISOLATE_ABOVE_BYTES", 0)


def test_child_check_returns_the_same_config_with_secret_references_kept() -> None:
    site = REPO_ROOT / "configs" / "demo" / "site.yaml"
    config, diagnostics, files = isolated_load.check_isolated(site)
    expected, expected_diagnostics = check_site_files([site])
    assert config is not None and config == expected
    assert diagnostics == expected_diagnostics
    assert files == [site]
    assert config.forwarding is not None and config.forwarding.maintainx is not None
    assert config.forwarding.maintainx.api_key == "${MAINTAINX_API_KEY}"


async def test_child_check_reports_errors_like_validate(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nsite: {id: ok}\nrules:\n  - {id: r, asset: a}\n")
    config, diagnostics, _ = await isolated_load.check_isolated_async(site)
    _, expected = check_site_files([site])
    assert config is None
    assert [format_diagnostic(d) for d in diagnostics] == [format_diagnostic(d) for d in expected]
    assert any(d.is_error for d in diagnostics)
