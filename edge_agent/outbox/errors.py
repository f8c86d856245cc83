"""The outbox's own errors, and the one place that translates the store's into them.

::

    OutboxError                 the outbox could not do what was asked
    ├── OutboxFull              a put refused: cap reached or disk full
    ├── PayloadRejected         one payload can never be stored
    │   └── PayloadTooLarge
    └── OutboxCorrupt           the store holds a row that is not plain JSON
        └── OutboxDamaged       the file as a whole must be set aside, not opened

diskcache and SQLite raise ``OSError``, ``sqlite3.Error`` and ``diskcache.Timeout`` (locked
by another process); our disk raises :class:`~.jsondisk.UnsafeRowError` for a refused row.
:func:`store_errors` turns those into the errors above for every call of the store;
:func:`opening_errors` does the same while a store is opened, where damage means
:class:`OutboxDamaged`.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NoReturn

from diskcache import Timeout

from edge_agent.errors import EdgeAgentError
from edge_agent.outbox.integrity import is_corruption
from edge_agent.outbox.jsondisk import JsonOnlyDisk, UnsafeRowError


class OutboxError(EdgeAgentError):
    """The outbox could not do what was asked (I/O, a locked or damaged store)."""


class OutboxFull(OutboxError):
    """A put was refused: the byte cap is reached or the disk is full (``disk_full``).
    Nothing stored was dropped; the caller keeps the event or counts it as refused."""

    def __init__(self, message: str, *, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


class PayloadRejected(OutboxError):
    """One payload can never be stored (not a JSON object, or too large): retrying it is
    pointless, so the caller rejects that one and keeps the rest."""


class PayloadTooLarge(PayloadRejected):
    """One payload is larger than :data:`~.records.MAX_PAYLOAD_BYTES`."""


class OutboxCorrupt(OutboxError):
    """The store holds a row that is not plain JSON (tampering or damage): refused."""


class OutboxDamaged(OutboxCorrupt):
    """The outbox file as a whole cannot be used (not SQLite, damaged pages, a tampered
    schema, settings, key or counter): it must be set aside, not opened."""


DAMAGE_SIGNS: Final = (
    UnsafeRowError,
    TypeError,
    ValueError,
    KeyError,
    RecursionError,
    ArithmeticError,
)
"""What diskcache raises deep inside when the store hands back data no healthy outbox holds
(a tampered counter, size or key); damage only when raised there (:func:`raised_in_store`)."""

_STORE_ERRORS: Final = (OSError, sqlite3.Error, Timeout)
_LOCKED: Final = "the outbox is locked by another process"


def store_errors(
    failed: str,
    refused: str | None = None,
    *,
    refused_also: tuple[type[Exception], ...] = (),
    on_disk_full: Callable[[BaseException], NoReturn] | None = None,
) -> AbstractContextManager[None]:
    """Translate what the store raises inside the block into our errors:
    ``OutboxError("<failed>: ...")`` for I/O, SQLite and a lock held too long;
    ``OutboxCorrupt("<refused>: ...")`` for a refused row (and ``refused_also``), if
    ``refused`` is given (else the row error goes on to the damage handling of
    :func:`~.core.survives_damage`); ``on_disk_full`` decides what a full disk raises."""
    return _StoreErrors(failed, refused, refused_also, on_disk_full)


class _StoreErrors(AbstractContextManager[None]):
    # A class rather than @contextmanager: it is entered on every outbox call, and a
    # generator costs several times as much to set up.
    __slots__ = ("failed", "on_disk_full", "refused", "refused_also")

    def __init__(
        self,
        failed: str,
        refused: str | None,
        refused_also: tuple[type[Exception], ...],
        on_disk_full: Callable[[BaseException], NoReturn] | None,
    ) -> None:
        self.failed = failed
        self.refused = refused
        self.refused_also = refused_also
        self.on_disk_full = on_disk_full

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, (UnsafeRowError, *self.refused_also)):
            if self.refused is not None:
                raise OutboxCorrupt(f"{self.refused}: {exc}") from exc
        elif isinstance(exc, Timeout):
            # diskcache's Timeout carries no text: say what it means.
            raise OutboxError(f"{self.failed}: {_LOCKED}") from exc
        elif isinstance(exc, OSError | sqlite3.Error):
            if self.on_disk_full is not None and is_disk_full(exc):
                self.on_disk_full(exc)
            raise OutboxError(f"{self.failed}: {exc}") from exc


@contextmanager
def opening_errors(directory: Path, failed: str) -> Iterator[None]:
    """Translate what opening the store in ``directory`` raises: damage (SQLite reports
    corruption, or diskcache trips over data no healthy store holds) is
    :class:`OutboxDamaged`, anything else of the store's ``OutboxError("<failed> ...")``."""
    try:
        yield
    except UnsafeRowError as exc:
        raise OutboxCorrupt(f"the outbox in {directory} holds a refused row: {exc}") from exc
    except _STORE_ERRORS as exc:
        if isinstance(exc, sqlite3.Error) and is_corruption(exc):
            raise OutboxDamaged(f"the outbox in {directory} is damaged: {exc}") from exc
        raise OutboxError(f"{failed} the outbox in {directory}: {exc}") from exc
    except (TypeError, ValueError, KeyError, RecursionError, ArithmeticError) as exc:
        raise OutboxDamaged(f"the outbox in {directory} is damaged: {exc}") from exc


def is_disk_full(exc: BaseException) -> bool:
    """Whether a write failed for want of room (disk, quota or file-size limit)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        # SQLITE_FULL (13); an I/O error on write (10, extended codes) is what a file-size
        # limit (EFBIG) produces.
        if code is not None and (code & 0xFF) in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
            return True
        return "full" in str(exc) or "disk I/O error" in str(exc)
    return False


def stored_int(value: Any) -> int:
    """A counter or size read back from the store, which a healthy store keeps integral."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise OutboxCorrupt(f"the store holds {type(value).__name__} where a count belongs")


def raised_in_store(exc: BaseException) -> bool:
    """Whether ``exc`` came out of diskcache or our disk (a tampered row), not out of our
    own code or a caller's arguments: those are bugs, and must not move the store aside."""
    trace = exc.__traceback__
    while trace is not None:
        module = str(trace.tb_frame.f_globals.get("__name__", ""))
        if module.startswith("diskcache") or module == JsonOnlyDisk.__module__:
            return True
        trace = trace.tb_next
    return False


def damage_in(exc: BaseException) -> bool:
    """Whether ``exc`` shows a damaged store (rather than I/O trouble or a bug of ours)."""
    if isinstance(exc, OutboxCorrupt | UnsafeRowError):
        return True
    if isinstance(exc, DAMAGE_SIGNS):
        return raised_in_store(exc)
    return (
        isinstance(exc, OutboxError) and exc.__cause__ is not None and is_corruption(exc.__cause__)
    )
