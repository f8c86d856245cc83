"""Which build of edge-agent this is: the version and the git commit it was built from.

The version has one source, :data:`edge_agent.__version__` (``pyproject.toml`` reads it). The
commit is written into the package as ``BUILD_COMMIT`` when it is built (``setup.py``: from
``EDGE_AGENT_COMMIT`` or ``git``); a checkout used in place (an editable install) asks git.
Without either it is ``unknown``: ``--version`` never fails.
"""

from __future__ import annotations

import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Final

from edge_agent import __version__

COMMIT_FILE: Final = "BUILD_COMMIT"
UNKNOWN: Final = "unknown"
_COMMIT_RE: Final = re.compile(r"[0-9a-f]{7,40}")
_GIT_TIMEOUT_S: Final = 2.0


def commit() -> str:
    """The commit this package was built from (short hash), or ``unknown``."""
    return _embedded() or _from_checkout() or UNKNOWN


def version_line() -> str:
    """What ``edge-agent --version`` prints."""
    return f"edge-agent {__version__} (commit {commit()})"


def _plausible(text: str) -> str | None:
    text = text.strip()
    return text if _COMMIT_RE.fullmatch(text) else None


def _embedded() -> str | None:
    try:
        text = resources.files("edge_agent").joinpath(COMMIT_FILE).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    return _plausible(text[:64])


def _from_checkout() -> str | None:
    """The commit of the git checkout the package runs from, if it runs from one."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return _plausible(done.stdout[:64]) if done.returncode == 0 else None
