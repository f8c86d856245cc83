"""Pydantic's validation errors in words a site engineer understands, at the right place.

Pydantic reports ``loc`` paths that include union branch names (``modbus-tcp``, ``int``)
and messages written for programmers ("Input should be a valid integer, unable to parse
string as an integer"). Here each error becomes a :class:`Diagnostic` whose path is the
path in the YAML data and whose message names what to write instead.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from edge_agent.config.diagnostics import ConfigPath, Diagnostic
from edge_agent.config.schema_paths import allowed_keys

if TYPE_CHECKING:
    from edge_agent.config.document import Document

_PATTERN_HELP: Final[dict[str, str]] = {
    r"^[a-z0-9][a-z0-9-]{0,62}$": (
        "is not a valid id: use 1 to 63 lowercase letters, digits and '-', "
        "starting with a letter or digit (e.g. plant-07)"
    ),
    r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$": (
        "is not a valid name: use letters, digits, '_', '.' and '-' (up to 128), "
        "starting with a letter or digit"
    ),
    r"^opc\.tcp://\S+$": "is not an OPC UA endpoint; write e.g. opc.tcp://10.0.7.30:4840",
    r"^https?://\S+$": "is not a URL; write e.g. https://api.getmaintainx.com/v1",
}


def suggest(word: str, options: Sequence[str]) -> str | None:
    """The option nearest to ``word`` (case-insensitive first), or ``None``."""
    for option in options:
        if option.lower() == word.lower():
            return option
    lowered = {option.lower(): option for option in options}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


# Words other tools use for our keys (Home Assistant's Modbus, Node-RED, Telegraf, alarm
# textbooks): an engineer who writes `slave: 3` meant `unit_id: 3`.
KEY_SYNONYMS: Final[dict[str, tuple[str, ...]]] = {
    "slave": ("unit_id",),
    "slave_id": ("unit_id",),
    "device_id": ("unit_id",),
    "unit": ("unit_id",),
    "ip": ("host",),
    "ip_address": ("host",),
    "hostname": ("host",),
    "scan_interval": ("poll",),
    "interval": ("poll",),
    "poll_interval": ("poll",),
    "url": ("endpoint", "base_url"),
    "data_type": ("type",),
    "datatype": ("type",),
    "input_type": ("table",),
    "register_type": ("table",),
    "swap": ("word_order", "byte_order"),
    "threshold": ("limit",),
    "setpoint": ("limit",),
    "hysteresis": ("deadband",),
    "delay": ("on_delay",),
    "token": ("api_key",),
    "apikey": ("api_key",),
    "port_name": ("device",),
    "baud": ("baudrate",),
    "baud_rate": ("baudrate",),
    "multiplier": ("factor",),
    "scale_factor": ("factor",),
}


def suggest_key(key: str, allowed: Sequence[str]) -> str | None:
    """The allowed key meant by an unknown ``key``: a known synonym, else the nearest."""
    for synonym in KEY_SYNONYMS.get(key.lower(), ()):
        if synonym in allowed:
            return synonym
    return suggest(key, allowed)


# Words other tools and device manuals use for our values: `parity: none` is N, and a
# manual's "float" or "REAL" is the 32-bit IEEE float (not float64, the nearest spelling).
VALUE_SYNONYMS: Final[dict[str, str]] = {
    "none": "N",
    "no": "N",
    "even": "E",
    "odd": "O",
    "float": "float32",
    "real": "float32",
    "single": "float32",
    "double": "float64",
    "lreal": "float64",
    "int": "int16",
    "short": "int16",
    "word": "uint16",
    "uint": "uint16",
    "ushort": "uint16",
    "dint": "int32",
    "long": "int32",
    "dword": "uint32",
    "udint": "uint32",
    "ulong": "uint32",
    "lint": "int64",
    "lword": "uint64",
    "ulint": "uint64",
    "boolean": "bool",
    "bit": "bool",
    "coils": "coil",
    "holding_register": "holding",
    "holding_registers": "holding",
    "input_register": "input",
    "input_registers": "input",
    "discrete_input": "discrete",
    "discrete_inputs": "discrete",
    "critical": "HIGH",
    "urgent": "HIGH",
}
# Register layouts as device manuals name them, in our two keys.
ORDER_NAMES: Final[dict[str, str]] = {
    "abcd": "word_order: big, byte_order: big",
    "cdab": "word_order: little, byte_order: big",
    "badc": "word_order: big, byte_order: little",
    "dcba": "word_order: little, byte_order: little",
    "swap": "word_order: little (swapped words, CDAB)",
    "swapped": "word_order: little (swapped words, CDAB)",
    "word": "word_order: little (swapped words, CDAB)",
    "byte": "byte_order: little (swapped bytes, BADC)",
    "word_byte": "word_order: little, byte_order: little (DCBA)",
}


def value_hint(word: str, options: Sequence[str]) -> str:
    """``"; did you mean `N`?"`` for a value another tool's word names, else the nearest
    spelling (``""`` when nothing is near)."""
    meant = VALUE_SYNONYMS.get(word.lower())
    if meant is not None and meant in options:
        return f"; did you mean `{meant}`?"
    if set(options) == {"big", "little"} and word.lower() in ORDER_NAMES:
        return f"; {word} is {ORDER_NAMES[word.lower()]}"
    return did_you_mean(word, options)


def did_you_mean(word: str, options: Sequence[str]) -> str:
    """``"; did you mean `poll`?"`` or ``""``."""
    nearest = suggest(word, options)
    return f"; did you mean `{nearest}`?" if nearest else ""


def describe_value(value: Any) -> str:
    """How a value reads to a person: ``a list``, ``the number 3``, ``"abc"``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = str(value)
    return f'"{text[:60]}…"' if len(text) > 60 else f'"{text}"'


