"""The optional store driver: ``dedup.backend: postgres`` needs psycopg, an extra.

``validate`` and the hub refuse such a file with the install command when the driver is
missing, instead of validating it and then crashing at start with ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Final

from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.loader import Document

INSTALL_POSTGRES: Final = "pip install 'edge-agent[postgres]'"
MISSING_POSTGRES: Final = (
    "backend postgres needs the PostgreSQL driver (psycopg), which is not installed; "
    f"install it with: {INSTALL_POSTGRES}"
)


def postgres_driver_missing() -> bool:
    """True when ``import psycopg`` fails here."""
    try:
        importlib.import_module("psycopg")
    except ImportError:
        return True
    return False


def check_store_driver(doc: Document) -> Iterator[Diagnostic]:
    """An error at ``dedup.backend`` when it is ``postgres`` and psycopg cannot be imported."""
    if doc.get("dedup", "backend") == "postgres" and postgres_driver_missing():
        yield doc.at(("dedup", "backend"), MISSING_POSTGRES)
