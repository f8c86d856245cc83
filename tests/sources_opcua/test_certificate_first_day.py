"""`edge-agent certificate` on an installer's first day: what nobody scripted (a huge
``--days``, a dangling symlink where the certificate goes, a write that fails half way, a
non-ASCII application URI) ends in one line and leaves no half pair behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.cli import main

from .test_certificate_command import site_text

CERT = "pki/ua_b256/client.pem"
KEY = "pki/ua_b256/private/client.key"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    # Making a pair asks no server: nothing needs to listen there.
    path = tmp_path / "site.yaml"
    path.write_text(site_text("opc.tcp://127.0.0.1:4840"))
    return path


def test_days_past_year_9999_is_a_usage_error(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certificate", str(site), "ua_b256", "--days", "3000000"]) == 2
    assert "--days" in capsys.readouterr().err
    assert not (site.parent / "pki").exists()


def test_a_dangling_symlink_is_not_replaced(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = site.parent / CERT
    cert.parent.mkdir(parents=True)
    cert.symlink_to(tmp_path / "elsewhere" / "client.pem")
    assert main(["certificate", str(site), "ua_b256"]) == 1
    assert "nothing written" in capsys.readouterr().err
    assert cert.is_symlink()
    assert not (site.parent / KEY).exists()


def test_a_certificate_that_cannot_be_written_leaves_no_lone_key(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = site.parent / CERT
    cert.parent.mkdir(parents=True)
    # Where the certificate is written first: a folder, so that write fails (as a
    # read-only folder or a full disk would) after the key is in place.
    (cert.parent / ".client.pem.new").mkdir()
    assert main(["certificate", str(site), "ua_b256"]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert not (site.parent / KEY).exists()
    assert not cert.exists()


def test_a_renewal_that_cannot_write_the_certificate_keeps_the_old_pair(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certificate", str(site), "ua_b256"]) == 0
    cert, key = site.parent / CERT, site.parent / KEY
    before = (cert.read_bytes(), key.read_bytes())
    (cert.parent / ".client.pem.new").mkdir()
    capsys.readouterr()
    assert main(["certificate", str(site), "ua_b256", "--renew"]) == 1
    assert "cannot write" in capsys.readouterr().err
    # The pair a running agent loads is still one pair.
    assert (cert.read_bytes(), key.read_bytes()) == before


def test_a_non_ascii_application_uri_is_refused_by_the_site_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        site_text("opc.tcp://127.0.0.1:4840").replace(
            "urn:plant-test:edge-agent", "urn:usine-düsseldorf:edge-agent"
        )
    )
    assert main(["certificate", str(site), "ua_b256"]) == 2
    err = capsys.readouterr().err
    assert "application_uri" in err and "ASCII" in err
    assert not (tmp_path / "pki").exists()
