"""A burst of alerts larger than the room left in the outbox stores what fits and holds the
rest in order (issue 17 §2). Found in review: six rules tripping together under a 2 KB cap
were refused as one batch, for ever, by an empty outbox: no work order ever went out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge_agent.config.models import SiteConfig
from tests.service.rule_agent import (
    HEALTHY_RULE,
    fault_site_document,
    feed,
    good,
    queued,
    running_agent,
)


async def test_a_burst_larger_than_the_cap_is_stored_as_it_fits_in_order(tmp_path: Path) -> None:
    state = tmp_path / "state"
    rules = [{**HEALTHY_RULE, "id": f"high-{n}"} for n in range(6)]
    document: dict[str, Any] = fault_site_document(state, rules)
    document["storage"]["max_bytes"] = "2KB"  # about two alerts
    config = SiteConfig.model_validate(document)
    async with running_agent(config, state) as agent:
        await feed(agent, [good("healthy", 80.0)])
        seen: list[str] = []
        async with asyncio.timeout(30):
            while len(seen) < 6:
                alerts = await queued(agent)
                # Nothing waits for room it can never get: some are stored at once.
                if not alerts:
                    await asyncio.sleep(0.05)
                    continue
                seen += [a["rule"] for a in alerts]
                # The forwarder's part: take them out; the held ones follow.
                items = await asyncio.to_thread(agent.outbox.lease, 10)
                await asyncio.to_thread(agent.outbox.ack, [i.id for i in items])
        assert seen == [f"high-{n}" for n in range(6)]  # each once, in order
        assert agent.holding_alerts == 0
