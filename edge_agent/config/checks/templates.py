"""Work-order templates: known fields only, with format specs that fit the value."""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Iterable, Iterator
from typing import Any, Final

from edge_agent.config.checks.common import (
    kind_of_sensor,
    kind_of_value,
    rules_of,
)
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document
from edge_agent.config.messages import suggest
from edge_agent.config.models import (
    TEMPLATE_FIELDS,
)

TEMPLATE_KEYS: Final = ("title", "description")
_SAMPLE_FOR_FIELD: Final[dict[str, Any]] = {
    "value": 97.25,
    "peak": 97.5,
    "limit": 85.0,
    "priority": "HIGH",
}
# What a sample of each kind of value looks like (``kinds`` of :func:`template_problems`).
_SAMPLE_OF_KIND: Final[dict[str, Any]] = {
    "number": 97.25,
    "integer": 97,
    "bool": True,
    "text": "text",
}
_KIND_WORDS: Final[dict[str, str]] = {
    "number": "a number",
    "integer": "a whole number",
    "bool": "a bool",
    "text": "text",
}


def _unknown_field(name: str, fields: list[str]) -> str:
    """ "did you mean" for a typo; for a field we do not have (``{asset.location}``), the
    fields of that kind there are, rather than a near spelling that means something else."""
    nearest = suggest(name, fields)
    close = nearest is not None and (
        nearest.lower() == name.lower()
        or difflib.SequenceMatcher(None, name.lower(), nearest.lower()).ratio() >= 0.7
    )
    if nearest is not None and close:
        return f"unknown template field {{{name}}}; did you mean {{{nearest}}}?"
    prefix = name.split(".", 1)[0]
    kin = [f"{{{field}}}" for field in fields if field.startswith(f"{prefix}.")]
    if "." in name and kin:
        return f"unknown template field {{{name}}}; the {prefix} fields are {', '.join(kin)}"
    return f"unknown template field {{{name}}}; fields: {', '.join(fields)}"


def template_problems(template: str, kinds: dict[str, str] | None = None) -> Iterable[str]:
    """What is wrong with one work-order template (empty when it renders).

    ``kinds`` says what the rule's ``value``, ``peak`` and ``limit`` hold (``"number"``,
    ``"integer"``, ``"bool"`` or ``"text"``, with the reason after a ``:`` for the
    message, e.g. ``"bool:sensor `p101_running` is a coil"``); a number by default."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        yield f"{exc}; write {{{{ and }}}} for literal braces"
        return
    fields = sorted(TEMPLATE_FIELDS)
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS:
            yield _unknown_field(name, fields)
            continue
        if conversion:
            yield f"{{{name}!{conversion}}}: conversions are not supported, use a format spec"
            continue
        if spec and "{" in spec:
            yield f"{{{name}:{spec}}}: nested fields in a format spec are not supported"
            continue
        if re.search(r"\d{4,}", spec or ""):
            yield f"{{{name}:{spec}}}: a width or precision above 999 is not supported"
            continue
        kind, _, why = (kinds or {}).get(name, "").partition(":")
        if kind == "bool" and spec:
            # format(True, ".1f") is "1.0" and format(True, ">5") is "    1": any spec
            # turns True/False into a number the reader of the work order cannot place.
            yield (
                f"{{{name}:{spec}}}: {name} is a bool here ({why}); with a format spec "
                f"True prints as {format(True, spec).strip()!r}: write {{{name}}} "
                "(True or False)"
            )
            continue
        sample = _SAMPLE_OF_KIND[kind] if kind else _SAMPLE_FOR_FIELD.get(name, "text")
        try:
            format(sample, spec or "")
        except ValueError:
            if kind:
                what = f"{_KIND_WORDS[kind]} here ({why})"
            else:
                what = "a number" if name in _SAMPLE_FOR_FIELD else "text"
            yield f"{{{name}:{spec}}}: format spec `{spec}` does not fit {name}, which is {what}"


def check_templates(doc: Document) -> Iterator[Diagnostic]:
    """Work-order templates use only the known fields, with format specs that fit what the
    rule's sensor holds (a bool coil or a string register is not a number)."""
    for index, rule in rules_of(doc):
        work_order = rule.get("work_order")
        if not isinstance(work_order, dict):
            continue
        kinds: dict[str, str] = {}
        sensor_kind = kind_of_sensor(doc, rule.get("sensor"))
        if sensor_kind is not None:
            kinds["value"] = kinds["peak"] = sensor_kind
        if rule.get("equals") is not None:
            # An `equals:` rule reports its target as the limit.
            target_kind = kind_of_value(rule.get("equals"))
            if target_kind is not None:
                kinds["limit"] = f"{target_kind}:the rule's `equals:` target"
        for key in TEMPLATE_KEYS:
            template = work_order.get(key)
            if isinstance(template, str):
                for problem in template_problems(template, kinds):
                    yield doc.at(("rules", index, "work_order", key), problem)
