"""The package installed the way a user installs it: a fresh virtual environment and
``pip install <repo>`` with no extras. Whatever the agent imports at run time and the
package does not declare (pyserial for Modbus RTU was one) is missing there.

One environment for the whole session: building it costs ~20 s. pip may use the
machine's configured index and cache, as a user's pip would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# What a clean checkout does not hold: local environments, build output, caches.
_NOT_IN_A_CHECKOUT = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "tests",
)


@pytest.fixture(scope="session")
def installed_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``bin/`` folder of a fresh venv holding ``edge-agent`` installed from this
    repository without extras."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "edge-agent"
    shutil.copytree(REPO_ROOT, source, ignore=_NOT_IN_A_CHECKOUT, symlinks=True)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"pip install of the package failed:\n{done.stdout}\n{done.stderr}")
    yield venv / "bin"
