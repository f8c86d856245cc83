"""The alarm lifecycle's state per rule and per asset, and its saved form (plain JSON).

Pure data: what each state holds (who, why, since when, until when) and how it is written
to and read from the rule state file. The transitions are in ``lifecycle_engine.py``.
All times are on the engine's clock; ``shift_lifecycle`` carries them over a restart as
absolute times (a shelve that expired while the agent was down is reported at once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

HELD_SHELVED: Final = "shelved"
HELD_OOS: Final = "out_of_service"
HELD_MAINTENANCE: Final = "maintenance"
HELD_STATES: Final = frozenset({HELD_SHELVED, HELD_OOS, HELD_MAINTENANCE})
WORK_ORDER_STATUSES: Final = frozenset({"OPEN", "IN_PROGRESS", "ON_HOLD", "DONE", "CANCELED"})
# A saved state's texts are bounded as the commands that made them (lifecycle.py).
_MAX_TEXT: Final = 1000


@dataclass
class Hold:
    """A person's shelve or out-of-service: who, why, since, and until when (None: until
    returned; ``until_clear``: a one-shot shelve that ends when the alarm clears)."""

    by: str
    reason: str
    at: int
    until: int | None
    until_clear: bool = False
    # The command that made it: its end's event id is made of it (stable across restarts,
    # whose clock shift moves every saved time).
    command: str = ""


@dataclass
class Ack:
    """An episode acknowledged: by a person (with a note) or by its work order."""

    by: str
    at: int
    note: str | None


@dataclass
class Verification:
    """A repair being verified: the work order that went DONE, the episode it was for,
    the window, and what the sensor did in it."""

    work_order: int
    alert_id: str | None
    since: int
    until: int
    peak_before: Any
    # The rule's how-manieth verification (its verdict's event id; saved times shift).
    number: int = 0
    low: Any = None
    high: Any = None


@dataclass
class AssetLife:
    """An asset's states: out of service as a whole; its work orders in a maintenance
    status (``while``), id → status."""

    oos: Hold | None = None
    maintenance: dict[int, str] = field(default_factory=dict)

    def is_initial(self) -> bool:
        return self.oos is None and not self.maintenance


@dataclass(slots=True)
class RuleLife:
    """One rule's lifecycle state (kept across reloads while the rule exists)."""

    shelved: Hold | None = None
    oos: Hold | None = None
    # The episode's acknowledgement, and when it is overdue (``ack_within``; None: not
    # watched, or already escalated for being overdue).
    ack: Ack | None = None
    ack_due: int | None = None
    # The rule's work order as its statuses said (the current or last episode's), and its
    # last status (a status heard again, e.g. a retained message after a reconnect, is
    # not a change).
    work_order: int | None = None
    work_order_status: str | None = None
    work_order_assigned: bool = False
    # The last episode (for the verification of a repair done after it cleared).
    last_alert_id: str | None = None
    last_peak: Any = None
    verifying: Verification | None = None
    # A work order reopened because its repair did not hold: a new activation comments
    # on it instead of making another.
    reopened: int | None = None
    # Maintenance work orders this rule has already commented on (one comment each).
    commented: list[int] = field(default_factory=list)
    # Verifications started, ever (numbers them).
    verifications: int = 0
    # The open episode's activation was held by this state and nothing announced it yet:
    # announced once (a release) when every hold has ended while it is still ACTIVE. Kept
    # as the state that held it last, which the release names (``released``).
    unannounced: str | None = None

    def is_initial(self) -> bool:
        return self == RuleLife()

    def due_times(self) -> list[int]:
        """Every time at which something of this rule expires."""
        times = [h.until for h in (self.shelved, self.oos) if h is not None and h.until]
        if self.ack_due is not None:
            times.append(self.ack_due)
        if self.verifying is not None:
            times.append(self.verifying.until)
        return times


def dump_hold(hold: Hold | None) -> dict[str, Any] | None:
    return None if hold is None else asdict(hold)


def load_hold(data: Any) -> Hold | None:
    if data is None:
        return None
    return Hold(
        by=_text(data["by"]),
        reason=_text(data["reason"]),
        at=int(data["at"]),
        until=_time(data["until"]),
        until_clear=bool(data.get("until_clear", False)),
        command=_text(data.get("command", "")),
    )


