"""A reading's value as people read it in an alert or a work order: shared by the rules'
templates, the direct MaintainX forwarder and the hub, so that all three write one number
the same way."""

from __future__ import annotations

from typing import Any


def number_text(value: Any, decimals: int | None) -> str:
    """A reading as text: rounded to ``decimals`` (default: whole numbers as they are, other
    numbers to 2 places); anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if decimals is None:
        if isinstance(value, int) or value.is_integer():
            return str(int(value)) if abs(value) < 1e15 else f"{value:g}"
        decimals = 2
    return f"{value:.{decimals}f}"
