"""One instance for equal parts of a site: the running agent keeps its configuration for its
whole life, and most of a big site's small sections repeat (a hundred rules with the same
``chattering:``, ``high:`` and ``work_order:``, sensors with the same ``scale:``).

The models are frozen: a shared instance is never changed through one of its owners.
Equal means the same model class, the same options set and equal values of the same
types (``1`` and ``1.0`` stay apart, as do ``0.0`` and ``-0.0``): what ``model_dump``,
``print-config`` and the last good copy show is unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from edge_agent.config.models.rules import Rule
from edge_agent.config.models.sensors import Register, Sensor
from edge_agent.config.models.site import SiteConfig

Canonical = dict[tuple[Any, ...], BaseModel]

ONE_EACH: frozenset[type[BaseModel]] = frozenset({SiteConfig, Sensor, Rule})
"""Sections with something of their own (an id's, an address): walked into, never compared
(comparing 10,000 sensors that all differ would cost start-up time)."""
NOTHING_INSIDE: frozenset[type[BaseModel]] = frozenset({Register})
"""Sections of their own with no section inside: not even walked into."""

_CONTAINERS = (dict, list, tuple, BaseModel)
# The values of most fields: skipped without ``isinstance(value, BaseModel)``, which goes
# through pydantic's ABC metaclass (≈ 1 µs; 90,000 fields at 10,000 sensors).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def share_equal_models(model: BaseModel) -> BaseModel:
    """Replace every model inside ``model`` that equals one seen before by that one (in
    place; ``model`` itself stays). Returns ``model``."""
    _walk(model, {})
    return model


def _walk(value: Any, canonical: Canonical) -> Any:
    """``value`` with what it holds shared; for a model, the instance to keep."""
    if isinstance(value, BaseModel):
        if type(value) in NOTHING_INSIDE:
            return value
        fields = value.__dict__
        for name, item in fields.items():
            if type(item) not in _SCALARS and isinstance(item, _CONTAINERS):
                kept = _walk(item, canonical)
                if kept is not item:
                    fields[name] = kept  # an equal value: the frozen model does not change
        if type(value) in ONE_EACH:
            return value
        key = _model_key(value)
        return value if key is None else canonical.setdefault(key, value)
    if isinstance(value, dict):
        for name, item in value.items():
            if type(item) not in _SCALARS and isinstance(item, _CONTAINERS):
                kept = _walk(item, canonical)
                if kept is not item:
                    value[name] = kept  # same key: the dict keeps its size
        return value
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, _CONTAINERS):
                value[index] = _walk(item, canonical)
        return value
    if isinstance(value, tuple):
        kept_items = tuple(_walk(item, canonical) for item in value)
        same = all(a is b for a, b in zip(kept_items, value, strict=True))
        return value if same else kept_items
    return value


def _model_key(model: BaseModel) -> tuple[Any, ...] | None:
    """What makes ``model`` equal to another (the models it holds are shared already, so
    they count by identity); None when it holds something not safely compared."""
    if model.__pydantic_private__ or model.__pydantic_extra__:
        return None
    values = _key(tuple(model.__dict__.values()))
    if values is None:
        return None
    names = tuple(model.__dict__)
    return (type(model), frozenset(model.__pydantic_fields_set__), names, values)


def _key(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return ("model", id(value))
    if isinstance(value, float):
        return (float, repr(value))  # 0.0 and -0.0 are equal but not alike
    if isinstance(value, list | tuple):
        items = [_key(item) for item in value]
        return None if any(item is None for item in items) else (type(value), tuple(items))
    if isinstance(value, dict):
        pairs = [(_key(name), _key(item)) for name, item in value.items()]
        if any(item is None for _, item in pairs):
            return None
        return (dict, tuple(pairs))
    try:
        hash(value)
    except TypeError:
        return None
    return (type(value), value)
