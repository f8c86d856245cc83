"""`edge-agent outbox SITE.yaml status|list|dead|retry|purge`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.outbox import Outbox


@pytest.fixture
def site(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    path = tmp_path / "site.yaml"
    path.write_text(f"version: 1\nsite:\n  id: plant-a\nstorage:\n  path: {state}\n")
    with Outbox.open(state / "outbox", 256_000_000) as outbox:
        ids = outbox.put_many(
            [
                {"event": "activated", "rule": "pump-high", "alert_id": "al-1"},
                {"event": "cleared", "rule": "pump-high", "alert_id": "al-1"},
                {"event": "activated", "rule": "tank-low", "alert_id": "al-2"},
            ]
        )
        outbox.lease(1)
        outbox.dead_letter(ids[0], "MaintainX 400: title must not be empty")
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(["outbox", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = run_json(capsys, str(site), "status")
    assert status["depth"] == 2
    assert status["dead"] == 1
    assert status["cap_bytes"] == 256_000_000
    assert status["bytes"] > 0
    assert status["oldest_age_s"] >= 0
    assert status["dead_reasons"] == [
        {"reason": "MaintainX 400: title must not be empty", "count": 1}
    ]
    assert main(["outbox", str(site), "status"]) == 0
    text = capsys.readouterr().out
    assert "queued:       2 event(s)" in text
    assert "dead letters: 1" in text
    assert "1 × MaintainX 400: title must not be empty" in text


def test_list_does_not_lease(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = run_json(capsys, str(site), "list")
    assert [item["payload"]["event"] for item in listed] == ["cleared", "activated"]
    assert main(["outbox", str(site), "list", "--limit", "1"]) == 0
    text = capsys.readouterr().out
    assert "cleared pump-high al-1" in text
    assert "tank-low" not in text
    with Outbox.open(site.parent / "state" / "outbox", 256_000_000) as outbox:
        assert len(outbox.lease(10)) == 2


def test_dead_retry_purge(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead = run_json(capsys, str(site), "dead")
    assert [(d["reason"], d["payload"]["alert_id"]) for d in dead] == [
        ("MaintainX 400: title must not be empty", "al-1")
    ]
    assert main(["outbox", str(site), "dead"]) == 0
    assert "title must not be empty" in capsys.readouterr().out

    assert run_json(capsys, str(site), "retry") == {"retried": 1, "remapped": 0}
    status = run_json(capsys, str(site), "status")
    assert (status["depth"], status["dead"]) == (3, 0)
    # The retried event goes to the end of the queue.
    listed = run_json(capsys, str(site), "list")
    assert listed[-1]["payload"] == {"event": "activated", "rule": "pump-high", "alert_id": "al-1"}

    with Outbox.open(site.parent / "state" / "outbox", 256_000_000) as outbox:
        outbox.dead_letter(outbox.lease(1)[0].id, "bad")
    # Purge refuses without --yes and keeps everything.
    assert main(["outbox", str(site), "purge"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert run_json(capsys, str(site), "status")["dead"] == 1
    assert run_json(capsys, str(site), "purge", "--yes") == {"purged": 1}
    assert run_json(capsys, str(site), "status")["dead"] == 0


def test_retry_one_id(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead_id = run_json(capsys, str(site), "dead")[0]["id"]
    assert run_json(capsys, str(site), "retry", "--id", str(dead_id + 100)) == {
        "retried": 0,
        "remapped": 0,
    }
    assert run_json(capsys, str(site), "retry", "--id", str(dead_id)) == {
        "retried": 1,
        "remapped": 0,
    }


def test_missing_outbox_and_bad_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(f"version: 1\nsite:\n  id: plant-b\nstorage:\n  path: {tmp_path / 'none'}\n")
    assert main(["outbox", str(site), "status"]) == 1
    assert "no outbox" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsite:\n  id: Not Valid!\n")
    assert main(["outbox", str(bad), "status"]) == 1
    assert "bad.yaml" in capsys.readouterr().err


def test_retry_applies_the_site_files_current_asset_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dead letter for a deleted asset (MaintainX: 400 "Asset not found") is recovered by
    fixing the site file and retrying: the stored id does not win over the corrected file."""
    state = tmp_path / "state"
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nsite: {id: plant-c}\n"
        "assets:\n  P-101: {name: Pump, maintainx_id: 1001}\n  M-9: {name: Mixer}\n"
        f"storage: {{path: '{state}'}}\n"
    )
    stored = {"event": "activated", "alert_id": "al-7", "asset": {"id": "P-101", "name": "Pump"}}
    with Outbox.open(state / "outbox", 256_000_000) as outbox:
        outbox.put_many(
            [
                {**stored, "asset": {**stored["asset"], "maintainx_id": 987654}},
                {"event": "activated", "alert_id": "al-8", "asset": {"id": "M-9"}},
            ]
        )
        for item in outbox.lease(2):
            outbox.dead_letter(item.id, 'MaintainX HTTP 400: {"error": "Asset not found"}')
    assert main(["outbox", str(site), "retry"]) == 0
    out = capsys.readouterr().out
    assert "re-applied the site file's asset mapping to 1 of them" in out
    assert "P-101: maintainx_id 987654 → 1001" in out
    listed = run_json(capsys, str(site), "list")
    assert [item["payload"]["asset"] for item in listed] == [
        {"id": "P-101", "name": "Pump", "maintainx_id": 1001},
        {"id": "M-9"},
    ]


def test_a_relative_storage_path_is_taken_from_the_site_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like includes and secret files; a folder at the old, working-directory-relative
    place is named, never used or moved."""
    folder = tmp_path / "etc"
    folder.mkdir()
    site = folder / "site.yaml"
    site.write_text("version: 1\nsite:\n  id: plant-a\nstorage:\n  path: state\n")
    with Outbox.open(folder / "state" / "outbox", 256_000_000) as outbox:
        outbox.put_many([{"event": "activated", "rule": "r", "alert_id": "al-1"}])
    elsewhere = tmp_path / "cwd"
    (elsewhere / "state" / "outbox").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    status = run_json(capsys, str(site), "status")
    assert status["depth"] == 1
    assert main(["outbox", str(site), "status"]) == 0
    err = capsys.readouterr().err
    assert f"relative to the site file's folder ({folder / 'state'})" in err
    assert f"{elsewhere / 'state'} is not used" in err


def test_retry_applies_the_site_files_current_location_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A work order's location comes from the asset in the site file
    (``assets.*.location_id``): a letter refused for a deleted location (400 naming
    ``locationId``) is recovered the same way, by fixing the file and retrying."""
    state = tmp_path / "state"
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nsite: {id: plant-c}\n"
        "assets:\n  P-101: {name: Pump, maintainx_id: 1001, location_id: 66}\n"
        f"storage: {{path: '{state}'}}\n"
    )
    letter = {
        "event": "activated",
        "alert_id": "al-7",
        "asset": {"id": "P-101", "name": "Pump", "maintainx_id": 1001},
        "work_order": {"title": "Pump", "location_id": 55},
    }
    with Outbox.open(state / "outbox", 256_000_000) as outbox:
        outbox.put_many([letter])
        for item in outbox.lease(1):
            outbox.dead_letter(
                item.id,
                'MaintainX HTTP 400: {"errors": [{"error": "Location not found", '
                '"fieldPath": "locationId"}]}',
            )
    assert main(["outbox", str(site), "retry"]) == 0
    assert "P-101: location_id 55 → 66" in capsys.readouterr().out
    [item] = run_json(capsys, str(site), "list")
    assert item["payload"]["work_order"] == {"title": "Pump", "location_id": 66}
