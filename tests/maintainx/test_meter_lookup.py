"""A meter is found again by its name on its own asset only: a meter on an asset with no
``maintainx_id`` once took over another asset's meter of the same name (its readings,
its PM work orders on the wrong pump)."""

from __future__ import annotations

from pathlib import Path

from edge_agent.maintainx.meters import JsonMeterLedger, ensure_meter, find_meter
from edge_agent.simulators.maintainx import Emulator
from edge_agent.wire.plant import MeterSpec
from tests.maintainx.conftest import make_client

SPEC = MeterSpec(name="run-hours", unit="Hours", kind="run_hours", pm=None, above=None, below=None)


async def test_a_meter_without_an_asset_never_takes_another_assets(
    emulator: Emulator, asset_id: int, tmp_path: Path
) -> None:
    async with make_client(emulator) as client:
        ledger = JsonMeterLedger(tmp_path / "a.json")
        pump = await ensure_meter(client, ledger, "run-hours", SPEC, asset_id)
        assert await find_meter(client, "run-hours", None) is None
        other = await ensure_meter(
            client, JsonMeterLedger(tmp_path / "b.json"), "run-hours", SPEC, None
        )
        assert other != pump
        # Each is found again as its own (a create whose answer was lost, a new ledger).
        assert await find_meter(client, "run-hours", None) == other
        assert await find_meter(client, "run-hours", asset_id) == pump
    meters = {m["id"]: m["assetId"] for m in emulator.store.all_meters()}
    assert meters == {pump: asset_id, other: None}
