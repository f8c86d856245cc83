"""MaintainX meters, triggers, readings and asset downtime (issue 14), shared by the site's
direct forwarder and the hub.

MaintainX has no idempotency key, so a meter or a trigger is created once this way: its id
is looked up in a durable :class:`MeterIdLedger` first; if none is recorded, MaintainX is
asked whether one of that name already exists (a create whose answer was lost, or a crash
between the answer and the record) and only then is one created, and its id recorded
before any reading is sent. A create that failed is retried later by the caller; the
lookup comes first again, so a 5xx or a timeout never makes two.

Readings leave in batches on ``POST /meterreadings``, which has its own rate limit
(100 / 60 s for automated meters) counted apart from the key's general one: the client
paces that path with its own :class:`~edge_agent.maintainx.ratelimit.RatePacer`
(:data:`READINGS_PATH`, see ``MaintainXClient.endpoint_pacers``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from edge_agent.common.atomic import write_atomic
from edge_agent.errors import EdgeAgentError
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.errors import MaintainXError, Misconfigured, NotFound, OutcomeUnknown
from edge_agent.maintainx.sync import GATEWAY_STATUSES
from edge_agent.wire.alert import WireError, wire_time_ns
from edge_agent.wire.plant import AssetStatusMessage, MeterSpec

log = logging.getLogger(__name__)

READINGS_PATH: Final = "meterreadings"
READINGS_LIMIT_PER_MIN: Final = 100
"""``POST /meterreadings``'s own bucket (the API page, "Rate limits")."""
MAX_BATCH: Final = 500
PLANT_RATE_SHARE: Final = 0.4
"""The part of a key's general budget (status changes, meter lookups and creates) plant
data may spend, wherever it shares the key with alerts (the direct forwarders; the hub's
site): a backlog of plant data must never make a work order wait. Of MaintainX's 100 a
minute the plant data takes 40 (20 status changes, each looked up then posted) and the
alerts find 60 left. Readings have their own bucket."""
"""Readings per ``POST /meterreadings``: 10,000 queued readings leave in 20 requests, far
inside the 100 / 60 s bucket, with bodies (~40 KB) far below any proxy's size limit."""
MEASUREMENT_TYPE: Final = "AUTOMATED_SENSOR"
LOOKUP_MAX_PAGES: Final = 20
"""Pages of 100 meters (or triggers) searched for one of the name sought."""
LEDGER_SCHEMA: Final = "edge-agent/meter-ids@1"


class MeterLedgerError(EdgeAgentError):
    """The ledger of created meter and trigger ids cannot be read or written."""


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """One MaintainX meter trigger: its name (how it is found again), condition and amount,
    and for a PM the work order template's procedure."""

    name: str
    condition: str  # INCREMENTED_BY | IS_GREATER | IS_LESS
    amount: float
    procedure_template_id: int | None = None

    def body(self, meter_id: int) -> dict[str, Any]:
        """The ``POST /metertriggers`` body."""
        trigger: dict[str, Any] = {
            "meterId": meter_id,
            "name": self.name,
            "condition": self.condition,
            "amount": self.amount,
        }
        body: dict[str, Any] = {"meterTrigger": trigger}
        if self.procedure_template_id is not None:
            body["workOrderTemplate"] = {"procedureTemplateId": self.procedure_template_id}
        return body


def triggers_of(spec: MeterSpec) -> list[TriggerSpec]:
    """The triggers a meter declares: a PM (``INCREMENTED_BY``), limits (``IS_GREATER`` /
    ``IS_LESS``). Names are derived from the meter's, so a lookup finds them again."""
    found: list[TriggerSpec] = []
    if spec.pm is not None:
        found.append(
            TriggerSpec(
                spec.pm.title, "INCREMENTED_BY", spec.pm.every, spec.pm.procedure_template_id
            )
        )
    if spec.above is not None:
        found.append(TriggerSpec(f"{spec.name} above {spec.above:g}", "IS_GREATER", spec.above))
    if spec.below is not None:
        found.append(TriggerSpec(f"{spec.name} below {spec.below:g}", "IS_LESS", spec.below))
    return found


class MeterIdLedger(Protocol):
    """The durable record of the MaintainX meters and triggers created (or found). The site
    keeps one JSON file under its state directory (:class:`JsonMeterLedger`); the hub one
    per site."""

    async def meter_id(self, key: str) -> int | None:
        """The MaintainX meter recorded for ``key`` (the meter's name in the site file)."""
        ...

    async def record_meter(self, key: str, meter_id: int) -> None:
        """Record it durably before returning."""
        ...

    async def trigger_id(self, key: str) -> int | None:
        """The trigger recorded for ``key`` (:func:`trigger_key`)."""
        ...

    async def record_trigger(self, key: str, trigger_id: int) -> None:
        """Record it durably before returning."""
        ...


def trigger_key(meter_id: int, trigger: TriggerSpec) -> str:
    return f"{meter_id}/{trigger.condition}/{trigger.name}"


