"""The unit starts the agent after the clock is set, without pulling time targets in."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).parent.parent.parent / "systemd" / "edge-agent.service"


def unit_values(key: str) -> list[str]:
    values: list[str] = []
    for line in UNIT.read_text().splitlines():
        if line.startswith(f"{key}="):
            values += line.split("=", 1)[1].split()
    return values


def test_ordered_after_time_sync_without_wanting_it() -> None:
    after = unit_values("After")
    assert {"time-set.target", "time-sync.target", "network-online.target"} <= set(after)
    # Passive targets: the time daemon pulls them in; a Wants= here would reach them
    # without a clock source and mean nothing.
    assert not {"time-set.target", "time-sync.target"} & set(
        unit_values("Wants") + unit_values("Requires")
    )
