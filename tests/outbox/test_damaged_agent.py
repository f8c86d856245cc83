"""Issue 10 §3, end to end: `edge-agent run` on a garbage ``cache.db`` keeps polling and
raising alarms into a fresh outbox, says so in ``/readyz``, ``/metrics`` and its log, until
`edge-agent outbox SITE recover` (run beside it) acknowledges the damage.

Before the fix the agent exited at start with a traceback (``OutboxError ... file is not a
database``): under ``Restart=always`` a crash loop with no polling and no alarms.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from edge_agent.outbox import Outbox
from edge_agent.outbox.aside import RECOVERED_NOTE
from tests.conftest import REPO_ROOT
from tests.service.conftest import (  # noqa: F401  # fixtures used below
    AgentProcess,
    BackgroundLoop,
    background,
    health_port,
    make_agent,
    plant,
    site_document,
    steady_plant,
    wait_until,
)

DAMAGED_REASON = "outbox was damaged and set aside"


def damaged_reasons(agent: AgentProcess) -> list[str]:
    _, body = agent.json("/readyz")
    return [r for r in body.get("reasons", []) if r.startswith(DAMAGED_REASON)]


def test_agent_on_a_garbage_outbox_keeps_alarming_then_recover(
    make_agent: Any,  # noqa: F811
    plant: Any,  # noqa: F811
    background: BackgroundLoop,  # noqa: F811
    health_port: int,  # noqa: F811
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    document = site_document(
        modbus_port=plant.port, health_port=health_port, storage=state, forwarding={}
    )
    del document["forwarding"]  # alarms stay in the outbox, where the test counts them
    with Outbox.open(state / "outbox", 10_000_000) as outbox:
        outbox.put({"event_id": "before-the-damage"})
    garbage = b"\x00garbage, not SQLite\xff" * 400
    (state / "outbox" / "cache.db").write_bytes(garbage)

    agent: AgentProcess = make_agent(document)
    with steady_plant(background, plant):
        agent.start()
        agent.wait_serving()  # /healthz answers before the stages start: wait for the outbox
        (aside,) = wait_until(lambda: list(state.glob("outbox.damaged-*")), 20, "a set-aside")
        assert (aside / "cache.db").read_bytes() == garbage  # kept for recovery
        wait_until(lambda: damaged_reasons(agent), 20, "the readiness reason")
        assert agent.metric("edge_agent_outbox_damaged") == 1
        assert agent.metric("edge_agent_outbox_replaced_total") == 1

        background.run(lambda: plant.set_value("m201_current", 70.0))
        wait_until(
            lambda: (agent.metric("edge_agent_outbox_depth") or 0) >= 1, 20, "an alarm queued"
        )
        assert agent.alive()

        recovered = subprocess.run(
            [sys.executable, "-m", "edge_agent", "outbox", str(agent.site), "recover", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=agent.env,
            cwd=REPO_ROOT,
        )
        assert recovered.returncode == 0, recovered.stderr
        (report,) = json.loads(recovered.stdout)
        assert report["source"] == aside.name
        assert report["queued"] == 0
        assert report["unreadable"]  # says what it could not read
        wait_until(lambda: not damaged_reasons(agent), 20, "the reason cleared")
        assert agent.metric("edge_agent_outbox_damaged") == 0
        assert (aside / RECOVERED_NOTE).exists()

        assert agent.stop() == 0
    logs = agent.logs()
    assert "Outbox damaged: set aside whole" in logs
    assert "Traceback" not in logs
    with Outbox.open(state / "outbox", 10_000_000) as outbox:
        events = [item.payload for item in outbox.peek(10)]
    assert any(event.get("rule") == "m201-current-high" for event in events)


def test_damage_while_the_agent_runs_costs_no_alarm(
    make_agent: Any,  # noqa: F811
    plant: Any,  # noqa: F811
    background: BackgroundLoop,  # noqa: F811
    health_port: int,  # noqa: F811
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    document = site_document(
        modbus_port=plant.port, health_port=health_port, storage=state, forwarding={}
    )
    del document["forwarding"]
    with Outbox.open(state / "outbox", 10_000_000) as outbox:
        outbox.put({"event_id": "queued-before"})
    agent: AgentProcess = make_agent(document)
    with steady_plant(background, plant):
        agent.start()
        agent.wait_ready()
        # Tampered under the running agent: its next put finds a counter diskcache chokes on.
        with sqlite3.connect(state / "outbox" / "cache.db") as db:
            db.execute("UPDATE Cache SET value = x'22782210' WHERE key = 'meta:next-id'")
        db.close()
        background.run(lambda: plant.set_value("m201_current", 70.0))
        wait_until(lambda: damaged_reasons(agent), 20, "the readiness reason")
        wait_until(
            lambda: (agent.metric("edge_agent_outbox_depth") or 0) >= 1, 20, "the alarm queued"
        )
        assert agent.metric("edge_agent_outbox_replaced_total") == 1
        assert agent.alive()
        assert agent.stop() == 0
    logs = agent.logs()
    assert '"during": "put_many"' in logs or "put_many" in logs
    with Outbox.open(state / "outbox", 10_000_000) as outbox:
        events = [item.payload for item in outbox.peek(10)]
    assert any(event.get("rule") == "m201-current-high" for event in events)
    assert len(list(state.glob("outbox.damaged-*"))) == 1
