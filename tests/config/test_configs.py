"""Every file under configs/ is valid: the demo plant and the examples that document it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config.diagnostics import format_diagnostic
from edge_agent.config.loader import check_site_files
from edge_agent.config.yaml_reader import read_yaml
from edge_agent.hub.config import load_hub

from .conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"


def _included_files() -> set[Path]:
    """Files some other file includes: they are checked through that file."""
    included: set[Path] = set()
    for path in CONFIGS.rglob("*.yaml"):
        data, _source, _problems = read_yaml(path, str(path))
        targets = data.get("include", []) if isinstance(data, dict) else []
        for target in [targets] if isinstance(targets, str) else targets:
            included.add((path.parent / target).resolve())
    return included


INCLUDED = _included_files()
FILES = sorted(p for p in CONFIGS.rglob("*.yaml") if p.resolve() not in INCLUDED)


def _is_hub_file(path: Path) -> bool:
    data, _source, _problems = read_yaml(path, str(path))
    return isinstance(data, dict) and "hub" in data


def test_there_are_configs_to_check() -> None:
    names = {str(p.relative_to(CONFIGS)) for p in FILES}
    assert {"demo/site.yaml", "examples/modbus-tcp.yaml", "examples/include.yaml"} <= names
    assert INCLUDED, "the include example's rule file is found through its includer"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_is_valid(path: Path) -> None:
    if _is_hub_file(path):
        _model, diagnostics = load_hub(path)
    else:
        _config, diagnostics = check_site_files(path)
    assert diagnostics == [], "\n".join(format_diagnostic(d) for d in diagnostics)


def test_demo_site_matches_the_demo_plant() -> None:
    config, _ = check_site_files(CONFIGS / "demo" / "site.yaml")
    assert config is not None
    assert config.site.id == "demo-plant"
    assert set(config.sensors) == {
        "p101_vibration",
        "p101_pressure",
        "p101_flow",
        "p101_running",
        "m201_current",
        "m201_running",
        "p101_bearing_temp",
        "m201_winding_temp",
        "m201_vibration",
    }
    rule_ids = {rule.id for rule in config.rules}
    assert {
        "p101-bearing-hot",
        "p101-vibration-high",
        "m201-winding-hot",
        "p101-pressure-low",
    } <= rule_ids
    assert config.forwarding is not None and config.forwarding.mode == "maintainx"


def test_the_serial_device_key_the_operations_guide_names_exists() -> None:
    """docs/operations.md ("Serial ports") tells the engineer which key takes the udev name;
    a key the loader refuses (`port:` once) sends them from one error to the next."""
    import re

    from edge_agent.config.models import ModbusRtu

    guide = (REPO_ROOT / "docs" / "operations.md").read_text()
    keys = re.findall(r"`(\w+): /dev/[^`]*`", guide)
    assert keys, "the guide names no serial device key"
    fields = {info.alias or name for name, info in ModbusRtu.model_fields.items()}
    assert set(keys) <= fields, keys


def test_the_demo_sites_state_folder_is_not_committed_by_accident() -> None:
    """``edge-agent run configs/demo/site.yaml`` keeps its state next to the site file now
    (``storage.path`` is relative to the site file's folder): git ignores it there too, and
    the file's comment says where it goes (it said "the working directory")."""
    import shutil
    import subprocess

    from edge_agent.config.loader import load_site
    from edge_agent.config.state_dir import state_dir_of

    site = CONFIGS / "demo" / "site.yaml"
    state = state_dir_of(load_site(site), site) / "outbox" / "cache.db"
    git = shutil.which("git")
    if git is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        [git, "check-ignore", "-q", str(state.relative_to(REPO_ROOT))],
        cwd=REPO_ROOT,
        check=False,
    )
    assert ignored.returncode == 0, f"{state} would show up in git status"
    assert "working directory" not in site.read_text(encoding="utf-8")
