"""`edge-agent` that SIGKILLs itself at its first alert's hand-over to the outbox.

A fault-injection launcher for the crash tests (run as ``python crash_agent.py run SITE``):
``CRASH_AT=before-put`` dies after the rule state (with its pending alert messages) is saved
and before the outbox has them; ``CRASH_AT=after-put`` dies right after the outbox stored
them, before anything else is saved. ``CRASH_MARKER`` names a file written just before the
kill, so only the first hand-over dies and the test can tell it happened.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_agent.cli import main
from edge_agent.outbox.store import Outbox

CRASH_AT = os.environ["CRASH_AT"]
MARKER = Path(os.environ["CRASH_MARKER"])
_put_many = Outbox.put_many


def _die() -> None:
    MARKER.write_text(CRASH_AT)
    os.kill(os.getpid(), signal.SIGKILL)


def put_many(self: Outbox, payloads: Sequence[Mapping[str, Any]]) -> list[int]:
    if MARKER.exists():
        return _put_many(self, payloads)
    if CRASH_AT == "before-put":
        _die()
    ids = _put_many(self, payloads)
    _die()
    return ids


Outbox.put_many = put_many  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
