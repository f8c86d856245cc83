"""A warning for every ``${VAR}`` a file references that is unset where ``validate`` runs.

A warning, not an error: ``validate`` often runs in a shell without the service's
``EnvironmentFile``. But an unset variable is the first thing to check when the service
then says "environment variable X is not set", so the line names file, line and variable
(never a value).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any, Final

from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document

_ENV_RE: Final = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
MAX_NODES: Final = 100_000
"""Values walked at most (a generated site file can be large; the check must stay cheap)."""


Where = tuple[str | int, ...]


def _references(node: Any) -> Iterator[tuple[Where, str]]:
    """(path, variable name) of every ``${VAR}`` value under ``node``."""
    stack: list[tuple[Any, Where]] = [(node, ())]
    seen = 0
    while stack and seen < MAX_NODES:
        value, where = stack.pop()
        seen += 1
        if isinstance(value, str):
            match = _ENV_RE.match(value)
            if match is not None:
                yield where, match.group(1)
        elif isinstance(value, dict):
            stack.extend((item, (*where, str(key))) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*where, index)) for index, item in enumerate(value))


def check_env_references(doc: Document) -> Iterator[Diagnostic]:
    """Warn at each ``${VAR}`` whose variable is not set in this environment."""
    found = sorted(_references(doc.data), key=lambda item: [str(p) for p in item[0]])
    for where, name in found:
        if name not in os.environ:
            yield doc.at(
                where,
                f"${{{name}}} is not set in this environment; the service needs it in its "
                "own (e.g. the unit's EnvironmentFile)",
                severity="warning",
            )