def _options(expected: str) -> list[str]:
    return re.findall(r"'([^']*)'", expected) or [
        part.strip() for part in re.split(r",| or ", expected) if part.strip()
    ]


def _one_of(value: Any, options: list[str]) -> str:
    if len(options) == 1:
        return f"must be {options[0]}, got {describe_value(value)}"
    shown = ", ".join(options)
    hint = value_hint(str(value), options) if isinstance(value, str) else ""
    return f"{describe_value(value)} is not one of: {shown}{hint}"


_DECIMAL_COMMA: Final = re.compile(r"\s*[+-]?\d+,\d+\s*")
_NUMBER_WITH_UNIT: Final = re.compile(r"\s*([+-]?\d+(?:[.,]\d+)?)\s*([^\d\s,.].*)")


def number_hint(value: Any) -> str:
    """What to write instead of text that is nearly a number: ``48,5`` or ``80 C``."""
    if not isinstance(value, str):
        return ""
    if _DECIMAL_COMMA.fullmatch(value):
        return f"; use a dot for decimals: {value.strip().replace(',', '.')}"
    match = _NUMBER_WITH_UNIT.fullmatch(value)
    if match:
        number = match.group(1).replace(",", ".")
        return (
            f"; write the number alone ({number}): the unit goes in the sensor's `unit:`, "
            "and limits are in that unit"
        )
    return ""


_KIND_OF_TYPE: Final[dict[str, str]] = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
}


def _message(error: ErrorDetails, known_keys: list[str]) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    key = str(error["loc"][-1]) if error["loc"] else ""
    named = bool(error["loc"]) and isinstance(error["loc"][-1], str)  # a key, not `[3]`
    if kind == "missing":
        return f"`{key}` is required"
    if kind == "extra_forbidden":
        if key.isdigit():
            # `{limit: 48,5}`: inside braces YAML reads the decimal comma as a separator.
            return (
                f"unknown key `{key}`; a decimal comma? write the number with a dot "
                "(e.g. `48.5`, not `48,5`)"
            )
        meant = suggest_key(key, known_keys)
        if meant:
            return f"unknown key `{key}`; did you mean `{meant}`?"
        return f"unknown key `{key}`; allowed here: {', '.join(known_keys)}"
    if kind == "union_tag_invalid":
        options = _options(str(ctx.get("expected_tags", "")))
        field = str(ctx.get("discriminator", "")).strip("'")
        return f"{field} {_one_of(ctx.get('tag'), options)}"
    if kind == "union_tag_not_found":
        field = str(ctx.get("discriminator", "")).strip("'")
        return f"`{field}:` is required"
    if kind in ("literal_error", "enum"):
        return _one_of(value, _options(str(ctx.get("expected", ""))))
    if kind == "string_pattern_mismatch":
        help_text = _PATTERN_HELP.get(str(ctx.get("pattern")))
        if help_text:
            return f"{describe_value(value)} {help_text}"
        return f"{describe_value(value)} does not have the expected form ({ctx.get('pattern')})"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected a whole number, got {describe_value(value)}{number_hint(value)}"
    if kind in ("float_parsing", "float_type", "finite_number"):
        return f"expected a (finite) number, got {describe_value(value)}{number_hint(value)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {describe_value(value)}"
    if kind == "string_type":
        return f"expected text, got {describe_value(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        if value is None and named:
            # `assets:` with every entry commented out below it.
            return (
                f"`{key}:` is empty: indent its entries under it, write `{key}: {{}}`, "
                "or remove the line"
            )
        return f"expected a mapping (`key: value` lines), got {describe_value(value)}"
    if kind == "list_type":
        if value is None and named:
            return (
                f"`{key}:` is empty: put `- ` items under it, write `{key}: []`, or remove the line"
            )
        return f"expected a list (`- item` lines or [a, b]), got {describe_value(value)}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, name = bounds[kind]
        return f"must be {words} {ctx.get(name)}, got {value}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"is longer than {ctx.get('max_length')} characters"
    return str(error["msg"])


