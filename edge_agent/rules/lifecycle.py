"""The alarm lifecycle's commands (ISA-18.2 / OPC UA Part 9): shelve, unshelve, out of
service, return to service, acknowledge; what a command says and what applying it gave.

Pure: no I/O, no clock. A command comes from a person (the ``alarms`` CLI over the agent's
socket, or the hub over MQTT) as a JSON object; :func:`parse_command` checks every field and
bound and gives an :class:`AlarmCommand`, which ``RuleEngine.apply_command`` applies.
The states themselves live in ``lifecycle_state.py``; see ``docs/rules.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast, get_args

from edge_agent.common.time_units import NS_PER_HOUR, NS_PER_S
from edge_agent.config.units import MAX_DURATION_NS, format_duration, parse_duration
from edge_agent.errors import EdgeAgentError
from edge_agent.rules.events import AlarmEvent

Action = Literal["shelve", "unshelve", "oos", "return", "ack"]
ACTIONS: Final[tuple[str, ...]] = get_args(Action)
HeldBy = Literal["shelved", "out_of_service", "maintenance"]
"""Why an activation travels with ``notify: false`` because of a lifecycle state."""

DEFAULT_MAX_SHELVE_NS: Final = 8 * NS_PER_HOUR
"""``alarms: {max_shelve: 8h}``: the longest a rule may be shelved."""
MAX_COMMAND_ID_CHARS: Final = 128
MAX_BY_CHARS: Final = 200
MAX_REASON_CHARS: Final = 1000
MAX_NOTE_CHARS: Final = 1000
MAX_TARGET_CHARS: Final = 256  # a rule or asset id (as on the wire)
_COMMAND_ID_RE: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Actions whose reason may be empty (undoing a state, or an ack that has its note).
_REASON_OPTIONAL: Final = frozenset({"ack", "unshelve", "return"})
_KNOWN_KEYS: Final = frozenset(
    {"schema", "id", "action", "rule", "asset", "by", "reason", "for", "until_clear", "note"}
    | {"time"}
)


class CommandError(EdgeAgentError, ValueError):
    """A command that cannot be applied as written (the message names the field)."""


@dataclass(frozen=True)
class AlarmCommand:
    """One lifecycle command, checked. ``id`` deduplicates (a command is applied once)."""

    id: str
    action: Action
    rule: str | None  # exactly one of rule / asset (asset only for oos/return)
    asset: str | None
    by: str
    reason: str
    for_ns: int | None  # shelve/oos duration; shelve at most ``max_shelve``
    until_clear: bool  # shelve one-shot until the alarm clears
    note: str | None  # ack note


@dataclass(frozen=True)
class CommandOutcome:
    """What applying a command gave: ``ok`` and one line for a person, and the audit events
    (on the engine's clock, like ``tick``'s) that the caller renders and enqueues."""

    ok: bool
    message: str
    events: list[AlarmEvent] = field(default_factory=list)


def _text(data: Mapping[str, Any], key: str, limit: int, *, required: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise CommandError(f"{key}: required (a text of 1..{limit} characters)")
        return None
    if not isinstance(value, str) or len(value) > limit or (required and not value):
        raise CommandError(f"{key}: a text of {int(required)}..{limit} characters is required")
    if "\x00" in value:
        raise CommandError(f"{key}: NUL characters are not allowed")
    return value


def parse_duration_field(value: object, key: str = "for") -> int:
    """A command's duration: ``"2h"``, ``"30m"`` as in the site file, or a number of
    seconds; positive and at most a year. :class:`CommandError` otherwise."""
    if isinstance(value, bool):
        raise CommandError(f"{key}: a duration such as 2h or 30m, or seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0 or value * NS_PER_S > MAX_DURATION_NS:
            raise CommandError(f"{key}: seconds in (0, {MAX_DURATION_NS // NS_PER_S}]")
        return int(value * NS_PER_S)
    try:
        ns = parse_duration(value)
    except ValueError as exc:
        raise CommandError(f"{key}: {exc}") from exc
    if ns <= 0:
        raise CommandError(f"{key}: must be longer than zero")
    return ns


def parse_command(data: Mapping[str, Any], *, max_shelve_ns: int) -> AlarmCommand:
    """``data`` (a command as JSON: ``id``, ``action``, ``rule`` or ``asset``, ``by``,
    ``reason``, ``for``, ``until_clear``, ``note``) as an :class:`AlarmCommand`; raises
    :class:`CommandError` naming the first field that is wrong."""
    if not isinstance(data, Mapping):
        raise CommandError("a command is a JSON object")
    unknown = sorted(str(k) for k in data if k not in _KNOWN_KEYS)
    if unknown:
        raise CommandError(f"{unknown[0][:64]!r}: not a field of a command")
    command_id = data.get("id")
    if not isinstance(command_id, str) or not _COMMAND_ID_RE.fullmatch(command_id):
        raise CommandError(
            f"id: 1..{MAX_COMMAND_ID_CHARS} characters of A-Z a-z 0-9 . _ : - are required"
        )
    action = data.get("action")
    if action not in ACTIONS:
        raise CommandError(f"action: one of {', '.join(ACTIONS)} is required")
    rule = _text(data, "rule", MAX_TARGET_CHARS, required=False)
    asset = _text(data, "asset", MAX_TARGET_CHARS, required=False)
    if (rule is None) == (asset is None) or rule == "" or asset == "":
        raise CommandError("rule/asset: exactly one of them is required")
    if asset is not None and action not in ("oos", "return"):
        raise CommandError(f"asset: only oos and return apply to a whole asset, not {action}")
    by = _text(data, "by", MAX_BY_CHARS, required=True)
    reason = _text(data, "reason", MAX_REASON_CHARS, required=action not in _REASON_OPTIONAL)
    note = _text(data, "note", MAX_NOTE_CHARS, required=False)
    until_clear = data.get("until_clear", False)
    if not isinstance(until_clear, bool):
        raise CommandError("until_clear: true or false")
    if until_clear and action != "shelve":
        raise CommandError("until_clear: only a shelve can last until the alarm clears")
    for_ns: int | None = None
    if data.get("for") is not None:
        if action not in ("shelve", "oos"):
            raise CommandError(f"for: only shelve and oos take a duration, not {action}")
        for_ns = parse_duration_field(data["for"])
    if action == "shelve":
        if for_ns is None and not until_clear:
            raise CommandError("for: a shelve needs a duration (or until_clear: true)")
        if for_ns is not None and until_clear:
            raise CommandError("for/until_clear: a shelve is timed or until clear, not both")
        if for_ns is not None and for_ns > max_shelve_ns:
            raise CommandError(
                f"for: at most {format_duration(max_shelve_ns)} (alarms.max_shelve); "
                "for longer, take the rule out of service"
            )
    if note is not None and action != "ack":
        raise CommandError(f"note: only an ack takes a note, not {action}")
    return AlarmCommand(
        id=command_id,
        action=cast(Action, action),
        rule=rule,
        asset=asset,
        by=cast(str, by),
        reason=reason or "",
        for_ns=for_ns,
        until_clear=until_clear,
        note=note,
    )


__all__ = [
    "ACTIONS",
    "DEFAULT_MAX_SHELVE_NS",
    "Action",
    "AlarmCommand",
    "CommandError",
    "CommandOutcome",
    "HeldBy",
    "parse_command",
    "parse_duration_field",
]
