"""A reload says what changed by name (issue 21 §3): rules by id, assets, connections, and
``credentials`` only when a secret or certificate file really changed (not every SIGHUP)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from edge_agent.config.models import SiteConfig
from edge_agent.service.app import Service
from edge_agent.service.config_changes import (
    connection_changes,
    credentials_fingerprint,
    rule_and_asset_changes,
)
from edge_agent.service.isolated_load import Checked, check_here
from tests.conftest import free_port

from .rule_agent import fault_site_document

RULE = {"id": "pressure-high", "asset": "P-101", "sensor": "healthy", "high": {"limit": 5}}
OTHER = {"id": "odd-high", "asset": "P-101", "sensor": "odd", "high": {"limit": 9}}


def _document(tmp_path: Path) -> dict[str, Any]:
    document = fault_site_document(tmp_path / "state", [RULE, OTHER])
    (tmp_path / "mx.key").write_text("first-key\n")
    document["forwarding"] = {
        "mode": "maintainx",
        "maintainx": {
            "base_url": f"http://127.0.0.1:{free_port()}/v1",  # nothing listens: no delivery
            "api_key": "file:mx.key",
            "backoff": {"initial": "1s", "max": "5s"},
        },
    }
    return document


def test_changes_are_named_by_rule_asset_and_connection(tmp_path: Path) -> None:
    document = _document(tmp_path)
    old = SiteConfig.model_validate(document)
    document["rules"] = [dict(RULE, high={"limit": 6}), dict(OTHER, id="odd-low")]
    document["assets"]["P-102"] = {"maintainx_id": 1002, "name": "Pump P-102"}
    document["connections"]["plc2"] = dict(document["connections"]["plc1"])
    new = SiteConfig.model_validate(document)
    assert rule_and_asset_changes(old, new) == [
        "rule added: odd-low",
        "rule removed: odd-high",
        "rule changed: pressure-high",
        "asset added: P-102",
    ]
    assert connection_changes(old, new, ["plc1"]) == [
        "connection added: plc2",
        "connection changed: plc1",
    ]


def test_the_credentials_fingerprint_follows_the_secret_file(tmp_path: Path) -> None:
    config = SiteConfig.model_validate(_document(tmp_path))
    first = credentials_fingerprint(config, tmp_path)
    assert credentials_fingerprint(config, tmp_path) == first
    assert "first-key" not in first
    (tmp_path / "mx.key").write_text("second-key\n")
    assert credentials_fingerprint(config, tmp_path) != first


async def test_sighup_says_credentials_only_when_they_changed(tmp_path: Path) -> None:
    document = _document(tmp_path)
    site = tmp_path / "site.yaml"
    site.write_text(json.dumps(document))

    async def validate(path: Path) -> Checked:
        return check_here(path)

    service = Service(
        site, SiteConfig.model_validate(document), tmp_path / "state", validate=validate
    )
    await service.start()
    try:
        report = service.reloader.report
        assert await service.reloader.reload("SIGHUP", reload_credentials=True)
        assert report.last_changes == []  # nothing changed: nothing named

        (tmp_path / "mx.key").write_text("rotated-key\n")
        assert await service.reloader.reload("SIGHUP", reload_credentials=True)
        assert report.last_changes == ["credentials"]
        assert service.liveness()["config"]["last_changes"] == ["credentials"]  # /healthz

        document["rules"] = [dict(RULE, high={"limit": 7})]
        site.write_text(json.dumps(document))
        assert await service.reloader.reload("SIGHUP", reload_credentials=True)
        assert report.last_changes == ["rule removed: odd-high", "rule changed: pressure-high"]
    finally:
        await service.stop()


async def test_a_sighup_while_starting_is_done_once_started_not_refused(tmp_path: Path) -> None:
    """A SIGHUP between the health endpoint and the agent's start (``systemctl reload``
    right after ``start``) used to be applied to an agent with no engine yet: a traceback
    and a false "could not apply" in /healthz until the next reload."""
    document = _document(tmp_path)
    site = tmp_path / "site.yaml"
    site.write_text(json.dumps(document))

    async def validate(path: Path) -> Checked:
        return check_here(path)

    service = Service(
        site, SiteConfig.model_validate(document), tmp_path / "state", validate=validate
    )
    document["rules"] = [dict(RULE, high={"limit": 7}), OTHER]
    site.write_text(json.dumps(document))  # edited as the agent starts
    service.request_reload()  # before start: nothing to apply it to yet
    await service.start()
    try:
        report = service.reloader.report
        for _ in range(500):  # bounded: 5 s at most
            if report.last_outcome is not None:
                break
            await asyncio.sleep(0.01)
        assert report.last_outcome == "applied", report.errors
        assert report.last_changes == ["rule changed: pressure-high"]
    finally:
        await service.stop()
