"""A small validator for the OpenAPI 3.0 schema subset MaintainX's spec uses.

Covers type (with ``nullable``), required, properties, additionalProperties, items, enum,
oneOf/anyOf/allOf, minimum/maximum, format date-time and ``$ref`` within the document.
Returns a list of problems (empty: valid), each with a JSON path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
}


def resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def validate(
    root: dict[str, Any], schema: dict[str, Any], value: Any, path: str = "$"
) -> list[str]:
    schema = resolve(root, schema)
    if value is None:
        if (
            schema.get("nullable")
            or not schema
            or "type" not in schema
            and not any(k in schema for k in ("oneOf", "anyOf", "allOf", "properties", "enum"))
        ):
            return []
        if any(
            resolve(root, s).get("nullable")
            for s in schema.get("oneOf", []) + schema.get("anyOf", [])
        ):
            return []
        return [f"{path}: null is not allowed"]
    problems: list[str] = []
    kind = schema.get("type")
    if kind is not None and not _type_ok(kind, value):
        return [f"{path}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} > maximum {schema['maximum']}")
    if isinstance(value, str) and schema.get("format") == "date-time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{path}: {value!r} is not a date-time")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{path}: missing required {name!r}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                problems += validate(root, properties[name], item, f"{path}.{name}")
            elif extra is False:
                problems.append(f"{path}: unexpected property {name!r}")
            elif isinstance(extra, dict):
                problems += validate(root, extra, item, f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += validate(root, schema["items"], item, f"{path}[{index}]")
    for sub in schema.get("allOf", []):
        problems += validate(root, sub, value, path)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            matches = [not validate(root, sub, value, path) for sub in schema[key]]
            if key == "oneOf" and sum(matches) != 1 and not _lenient_one_of(schema[key], matches):
                problems.append(f"{path}: matches {sum(matches)} of oneOf, needs exactly 1")
            if key == "anyOf" and not any(matches):
                problems.append(f"{path}: matches none of anyOf")
    return problems


def _lenient_one_of(options: list[Any], matches: list[bool]) -> bool:
    # Specs often write oneOf for "integer or number" (or "integer or string" ids): a
    # number that matches several numeric options is still unambiguous.
    matched = [o for o, ok in zip(options, matches) if ok]
    return bool(matched) and all(o.get("type") in ("integer", "number") for o in matched)
