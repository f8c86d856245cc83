"""A site file after ``include:``: the merged data with the place of every value, and the
shape of a check over it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.config.diagnostics import ConfigPath, Diagnostic, Severity
from edge_agent.config.yaml_reader import Mark, SourceMap


@dataclass
class Document:
    """The merged data of a file and its includes, with the place of every value."""

    data: dict[str, Any]
    source: SourceMap
    main_file: str
    base_dir: Path
    files: list[str] = field(default_factory=list)

    def mark(self, path: ConfigPath, *, key: bool = False) -> Mark:
        """Where ``path`` was written: a scalar's value, a section's key, or the nearest
        enclosing place that exists (for keys that are missing)."""
        for size in range(len(path), -1, -1):
            here = path[:size]
            if key and size == len(path) and here in self.source.keys:
                return self.source.keys[here]
            if here in self.source.values and here not in self.source.containers:
                return self.source.values[here]
            if here in self.source.keys:
                return self.source.keys[here]
            if here in self.source.values:
                return self.source.values[here]
        return Mark(self.main_file, 1, 1)

    def at(
        self,
        path: ConfigPath,
        message: str,
        severity: Severity = "error",
        *,
        key: bool = False,
        mark_path: ConfigPath | None = None,
    ) -> Diagnostic:
        """A diagnostic about ``path``, placed at ``mark_path`` (default: ``path``)."""
        mark = self.mark(path if mark_path is None else mark_path, key=key)
        return Diagnostic(mark.file, mark.line, mark.col, severity, path, message)

    def where(self, path: ConfigPath) -> str:
        """``line 12`` in the same file as the main one, else ``rules/pumps.yaml:12``."""
        mark = self.mark(path, key=True)
        return f"line {mark.line}" if mark.file == self.main_file else f"{mark.file}:{mark.line}"

    def get(self, *path: str | int) -> Any:
        """The raw value at ``path``, or ``None`` when any step is missing or mistyped."""
        node: Any = self.data
        for element in path:
            if isinstance(node, dict) and isinstance(element, str):
                node = node.get(element)
            elif isinstance(node, list) and isinstance(element, int) and element < len(node):
                node = node[element]
            else:
                return None
        return node


Check = Callable[[Document], Iterable[Diagnostic]]
"""A check over the whole merged document: yields errors and warnings."""


def file_error(file: str, message: str, line: int = 1, col: int = 1) -> Diagnostic:
    """An error about a file as a whole (no path inside it)."""
    return Diagnostic(file, line, col, "error", (), message)
