"""The emulator's admin endpoints: what an operator does in MaintainX's web app, over HTTP,
to rehearse a key rotation and a webhook (docs/hub.md, "Rehearsing with the stand-in").

Under ``/_emulator/`` (outside the API's ``/v1``; no bearer key; the emulator listens on
loopback only)::

    POST /_emulator/keys                    {"key": "...", "organizations": [101]}  add a key
    DELETE /_emulator/keys/{key}            revoke a key: from now on it gets 401
    PATCH /_emulator/workorders/{id}/status {"status": "DONE"}  as a technician would;
                                            subscribed webhooks fire

and, to count what arrived when the emulator runs in its own process (issue 14)::

    GET /_emulator/meters                   {"meters": [...]}  every meter, whole
    GET /_emulator/meterreadings[?meterId=N] {"count": n, "readings": [...]}  oldest first
    GET /_emulator/metertriggers            {"meterTriggers": [...]}  with their templates
    GET /_emulator/assets/{id}/statuses     {"statuses": [...]}  every change, in order
    POST /_emulator/clock {"advance_s": 345600}   run MaintainX's clock ahead (the 3-day
                                            rule after a long outage); answers {"now"}
    PUT /_emulator/limits/meterreadings {"limit": 100, "window_s": 60, "enabled": true}
    PUT /_emulator/limits/manualreadings {"limit": 10, "window_s": 86400, "enabled": true}
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

from edge_agent.simulators.maintainx_emulator.errors import ApiError, validation_error
from edge_agent.simulators.maintainx_emulator.store import Query

if TYPE_CHECKING:
    from edge_agent.simulators.maintainx_emulator.server import EmulatorState

ADMIN_PREFIX: Final = "/_emulator/"
_KEY_PATH: Final = re.compile(r"^/_emulator/keys/([^/]{1,200})$")
_STATUS_PATH: Final = re.compile(r"^/_emulator/workorders/(\d{1,18})/status$")
_ASSET_STATUSES_PATH: Final = re.compile(r"^/_emulator/assets/(\d{1,18})/statuses$")


def admin(
    state: EmulatorState, method: str, path: str, body: Any, query: Query | None = None
) -> tuple[int, Any]:
    """Answer one admin request (raises :class:`ApiError` for a bad one)."""
    from edge_agent.simulators.maintainx_emulator.server import KeySpec

    path = path.rstrip("/")
    inspected = _inspect(state, method, path, query or {})
    if inspected is not None:
        return 200, inspected
    if method == "POST" and path == "/_emulator/clock":
        advance = body.get("advance_s") if isinstance(body, dict) else None
        if isinstance(advance, bool) or not isinstance(advance, int | float) or advance < 0:
            raise validation_error("body needs `advance_s`, seconds >= 0", "advance_s")
        state.store.advance_clock(advance)
        return 200, {"now": state.store.now()}
    if method == "PUT" and path in (
        "/_emulator/limits/meterreadings",
        "/_emulator/limits/manualreadings",
    ):
        limit = body.get("limit") if isinstance(body, dict) else None
        window = body.get("window_s") if isinstance(body, dict) else None
        if not (isinstance(limit, int) and limit >= 1) or not (
            isinstance(window, int | float) and window > 0
        ):
            raise validation_error("body needs `limit` >= 1 and `window_s` > 0")
        limiter = state.reading_limiter if path.endswith("meterreadings") else state.manual_limiter
        limiter.configure(limit, window, enabled=body.get("enabled", True) is True)
        return 200, {"limit": limit, "window_s": window}
    if method == "POST" and path == "/_emulator/keys":
        if not isinstance(body, dict) or not isinstance(body.get("key"), str) or not body["key"]:
            raise validation_error("body needs a non-empty `key`", "key")
        orgs = body.get("organizations", [1])
        if (
            not isinstance(orgs, list)
            or not orgs
            or not all(isinstance(o, int) and o >= 1 for o in orgs)
        ):
            raise validation_error("`organizations` is a list of positive integers")
        with state.lock:
            state.keys[body["key"]] = KeySpec(tuple(orgs), len(state.keys) + 1)
        return 201, {"organizations": orgs}
    key_match = _KEY_PATH.match(path)
    if method == "DELETE" and key_match is not None:
        with state.lock:
            found = state.keys.pop(unquote(key_match[1]), None)
        if found is None:
            raise ApiError(404, {"error": "No such key."})
        return 204, None
    status_match = _STATUS_PATH.match(path)
    if method == "PATCH" and status_match is not None:
        if not isinstance(body, dict):
            raise validation_error("body needs `status`", "status")
        work_order_id = int(status_match[1])
        org = state.store.find_work_order_org(work_order_id)
        work_order, events = state.store.set_status(org, work_order_id, body, 1)
        for event in events:
            state.webhooks.submit(event)
        return 200, {"workOrder": work_order}
    raise ApiError(404, {"error": "Not Found."})


def _inspect(state: EmulatorState, method: str, path: str, query: Query) -> Any:
    """What a test reads back (None: not an inspection request)."""
    if method != "GET":
        return None
    store = state.store
    if path == "/_emulator/meters":
        return {"meters": store.all_meters()}
    if path == "/_emulator/metertriggers":
        return {"meterTriggers": store.all_meter_triggers()}
    if path == "/_emulator/meterreadings":
        try:
            wanted = {int(v) for v in query.get("meterId", [])}
        except ValueError:
            raise validation_error("meterId must be an integer", "meterId") from None
        readings = [r for r in store.all_readings() if not wanted or r["meterId"] in wanted]
        return {"count": len(readings), "readings": readings}
    match = _ASSET_STATUSES_PATH.match(path)
    if match is not None:
        return {"statuses": store.all_asset_statuses().get(int(match[1]), [])}
    return None
