"""Embeds the git commit in the built package (``edge_agent/BUILD_COMMIT``), for
``edge-agent --version``. Everything else is in pyproject.toml.

The commit comes from ``EDGE_AGENT_COMMIT`` (the image build passes it: it has no .git),
else from ``git`` in this folder, else it is ``unknown``. Never fails the build.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _commit() -> str:
    given = os.environ.get("EDGE_AGENT_COMMIT", "").strip().lower()
    if re.fullmatch(r"[0-9a-f]{7,40}", given):
        return given[:12]
    try:
        done = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    found = done.stdout.strip()
    return found if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{7,40}", found) else "unknown"


class BuildWithCommit(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install asks git at run time
            target = Path(self.build_lib) / "edge_agent" / "BUILD_COMMIT"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_commit() + "\n", encoding="ascii")

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs: list[str] = super().get_outputs(include_bytecode)
        if not self.editable_mode:
            outputs.append(str(Path(self.build_lib) / "edge_agent" / "BUILD_COMMIT"))
        return outputs


setup(cmdclass={"build_py": BuildWithCommit})
