"""The agent's alarm controls: a person's command (shelve, unshelve, oos, return, ack) from
the control socket or the hub's command topic, applied once, audited, answered.

Every request, whatever door it came through, takes the same path:

1. framing (:func:`edge_agent.wire.commands.decode_request`) and the fields
   (``rules.lifecycle.parse_command``): a bad one is answered ``ok: false`` with what is
   wrong, counted (``rejected``) and logged; it never reaches the engine;
2. an id already in the :class:`~edge_agent.service.command_ledger.CommandLedger` is
   answered with its first result (``repeat: true``, counted ``repeated``), not applied
   again;
3. otherwise the rules task applies it (``RuleEngine.apply_command``, see
   :meth:`RulesLoop.submit`): its audit events take the rules' path to the outbox, saved
   with the rule state; then the answer is recorded in the ledger and in the audit log
   (``alarm-audit.jsonl``: who, when, what, why, through which door).

A crash after the rule state was saved and before the ledger was written makes a resend of
that id apply again: the only window, one fsync long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edge_agent.alerts import format_time_ns
from edge_agent.common.jsonl_log import JsonLinesLog
from edge_agent.service import agent_clock
from edge_agent.service.command_ledger import CommandLedger, command_what, what_text
from edge_agent.wire.commands import (
    BUSY,
    BadCommand,
    CommandResult,
    command_age_error,
    command_id_of,
    decode_request,
    result_document,
)

if TYPE_CHECKING:
    from edge_agent.config.models import SiteConfig
    from edge_agent.rules import AlarmEvent, RuleEngine
    from edge_agent.service.rules_loop import RulesLoop

log = logging.getLogger(__name__)

AUDIT_FILE: Final = "alarm-audit.jsonl"
APPLY_TIMEOUT_S: Final = 5.0
"""How long a request waits for the rules task (it turns every 0.2 s; longer is a stall or
a stop, answered as such)."""
OUTCOMES: Final = ("applied", "refused", "rejected", "repeated", "unanswered", "stale")
"""``applied``: the engine did it; ``refused``: the engine said no (unknown rule, nothing to
ack); ``rejected``: malformed (never reached the engine); ``repeated``: an id applied before;
``unanswered``: the rules task did not take it in time (stopping, stalled); ``stale``: its
``time`` is too far from the agent's clock (queued while offline, or dated ahead)."""


