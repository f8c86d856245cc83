"""JOURNAL_STREAM comes from the environment: whatever it holds, deciding whether to add
syslog prefixes never raises, and only the exact device:inode of the log stream turns it on."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.common.journald import writes_to_journal


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=80) | st.from_regex(r"\A[0-9²٣]{0,30}:[0-9²٣]{0,30}\Z"))
def test_any_journal_stream_value_is_safe(value: str) -> None:
    assert writes_to_journal(io.StringIO(), {"JOURNAL_STREAM": value}) is False


def test_only_the_exact_stream_matches(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with path.open("w") as stream:
        stat = path.stat()
        exact = f"{stat.st_dev}:{stat.st_ino}"
        assert writes_to_journal(stream, {"JOURNAL_STREAM": exact})
        for wrong in (
            f"{stat.st_dev}:{stat.st_ino + 1}",
            f"{stat.st_dev + 1}:{stat.st_ino}",
            f" {exact}",
            exact + ":0",
            "0" * 70 + exact,
        ):
            assert not writes_to_journal(stream, {"JOURNAL_STREAM": wrong}), wrong
    closed = path.open("w")
    closed.close()
    assert not writes_to_journal(closed, {"JOURNAL_STREAM": exact})
