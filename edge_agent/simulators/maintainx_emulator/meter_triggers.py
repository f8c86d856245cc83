"""``POST /metertriggers`` as the spec describes it: the body's checks and the stored shape.

A meter trigger is how MaintainX itself opens a work order from meter readings (a PM every
500 h of run time, a temperature above a limit). The emulator stores triggers, answers them
as the spec does, and evaluates the three conditions edge-agent declares (:func:`fires`):
``INCREMENTED_BY`` (every ``amount`` counted from the first reading, or from
``nextTriggerValue``), ``IS_GREATER`` and ``IS_LESS`` (once per crossing). The others are
stored and never fire.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from edge_agent.simulators.maintainx_emulator.errors import validation_error

CONDITIONS: Final = (
    "DECREMENTED_BY",
    "INCREMENTED_BY",
    "IS_EQUAL",
    "IS_GREATER",
    "IS_LESS",
    "INCREMENTED_BY_BASED_ON_LAST_READING",
    "DECREMENTED_BY_BASED_ON_LAST_READING",
)
TRIGGER_FIELDS: Final = frozenset(
    [
        "meterId",
        "workOrderTemplateId",
        "amount",
        "condition",
        "dataPoints",
        "description",
        "minDateForProcessing",
        "name",
        "nextTriggerValue",
        "period",
    ]
)
# What GET /metertriggers returns per item (the list schema's properties).
LIST_FIELDS: Final = ("id", "name", "meterId")


def _number(body: Mapping[str, Any], name: str, path: str, *, required: bool) -> float | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise validation_error(f"{name} must be a number", f"{path}.{name}", value)
    return value


def _integer(body: Mapping[str, Any], name: str, path: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise validation_error(f"{name} must be an integer", f"{path}.{name}", value)
    return value


def checked_trigger(body: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ``meterTrigger`` fields and the ``workOrderTemplate`` of a create request, checked
    against the request schema (raises the 400 MaintainX gives)."""
    if not isinstance(body, dict):
        raise validation_error("Body must be a JSON object")
    unknown = sorted(set(body) - {"meterTrigger", "workOrderTemplate"})
    if unknown:
        raise validation_error(f"Unknown field: {unknown[0]}", unknown[0])
    trigger = body.get("meterTrigger")
    if not isinstance(trigger, dict):
        raise validation_error("meterTrigger is required", "meterTrigger")
    path = "meterTrigger"
    unknown = sorted(set(trigger) - TRIGGER_FIELDS)
    if unknown:
        raise validation_error(f"Unknown field: {unknown[0]}", f"{path}.{unknown[0]}")
    meter_id = _integer(trigger, "meterId", path)
    if meter_id is None:
        raise validation_error("meterId is required", f"{path}.meterId")
    amount = _number(trigger, "amount", path, required=True)
    condition = trigger.get("condition")
    if condition not in CONDITIONS:
        raise validation_error(
            f"condition must be one of {', '.join(CONDITIONS)}", f"{path}.condition", condition
        )
    name = trigger.get("name")
    if not isinstance(name, str) or not name.strip():
        raise validation_error("name is required", f"{path}.name", name)
    data_points = trigger.get("dataPoints")
    if data_points is not None and not (
        isinstance(data_points, dict)
        and all(
            isinstance(data_points.get(k), int) and not isinstance(data_points.get(k), bool)
            for k in ("numerator", "denominator")
        )
    ):
        raise validation_error(
            "dataPoints needs integer numerator and denominator", f"{path}.dataPoints"
        )
    description = trigger.get("description")
    if description is not None and not isinstance(description, str):
        raise validation_error("description must be a string", f"{path}.description")
    start = trigger.get("minDateForProcessing")
    if start is not None and not isinstance(start, str):
        raise validation_error("minDateForProcessing must be a date-time", f"{path}.minDate")
    fields = {
        "meterId": meter_id,
        "amount": amount,
        "condition": condition,
        "name": name,
        "dataPoints": copy.deepcopy(data_points),
        "description": description,
        "minDateForProcessing": start,
        "nextTriggerValue": _number(trigger, "nextTriggerValue", path, required=False),
        "period": _integer(trigger, "period", path),
        "workOrderTemplateId": _integer(trigger, "workOrderTemplateId", path),
    }
    template = body.get("workOrderTemplate")
    if template is not None and not isinstance(template, dict):
        raise validation_error("workOrderTemplate must be an object", "workOrderTemplate")
    if template is not None:
        procedure_template = template.get("procedureTemplateId")
        if procedure_template is not None and (
            isinstance(procedure_template, bool) or not isinstance(procedure_template, int)
        ):
            raise validation_error(
                "procedureTemplateId must be an integer",
                "workOrderTemplate.procedureTemplateId",
                procedure_template,
            )
        data = template.get("data")
        if data is not None and not isinstance(data, dict):
            raise validation_error("data must be an object", "workOrderTemplate.data")
    return fields, copy.deepcopy(template)


def fires(trigger: dict[str, Any], value: float) -> bool:
    """Whether a reading of ``value`` opens a work order, updating the trigger's ``state``
    and ``nextTriggerValue`` as MaintainX shows them."""
    condition, amount = trigger["condition"], trigger["amount"]
    if condition == "INCREMENTED_BY":
        due = trigger.get("nextTriggerValue")
        if due is None:  # the first reading: the count starts here
            trigger["nextTriggerValue"] = value + amount
            trigger["state"] = "STABLE"
            return False
        if value < due:
            return False
        while trigger["nextTriggerValue"] <= value:  # one work order per reading, however far
            trigger["nextTriggerValue"] += amount
        trigger["state"] = "TRIGGERED"
        return True
    if condition in ("IS_GREATER", "IS_LESS"):
        beyond = value > amount if condition == "IS_GREATER" else value < amount
        was = trigger["state"] == "TRIGGERED"
        trigger["state"] = "TRIGGERED" if beyond else "STABLE"
        return beyond and not was
    return False
