"""The running agent keeps its readings in the history file beside the rules (issue 15):
what a source delivers is there after the next write, a reader sees it while the agent
runs, and the history's counters reach /metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client import generate_latest

from edge_agent.config.models import SiteConfig
from edge_agent.history.store import FILE_NAME, HistoryStore
from edge_agent.readings import Quality, Reading
from edge_agent.service.metrics import build_registry
from edge_agent.service.reload import ReloadReport
from tests.service.rule_agent import HEALTHY_RULE, fault_site_document, feed, running_agent


async def test_the_agent_writes_what_its_sources_deliver(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = SiteConfig.model_validate(fault_site_document(state, [HEALTHY_RULE]))
    async with running_agent(config, state) as agent:
        now = time.time_ns()
        for n in range(5):
            await feed(agent, [Reading("healthy", float(n), Quality.GOOD, now + n)])
        assert agent.history is not None
        for _ in range(500):
            if agent.history.written >= 5:
                break
            await asyncio.sleep(0.01)
        reader = HistoryStore(state / FILE_NAME, 0, 0)
        rows = list(reader.rows(now - 60 * 10**9, sensor="healthy"))
        reader.close()
        # The fed readings, among the bad ones of the real source (nothing listens there).
        assert [r.value for r in rows if r.quality is Quality.GOOD] == [0.0, 1.0, 2.0, 3.0, 4.0]
        text = generate_latest(build_registry(agent, ReloadReport())).decode()
        assert "edge_agent_history_rows_written_total" in text
        assert "edge_agent_history_failed 0.0" in text
