"""The emulator's in-memory MaintainX: work orders, comments, assets, meters, readings and
subscriptions, per organization, with the validation and shapes of the OpenAPI spec.

Thread-safe (one lock): the HTTP server answers each request on its own thread.
"""

from __future__ import annotations

import base64
import copy
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

from edge_agent.simulators.maintainx_emulator import meter_triggers, plant_webhooks
from edge_agent.simulators.maintainx_emulator.asset_status import checked_status
from edge_agent.simulators.maintainx_emulator.errors import (
    ApiError,
    not_found,
    query_error,
    validation_error,
)

PRIORITIES: Final = ("NONE", "LOW", "MEDIUM", "HIGH")
STATUSES: Final = ("OPEN", "IN_PROGRESS", "ON_HOLD", "DONE", "CANCELED")
LIST_STATUSES: Final = (*STATUSES, "SKIPPED")
WORK_ORDER_SORTS: Final = ("updatedAt", "createdAt", "dueDate", "startedAt", "completedAt")

# Fields POST /workorders accepts (the spec's request schema); unknown ones are refused.
CREATE_FIELDS: Final = frozenset(
    [
        "assetId",
        "assignees",
        "categories",
        "description",
        "dueDate",
        "estimatedTime",
        "externalData",
        "extraFields",
        "isParent",
        "locationId",
        "parentId",
        "partsUsed",
        "priority",
        "procedure",
        "procedureTemplateId",
        "repeatability",
        "requesterId",
        "skipRestHook",
        "startDate",
        "title",
        "type",
        "vendorIds",
        "workOrderTemplateId",
        "workRequestId",
    ]
)
PATCH_FIELDS: Final = frozenset(
    [
        "assetId",
        "assignees",
        "categories",
        "description",
        "dueDate",
        "estimatedTime",
        "externalData",
        "extraFields",
        "locationId",
        "partsUsed",
        "priority",
        "procedure",
        "procedureTemplateId",
        "recurrenceInfo",
        "requesterId",
        "startDate",
        "title",
        "type",
        "vendorIds",
    ]
)
# What GET /workorders returns per item: the list schema has no externalData or assetId.
LIST_FIELDS: Final = [
    "id",
    "sequentialId",
    "title",
    "description",
    "priority",
    "status",
    "categories",
    "createdAt",
    "updatedAt",
    "creatorId",
    "dueDate",
    "locationId",
    "organizationId",
    "startDate",
    "completedAt",
    "completerId",
    "requesterId",
    "extraFields",
    "vendorIds",
]
SUBSCRIPTION_TYPES: Final = frozenset(
    [
        "API_TOKEN_CREATED",
        "API_TOKEN_REVOKED",
        "ASSET_STATUS_CHANGE",
        "CONNECTOR_TOKEN_REVOKED",
        "DATA_EXPORT_INITIATED",
        "INVITE_LINK_ARCHIVED",
        "INVITE_LINK_CREATED",
        "INVITE_LINK_UPDATED",
        "METER_TRIGGER_STATE_CHANGE",
        "NEW_ASSET",
        "NEW_CATEGORY_ON_WORK_ORDER",
        "NEW_COMMENT_ON_WORK_ORDER",
        "NEW_LOCATION",
        "NEW_PART",
        "NEW_PURCHASE_ORDER",
        "NEW_SLASH_COMMAND",
        "NEW_VENDOR",
        "NEW_WORK_ORDER",
        "NEW_WORK_REQUEST",
        "PART_CHANGE",
        "PART_DELETE",
        "PART_QUANTITY_CHANGE",
        "PART_TRANSFER",
        "PURCHASE_ORDER_CHANGE",
        "PURCHASE_ORDER_STATUS_CHANGE",
        "ROLE_ARCHIVED",
        "ROLE_CREATED",
        "ROLE_UPDATED",
        "SSO_CONFIG_CHANGED",
        "USER_ACTIVATED",
        "USER_INVITED",
        "USER_LOGIN_FAILURE",
        "USER_LOGIN_SUCCESS",
        "USER_LOGOUT",
        "USER_PERMISSIONS_CHANGED",
        "USER_REMOVED",
        "USER_ROLE_CHANGED",
        "USER_SESSION_REVOKED",
        "WEBHOOK_ARCHIVED",
        "WEBHOOK_CREATED",
        "WORK_ORDER_CHANGE",
        "WORK_ORDER_DELETE",
        "WORK_ORDER_OVERDUE",
        "WORK_ORDER_PART_STATUS_CHANGE",
        "WORK_ORDER_STATUS_CHANGE",
        "WORK_REQUEST_STATUS_CHANGE",
    ]
)
MAX_READING_BACKDATE: Final = timedelta(days=3)
MEASUREMENT_TYPES: Final = ("MANUAL", "IOT_DEVICE", "AUTOMATED_SENSOR")
# The meters the 3-day rule holds for: automated ones, and IoT ones that "mimic" them.
BACKDATE_LIMITED: Final = frozenset(["AUTOMATED_SENSOR", "IOT_DEVICE"])

