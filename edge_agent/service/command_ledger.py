"""Which alarm commands this agent has applied, and what it answered: each command id is
applied once, and a resend of the same id (the hub timed out, the CLI was run again with
``--id``) gets the first answer.

A small JSON file in the state directory (``alarm-commands.json``), rewritten atomically
after each command, holding the last :data:`MAX_REMEMBERED` answers (oldest forgotten
first): a resend comes within minutes, not after a thousand other commands.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
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


class CommandLedger:
    """command id → the :class:`CommandResult` first answered, durable, bounded."""

    def __init__(self, state_dir: Path, limit: int = MAX_REMEMBERED) -> None:
        self.path = state_dir / FILE_NAME
        self.limit = max(1, limit)
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
        while len(results) > self.limit:
            results.popitem(last=False)
        return results

    def __len__(self) -> int:
        return len(self._results)

    def get(self, command_id: str) -> CommandResult | None:
        """The first answer to ``command_id``, or None if it was never applied here."""
        return self._results.get(command_id)

    def record(self, result: CommandResult) -> None:
        """Remember ``result`` (its id must be set) and write the file (raises OSError)."""
        if result.id is None:
            return
        self._results[result.id] = result
        while len(self._results) > self.limit:
            self._results.popitem(last=False)
        document: dict[str, Any] = {
            VERSION_KEY: SCHEMA_VERSION,
            "results": [
                {"id": r.id, "ok": r.ok, "message": r.message} for r in self._results.values()
            ],
        }
        write_atomic(self.path, json.dumps(document, ensure_ascii=False).encode("utf-8"))


__all__ = ["FILE_NAME", "MAX_REMEMBERED", "SCHEMA_VERSION", "CommandLedger"]
