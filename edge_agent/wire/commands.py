"""Alarm commands and their results on the wire, in one place. Pure: no I/O.

A command (``edge-agent/command@1``) travels from the hub to one site on
``{prefix}/{site}/commands`` (QoS 1, not retained), or from ``edge-agent alarms`` to the
agent's control socket, one JSON object per line::

    {"schema": "edge-agent/command@1", "id": "...", "action": "shelve", "rule": "...",
     "by": "...", "reason": "...", "for": "2h", "time": "..."}

``action`` is ``shelve``, ``unshelve``, ``oos``, ``return`` or ``ack``; ``rule`` or
``asset`` (only for ``oos``/``return``); ``for`` (shelve, oos), ``until_clear`` (shelve),
``note`` (ack). The rule engine checks each field (``rules.lifecycle.parse_command``); this
module only frames: size, JSON, object, schema.

Every command gets one answer (``edge-agent/command-result@1``), on
``{prefix}/{site}/command-results`` or on the same socket line: ``id`` (None when the
command had no usable id), ``ok``, ``message`` (one line for a person), ``time``. A command
id is applied once: a resend is answered with the first result (``repeat: true``).

A command is applied only near the time it says (``time``, by the agent's wall clock;
``alarms.max_command_age``, 10 minutes by default, either way): one queued for an offline
site for hours, or dated far ahead, is refused (:func:`command_age_error`), so a late
``return`` cannot undo a later local ``oos``. The hub's commands must say their time; the
socket's may leave it out (they come from the same machine, now).

The socket also answers one query, ``{"query": "alarms"}``: ``{"ok": true, "alarms": [...]}``
(one row per rule, see ``RuleEngine.alarms_view``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from edge_agent.alerts import format_time_ns, parse_time
from edge_agent.common.time_units import NS_PER_S
from edge_agent.errors import EdgeAgentError
from edge_agent.redaction import redact_value

COMMAND_SCHEMA: Final = "edge-agent/command@1"
RESULT_SCHEMA: Final = "edge-agent/command-result@1"
BUSY: Final = "busy:"
"""How an answer that means "not taken now, try again" begins (too many connections, the
rules task full, stopping or stalled): not a refusal of the command itself."""
MAX_COMMAND_BYTES: Final = 16 * 1024
"""A command is a few hundred bytes (a reason of 1000 characters at most); a larger message
or socket line is refused unread."""
MAX_RESULT_BYTES: Final = 16 * 1024
MAX_MESSAGE_CHARS: Final = 1000
"""A result's message is cut to this."""
QUERIES: Final = ("alarms",)
_ID_RE: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class BadCommand(EdgeAgentError, ValueError):
    """A command or result that is not framed as the contract says (counted, logged)."""


@dataclass(frozen=True)
class CommandResult:
    """One answer to one command."""

    id: str | None
    ok: bool
    message: str
    repeat: bool = False


def command_id_of(document: object) -> str | None:
    """The command's id when it is a usable one (to echo in the answer), else None."""
    if isinstance(document, Mapping):
        value = document.get("id")
        if isinstance(value, str) and _ID_RE.fullmatch(value):
            return value
    return None


def decode_request(raw: bytes, *, require_schema: bool) -> dict[str, Any]:
    """A command (or a socket query) as a JSON object; raises :class:`BadCommand`. The
    schema must be :data:`COMMAND_SCHEMA` when present (and present when
    ``require_schema``: the MQTT topic)."""
    if len(raw) > MAX_COMMAND_BYTES:
        raise BadCommand(f"a command is at most {MAX_COMMAND_BYTES} bytes, got {len(raw)}")
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadCommand("a command is UTF-8 JSON") from exc
    except (ValueError, RecursionError) as exc:
        raise BadCommand(f"not JSON: {str(exc)[:200]}") from exc
    if not isinstance(document, dict):
        raise BadCommand("a command is a JSON object")
    schema = document.get("schema")
    if schema is None and require_schema:
        raise BadCommand(f"schema: {COMMAND_SCHEMA} is required")
    if schema is not None and schema != COMMAND_SCHEMA:
        raise BadCommand(f"schema: {str(schema)[:64]!r} is not {COMMAND_SCHEMA}")
    if "query" in document and document["query"] not in QUERIES:
        raise BadCommand(f"query: one of {', '.join(QUERIES)}")
    return document


