"""The meters' contract in pyproject.toml holds, and an I/O import in a meter breaks it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_layering import _copy_tree, _lint


@pytest.mark.parametrize(
    ("module", "forbidden_import"),
    [("meters/gauge.py", "import asyncio"), ("meters/counter.py", "import edge_agent.outbox")],
)
def test_an_io_import_in_a_meter_breaks_the_lint(
    tmp_path: Path, module: str, forbidden_import: str
) -> None:
    tree = _copy_tree(tmp_path)
    path = tree / "edge_agent" / module
    path.write_text(path.read_text() + f"\n{forbidden_import}  # the break under test\n")
    done = _lint(tree)
    assert done.returncode != 0, done.stdout
    assert "Meters import no I/O" in done.stdout.split("Broken contracts", 1)[-1], done.stdout
