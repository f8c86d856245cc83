"""SIGHUP on a real hub process (mosquitto, the MaintainX emulator over HTTP): keys are
checked at start and after a reload, sites come and go, keys rotate, the log level changes,
and an invalid hub file is refused with the old configuration kept."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from edge_agent.simulators.maintainx import Emulator
from tests.conftest import REPO_ROOT, Broker
from tests.hub.conftest import KEY_A, KEY_B, Site, hub_dict, make_alert, wait_until


def _readyz(data: dict[str, Any]) -> dict[str, Any]:
    url = f"http://{data['health']['listen']}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
    return body


def _write(path: Path, data: dict[str, Any]) -> None:
    with path.open("w") as handle:
        YAML().dump(data, handle)


def test_sighup_reloads_sites_keys_and_level_and_refuses_a_bad_file(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "a").write_text(KEY_A)
    (keys / "b").write_text("a-wrong-key\n")  # a typo in the key file
    # The retry loop re-reads a refused key too (every retry_interval): one that ran
    # between the key file's rotation and the SIGHUP took the rotation from the reload,
    # which then had no change to report (a CI run failed so). Here it waits an hour.
    data = hub_dict(mosquitto, emulator.url, tmp_path / "state", retry_interval="1h")
    data["sites"]["site-a"]["api_key"] = "file:keys/a"
    data["sites"]["site-b"]["api_key"] = "file:keys/b"
    hub_file = tmp_path / "hub.yaml"
    _write(hub_file, data)
    log = tmp_path / "hub.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "hub", str(hub_file)],
        cwd=REPO_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    site = Site(mosquitto)
    try:
        wait_until(lambda: b"running" in log.read_bytes(), 20, "hub up")
        # The wrong key is known before any alert: one cheap call per site at start.
        wait_until(
            lambda: _readyz(data)["sites"]["site-b"]["key_check"] == "rejected", 20, "key check"
        )
        body = _readyz(data)
        assert body["sites"]["site-b"]["credentials"] == "rejected"
        assert body["sites"]["site-a"]["credentials"] == "ok"
        assert body["sites"]["site-a"]["key_check"] == "ok"
        assert not any(r.method == "POST" for r in emulator.requests if r.api_key == "a-wrong-key")

        # Rotation: the new key in the file, then SIGHUP. The site is served again.
        (keys / "b").write_text(KEY_B)
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: _readyz(data)["reload"]["applied"] == 1, 20, "reload applied")
        body = _readyz(data)
        assert body["reload"]["changes"] == ["site site-b key rotated"]
        wait_until(lambda: _readyz(data)["sites"]["site-b"]["key_check"] == "ok", 20, "ok")
        assert _readyz(data)["sites"]["site-b"]["credentials"] == "ok"

        # A site added (with its own key), one removed, the log level changed, and a
        # section that needs a restart named as such.
        (keys / "c").write_text(KEY_A)
        del data["sites"]["site-a"]
        data["sites"]["site-c"] = {"api_key": "file:keys/c", "organization_id": 101}
        data["logging"] = {"level": "debug"}
        data["broker"]["keepalive"] = "20s"
        _write(hub_file, data)
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: _readyz(data)["reload"]["applied"] == 2, 20, "second reload")
        body = _readyz(data)
        assert sorted(body["sites"]) == ["site-b", "site-c"]
        assert body["reload"]["changes"] == [
            "site site-a removed",
            "site site-c added",
            "log level debug",
        ]
        assert body["reload"]["restart_needed"] == ["broker"]
        assert process.poll() is None

        # The new site's alert becomes a work order with the new site's key.
        site.subscribe("edge/v1/site-c/results")
        alert = make_alert("site-c", random.randrange(1 << 40))
        site.publish("edge/v1/site-c/alerts", alert)
        wait_until(lambda: len(site.on("site-c/results")) >= 1, 20, "site-c result")
        assert site.on("site-c/results")[0]["status"] == "ok"
        made = [wo for wo in emulator.work_orders if wo["title"] == alert["work_order"]["title"]]
        assert len(made) == 1

        # An invalid file is refused: the error in /readyz and the log; nothing changes.
        hub_file.write_text(hub_file.read_text().replace("site-c:", "site c:"))
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: _readyz(data)["reload"]["rejected"] == 1, 20, "reload rejected")
        body = _readyz(data)
        assert body["reload"]["last_outcome"] == "rejected"
        assert body["reload"]["errors"] and "hub.yaml" in body["reload"]["errors"][0]
        assert sorted(body["sites"]) == ["site-b", "site-c"]
        assert body["ready"] is True
        assert "Reload rejected" in log.read_text()
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        site.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    text = log.read_text()
    for secret in (KEY_A, KEY_B):
        assert secret not in text


async def test_a_key_file_unreadable_at_a_reload_is_said_and_recovers(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, caplog: Any
) -> None:
    """A key file missing (being replaced) at a reload keeps the running key, says so in the
    log and ``credentials: unavailable``; once the same key is back, ``ok`` again (it used to
    stay ``unavailable`` for good, and nothing was logged). An empty key file is unavailable
    too, not a network failure retried for minutes."""
    from edge_agent.hub.reload import HubReloader
    from tests.hub.conftest import start_hub

    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "b").write_text(KEY_B)
    data = hub_dict(mosquitto, emulator.url, tmp_path / "state")
    data["sites"]["site-b"]["api_key"] = "file:keys/b"
    hub_file = tmp_path / "hub.yaml"
    _write(hub_file, data)
    hub = await start_hub(data, tmp_path)
    try:
        hub.reloader = HubReloader(hub, hub_file)
        # Before any reload, as documented in docs/hub.md (/readyz example): nulls.
        _, body = hub.readiness()
        assert (body["reload"]["last_outcome"], body["reload"]["last_time_ns"]) == (None, None)
        site = hub.sites["site-b"]
        await hub.key_checks.wait()
        assert site.status()["credentials"] == "ok"

        (keys / "b").rename(keys / "b.old")
        assert await hub.reloader.reload("test")
        assert site.status()["credentials"] == "unavailable"
        assert site.usable()  # the running key still serves the site
        assert any("running key is kept" in r.getMessage() for r in caplog.records)

        (keys / "b.old").rename(keys / "b")
        assert await hub.reloader.reload("test")
        await hub.key_checks.wait()
        assert site.status()["credentials"] == "ok"
        assert hub.key_checks.state("site-b") == "ok"

        (keys / "b").write_text("\n")
        assert await hub.reloader.reload("test")
        await hub.key_checks.wait()
        assert site.status()["credentials"] == "unavailable"
        assert "empty" in (site.config_error or "")
    finally:
        await hub.close()


async def test_a_reload_that_fixes_a_refused_key_logs_the_site_unblocked(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, caplog: Any
) -> None:
    """Blocked and unblocked each leave a log line (docs/hub.md, "What the operator sees"),
    also when the block is lifted by a new key at a reload; the old 401 is no longer shown as
    the site's last error."""
    from edge_agent.hub.reload import HubReloader
    from tests.hub.conftest import start_hub

    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "b").write_text("a-wrong-key")
    data = hub_dict(mosquitto, emulator.url, tmp_path / "state")
    data["sites"]["site-b"]["api_key"] = "file:keys/b"
    hub_file = tmp_path / "hub.yaml"
    _write(hub_file, data)
    caplog.set_level("INFO")
    hub = await start_hub(data, tmp_path)
    try:
        hub.reloader = HubReloader(hub, hub_file)
        await hub.key_checks.wait()
        assert hub.sites["site-b"].status()["blocked"] is True
        (keys / "b").write_text(KEY_B)
        assert await hub.reloader.reload("test")
        await hub.key_checks.wait()
        status = hub.sites["site-b"].status()
        assert (status["blocked"], status["credentials"], status["last_error"]) == (
            False,
            "ok",
            None,
        )
        lines = [
            r.getMessage()
            for r in caplog.records
            if getattr(r, "site", None) == "site-b" and "blocked" in r.getMessage()
        ]
        assert lines == [
            "Site blocked; its alerts are parked until it can be served.",
            "Site unblocked: served again.",
        ]
    finally:
        await hub.close()


