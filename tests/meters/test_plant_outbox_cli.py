"""`edge-agent outbox SITE.yaml ... --plant`: the plant-data outbox (issue 14); a status
change dead-lettered for an asset with no MaintainX id is retried once the site file has
one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.outbox import Outbox
from tests.meters.plant_data import SECOND, reading, status

NOW = 1_780_000_000 * SECOND


def test_status_list_and_retry_of_the_plant_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nsite:\n  id: plant-a\n"
        "assets:\n  P-101: {name: Pump P-101, maintainx_id: 1001}\n"
        f"storage:\n  path: {state}\n"
    )
    with Outbox.open(state / "plant-outbox", 256_000_000) as outbox:
        outbox.put_many([reading("p101-hours", 12.5, NOW, kind="run_hours")])
        [dead] = outbox.put_many([status(False, NOW, asset_mx=None)])
        outbox.lease(2)
        outbox.dead_letter(dead, "asset P-101 has no maintainx_id")
    assert main(["outbox", str(site), "list", "--plant"]) == 0
    assert "p101-hours 12.5 2026-05-28T20:26:40Z" in capsys.readouterr().out
    assert main(["outbox", str(site), "status", "--plant", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["depth"], summary["dead"]) == (1, 1)
    assert main(["outbox", str(site), "retry", "--plant"]) == 0
    assert "P-101: maintainx_id None → 1001" in capsys.readouterr().out
    with Outbox.open(state / "plant-outbox", 256_000_000) as outbox:
        payloads = [item.payload for item in outbox.peek(10)]
    assert payloads[-1]["asset"]["maintainx_id"] == 1001 and payloads[-1]["status"] == "OFFLINE"
