"""The key check at start: one cheap call per site to the MaintainX emulator over HTTP. A
wrong key is ``rejected`` (and the site blocked) before any alert; an unreachable MaintainX
is retried with backoff without holding up the other sites."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edge_agent.hub.config import HubConfig
from edge_agent.hub.key_check import KeyChecks
from edge_agent.hub.sites import SiteRuntime
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import free_port
from tests.hub.conftest import KEY_A, async_wait_until, hub_dict


def _sites(data: dict[str, Any], base_dir: Path) -> dict[str, SiteRuntime]:
    config = HubConfig.model_validate(data)
    sites = {sid: SiteRuntime(sid, site, config, base_dir) for sid, site in config.sites.items()}
    for site in sites.values():
        site.open()
    return sites


# The key check needs MaintainX only: the broker in the hub file is never contacted.
NO_BROKER: Any = SimpleNamespace(host="127.0.0.1", port=1)


async def test_wrong_key_is_rejected_before_any_alert(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_TEST_KEY_B", "not-a-key")
    sites = _sites(hub_dict(NO_BROKER, emulator.url, tmp_path), tmp_path)
    checks = KeyChecks()
    checks.check(sites.values())
    await checks.wait()
    assert checks.states == {"site-a": "ok", "site-b": "rejected"}
    assert sites["site-b"].status()["credentials"] == "rejected"
    assert sites["site-b"].status()["blocked"] is True
    assert sites["site-a"].usable() and not sites["site-b"].usable()
    calls = [r for r in emulator.requests if r.api_key == "not-a-key"]
    assert [(r.method, r.status) for r in calls] == [("GET", 401)]
    for site in sites.values():
        await site.close()


async def test_unreachable_maintainx_is_retried_and_blocks_no_other_site(
    emulator: Emulator, tmp_path: Path
) -> None:
    port = free_port()
    sites = _sites(hub_dict(NO_BROKER, f"http://127.0.0.1:{port}/v1", tmp_path), tmp_path)
    reachable = _sites(hub_dict(NO_BROKER, emulator.url, tmp_path), tmp_path)
    checks = KeyChecks(backoff=(0.05, 0.2))
    checks.check([sites["site-a"], reachable["site-b"]])
    # The reachable site has its answer while the other is still retrying.
    await async_wait_until(lambda: checks.state("site-b") == "ok", 10, "site-b checked")
    assert checks.state("site-a") == "pending"
    # MaintainX comes up on that port: the retry gets through.
    with Emulator(port=port, keys={KEY_A: [101]}, rate_limiting=False):
        await async_wait_until(lambda: checks.state("site-a") == "ok", 20, "site-a checked")
    await checks.close()
    for site in [*sites.values(), *reachable.values()]:
        await site.close()