Query = Mapping[str, list[str]]


def now_iso(clock: Callable[[], datetime] | None = None) -> str:
    """MaintainX's time format: ``2026-01-05T10:00:00.000Z``."""
    moment = clock() if clock else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


@dataclass
class WebhookEvent:
    """A webhook to deliver: the subscription it is for and the flat payload."""

    subscription: dict[str, Any]
    payload: dict[str, Any]


@dataclass
class Organization:
    id: int
    work_orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    assets: dict[int, dict[str, Any]] = field(default_factory=dict)
    meters: dict[int, dict[str, Any]] = field(default_factory=dict)
    readings: list[dict[str, Any]] = field(default_factory=list)
    meter_triggers: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Every status change of each asset, in the order they arrived.
    asset_statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    subscriptions: dict[int, dict[str, Any]] = field(default_factory=dict)


# ---------------------------------------------------------------------- field checks


def _check_int(body: Mapping[str, Any], name: str, *, nullable: bool = True) -> int | None:
    value = body.get(name)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise validation_error(f"{name} must be an integer", name, value)
    return value


def _check_str(body: Mapping[str, Any], name: str, *, nullable: bool = True) -> str | None:
    value = body.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise validation_error(f"{name} must be a string", name, value)
    return value


def _check_date(body: Mapping[str, Any], name: str) -> str | None:
    value = _check_str(body, name)
    if value is None:
        return None
    try:
        parse_iso(value)
    except ValueError:
        raise validation_error(f"{name} must be an ISO 8601 date-time", name, value) from None
    return value


