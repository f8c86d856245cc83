"""Every file of the state folder is of a format this release reads: checked at start,
before any store opens its file.

Each store checks its own file too (:mod:`edge_agent.common.schema_version`); checking them
all first means a rollback stops before anything runs, with one clear message, instead of
after the outbox opened and while the forwarder starts. The last good configuration is not
among them: it matters only when the site file is broken, and is checked then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from edge_agent.common.schema_version import check, json_file_version, sqlite_file_version

MAX_JSON_BYTES: Final = 512 * 1024 * 1024
"""A JSON state file larger than this is left to its store to refuse."""


def check_state_folder(state_dir: Path) -> None:
    """Raise :class:`~edge_agent.common.schema_version.NewerFormatError` for the first file
    in ``state_dir`` a later release wrote. Missing or unreadable files pass: their stores
    create them or say what is wrong."""
    from edge_agent.forwarders.maintainx.forwarder import LEDGER_FILE
    from edge_agent.forwarders.workorder_status import FILE_NAME, SCHEMA_VERSION, VERSION_KEY
    from edge_agent.maintainx import ledger
    from edge_agent.outbox import integrity
    from edge_agent.rules.snapshot import SNAPSHOT_VERSION
    from edge_agent.rules.store import STATE_FILE_NAME
    from edge_agent.service import command_ledger

    outbox_db = state_dir / "outbox" / integrity.DB_NAME
    ledger_db = state_dir / LEDGER_FILE
    rule_state = state_dir / STATE_FILE_NAME
    work_orders = state_dir / FILE_NAME
    commands = state_dir / command_ledger.FILE_NAME
    found_in: list[tuple[str, Path, object, int]] = [
        ("outbox", outbox_db, sqlite_file_version(outbox_db), integrity.SCHEMA_VERSION),
        ("work order ledger", ledger_db, sqlite_file_version(ledger_db), ledger.SCHEMA_VERSION),
        (
            "rule state",
            rule_state,
            json_file_version(rule_state, "version", MAX_JSON_BYTES),
            SNAPSHOT_VERSION,
        ),
        (
            "work order map",
            work_orders,
            json_file_version(work_orders, VERSION_KEY, MAX_JSON_BYTES),
            SCHEMA_VERSION,
        ),
        (
            "alarm command ledger",
            commands,
            json_file_version(commands, command_ledger.VERSION_KEY, MAX_JSON_BYTES),
            command_ledger.SCHEMA_VERSION,
        ),
    ]
    for what, path, found, supported in found_in:
        # Only a later version stops the start here; a damaged one is its store's to handle.
        if isinstance(found, int) and not isinstance(found, bool) and found > supported:
            check(what, str(path), found, supported)
