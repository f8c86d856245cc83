"""The one translation of the store's errors (``errors.store_errors``): what each error of
diskcache, SQLite or our disk becomes, and what it leaves alone."""

from __future__ import annotations

import errno
import sqlite3
from typing import NoReturn

import pytest
from diskcache import Timeout

from edge_agent.outbox.errors import OutboxCorrupt, OutboxError, OutboxFull, store_errors
from edge_agent.outbox.jsondisk import UnsafeRowError

# (raised inside the block, the error that comes out, its message)
CASES = [
    (UnsafeRowError("a pickle"), OutboxCorrupt, "a row was refused: a pickle"),
    (Timeout(), OutboxError, "lease failed: the outbox is locked by another process"),
    (sqlite3.OperationalError("disk I/O error"), OutboxError, "lease failed: disk I/O error"),
    (OSError(errno.EACCES, "Permission denied"), OutboxError, "lease failed: [Errno 13]"),
]


@pytest.mark.parametrize(("raised", "expected", "message"), CASES)
def test_each_store_error_becomes_ours_with_its_cause(
    raised: Exception, expected: type[Exception], message: str
) -> None:
    with pytest.raises(expected) as caught, store_errors("lease failed", "a row was refused"):
        raise raised
    assert type(caught.value) is expected
    assert str(caught.value).startswith(message)
    assert caught.value.__cause__ is raised


def test_a_refused_row_goes_on_untranslated_without_a_refused_message() -> None:
    # survives_damage decides then: set the store aside, or report the damage.
    with pytest.raises(UnsafeRowError), store_errors("ack failed"):
        raise UnsafeRowError("a pickle")


def test_refused_also_counts_as_a_refused_row() -> None:
    with (
        pytest.raises(OutboxCorrupt, match="counting failed: bad count"),
        store_errors("counting failed", "counting failed", refused_also=(ValueError,)),
    ):
        raise ValueError("bad count")


def test_our_own_errors_and_bugs_pass_through() -> None:
    corrupt = OutboxCorrupt("outbox id 7 already exists")
    with pytest.raises(OutboxCorrupt) as caught, store_errors("put failed", "refused"):
        raise corrupt
    assert caught.value is corrupt
    with pytest.raises(KeyError), store_errors("put failed", "refused"):
        raise KeyError("p")


def _refuse(exc: BaseException) -> NoReturn:
    raise OutboxFull("refused: disk full", disk_full=True) from exc


@pytest.mark.parametrize(
    "raised",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        sqlite3.OperationalError("database or disk is full"),
    ],
)
def test_a_full_disk_is_refused_by_the_callers_rule(raised: Exception) -> None:
    with pytest.raises(OutboxFull) as caught, store_errors("put failed", on_disk_full=_refuse):
        raise raised
    assert caught.value.disk_full
    assert caught.value.__cause__ is raised


def test_a_full_disk_without_a_rule_is_an_outbox_error() -> None:
    with pytest.raises(OutboxError, match="^ack failed: database or disk is full$") as caught:
        with store_errors("ack failed"):
            raise sqlite3.OperationalError("database or disk is full")
    assert not isinstance(caught.value, OutboxFull)


def test_a_block_that_succeeds_is_untouched() -> None:
    with store_errors("put failed", "refused"):
        value = 42
    assert value == 42
