"""httpx without its command-line tool.

``import httpx`` also imports ``httpx._main`` (its ``httpx`` command) when click, rich and
pygments are installed, as they are here: about a hundred modules and 6 MiB that stay
resident in every agent and hub for nothing (issue 16). Importing httpx through this
module makes that one import fail, which httpx expects (it then defines a stub ``main``);
``httpx._main`` stays importable afterwards for whoever wants the tool.
"""

from __future__ import annotations

import sys

if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]  # an import of it fails
    try:
        import httpx
    finally:
        del sys.modules["httpx._main"]

import httpx as httpx

__all__ = ["httpx"]