class JsonMeterLedger:
    """A :class:`MeterIdLedger` in one small JSON file, replaced atomically after each
    record (a few dozen meters: a rewrite is cheaper than a database)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._meters: dict[str, int] = {}
        self._triggers: dict[str, int] = {}
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise MeterLedgerError(f"{self.path.name}: cannot read ({exc.strerror})") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise MeterLedgerError(f"{self.path.name}: not JSON") from exc
        if not isinstance(data, dict) or data.get("schema") != LEDGER_SCHEMA:
            raise MeterLedgerError(f"{self.path.name}: not a {LEDGER_SCHEMA} file")
        self._meters = _ids(data.get("meters"), self.path.name)
        self._triggers = _ids(data.get("triggers"), self.path.name)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """What is recorded (for status output)."""
        return {"meters": dict(self._meters), "triggers": dict(self._triggers)}

    async def meter_id(self, key: str) -> int | None:
        return self._meters.get(key)

    async def record_meter(self, key: str, meter_id: int) -> None:
        self._meters[key] = meter_id
        await asyncio.to_thread(self._write)

    async def trigger_id(self, key: str) -> int | None:
        return self._triggers.get(key)

    async def record_trigger(self, key: str, trigger_id: int) -> None:
        self._triggers[key] = trigger_id
        await asyncio.to_thread(self._write)

    def _write(self) -> None:
        data = {"schema": LEDGER_SCHEMA, "meters": self._meters, "triggers": self._triggers}
        try:
            write_atomic(self.path, json.dumps(data, sort_keys=True).encode())
        except OSError as exc:
            raise MeterLedgerError(f"{self.path.name}: cannot write ({exc.strerror})") from exc


def _ids(value: object, where: str) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v > 0
        for k, v in value.items()
    ):
        raise MeterLedgerError(f"{where}: ids must be an object of positive integers")
    return dict(value)


# ---------------------------------------------------------------------------- create once


def _unconfirmed(exc: MaintainXError) -> MaintainXError:
    """Mark a create that may have reached MaintainX: the caller rests before retrying
    (``maintainx.sync.settle_s``), and the retry looks it up first anyway."""
    if isinstance(exc, OutcomeUnknown) or exc.status in GATEWAY_STATUSES:
        exc.create_unconfirmed = True
    return exc


async def find_meter(client: MaintainXClient, name: str, asset_id: int | None) -> int | None:
    """The id of a meter named ``name`` (on that asset, when given), if MaintainX has one."""
    params: list[tuple[str, str]] = [("limit", "100")]
    if asset_id is not None:
        params.append(("assets", str(asset_id)))
    async for item in client.pages("meters", "meters", params, max_pages=LOOKUP_MAX_PAGES):
        if item.get("name") != name or not isinstance(item.get("id"), int):
            continue
        # Without an asset the lookup spans the organization: another asset's meter of the
        # same name (another site's "run-hours") must not be taken over. The list does not
        # say a meter's asset; the meter itself does.
        if asset_id is None and await _meter_asset(client, int(item["id"])) is not None:
            continue
        return int(item["id"])
    return None


async def _meter_asset(client: MaintainXClient, meter_id: int) -> object:
    """The asset of a meter as ``GET /meters/{id}`` says it (None: on no asset)."""
    data = await client.request("GET", f"meters/{meter_id}")
    meter = data.get("meter") if isinstance(data, dict) else None
    return meter.get("assetId") if isinstance(meter, dict) else None


async def ensure_meter(
    client: MaintainXClient,
    ledger: MeterIdLedger,
    key: str,
    spec: MeterSpec,
    asset_id: int | None,
) -> int:
    """The MaintainX meter for ``key``: recorded, else found by name, else created; its id
    is recorded before this returns. Raises the client's errors (the caller retries)."""
    known = await ledger.meter_id(key)
    if known is not None:
        return known
    found = await find_meter(client, spec.name, asset_id)
    if found is None:
        body: dict[str, Any] = {
            "name": spec.name,
            "unit": spec.unit,
            "measurementType": MEASUREMENT_TYPE,
        }
        if asset_id is not None:
            body["assetId"] = asset_id
        try:
            data = await client.request("POST", "meters", json_body=body)
        except MaintainXError as exc:
            raise _unconfirmed(exc) from None
        found = int(data["id"])
        log.info("MaintainX meter created.", extra={"meter": key, "meter_id": found})
    else:
        log.info("MaintainX meter found by name.", extra={"meter": key, "meter_id": found})
    await ledger.record_meter(key, found)
    return found


async def find_trigger(client: MaintainXClient, meter_id: int, name: str) -> int | None:
    """The id of the trigger named ``name`` on that meter, if MaintainX has one."""
    params = [("limit", "100"), ("meters", str(meter_id))]
    async for item in client.pages(
        "metertriggers", "meterTriggers", params, max_pages=LOOKUP_MAX_PAGES
    ):
        if (
            item.get("name") == name
            and item.get("meterId") == meter_id
            and isinstance(item.get("id"), int)
        ):
            return int(item["id"])
    return None


