"""Where a site file's relative paths start: light enough for the running agent, which
must not load the YAML reader only to find its state folder."""

from __future__ import annotations

from pathlib import Path


def site_base_dir(path: Path) -> Path:
    """The folder relative paths in a site file are taken from (secrets, certificates)."""
    return Path(path).absolute().parent
