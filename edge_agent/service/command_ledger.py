"""Which alarm commands this agent has applied, and what it answered: each command id is
applied once, and a resend of the same id (the hub timed out, the CLI was run again with
``--id``) gets the first answer.

A small JSON file in the state directory (``alarm-commands.json``), rewritten atomically
after each command, holding the last :data:`MAX_REMEMBERED` answers (oldest forgotten
first): a resend comes within minutes, not after a thousand other commands.

Each answer keeps what its command did (:func:`command_what`: action, rule or asset, for,
until_clear): an id that comes again with another command is not a resend but a mistake,
refused rather than answered with a result that is not its own.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from edge_agent.common.atomic import read_json_object, write_atomic
from edge_agent.common.schema_version import SchemaVersionError, check
from edge_agent.wire.commands import CommandResult

log = logging.getLogger(__name__)

FILE_NAME: Final = "alarm-commands.json"
SCHEMA_VERSION: Final = 1
VERSION_KEY: Final = "version"
MAX_REMEMBERED: Final = 1000
WHAT_FIELDS: Final = ("action", "rule", "asset", "for", "until_clear")
"""The fields that say what a command does (who, why and when may differ on a resend)."""


def command_what(request: Mapping[str, Any]) -> str:
    """What ``request`` does, as a canonical text (compared, and kept in the file)."""
    what = {key: request.get(key) for key in WHAT_FIELDS if request.get(key) not in (None, False)}
    return json.dumps(what, sort_keys=True, ensure_ascii=False, default=str)


def what_text(what: str) -> str:
    """:func:`command_what`'s text for a person: ``shelve rule r for 2h``."""
    try:
        fields = json.loads(what)
    except ValueError:
        return what
    if not isinstance(fields, dict):
        return what
    words = [str(fields.get("action", "?"))]
    for key in ("rule", "asset", "for"):
        if key in fields:
            words += [key, str(fields[key])]
    if fields.get("until_clear"):
        words.append("until clear")
    return " ".join(words)


class CommandLedger:
    """command id → the :class:`CommandResult` first answered, durable, bounded."""

    def __init__(self, state_dir: Path, limit: int = MAX_REMEMBERED) -> None:
        self.path = state_dir / FILE_NAME
        self.limit = max(1, limit)
        self._whats: dict[str, str] = {}
        self._results: OrderedDict[str, CommandResult] = self._load()

    def _load(self) -> OrderedDict[str, CommandResult]:
        data = read_json_object(self.path)
        results: OrderedDict[str, CommandResult] = OrderedDict()
        if not data:
            return results
        try:
            # A later release's file stops the start (state_formats checks it first).
            check("alarm command ledger", str(self.path), data.get(VERSION_KEY), SCHEMA_VERSION)
        except SchemaVersionError as exc:
            log.warning("Alarm command ledger unusable; starting empty.", extra={"error": str(exc)})
            return results
        rows = data.get("results")
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict):
                continue
            command_id, ok, message = row.get("id"), row.get("ok"), row.get("message")
            if isinstance(command_id, str) and isinstance(ok, bool) and isinstance(message, str):
                results[command_id] = CommandResult(command_id, ok, message)
                what = row.get("what")
                if isinstance(what, str):  # absent in files of the first release
                    self._whats[command_id] = what
        while len(results) > self.limit:
            dropped, _ = results.popitem(last=False)
            self._whats.pop(dropped, None)
        return results

    def __len__(self) -> int:
        return len(self._results)

    def get(self, command_id: str) -> CommandResult | None:
        """The first answer to ``command_id``, or None if it was never applied here."""
        return self._results.get(command_id)

    def what(self, command_id: str) -> str | None:
        """What the command first applied under ``command_id`` did (None: not known)."""
        return self._whats.get(command_id)

    def record(self, result: CommandResult, what: str | None = None) -> None:
        """Remember ``result`` (its id must be set) and what its command did, and write the
        file (raises OSError)."""
        if result.id is None:
            return
        self._results[result.id] = result
        if what is not None:
            self._whats[result.id] = what
        while len(self._results) > self.limit:
            dropped, _ = self._results.popitem(last=False)
            self._whats.pop(dropped, None)
        document: dict[str, Any] = {
            VERSION_KEY: SCHEMA_VERSION,
            "results": [self._row(r) for r in self._results.values()],
        }
        write_atomic(self.path, json.dumps(document, ensure_ascii=False).encode("utf-8"))

    def _row(self, result: CommandResult) -> dict[str, Any]:
        row: dict[str, Any] = {"id": result.id, "ok": result.ok, "message": result.message}
        what = None if result.id is None else self._whats.get(result.id)
        if what is not None:
            row["what"] = what
        return row


__all__ = [
    "FILE_NAME",
    "MAX_REMEMBERED",
    "SCHEMA_VERSION",
    "CommandLedger",
    "command_what",
    "what_text",
]
