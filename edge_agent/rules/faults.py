"""Rules that failed: one rule's exception is that rule's problem, not the agent's.

A failure while evaluating a rule (in the engine) or rendering its alert (in the pipeline)
is recorded here under the rule's id: counted every time, logged the first time, and the
rule is *faulted* until a reload changes or removes it (a restart forgets it too; the next
failure faults it again). A rule that fails once usually fails again on the same kind of
input, so "it evaluated cleanly since" would hide it; an operator fixes the rule and reloads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edge_agent.redaction import redact

log = logging.getLogger(__name__)

EVALUATE = "evaluate"
"""The engine raised while judging a reading or a deadline for the rule."""
RENDER = "render"
"""The rule's alert message (its work order template) could not be built."""


@dataclass(slots=True)
class RuleFault:
    """Why a rule is faulted: where it failed first, the error, and how often since."""

    stage: str
    error: str
    count: int = 1


def describe(exc: BaseException) -> str:
    """``ValueError: year 275817 is out of range``: the type says what kind of bug it is."""
    text = redact(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RuleFaults:
    """Rule id → its fault, and every rule's error count since start."""

    def __init__(self) -> None:
        self.faulted: dict[str, RuleFault] = {}
        self.errors: dict[str, int] = {}

    def record(self, rule_id: str, stage: str, exc: BaseException) -> None:
        """Count a failure of ``rule_id``; the first one of a fault is logged with its
        traceback, the repeats only counted (a rule can fail on every reading)."""
        self.errors[rule_id] = self.errors.get(rule_id, 0) + 1
        fault = self.faulted.get(rule_id)
        if fault is not None:
            fault.count += 1
            return
        self.faulted[rule_id] = RuleFault(stage, describe(exc))
        log.error(
            "Rule failed; it is marked faulted and the other rules go on.",
            extra={"rule": rule_id, "stage": stage, "error": describe(exc)},
            exc_info=exc,
        )

    def forget(self, rule_ids: set[str]) -> None:
        """Clear the faults of rules a reload changed or removed."""
        for rule_id in rule_ids & self.faulted.keys():
            del self.faulted[rule_id]
            log.info(
                "Faulted rule changed by a reload; no longer faulted.", extra={"rule": rule_id}
            )

    def reasons(self) -> list[str]:
        """One readiness reason per faulted rule."""
        return [
            f"rule {rule_id} is faulted ({fault.stage}: {fault.error}; {fault.count} times)"
            for rule_id, fault in sorted(self.faulted.items())
        ]


__all__ = ["EVALUATE", "RENDER", "RuleFault", "RuleFaults", "describe"]
