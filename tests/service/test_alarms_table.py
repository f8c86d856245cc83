"""`edge-agent alarms SITE list`'s table: one line per rule, every lifecycle state named."""

from __future__ import annotations

from edge_agent.commands.alarm_args import alarms_table


def test_the_table_names_every_state_a_rule_is_in() -> None:
    rows = [
        {"rule": "a", "asset": "P-101", "state": "ACTIVE", "priority": "HIGH",
         "shelved": {"by": "ann", "reason": "swap", "until": "2026-12-05T02:00:00Z",
                     "until_clear": False},
         "out_of_service": None, "maintenance": 42,
         "acknowledged": {"by": "bob", "at": "2026-12-05T01:00:00Z", "note": None},
         "verifying": None},
        {"rule": "b-longer-name", "asset": None, "state": "NORMAL", "priority": "LOW",
         "shelved": {"by": "ann", "reason": "", "until": None, "until_clear": True},
         "out_of_service": {"by": "cy", "reason": "sensor out", "until": None},
         "maintenance": None, "acknowledged": None,
         "verifying": {"work_order": 7, "until": "2026-12-05T03:00:00Z"}},
        {"rule": "c", "asset": "M-1", "state": "NORMAL", "priority": "MEDIUM"},
    ]  # fmt: skip
    lines = alarms_table(rows).splitlines()
    assert lines[0].split() == ["RULE", "ASSET", "STATE", "PRIORITY", "LIFECYCLE"]
    assert (
        lines[1].startswith("a ")
        and (
            "shelved until 2026-12-05T02:00:00Z (by ann: swap); maintenance (work order 42); "
            "acknowledged by bob"
        )
        in lines[1]
    )
    assert "OUT OF SERVICE (by cy: sensor out); shelved until clear (by ann)" in lines[2]
    assert "verifying work order 7" in lines[2]
    assert lines[3].split() == ["c", "M-1", "NORMAL", "MEDIUM", "-"]
    # Columns line up whatever the lengths.
    assert len({line.index(line.split()[2]) for line in lines[1:]}) == 1
    assert alarms_table([]) == "no rules"
