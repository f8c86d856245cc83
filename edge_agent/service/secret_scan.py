"""Find the secrets a site file references and register their values for redaction.

Components resolve their own secrets when they connect; the service resolves every
reference once at start (and after a reload) only to tell the log redactor what to hide.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from edge_agent.config.models import SiteConfig
from edge_agent.config.secrets import SecretError, resolve
from edge_agent.redaction import register_secret

_REFERENCE_RE = re.compile(r"^(\$\{[A-Za-z_][A-Za-z0-9_]*\}|file:.+)$")
# Fields that hold secret references (``SecretRef``) anywhere in the site file.
_SECRET_KEYS = frozenset({"api_key", "password", "token", "secret"})


def _references(node: Any, key: str = "") -> Iterator[str]:
    if isinstance(node, BaseModel):
        # The models walked in place: a dump of a 10,000-sensor site is ≈ 30 MiB that
        # the agent would keep resident after it is freed. No secret field has an alias.
        for name, child in node.__dict__.items():
            yield from _references(child, name)
    elif isinstance(node, dict):
        for child_key, child in node.items():
            yield from _references(child, str(child_key))
    elif isinstance(node, list | tuple):
        for child in node:
            yield from _references(child, key)
    elif isinstance(node, str) and key in _SECRET_KEYS and _REFERENCE_RE.match(node):
        yield node


def secret_references(config: SiteConfig) -> list[str]:
    """Every secret reference in ``config`` (``${NAME}`` and ``file:PATH``), sorted."""
    return sorted(set(_references(config)))


def environment_secrets(config: SiteConfig) -> list[str]:
    """The ``${NAME}`` secret references in ``config``: a running process cannot see a new
    value for these (systemd reads ``EnvironmentFile=`` at start), only a restart can."""
    return sorted(reference for reference in set(_references(config)) if reference.startswith("${"))


def register_config_secrets(config: SiteConfig, base_dir: Path | None) -> int:
    """Resolve every secret reference in ``config`` and register its value; returns how
    many were registered. An unresolvable reference is skipped here: the component that
    needs it reports the error (naming the reference, never a value)."""
    return register_document_secrets(config, base_dir)


def register_document_secrets(data: Any, base_dir: Path | None) -> int:
    """:func:`register_config_secrets` for a file as read (a site or hub file that may not
    validate): what a command that prints about a file needs before it prints."""
    count = 0
    for reference in set(_references(data)):
        try:
            secret = resolve(reference, base_dir)
        except SecretError:
            continue
        register_secret(secret.reveal())
        count += 1
    return count
