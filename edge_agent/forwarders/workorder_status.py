"""The agent's side of the hub's loop: which work order each rule has, and whether it is open.

The hub answers every alert on ``{prefix}/{site}/results`` (the work order it made or found)
and publishes work-order status changes from MaintainX's webhooks, retained, on
``{prefix}/{site}/workorders/{id}``. :class:`WorkOrderTracker` keeps rule → (alert id,
work order id, status) in a small JSON file under the state directory, so that after a
restart the agent still knows. While a rule's work order is open, a re-activation carries
``"related_work_order": id`` (see :meth:`WorkOrderTracker.annotate`) and the hub comments on
that work order instead of creating another; once it is DONE or CANCELED, the next activation
makes a new one.

Wiring (the service): subscribe to :func:`status_topics` at QoS 1 on the MQTT connection,
pass each message to :meth:`WorkOrderTracker.on_message`, and run each alert message through
:meth:`WorkOrderTracker.annotate` before it enters the outbox.

Each change of a rule's work order (a new one, a new status, an assignee) is also handed to
:attr:`WorkOrderTracker.listener` as a :class:`StatusChange`: the service passes it to the
rule engine on the event loop (the alarm lifecycle: maintenance, acknowledgement, a repair's
verification). In direct mode (no hub) the MaintainX forwarder records the work orders it
makes and :mod:`edge_agent.forwarders.maintainx.status_poller` their statuses, through
:meth:`WorkOrderTracker.record_work_order` and :meth:`WorkOrderTracker.record_status`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from edge_agent.alerts import AlertMessage
from edge_agent.common.atomic import write_atomic
from edge_agent.common.schema_version import SchemaVersionError, check
from edge_agent.wire import topics
from edge_agent.wire.alert import MAX_ID_CHARS, is_wire_id

log = logging.getLogger(__name__)

CLOSED: Final = frozenset({"DONE", "CANCELED"})
STATUSES: Final = frozenset({"OPEN", "IN_PROGRESS", "ON_HOLD", "DONE", "CANCELED"})
"""MaintainX's work order statuses: any other text is refused (counted in ``ignored``)."""
FILE_NAME: Final = "work-orders.json"
SCHEMA_VERSION: Final = 1
VERSION_KEY: Final = "__schema_version__"
"""Beside the rules in the file's map: no rule id starts with ``_`` (and 0.1.0, reading a
later file, skips it as an entry of the wrong shape)."""


@dataclass
class RuleWorkOrder:
    """The last work order the hub reported for one rule."""

    alert_id: str
    work_order_id: int
    status: str = "OPEN"
    assigned: bool = False


@dataclass(frozen=True)
class StatusChange:
    """One change of a rule's work order, for the rule engine's ``work_order_status``."""

    rule: str
    work_order_id: int
    status: str
    assigned: bool


def status_topics(prefix: str, site: str) -> list[str]:
    """The topics the agent subscribes to for its own site's answers."""
    return [topics.results(prefix, site), topics.work_orders_filter(prefix, site)]


