"""``edge-agent hub HUB.yaml``: run the central hub (site alerts become MaintainX work
orders). ``--register-webhooks`` first creates the MaintainX subscriptions;
``edge-agent hub HUB.yaml kpis [--json]`` prints the maintenance KPIs and exits."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path

CLOSE_LIMIT_S = 9.0
EXIT_NEWER_STATE = 3
"""The dedup store was written by a later release (as ``edge-agent run``)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="HUB.yaml", help="the hub file")
    parser.add_argument(
        "action", nargs="?", choices=["run", "kpis"], default="run", help="run (default) or kpis"
    )
    parser.add_argument(
        "--register-webhooks",
        action="store_true",
        help="create the WORK_ORDER_STATUS_CHANGE subscriptions in MaintainX, then run",
    )
    parser.add_argument("--json", action="store_true", help="kpis: print JSON")


def run(args: argparse.Namespace) -> int:
    from edge_agent.config.diagnostics import format_diagnostic
    from edge_agent.hub.config import load_hub

    path = Path(args.file)
    config, diagnostics = load_hub(path)
    for diagnostic in diagnostics:
        print(format_diagnostic(diagnostic), file=sys.stderr)
    if config is None:
        return 2
    base_dir = path.absolute().parent
    from edge_agent.common.schema_version import NewerFormatError

    try:
        if args.action == "kpis":
            return _kpis(config, base_dir, as_json=args.json)
        from edge_agent.service.logs import configure_logging

        configure_logging(config.logging.level)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_run(config, base_dir, register=args.register_webhooks))
    except NewerFormatError as exc:
        # A rollback: the store is a later release's (docs/operations.md, "Rollback").
        print(f"edge-agent hub: {exc}", file=sys.stderr)
        return EXIT_NEWER_STATE


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (the hub spends much of its CPU in the event
    loop's hand-offs; uvloop does them in C), else asyncio's own."""
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _kpis(config: object, base_dir: Path, *, as_json: bool) -> int:
    from edge_agent.hub.app import open_store
    from edge_agent.hub.config import HubConfig
    from edge_agent.hub.kpis import kpis_json, kpis_table
    from edge_agent.hub.store import StoreError

    assert isinstance(config, HubConfig)
    try:
        store = open_store(config, base_dir)
    except StoreError as exc:
        print(f"edge-agent hub: cannot open the dedup store: {exc}", file=sys.stderr)
        return 1
    try:
        rows = store.kpis()
    finally:
        store.close()
    print(kpis_json(rows) if as_json else kpis_table(rows))
    return 0


async def _run(config: object, base_dir: Path, *, register: bool) -> int:
    from edge_agent.forwarders.maintainx.errors import MaintainXError
    from edge_agent.hub.app import Hub, HubError, register_webhooks
    from edge_agent.hub.config import HubConfig

    assert isinstance(config, HubConfig)
    if register:
        try:
            for site, subscription in await register_webhooks(config, base_dir):
                print(f"site {site}: webhook subscription {subscription} registered", flush=True)
        except (HubError, MaintainXError) as exc:
            print(f"edge-agent hub: cannot register webhooks: {exc}", file=sys.stderr)
            return 1
    from edge_agent.common.schema_version import NewerFormatError
    from edge_agent.service.sdnotify import SystemdNotifier

    hub = Hub(config, base_dir)
    notifier = SystemdNotifier()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await hub.start()
    except HubError as exc:
        print(f"edge-agent hub: {exc}", file=sys.stderr)
        await _close(hub)
        return 1
    except NewerFormatError:
        await _close(hub)
        raise
    print(
        f"hub {hub.replica_id} running: health on port {hub.health_port}"
        + (f", webhooks on port {hub.webhook_port}" if hub.webhook_server else ""),
        flush=True,
    )
    notifier.ready(f"hub {hub.replica_id} running")
    watchdog = asyncio.create_task(notifier.watchdog_loop(), name="hub-watchdog")
    waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(hub.failed.wait())}
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for waiting in waits:
        waiting.cancel()
    notifier.stopping()
    watchdog.cancel()
    await _close(hub)
    if hub.failure is not None:
        print(f"edge-agent hub: stopped after a failure: {hub.failure}", file=sys.stderr)
        return 1
    return 0


async def _close(hub: object) -> None:
    """Close the hub within :data:`CLOSE_LIMIT_S` whatever hangs (SIGTERM → exit ≤ 10 s)."""
    from edge_agent.hub.app import Hub

    assert isinstance(hub, Hub)
    try:
        async with asyncio.timeout(CLOSE_LIMIT_S):
            await hub.close()
    except TimeoutError:
        print("edge-agent hub: stop took too long; exiting anyway", file=sys.stderr)
