"""A reloaded configuration keeps the running one's instances for what did not change.

The reload brings a whole new set of models (10,000 sensors: ≈ 8 MiB). A kept source holds
the running configuration's sensors, so both sets stayed resident after every reload, and
the rule engine rebuilt everything since nothing told it the rules were the same. Adopting
the running instances for every alike section frees the new duplicates at once (they were
the last allocated: whole arenas go back) and lets the stages see "unchanged" by identity.

Alike is stricter than ``==``: the same model class, the same options set, equal values of
the same types (``1`` and ``1.0``, ``0.0`` and ``-0.0`` stay apart), dicts in the same
order; so ``model_dump``, ``print-config`` and the last good copy are what the new file
says. The models are frozen: an adopted instance is never changed through its new owner.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from edge_agent.config.models import SiteConfig

_SCALARS = (str, int, bool, type(None))


def alike(a: Any, b: Any) -> bool:
    """``a`` and ``b`` are interchangeable in a configuration (see the module's doc)."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind in _SCALARS:
        return bool(a == b)
    if kind is float:
        return repr(a) == repr(b)  # 0.0 and -0.0 are equal, not alike; nan is alike
    if isinstance(a, BaseModel):
        return (
            a.__pydantic_fields_set__ == b.__pydantic_fields_set__
            and alike(a.__pydantic_private__, b.__pydantic_private__)
            and alike(a.__pydantic_extra__, b.__pydantic_extra__)
            and alike(a.__dict__, b.__dict__)
        )
    if kind is dict:
        if len(a) != len(b):
            return False
        return all(
            alike(ka, kb) and alike(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if kind is list or kind is tuple:
        return len(a) == len(b) and all(alike(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)  # enums, durations, frozensets: equal values of one type


def adopt_unchanged(old: SiteConfig, new: SiteConfig) -> None:
    """In ``new`` (in place), every section alike in ``old`` becomes ``old``'s instance:
    a whole top-level section, or else each sensor, connection, asset, meter and rule
    (rules by id) of its own."""
    fields = new.__dict__
    for name, value in list(fields.items()):
        before = old.__dict__.get(name)
        if alike(before, value):
            fields[name] = before
        elif type(value) is dict and type(before) is dict:
            for key, item in value.items():
                kept = before.get(key)
                if kept is not None and kept is not item and alike(kept, item):
                    value[key] = kept  # same key: the dict keeps its order and size
        elif type(value) is list and type(before) is list:
            by_id = {getattr(item, "id", None): item for item in before}
            for index, item in enumerate(value):
                kept = by_id.get(getattr(item, "id", None))
                if kept is not None and kept is not item and alike(kept, item):
                    value[index] = kept
