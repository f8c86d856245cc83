"""Puts the release's version on the root component of CycloneDX SBOMs (`make sbom`).

cyclonedx-py takes the root component from pyproject.toml, whose version is dynamic (its one
source is ``edge_agent.__version__``), so the SBOM said which packages a release holds but
not which release it describes.
    usage: sbom_version.py SBOM.json...
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def version() -> str:
    text = (ROOT / "edge_agent" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if found is None:
        raise SystemExit("sbom_version.py: no __version__ in edge_agent/__init__.py")
    return found[1]


def stamp(path: Path, release: str) -> None:
    sbom = json.loads(path.read_text(encoding="utf-8"))
    sbom["metadata"]["component"]["version"] = release
    path.write_text(json.dumps(sbom, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(paths: list[str]) -> int:
    release = version()
    for name in paths:
        stamp(Path(name), release)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
