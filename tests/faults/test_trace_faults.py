"""Trace input into ``edge-agent replay``: arbitrary lines and bytes, devices, FIFOs.

Invariants: replay either prints events (exit 0) or one clear error line naming the trace
(exit 1); never a traceback; memory stays bounded whatever the input (``/dev/zero`` once
grew the process to 10 GiB)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.cli import main
from edge_agent.commands.trace_input import MAX_LINE_BYTES

CASE = Path(__file__).parent.parent / "testcases" / "rules" / "on_delay_interrupted"
SITE = CASE / "site.yaml"
GOOD = '{"time": "2026-01-05T10:00:00Z", "sensor": "temp", "value": 81}'


def replay_in_process(trace: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["replay", str(SITE), str(trace)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clear_outcome(code: int, out: str, err: str, trace: Path) -> None:
    assert "Traceback" not in out + err
    if code == 0:
        for line in out.splitlines():
            json.loads(line)
    else:
        assert code == 1
        assert out == ""
        assert err.startswith(f"{trace}:"), err
        assert len(err.splitlines()) == 1, err
        # The error names the problem; it never echoes a whole line back.
        assert len(err) < 1000


def replay_subprocess(
    trace: Path, memory_limit: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "replay", str(SITE), str(trace)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=limit,
    )


# One reading is ~100 bytes; 1 GiB of address space is far more than replay needs and far
# less than /dev/zero's endless first line.
MEMORY_LIMIT = 1024**3


def test_dev_zero_is_refused_with_a_clear_message() -> None:
    done = replay_subprocess(Path("/dev/zero"), MEMORY_LIMIT)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "/dev/zero: error: the trace is a character device; replay reads a recorded trace "
        "file (JSON lines), written to disk first"
    )


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    done = replay_subprocess(fifo)
    assert done.returncode == 1
    assert "the trace is a FIFO (named pipe)" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_directory_is_refused(tmp_path: Path) -> None:
    done = replay_subprocess(tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("written to disk first")
    assert "the trace is a directory" in done.stderr


def test_an_endless_line_is_refused_after_a_bounded_read(tmp_path: Path) -> None:
    """A 200 MB line with no newline: refused under a memory limit it would blow if read
    whole (the 1 GiB address-space limit leaves less than 200 MB × the JSON parser)."""
    trace = tmp_path / "trace.jsonl"
    with trace.open("wb") as out:
        out.write((GOOD + "\n").encode())
        chunk = b"x" * (1 << 20)
        for _ in range(200):
            out.write(chunk)
    done = replay_subprocess(trace, MEMORY_LIMIT)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        f"{trace}:2: error: longer than {MAX_LINE_BYTES // 1024} KiB; a trace line holds one "
        "reading (is this a trace file?)"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[" * 60_000, "not a reading: nested too deeply"),
        (GOOD.replace("81", "9" * 5000), "not a reading: Exceeds the limit"),
    ],
)
def test_lines_that_break_the_json_parser_are_reported_by_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text(f"{GOOD}\n{line}\n")
    code, out, err = replay_in_process(trace, capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"{trace}:2: error: {message}"), err


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
READING_LIKE = st.fixed_dictionaries(
    {
        "time": st.one_of(st.text(max_size=30), st.just("2026-01-05T10:00:00Z"), st.integers()),
        "sensor": st.one_of(st.just("temp"), st.text(max_size=10), st.integers()),
        "value": JSONISH,
    },
    optional={"quality": st.one_of(st.sampled_from(["good", "bad", "uncertain"]), JSONISH)},
)
LINES = st.one_of(
    st.text(max_size=200),
    JSONISH.map(json.dumps),
    READING_LIKE.map(json.dumps),
    st.just(GOOD),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINES, max_size=6))
def test_arbitrary_trace_lines_give_events_or_one_clear_error(
    lines: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    code, out, err = replay_in_process(trace, capsys)
    assert_clear_outcome(code, out, err, trace)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_arbitrary_trace_bytes_give_events_or_one_clear_error(
    data: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(data)
    code, out, err = replay_in_process(trace, capsys)
    assert_clear_outcome(code, out, err, trace)
