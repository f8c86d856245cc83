"""The emulator's HTTP side: authentication, organization checks, rate limits, faults,
routing to the store, and a log of every request (with the API key that made it)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from edge_agent.simulators.maintainx_emulator.admin import ADMIN_PREFIX, admin
from edge_agent.simulators.maintainx_emulator.errors import ApiError, validation_error
from edge_agent.simulators.maintainx_emulator.faults import Faults
from edge_agent.simulators.maintainx_emulator.limits import RateDecision, WindowLimiter
from edge_agent.simulators.maintainx_emulator.plant_webhooks import (
    MANUAL_READINGS_LIMIT,
    MANUAL_READINGS_WINDOW_S,
)
from edge_agent.simulators.maintainx_emulator.store import MaintainXStore, Query, WebhookEvent
from edge_agent.simulators.maintainx_emulator.webhooks import WebhookSender

log = logging.getLogger(__name__)

API_PREFIX: Final = "/v1"
# POST /meterreadings has its own rate limit (100 / 60 s for automated meters), counted apart
# from the key's general one.
READINGS_PATH: Final = API_PREFIX + "/meterreadings"
READINGS_RATE_LIMIT: Final = 100
READINGS_RATE_WINDOW_S: Final = 60.0
MAX_BODY_BYTES: Final = 1_000_000
MAX_LOGGED_REQUESTS: Final = 200_000


@dataclass(frozen=True)
class KeySpec:
    """An API key: the organizations it belongs to and the user it acts as."""

    organizations: tuple[int, ...]
    user_id: int = 1


@dataclass
class RequestRecord:
    """One request as the emulator saw it (``api_key`` None: no bearer token)."""

    method: str
    path: str
    query: dict[str, list[str]]
    api_key: str | None
    organization_id: int | None
    body: Any
    status: int | None = None
    response: Any = None
    fault: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None


@dataclass
class Context:
    """Who is asking: the organization and user a request acts for."""

    org_id: int
    user_id: int


Handler = Callable[[Context, re.Match[str], Query, Any], tuple[int, Any]]


class EmulatorState:
    """Everything the request handlers share."""

    def __init__(
        self,
        keys: Mapping[str, KeySpec],
        limiter: WindowLimiter,
        faults: Faults,
        store: MaintainXStore,
        stopping: threading.Event,
        webhooks: WebhookSender,
        reading_limiter: WindowLimiter | None = None,
    ) -> None:
        self.keys = dict(keys)
        self.limiter = limiter
        self.reading_limiter = reading_limiter or WindowLimiter(
            READINGS_RATE_LIMIT, READINGS_RATE_WINDOW_S, enabled=limiter.enabled
        )
        self.manual_limiter = WindowLimiter(
            MANUAL_READINGS_LIMIT, MANUAL_READINGS_WINDOW_S, enabled=limiter.enabled
        )
        self.faults = faults
        self.store = store
        self.stopping = stopping
        self.webhooks = webhooks
        # Bounded so that a long-running demo or CLI emulator does not grow without end.
        self.requests: deque[RequestRecord] = deque(maxlen=MAX_LOGGED_REQUESTS)
        self.lock = threading.Lock()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = _routes(self)


def _routes(state: EmulatorState) -> list[tuple[str, re.Pattern[str], Handler]]:
    store = state.store

    def create_work_order(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, {"id": store.create_work_order(c.org_id, c.user_id, b)}

    def list_work_orders(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, store.list_work_orders(c.org_id, q, "/workorders")

    def get_work_order(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, {"workOrder": store.get_work_order(c.org_id, int(m[1]))}

    def patch_work_order(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, {"workOrder": store.patch_work_order(c.org_id, int(m[1]), b)}

    def set_status(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        work_order, events = store.set_status(c.org_id, int(m[1]), b, c.user_id)
        for event in events:
            state.webhooks.submit(event)
        return 200, {"workOrder": work_order}

    def add_comment(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 201, {"id": store.add_comment(c.org_id, int(m[1]), c.user_id, b)}

    def list_comments(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, store.list_comments(c.org_id, int(m[1]), q, f"/workorders/{m[1]}/comments")

    def create_asset(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 201, {"id": store.create_asset(c.org_id, c.user_id, b)}

    def list_assets(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, store.list_assets(c.org_id, q, "/assets")

    def get_asset(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, {"asset": store.get_asset(c.org_id, int(m[1]))}

    def create_meter(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 201, {"id": store.create_meter(c.org_id, c.user_id, b)}

    def list_meters(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, store.list_meters(c.org_id, q, "/meters")

    def get_meter(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, {"meter": store.get_meter(c.org_id, int(m[1]))}

    def add_readings(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        if store.has_manual_meter(c.org_id, b):
            # Manual meters: 10 requests / 24 h per key, a batch counting as one.
            decision = state.manual_limiter.check(f"{c.org_id}:{c.user_id}")
            if not decision.allowed:
                raise ApiError(429, {"error": "Too many requests"}, decision.headers())
        events: list[WebhookEvent] = []
        accepted = store.add_readings(c.org_id, b, events)
        for event in events:
            state.webhooks.submit(event)
        return 201, accepted

    def create_meter_trigger(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 201, {"id": store.create_meter_trigger(c.org_id, c.user_id, b)}

    def list_meter_triggers(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, store.list_meter_triggers(c.org_id, q, "/metertriggers")

    def get_meter_trigger(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, {"meterTrigger": store.get_meter_trigger(c.org_id, int(m[1]))}

    def delete_meter_trigger(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        store.delete_meter_trigger(c.org_id, int(m[1]))
        return 204, None

    def set_asset_status(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        events: list[WebhookEvent] = []
        status = store.set_asset_status(c.org_id, int(m[1]), b, events)
        for event in events:
            state.webhooks.submit(event)
        return 201, status

    def create_subscription(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 201, store.create_subscription(c.org_id, b)

    def get_subscription(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        found = store.get_subscription(c.org_id, int(m[1]))
        return 200, {"subscription": {k: found[k] for k in ("id", "type", "url", "status")}}

    def get_secret(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        return 200, {"secret": store.get_subscription(c.org_id, int(m[1]))["secret"]}

    def delete_subscription(c: Context, m: re.Match[str], q: Query, b: Any) -> tuple[int, Any]:
        store.delete_subscription(c.org_id, int(m[1]))
        return 204, None

    table: list[tuple[str, str, Handler]] = [
        ("POST", r"/workorders", create_work_order),
        ("GET", r"/workorders", list_work_orders),
        ("GET", r"/workorders/(\d+)", get_work_order),
        ("PATCH", r"/workorders/(\d+)", patch_work_order),
        ("PATCH", r"/workorders/(\d+)/status", set_status),
        ("POST", r"/workorders/(\d+)/comments", add_comment),
        ("GET", r"/workorders/(\d+)/comments", list_comments),
        ("POST", r"/assets", create_asset),
        ("GET", r"/assets", list_assets),
        ("GET", r"/assets/(\d+)", get_asset),
        ("POST", r"/assets/(\d+)/status", set_asset_status),
        ("POST", r"/meters", create_meter),
        ("GET", r"/meters", list_meters),
        ("GET", r"/meters/(\d+)", get_meter),
        ("POST", r"/meterreadings", add_readings),
        ("POST", r"/metertriggers", create_meter_trigger),
        ("GET", r"/metertriggers", list_meter_triggers),
        ("GET", r"/metertriggers/(\d+)", get_meter_trigger),
        ("DELETE", r"/metertriggers/(\d+)", delete_meter_trigger),
        ("POST", r"/subscriptions", create_subscription),
        ("GET", r"/subscriptions/(\d+)", get_subscription),
        ("GET", r"/subscriptions/(\d+)/secret", get_secret),
        ("DELETE", r"/subscriptions/(\d+)", delete_subscription),
    ]
    return [(method, re.compile(pattern + "$"), handler) for method, pattern, handler in table]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("MaintainX emulator: " + format, *args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    # ------------------------------------------------------------------ one request

    def _handle(self) -> None:
        state = self.server.state
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        raw_body = self._read_body()
        api_key = self._bearer()
        record = RequestRecord(
            self.command, split.path, query, api_key, self._org_header(), _json_or_raw(raw_body)
        )
        with state.lock:
            state.requests.append(record)
        status, body, headers = self._answer(state, record, split.path, query, raw_body)
        if status >= 400 and state.faults.echo_headers:
            state.faults.injected["echo_headers"] += 1
            echoed = {"requestHeaders": dict(self.headers.items())}
            body = {**echoed, **body} if isinstance(body, dict) else {**echoed, "body": body}
        record.status, record.response, record.finished = status, body, time.monotonic()
        record.response_headers = dict(headers)
        if status < 0:  # a dropped connection: answer nothing
            self.close_connection = True
            return
        if status == 413:  # the rest of the body was not read: the connection is spoiled
            self.close_connection = True
        self._send(status, body, headers)

    def _answer(
        self,
        state: EmulatorState,
        record: RequestRecord,
        path: str,
        query: Query,
        raw_body: bytes | None,
    ) -> tuple[int, Any, dict[str, str]]:
        if path.startswith(ADMIN_PREFIX):
            try:
                if raw_body is not None and record.body is _INVALID:
                    raise validation_error("Body is not valid JSON")
                status, body = admin(state, self.command, path, record.body, query)
            except ApiError as exc:
                return exc.status, exc.body, {}
            return status, body, {}
        key = record.api_key
        spec = state.keys.get(key) if key is not None else None
        if spec is None:
            return 401, None, state.limiter.peek("anonymous").headers()
        limiter = (
            state.reading_limiter
            if self.command == "POST" and path.rstrip("/") == READINGS_PATH
            else state.limiter
        )
        plan = state.faults.plan(self.command)
        if plan.latency_s and state.stopping.wait(plan.latency_s):
            return -1, None, {}
        if plan.forced is not None:
            record.fault = f"forced_{plan.forced[0]}"
            return plan.forced[0], plan.forced[1], limiter.peek(key or "").headers()
        if plan.rate_limit_reset_s is not None:
            record.fault = "429"
            forced = RateDecision(
                False, limiter.limit, 0, max(1, round(plan.rate_limit_reset_s + 0.499))
            )
            return 429, {"error": "Too many requests"}, forced.headers()
        decision = limiter.check(key or "")
        headers = decision.headers()
        if not decision.allowed:
            return 429, {"error": "Too many requests"}, headers
        if plan.drop_before:
            record.fault = "drop"
            return -1, None, headers
        if plan.error_500:
            record.fault = "500"
            return 500, {"error": "Internal Server Error"}, headers
        try:
            context = self._context(spec, record.organization_id)
            if raw_body is not None and record.body is _INVALID:
                raise validation_error("Body is not valid JSON")
            if raw_body is not None and len(raw_body) > MAX_BODY_BYTES:
                raise ApiError(413, {"error": "Payload too large"})
            status, body = self._route(state, context, path, query, record.body)
        except ApiError as exc:
            return exc.status, exc.body, {**headers, **exc.headers}
        if plan.stall_after_store_s is not None:
            record.fault = "timeout_after_store"
            state.stopping.wait(plan.stall_after_store_s)
            return -1, None, headers
        if plan.drop_after_store:
            record.fault = "drop_after_store"
            return -1, None, headers
        return status, body, headers

    def _context(self, spec: KeySpec, org_header: int | None) -> Context:
        raw = self.headers.get("x-organization-id")
        if raw is not None and org_header is None:
            raise validation_error("x-organization-id must be an integer", "x-organization-id", raw)
        if org_header is None:
            if len(spec.organizations) > 1:
                raise validation_error("Missing x-organization-id header.")
            return Context(spec.organizations[0], spec.user_id)
        if org_header not in spec.organizations:
            raise ApiError(
                403, {"errors": [{"error": "You do not have access to this organization."}]}
            )
        return Context(org_header, spec.user_id)

    def _route(
        self, state: EmulatorState, context: Context, path: str, query: Query, body: Any
    ) -> tuple[int, Any]:
        if not path.startswith(API_PREFIX + "/"):
            raise ApiError(404, {"error": "Not Found."})
        local = path[len(API_PREFIX) :].rstrip("/")
        for method, pattern, handler in state.routes:
            match = pattern.match(local)
            if match is not None and method == self.command:
                return handler(context, match, query, body)
        raise ApiError(404, {"error": "Not Found."})

    def _read_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return None
        return self.rfile.read(min(length, MAX_BODY_BYTES + 1))

    def _bearer(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def _org_header(self) -> int | None:
        raw = self.headers.get("x-organization-id")
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    def _send(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        payload = b"" if body is None or status == 204 else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:  # say so: a client must not send the next request here
            self.send_header("Connection", "close")
        self.end_headers()
        if payload:
            self.wfile.write(payload)


_INVALID: Final = object()


def _json_or_raw(raw: bytes | None) -> Any:
    """The parsed JSON body; ``_INVALID`` when it is not JSON; None when there is none."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _INVALID


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        self.state = state
        # Open client connections, so that stopping can cut keep-alive ones too.
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a reset, a broken pipe), or a connection cut by
        :meth:`close_connections` while stopping, is no error of the emulator: no traceback
        (an agent stopping mid-request, found by the demo with direct mode's status polls)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError) or (
            isinstance(exc, OSError) and self.state.stopping.is_set()
        ):
            return
        super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut every open client connection (a stopped MaintainX answers nothing more)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def make_server(host: str, port: int, state: EmulatorState) -> ThreadingHTTPServer:
    """A threaded HTTP server that answers as MaintainX."""
    return _Server((host, port), state)
