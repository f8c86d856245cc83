"""Reading a saved meter state back: every field checked, so that a damaged state file is
refused with the field it lacks (:class:`MeterStateError`) rather than half restored."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from edge_agent.meters.samples import MeterStateError, Refusal

__all__ = ["MeterStateError"]  # re-exported: the restore methods raise it from here

STATE_SCHEMA = "edge-agent/meter-state@1"


def checked(state: Any, kind: str) -> Mapping[str, Any]:
    """``state`` as a mapping, if it is a saved state of this kind of meter."""
    if not isinstance(state, Mapping):
        raise MeterStateError("a meter state is a JSON object")
    if state.get("schema") != STATE_SCHEMA or state.get("kind") != kind:
        raise MeterStateError(
            f"not a {kind} meter state ({state.get('schema')!r}, {state.get('kind')!r})"
        )
    return state


def optional_integer(state: Mapping[str, Any], name: str) -> int | None:
    value = state.get(name)
    if value is None:
        return None
    return integer(state, name)


# Every integer of a meter's state is a count, a total in ns or a time in ns since 1970:
# never negative, and within 64 bits (a larger one from a damaged file would overflow the
# arithmetic at the next reading and stop the meter for good).
INTEGER_LIMIT = 2**63


def integer(state: Mapping[str, Any], name: str) -> int:
    value = state.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MeterStateError(f"{name}: an integer is needed, not {value!r}")
    if not 0 <= value < INTEGER_LIMIT:
        raise MeterStateError(f"{name}: {value} is out of range (0 to 2**63 - 1)")
    return value


def optional_number(state: Mapping[str, Any], name: str) -> float | None:
    value = state.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MeterStateError(f"{name}: a number is needed, not {value!r}")
    if not (math.isfinite(value) and 0 <= value < INTEGER_LIMIT):
        # NaN would stick to a total forever; a cumulative value is never negative
        raise MeterStateError(f"{name}: {value!r} is not a finite number from 0 to 2**63")
    return value


def mapping(state: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = state.get(name, {})
    if not isinstance(value, Mapping):
        raise MeterStateError(f"{name}: an object is needed")
    return dict(value)


def flag(state: Mapping[str, Any], name: str) -> bool | None:
    value = state.get(name)
    if value is not None and not isinstance(value, bool):
        raise MeterStateError(f"{name}: true, false or null is needed, not {value!r}")
    return value


def counts(state: Mapping[str, Any], name: str = "refused") -> dict[str, int]:
    value = state.get(name, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        raise MeterStateError(f"{name}: an object of counts is needed")
    return dict(value)


def refusals(refused: Mapping[str, int]) -> Counter[Refusal]:
    """The refusal counts of a saved state (a reason this version does not know is dropped)."""
    known = {str(r) for r in Refusal}
    return Counter({Refusal(k): v for k, v in refused.items() if k in known})
