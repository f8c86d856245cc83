"""A command's age (edge_agent.wire.commands.command_age_error): one queued for an offline
site, or dated far ahead, is refused with a clear message; one of now is taken."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.alerts import format_time_ns, parse_time
from edge_agent.common.time_units import NS_PER_MINUTE, NS_PER_S
from edge_agent.wire.commands import command_age_error

NOW = parse_time("2026-12-04T12:00:00Z")
LIMIT = 10 * NS_PER_MINUTE


def at(offset_ns: int) -> str:
    return format_time_ns(NOW + offset_ns)


CASES: list[tuple[str, dict[str, Any], bool, str | None]] = [
    # (what, command fields, the hub's door, what the refusal says or None: taken)
    ("now", {"time": at(0)}, True, None),
    ("just inside, late", {"time": at(-LIMIT)}, True, None),
    ("just inside, ahead", {"time": at(LIMIT)}, True, None),
    ("a second late", {"time": at(-LIMIT - NS_PER_S)}, True, "601 s ago"),
    ("queued a week", {"time": at(-7 * 24 * 60 * NS_PER_MINUTE)}, True, "queued while"),
    ("a second ahead", {"time": at(LIMIT + NS_PER_S)}, True, "601 s ahead"),
    ("year 2999", {"time": "2999-01-01T00:00:00Z"}, True, "ahead"),
    ("no time, hub", {}, True, "time: required"),
    ("no time, socket", {}, False, None),
    ("not a time", {"time": "yesterday"}, False, "not an RFC 3339 time"),
    ("a number", {"time": 1700000000}, True, "RFC 3339"),
    ("very long", {"time": "2" * 500}, True, "RFC 3339"),
]


@pytest.mark.parametrize(("what", "fields", "hub", "says"), CASES, ids=[c[0] for c in CASES])
def test_command_age(what: str, fields: dict[str, Any], hub: bool, says: str | None) -> None:
    error = command_age_error(fields, NOW, LIMIT, require=hub)
    if says is None:
        assert error is None, what
    else:
        assert error is not None and says in error, (what, error)
        assert "\n" not in error and len(error) < 400
