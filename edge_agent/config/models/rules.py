"""The `rules:` section: one condition per rule, its timing, escalation and the work order
it files."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.config.models.base import (
    Chattering,
    Model,
    Name,
    Priority,
)
from edge_agent.config.units import Duration, parse_duration


class HighLimit(Model):
    limit: float
    deadband: Annotated[float, Field(ge=0)] = 0.0


class LowLimit(Model):
    limit: float
    deadband: Annotated[float, Field(ge=0)] = 0.0


class RateDirection(StrEnum):
    RISING = "rising"
    FALLING = "falling"
    BOTH = "both"


class RateOfChange(Model):
    above: Annotated[float, Field(gt=0)]
    per: Duration = parse_duration("1m")
    # Which way counts: a "rising temperature" rule must not trip on a fall.
    direction: RateDirection = RateDirection.BOTH
    # The slope over this long (from the oldest sample in it), not between consecutive
    # polls: one register step in one poll is then no longer a steep rate.
    window: Annotated[Duration, Field(gt=0)] | None = None


class Flatline(Model):
    for_: Annotated[Duration, Field(alias="for")]
    tolerance: Annotated[float, Field(ge=0)] = 0.0


class Escalation(Model):
    above: float | None = None
    below: float | None = None
    priority: Priority

    @model_validator(mode="after")
    def _one_direction(self) -> Escalation:
        if (self.above is None) == (self.below is None):
            raise ValueError("an escalation level has either `above:` or `below:`")
        return self


class OnlyWhen(Model):
    sensor: str
    equals: bool | float | str


class Assignee(Model):
    type: Literal["USER", "TEAM"]
    id: Annotated[int, Field(ge=1)]


class WorkOrderTemplate(Model):
    title: Annotated[str, Field(min_length=1, max_length=1000)]
    description: str = ""
    categories: list[str] = []
    assignees: list[Assignee] = []
    due_in: Duration | None = None


class OnStale(StrEnum):
    HOLD = "hold"
    CLEAR = "clear"
    ALARM = "alarm"


CONDITION_KEYS = ("high", "low", "rate", "flatline", "equals")

# The fields a work-order template may use, e.g. "{asset.name}: bearing {value:.1f} {unit}".
# Templates are rendered by name lookup in this set only; nothing is evaluated.
TEMPLATE_FIELDS: frozenset[str] = frozenset(
    {
        "asset.name",
        "asset.id",
        "sensor.id",
        "value",
        "peak",
        "limit",
        "unit",
        "started_at",
        "rule.id",
        "priority",
        "site.id",
        "site.name",
        "alert_id",
        "duration",
    }
)


class Rule(Model):
    id: Name
    asset: str
    sensor: str
    high: HighLimit | None = None
    low: LowLimit | None = None
    rate: RateOfChange | None = None
    flatline: Flatline | None = None
    equals: bool | float | str | None = None
    inclusive: bool = False
    on_delay: Duration = 0
    off_delay: Duration = 0
    priority: Priority = Priority.MEDIUM
    escalate: list[Escalation] = []
    cooldown: Duration = 0
    only_when: OnlyWhen | None = None
    stale_after: Duration | None = None
    on_stale: OnStale = OnStale.HOLD
    chattering: Chattering | None = None
    work_order: WorkOrderTemplate | None = None
    # The alarm lifecycle (docs/rules.md): an activation still unacknowledged after
    # ``ack_within`` is escalated once; after its work order is DONE the sensor is watched
    # for ``verify_for`` (0s: not watched) before the repair counts as verified.
    ack_within: Duration | None = None
    verify_for: Duration = parse_duration("30m")

    @model_validator(mode="after")
    def _one_condition(self) -> Rule:
        problem = condition_problem([k for k in CONDITION_KEYS if getattr(self, k) is not None])
        if problem:
            raise ValueError(problem)
        return self


def condition_problem(present: list[str]) -> str | None:
    """Why a rule with these condition keys is wrong (``None`` when it is right). Shared
    with :mod:`edge_agent.config.checks`, which reports it even when another key of the
    rule is invalid."""
    if not present:
        return "a rule needs a condition: high, low (or both for a band), rate, flatline or equals"
    if len(present) > 1 and set(present) != {"high", "low"}:
        return (
            f"a rule has one condition, this one has {' and '.join(present)}; "
            "split it into several rules"
        )
    return None
