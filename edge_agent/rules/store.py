"""The rule state on disk: one JSON file, replaced atomically.

A save writes a temporary file in the same directory, fsyncs it, renames it over the state
file and fsyncs the directory, so after a crash or power loss the file holds either the
previous state or the new one, never a torn mix. The only module of ``rules`` that does I/O.

The file may also carry ``pending_messages``: alert messages produced by the transitions in
this state but not yet handed on (to the outbox). Writing them in the same atomic save means
a crash between "state saved" and "messages queued" loses neither: the restarted caller finds
them in :attr:`RuleStateStore.pending_messages` and queues them again (same event ids).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from edge_agent.common.atomic import write_atomic
from edge_agent.common.schema_version import check
from edge_agent.errors import EdgeAgentError
from edge_agent.rules.snapshot import SNAPSHOT_VERSION

log = logging.getLogger(__name__)

STATE_FILE_NAME: Final = "rule-state.json"
PENDING_KEY: Final = "pending_messages"
SAVED_WALL_KEY: Final = "saved_wall_ns"
"""The wall-clock time of the save: only to tell an implausible clock at the next start
(the rules' own times are on the agent's monotonic clock)."""
SAVED_CLOCK_KEY: Final = "saved_clock_ns"
"""The rules' clock at the same moment as ``saved_wall_ns`` (written when the store was given
that clock): the state's ``now`` is the engine's last tick, earlier than the save, and
without this the gap between them would be lost (an expiry later at every restart)."""

MAX_SAVE_GAP_NS: Final = 24 * 3600 * 10**9
"""A larger gap between the last tick and its save is not believed (another clock)."""


class StateStoreError(EdgeAgentError, OSError):
    """The state file exists but cannot be read (permissions, I/O error). An OSError, so a
    caller that handles storage errors handles this one too."""


class RuleStateStore:
    """Load and save the engine's state at ``path`` (a file; its directory must exist or
    be creatable).

    :attr:`pending_messages` is written with every save and read back by :meth:`load`; it
    stays as it is until the caller changes it (e.g. empties it once the outbox has them).
    """

    def __init__(self, path: Path, clock: Callable[[], int] | None = None) -> None:
        self.path = Path(path)
        # The rules' clock (the agent's monotonic clock), read with the wall clock at a save.
        self.clock = clock
        self.discarded: Path | None = None
        self.pending_messages: list[dict[str, Any]] = []
        # The wall-clock time of the state that :meth:`load` read, if it said.
        self.saved_wall_ns: int | None = None
        # The rules' clock at that same moment, if it said.
        self.saved_clock_ns: int | None = None

    @classmethod
    def in_directory(
        cls, storage_dir: Path, clock: Callable[[], int] | None = None
    ) -> RuleStateStore:
        """The store at its usual place under the site's ``storage.path``."""
        return cls(Path(storage_dir) / STATE_FILE_NAME, clock)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None if there is none (StateStoreError if unreadable).

        A file that is not valid JSON (which atomic saves never produce, but a damaged disk
        can) is moved aside to ``<name>.corrupt`` and logged, and the engine starts fresh
        rather than not at all."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateStoreError(f"cannot read the rule state {self.path}: {exc}") from exc
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            # Before the shape is judged: a later release's state is refused, not set aside
            # (NewerFormatError), so that reinstalling that release finds it again.
            check("rule state", str(self.path), data.get("version"), SNAPSHOT_VERSION)
        except ValueError as exc:  # SchemaVersionError is one
            self.set_aside(str(exc))
            return None
        saved_wall = data.pop(SAVED_WALL_KEY, None)
        if isinstance(saved_wall, int) and not isinstance(saved_wall, bool):
            self.saved_wall_ns = saved_wall
        saved_clock = data.pop(SAVED_CLOCK_KEY, None)
        if isinstance(saved_clock, int) and not isinstance(saved_clock, bool):
            self.saved_clock_ns = saved_clock
        pending = data.pop(PENDING_KEY, None)
        if isinstance(pending, list):
            self.pending_messages = [m for m in pending if isinstance(m, dict)]
        return data

    def wall_time_of(self, saved_now: object) -> int:
        """The wall-clock time of the loaded state's ``now`` (its last tick): the save's
        wall time less how long before the save that tick was, when the rules' clock was
        saved with it (a gap that is negative or not an int, from another clock, is taken
        as none). Call only when :attr:`saved_wall_ns` is set."""
        wall = self.saved_wall_ns or 0
        clock = self.saved_clock_ns
        if clock is None or not isinstance(saved_now, int) or isinstance(saved_now, bool):
            return wall
        gap = clock - saved_now
        return wall - gap if 0 <= gap <= MAX_SAVE_GAP_NS else wall

    def set_aside(self, why: str) -> None:
        """Keep a state file that cannot be used as ``<name>.corrupt`` (for whoever looks
        into it) and start fresh: logged, and remembered in :attr:`discarded`."""
        aside = self.path.with_name(self.path.name + ".corrupt")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            log.error(
                "Rule state file could not be moved aside.",
                extra={"path": str(self.path), "error": str(exc)},
            )
        self.discarded = aside
        log.error(
            "Rule state file is damaged; moved aside, starting with fresh state. Open "
            "episodes may be raised again (a second work order rather than a lost alarm).",
            extra={"path": str(self.path), "moved_to": str(aside), "error": why},
        )

    def save(self, data: dict[str, Any], raw: dict[str, str] | None = None) -> None:
        """Replace the saved state with ``data`` atomically and durably (raises OSError).
        ``raw`` adds keys whose values are already JSON text (a cached, unchanged part)."""
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        data = {**data, SAVED_WALL_KEY: time.time_ns()}
        if self.clock is not None:
            data[SAVED_CLOCK_KEY] = self.clock()
        if self.pending_messages:
            data[PENDING_KEY] = self.pending_messages
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
        if raw:
            extra = "".join(f",{json.dumps(key)}:{value}" for key, value in raw.items())
            text = text[:-1] + extra + "}" if text != "{}" else "{" + extra[1:] + "}"
        write_atomic(self.path, text.encode())
