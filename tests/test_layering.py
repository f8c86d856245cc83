"""The layering contracts ([tool.importlinter] in pyproject.toml) hold on the tree, and
`make lint` would fail on a forbidden import: each case adds one to a copy of the tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
RUN_TIMEOUT_S = 120


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports puts its working directory first on sys.path: the copy is what it reads.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def _copy_tree(destination: Path) -> Path:
    shutil.copytree(
        REPO_ROOT / "edge_agent",
        destination / "edge_agent",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy2(REPO_ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def test_the_tree_keeps_every_contract() -> None:
    done = _lint(REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "contract"),
    [
        ("rules/events.py", "import edge_agent.outbox.store", "Rules import no I/O stage"),
        ("config/units.py", "import socket", "Config connects to nothing"),
        ("hub/kpis.py", "import edge_agent.service.pipeline", "The hub never imports"),
        ("hub/kpis.py", "import edge_agent.sources.modbus.source", "The hub never imports"),
        ("outbox/counts.py", "import edge_agent.forwarders.mqtt", "The outbox never imports"),
        ("service/tasks.py", "import edge_agent.simulators.modbus", "Simulators and the demo"),
        ("common/atomic.py", "import edge_agent.hub.store", "The shared layer imports no"),
        ("maintainx/sync.py", "import edge_agent.outbox.store", "The MaintainX layer imports"),
        ("maintainx/ledger.py", "import edge_agent.hub.store", "The MaintainX layer imports"),
        (
            "hub/consumer.py",
            "import edge_agent.forwarders.maintainx.forwarder",
            "The hub never imports",
        ),
        ("sources/__init__.py", "import edge_agent.rules.engine", "The stages import down"),
    ],
)
def test_a_forbidden_import_breaks_the_lint(
    tmp_path: Path, module: str, forbidden_import: str, contract: str
) -> None:
    tree = _copy_tree(tmp_path)
    path = tree / "edge_agent" / module
    path.write_text(path.read_text() + f"\n{forbidden_import}  # the break under test\n")
    done = _lint(tree)
    assert done.returncode != 0, done.stdout
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout
