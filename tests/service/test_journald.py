"""Under systemd, stderr is the journal and JOURNAL_STREAM names it: every line then starts
with its syslog priority, which journald stores as PRIORITY (``journalctl -p warning``).
The agent runs as a child process whose stderr is a real file, as systemd would hand it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.common.journald import syslog_priority

EMIT = """
import logging
from edge_agent.common.logs import configure_logging
configure_logging("debug")
log = logging.getLogger("edge_agent.test")
log.debug("d."); log.info("i."); log.warning("w."); log.error("e."); log.critical("c.")
"""


def run_logging_child(stderr_file: Path, journal_stream: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal_stream is not None:
        env["JOURNAL_STREAM"] = journal_stream
    with stderr_file.open("w") as stderr:
        subprocess.run([sys.executable, "-c", EMIT], stderr=stderr, env=env, timeout=60, check=True)
    return stderr_file.read_text().splitlines()


def identity(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_dev}:{stat.st_ino}"


def test_lines_to_the_journal_carry_their_priority(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    journal.touch()
    lines = run_logging_child(journal, identity(journal))
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    events = [json.loads(line[3:]) for line in lines]  # the rest is the usual JSON event
    assert [e["level"] for e in events] == ["debug", "info", "warning", "error", "critical"]


@pytest.mark.parametrize("journal_stream", [None, "elsewhere"])
def test_no_prefix_when_stderr_is_not_the_journal(
    tmp_path: Path, journal_stream: str | None
) -> None:
    """A child that inherited JOURNAL_STREAM but logs into a file (or no systemd at all)."""
    other = tmp_path / "other"
    other.touch()
    stream = identity(other) if journal_stream else None
    lines = run_logging_child(tmp_path / "log", stream)
    assert len(lines) == 5
    assert all(line.startswith("{") for line in lines), lines


@pytest.mark.parametrize(
    ("levelno", "priority"),
    [(logging.DEBUG, 7), (5, 7), (logging.INFO, 6), (25, 6), (logging.WARNING, 4), (45, 3)],
)
def test_custom_levels_round_down(levelno: int, priority: int) -> None:
    assert syslog_priority(levelno) == priority


def test_why_the_agent_does_not_start_reaches_journalctl_p_err(tmp_path: Path) -> None:
    """An invalid site file with no last good configuration (exit 2, which the unit does not
    restart) is said before logging is set up: those lines carry their priority too, or
    `journalctl -u edge-agent -p err` would show no reason for the failed start."""
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nsite: {id: Not-Valid}\n")
    journal = tmp_path / "journal"
    journal.touch()
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env["JOURNAL_STREAM"] = identity(journal)
    command = [sys.executable, "-m", "edge_agent", "run", str(site)]
    with journal.open("w") as stderr:
        done = subprocess.run(
            [*command, "--state-dir", str(tmp_path / "state")],
            stderr=stderr,
            env=env,
            timeout=60,
        )
    assert done.returncode == 2
    lines = journal.read_text().splitlines()
    assert lines, "nothing said"
    assert all(line.startswith("<3>") for line in lines), lines
    assert any("site.id" in line for line in lines)
