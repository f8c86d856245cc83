"""What the hub's operator sees (issue 20, section 3): a log line per event applied and at
stop, last seen in the site's own time, quiet sites, unknown sites logged once and counted,
the Prometheus rules shipped in deploy/ referring to metrics that exist, and the
``sites``, ``parked`` and ``kpis --since`` commands reading the store while the hub runs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from edge_agent.alerts import format_time_ns
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker, free_port
from tests.hub.conftest import Site, async_wait_until, hub_dict, make_alert, start_hub

NS = 1_000_000_000
ROOT = Path(__file__).resolve().parents[2]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == text]


def rule_metric_names() -> set[str]:
    """Every ``edge_agent_hub_*`` metric the shipped alert rules use."""
    document = YAML(typ="safe").load((ROOT / "deploy/prometheus/alerts.yaml").read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert rules and all({"alert", "expr"} <= set(rule) for rule in rules)
    return {name for rule in rules for name in re.findall(r"edge_agent_hub_\w+", rule["expr"])}


async def test_last_seen_quiet_unknown_sites_log_lines_and_alert_rules(
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    running_hubs: list,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s")
    data["sites"]["site-b"]["quiet_after"] = "1h"
    site = Site(mosquitto)
    # site-a went offline two hours ago; the broker kept its status. The hub starting now
    # must not call that "seen now".
    two_hours_ago = time.time_ns() // NS * NS - 2 * 3600 * NS
    status = {"state": "offline", "site": "site-a", "time": format_time_ns(two_hours_ago)}
    site.publish("edge/v1/site-a/status", status, retain=True)
    hub = await start_hub(data, tmp_path)
    running_hubs.append(hub)
    await async_wait_until(lambda: hub.sites["site-a"].presence.state == "offline", 10, "status")
    # The retained status may arrive before the hub counts its subscriptions as made.
    await async_wait_until(lambda: hub.readiness()[0], 10, "ready")
    ready, body = hub.readiness()
    a, b = body["sites"]["site-a"], body["sites"]["site-b"]
    assert ready and a["last_seen_ns"] == two_hours_ago
    assert a["last_seen"] == format_time_ns(two_hours_ago)
    assert a["quiet"] is True and a["trouble"] == ["offline", "quiet"]
    assert b["presence"] == "unknown" and b["quiet"] is False and b["last_seen"] is None
    assert "site-a: offline, quiet" in body["trouble"]

    # An alert raised a minute ago: the site was seen then (its own time).
    base = random.randrange(1 << 40)
    a_minute_ago = time.time_ns() // NS * NS - 60 * NS
    alert = make_alert("site-a", base, time=format_time_ns(a_minute_ago))
    site.subscribe("edge/v1/site-a/results")
    site.publish("edge/v1/site-a/alerts", alert)
    await async_wait_until(lambda: site.results(), 20, "result")
    (result,) = site.results()
    assert hub.sites["site-a"].presence.last_seen_ns == a_minute_ago
    assert hub.readiness()[1]["sites"]["site-a"]["quiet"] is False
    (line,) = _messages(caplog, "Alert event applied.")
    assert (line.site, line.alert_id, line.event, line.action, line.work_order_id) == (  # type: ignore[attr-defined]
        "site-a",
        alert["alert_id"],
        "activated",
        "created",
        result["work_order_id"],
    )

    # A site no hub file serves: answered every time, logged once, counted.
    for n in range(3):
        site.publish("edge/v1/plant-z/alerts", make_alert("plant-z", base + 1 + n))
    site.publish("edge/v1/plant-z/status", "online")
    await async_wait_until(lambda: hub.consumer.unknown.counts["plant-z"] == 4, 10, "counted")
    assert len([r for r in caplog.records if "does not serve" in r.getMessage()]) == 1
    assert hub.readiness()[1]["unknown_sites"] == {"plant-z": 4}

    status_code, text = await asyncio.to_thread(_get, hub.health_port, "/metrics")
    assert status_code == 200
    assert 'edge_agent_hub_unknown_site_messages_total{site="plant-z"} 4.0' in text
    assert 'edge_agent_hub_site_quiet{site="site-a"} 0.0' in text
    assert "edge_agent_hub_ready 1.0" in text and "edge_agent_hub_store_available 1.0" in text
    # Every metric the shipped alert rules use is one the hub exports.
    exported = set(re.findall(r"^# TYPE (\w+) (\w+)", text, re.MULTILINE))
    names = {n for n, _ in exported} | {f"{n}_total" for n, kind in exported if kind == "counter"}
    assert rule_metric_names() - names == set()

    await hub.close()
    running_hubs.remove(hub)
    (stopped,) = _messages(caplog, "Hub stopped.")
    assert stopped.work_orders_created == 1 and stopped.alerts_received == 1  # type: ignore[attr-defined]
    site.publish("edge/v1/site-a/status", b"", retain=True)  # the broker is shared
    site.close()


def _cli(hub_file: Path, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "hub", str(hub_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_sites_parked_and_kpis_read_the_store_while_the_hub_runs(
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    running_hubs: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUB_TEST_KEY_B", "a-key-maintainx-refuses")
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s")
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(json.dumps(data))  # JSON is YAML
    hub = await start_hub(data, tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/+/results")
    base = random.randrange(1 << 40)
    site.publish("edge/v1/site-a/alerts", make_alert("site-a", base))  # raised at T0 (2026-05)
    for n in (1, 2):
        site.publish("edge/v1/site-b/alerts", make_alert("site-b", base + n))
    await async_wait_until(lambda: len(site.results()) == 3, 20, "three answers")
    assert sorted(r["status"] for r in site.results()) == ["ok", "parked", "parked"]

    sites = await asyncio.to_thread(_cli, hub_file, "sites", "--json")
    assert sites["hub_reachable"] is True
    assert sites["sites"]["site-a"]["parked"] == 0
    b = sites["sites"]["site-b"]
    assert (b["credentials"], b["blocked"], b["parked"]) == ("rejected", True, 2)
    parked = await asyncio.to_thread(_cli, hub_file, "parked", "--site", "site-b", "--json")
    assert [p["site"] for p in parked["parked"]] == ["site-b", "site-b"]
    # "credentials" when the first alert met the 401, "credentials rejected" when the key
    # check at start had already blocked the site.
    assert all(p["reason"].startswith("credentials") for p in parked["parked"])
    assert (await asyncio.to_thread(_cli, hub_file, "parked", "--site", "site-a", "--json")) == {
        "parked": []
    }

    # KPIs over a window: the alert was raised in May 2026, its work order made just now.
    def row(kpis: Any) -> dict[str, Any]:
        return next(r for r in kpis["kpis"] if r["site"] == "site-a")

    every = row(await asyncio.to_thread(_cli, hub_file, "kpis", "--json"))
    recent = row(await asyncio.to_thread(_cli, hub_file, "kpis", "--since", "1h", "--json"))
    assert every["alerts_raised"] >= 1 and recent["alerts_raised"] == 0
    assert recent["work_orders_created"] >= 1
    site.close()


async def test_work_orders_created_counts_a_create_found_after_its_answer_was_lost(
    mosquitto: Broker, tmp_path: Path, running_hubs: list
) -> None:
    from edge_agent.simulators.maintainx_emulator.faults import Faults
    from tests.hub.conftest import KEY_A, KEY_B

    faults = Faults(drop_after_store_rate=1.0)
    with Emulator(keys={KEY_A: [101], KEY_B: [202]}, rate_limiting=False, faults=faults) as mx:
        data = hub_dict(mosquitto, mx.url, tmp_path / "s", retry_interval="200ms")
        hub = await start_hub(data, tmp_path)
        running_hubs.append(hub)
        site = Site(mosquitto)
        site.subscribe("edge/v1/site-a/results")
        alert = make_alert("site-a", random.randrange(1 << 40))
        site.publish("edge/v1/site-a/alerts", alert)
        # The create is stored and its answer lost; from then on MaintainX answers.
        await async_wait_until(lambda: faults.injected["drop_after_store"] >= 1, 20, "dropped")
        faults.reset()
        counters = hub.sites["site-a"].counters
        await async_wait_until(lambda: counters.actions["found"] == 1, 30, "found")
        assert counters.work_orders_created == 1
        mine = [
            w
            for w in mx.work_orders
            if (w.get("externalData") or {}).get("alert_id") == alert["alert_id"]
        ]
        assert len(mine) == 1
        site.close()


def test_parked_and_kpis_tables_print_an_empty_store(tmp_path: Path) -> None:
    """`hub HUB.yaml parked` with nothing parked (the usual case) and `kpis --since` with an
    empty window print their header and a note; they used to raise a TypeError."""
    broker = Broker(free_port(), tmp_path)  # never started: these commands read the store
    data = hub_dict(broker, "http://127.0.0.1:1/v1", tmp_path / "s")
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(json.dumps(data))
    for args, note in (
        (("parked",), "(nothing parked)"),
        (("parked", "--site", "site-a"), "(nothing parked)"),
        (("kpis",), "(no alerts recorded yet)"),
        (("kpis", "--since", "1h"), "(no alerts recorded yet)"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "edge_agent", "hub", str(hub_file), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert note in done.stdout.splitlines(), done.stdout
        if args[0] == "kpis":  # and the assets' availability below (issue 14)
            assert done.stdout.splitlines()[-1] == "(no asset status changes recorded yet)"


async def test_sites_reaches_the_replica_despite_an_http_proxy_in_the_shell(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list
) -> None:
    """An operator's shell behind a corporate proxy (``http_proxy`` set): `hub HUB.yaml
    sites` still asks the replica on this host directly (it said "no hub answers")."""
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s")
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(json.dumps(data))
    running_hubs.append(await start_hub(data, tmp_path))
    dead = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "http_proxy": dead, "HTTP_PROXY": dead, "no_proxy": "", "NO_PROXY": ""}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "edge_agent", "hub", str(hub_file), "sites", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["hub_reachable"] is True, report["note"]
