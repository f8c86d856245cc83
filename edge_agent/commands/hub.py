"""``edge-agent hub HUB.yaml``: run the central hub (site alerts become MaintainX work
orders). ``--register-webhooks`` first makes sure of the MaintainX subscriptions (reusing
those it made before). Commands that print and exit, usable while the hub runs:
``kpis [--since 30d] [--json]``, ``sites [--json]``, ``parked [--site S] [--json]``,
``webhooks list|prune``; ``migrate-store --from OLD.sqlite3`` moves a SQLite store into the
configured PostgreSQL (see :mod:`edge_agent.hub.migrate`); ``alarms SITE shelve|unshelve|oos|
return|ack RULE ...`` sends a site's agent an alarm command and prints its answer (see
:mod:`edge_agent.hub.commands`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.commands.hub_alarms import add_hub_alarm_arguments, hub_alarms
from edge_agent.common.journald import print_error

if TYPE_CHECKING:
    from edge_agent.config.diagnostics import Diagnostic

CLOSE_LIMIT_S = 9.0
EXIT_NEWER_STATE = 3
"""The dedup store was written by a later release (as ``edge-agent run``)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="HUB.yaml", help="the hub file")
    parser.add_argument(
        "action",
        nargs="?",
        choices=["run", "kpis", "sites", "parked", "webhooks", "migrate-store", "alarms"],
        default="run",
        help="run (default), kpis, sites, parked, webhooks, migrate-store --from OLD.sqlite3, "
        "or alarms SITE ACTION RULE",
    )
    parser.add_argument(
        "what", nargs="?", help="webhooks: list (default) or prune; alarms: the site"
    )
    add_hub_alarm_arguments(parser)
    parser.add_argument(
        "--from",
        dest="source",
        metavar="OLD.sqlite3",
        help="migrate-store: the SQLite store to move into the configured PostgreSQL",
    )
    parser.add_argument(
        "--register-webhooks",
        action="store_true",
        help="create the WORK_ORDER_STATUS_CHANGE subscriptions in MaintainX, then run",
    )
    parser.add_argument("--json", action="store_true", help="kpis, sites, parked: print JSON")
    parser.add_argument("--site", help="parked: only this site")
    parser.add_argument(
        "--since", metavar="DURATION", help="kpis: only alerts and work orders of the last 30d"
    )


def run(args: argparse.Namespace) -> int:
    # Until the event loop takes SIGHUP over, a `systemctl reload` during the start must not
    # end the process (SIGHUP's default action); the file is read at the start anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from edge_agent.config.diagnostics import format_diagnostic
    from edge_agent.hub.config import load_hub

    path = Path(args.file)
    config, diagnostics = load_hub(path)
    for diagnostic in diagnostics:
        print_error(format_diagnostic(diagnostic), _level(diagnostic))
    if config is None:
        return 2
    base_dir = path.absolute().parent
    from edge_agent.common.schema_version import NewerFormatError

    if args.action == "webhooks" and args.what not in (None, "list", "prune"):
        print("edge-agent hub: webhooks list|prune", file=sys.stderr)
        return 2
    extra = [args.what] if args.action not in ("webhooks", "alarms") else []
    extra += [args.verb, args.rule] if args.action != "alarms" else []
    if any(word is not None for word in extra):
        print(f"edge-agent hub: {args.action} takes no {extra[0] or extra[-1]!r}", file=sys.stderr)
        return 2
    if args.action == "alarms":
        return hub_alarms(config, base_dir, args)
    try:
        if args.action == "kpis":
            return _kpis(config, base_dir, as_json=args.json, since=args.since)
        if args.action == "migrate-store":
            return _migrate(config, base_dir, args.source)
        if args.action in ("sites", "parked"):
            return _inspect(config, base_dir, args)
        if args.action == "webhooks":
            return _webhooks(config, base_dir, prune=args.what == "prune")
        from edge_agent.common.logs import configure_logging

        configure_logging(config.logging.level)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_run(config, path.absolute(), register=args.register_webhooks))
    except NewerFormatError as exc:
        # A rollback: the store is a later release's (docs/operations.md, "Rollback").
        print_error(f"edge-agent hub: {exc}")
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


