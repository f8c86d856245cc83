"""Fixtures for the outbox tests: a fresh outbox in the test's temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    store = Outbox.open(tmp_path / "outbox", max_bytes=10_000_000, lease_s=60.0)
    try:
        yield store
    finally:
        store.close()
