"""What the configuration tests compare beyond equality: which options each model has set."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def fields_set(node: Any) -> Any:
    """Every model's set options, recursively (what ``exclude_unset`` dumps depend on)."""
    if isinstance(node, BaseModel):
        return (
            type(node).__name__,
            sorted(node.model_fields_set),
            {name: fields_set(value) for name, value in node.__dict__.items()},
        )
    if isinstance(node, dict):
        return {key: fields_set(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [fields_set(value) for value in node]
    return None
