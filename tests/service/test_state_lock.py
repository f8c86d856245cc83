"""One agent per state folder: a second `run` on the same folder exits 1 naming the PID
that holds it, and a SIGKILLed holder leaves nothing behind that blocks the next start."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.service.state_lock import StateFolderInUse, lock_state_folder
from tests.conftest import free_port

from .conftest import AgentProcess, direct_site, write_site


def test_a_second_lock_on_one_folder_is_refused_until_the_first_is_released(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    first = lock_state_folder(state)
    assert state.stat().st_mode & 0o777 == 0o700
    with pytest.raises(StateFolderInUse, match=f"another agent \\(PID {os.getpid()}\\)"):
        lock_state_folder(state)
    first.release()
    lock_state_folder(state).release()


def test_a_lock_file_holding_junk_still_locks_and_names_no_pid(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "agent.lock").write_bytes(b"\xff" * 100_000)  # anything: it is rewritten
    held = lock_state_folder(state)
    assert (state / "agent.lock").read_text() == f"{os.getpid()}\n"
    (state / "agent.lock").write_text("not a pid")
    with pytest.raises(StateFolderInUse, match="PID unknown"):
        lock_state_folder(state)
    held.release()


def test_two_agents_on_one_state_folder(
    plant: Any,
    emulator: Any,
    tmp_path: Path,
    make_agent: Callable[[dict[str, Any]], AgentProcess],
) -> None:
    first = make_agent(direct_site(plant, emulator, free_port(), tmp_path))
    first.start()
    first.wait_ready()
    assert first.process is not None
    holder = first.process.pid

    # A copy of the site file with another health port, on the same state folder.
    port = free_port()
    site = write_site(tmp_path / "copy.yaml", direct_site(plant, emulator, port, tmp_path))
    second = AgentProcess(site, tmp_path / "state", port, tmp_path / "second.log")
    second.start()
    assert second.process is not None
    try:
        code = second.process.wait(60)
    except subprocess.TimeoutExpired:
        second.kill()
        raise
    assert code == 1, second.logs()[-2000:]
    assert f"another agent (PID {holder}) is running on the state folder" in second.logs()
    assert first.alive()

    # The holder dies without a word (SIGKILL): the kernel drops the lock with it.
    first.kill()
    second.start()
    try:
        second.wait_ready()
    finally:
        second.kill()


def test_a_lock_file_that_is_a_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (state / "agent.lock").symlink_to(victim)
    with pytest.raises(OSError):
        lock_state_folder(state)
    assert victim.read_text() == "keep me"