async def ensure_trigger(
    client: MaintainXClient, ledger: MeterIdLedger, meter_id: int, trigger: TriggerSpec
) -> int:
    """As :func:`ensure_meter`, for one trigger of a meter."""
    key = trigger_key(meter_id, trigger)
    known = await ledger.trigger_id(key)
    if known is not None:
        return known
    found = await find_trigger(client, meter_id, trigger.name)
    if found is None:
        try:
            data = await client.request("POST", "metertriggers", json_body=trigger.body(meter_id))
        except MaintainXError as exc:
            raise _unconfirmed(exc) from None
        found = int(data["id"])
        log.info("MaintainX meter trigger created.", extra={"trigger": key, "trigger_id": found})
    await ledger.record_trigger(key, found)
    return found


async def ensure_triggers(
    client: MaintainXClient, ledger: MeterIdLedger, meter_id: int, spec: MeterSpec
) -> list[int]:
    """Every trigger the meter declares, each created once."""
    return [await ensure_trigger(client, ledger, meter_id, t) for t in triggers_of(spec)]


# ---------------------------------------------------------------------------- readings


def iso_ms(time_ns: int) -> str:
    """A time as MaintainX writes it: UTC, milliseconds, ``Z``."""
    moment = datetime.fromtimestamp(time_ns // 1_000_000_000, tz=UTC)
    millis = (time_ns // 1_000_000) % 1000
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


@dataclass(frozen=True, slots=True)
class ReadingBody:
    """One entry of a ``POST /meterreadings`` batch."""

    meter_id: int
    value: float
    time_ns: int

    def to_json(self) -> dict[str, Any]:
        return {"meterId": self.meter_id, "value": self.value, "readingDate": iso_ms(self.time_ns)}


async def post_readings(client: MaintainXClient, batch: Sequence[ReadingBody]) -> int:
    """Send one batch (at most :data:`MAX_BATCH`) on ``POST /meterreadings``; the number
    MaintainX accepted. One bad reading refuses the whole batch (``BadRequest`` whose body
    names it, ``[i].readingDate``); an unknown meter refuses it with ``NotFound``, naming
    none (the caller asks ``GET /meters/{id}`` which)."""
    if not batch:
        return 0
    if len(batch) > MAX_BATCH:
        raise ValueError(f"a batch holds at most {MAX_BATCH} readings")
    try:
        data = await client.request(
            "POST", READINGS_PATH, json_body=[reading.to_json() for reading in batch]
        )
    except Misconfigured as exc:
        # MaintainX answers an unknown meter with 404 on the collection's path: a meter of
        # the batch is gone (the client alone would read it as a wrong base_url).
        if exc.status == 404:
            raise NotFound(str(exc), status=404, body=exc.body) from exc
        raise
    return len(data) if isinstance(data, list) else len(batch)


def refused_index(body: Any) -> int | None:
    """Which reading of a batch a 400 names (``fieldPath`` ``[2].readingDate`` → 2)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    for entry in errors if isinstance(errors, list) else []:
        path = entry.get("fieldPath") if isinstance(entry, dict) else None
        if isinstance(path, str) and path.startswith("[") and "]" in path:
            digits = path[1 : path.index("]")]
            if digits.isdigit() and len(digits) < 7:
                return int(digits)
    return None


# ---------------------------------------------------------------------------- downtime


async def status_applied(
    client: MaintainXClient, asset_id: int, message: AssetStatusMessage
) -> bool:
    """Whether the asset's current status in MaintainX is this change already (the status
    and the ``startedAt`` :func:`asset_status_body` sends, to the millisecond): a post whose
    answer was lost (a timeout, a stop) is not made twice. The direct forwarder and the hub
    both ask it."""
    data = await client.request("GET", f"assets/{int(asset_id)}")
    asset = data.get("asset") if isinstance(data, dict) else None
    current = asset.get("status") if isinstance(asset, dict) else None
    if not isinstance(current, dict) or current.get("status") != message.status:
        return False
    try:
        started = wire_time_ns(current.get("startedAt"), "startedAt")
    except WireError:
        return False
    return started // 1_000_000 == message.time_ns // 1_000_000


def asset_status_body(message: AssetStatusMessage) -> dict[str, Any]:
    """The ``POST /assets/{id}/status`` body for a status change."""
    body: dict[str, Any] = {"status": message.status, "startedAt": iso_ms(message.time_ns)}
    if message.downtime_type is not None:
        body["downtimeType"] = message.downtime_type
    if message.description:
        body["description"] = message.description
    return body


async def post_asset_status(
    client: MaintainXClient, asset_id: int, message: AssetStatusMessage
) -> dict[str, Any]:
    """``POST /assets/{id}/status``; the status object MaintainX recorded."""
    data = await client.request(
        "POST", f"assets/{int(asset_id)}/status", json_body=asset_status_body(message)
    )
    return dict(data) if isinstance(data, dict) else {}