@dataclass
class ControlCounters:
    """Requests per door (``socket``, ``mqtt``) and outcome (:data:`OUTCOMES`)."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    audit_errors: int = 0
    ledger_errors: int = 0
    unsent_answers: int = 0
    """Answers to MQTT commands not published (not connected): the hub asks again."""

    def count(self, via: str, outcome: str) -> None:
        key = (via, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1


class _CommandJob:
    """One command, run by the rules task (see :class:`RulesJob`)."""

    def __init__(
        self, controls: AlarmControls, request: Mapping[str, Any], via: str, peer: str | None
    ) -> None:
        self.controls = controls
        self.request = request
        self.via = via
        self.peer = peer
        self.future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self.result: CommandResult | None = None
        self.applied = False
        self.stale = False

    def apply(self, engine: RuleEngine, now_ns: int) -> Sequence[AlarmEvent]:
        from edge_agent.rules.lifecycle import CommandError, parse_command

        controls = self.controls
        command_id = command_id_of(self.request)
        known = None if command_id is None else controls.known(command_id)
        if known is not None and command_id is not None:
            first = controls.known_what(command_id)
            if first is not None and first != command_what(self.request):
                # Not a resend: the first answer would tell of a command not asked now.
                self.result = CommandResult(
                    command_id,
                    False,
                    f"id {command_id!r} was used before for another command ({what_text(first)}: "
                    f"{known.message}); give this one a new id",
                )
                return []
            self.result = CommandResult(known.id, known.ok, known.message, repeat=True)
            return []
        config = controls.config()
        too_old = command_age_error(
            self.request,
            time.time_ns(),
            config.alarms.max_command_age,
            require=self.via == "mqtt",
        )
        if too_old is not None:
            self.stale = True
            self.result = CommandResult(command_id, False, too_old)
            return []
        try:
            command = parse_command(self.request, max_shelve_ns=config.alarms.max_shelve)
        except CommandError as exc:
            self.result = CommandResult(command_id, False, str(exc))
            return []
        outcome = engine.apply_command(command, now_ns, wall_offset_ns=agent_clock.wall_offset_ns())
        self.applied = True
        self.result = CommandResult(command.id, outcome.ok, outcome.message)
        # The same id again in this turn (two doors at once) is a repeat, not a second apply.
        controls.applying[command.id] = self.result
        controls.applying_what[command.id] = command_what(self.request)
        return list(outcome.events)

    def saved(self) -> None:
        result = self.result
        if result is None:  # apply raised (logged by the rules loop)
            result = CommandResult(command_id_of(self.request), False, "the command failed")
        self.controls.finish(self, result)
        if not self.future.done():
            self.future.set_result(result)


class AlarmControls:
    """Applies requests from any door; :meth:`handle` is the one entry point."""

    def __init__(self, state_dir: Path, rules: RulesLoop, config: Callable[[], SiteConfig]) -> None:
        self.rules = rules
        self.config = config
        self.ledger = CommandLedger(state_dir)
        self.audit = JsonLinesLog(state_dir / AUDIT_FILE)
        self.counters = ControlCounters()
        # Applied in the rules task's current turn, not yet in the ledger.
        self.applying: dict[str, CommandResult] = {}
        self.applying_what: dict[str, str] = {}

    def known(self, command_id: str) -> CommandResult | None:
        """The first answer to ``command_id`` if it was applied before (or in this turn)."""
        return self.ledger.get(command_id) or self.applying.get(command_id)

    def known_what(self, command_id: str) -> str | None:
        """What the command first applied under ``command_id`` did (None: not known)."""
        return self.ledger.what(command_id) or self.applying_what.get(command_id)

    async def handle(self, raw: bytes, via: str, peer: str | None = None) -> dict[str, Any]:
        """The answer (a JSON object) to one request line or message."""
        try:
            request = decode_request(raw, require_schema=via == "mqtt")
        except BadCommand as exc:
            return self._rejected(via, None, str(exc), peer)
        if "query" in request:
            if via != "socket":  # an answer with every rule is for the gateway's own users
                return self._rejected(via, command_id_of(request), "query: socket only", peer)
            return self.alarms_answer()
        job = _CommandJob(self, request, via, peer)
        if not self.rules.submit(job):
            self.counters.count(via, "unanswered")
            return self._answer(CommandResult(command_id_of(request), False, f"{BUSY} try again"))
        try:
            async with asyncio.timeout(APPLY_TIMEOUT_S):
                result = await asyncio.shield(job.future)
        except TimeoutError:
            self.counters.count(via, "unanswered")
            log.error("Alarm command not taken by the rules in time.", extra={"via": via})
            message = (
                f"{BUSY} the agent did not apply it in time (stopping or stalled); "
                "send it again with the same id"
            )
            return self._answer(CommandResult(command_id_of(request), False, message))
        return self._answer(result)

    def finish(self, job: _CommandJob, result: CommandResult) -> None:
        """In the rules task, after the state was saved: ledger, audit log, counters, log."""
        via = job.via
        if result.repeat:
            self.counters.count(via, "repeated")
            log.info("Alarm command seen before; answered again.", extra={"id": result.id})
            return
        if job.stale:
            outcome = "stale"
        else:
            outcome = "rejected" if not job.applied else ("applied" if result.ok else "refused")
        self.counters.count(via, outcome)
        if job.applied:
            try:
                # kept in memory even when the write fails
                self.ledger.record(result, command_what(job.request))
            except OSError as exc:
                self.counters.ledger_errors += 1
                log.error("Alarm command ledger not saved.", extra={"error": str(exc)})
            if result.id is not None:
                self.applying.pop(result.id, None)
                self.applying_what.pop(result.id, None)
        request = job.request
        record: dict[str, Any] = {
            "time": format_time_ns(time.time_ns()),
            "via": via,
            "peer": job.peer,
            "id": result.id,
            "action": request.get("action"),
            "rule": request.get("rule"),
            "asset": request.get("asset"),
            "by": request.get("by"),
            "reason": request.get("reason"),
            "for": request.get("for"),
            "until_clear": request.get("until_clear"),
            "note": request.get("note"),
            "ok": result.ok,
            "outcome": outcome,
            "message": result.message,
        }
        self._audit({k: _bounded(v) for k, v in record.items()})
        level = logging.INFO if result.ok else logging.WARNING
        log.log(
            level,
            "Alarm command applied." if result.ok else "Alarm command not applied.",
            extra={
                "id": result.id,
                "via": via,
                "action": _bounded(request.get("action")),
                "rule": _bounded(request.get("rule")),
                "asset": _bounded(request.get("asset")),
                "by": _bounded(request.get("by")),
                "outcome": outcome,
                "why": result.message,
            },
        )

    def _rejected(
        self, via: str, command_id: str | None, why: str, peer: str | None
    ) -> dict[str, Any]:
        self.counters.count(via, "rejected")
        log.warning("Alarm command rejected.", extra={"via": via, "error": why, "peer": peer})
        self._audit(
            {
                "time": format_time_ns(time.time_ns()),
                "via": via,
                "peer": peer,
                "id": command_id,
                "ok": False,
                "outcome": "rejected",
                "message": why,
            }
        )
        return self._answer(CommandResult(command_id, False, why))

    def _audit(self, record: dict[str, Any]) -> None:
        try:
            self.audit.append(record)
        except OSError as exc:
            self.counters.audit_errors += 1
            log.error("Alarm audit log not written.", extra={"error": str(exc)})

    @staticmethod
    def _answer(result: CommandResult) -> dict[str, Any]:
        return result_document(result, time.time_ns())

    def alarms_answer(self) -> dict[str, Any]:
        """``{"ok": true, "alarms": rows, "assets": rows}`` (``assets``: the assets out of
        service as a whole)."""
        rows = self.alarms_rows()
        answer = self._answer(CommandResult(None, True, f"{len(rows)} rules"))
        return {**answer, "alarms": rows, "assets": self.asset_rows()}

    def alarms_rows(self) -> list[dict[str, Any]]:
        """The engine's alarms view with its times on the wall clock (none before start)."""
        engine: RuleEngine | None = getattr(self.rules, "engine", None)
        if engine is None:
            return []
        return engine.alarms_view(agent_clock.now_ns(), wall_offset_ns=agent_clock.wall_offset_ns())

    def asset_rows(self) -> list[dict[str, Any]]:
        """The assets out of service as a whole, times on the wall clock (none before start)."""
        engine: RuleEngine | None = getattr(self.rules, "engine", None)
        if engine is None:
            return []
        return engine.assets_view(wall_offset_ns=agent_clock.wall_offset_ns())


