"""How many rows of each kind the outbox holds, counted in the store itself.

Depth and dead letters are never kept as running sums: another process (``edge-agent
outbox SITE retry|purge|recover``) may change the store while the agent runs, and a sum
kept in one process would drift from the truth for good (``depth -1`` after a retry).
Each count is one ``COUNT(*)`` over a key range of diskcache's ``(key, raw)`` index
(a covering index scan: a few milliseconds for 100,000 rows), so it can be read at every
health request or scrape.

SQLite orders numbers before text: the queue's integer keys are the keys below ``''``
(the start-up check refuses a store with any other number as a key); the text prefixes
(``dead:``, ``await:``) are ranges up to the prefix with its last character's successor
(``dead;``, ``await;``).
"""

from __future__ import annotations

from typing import Any, Final

_QUEUED: Final = "SELECT COUNT(*) FROM Cache WHERE key < ''"
_PREFIXED: Final = "SELECT COUNT(*) FROM Cache WHERE key >= ? AND key < ?"


def _count(cache: Any, query: str, args: tuple[str, ...] = ()) -> int:
    # diskcache's own per-thread connection: no public call counts keys without reading them.
    row = cache._sql(query, args).fetchone()
    count = row[0] if row is not None else 0
    if type(count) is not int or count < 0:  # COUNT(*) is a non-negative integer
        raise ValueError(f"the store counted {count!r} rows")
    return count


def queued_rows(cache: Any) -> int:
    """Items in the queue (leased or not)."""
    return _count(cache, _QUEUED)


def any_queued(cache: Any) -> bool:
    """Whether the queue holds any item (one index probe, not a count)."""
    return cache._sql("SELECT 1 FROM Cache WHERE key < '' LIMIT 1").fetchone() is not None


def prefixed_rows(cache: Any, prefix: str) -> int:
    """Rows whose text key starts with ``prefix`` (``dead:``, ``await:``)."""
    if not prefix:
        raise ValueError("a key prefix is not empty")
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return _count(cache, _PREFIXED, (prefix, upper))
