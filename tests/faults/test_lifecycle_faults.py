"""The alarm lifecycle's boundaries: command and work-order lines in a replay trace
(arbitrary JSON objects: a clear error with the line number, never a traceback) and the
rule state on a failing disk (an expiry's event is neither lost nor made twice under a
new id: a restart from the older state makes it again with the same event id, which every
hop deduplicates on)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.cli import main
from edge_agent.common.time_units import NS_PER_HOUR, NS_PER_S
from edge_agent.readings import Quality, Reading
from edge_agent.rules import RuleEngine, RuleStateStore, to_alert_message
from edge_agent.rules.lifecycle import DEFAULT_MAX_SHELVE_NS, parse_command
from tests.rules.conftest import BASE_NS, site

SITE = Path(__file__).parent.parent / "testcases" / "lifecycle" / "verify_passes" / "site.yaml"
RULE = {"id": "hot", "asset": "p101", "sensor": "temp", "high": {"limit": 80}}

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
command_lines = st.fixed_dictionaries(
    {"time": st.just("2026-01-05T10:00:00Z"), "command": values},
    optional={
        "rule": values | st.just("temp-high"),
        "asset": values | st.just("p101"),
        "for": values | st.sampled_from(["2h", "30m", 90, "9h"]),
        "by": values,
        "reason": values,
        "until_clear": values,
        "note": values,
        "id": values,
    },
)
work_order_lines = st.fixed_dictionaries(
    {
        "time": st.just("2026-01-05T10:00:00Z"),
        "work_order": values
        | st.fixed_dictionaries(
            {"rule": values | st.just("temp-high"), "status": values | st.just("DONE")},
            optional={"id": values | st.just(7), "assigned": values},
        ),
    }
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(line=command_lines | work_order_lines)
def test_any_lifecycle_line_is_replayed_or_refused_clearly(
    line: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text(json.dumps(line) + "\n")
    code = main(["replay", str(SITE), str(trace)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if code == 0:
        for printed in out.splitlines():
            json.loads(printed)
    else:
        assert code == 1 and out == ""
        assert err.startswith(f"{trace}:1: error: "), err
        assert len(err.splitlines()) == 1 and len(err) < 1000


@pytest.mark.parametrize("what", ["shelve", "verification"])
def test_an_expiry_on_a_failing_disk_is_made_again_with_the_same_event_id(
    tmp_path: Path, what: str
) -> None:
    """The agent dies after an expiry's event went out but before its state was saved; it
    restarts on another monotonic clock, after the expiry by the wall clock. The event is
    made again, with the same event id: the hub and the ledger take it once."""
    path = tmp_path / "state" / "rules.json"
    config = site([{**RULE, "verify_for": "1h"}], stale_after="1d")
    engine = RuleEngine(config, RuleStateStore(path))
    if what == "shelve":
        shelve = {"id": "c1", "action": "shelve", "rule": "hot", "by": "a", "reason": "b"}
        command = parse_command({**shelve, "for": "1h"}, max_shelve_ns=DEFAULT_MAX_SHELVE_NS)
        assert engine.apply_command(command, BASE_NS).ok
    else:
        engine.feed(Reading("temp", 70.0, Quality.GOOD, BASE_NS))
        assert engine.work_order_status("hot", 9, "DONE", BASE_NS) == []
    saved = path.read_bytes()
    wall = json.loads(saved)["saved_wall_ns"]
    path.unlink()
    path.mkdir()  # the disk refuses the next save (a rename over a directory fails)
    first = engine.tick(BASE_NS + NS_PER_HOUR)
    assert engine.counters["state_save_errors"] >= 1
    path.rmdir()
    path.write_bytes(saved)
    restart_at = 7 * NS_PER_S  # the monotonic clock started again at boot
    again = RuleEngine(
        config, RuleStateStore(path), resume_at=restart_at, wall_now_ns=wall + 2 * NS_PER_HOUR
    ).tick(restart_at)
    kinds = {"shelve": "unshelved", "verification": "verified"}
    assert [e.kind for e in first + again] == [kinds[what]] * 2
    ids = {to_alert_message(e, config)["event_id"] for e in first + again}  # type: ignore[index]
    assert len(ids) == 1  # one event for every hop that deduplicates on its id


def test_a_release_on_a_failing_disk_is_made_again_with_the_same_event_ids(
    tmp_path: Path,
) -> None:
    """A shelved rule in alarm: the shelve expires, the release goes out, the save fails
    and the agent restarts from the state before it. The unshelve and the release are made
    again with the same event ids (and the release under the episode's alert id): one work
    order, and nothing lost."""
    path = tmp_path / "state" / "rules.json"
    config = site([RULE], stale_after="1d")
    engine = RuleEngine(config, RuleStateStore(path))
    shelve = {"id": "c1", "action": "shelve", "rule": "hot", "by": "a", "reason": "b"}
    command = parse_command({**shelve, "for": "1h"}, max_shelve_ns=DEFAULT_MAX_SHELVE_NS)
    assert engine.apply_command(command, BASE_NS).ok
    held = engine.feed(Reading("temp", 85.0, Quality.GOOD, BASE_NS + NS_PER_S))
    assert [(e.kind, e.held) for e in held] == [("activated", "shelved")]
    saved = path.read_bytes()
    wall = json.loads(saved)["saved_wall_ns"]
    path.unlink()
    path.mkdir()  # the disk refuses the next save
    first = engine.tick(BASE_NS + NS_PER_HOUR)
    assert engine.counters["state_save_errors"] >= 1
    path.rmdir()
    path.write_bytes(saved)
    restart_at = 7 * NS_PER_S
    again = RuleEngine(
        config, RuleStateStore(path), resume_at=restart_at, wall_now_ns=wall + 2 * NS_PER_HOUR
    ).tick(restart_at)
    for events in (first, again):
        assert [(e.kind, e.released, e.notify) for e in events] == [
            ("unshelved", None, False),
            ("activated", "shelved", True),
        ]
        assert {e.alert_id for e in events} == {held[0].alert_id}
    ids = [to_alert_message(e, config)["event_id"] for e in first + again]  # type: ignore[index]
    assert ids[:2] == ids[2:] and len(set(ids)) == 2
