"""The emulator's admin endpoints: what an operator does in MaintainX's web app, over HTTP,
to rehearse a key rotation and a webhook (docs/hub.md, "Rehearsing with the stand-in").

Under ``/_emulator/`` (outside the API's ``/v1``; no bearer key; the emulator listens on
loopback only)::

    POST /_emulator/keys                    {"key": "...", "organizations": [101]}  add a key
    DELETE /_emulator/keys/{key}            revoke a key: from now on it gets 401
    PATCH /_emulator/workorders/{id}/status {"status": "DONE"}  as a technician would;
                                            subscribed webhooks fire
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

from edge_agent.simulators.maintainx_emulator.errors import ApiError, validation_error

if TYPE_CHECKING:
    from edge_agent.simulators.maintainx_emulator.server import EmulatorState

ADMIN_PREFIX: Final = "/_emulator/"
_KEY_PATH: Final = re.compile(r"^/_emulator/keys/([^/]{1,200})$")
_STATUS_PATH: Final = re.compile(r"^/_emulator/workorders/(\d{1,18})/status$")


def admin(state: EmulatorState, method: str, path: str, body: Any) -> tuple[int, Any]:
    """Answer one admin request (raises :class:`ApiError` for a bad one)."""
    from edge_agent.simulators.maintainx_emulator.server import KeySpec

    path = path.rstrip("/")
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
