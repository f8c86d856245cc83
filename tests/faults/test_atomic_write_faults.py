"""A write that fails half-way (here: the file size limit, ``EFBIG``, as a full disk does
with ``ENOSPC``) leaves no ``.tmp`` file behind, for every state file written with
tmp+rename; a crash's leftovers are removed at start, a live writer's are kept (issue 17 §2).
Found on main: the rule state's and the work-order map's temporaries stayed on a full disk,
each taking the room the next save needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from edge_agent.common.atomic import remove_stale_temporaries, temporary_for
from edge_agent.service.pipeline import Agent
from tests.service.rule_agent import HEALTHY_RULE, fault_site

LIMIT = 4096
"""RLIMIT_FSIZE of the writing subprocess: every payload below is larger."""

WRITERS = textwrap.dedent(
    """
    import errno, json, resource, signal, sys
    from pathlib import Path

    state = Path(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal

    from edge_agent.config.models import SiteConfig
    from edge_agent.forwarders.workorder_status import RuleWorkOrder, WorkOrderTracker
    from edge_agent.hub.webhook_secrets import save_webhook_secret
    from edge_agent.outbox.aside import write_note
    from edge_agent.rules.store import RuleStateStore
    from edge_agent.service.last_good import save_last_good

    big = "x" * ({limit} * 2)
    config = SiteConfig.model_validate(json.loads(sys.argv[2]))
    tracker = WorkOrderTracker(state, "fault-plant", "edge")
    tracker._rules = {{"r": RuleWorkOrder(big, 1, "open")}}
    writers = {{
        "rule state": lambda: RuleStateStore.in_directory(state).save({{"big": big}}),
        "last good config": lambda: save_last_good(state, config),
        "hub webhook secrets": lambda: save_webhook_secret(state, "fault-plant", big),
        "work-order map": tracker._save,
        "outbox note": lambda: write_note(state / "note.json", {{"big": big}}),
    }}
    failed = {{}}
    for name, write in writers.items():
        try:
            write()
        except OSError as exc:
            failed[name] = errno.errorcode.get(exc.errno or 0, str(exc))
    print(json.dumps(failed))
    """
).format(limit=LIMIT)


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    document = fault_site(state, [HEALTHY_RULE]).model_dump(mode="json", by_alias=True)
    document["site"]["name"] = "y" * (LIMIT * 2)  # a last good copy larger than the limit
    result = subprocess.run(
        [sys.executable, "-c", WRITERS, str(state), json.dumps(document)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert result.returncode == 0, result.stderr
    failed = json.loads(result.stdout.splitlines()[-1])
    # Each write really failed for the size limit...
    assert failed == {
        "rule state": "EFBIG",
        "last good config": "EFBIG",
        "hub webhook secrets": "EFBIG",
        "work-order map": "EFBIG",
        "outbox note": "EFBIG",
    }
    # ...and left nothing behind.
    assert sorted(path.name for path in state.iterdir()) == []


async def test_stale_temporaries_are_removed_at_start_and_a_live_writers_kept(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    crashed = state / ".rule-state.json.4194399.tmp"  # above any pid_max: no such process
    crashed.write_bytes(b'{"half": ')
    legacy = state / "work-orders.tmp"  # the map's old temporary name
    legacy.write_bytes(b"{")
    live = state / f".work-orders.json.{os.getppid()}.tmp"  # a live process writes it
    live.write_bytes(b"{")
    agent = Agent(fault_site(state, [HEALTHY_RULE]), tmp_path, state)
    await agent.start()
    try:
        assert not crashed.exists() and not legacy.exists()
        assert live.exists()
    finally:
        await agent.stop()


def test_only_temporaries_are_removed(tmp_path: Path) -> None:
    keep = tmp_path / "rule-state.json"
    keep.write_text("{}")
    (tmp_path / "outbox.tmp").mkdir()  # a directory is never removed
    mine = temporary_for(keep)
    mine.write_text("{")  # this process's own name: no live *other* writer, so stale
    assert remove_stale_temporaries(tmp_path) == [mine]
    assert keep.exists() and (tmp_path / "outbox.tmp").is_dir()
    assert remove_stale_temporaries(tmp_path / "missing") == []
