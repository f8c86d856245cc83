"""An asyncio client for the part of the MaintainX REST API that edge-agent uses.

One long-lived ``httpx.AsyncClient`` per API key; requests are paced from the
``X-Rate-Limit-*`` headers (see :mod:`.ratelimit`) and every failure leaves this module as one
of the project's own exceptions (see :mod:`.errors`). The API key is sent in the
``Authorization`` header only and never appears in a log line or an exception message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from edge_agent import __version__
from edge_agent.common.lean_httpx import httpx
from edge_agent.config.secrets import Secret
from edge_agent.maintainx.errors import (
    BadRequest,
    CredentialsRejected,
    MaintainXError,
    Misconfigured,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    TransientError,
)
from edge_agent.maintainx.ratelimit import RatePacer
from edge_agent.redaction import redact

log = logging.getLogger(__name__)

MAX_429_WAITS: Final = 5
"""How many 429s in a row one call waits out before it raises :class:`RateLimited`."""
# The HTTP library's own failures in a row on one call (method and path) before they are
# taken for what they then are, a bug, and raised as they came (see ``_send``).
MAX_TRANSPORT_FAILURES_IN_ROW: Final = 3
MAX_TRACKED_CALLS: Final = 1000

_ERROR_BODY_CHARS: Final = 2000

# Filters whose API names hold brackets; Python keywords cannot, so `createdAt_gte` etc.
_BRACKET_SUFFIXES: Final = ("_gte", "_lte")


def _query_name(name: str) -> str:
    for suffix in _BRACKET_SUFFIXES:
        if name.endswith(suffix):
            return f"{name[: -len(suffix)]}[{suffix[1:]}]"
    return name


def _decode_body(response: httpx.Response) -> Any:
    """The JSON body, or the text (shortened) when it is not JSON, or None when empty."""
    if not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:_ERROR_BODY_CHARS]


RETRY_LATER_STATUSES: Final = frozenset({408, 413, 425})
"""4xx answers that say "not now" (a timeout, a proxy's size or early-data limit), not "never"."""
REQUEST_REFUSED_STATUSES: Final = frozenset({409, 422})
"""4xx answers about this request's content: final for it, no other request is affected."""


def _names_an_object(path: str) -> bool:
    """``workorders/159`` or ``workorders/159/comments`` address one object (a 404 says it is
    gone); ``workorders`` is a collection (a 404 says the base URL is wrong)."""
    return any(segment.isdigit() for segment in path.split("?")[0].split("/"))


def _names_a_field(body: Any) -> bool:
    """MaintainX's validation errors name the field they refuse
    (``{"errors": [{"error", "fieldPath"}]}``): only those are the request's own fault."""
    errors = body.get("errors") if isinstance(body, dict) else None
    return isinstance(errors, list) and any(
        isinstance(entry, dict) and entry.get("fieldPath") for entry in errors
    )


class MaintainXClient:
    """Work orders, comments, status and subscriptions on one MaintainX organization.

    ``organization_id`` is sent as ``x-organization-id`` (needed by keys that belong to
    several organizations). ``rate_limit_per_min`` paces requests until the first response
    tells the real limit. ``rate_share`` is the part of the key's general budget this client
    may spend (the rest is left to the key's other clients; see :class:`RatePacer`).
    """

    def __init__(
        self,
        base_url: str,
        api_key: Secret,
        organization_id: int | None,
        timeout_s: float,
        rate_limit_per_min: int = 100,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_share: float = 1.0,
    ) -> None:
        headers = {
            "Authorization": f"Bearer {api_key.reveal()}",
            "Accept": "application/json",
            "User-Agent": f"edge-agent/{__version__}",
        }
        if organization_id is not None:
            headers["x-organization-id"] = str(organization_id)
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.pacer = RatePacer(rate_limit_per_min, share=rate_share)
        # Paths with a bucket of their own (their responses carry that bucket's headers):
        # POST /meterreadings, 100 / 60 s for automated meters (issue 14).
        self.endpoint_pacers: dict[str, RatePacer] = {"meterreadings": RatePacer(100)}
        self.requests_sent = 0
        self.rate_limited = 0
        self.transport_errors = 0  # the HTTP library raised something of its own
        # Per (method, path): the transport's own failures since that call last got an
        # answer. A teardown race passes on the next connection; a bug fails every time.
        self._transport_failures: dict[tuple[str, str], int] = {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> MaintainXClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ the calls

    async def create_work_order(self, body: Mapping[str, Any]) -> int:
        """``POST /workorders``; returns the new work order's id (MaintainX answers 200)."""
        data = await self._request("POST", "workorders", json_body=body)
        return int(data["id"])

    async def get_work_order(self, work_order_id: int) -> dict[str, Any]:
        """``GET /workorders/{id}``: the work order (with ``externalData`` and ``status``)."""
        data = await self._request("GET", f"workorders/{int(work_order_id)}")
        return dict(data["workOrder"])

    async def list_work_orders(
        self, *, limit: int = 100, max_pages: int | None = None, **filters: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """``GET /workorders``, following ``nextCursor``. Filters are passed as the API names
        them (``assets=[1, 2]``, ``title=...``, ``sort="-createdAt"``); ``createdAt_gte``
        stands for ``createdAt[gte]``. Lists repeat the parameter (``assets=1&assets=2``)."""
        params: list[tuple[str, str]] = [("limit", str(limit))]
        for name, value in filters.items():
            if value is None:
                continue
            values = value if isinstance(value, list | tuple | set) else [value]
            params.extend((_query_name(name), str(item)) for item in values)
        cursor: str | None = None
        pages = 0
        while True:
            page_params = [*params, ("cursor", cursor)] if cursor else params
            data = await self._request("GET", "workorders", params=page_params)
            for work_order in data.get("workOrders", []):
                yield dict(work_order)
            pages += 1
            cursor = data.get("nextCursor")
            if not cursor or (max_pages is not None and pages >= max_pages):
                return

    async def update_priority(self, work_order_id: int, priority: str) -> dict[str, Any]:
        """``PATCH /workorders/{id}`` with ``{"priority": ...}`` (NONE|LOW|MEDIUM|HIGH)."""
        data = await self._request(
            "PATCH", f"workorders/{int(work_order_id)}", json_body={"priority": priority}
        )
        return dict(data.get("workOrder") or {})

    async def add_comment(self, work_order_id: int, content: str) -> int:
        """``POST /workorders/{id}/comments``; returns the comment's id (201)."""
        data = await self._request(
            "POST", f"workorders/{int(work_order_id)}/comments", json_body={"content": content}
        )
        return int(data["id"])

    async def list_comments(
        self, work_order_id: int, *, max_pages: int = 5
    ) -> AsyncIterator[dict[str, Any]]:
        """``GET /workorders/{id}/comments`` (200 a page), following ``nextCursor``."""
        params: list[tuple[str, str]] = [("limit", "200")]
        cursor: str | None = None
        for _ in range(max_pages):
            page_params = [*params, ("cursor", cursor)] if cursor else params
            data = await self._request(
                "GET", f"workorders/{int(work_order_id)}/comments", params=page_params
            )
            for comment in data.get("comments", []):
                yield dict(comment)
            cursor = data.get("nextCursor")
            if not cursor:
                return

    async def set_status(self, work_order_id: int, status: str) -> dict[str, Any]:
        """``PATCH /workorders/{id}/status`` (OPEN|IN_PROGRESS|ON_HOLD|DONE|CANCELED)."""
        data = await self._request(
            "PATCH", f"workorders/{int(work_order_id)}/status", json_body={"status": status}
        )
        return dict(data.get("workOrder") or {})

    async def create_subscription(
        self, type: str, url: str, filters: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``POST /subscriptions``: a webhook. Returns ``{"id", "status", "secret"}``."""
        body: dict[str, Any] = {"type": type, "url": url}
        if filters is not None:
            body["filters"] = dict(filters)
        return dict(await self._request("POST", "subscriptions", json_body=body))

    async def get_subscription(self, subscription_id: int) -> dict[str, Any] | None:
        """``GET /subscriptions/{id}``: ``{"id", "type", "url", "status"}``, None when gone."""
        try:
            data = await self._request("GET", f"subscriptions/{int(subscription_id)}")
        except NotFound:
            return None
        return dict(data.get("subscription") or {})

    async def subscription_secret(self, subscription_id: int) -> str:
        """``GET /subscriptions/{id}/secret``."""
        data = await self._request("GET", f"subscriptions/{int(subscription_id)}/secret")
        return str(data.get("secret") or "")

    async def delete_subscription(self, subscription_id: int) -> bool:
        """``DELETE /subscriptions/{id}``; False when it was already gone."""
        try:
            await self._request("DELETE", f"subscriptions/{int(subscription_id)}")
        except NotFound:
            return False
        return True

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: list[tuple[str, str]] | None = None,
    ) -> Any:
        """Any call by its path (``meters``, ``assets/7/status``): the decoded JSON answer,
        paced and with errors translated like every call above (``maintainx/meters.py``)."""
        return await self._request(method, path, json_body=json_body, params=params)

    async def pages(
        self, path: str, key: str, params: list[tuple[str, str]], *, max_pages: int
    ) -> AsyncIterator[dict[str, Any]]:
        """``GET /{path}``'s items under ``key``, following ``nextCursor`` for at most
        ``max_pages`` pages."""
        cursor: str | None = None
        for _ in range(max_pages):
            page_params = [*params, ("cursor", cursor)] if cursor else params
            data = await self._request("GET", path, params=page_params)
            for item in data.get(key, []) if isinstance(data, dict) else []:
                if isinstance(item, dict):
                    yield dict(item)
            cursor = data.get("nextCursor") if isinstance(data, dict) else None
            if not cursor:
                return

    # ------------------------------------------------------------------ the one request path

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: list[tuple[str, str]] | None = None,
    ) -> Any:
        wait_s = 0.0
        pacer = self.endpoint_pacers.get(path, self.pacer)
        for _ in range(MAX_429_WAITS + 1):
            await pacer.acquire()
            response = await self._send(method, path, json_body, params)
            advised = pacer.observe(response.headers, response.status_code)
            if advised is None:
                return self._result(method, path, response)
            wait_s = advised
            self.rate_limited += 1
            log.warning(
                "MaintainX rate limit reached; waiting the advertised reset.",
                extra={"method": method, "path": path, "wait_s": round(wait_s, 3)},
            )
        raise RateLimited(
            f"{method} /{path}: still rate limited after {MAX_429_WAITS} waits",
            reset_s=wait_s,
            body=_decode_body(response),
        )

    async def _send(
        self, method: str, path: str, json_body: Any, params: list[tuple[str, str]] | None
    ) -> httpx.Response:
        self.requests_sent += 1
        # Built first: a request that cannot be built is this process' error, not the link's.
        query = httpx.QueryParams(tuple(params)) if params else None
        request = self._http.build_request(method, path, json=json_body, params=query)
        if self._http.is_closed:
            # This client was closed under its caller (a key rotation): nothing was sent.
            raise TransientError(f"{method} /{path}: the client was closed; nothing was sent")
        call = (method, path)
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as exc:
            # The library named what happened (the link, the peer): a streak ends.
            self._transport_failures.pop(call, None)
            raise _translated(method, path, exc) from exc
        except Exception as exc:
            # The transport's own bugs on a connection torn down mid-way (anyio's
            # ``getpeername`` on a closed socket raises AttributeError, found by the fault
            # campaign with MaintainX restarting): a link fault, retried, never a poison
            # message. Whether the request left is unknown, so it may have been applied.
            # The same call failing so again and again, with no answer or named link
            # failure in between, is no race but a bug: raised as it came, for the
            # caller's policy on bugs (traceback, bounded attempts, dead letters).
            self.transport_errors += 1
            failures = self._transport_failures.get(call, 0) + 1
            if len(self._transport_failures) >= MAX_TRACKED_CALLS:
                self._transport_failures.clear()  # bounded: paths carry ids
            self._transport_failures[call] = failures
            extra = {"method": method, "path": path, "error": type(exc).__name__}
            if failures > MAX_TRANSPORT_FAILURES_IN_ROW:
                log.error("The HTTP transport fails this call every time.", extra=extra)
                raise
            log.warning(
                "The HTTP transport failed on its own; the request is retried as unanswered.",
                extra=extra,
                exc_info=True,
            )
            raise OutcomeUnknown(
                f"{method} /{path}: the transport failed ({type(exc).__name__})"
            ) from exc
        self._transport_failures.pop(call, None)
        return response

    @staticmethod
    def _result(method: str, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        body = _decode_body(response)
        if 200 <= status < 300:
            if body is None or isinstance(body, dict | list):
                return body if body is not None else {}
            raise TransientError(f"{method} /{path}: {status} with a body that is not JSON")
        where = f"{method} /{path}: HTTP {status}"
        if status in (401, 403):
            raise CredentialsRejected(f"{where}: credentials rejected", status=status, body=body)
        if status == 429:  # only reached when the pacer produced no wait (cannot happen)
            raise RateLimited(where, reset_s=1.0, body=body)
        if status >= 500 or status in RETRY_LATER_STATUSES:
            raise TransientError(where, status=status, body=body)
        # Redacted before the cut, which could leave a secret's prefix no one recognises.
        detail = f"{where}: {redact(json.dumps(body))[:500]}"
        if status == 404:
            if _names_an_object(path):
                raise NotFound(where, status=status, body=body)
            raise Misconfigured(
                f"{where}: no such endpoint (check forwarding.maintainx.base_url)",
                status=status,
                body=body,
            )
        if status in REQUEST_REFUSED_STATUSES or (status == 400 and _names_a_field(body)):
            raise BadRequest(detail, status=status, body=body)
        if 400 <= status < 500:
            raise Misconfigured(detail, status=status, body=body)
        raise MaintainXError(f"{where}: unexpected status", status=status, body=body)


def _translated(method: str, path: str, exc: httpx.HTTPError) -> MaintainXError:
    """An httpx failure as the kind of failure the callers decide on."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        # Nothing left this machine: the request was certainly not applied.
        return TransientError(f"{method} /{path}: cannot connect ({type(exc).__name__})")
    if isinstance(exc, httpx.LocalProtocolError):
        # Refused here before sending (h11): a header HTTP cannot carry, such as an API key
        # ending in a carriage return from a CRLF environment file. No retry can succeed.
        return Misconfigured(
            f"{method} /{path}: the request cannot be sent as HTTP (a header, the API key "
            "perhaps, holds a line break or another character HTTP forbids)"
        )
    if isinstance(exc, httpx.TimeoutException | httpx.RemoteProtocolError | httpx.ReadError):
        return OutcomeUnknown(f"{method} /{path}: no answer after sending ({type(exc).__name__})")
    return OutcomeUnknown(f"{method} /{path}: {type(exc).__name__}")
