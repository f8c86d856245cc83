"""What the checks share: defensive readers of the raw document, what a sensor reads,
and unknown names with "did you mean"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from pydantic import ValidationError

from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document
from edge_agent.config.loader import YAML11_FALSE, YAML11_TRUE
from edge_agent.config.messages import did_you_mean
from edge_agent.config.models import Register, RegisterType

MODBUS: Final = ("modbus-tcp", "modbus-rtu")
YAML11_WORDS: Final = YAML11_TRUE | YAML11_FALSE


def items_of(value: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """The entries of a section that are mappings (the model reports the others)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict):
                yield key, item


def rules_of(doc: Document) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each rule that is a mapping, with its index in ``rules:``."""
    rules = doc.get("rules")
    if isinstance(rules, list):
        for index, rule in enumerate(rules):
            if isinstance(rule, dict):
                yield index, rule


def as_number(value: Any) -> float | None:
    """``value`` as a float if it is a number (not a bool), else ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def fmt(value: float) -> str:
    """A number as a message shows it (``85`` rather than ``85.0``)."""
    return f"{value:g}"


def register_of(raw: Any) -> Register | None:
    """The register a sensor names, or ``None`` when invalid (the model reports it)."""
    try:
        return Register.model_validate(raw)
    except ValidationError:
        return None


def protocol_of(doc: Document, connection: Any) -> str | None:
    """The protocol of the connection named ``connection``, if known."""
    if not isinstance(connection, str):
        return None
    protocol = doc.get("connections", connection, "protocol")
    return protocol if isinstance(protocol, str) else None


class KnownNames:
    """The names of each section, sorted once, and "did you mean" within a budget.

    A suggestion compares the unknown name with every known one (difflib, ~1 µs each): a
    site whose 2,000 rules name sensors that are not among its 11,000 would take half a
    minute. So one run of a check spends at most :attr:`BUDGET` comparisons; the unknown
    names after that (and only on such big sites) list the known names instead. A name
    misspelled the same way twice is looked up once."""

    BUDGET: Final = 300_000

    def __init__(self) -> None:
        self._sorted: dict[str, list[str]] = {}
        self._hints: dict[tuple[str, str], str] = {}
        self._spent = 0

    def of(self, section: str, known: dict[str, Any]) -> list[str]:
        """The names in ``section``, sorted."""
        if section not in self._sorted:
            self._sorted[section] = sorted(known)
        return self._sorted[section]

    def hint(self, section: str, name: str, names: list[str]) -> str:
        """``"; did you mean `x`?"``, or ``""`` (none near, or out of budget)."""
        memo = (section, name)
        if memo not in self._hints:
            if self._spent + len(names) > self.BUDGET:
                return ""
            self._spent += len(names)
            self._hints[memo] = did_you_mean(name, names)
        return self._hints[memo]


def unknown_reference(
    doc: Document,
    path: tuple[str | int, ...],
    kind: str,
    section: str,
    known_names: KnownNames | None = None,
) -> Iterator[Diagnostic]:
    """An error at ``path`` if the name there is not in ``section`` (with "did you mean")."""
    name = doc.get(*path)
    known = doc.get(section)
    if known is None:  # no such section at all: every reference into it is unknown
        known = {}
    if not isinstance(name, str) or not isinstance(known, dict) or name in known:
        return
    lookup = KnownNames() if known_names is None else known_names
    names = lookup.of(section, known)
    listed = f" (known: {', '.join(names[:12])}{', …' if len(names) > 12 else ''})" if names else ""
    hint = lookup.hint(section, name, names)
    yield doc.at(path, f"unknown {kind} `{name}`{hint or listed}")


INTEGER_TYPES: Final = frozenset(
    {
        RegisterType.INT16,
        RegisterType.UINT16,
        RegisterType.INT32,
        RegisterType.UINT32,
        RegisterType.INT64,
        RegisterType.UINT64,
    }
)


def kind_of_sensor(doc: Document, sensor_id: Any) -> str | None:
    """``"bool:<why>"``, ``"text:<why>"`` or ``"number:<why>"`` for a Modbus sensor whose
    register is valid; ``None`` when unknown (OPC UA types are only known at run time)."""
    if not isinstance(sensor_id, str):
        return None
    register = register_of(doc.get("sensors", sensor_id, "register"))
    if register is None:
        return None
    kind = register.value_type
    if kind is RegisterType.BOOL:
        what = register.table.value if register.table.is_bits else "type bool"
        return f"bool:sensor `{sensor_id}` is a {what}"
    if kind is RegisterType.STRING:
        return f"text:sensor `{sensor_id}` is a string register"
    if kind in INTEGER_TYPES and doc.get("sensors", sensor_id, "scale") is None:
        # Unscaled integers stay integers: `{value:x}` (hex of a status word) is fine.
        return f"integer:sensor `{sensor_id}` is {kind.value}"
    return f"number:sensor `{sensor_id}` is {kind.value}"


def kind_of_value(value: Any) -> str | None:
    """``"bool"``, ``"number"`` or ``"text"`` for a value written in the file."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return None
