"""The alarm command contract on the wire (edge_agent.wire.commands, the command topics):
what the CLIs send the engine accepts, any bytes at all are refused with BadCommand (never
another error), results round-trip, and the ledger and the JSON-lines log stay bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.common.jsonl_log import JsonLinesLog
from edge_agent.rules.lifecycle import DEFAULT_MAX_SHELVE_NS, parse_command
from edge_agent.service.command_ledger import CommandLedger, command_what, what_text
from edge_agent.wire import topics
from edge_agent.wire.commands import (
    COMMAND_SCHEMA,
    MAX_COMMAND_BYTES,
    BadCommand,
    CommandResult,
    command_document,
    decode_request,
    encode,
    parse_result,
    result_document,
)


def test_topics() -> None:
    assert topics.commands("edge/v1", "plant-a") == "edge/v1/plant-a/commands"
    assert topics.command_results("edge/v1", "plant-a") == "edge/v1/plant-a/command-results"
    # The hub's readers never take a command topic for a site's alerts or status.
    assert topics.parse_site_topic("edge/v1", "edge/v1/plant-a/commands") is None
    assert topics.parse_site_topic("edge/v1", "edge/v1/plant-a/command-results") is None
    assert topics.command_results_site("edge/v1", "edge/v1/plant-a/command-results") == "plant-a"
    for foreign in (
        "edge/v1/plant-a/commands",
        "edge/v1/a/b/command-results",
        "edge/v1/+/command-results",
        "other/v1/plant-a/command-results",
        "edge/v1//command-results",
    ):
        assert topics.command_results_site("edge/v1", foreign) is None, foreign
    shared = topics.shared_command_results_filter("edge/v1", "hubs")
    assert shared == "$share/hubs/edge/v1/+/command-results"


def test_what_the_clis_send_is_what_the_engine_reads() -> None:
    document = command_document(
        "host-1-abc", "shelve", by="maria", time_ns=1, rule="r1", reason="pump swap", for_="2h"
    )
    decoded = decode_request(encode(document), require_schema=True)
    command = parse_command(decoded, max_shelve_ns=DEFAULT_MAX_SHELVE_NS)
    assert (command.id, command.action, command.rule, command.by) == (
        "host-1-abc",
        "shelve",
        "r1",
        "maria",
    )
    assert command.for_ns == 2 * 3600 * 10**9
    ack = command_document("a-2", "ack", by="x", time_ns=1, rule="r1", note="seen")
    assert parse_command(ack, max_shelve_ns=DEFAULT_MAX_SHELVE_NS).note == "seen"


def test_framing_errors_say_what_is_wrong() -> None:
    with pytest.raises(BadCommand, match="at most"):
        decode_request(b"{" + b" " * MAX_COMMAND_BYTES + b"}", require_schema=False)
    with pytest.raises(BadCommand, match="UTF-8"):
        decode_request(b"\xff\xfe", require_schema=False)
    with pytest.raises(BadCommand, match="JSON object"):
        decode_request(b"[]", require_schema=False)
    with pytest.raises(BadCommand, match="required"):
        decode_request(b'{"id": "x"}', require_schema=True)
    with pytest.raises(BadCommand, match="is not"):
        decode_request(b'{"schema": "edge-agent/alert@1"}', require_schema=False)
    with pytest.raises(BadCommand, match="query"):
        decode_request(b'{"query": "everything"}', require_schema=False)
    assert decode_request(b'{"query": "alarms"}', require_schema=False) == {"query": "alarms"}
    nested = b"[" * 10_000 + b"]" * 10_000
    with pytest.raises(BadCommand):
        decode_request(nested, require_schema=False)


@given(st.binary(max_size=512))
def test_any_bytes_are_a_command_or_a_bad_command(raw: bytes) -> None:
    try:
        document = decode_request(raw, require_schema=True)
    except BadCommand:
        return
    assert document["schema"] == COMMAND_SCHEMA


@given(
    st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True)),
    st.booleans(),
    st.text(max_size=2000),
    st.booleans(),
)
def test_results_round_trip(command_id: str | None, ok: bool, message: str, repeat: bool) -> None:
    sent = CommandResult(command_id, ok, message, repeat)
    got = parse_result(encode(result_document(sent, 1_700_000_000 * 10**9)))
    assert got == CommandResult(command_id, ok, message[:1000], repeat)


def test_a_result_that_is_not_one_is_refused() -> None:
    for raw in (b"", b"{}", b'{"schema": "edge-agent/command-result@1", "ok": "yes"}'):
        with pytest.raises(BadCommand):
            parse_result(raw)


def test_ledger_remembers_the_last_answers_across_restarts(tmp_path: Path) -> None:
    ledger = CommandLedger(tmp_path, limit=3)
    for n in range(5):
        ledger.record(CommandResult(f"c{n}", n % 2 == 0, f"answer {n}"))
    again = CommandLedger(tmp_path, limit=3)
    assert [again.get(f"c{n}") for n in range(2)] == [None, None]
    assert again.get("c4") == CommandResult("c4", True, "answer 4")
    assert len(again) == 3
    (tmp_path / "alarm-commands.json").write_text("{not json")
    assert len(CommandLedger(tmp_path)) == 0  # damaged: starts empty, never crashes


def test_ledger_keeps_what_each_id_did_across_restarts(tmp_path: Path) -> None:
    shelve = {"id": "c1", "action": "shelve", "rule": "r", "for": "1h", "by": "a", "reason": "x"}
    CommandLedger(tmp_path).record(CommandResult("c1", True, "shelved"), command_what(shelve))
    again = CommandLedger(tmp_path)
    # Who, why and when may differ on a resend; what it does may not.
    assert again.what("c1") == command_what({**shelve, "by": "b", "reason": "y", "time": "t"})
    assert again.what("c1") != command_what({**shelve, "action": "oos", "rule": "other"})
    assert again.what("c1") != command_what({**shelve, "for": "2h"})
    assert again.what("unknown") is None
    assert what_text(command_what(shelve)) == "shelve rule r for 1h"
    assert what_text(command_what({"action": "oos", "asset": "P-1"})) == "oos asset P-1"
    # A first release's file (no `what`): answered as before, nothing to compare.
    (tmp_path / "alarm-commands.json").write_text(
        '{"version": 1, "results": [{"id": "old", "ok": true, "message": "m"}]}'
    )
    old = CommandLedger(tmp_path)
    assert old.get("old") == CommandResult("old", True, "m") and old.what("old") is None


def test_jsonl_log_rotates_within_its_bound(tmp_path: Path) -> None:
    log = JsonLinesLog(tmp_path / "audit.jsonl", max_bytes=64 * 1024, keep=2)
    for n in range(3000):
        log.append({"n": n, "reason": "x" * 50})
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(f.stat().st_size <= 64 * 1024 for f in files)
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    kept = [json.loads(line)["n"] for f in reversed(files) for line in f.read_text().splitlines()]
    assert kept == list(range(kept[0], 3000))  # the newest, in order, none twice
    assert log.read(5)[-1]["n"] == 2999
    log.append({"huge": "y" * 200_000})
    assert log.read(1)[0]["truncated"] is True
