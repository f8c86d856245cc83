"""Secret references: ``${ENV_VAR}`` or ``file:/path``. Never a literal in YAML.

Loading the site file does no I/O, so a reference stays a reference until a component
that needs the secret calls :func:`resolve`. A ``Secret`` never prints its value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Final

from pydantic import AfterValidator, PlainSerializer, SerializationInfo

from edge_agent.errors import EdgeAgentError
from edge_agent.redaction import register_secret

_ENV_RE: Final = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class SecretError(EdgeAgentError):
    """A secret reference that cannot be resolved (unset variable, unreadable file)."""


class Secret:
    """A resolved secret. ``str()`` and ``repr()`` show ``***``; ``.reveal()`` the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        # Registered where it is resolved: from here on no output of this process shows it,
        # whichever component (agent, hub, a command) resolved it.
        register_secret(value)
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"


def check_reference(value: str) -> str:
    """Accept ``${NAME}`` or ``file:PATH``; refuse anything that looks like the secret itself."""
    if _ENV_RE.match(value) or (value.startswith("file:") and len(value) > len("file:")):
        return value
    # Near misses of a reference get their own words; the value is never echoed (it
    # could be the secret itself).
    if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("an environment variable reference needs braces: write ${NAME}")
    if value.startswith("${") or value.endswith("}"):
        raise ValueError(
            "not a valid reference: write ${NAME} with letters, digits and '_' only "
            "(e.g. ${MQTT_PASSWORD})"
        )
    raise ValueError(
        "a secret must not be written in the site file; reference it as ${ENV_VAR} "
        "(set in the service's EnvironmentFile) or file:/path/to/secret"
    )


KEEP_REFERENCES: Final = "keep_secret_references"
"""Serialization context key: JSON written for the agent's own use (the last good copy, the
site check's result from its child process) keeps the references as written."""


def _shown_reference(reference: str, info: SerializationInfo) -> str:
    context = info.context
    if isinstance(context, dict) and context.get(KEEP_REFERENCES) is True:
        return reference
    return "***"


SecretRef = Annotated[
    str,
    AfterValidator(check_reference),
    PlainSerializer(_shown_reference, return_type=str, when_used="json"),
]
"""A reference to a secret, checked on load, resolved on run."""


def resolve(reference: str, base_dir: Path | None = None) -> Secret:
    """Turn ``${NAME}`` or ``file:PATH`` into the secret. Relative paths are taken from
    ``base_dir`` (the site file's folder). Raises :class:`SecretError`, naming the
    reference but never a value."""
    env = _ENV_RE.match(reference)
    if env:
        name = env.group(1)
        value = os.environ.get(name)
        if value is None:
            raise SecretError(f"environment variable {name} is not set")
        return Secret(value)
    if reference.startswith("file:"):
        path = Path(reference[len("file:") :])
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            return Secret(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from exc
    raise SecretError("not a secret reference")