class WorkOrderTracker:
    """rule → :class:`RuleWorkOrder`, kept durably in ``state_dir/work-orders.json``.

    Thread-safe; every change is written (temporary file, fsync, rename) before
    :meth:`on_message` returns, so a crash never leaves a half-written map.
    """

    def __init__(self, state_dir: Path, site: str, prefix: str = topics.DEFAULT_PREFIX) -> None:
        self.path = state_dir / FILE_NAME
        self.site = site
        self.prefix = prefix
        self._lock = threading.Lock()
        self._rules: dict[str, RuleWorkOrder] = self._load()
        self.ignored = 0
        self.changes = 0
        """Changes handed to :attr:`listener` since start."""
        self.listener: Callable[[StatusChange], None] | None = None
        """Told of each change after it is saved (from the thread that made it: paho's in
        MQTT mode; the listener hops to the event loop)."""

    def _load(self) -> dict[str, RuleWorkOrder]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("Work order map unreadable; starting empty.", extra={"error": str(exc)})
            return {}
        rules: dict[str, RuleWorkOrder] = {}
        if isinstance(data, dict):
            try:
                check("work order map", str(self.path), data.pop(VERSION_KEY, None), SCHEMA_VERSION)
            except SchemaVersionError as exc:
                log.warning("Work order map unreadable; starting empty.", extra={"error": str(exc)})
                return {}
            for rule, entry in data.items():
                try:
                    work_order_id = entry["work_order_id"]
                    if not is_wire_id(work_order_id):
                        continue  # an id no work order can have: never sent back to the hub
                    rules[str(rule)] = RuleWorkOrder(
                        str(entry["alert_id"]),
                        work_order_id,
                        str(entry["status"]),
                        entry.get("assigned") is True,
                    )
                except (KeyError, TypeError, ValueError):
                    continue
        return rules

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        entries: dict[str, Any] = {rule: asdict(entry) for rule, entry in self._rules.items()}
        body = json.dumps({VERSION_KEY: SCHEMA_VERSION, **entries})
        write_atomic(self.path, body.encode())

    # ------------------------------------------------------------------ queries

    def open_work_order_for(self, rule_id: str) -> int | None:
        """The rule's work order while it is open (not DONE/CANCELED), else None."""
        with self._lock:
            entry = self._rules.get(rule_id)
        if entry is None or entry.status in CLOSED:
            return None
        return entry.work_order_id

    def annotate(self, message: AlertMessage) -> AlertMessage:
        """An ``activated`` message with ``related_work_order`` set while the rule's work
        order is open (other messages are returned unchanged)."""
        if message["event"] != "activated":
            return message
        related = self.open_work_order_for(message["rule"])
        if related is None:
            return message
        annotated: AlertMessage = {**message, "related_work_order": related}
        return annotated

    def snapshot(self) -> dict[str, RuleWorkOrder]:
        with self._lock:
            return dict(self._rules)

    # ------------------------------------------------------------------ updates

    def on_message(self, topic: str, payload: bytes) -> bool:
        """Learn from one message of :func:`status_topics`; True when the map changed."""
        try:
            data: Any = json.loads(payload)
        except (UnicodeDecodeError, ValueError, RecursionError):
            # ValueError: also JSON Python refuses (a number past int()'s digit limit);
            # RecursionError: nesting deeper than the reader recurses (found by the faults).
            self.ignored += 1
            return False
        if not isinstance(data, dict) or data.get("site") not in (None, self.site):
            self.ignored += 1
            return False
        if topic == topics.results(self.prefix, self.site):
            return self._result(data)
        if topic.startswith(topics.work_orders_under(self.prefix, self.site)):
            return self._status(data)
        self.ignored += 1
        return False

    def _result(self, data: dict[str, Any]) -> bool:
        rule, alert_id, work_order_id = (
            data.get("rule"),
            data.get("alert_id"),
            data.get("work_order_id"),
        )
        if data.get("status") != "ok" or not isinstance(rule, str) or not isinstance(alert_id, str):
            return False
        if not is_wire_id(work_order_id) or len(rule) > MAX_ID_CHARS:
            # Only a plausible id (1..2**63-1): it goes back to the hub as related_work_order.
            self.ignored += 1
            return False
        assert isinstance(work_order_id, int)
        return self.record_work_order(rule, alert_id, work_order_id)

    def record_work_order(self, rule: str, alert_id: str, work_order_id: int) -> bool:
        """The work order made (or commented on) for ``rule``'s alert ``alert_id``; True when
        the map changed. A new work order is handed to the listener as OPEN."""
        with self._lock:
            current = self._rules.get(rule)
            if current is not None and current.work_order_id == work_order_id:
                if current.alert_id == alert_id:
                    return False
                current.alert_id = alert_id  # a re-activation commented on the same one
                self._save()
                return True
            self._rules[rule] = entry = RuleWorkOrder(alert_id, work_order_id)
            self._save()
        self._tell(rule, entry)
        return True

    def _status(self, data: dict[str, Any]) -> bool:
        rule, work_order_id, status = (
            data.get("rule"),
            data.get("work_order_id"),
            data.get("status"),
        )
        if not isinstance(rule, str) or not is_wire_id(work_order_id) or len(rule) > MAX_ID_CHARS:
            self.ignored += 1
            return False
        assert isinstance(work_order_id, int)
        if status not in STATUSES:
            self.ignored += 1
            return False
        assigned = data.get("assigned")
        alert_id = data.get("alert_id")
        return self.record_status(
            rule,
            work_order_id,
            str(status),
            alert_id=alert_id if isinstance(alert_id, str) else None,
            assigned=assigned if isinstance(assigned, bool) else None,
        )

    def record_status(
        self,
        rule: str,
        work_order_id: int,
        status: str,
        *,
        alert_id: str | None = None,
        assigned: bool | None = None,
    ) -> bool:
        """The status (and, when known, whether it has an assignee) of ``rule``'s work order;
        True when the map changed, and then the listener is told."""
        with self._lock:
            current = self._rules.get(rule)
            if current is None:
                entry = RuleWorkOrder(alert_id or "", work_order_id, status, bool(assigned))
            elif current.work_order_id != work_order_id:
                # A status of an older work order of this rule: only matters if it reopened
                # while the current one is closed.
                if not (current.status in CLOSED and status not in CLOSED):
                    return False
                entry = RuleWorkOrder(alert_id or "", work_order_id, status, bool(assigned))
            else:
                now_assigned = current.assigned if assigned is None else assigned
                if current.status == status and current.assigned == now_assigned:
                    return False
                entry = RuleWorkOrder(current.alert_id, work_order_id, status, now_assigned)
            self._rules[rule] = entry
            self._save()
        self._tell(rule, entry)
        return True

    def _tell(self, rule: str, entry: RuleWorkOrder) -> None:
        listener = self.listener
        if listener is None:
            return
        self.changes += 1
        try:
            listener(StatusChange(rule, entry.work_order_id, entry.status, entry.assigned))
        except Exception:  # the map is saved; the engine hears the next change
            log.exception("Work order change not handed to the rules.", extra={"rule": rule})
