"""At the hub, a site's plant data has its own MaintainX client on the site's key, paced to
a share of the key's budget, so a backlog of meter data never makes an alert's work order
wait (the share's effect against a real limit: tests/faults/test_plant_shares_key.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from edge_agent.hub.config import HubConfig
from edge_agent.hub.sites import SiteRuntime
from edge_agent.maintainx.meters import PLANT_RATE_SHARE
from edge_agent.simulators.maintainx import Emulator
from tests.hub.conftest import hub_dict

NO_BROKER: Any = SimpleNamespace(host="127.0.0.1", port=1)


async def test_plant_data_has_its_own_client_with_a_share_of_the_key(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = HubConfig.model_validate(hub_dict(NO_BROKER, emulator.url, tmp_path))
    site_id, site_config = next(iter(config.sites.items()))
    site = SiteRuntime(site_id, site_config, config, tmp_path)
    site.open()
    assert site.client is not None and site.plant_client is not None
    assert site.client is not site.plant_client
    assert (site.client.pacer.share, site.plant_client.pacer.share) == (1.0, PLANT_RATE_SHARE)
    assert PLANT_RATE_SHARE < 1.0
    old = site.reconfigure(site_config, config)  # a reload: both clients are retired
    assert old and len(old) == 2 and site.client not in old and site.plant_client not in old
    for client in old:
        await client.aclose()
    await site.close()
