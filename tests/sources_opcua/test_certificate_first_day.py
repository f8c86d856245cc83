"""`edge-agent certificate` on an installer's first day: what nobody scripted (a huge
``--days``, a dangling symlink where the certificate goes, a write that fails half way, a
non-ASCII application URI) ends in one line and leaves no half pair behind."""

from __future__ import annotations

import datetime as dt
import socket
import stat
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.sources.opcua.client_pair import make_pair

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


def test_a_symlink_at_the_temporary_name_is_not_written_through(site: Path, tmp_path: Path) -> None:
    # A leftover or planted link where the key is first written: the key must not land in
    # its target, nor the target's mode change.
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    key = site.parent / KEY
    key.parent.mkdir(parents=True)
    (key.parent / ".client.key.new").symlink_to(victim)
    assert main(["certificate", str(site), "ua_b256"]) == 0
    assert victim.read_text() == "precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not key.is_symlink() and b"PRIVATE KEY" in key.read_bytes()


def test_a_renewal_never_writes_the_old_copy_through_a_symlink(tmp_path: Path) -> None:
    now = dt.datetime(2026, 12, 4, 16, 45, tzinfo=dt.UTC)
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    make_pair(cert, key, "urn:a", common_name="a", now=now)
    elsewhere = tmp_path / "elsewhere.key"
    (tmp_path / "client.key.old-20261204T164500Z").symlink_to(elsewhere)
    made = make_pair(cert, key, "urn:a", common_name="a", now=now, renew=True)
    assert not elsewhere.exists()
    assert all(not kept.is_symlink() for kept in made.kept)
    assert {kept.name for kept in made.kept} == {
        "client.pem.old-20261204T164500Z",
        "client.key.old-20261204T164500Z-1",
    }


def test_validate_and_read_say_how_to_make_the_files_not_made_yet(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site.parent / "secrets").mkdir()
    (site.parent / "secrets" / "ua.pw").write_text("pw\n")
    assert main(["validate", str(site)]) == 1
    out = capsys.readouterr().out
    assert f"client.pem does not exist: make it with edge-agent certificate {site} ua_b256" in out
    assert f"client.key does not exist: make it with edge-agent certificate {site} ua_b256" in out
    assert (
        f"server.der does not exist: fetch and pin the server's with edge-agent certificate "
        f"{site} ua_b256 --server --trust SHA256" in out
    )
    assert main(["certificate", str(site), "ua_b256"]) == 0
    capsys.readouterr()
    # Our pair made, the server's not pinned yet: read says which step is missing.
    assert main(["read", str(site)]) == 1
    assert (
        "server.der does not exist: fetch and pin the server's with edge-agent certificate "
        "SITE CONNECTION --server --trust SHA256" in capsys.readouterr().out
    )


def test_a_password_in_the_endpoint_is_refused_without_showing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # asyncua would log in with it, and every error would print the endpoint.
    site = tmp_path / "site.yaml"
    site.write_text(
        site_text("opc.tcp://operator:Sup3rSecret@127.0.0.1:4840").replace(
            "    username: operator\n    password: file:secrets/ua.pw\n", ""
        )
    )
    assert main(["validate", str(site)]) == 1
    out = capsys.readouterr().out
    assert "username and password" in out
    assert "Sup3rSecret" not in out


def test_a_certificate_and_key_named_the_same_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Written one after the other, the certificate would replace the key.
    site = tmp_path / "site.yaml"
    site.write_text(site_text("opc.tcp://127.0.0.1:4840").replace(KEY, CERT))
    assert main(["certificate", str(site), "ua_b256"]) == 2
    assert "the same file" in capsys.readouterr().err
    assert not (tmp_path / "pki").exists()


def test_trust_never_pins_over_our_own_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(site_text("opc.tcp://127.0.0.1:4840").replace("pki/server.der", CERT))
    assert main(["certificate", str(site), "ua_b256"]) == 0
    ours = (tmp_path / CERT).read_bytes()
    capsys.readouterr()
    assert main(["certificate", str(site), "ua_b256", "--server", "--trust", "ab" * 32]) == 2
    assert "the same file" in capsys.readouterr().err
    assert (tmp_path / CERT).read_bytes() == ours


def test_a_renewal_keeps_a_world_readable_old_key_readable_by_us_only(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certificate", str(site), "ua_b256"]) == 0
    key = site.parent / KEY
    key.chmod(0o644)  # as copied by hand before
    assert main(["certificate", str(site), "ua_b256", "--renew"]) == 0
    [kept] = key.parent.glob("client.key.old-*")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_server_that_accepts_and_never_answers_says_so(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        site.write_text(
            site_text(f"opc.tcp://127.0.0.1:{port}").replace("timeout: 3s", "timeout: 500ms")
        )
        assert main(["certificate", str(site), "ua_b256", "--server"]) == 1
    err = capsys.readouterr().err
    assert f"cannot get the endpoints of opc.tcp://127.0.0.1:{port}: no answer within 0.5 s" in err
