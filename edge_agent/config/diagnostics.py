"""Problems found in a configuration file, and the one way they are printed.

Every consumer (``edge-agent validate``, ``print-config``, the service's hot reload, the hub)
formats a problem with :func:`format_diagnostic`, so an engineer sees the same line
wherever it comes from::

    site.yaml:12:5: error: connections.plc1.polll: unknown key; did you mean `poll`?
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from edge_agent.errors import EdgeAgentError

Severity = Literal["error", "warning"]
PathElement = str | int
ConfigPath = tuple[PathElement, ...]


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem at one place. ``line`` and ``col`` count from 1; ``path`` is the key
    path inside the (merged) document, e.g. ``("rules", 0, "high", "limit")``."""

    file: str
    line: int
    col: int
    severity: Severity
    path: ConfigPath
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict for ``--format json`` (the path both as text and as a list)."""
        data = asdict(self)
        data["path"] = format_path(self.path)
        data["path_elements"] = list(self.path)
        return data


class ConfigError(EdgeAgentError):
    """A configuration that cannot be used. ``diagnostics`` holds every problem found
    (errors and warnings); ``str()`` is their formatted lines."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(format_diagnostic(d) for d in self.diagnostics))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]


def format_path(path: ConfigPath) -> str:
    """``("rules", 0, "high", "limit")`` → ``rules[0].high.limit``; ``()`` → ``(file)``."""
    text = ""
    for element in path:
        if isinstance(element, int):
            text += f"[{element}]"
        else:
            text += f".{element}" if text else element
    return text or "(file)"


def format_diagnostic(diagnostic: Diagnostic) -> str:
    """The one line format: ``file:line:col: error: path: message``."""
    d = diagnostic
    return f"{d.file}:{d.line}:{d.col}: {d.severity}: {format_path(d.path)}: {d.message}"


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """File order, then line and column; the same problem reported twice is shown once."""
    return sorted(set(diagnostics), key=lambda d: (d.file, d.line, d.col, d.message))


def summarize(diagnostics: Sequence[Diagnostic], files: Sequence[str]) -> str:
    """``2 errors, 1 warning in site.yaml`` (or ``no problems in ...``)."""
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    where = ", ".join(files) if len(files) <= 3 else f"{len(files)} files"
    if not diagnostics:
        return f"no problems in {where}"
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return f"{', '.join(parts)} in {where}"
