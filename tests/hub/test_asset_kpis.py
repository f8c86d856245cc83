"""Availability and MTBF per asset from its status changes (issue 14): a worked example, the
properties any sequence of changes keeps, and the figures shown by ``hub kpis`` and
``/metrics`` of a running hub."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.cli import main
from edge_agent.hub.asset_kpis import asset_kpis, asset_kpis_table
from edge_agent.hub.plant_store import StatusRow
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import Site, hub_dict, start_hub
from tests.hub.plant_messages import status, until_answered

H = 3600 * 1_000_000_000


def row(at_h: float, state: str, kind: str | None = None, asset: str = "P-101") -> StatusRow:
    at = int(at_h * H)
    return StatusRow("site-a", asset, f"{asset}/{state}/{at}", state, kind, at)


def test_a_day_of_a_pump() -> None:
    # Up at 0 h; breaks at 10 h, back at 12 h; planned stop 20-21 h; breaks at 22 h, which
    # turns into planned maintenance at 23 h; back at 24 h. Now: 30 h.
    rows = [
        row(0, "ONLINE"),
        row(10, "OFFLINE", "UNPLANNED"),
        row(12, "ONLINE"),
        row(20, "OFFLINE", "PLANNED"),
        row(21, "ONLINE"),
        row(22, "OFFLINE", "UNPLANNED"),
        row(23, "OFFLINE", "PLANNED"),
        row(24, "ONLINE"),
    ]
    [kpi] = asset_kpis(rows, now_ns=30 * H)
    assert kpi.observed_s == 30 * 3600
    assert kpi.uptime_s == (10 + 8 + 1 + 6) * 3600
    assert kpi.unplanned_downtime_s == 3 * 3600
    assert kpi.planned_downtime_s == 2 * 3600
    assert kpi.failures == 2
    assert kpi.availability == 25 / 30
    assert kpi.mtbf_s == 25 * 3600 / 2
    assert kpi.status == "ONLINE"
    # The last 10 h only: the status at 20 h is the one that began at 12 h.
    [recent] = asset_kpis(rows, now_ns=30 * H, since_ns=20 * H)
    assert recent.observed_s == 10 * 3600
    assert recent.failures == 1
    assert recent.uptime_s == 7 * 3600
    assert "83.33%" in asset_kpis_table(asset_kpis(rows, now_ns=30 * H))


def test_no_failure_no_mtbf_and_nothing_observed_yet() -> None:
    [kpi] = asset_kpis([row(5, "ONLINE")], now_ns=6 * H)
    assert kpi.failures == 0 and kpi.mtbf_s is None and kpi.availability == 1.0
    [future] = asset_kpis([row(5, "OFFLINE", "UNPLANNED")], now_ns=4 * H)  # clock behind
    assert future.observed_s == 0 and future.availability is None
    assert asset_kpis([], now_ns=H) == []


changes = st.lists(
    st.tuples(
        st.integers(0, 1000),
        st.sampled_from([("ONLINE", None), ("OFFLINE", "UNPLANNED"), ("OFFLINE", "PLANNED")]),
    ),
    max_size=40,
)


@given(changes, st.integers(0, 1200), st.integers(0, 1200))
def test_the_figures_always_add_up(
    steps: list[tuple[int, tuple[str, str | None]]], now: int, since: int
) -> None:
    rows = [row(at / 10, s, k, asset=f"A{at % 2}") for at, (s, k) in steps]
    for kpi in asset_kpis(rows, now_ns=int(now / 10 * H), since_ns=int(since / 10 * H)):
        parts = kpi.uptime_s + kpi.planned_downtime_s + kpi.unplanned_downtime_s
        assert abs(parts - kpi.observed_s) < 1e-6
        assert kpi.observed_s >= 0
        assert kpi.availability is None or 0.0 <= kpi.availability <= 1.0
        offline = sum(1 for r in rows if r.asset == kpi.asset and r.downtime_type == "UNPLANNED")
        assert 0 <= kpi.failures <= offline
        assert (kpi.mtbf_s is None) == (kpi.failures == 0)


async def test_a_running_hub_shows_availability_in_metrics_and_kpis(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, capsys: object
) -> None:
    data = hub_dict(mosquitto, emulator.url, tmp_path / "hub")
    hub = await start_hub(data, tmp_path)
    asset = emulator.add_asset("Pump", organization_id=101)
    now = time.time_ns()
    site = Site(mosquitto)
    try:
        site.subscribe("edge/v1/site-a/results/plant")
        sent = [
            status("site-a", "ONLINE", now - 4 * H, asset_mx=asset),
            status("site-a", "OFFLINE", now - 2 * H, asset_mx=asset),
            status("site-a", "ONLINE", now - 1 * H, asset_mx=asset),
        ]
        for message in sent:  # one at a time, as the agent sends them
            await until_answered(site, "edge/v1/site-a/assets", message)
        await hub.refresh()
        [kpi] = hub.asset_kpi_rows
        assert kpi.failures == 1 and kpi.asset == "P-101"
        assert 0.74 < (kpi.availability or 0) < 0.76
        from prometheus_client import generate_latest

        text = generate_latest(hub.registry).decode()
        assert 'edge_agent_hub_kpi_availability{asset="P-101",site="site-a"}' in text
        assert 'edge_agent_hub_plant_posted_total{kind="status",site="site-a"} 3.0' in text
        ready, body = hub.readiness()
        assert ready and body["sites"]["site-a"]["plant"]["statuses_posted"] == 3
    finally:
        site.close()
        await hub.close()
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(json.dumps(data))
    assert main(["hub", str(hub_file), "kpis", "--json"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    [shown] = json.loads(out)["assets"]
    assert shown["failures"] == 1 and shown["site"] == "site-a"
    assert main(["hub", str(hub_file), "kpis"]) == 0
    assert "AVAILABILITY" in capsys.readouterr().out  # type: ignore[attr-defined]