def test_a_sighup_during_the_start_is_applied_once_the_hub_runs(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """`systemctl reload` (or logrotate's HUP) while `--register-webhooks` waits on a
    MaintainX that does not answer: the hub neither dies (SIGHUP's default ended it, exit
    129, no log line) nor reloads half-started; it runs and applies the reload after."""
    import socket

    from tests.conftest import free_port

    silent = socket.socket()  # accepts connections, never answers: MaintainX hanging
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    data = hub_dict(mosquitto, f"http://127.0.0.1:{silent.getsockname()[1]}/v1", tmp_path / "state")
    data["maintainx"]["timeout"] = "1s"
    data["webhooks"] = {
        "listen": f"127.0.0.1:{free_port()}",
        "public_url": "https://hub.example.com/maintainx/webhooks",
    }
    hub_file = tmp_path / "hub.yaml"
    _write(hub_file, data)
    log = tmp_path / "hub.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "hub", str(hub_file), "--register-webhooks"],
        cwd=REPO_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        # The registration has begun: a connection reached the silent MaintainX.
        silent.settimeout(30)
        accepted, _ = silent.accept()
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: b"running" in log.read_bytes() or process.poll() is not None, 60)
        assert process.poll() is None, log.read_text()
        wait_until(lambda: _readyz(data)["reload"]["applied"] == 1, 20, "the reload, after")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        accepted.close()
    finally:
        silent.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