def _kpis(config: object, base_dir: Path, *, as_json: bool, since: str | None) -> int:
    import json
    import time

    from edge_agent.config.units import parse_duration
    from edge_agent.hub.asset_kpis import asset_kpis, asset_kpis_json, asset_kpis_table
    from edge_agent.hub.kpis import kpis_json, kpis_table
    from edge_agent.hub.plant_store import open_plant_store
    from edge_agent.hub.store import StoreError

    since_ns = 0
    if since is not None:
        try:
            since_ns = max(0, time.time_ns() - parse_duration(since))
        except ValueError as exc:
            print(f"edge-agent hub: --since {since!r}: {exc}", file=sys.stderr)
            return 2
    store = _open(config, base_dir)
    if store is None:
        return 1
    try:
        rows = store.kpis(since_ns)
        assets = asset_kpis(open_plant_store(store).asset_statuses(), time.time_ns(), since_ns)
    except StoreError as exc:
        print(f"edge-agent hub: cannot read the dedup store: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if as_json:
        document = json.loads(kpis_json(rows))
        document["assets"] = asset_kpis_json(assets)
        print(json.dumps(document, indent=2))
    else:
        print(kpis_table(rows))
        print()
        print(asset_kpis_table(assets))
    return 0


def _migrate(config: object, base_dir: Path, source: str | None) -> int:
    from edge_agent.hub.config import HubConfig
    from edge_agent.hub.migrate import MigrationError, migrate_store

    assert isinstance(config, HubConfig)
    if source is None:
        print("edge-agent hub: migrate-store needs --from OLD.sqlite3", file=sys.stderr)
        return 2
    try:
        results = migrate_store(config, base_dir, Path(source))
    except MigrationError as exc:
        print(f"edge-agent hub: migrate-store: {exc}", file=sys.stderr)
        return 1
    for table in results:
        print(f"{table.name}: {table.read} rows read, {table.added} new", flush=True)
    return 0


def _open(config: object, base_dir: Path) -> Any:
    """The configured store, or None after saying why on stderr."""
    from edge_agent.hub.app import open_store
    from edge_agent.hub.config import HubConfig
    from edge_agent.hub.store import StoreError

    assert isinstance(config, HubConfig)
    try:
        return open_store(config, base_dir)
    except StoreError as exc:
        print(f"edge-agent hub: cannot open the dedup store: {exc}", file=sys.stderr)
        return None


def _inspect(config: object, base_dir: Path, args: argparse.Namespace) -> int:
    import json

    from edge_agent.hub import inspect
    from edge_agent.hub.config import HubConfig
    from edge_agent.hub.store import StoreError

    assert isinstance(config, HubConfig)
    if args.site is not None and args.site not in config.sites:
        print(f"edge-agent hub: no site {args.site!r} in the hub file", file=sys.stderr)
        return 2
    store = _open(config, base_dir)
    if store is None:
        return 1
    try:
        if args.action == "sites":
            report = inspect.sites_report(config, store)
            print(json.dumps(report, indent=2) if args.json else inspect.sites_table(report))
        else:
            rows = inspect.parked_rows(store, args.site)
            print(inspect.parked_json(rows) if args.json else inspect.parked_table(rows))
    except StoreError as exc:
        print(f"edge-agent hub: cannot read the dedup store: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


def _webhooks(config: object, base_dir: Path, *, prune: bool) -> int:
    from edge_agent.hub.config import HubConfig
    from edge_agent.hub.subscriptions import SubscriptionError, list_webhooks, rows_table
    from edge_agent.maintainx.errors import MaintainXError

    assert isinstance(config, HubConfig)
    try:
        rows = asyncio.run(list_webhooks(config, base_dir, prune=prune))
    except (SubscriptionError, MaintainXError) as exc:
        print(f"edge-agent hub: webhooks: {exc}", file=sys.stderr)
        return 1
    print(rows_table(rows))
    unknown = sorted({row.site for row in rows if row.state == "unknown"})
    for site in unknown:
        print(
            f"edge-agent hub: webhooks: site {site}: MaintainX could not be asked "
            "(its key refused, or no answer); its subscriptions are kept as recorded",
            file=sys.stderr,
        )
    return 1 if unknown else 0


async def _run(config: object, path: Path, *, register: bool) -> int:
    from edge_agent.hub.app import Hub, HubError
    from edge_agent.hub.config import HubConfig
    from edge_agent.hub.reload import HubReloader
    from edge_agent.hub.subscriptions import SubscriptionError, register_webhooks
    from edge_agent.maintainx.errors import MaintainXError

    assert isinstance(config, HubConfig)
    base_dir = path.parent  # absolute
    # A SIGHUP before the hub runs (here, during a slow --register-webhooks, or during the
    # start) must neither end the process (SIGHUP's default) nor reload a half-started hub:
    # it is remembered and applied once the hub runs.
    early_hups: list[int] = []
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, lambda: early_hups.append(1))
    if register:
        try:
            for row in await register_webhooks(config, base_dir):
                if row.state == "failed":
                    print(
                        f"site {row.site}: webhook subscription not registered (see the log)",
                        flush=True,
                    )
                    continue
                print(
                    f"site {row.site}: webhook subscription {row.subscription_id} {row.state}",
                    flush=True,
                )
        except (SubscriptionError, MaintainXError) as exc:
            print(f"edge-agent hub: cannot register webhooks: {exc}", file=sys.stderr)
            return 1
    from edge_agent.common.schema_version import NewerFormatError
    from edge_agent.service.sdnotify import SystemdNotifier

    hub = Hub(config, base_dir)
    hub.reloader = HubReloader(hub, path)
    notifier = SystemdNotifier()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def request_reload() -> None:
        """SIGHUP (``systemctl reload``): RELOADING=1, re-read, READY=1 (see hub/reload.py)."""
        assert hub.reloader is not None
        notifier.reloading()

        async def reload() -> bool:
            try:
                assert hub.reloader is not None
                return await hub.reloader.reload("SIGHUP")
            finally:
                notifier.ready(f"hub {hub.replica_id} running")

        task = asyncio.create_task(reload(), name="hub-reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    try:
        await hub.start()
    except HubError as exc:
        print_error(f"edge-agent hub: {exc}")
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
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, request_reload)
    if early_hups:
        request_reload()  # the file may have changed since it was read at the start
    watchdog = asyncio.create_task(notifier.watchdog_loop(), name="hub-watchdog")
    waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(hub.failed.wait())}
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for waiting in waits:
        waiting.cancel()
    notifier.stopping()
    watchdog.cancel()
    for reload_task in reloads:
        reload_task.cancel()
    await _close(hub)
    if hub.failure is not None:
        print_error(f"edge-agent hub: stopped after a failure: {hub.failure}")
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


def _level(diagnostic: Diagnostic) -> int:
    return logging.ERROR if diagnostic.is_error else logging.WARNING
