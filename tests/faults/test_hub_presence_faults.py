"""The site status boundary (issue 20, section 3): whatever a status message or an
unconfigured site id holds, "last seen" stays a time within [2000, now] and the unknown-site
tally stays bounded; nothing raises."""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.hub.presence import (
    MAX_UNKNOWN_SITES,
    OTHER,
    UnknownSites,
    seen_at,
    status_state,
)
from edge_agent.wire.alert import EARLIEST_NS

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
times = st.one_of(
    json_values,
    st.sampled_from(
        [
            "2099-12-31T23:59:59Z",  # far ahead of the hub's clock
            "1999-12-31T23:59:59Z",
            "2100-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-05T10:00:00",  # no zone
            "9" * 10_000,
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(state=json_values, at=times, retained=st.booleans(), raw=st.binary(max_size=64))
def test_any_status_message_gives_a_bounded_last_seen(
    state: Any, at: Any, retained: bool, raw: bytes
) -> None:
    now_ns = time.time_ns()
    for payload in (json.dumps({"state": state, "time": at}).encode(), raw):
        presence, at_ns = status_state(payload)
        assert presence in ("online", "offline", "unknown")
        seen = seen_at(at_ns, now_ns, retained=retained)
        assert seen is None or EARLIEST_NS <= seen <= now_ns
    # A status far in the future counts as now, never later.
    _, future = status_state(b'{"state": "online", "time": "2099-12-31T23:59:59Z"}')
    assert seen_at(future, now_ns, retained=True) == now_ns


def test_unknown_site_tally_is_bounded_and_logs_once_per_site(caplog: Any) -> None:
    unknown = UnknownSites()
    for n in range(3 * MAX_UNKNOWN_SITES):
        unknown.seen(f"site-{n}", "alert")
        unknown.seen(f"site-{n}", "status")
    assert len(unknown.counts) == MAX_UNKNOWN_SITES + 1
    assert unknown.counts[OTHER] == 2 * 2 * MAX_UNKNOWN_SITES
    assert len([r for r in caplog.records if "does not serve" in r.getMessage()]) == (
        MAX_UNKNOWN_SITES + 1
    )