def _has(node: Any, element: int | str) -> bool:
    if isinstance(node, dict):
        return isinstance(element, str) and element in node
    return isinstance(node, list) and isinstance(element, int) and 0 <= element < len(node)


def _data_path(
    loc: tuple[int | str, ...], data: Any, missing: bool
) -> tuple[ConfigPath, list[str], bool]:
    """Map pydantic's ``loc`` onto the data: (path, skipped union branch names, is a key)."""
    path: list[str | int] = []
    skipped: list[str] = []
    is_key = False
    node = data
    for index, element in enumerate(loc):
        last = index == len(loc) - 1
        if element == "[key]":
            is_key = True
        elif _has(node, element):
            path.append(element)
            node = node[element]
        elif last and missing and isinstance(node, dict):
            path.append(element)  # a missing key: the path names it, the mark is the parent's
            node = None
        else:
            skipped.append(str(element))
    return tuple(path), skipped, is_key


def translate(exc: ValidationError, doc: Document, model_cls: type[BaseModel]) -> list[Diagnostic]:
    """Every error of ``exc`` as a diagnostic at its place in ``doc``'s files."""
    grouped: dict[ConfigPath, list[tuple[ErrorDetails, list[str], bool]]] = {}
    for error in exc.errors(include_url=False):
        path, skipped, is_key = _data_path(
            tuple(error["loc"]), doc.data, error["type"] == "missing"
        )
        grouped.setdefault(path, []).append((error, skipped, is_key))
    # A misspelt required key is one mistake: report the unknown key with its "did you
    # mean", not also the key it was meant to be as missing.
    missing = {path for path, errors in grouped.items() if errors[0][0]["type"] == "missing"}
    typos: set[ConfigPath] = set()
    for path, errors in grouped.items():
        if errors[0][0]["type"] == "extra_forbidden":
            meant = suggest_key(str(path[-1]), allowed_keys(model_cls, doc.data, path[:-1]))
            if meant is not None and (*path[:-1], meant) in missing:
                typos.add((*path[:-1], meant))
    diagnostics: list[Diagnostic] = []
    for path, errors in grouped.items():
        if path in typos:
            continue
        error, skipped, is_key = errors[0]
        branches = {s[-1] for _, s, _ in errors if s}
        if len(errors) > 1 and len(branches) == len(errors) and branches <= set(_KIND_OF_TYPE):
            # `bool | float | str` failed in every branch: one message, not three.
            names = [_KIND_OF_TYPE[b] for b in sorted(branches)]
            kinds = ", ".join(names[:-1]) + f" or {names[-1]}"
            message = f"expected {kinds}, got {describe_value(error.get('input'))}"
            diagnostics.append(doc.at(path, message))
            continue
        for error, _skipped, is_key in errors:
            kind = error["type"]
            known = (
                allowed_keys(model_cls, doc.data, path[:-1]) if kind == "extra_forbidden" else []
            )
            message = _message(error, known)
            if kind == "missing":
                diagnostics.append(doc.at(path, message, mark_path=path[:-1]))
            elif kind == "union_tag_invalid":
                field = str(dict(error.get("ctx") or {}).get("discriminator", "")).strip("'")
                diagnostics.append(doc.at((*path, field), message))
            else:
                at = _field_at_fault(doc, path, message) if kind == "value_error" else path
                diagnostics.append(doc.at(at, message, key=is_key or kind == "extra_forbidden"))
    return diagnostics


# A model-level check names the model (`register`); the engineer has to change one key of
# it. Point at that key, so line, column and path name the value to fix.
_FIELD_AT_FAULT: Final = (
    (re.compile(r"^an? (coil|discrete) holds single bits"), "type"),
    (re.compile(r"^an? (holding|input) register holds 16 bits"), "type"),
    (re.compile(r"^a string register needs `length:`"), "type"),
    (re.compile(r"^`bit:` picks one bit"), "bit"),
    (re.compile(r"^`length:` is for string registers"), "length"),
    (re.compile(r"^address \d+ \+ \d+ registers runs past"), "address"),
    (re.compile(r"^password is set but username"), "password"),
    (re.compile(r"^security policy \S+ needs"), "policy"),
    (re.compile(r"^mode is \S+ but there is no"), "mode"),
)


def _field_at_fault(doc: Document, path: ConfigPath, message: str) -> ConfigPath:
    node = doc.get(*path)
    if isinstance(node, dict):
        for pattern, key in _FIELD_AT_FAULT:
            if pattern.match(message) and key in node:
                return (*path, key)
    return path
