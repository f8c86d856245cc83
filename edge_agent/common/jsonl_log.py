"""An append-only JSON-lines file with a size bound: the audit record of alarm commands on a
gateway (who, when, what, why) and the hub's record of command results.

Each record is one line, written with one ``write`` on a file opened ``O_APPEND`` and
fsynced (a person's command is rare and its record must survive a power cut). When the
next line would take the file past ``max_bytes`` it is renamed ``NAME.1`` (``NAME.1`` to
``NAME.2``... up to ``keep`` old files, the oldest dropped): the disk it takes is bounded
by ``(keep + 1) * max_bytes``. Files are created mode 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from edge_agent.redaction import redact_value

DEFAULT_MAX_BYTES: Final = 1024 * 1024
DEFAULT_KEEP: Final = 3
MAX_LINE_BYTES: Final = 64 * 1024
"""A record larger than this is cut to its first fields' worth (never the whole file)."""


class JsonLinesLog:
    """Appends JSON records to ``path``, rotating at ``max_bytes`` (raises OSError)."""

    def __init__(
        self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP
    ) -> None:
        self.path = path
        self.max_bytes = max(MAX_LINE_BYTES, max_bytes)
        self.keep = max(1, keep)

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` (secrets hidden) as one line, rotating first if it would not fit."""
        line = json.dumps(redact_value(dict(record)), ensure_ascii=False, default=str)
        if len(line.encode("utf-8")) >= MAX_LINE_BYTES:
            line = json.dumps({"truncated": True, "head": line[: MAX_LINE_BYTES // 8]})
        data = (line + "\n").encode("utf-8")
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > self.max_bytes:
            self._rotate()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _rotate(self) -> None:
        for index in range(self.keep, 0, -1):
            older = self._numbered(index)
            if index == self.keep:
                with contextlib.suppress(FileNotFoundError):
                    older.unlink()
                continue
            with contextlib.suppress(FileNotFoundError):
                older.rename(self._numbered(index + 1))
        self.path.rename(self._numbered(1))

    def _numbered(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def read(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The last ``limit`` records of the current file (older files are not read);
        lines that are not JSON objects are skipped."""
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        records: list[dict[str, Any]] = []
        for line in lines[-limit:]:
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    records.append(value)
        return records


__all__ = ["DEFAULT_KEEP", "DEFAULT_MAX_BYTES", "JsonLinesLog"]
