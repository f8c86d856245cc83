"""At the outbox's cap the agent keeps polling and evaluating: alerts are held in order and
all arrive once MaintainX is back (issue 17 §2). Found on main: the rules loop waited for
room behind the first held alert, ``source_reads_total`` froze while ``source_connected``
stayed 1, and every later activation was never evaluated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.service.conftest import (
    AgentProcess,
    BackgroundLoop,
    direct_site,
    orders_for,
    steady_plant,
    wait_until,
    work_orders,
)

STEPS = [61.5, 62.5, 63.5]
"""M-201 current raised one step at a time: each step trips one more rule."""


def _step_rule(limit: int) -> dict[str, Any]:
    return {
        "id": f"m201-current-over-{limit}",
        "asset": "M-201",
        "sensor": "m201_current",
        "high": {"limit": limit, "deadband": 0.2},
        "priority": "HIGH",
        "work_order": {"title": "{asset.name}: current {value:.1f} {unit}"},
    }


def test_polling_continues_at_the_cap_and_held_alerts_arrive_in_order(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    document = direct_site(plant, emulator, health_port, tmp_path)
    document["rules"] += [_step_rule(int(value)) for value in STEPS]
    # Room for one alert (≈ 700 bytes) and the ledger's rows of the delivered ones
    # (≈ 130 bytes each: the ledger shares the cap).
    document["storage"]["max_bytes"] = "1300B"
    agent: AgentProcess = make_agent(document)
    before = {wo["id"] for wo in work_orders(emulator)}

    def reads() -> float:
        return agent.metric("edge_agent_source_reads_total", connection="plc1") or 0.0

    with steady_plant(background, plant):
        agent.start()
        try:
            agent.wait_ready()
            emulator.faults.drop_rate = 1.0  # MaintainX unreachable: the outbox fills
            background.run(lambda: plant.set_value("m201_current", 60.5))
            wait_until(lambda: agent.metric("edge_agent_outbox_depth") == 1, 20, "one alert queued")
            for held, value in enumerate(STEPS, start=1):
                background.run(lambda v=value: plant.set_value("m201_current", v))
                # Evaluated while the earlier ones are held: the rules did not stop.
                wait_until(
                    lambda h=held: agent.metric("edge_agent_alerts_held") == h,
                    20,
                    f"{held} alerts held",
                )
            polled = reads()
            wait_until(lambda: reads() >= polled + 8, 20, "polling to go on")
            assert agent.metric("edge_agent_source_connected", connection="plc1") == 1

            status, body = agent.json("/readyz")
            assert status == 503
            assert any(
                r.startswith(
                    f"polling continues, {len(STEPS)} alerts held: the outbox is at its cap"
                )
                for r in body["reasons"]
            ), body["reasons"]
            assert body["held_alerts"]["count"] == len(STEPS)
            assert body["held_alerts"]["reason"] == "cap"

            emulator.faults.drop_rate = 0.0

            def delivered() -> list[str] | None:
                titles = [wo["title"] for wo in orders_for(emulator, 1002, before)]
                return titles if len(titles) >= len(STEPS) + 1 else None

            titles = wait_until(delivered, 60, "every held alert delivered")
            # One work order per activation, in the order the rules tripped.
            expected = [f"current {value:.1f} A" for value in [60.5, *STEPS]]
            assert [t.split(": ", 1)[1] for t in titles] == expected
            wait_until(lambda: agent.metric("edge_agent_alerts_held") == 0, 20, "nothing held")
            assert agent.metric("edge_agent_alerts_dropped_total") == 0
            assert agent.stop() == 0
        finally:
            emulator.faults.drop_rate = 0.0


def test_a_full_ledger_under_a_small_cap_leaves_the_outbox_its_room(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    """A week of ledger rows (≈ 130 bytes per event) can outgrow a small cap: counted in
    full, it left the outbox no room and every alert was held with MaintainX healthy
    (found in review). The ledger counts up to a quarter of the cap."""
    from edge_agent.forwarders.maintainx.forwarder import LEDGER_FILE
    from edge_agent.maintainx.ledger import SqliteLedger

    ledger = SqliteLedger(tmp_path / "state" / LEDGER_FILE)
    for n in range(2_000):  # ≈ 260 KB of rows, four times the cap below
        ledger.record_created(f"old-alert-{n}", 10_000 + n)
        ledger.mark_done(f"old-event-{n}", "created")
    ledger.close()
    document = direct_site(plant, emulator, health_port, tmp_path)
    document["storage"]["max_bytes"] = "64KB"
    agent: AgentProcess = make_agent(document)
    before = {wo["id"] for wo in work_orders(emulator)}
    with steady_plant(background, plant):
        agent.start()
        try:
            agent.wait_ready()
            background.run(lambda: plant.set_value("m201_current", 62.5))
            wait_until(lambda: orders_for(emulator, 1002, before), 30, "the work order")
            assert agent.metric("edge_agent_alerts_held") == 0
        finally:
            agent.stop()
