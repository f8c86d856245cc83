"""Webhook subscriptions are made once and kept tidy; several sites in one MaintainX
organization each get their own status changes (issue 20, section 4)."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from edge_agent.hub.config import HubConfig
from edge_agent.hub.subscriptions import list_webhooks, register_webhooks
from edge_agent.hub.webhooks import SIGNATURE_HEADER, sign
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import KEY_A, KEY_B, Site, async_wait_until, hub_dict, make_alert, start_hub


def _cli(hub_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "hub", str(hub_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _post(port: int, path: str, body: bytes, signature: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


async def test_register_twice_reuses_the_subscription_and_prune_removes_stale_ones(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path
) -> None:
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s", webhooks=True)
    data["webhooks"]["public_url"] = "https://hub.example.com/maintainx/webhooks"
    config = HubConfig.model_validate(data)
    before = len(emulator.subscriptions())

    first = await register_webhooks(config, tmp_path)
    again = await register_webhooks(config, tmp_path)
    assert [r.state for r in first] == ["created", "created"]
    assert [(r.state, r.subscription_id) for r in again] == [
        ("reused", r.subscription_id) for r in first
    ]
    assert len(emulator.subscriptions()) == before + 2  # not 4: the second run added none

    # The public URL moves: a new subscription per site, the old ones are stale until pruned.
    data["webhooks"]["public_url"] = "https://hub2.example.com/maintainx/webhooks"
    moved = HubConfig.model_validate(data)
    made = await register_webhooks(moved, tmp_path)
    assert [r.state for r in made] == ["created", "created"]
    listed = await list_webhooks(moved, tmp_path)
    assert sorted((r.site, r.state) for r in listed) == [
        ("site-a", "current"),
        ("site-a", "stale"),
        ("site-b", "current"),
        ("site-b", "stale"),
    ]
    pruned = await list_webhooks(moved, tmp_path, prune=True)
    assert sorted(r.state for r in pruned) == ["current", "current", "deleted", "deleted"]
    ids = {s["id"] for s in emulator.subscriptions()}
    assert {r.subscription_id for r in first} & ids == set()
    assert {r.subscription_id for r in made} <= ids
    assert [r.state for r in await list_webhooks(moved, tmp_path)] == ["current", "current"]

    # The same from the command line.
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(json.dumps(data))  # JSON is YAML
    listed_cli = await asyncio.to_thread(_cli, hub_file, "webhooks", "list")
    assert listed_cli.returncode == 0, listed_cli.stderr
    lines = listed_cli.stdout.splitlines()
    assert lines[0].split() == ["SITE", "ID", "STATE", "URL"]
    assert sorted(line.split()[2] for line in lines[1:]) == ["current", "current"]
    bad = await asyncio.to_thread(_cli, hub_file, "kpis", "--since", "a-fortnight")
    assert bad.returncode == 2 and "--since 'a-fortnight'" in bad.stderr


async def test_a_webhook_without_site_finds_the_site_sharing_an_organization(
    mosquitto: Broker, tmp_path: Path, running_hubs: list
) -> None:
    # Two sites, two keys, one MaintainX organization: orgId alone cannot say whose it is.
    with Emulator(keys={KEY_A: [101], KEY_B: [101]}, rate_limiting=False) as mx:
        data = hub_dict(mosquitto, mx.url, tmp_path / "s", webhooks=True)
        data["sites"]["site-b"]["organization_id"] = 101
        hub = await start_hub(data, tmp_path)
        running_hubs.append(hub)
        site = Site(mosquitto)
        site.subscribe("edge/v1/site-b/#")
        alert = make_alert("site-b", random.randrange(1 << 40))
        site.publish("edge/v1/site-b/alerts", alert)
        await async_wait_until(lambda: any(r["status"] == "ok" for r in site.results()), 20, "ok")
        work_order_id = site.results()[0]["work_order_id"]

        body = json.dumps(
            {
                "workOrderId": work_order_id,
                "orgId": 101,
                "oldStatus": "OPEN",
                "newStatus": "IN_PROGRESS",
                "occurredAt": "2030-01-01T00:00:00Z",
            }
        ).encode()
        signature = sign("whsec-test", int(time.time()), body)
        answer = await asyncio.to_thread(
            _post, hub.webhook_port, "/maintainx/webhooks", body, signature
        )
        assert answer == {"result": "applied"}  # was "not_ours", dropped without a log line
        suffix = f"site-b/workorders/{work_order_id}"
        await async_wait_until(lambda: site.on(suffix), 10, "work order message")
        assert site.on(suffix)[0]["status"] == "IN_PROGRESS"

        # A work order no site of this hub made is still not ours, and says so.
        stranger = body.replace(str(work_order_id).encode(), b"987654321")
        signature = sign("whsec-test", int(time.time()), stranger)
        answer = await asyncio.to_thread(
            _post, hub.webhook_port, "/maintainx/webhooks", stranger, signature
        )
        assert answer == {"result": "not_ours"}
        site.close()


def test_register_webhooks_with_one_refused_key_still_starts_the_hub(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path
) -> None:
    """`hub HUB.yaml --register-webhooks` ("run it on every start") with one site's key
    refused: the other site's subscription is made and the hub runs for every site (it
    exited 1, so one bad key, or MaintainX down, kept the whole hub from starting)."""
    import os
    import signal

    from tests.conftest import REPO_ROOT
    from tests.hub.conftest import wait_until

    data = hub_dict(mosquitto, emulator.url, tmp_path / "s", webhooks=True)
    data["webhooks"]["public_url"] = "https://hub.example.com/maintainx/webhooks"
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(json.dumps(data))
    log = tmp_path / "hub.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HUB_TEST_KEY_B": "a-refused-key"}
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "hub", str(hub_file), "--register-webhooks"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_until(
            lambda: b"running" in log.read_bytes() or process.poll() is not None, 30, "start"
        )
        text = log.read_text()
        assert process.poll() is None, text
        assert "site site-a: webhook subscription" in text and "created" in text
        assert "site site-b: webhook subscription not registered" in text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert "a-refused-key" not in log.read_text()


async def test_webhooks_list_with_one_refused_key_still_shows_the_other_sites(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path
) -> None:
    """`webhooks list` while one site's key is refused (when an operator looks): the other
    sites' subscriptions are shown, the refused site's as `unknown`, exit 1 (it printed one
    error and no table). `prune` keeps the refused site's record."""
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s", webhooks=True)
    data["webhooks"]["public_url"] = "https://hub.example.com/maintainx/webhooks"
    await register_webhooks(HubConfig.model_validate(data), tmp_path)
    data["sites"]["site-b"]["api_key"] = "${HUB_TEST_UNKNOWN_KEY}"
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(json.dumps(data))
    record = (tmp_path / "s" / "webhook-subscriptions.json").read_text()
    for action in ("list", "prune"):
        done = await asyncio.to_thread(_cli_env, hub_file, "webhooks", action)
        assert done.returncode == 1, done.stderr
        states = {line.split()[0]: line.split()[2] for line in done.stdout.splitlines()[1:]}
        assert states == {"site-a": "current", "site-b": "unknown"}, done.stdout
        assert "site site-b: MaintainX could not be asked" in done.stderr
    assert (
        json.loads(record)["site-b"]
        == json.loads((tmp_path / "s" / "webhook-subscriptions.json").read_text())["site-b"]
    )


def _cli_env(hub_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "hub", str(hub_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HUB_TEST_UNKNOWN_KEY": "a-refused-key"},
    )
