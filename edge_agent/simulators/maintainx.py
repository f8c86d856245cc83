"""The MaintainX API emulator: a stand-in for ``https://api.getmaintainx.com/v1`` on loopback.

It answers the paths, status codes and bodies of MaintainX's OpenAPI spec for work orders,
comments, status, assets, meters, meter readings and subscriptions; checks the bearer key and
``x-organization-id``; paginates with cursors; sends ``X-Rate-Limit-*`` headers and 429s;
sends signed webhooks on status changes; injects faults (latency, 500s, 429 bursts,
timeouts after a write was stored, dropped connections); and logs every request with the
API key that made it. Tests, the benchmark, the demo and the hub use it in-process::

    with Emulator(keys={"key-a": [1]}) as mx:
        ... MaintainXClient(mx.url, Secret("key-a"), None, 5.0) ...
        assert len(mx.work_orders) == 1

and ``edge-agent simulate maintainx --port P --key KEY=ORG ...`` runs it on its own (with the
admin endpoints of :mod:`.maintainx_emulator.admin` to revoke a key or move a work order).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from http.server import ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any

from edge_agent.simulators.maintainx_emulator.faults import Faults
from edge_agent.simulators.maintainx_emulator.limits import WindowLimiter
from edge_agent.simulators.maintainx_emulator.server import (
    EmulatorState,
    KeySpec,
    RequestRecord,
    make_server,
)
from edge_agent.simulators.maintainx_emulator.store import MaintainXStore
from edge_agent.simulators.maintainx_emulator.webhooks import (
    SIGNATURE_HEADER,
    WebhookDelivery,
    WebhookSender,
    sign,
)

__all__ = [
    "SIGNATURE_HEADER",
    "Emulator",
    "Faults",
    "KeySpec",
    "RequestRecord",
    "WebhookDelivery",
    "sign",
]

log = logging.getLogger(__name__)

DEFAULT_KEY = "emulator-key"

KeyConfig = KeySpec | int | Sequence[int]


def _key_spec(config: KeyConfig, user_id: int) -> KeySpec:
    if isinstance(config, KeySpec):
        return config
    organizations = (config,) if isinstance(config, int) else tuple(config)
    if not organizations:
        raise ValueError("an API key needs at least one organization")
    return KeySpec(organizations, user_id)


class Emulator:
    """The emulator in a background thread.

    ``keys`` maps each accepted API key to its organization(s) (an int, a list, or a
    :class:`KeySpec`); a key with several organizations must send ``x-organization-id``.
    ``rate_limit`` requests per ``rate_window_s`` per key (MaintainX: 100 per 60 s);
    ``rate_limiting=False`` never refuses (headers still show a full window).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        keys: Mapping[str, KeyConfig] | None = None,
        *,
        rate_limit: int = 100,
        rate_window_s: float = 60.0,
        rate_limiting: bool = True,
        faults: Faults | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.store = MaintainXStore()
        self.faults = faults or Faults()
        self.limiter = WindowLimiter(rate_limit, rate_window_s, enabled=rate_limiting)
        self._stopping = threading.Event()
        self._webhooks = WebhookSender(self._stopping)
        specs = {
            key: _key_spec(config, user_id)
            for user_id, (key, config) in enumerate((keys or {DEFAULT_KEY: 1}).items(), start=1)
        }
        self._state = EmulatorState(
            specs, self.limiter, self.faults, self.store, self._stopping, self._webhooks
        )
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Emulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = make_server(self.host, self.port, self._state)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="mx-emulator",
            daemon=True,
        )
        self._thread.start()
        self._webhooks.start()
        return self

    def stop(self) -> None:
        """Stop serving (stalled requests are released) and close the socket."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        close_connections = getattr(self._server, "close_connections", None)
        if close_connections is not None:
            close_connections()  # keep-alive clients must see the outage too
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._webhooks.stop()
        self._server = None
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, as the client's ``base_url`` (``http://127.0.0.1:PORT/v1``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def admin_url(self) -> str:
        """The admin endpoints (see :mod:`.maintainx_emulator.admin`)."""
        return self.url.removesuffix("/v1") + "/_emulator"

    # ------------------------------------------------------------------ keys

    def set_key(self, key: str, organizations: KeyConfig, user_id: int | None = None) -> None:
        """Accept ``key`` (again), for these organizations."""
        with self._state.lock:
            uid = user_id if user_id is not None else len(self._state.keys) + 1
            self._state.keys[key] = _key_spec(organizations, uid)

    def revoke_key(self, key: str) -> None:
        """From now on ``key`` gets 401."""
        with self._state.lock:
            self._state.keys.pop(key, None)

    # ------------------------------------------------------------------ what tests read

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def clear_requests(self) -> None:
        with self._state.lock:
            self._state.requests.clear()

    @property
    def work_orders(self) -> list[dict[str, Any]]:
        """Every work order of every organization (copies, with ``externalData``)."""
        return self.store.all_work_orders()

    def comments(self, work_order_id: int) -> list[dict[str, Any]]:
        return self.store.all_comments().get(work_order_id, [])

    @property
    def readings(self) -> list[dict[str, Any]]:
        return self.store.all_readings()

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        return list(self._webhooks.deliveries)

    # ------------------------------------------------------------------ what people do in the UI

    def subscriptions(self) -> list[dict[str, Any]]:
        """Every webhook subscription, of every organization."""
        return self.store.all_subscriptions()

    def add_asset(self, name: str, organization_id: int | None = None) -> int:
        """Create an asset directly (as if made in MaintainX's app); returns its id."""
        org = organization_id if organization_id is not None else self._default_org()
        return self.store.create_asset(org, 1, {"name": name})

    def change_status(self, work_order_id: int, status: str, user_id: int = 1) -> None:
        """Change a work order's status as a technician would; subscribed webhooks fire."""
        org = self.store.find_work_order_org(work_order_id)
        _, events = self.store.set_status(org, work_order_id, {"status": status}, user_id)
        for event in events:
            self._webhooks.submit(event)

    def wait_for(self, predicate: Any, timeout_s: float = 10.0) -> bool:
        """Poll ``predicate()`` until true or ``timeout_s`` passed (for scripts and tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            self._stopping.wait(0.01)
        return bool(predicate())

    def _default_org(self) -> int:
        with self._state.lock:
            for spec in self._state.keys.values():
                return spec.organizations[0]
        return 1


# ---------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"accepted bearer key (repeatable; default {DEFAULT_KEY!r})",
    )
    parser.add_argument(
        "--org",
        action="append",
        type=int,
        dest="orgs",
        metavar="ID",
        help="organization id(s) of the keys (repeat for a multi-organization key; default 1)",
    )
    parser.add_argument(
        "--key",
        action="append",
        dest="key_orgs",
        default=[],
        metavar="KEY=ORG",
        type=_key_org,
        help="an accepted key and its organization id (repeatable: one per site; the same "
        "key twice for a multi-organization key)",
    )
    parser.add_argument("--rate-limit", type=int, default=100, help="requests per window")
    parser.add_argument("--rate-window", type=float, default=60.0, help="window in seconds")
    parser.add_argument("--no-rate-limit", action="store_true", help="never answer 429")
    parser.add_argument("--asset", action="append", default=[], help="create an asset by name")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share answered 500")
    parser.add_argument(
        "--echo-headers",
        action="store_true",
        help="put the request's headers (API key included) in every error body",
    )


def _key_org(text: str) -> tuple[str, int]:
    """``KEY=ORG`` → (key, organization id)."""
    key, sep, org = text.rpartition("=")
    if not sep or not key or not org.isdigit() or int(org) < 1:
        raise argparse.ArgumentTypeError("write KEY=ORG, e.g. --key key-plant-north=101")
    return key, int(org)


def _keys(args: argparse.Namespace) -> dict[str, tuple[int, ...]]:
    """The accepted keys: ``--key KEY=ORG`` and ``--api-key`` (with ``--org``)."""
    keys: dict[str, tuple[int, ...]] = {}
    for key, org in args.key_orgs:
        keys[key] = (*keys.get(key, ()), org)
    if args.api_keys or not keys:
        orgs: Iterable[int] = args.orgs or [1]
        for key in args.api_keys or [DEFAULT_KEY]:
            keys[key] = tuple(orgs)
    return keys


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost")


def run(args: argparse.Namespace) -> int:
    if not _loopback(args.host):
        print("edge-agent simulate maintainx: listens on loopback only", file=sys.stderr)
        return 2
    keys = _keys(args)
    try:
        emulator = Emulator(
            args.host,
            args.port,
            keys,
            rate_limit=args.rate_limit,
            rate_window_s=args.rate_window,
            rate_limiting=not args.no_rate_limit,
            faults=Faults(
                latency_s=args.latency, error_rate=args.error_rate, echo_headers=args.echo_headers
            ),
        ).start()
    except OSError as exc:  # the port is taken, or not ours to bind: one line, like the others
        print(
            f"edge-agent simulate maintainx: cannot listen on {args.host}:{args.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    for name in args.asset:
        print(f"asset {emulator.add_asset(name)}: {name}", flush=True)
    # Keys are secrets even here (the same command may hold a real one): never printed.
    for number, orgs in enumerate(keys.values(), start=1):
        print(f"key {number}: organization {', '.join(map(str, orgs))}", flush=True)
    print(f"MaintainX emulator listening on {emulator.url}", flush=True)
    print(f"admin (revoke a key, move a work order): {emulator.admin_url}", flush=True)
    done = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    done.wait()
    emulator.stop()
    return 0