def _check_enum(body: Mapping[str, Any], name: str, allowed: Iterable[str]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if value not in tuple(allowed):
        raise validation_error(f"{name} must be one of {', '.join(allowed)}", name, value)
    return str(value)


def _query_ints(query: Query, name: str) -> list[int]:
    try:
        return [int(v) for v in query.get(name, [])]
    except ValueError:
        raise query_error(f"{name} must be integers") from None


def _query_date(query: Query, name: str) -> datetime | None:
    values = query.get(name)
    if not values:
        return None
    try:
        return parse_iso(values[-1])
    except ValueError:
        raise query_error(f"{name} must be an ISO 8601 date-time") from None


def _last(query: Query, name: str) -> str | None:
    """The last value of a query parameter (a repeated scalar takes the last one)."""
    values = query.get(name)
    return values[-1] if values else None


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        kind, _, number = text.partition(":")
        if kind != "offset":
            raise ValueError(kind)
        return max(0, int(number))
    except (ValueError, UnicodeDecodeError):
        raise query_error("Invalid cursor") from None


def paginate(items: list[dict[str, Any]], query: Query, path: str, key: str) -> dict[str, Any]:
    """One page of ``items`` as MaintainX shapes it: ``{key: [...], nextCursor, nextPageUrl}``."""
    raw_limit = (query.get("limit") or ["100"])[-1]
    try:
        limit = int(raw_limit)
    except ValueError:
        raise query_error("limit must be an integer between 1 and 200") from None
    if not 1 <= limit <= 200:
        raise query_error("limit must be an integer between 1 and 200")
    cursor = _last(query, "cursor")
    offset = _decode_cursor(cursor) if cursor else 0
    page = items[offset : offset + limit]
    next_offset = offset + limit
    if next_offset < len(items):
        next_cursor: str | None = _encode_cursor(next_offset)
        pairs = [(k, v) for k, vs in query.items() if k != "cursor" for v in vs]
        next_url: str | None = f"{path}?{urlencode([*pairs, ('cursor', next_cursor)])}"
    else:
        next_cursor = next_url = None
    return {key: page, "nextCursor": next_cursor, "nextPageUrl": next_url}


class MaintainXStore:
    """The emulated data of every organization."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        # How far the emulated MaintainX runs ahead of the clock (a days-long outage in a test).
        self._clock_offset = timedelta()
        self._orgs: dict[int, Organization] = {}
        self._next_id = 1000

    def _org(self, org_id: int) -> Organization:
        if org_id not in self._orgs:
            self._orgs[org_id] = Organization(org_id)
        return self._orgs[org_id]

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _now(self) -> str:
        moment = self._clock() if self._clock else datetime.now(UTC)
        return now_iso(lambda: moment + self._clock_offset)

    def now(self) -> str:
        """The emulated MaintainX's time, in its format."""
        return self._now()

    def advance_clock(self, seconds: float) -> None:
        """Move the emulated MaintainX's clock ahead (what the 3-day rule measures against)."""
        with self._lock:
            self._clock_offset += timedelta(seconds=seconds)

    # ------------------------------------------------------------------ work orders

    def create_work_order(self, org_id: int, user_id: int, body: Any) -> int:
        if not isinstance(body, dict):
            raise validation_error("Body must be a JSON object")
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            raise validation_error(f"Unknown field: {unknown[0]}", unknown[0])
        title = _check_str(body, "title", nullable=False)
        if not title or not title.strip():
            raise validation_error("title is required", "title", body.get("title"))
        with self._lock:
            org = self._org(org_id)
            fields = self._checked_fields(org, body)
            work_order_id = self._new_id()
            stamp = self._now()
            work_order: dict[str, Any] = {
                "id": work_order_id,
                "sequentialId": len(org.work_orders) + 1,
                "organizationId": org_id,
                "title": title,
                "description": None,
                "priority": "NONE",
                "status": "OPEN",
                "assetId": None,
                "locationId": None,
                "categories": [],
                "assigneeIds": [],
                "teamIds": [],
                "vendorIds": [],
                "dueDate": None,
                "startDate": None,
                "externalData": None,
                "extraFields": {},
                "createdAt": stamp,
                "updatedAt": stamp,
                "creatorId": user_id,
                "requesterId": None,
                "completedAt": None,
                "completerId": None,
                "type": "REACTIVE",
            }
            work_order.update(fields)
            org.work_orders[work_order_id] = work_order
            org.comments[work_order_id] = []
            return work_order_id

    def _checked_fields(self, org: Organization, body: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the common create/patch fields and return them in stored form."""
        out: dict[str, Any] = {}
        if "title" in body:
            title = _check_str(body, "title", nullable=False)
            if not title:
                raise validation_error("title must not be empty", "title", title)
            out["title"] = title
        if "description" in body:
            out["description"] = _check_str(body, "description")
        if "priority" in body:
            out["priority"] = _check_enum(body, "priority", PRIORITIES) or "NONE"
        if "assetId" in body:
            asset_id = _check_int(body, "assetId")
            if asset_id is not None and asset_id not in org.assets:
                raise validation_error("Asset not found", "assetId", asset_id)
            out["assetId"] = asset_id
        if "locationId" in body:
            out["locationId"] = _check_int(body, "locationId")
        if "categories" in body:
            categories = body["categories"]
            if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
                raise validation_error("categories must be a list of strings", "categories")
            out["categories"] = list(dict.fromkeys(categories))
        if "assignees" in body:
            out.update(self._assignees(body["assignees"]))
        for name in ("dueDate", "startDate"):
            if name in body:
                out[name] = _check_date(body, name)
        if "externalData" in body:
            external = body["externalData"]
            if external is not None and (
                isinstance(external, bool) or not isinstance(external, dict | int | float | str)
            ):
                raise validation_error("externalData must be an object, number or string")
            out["externalData"] = copy.deepcopy(external)
        if "extraFields" in body:
            extra = body["extraFields"]
            if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
                raise validation_error("extraFields must map labels to strings", "extraFields")
            out["extraFields"] = dict(extra)
        return out

    @staticmethod
    def _assignees(assignees: Any) -> dict[str, list[int]]:
        if not isinstance(assignees, list):
            raise validation_error("assignees must be a list", "assignees")
        users: list[int] = []
        teams: list[int] = []
        for index, entry in enumerate(assignees):
            path = f"assignees[{index}]"
            if not isinstance(entry, dict) or entry.get("type") not in ("USER", "TEAM"):
                raise validation_error("assignee type must be USER or TEAM", f"{path}.type")
            ident = entry.get("id")
            if isinstance(ident, bool) or not isinstance(ident, int | str):
                raise validation_error("assignee id must be an integer or a string", f"{path}.id")
            number = ident if isinstance(ident, int) else abs(hash(ident)) % 100000
            (users if entry["type"] == "USER" else teams).append(number)
        return {"assigneeIds": users, "teamIds": teams}

    def _work_order(self, org_id: int, work_order_id: int) -> dict[str, Any]:
        found = self._org(org_id).work_orders.get(work_order_id)
        if found is None:
            raise not_found("workOrder")
        return found

    def get_work_order(self, org_id: int, work_order_id: int) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._work_order(org_id, work_order_id))

    def patch_work_order(self, org_id: int, work_order_id: int, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise validation_error("Body must be a JSON object")
        unknown = sorted(set(body) - PATCH_FIELDS)
        if unknown:
            raise validation_error(f"Unknown field: {unknown[0]}", unknown[0])
        with self._lock:
            work_order = self._work_order(org_id, work_order_id)
            work_order.update(self._checked_fields(self._org(org_id), body))
            work_order["updatedAt"] = self._now()
            return copy.deepcopy(work_order)

    def set_status(
        self, org_id: int, work_order_id: int, body: Any, user_id: int | None
    ) -> tuple[dict[str, Any], list[WebhookEvent]]:
        if not isinstance(body, dict):
            raise validation_error("Body must be a JSON object")
        status = _check_enum(body, "status", STATUSES)
        if status is None:
            raise validation_error("status is required", "status")
        with self._lock:
            work_order = self._work_order(org_id, work_order_id)
            old = work_order["status"]
            stamp = self._now()
            work_order["status"] = status
            work_order["updatedAt"] = stamp
            if status in ("DONE", "CANCELED"):
                work_order["completedAt"] = stamp
                work_order["completerId"] = user_id
            events = self._status_webhooks(org_id, work_order, old, status, user_id, stamp)
            return copy.deepcopy(work_order), events

    def _status_webhooks(
        self,
        org_id: int,
        work_order: dict[str, Any],
        old: str,
        new: str,
        user_id: int | None,
        stamp: str,
    ) -> list[WebhookEvent]:
        if old == new:
            return []

        # The payload's status enums stop at DONE; CANCELED travels as a sub status.
        def main(status: str) -> str:
            return "DONE" if status == "CANCELED" else status

        payload: dict[str, Any] = {
            "workOrderId": work_order["id"],
            "orgId": org_id,
            "oldStatus": main(old),
            "newStatus": main(new),
            "occurredAt": stamp,
            # The work order after the change, as the spec's payload carries it (the hub
            # passes on whether it has an assignee).
            "newWorkOrder": {
                "assetId": work_order.get("assetId"),
                "assigneeIds": list(work_order.get("assigneeIds") or []),
                "teamIds": list(work_order.get("teamIds") or []),
            },
        }
        if old == "CANCELED":
            payload["oldSubStatus"] = "CANCELED"
        if new == "CANCELED":
            payload["newSubStatus"] = "CANCELED"
        if user_id is not None:
            payload["userId"] = user_id
        events = []
        for subscription in self._org(org_id).subscriptions.values():
            if subscription["type"] != "WORK_ORDER_STATUS_CHANGE":
                continue
            wanted = (subscription.get("filters") or {}).get("oneOfStatuses")
            if wanted and new not in wanted:
                continue
            events.append(WebhookEvent(copy.deepcopy(subscription), dict(payload)))
        return events

    def list_work_orders(self, org_id: int, query: Query, path: str) -> dict[str, Any]:
        assets = set(_query_ints(query, "assets"))
        locations = set(_query_ints(query, "locations"))
        statuses = set(query.get("statuses", []))
        priorities = set(query.get("priorities", []))
        if statuses - set(LIST_STATUSES):
            raise query_error("statuses must be OPEN, IN_PROGRESS, ON_HOLD, DONE, CANCELED")
        if priorities - set(PRIORITIES):
            raise query_error("priorities must be NONE, LOW, MEDIUM or HIGH")
        title = _last(query, "title")
        bounds = {
            (name, op): _query_date(query, f"{name}[{op}]")
            for name in ("createdAt", "updatedAt")
            for op in ("gte", "lte")
        }
        sort = (query.get("sort") or ["createdAt"])[-1]
        if sort.lstrip("-") not in WORK_ORDER_SORTS:
            raise query_error(f"sort must be one of {', '.join(WORK_ORDER_SORTS)}")
        with self._lock:
            chosen = []
            for work_order in self._org(org_id).work_orders.values():
                if assets and work_order["assetId"] not in assets:
                    continue
                if locations and work_order["locationId"] not in locations:
                    continue
                if statuses and work_order["status"] not in statuses:
                    continue
                if priorities and work_order["priority"] not in priorities:
                    continue
                if title and title.lower() not in work_order["title"].lower():
                    continue
                if not self._within(work_order, bounds):
                    continue
                chosen.append(work_order)
            key = sort.lstrip("-")
            chosen.sort(key=lambda w: (w.get(key) or "", w["id"]), reverse=sort.startswith("-"))
            items = [{k: copy.deepcopy(w.get(k)) for k in LIST_FIELDS} for w in chosen]
        return paginate(items, query, path, "workOrders")

    @staticmethod
    def _within(
        work_order: Mapping[str, Any], bounds: Mapping[tuple[str, str], datetime | None]
    ) -> bool:
        for (name, op), bound in bounds.items():
            if bound is None:
                continue
            moment = parse_iso(work_order[name])
            if (op == "gte" and moment < bound) or (op == "lte" and moment > bound):
                return False
        return True

    # ------------------------------------------------------------------ comments

    def add_comment(self, org_id: int, work_order_id: int, user_id: int, body: Any) -> int:
        if not isinstance(body, dict):
            raise validation_error("Body must be a JSON object")
        content = _check_str(body, "content", nullable=False)
        if not content:
            raise validation_error("content is required", "content")
        with self._lock:
            work_order = self._work_order(org_id, work_order_id)
            comment_id = self._new_id()
            self._org(org_id).comments[work_order_id].append(
                {
                    "id": comment_id,
                    "authorId": user_id,
                    "content": content,
                    "createdAt": self._now(),
                }
            )
            work_order["updatedAt"] = self._now()
            return comment_id

    def list_comments(
        self, org_id: int, work_order_id: int, query: Query, path: str
    ) -> dict[str, Any]:
        with self._lock:
            self._work_order(org_id, work_order_id)
            items = copy.deepcopy(self._org(org_id).comments[work_order_id])
        return paginate(items, query, path, "comments")

    # ------------------------------------------------------------------ assets

    def create_asset(self, org_id: int, user_id: int, body: Any) -> int:
        if not isinstance(body, dict):
            raise validation_error("Body must be a JSON object")
        name = _check_str(body, "name", nullable=False)
        if not name:
            raise validation_error("name is required", "name")
        description = _check_str(body, "description")
        location_id = _check_int(body, "locationId")
        serial = _check_str(body, "serialNumber")
        barcode = _check_str(body, "barcode")
        with self._lock:
            asset_id = self._new_id()
            stamp = self._now()
            asset: dict[str, Any] = {
                "id": asset_id,
                "name": name,
                "description": description,
                "parentId": None,
                "criticalityId": None,
                "locationId": location_id,
                "serialNumber": serial,
                "createdAt": stamp,
                "updatedAt": stamp,
                "creatorId": user_id,
                "organizationId": org_id,
                "extraFields": {},
            }
            if barcode is not None:  # not nullable in the spec: absent when unset
                asset["barcode"] = barcode
            self._org(org_id).assets[asset_id] = asset
            return asset_id

    def get_asset(self, org_id: int, asset_id: int) -> dict[str, Any]:
        with self._lock:
            asset = self._org(org_id).assets.get(asset_id)
            if asset is None:
                raise not_found("asset")
            return copy.deepcopy(asset)

    def list_assets(self, org_id: int, query: Query, path: str) -> dict[str, Any]:
        location = _query_ints(query, "locationId")
        with self._lock:
            items = [
                copy.deepcopy(a)
                for a in self._org(org_id).assets.values()
                if not location or a["locationId"] in location
            ]
        return paginate(items, query, path, "assets")

    # ------------------------------------------------------------------ meters and readings

    def create_meter(self, org_id: int, user_id: int, body: Any) -> int:
        if not isinstance(body, dict):
            raise validation_error("Body must be a JSON object")
        name = _check_str(body, "name", nullable=False)
        unit = _check_str(body, "unit", nullable=False)
        if not name:
            raise validation_error("name is required", "name")
        measurement = _check_enum(body, "measurementType", MEASUREMENT_TYPES) or "MANUAL"
        asset_id = _check_int(body, "assetId")
        with self._lock:
            org = self._org(org_id)
            if asset_id is not None and asset_id not in org.assets:
                raise validation_error("Asset not found", "assetId", asset_id)
            meter_id = self._new_id()
            stamp = self._now()
            org.meters[meter_id] = {
                "id": meter_id,
                "name": name,
                "unit": unit,
                "measurementType": measurement,
                "assetId": asset_id,
                "locationId": _check_int(body, "locationId"),
                "description": _check_str(body, "description"),
                "creatorId": user_id,
                "updaterId": user_id,
                "uuid": secrets.token_hex(16),
                "readingFrequency": None,
                "createdAt": stamp,
                "updatedAt": stamp,
                "deletedAt": None,
            }
            return meter_id

    def get_meter(self, org_id: int, meter_id: int) -> dict[str, Any]:
        with self._lock:
            meter = self._org(org_id).meters.get(meter_id)
            if meter is None:
                raise not_found("meter")
            return copy.deepcopy(meter)

    def list_meters(self, org_id: int, query: Query, path: str) -> dict[str, Any]:
        assets = set(_query_ints(query, "assets"))
        kinds = set(query.get("measurementType", []))
        if kinds - set(MEASUREMENT_TYPES):
            raise query_error(f"measurementType must be one of {', '.join(MEASUREMENT_TYPES)}")
        with self._lock:
            items = [
                {k: copy.deepcopy(m[k]) for k in ("id", "name", "unit", "measurementType")}
                for m in self._org(org_id).meters.values()
                if (not assets or m["assetId"] in assets)
                and (not kinds or m["measurementType"] in kinds)
            ]
        return paginate(items, query, path, "meters")

    def has_manual_meter(self, org_id: int, body: Any) -> bool:
        """Whether a readings batch names a ``MANUAL`` meter (their own daily limit)."""
        with self._lock:
            meters = self._org(org_id).meters
            for reading in body if isinstance(body, list) else []:
                meter_id = reading.get("meterId") if isinstance(reading, dict) else None
                if isinstance(meter_id, int) and not isinstance(meter_id, bool):
                    meter = meters.get(meter_id)
                    if meter is not None and meter["measurementType"] == "MANUAL":
                        return True
        return False

    def add_readings(
        self, org_id: int, body: Any, events: list[WebhookEvent] | None = None
    ) -> list[dict[str, Any]]:
        """``POST /meterreadings``; the trigger state changes' webhooks go to ``events``."""
        if not isinstance(body, list) or not body:
            raise validation_error("Body must be a non-empty JSON array of readings")
        with self._lock:
            org = self._org(org_id)
            now = parse_iso(self._now())
            accepted = []
            checked: list[tuple[int, float]] = []  # (meter, value) of each accepted reading
            for index, reading in enumerate(body):
                path = f"[{index}]"
                if not isinstance(reading, dict):
                    raise validation_error("A reading must be an object", path)
                meter_id = reading.get("meterId")
                value = reading.get("value")
                if isinstance(meter_id, bool) or not isinstance(meter_id, int | float):
                    raise validation_error("meterId must be a number", f"{path}.meterId")
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise validation_error("value must be a number", f"{path}.value")
                meter = org.meters.get(int(meter_id))
                if meter is None:
                    raise not_found("meter")
                try:
                    date = _check_date(reading, "readingDate")
                except ApiError:  # say which reading of the batch it was
                    raise validation_error(
                        "readingDate must be an ISO 8601 date-time",
                        f"{path}.readingDate",
                        reading.get("readingDate"),
                    ) from None
                if (
                    date is not None
                    and meter["measurementType"] in BACKDATE_LIMITED
                    and parse_iso(date) < now - MAX_READING_BACKDATE
                ):
                    raise validation_error(
                        "readingDate may be back-dated by at most 3 days for automated meters",
                        f"{path}.readingDate",
                        date,
                    )
                checked.append((int(meter_id), value))
                accepted.append(
                    {
                        "meterId": int(meter_id),
                        "value": value,
                        "readingDate": date,
                        "createdAt": self._now(),
                    }
                )
            org.readings.extend(accepted)
            for meter_id, value in checked:
                self._evaluate_triggers(org, meter_id, value, events)
            return copy.deepcopy(accepted)

    def _evaluate_triggers(
        self,
        org: Organization,
        meter_id: int,
        value: float,
        events: list[WebhookEvent] | None = None,
    ) -> None:
        """MaintainX's own PM: a trigger that fires opens a preventive work order."""
        for trigger in org.meter_triggers.values():
            if trigger["meterId"] != meter_id:
                continue
            was = trigger.get("state")
            fired = meter_triggers.fires(trigger, value)
            if events is not None and trigger.get("state") != was:
                payload = plant_webhooks.trigger_state_payload(
                    org.id, trigger, str(was), self._now()
                )
                events += [
                    WebhookEvent(sub, dict(payload))
                    for sub in plant_webhooks.subscribed(
                        org.subscriptions.values(), plant_webhooks.METER_TRIGGER_STATE_CHANGE
                    )
                ]
            if not fired:
                continue
            template = trigger.get("workOrderTemplate") or {}
            data = template.get("data") or {}
            asset_id = data.get("assetId", org.meters[meter_id]["assetId"])
            body: dict[str, Any] = {"title": trigger["name"]}
            if asset_id in org.assets:
                body["assetId"] = asset_id
            if data.get("priority") in PRIORITIES:
                body["priority"] = data["priority"]
            work_order_id = self.create_work_order(org.id, trigger["creatorId"], body)
            org.work_orders[work_order_id]["type"] = "PREVENTIVE"
            trigger["updatedAt"] = self._now()

    # ------------------------------------------------------------------ meter triggers

    def create_meter_trigger(self, org_id: int, user_id: int, body: Any) -> int:
        fields, template = meter_triggers.checked_trigger(body)
        with self._lock:
            org = self._org(org_id)
            if fields["meterId"] not in org.meters:
                raise validation_error("Meter not found", "meterTrigger.meterId", fields["meterId"])
            trigger_id = self._new_id()
            stamp = self._now()
            org.meter_triggers[trigger_id] = {
                "id": trigger_id,
                "organizationId": org_id,
                **fields,
                "createdAt": stamp,
                "updatedAt": stamp,
                "creatorId": user_id,
                "deletedAt": None,
                # No reading evaluated yet: what MaintainX shows for a new trigger.
                "state": "INSUFFICIENT_DATA",
                "workOrderTemplate": template,
            }
            return trigger_id

    def get_meter_trigger(self, org_id: int, trigger_id: int) -> dict[str, Any]:
        with self._lock:
            found = self._org(org_id).meter_triggers.get(trigger_id)
            if found is None:
                raise not_found("meterTrigger")
            # The template only comes with ?expand=work_order_template (not emulated).
            return {k: copy.deepcopy(v) for k, v in found.items() if k != "workOrderTemplate"}

    def list_meter_triggers(self, org_id: int, query: Query, path: str) -> dict[str, Any]:
        meters = set(_query_ints(query, "meters"))
        with self._lock:
            items = [
                {k: t[k] for k in meter_triggers.LIST_FIELDS}
                for t in self._org(org_id).meter_triggers.values()
                if not meters or t["meterId"] in meters
            ]
        return paginate(items, query, path, "meterTriggers")

    def delete_meter_trigger(self, org_id: int, trigger_id: int) -> None:
        with self._lock:
            if self._org(org_id).meter_triggers.pop(trigger_id, None) is None:
                raise not_found("meterTrigger")

    # ------------------------------------------------------------------ asset downtime

    def set_asset_status(
        self, org_id: int, asset_id: int, body: Any, events: list[WebhookEvent] | None = None
    ) -> dict[str, Any]:
        """``POST /assets/{id}/status``; its ``ASSET_STATUS_CHANGE`` webhooks go to
        ``events``."""
        change = checked_status(body, parse_iso)
        with self._lock:
            org = self._org(org_id)
            asset = org.assets.get(asset_id)
            if asset is None:
                raise not_found("asset")
            history = org.asset_statuses.setdefault(asset_id, [])
            stamp = self._now()
            if history and history[-1]["endedAt"] is None:
                history[-1]["endedAt"] = change["startedAt"]
                history[-1]["updatedAt"] = stamp
            status = {
                "id": self._new_id(),
                **change,
                "createdAt": stamp,
                "updatedAt": stamp,
                "deletedAt": None,
            }
            before = history[-1] if history else None
            history.append(status)
            asset["status"] = copy.deepcopy(status)
            asset["updatedAt"] = stamp
            if events is not None:
                payload = plant_webhooks.asset_status_payload(org_id, asset_id, before, status)
                events += [
                    WebhookEvent(sub, dict(payload))
                    for sub in plant_webhooks.subscribed(
                        org.subscriptions.values(), plant_webhooks.ASSET_STATUS_CHANGE
                    )
                ]
            return copy.deepcopy(status)

    # ------------------------------------------------------------------ subscriptions

    def create_subscription(self, org_id: int, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise validation_error("Body must be a JSON object")
        kind = body.get("type")
        if kind not in SUBSCRIPTION_TYPES:
            raise validation_error("type is not a known subscription type", "type", kind)
        url = _check_str(body, "url", nullable=False)
        if not url or not url.startswith(("http://", "https://")):
            raise validation_error("url must be an http(s) URL", "url", url)
        filters = body.get("filters")
        if filters is not None and not isinstance(filters, dict):
            raise validation_error("filters must be an object", "filters")
        with self._lock:
            subscription_id = self._new_id()
            subscription = {
                "id": subscription_id,
                "type": kind,
                "url": url,
                "status": "VALID",
                "filters": copy.deepcopy(filters) if filters else None,
                "secret": secrets.token_hex(32),
            }
            self._org(org_id).subscriptions[subscription_id] = subscription
            return {"id": subscription_id, "status": "VALID", "secret": subscription["secret"]}

    def get_subscription(self, org_id: int, subscription_id: int) -> dict[str, Any]:
        with self._lock:
            found = self._org(org_id).subscriptions.get(subscription_id)
            if found is None:
                raise not_found("subscription")
            return copy.deepcopy(found)

    def delete_subscription(self, org_id: int, subscription_id: int) -> None:
        with self._lock:
            if self._org(org_id).subscriptions.pop(subscription_id, None) is None:
                raise not_found("subscription")

    # ------------------------------------------------------------------ for tests

    def all_subscriptions(self) -> list[dict[str, Any]]:
        """Every subscription of every organization, with ``organizationId``."""
        with self._lock:
            return [
                {**copy.deepcopy(sub), "organizationId": org_id}
                for org_id, org in self._orgs.items()
                for sub in org.subscriptions.values()
            ]

    def all_work_orders(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(w) for org in self._orgs.values() for w in org.work_orders.values()
            ]

    def all_comments(self) -> dict[int, list[dict[str, Any]]]:
        with self._lock:
            out: dict[int, list[dict[str, Any]]] = {}
            for org in self._orgs.values():
                out.update(copy.deepcopy(org.comments))
            return out

    def all_readings(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for org in self._orgs.values() for r in org.readings]

    def all_meters(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(m) for org in self._orgs.values() for m in org.meters.values()]

    def all_meter_triggers(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(t) for org in self._orgs.values() for t in org.meter_triggers.values()
            ]

    def all_asset_statuses(self) -> dict[int, list[dict[str, Any]]]:
        """Every asset's status changes, in the order they arrived."""
        with self._lock:
            out: dict[int, list[dict[str, Any]]] = {}
            for org in self._orgs.values():
                out.update(copy.deepcopy(org.asset_statuses))
            return out

    def find_work_order_org(self, work_order_id: int) -> int:
        with self._lock:
            for org in self._orgs.values():
                if work_order_id in org.work_orders:
                    return org.id
        raise ApiError(404, {"error": "Not Found."})
