"""What the models expect at a place in the data: the keys a mapping may hold there, and
whether a boolean belongs there.

Used to say "did you mean `poll`?" for an unknown key, and to catch the YAML 1.1 words
(``on``, ``yes``…) where a boolean is expected. Works on any pydantic model, so the hub's
file gets the same help as the site file.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from edge_agent.config.diagnostics import ConfigPath


def _flatten(annotation: Any) -> list[Any]:
    """``Annotated[X | None, ...]`` → ``[X, NoneType]``: the plain types a value may have."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _flatten(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        flat: list[Any] = []
        for arg in get_args(annotation):
            flat.extend(_flatten(arg))
        return flat
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_annotation(model: type[BaseModel], key: str) -> Any | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _fits(model: type[BaseModel], data: Any) -> bool:
    """False when ``data`` names another member of a tagged union (``protocol: opcua``)."""
    if not isinstance(data, dict):
        return True
    for name, info in model.model_fields.items():
        key = info.alias or name
        if get_origin(info.annotation) is Literal and key in data:
            return data[key] in get_args(info.annotation)
    return True


def _narrow(candidates: list[Any], data: Any) -> list[Any]:
    models = [c for c in candidates if _is_model(c)]
    fitting = [m for m in models if _fits(m, data)]
    if models and fitting and len(fitting) < len(models):
        return [c for c in candidates if not _is_model(c) or c in fitting]
    return candidates


def types_at(root: type[BaseModel], data: Any, path: ConfigPath) -> list[Any]:
    """The plain types the models allow at ``path`` (empty when the path is unknown)."""
    candidates: list[Any] = [root]
    node = data
    for element in path:
        candidates = _narrow(candidates, node)
        following: list[Any] = []
        for candidate in candidates:
            origin = get_origin(candidate)
            if _is_model(candidate) and isinstance(element, str):
                annotation = _field_annotation(candidate, element)
                if annotation is not None:
                    following.extend(_flatten(annotation))
            elif origin is dict and isinstance(element, str):
                following.extend(_flatten(get_args(candidate)[1]))
            elif origin is list and isinstance(element, int):
                following.extend(_flatten(get_args(candidate)[0]))
        candidates = following
        if isinstance(node, dict):
            node = node.get(element) if isinstance(element, str) else None
        elif isinstance(node, list) and isinstance(element, int) and 0 <= element < len(node):
            node = node[element]
        else:
            node = None
    return _narrow(candidates, node)


def allowed_keys(root: type[BaseModel], data: Any, path: ConfigPath) -> list[str]:
    """The keys a mapping at ``path`` may hold (aliases as written in YAML)."""
    keys: list[str] = []
    for candidate in types_at(root, data, path):
        if _is_model(candidate):
            for name, info in candidate.model_fields.items():
                key = info.alias or name
                if key not in keys:
                    keys.append(key)
    return keys


def expects_bool(root: type[BaseModel], data: Any, path: ConfigPath) -> tuple[bool, bool]:
    """(a boolean is allowed here, only a boolean is allowed here)."""
    found = [c for c in types_at(root, data, path) if c is not type(None)]
    has_bool = bool in found
    return has_bool, has_bool and all(c is bool for c in found)