def dump_rule(life: RuleLife) -> dict[str, Any]:
    return asdict(life)


def load_rule(data: dict[str, Any]) -> RuleLife:
    """A rule's saved lifecycle (raises KeyError/TypeError/ValueError on a bad shape)."""
    ack = data.get("ack")
    verifying = data.get("verifying")
    return RuleLife(
        shelved=load_hold(data.get("shelved")),
        oos=load_hold(data.get("oos")),
        ack=None
        if ack is None
        else Ack(_text(ack["by"]), int(ack["at"]), _text_or_none(ack.get("note"))),
        ack_due=_time(data.get("ack_due")),
        work_order=_id_or_none(data.get("work_order")),
        work_order_status=_status_or_none(data.get("work_order_status")),
        work_order_assigned=bool(data.get("work_order_assigned", False)),
        last_alert_id=_text_or_none(data.get("last_alert_id")),
        last_peak=data.get("last_peak"),
        verifying=None
        if verifying is None
        else Verification(
            work_order=_id(verifying["work_order"]),
            alert_id=_text_or_none(verifying.get("alert_id")),
            since=int(verifying["since"]),
            until=int(verifying["until"]),
            peak_before=verifying.get("peak_before"),
            number=int(verifying.get("number", 0)),
            low=verifying.get("low"),
            high=verifying.get("high"),
        ),
        reopened=_id_or_none(data.get("reopened")),
        commented=[_id(w) for w in data.get("commented", [])][:100],
        verifications=int(data.get("verifications", 0)),
        unannounced=_held_or_none(data.get("unannounced")),
    )


def dump_asset(life: AssetLife) -> dict[str, Any]:
    return {
        "oos": dump_hold(life.oos),
        "maintenance": {str(k): v for k, v in life.maintenance.items()},
    }


def load_asset(data: dict[str, Any]) -> AssetLife:
    maintenance = {}
    for key, status in data.get("maintenance", {}).items():
        if not isinstance(status, str) or status not in WORK_ORDER_STATUSES:
            raise ValueError(f"unknown work order status {str(status)[:20]!r}")
        maintenance[_id(int(key))] = str(status)
    return AssetLife(oos=load_hold(data.get("oos")), maintenance=maintenance)


def shift_lifecycle(data: dict[str, Any], delta: int) -> dict[str, Any]:
    """The saved lifecycle with every time moved by ``delta`` (see ``shift_snapshot``)."""

    def move(t: Any) -> int | None:
        return None if t is None else int(t) + delta

    def hold(h: Any) -> Any:
        return None if h is None else {**h, "at": move(h["at"]), "until": move(h["until"])}

    rules = {}
    for rule_id, saved in data.get("rules", {}).items():
        rule = {**saved, "shelved": hold(saved.get("shelved")), "oos": hold(saved.get("oos"))}
        rule["ack_due"] = move(saved.get("ack_due"))
        if saved.get("ack") is not None:
            rule["ack"] = {**saved["ack"], "at": move(saved["ack"]["at"])}
        if saved.get("verifying") is not None:
            v = saved["verifying"]
            rule["verifying"] = {**v, "since": move(v["since"]), "until": move(v["until"])}
        rules[rule_id] = rule
    assets = {
        asset_id: {**saved, "oos": hold(saved.get("oos"))}
        for asset_id, saved in data.get("assets", {}).items()
    }
    return {"rules": rules, "assets": assets}


def _status_or_none(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or value not in WORK_ORDER_STATUSES):
        raise ValueError(f"unknown work order status {str(value)[:20]!r}")
    return None if value is None else str(value)


def _held_or_none(value: Any) -> str | None:
    if value is not None and value not in HELD_STATES:
        raise ValueError(f"unknown hold {str(value)[:20]!r}")
    return None if value is None else str(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a text was expected")
    return value[:_MAX_TEXT]


def _text_or_none(value: Any) -> str | None:
    return None if value is None else _text(value)


def _time(value: Any) -> int | None:
    return None if value is None else int(value)


def _id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise ValueError("a work order id was expected")
    return value


def _id_or_none(value: Any) -> int | None:
    return None if value is None else _id(value)
