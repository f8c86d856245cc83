"""`make sbom`: the CycloneDX SBOM lists exactly the locked set, with its hashes, under our
own component and its SPDX license."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from edge_agent import __version__
from tests.supply.lockfile import LOCKS, REPO_ROOT, read_lock


def make_sbom_command(lock: str, out: Path) -> list[str]:
    """The Makefile's SBOM command for ``lock``, writing to ``out``."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    words = re.search(r"^SBOM = (.*)$", makefile, re.MULTILINE)[1].split()  # type: ignore[index]
    assert words[0] == "$(BIN)/cyclonedx-py"
    tool = str(Path(sys.executable).parent / "cyclonedx-py")
    return [tool, *words[1:], "-o", str(out), f"requirements/{lock}"]


def test_the_sbom_holds_the_locked_set(tmp_path: Path) -> None:
    out = tmp_path / "sbom.json"
    done = subprocess.run(
        make_sbom_command("hub.txt", out),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The Makefile's second step: the release's version on the root component.
    assert "scripts/sbom_version.py dist/" in (REPO_ROOT / "Makefile").read_text()
    stamped = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "sbom_version.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stamped.returncode == 0, stamped.stderr
    sbom = json.loads(out.read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    root = sbom["metadata"]["component"]
    assert root["name"] == "edge-agent"
    # Found in review: the SBOM of a release did not say which release (no version).
    assert root["version"] == __version__
    assert root["licenses"][0]["license"]["id"] == "Apache-2.0"
    pins = read_lock(LOCKS / "hub.txt")
    listed = {c["name"].lower().replace("_", "-"): c for c in sbom["components"]}
    assert {n: c["version"] for n, c in listed.items()} == {n: p.version for n, p in pins.items()}
    for name, component in listed.items():
        assert component["purl"] == f"pkg:pypi/{name}@{pins[name].version}"
        hashes = {
            "sha256:" + h["content"]
            for ref in component["externalReferences"]
            for h in ref.get("hashes", [])
        }
        assert hashes == set(pins[name].hashes)