def controls_health(
    controls: AlarmControls, socket_error: str | None
) -> tuple[dict[str, Any], list[str]]:
    """``/readyz``'s ``alarms`` details and its ``degraded`` lines: every rule out of
    service, loudly (nothing may stay out of service by accident), and shelved ones."""
    try:
        rows = controls.alarms_rows()
        assets = controls.asset_rows()
        error = None
    except Exception as exc:  # a health request answers even when the engine cannot
        rows, assets, error = [], [], str(exc) or type(exc).__name__
    out_of_service = [row for row in rows if row.get("out_of_service")]
    shelved = [row for row in rows if row.get("shelved")]
    degraded = [_out_of_service_line(row) for row in out_of_service]
    # An asset with no rule out of service shows in no rule's line: said on its own.
    degraded += [_asset_line(row) for row in assets if not row.get("rules")]
    if socket_error is not None:
        degraded.append(f"control socket unavailable: {socket_error}")
    details = {
        "out_of_service": {row.get("rule"): row["out_of_service"] for row in out_of_service},
        "shelved": {row.get("rule"): row["shelved"] for row in shelved},
        "assets_out_of_service": {row["asset"]: row for row in assets},
        "control_socket_error": socket_error,
        "error": error,
    }
    return details, degraded


def _out_of_service_line(row: Mapping[str, Any]) -> str:
    state = row.get("out_of_service")
    info = state if isinstance(state, Mapping) else {}
    until = info.get("until")
    return (
        f"rule {row.get('rule')} is OUT OF SERVICE (by {info.get('by')}: {info.get('reason')}; "
        + (f"until {until})" if until else "no expiry: return it to service when done)")
    )


def _asset_line(row: Mapping[str, Any]) -> str:
    until = row.get("until")
    return (
        f"asset {row.get('asset')} is OUT OF SERVICE with no rule (by {row.get('by')}: "
        f"{row.get('reason')}; "
        + (f"until {until})" if until else "no expiry: return it to service when done)")
    )


def _bounded(value: Any, limit: int = 1000) -> Any:
    """A request's field as the audit and the log keep it: texts cut, other types named."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:limit]
    return f"<{type(value).__name__}>"


__all__ = ["AUDIT_FILE", "OUTCOMES", "AlarmControls", "ControlCounters", "controls_health"]