def command_age_error(
    document: Mapping[str, Any], wall_now_ns: int, max_age_ns: int, *, require: bool
) -> str | None:
    """Why the command is too old (or too far ahead) to apply, or None. ``time`` must be
    present when ``require`` (the hub's door) and RFC 3339 when present."""
    value = document.get("time")
    if value is None:
        return "time: required (when the command was given)" if require else None
    if not isinstance(value, str) or len(value) > 64:
        return "time: an RFC 3339 time is required"
    try:
        given = parse_time(value)
    except (ValueError, OverflowError):
        return f"time: {value!r} is not an RFC 3339 time"
    limit = _seconds(max_age_ns)
    if given < wall_now_ns - max_age_ns:
        return (
            f"given {_seconds(wall_now_ns - given)} ago ({value}), more than {limit} by this "
            "agent's clock: not applied (a command queued while the site was offline); "
            "look at the alarm's state now and send it again if it is still meant"
        )
    if given > wall_now_ns + max_age_ns:
        return (
            f"dated {_seconds(given - wall_now_ns)} ahead ({value}), more than {limit} by "
            "this agent's clock: not applied; check the sender's clock"
        )
    return None


def _seconds(ns: int) -> str:
    return f"{ns // NS_PER_S} s"


def command_document(
    command_id: str,
    action: str,
    *,
    by: str,
    time_ns: int,
    rule: str | None = None,
    asset: str | None = None,
    reason: str = "",
    for_: str | None = None,
    until_clear: bool = False,
    note: str | None = None,
) -> dict[str, Any]:
    """The JSON object of one command (what the CLIs send)."""
    document: dict[str, Any] = {"schema": COMMAND_SCHEMA, "id": command_id, "action": action}
    if rule is not None:
        document["rule"] = rule
    if asset is not None:
        document["asset"] = asset
    document["by"] = by
    document["reason"] = reason
    if for_ is not None:
        document["for"] = for_
    if until_clear:
        document["until_clear"] = True
    if note is not None:
        document["note"] = note
    document["time"] = format_time_ns(time_ns)
    return document


def result_document(result: CommandResult, time_ns: int) -> dict[str, Any]:
    """The JSON object of one answer. The message passes the redactor (it may quote a
    reason, and a reason may quote a key)."""
    body: dict[str, Any] = {
        "schema": RESULT_SCHEMA,
        "id": result.id,
        "ok": result.ok,
        "message": redact_value(result.message[:MAX_MESSAGE_CHARS]),
        "time": format_time_ns(time_ns),
    }
    if result.repeat:
        body["repeat"] = True
    return body


def encode(document: dict[str, Any]) -> bytes:
    """One line of compact JSON (no newline)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_result(raw: bytes) -> CommandResult:
    """An answer as the CLIs read it; raises :class:`BadCommand`."""
    if len(raw) > MAX_RESULT_BYTES:
        raise BadCommand(f"a result is at most {MAX_RESULT_BYTES} bytes, got {len(raw)}")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadCommand("a result is UTF-8 JSON") from exc
    if not isinstance(document, dict) or document.get("schema") != RESULT_SCHEMA:
        raise BadCommand(f"a result is a JSON object with schema {RESULT_SCHEMA}")
    ok, message = document.get("ok"), document.get("message")
    if not isinstance(ok, bool) or not isinstance(message, str):
        raise BadCommand("a result has ok (true/false) and message (text)")
    return CommandResult(
        command_id_of(document), ok, message[:MAX_MESSAGE_CHARS], document.get("repeat") is True
    )


__all__ = [
    "BUSY",
    "COMMAND_SCHEMA",
    "MAX_COMMAND_BYTES",
    "RESULT_SCHEMA",
    "BadCommand",
    "CommandResult",
    "command_age_error",
    "command_document",
    "command_id_of",
    "decode_request",
    "encode",
    "parse_result",
    "result_document",
]
