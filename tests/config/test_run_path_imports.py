"""A big site is checked in a child process, so the running agent needs no YAML reader:
finding its state folder and the files to watch must not load ruamel (≈ 2 MiB resident,
issue 16). Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from pathlib import Path
from edge_agent.config.state_dir import state_dir_of
from edge_agent.service.reload import site_files

site = Path(sys.argv[1])
files = [str(path) for path in site_files(site)]
print(json.dumps({"files": files, "ruamel": any(m.startswith("ruamel") for m in sys.modules)}))
"""


def run_probe(site: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(site)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_site_without_includes_is_watched_without_the_yaml_reader(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nsite: {id: plant-07}\n")
    result = run_probe(site)
    assert result == {"files": [str(site)], "ruamel": False}


def test_includes_are_still_followed(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\ninclude: [rules.yaml]\nsite: {id: plant-07}\n")
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    result = run_probe(site)
    assert result["files"] == [str(site), str(tmp_path / "rules.yaml")]
    assert result["ruamel"] is True  # parsed with the loader's own reader
