"""`edge-agent alarms SITE list`'s table: one line per rule, every lifecycle state named."""

from __future__ import annotations

import argparse

import pytest

from edge_agent.commands.alarm_args import (
    alarms_table,
    build_command,
    print_answer,
    printable,
    timeout_seconds,
)


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


def test_text_from_a_command_cannot_steer_the_terminal_or_split_a_row() -> None:
    """A reason (or a name) may come from anyone who can send a command: escape sequences,
    line breaks and bidi overrides are shown escaped, never sent to the terminal."""
    rows = [
        {"rule": "a\u202eb", "asset": "P-1", "state": "NORMAL", "priority": "LOW",
         "shelved": {"by": "x\x1b]0;owned\x07", "reason": "ok\x1b[2J\x1b[31mred\nline2",
                     "until": "2026-12-05T02:00:00Z", "until_clear": False}},
    ]  # fmt: skip
    table = alarms_table(rows)
    assert len(table.splitlines()) == 2
    assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in table if ch != "\n")
    assert "\u202e" not in table and "a\\u202eb" in table
    assert "ok\\x1b[2J\\x1b[31mred\\nline2" in table
    assert printable("plain, ünïcode: 7.1 mm/s") == "plain, ünïcode: 7.1 mm/s"


@pytest.mark.parametrize("text", ["nan", "inf", "1e400", "0", "-1", "601", "abc", ""])
def test_a_timeout_that_is_not_a_finite_number_of_seconds_is_a_usage_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        timeout_seconds(text)


def test_a_good_timeout_is_taken_as_seconds() -> None:
    assert timeout_seconds("0.5") == 0.5
    assert timeout_seconds("600") == 600.0


def _args(**fields: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "action": "shelve", "rule": "r", "asset": None, "duration": "1h", "until_clear": False,
        "reason": "why", "note": None, "by": "ann", "command_id": "c-1", "timeout": 15.0,
    }  # fmt: skip
    return argparse.Namespace(**{**base, **fields})


@pytest.mark.parametrize("field", ["rule", "reason", "note", "by", "duration", "command_id"])
def test_bytes_that_are_not_utf8_are_a_usage_error_not_a_socket_error(field: str) -> None:
    """A shell in another locale passes bytes Python holds as surrogates: named, shown."""
    bad = b"b\xe4d \xff".decode("utf-8", "surrogateescape")
    why = build_command(_args(**{field: bad}))
    assert isinstance(why, str) and why.endswith("b\\xe4d \\xff is not UTF-8 text")
    assert isinstance(build_command(_args()), dict)
    long = build_command(_args(**{field: bad * 500}))
    assert isinstance(long, str) and len(long) < 200 and long.endswith("… is not UTF-8 text")


def test_a_busy_answer_is_try_again_not_a_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 3 (as when no answer came) with the id to ask again; a refusal stays 1."""
    busy = {"id": None, "ok": False, "message": "busy: too many connections; try again"}
    assert print_answer(busy, as_json=False, command="edge-agent alarms", sent_id="c-9") == 3
    assert "ask again with --id c-9" in capsys.readouterr().err
    refused = {"id": "c-9", "ok": False, "message": "no rule 'x' at site s"}
    assert print_answer(refused, as_json=False, command="edge-agent alarms") == 1
