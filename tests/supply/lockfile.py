"""Reads the lock files of requirements/ (``uv pip compile --generate-hashes`` output)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
LOCKS = REPO_ROOT / "requirements"
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)")


@dataclass
class Pin:
    name: str
    version: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, Pin]:
    """Pins by canonical name, each with its hashes and what it is there for."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for line in path.read_text().splitlines():
        stripped = line.strip()
        match = _PIN.match(line)
        if match:
            current = Pin(canonicalize_name(match["name"]), match["version"])
            pins[current.name] = current
            in_via = False
        elif current is None:
            continue
        elif stripped.startswith("--hash="):
            current.hashes.append(stripped.removeprefix("--hash=").rstrip(" \\"))
        elif stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                current.via.append(rest)
        elif in_via and stripped.startswith("#"):
            current.via.append(stripped.lstrip("# ").strip())
    return pins
