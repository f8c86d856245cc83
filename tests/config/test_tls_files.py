"""`edge-agent validate` opens every certificate, key and secret file a connection names
(issue 17 §4: a missing CA file used to pass as "no problems")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.commands.validate import check_file
from edge_agent.config.diagnostics import format_diagnostic
from edge_agent.sources.opcua.certs import generate_self_signed
from tests.forwarders_mqtt.certs import issue, make_pki

from .conftest import VALID_SITE

MQTT_TLS = """\
forwarding:
  mode: mqtt
  mqtt:
    host: 127.0.0.1
    tls: {ca: pki/ca.pem, certificate: pki/client.pem, private_key: pki/client.key}
    password: file:secrets/mqtt.pw
"""

OPCUA_SECURE = """\
  ua1:
    protocol: opcua
    endpoint: "opc.tcp://127.0.0.1:4840"
    security:
      policy: Basic256Sha256
      mode: SignAndEncrypt
      certificate: ua/client.der
      private_key: ua/client.key
      server_certificate: ua/server.pem
"""


def site(tmp_path: Path, *, opcua: bool = False) -> Path:
    text = VALID_SITE.split("forwarding:")[0] + MQTT_TLS
    if opcua:
        text = text.replace(
            '  ua1: {protocol: opcua, endpoint: "opc.tcp://127.0.0.1:4840"}\n', OPCUA_SECURE
        )
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "mqtt.pw").write_text("pw\n", encoding="utf-8")
    return path


def lines(path: Path) -> list[str]:
    return [format_diagnostic(d) for d in check_file(path)]


def test_good_files_pass(tmp_path: Path) -> None:
    make_pki(tmp_path / "pki", days=365)
    assert lines(site(tmp_path)) == []


def test_a_missing_ca_file_is_an_error_with_file_line_and_field(tmp_path: Path) -> None:
    path = site(tmp_path)
    make_pki(tmp_path / "pki", days=365)
    (tmp_path / "pki" / "ca.pem").unlink()
    (tmp_path / "secrets" / "mqtt.pw").unlink()
    found = lines(path)
    assert found == [
        f"{path}:24:15: error: forwarding.mqtt.tls.ca: {tmp_path}/pki/ca.pem does not exist",
        f"{path}:25:15: error: forwarding.mqtt.password: secret file "
        f"{tmp_path}/secrets/mqtt.pw does not exist",
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_key_is_an_error(tmp_path: Path) -> None:
    path = site(tmp_path)
    pki = make_pki(tmp_path / "pki", days=365)
    pki["client_key"].chmod(0o000)
    [line] = lines(path)
    assert ": error: forwarding.mqtt.tls.private_key: " in line
    assert f"{pki['client_key']} is not readable by user " in line


def test_garbage_and_a_key_of_another_pair_are_errors(tmp_path: Path) -> None:
    path = site(tmp_path)
    pki = make_pki(tmp_path / "pki", days=365)
    issue(tmp_path / "pki", "other", days=365)
    pki["ca"].write_text("not a certificate\n", encoding="utf-8")
    (tmp_path / "pki" / "other.key").replace(pki["client_key"])
    found = lines(path)
    assert [line.split(": error: ")[1] for line in found] == [
        f"forwarding.mqtt.tls.ca: {pki['ca']} is not a PEM X.509 certificate",
        f"forwarding.mqtt.tls.private_key: {pki['client_key']} is not the private key of the "
        f"certificate {pki['client']}: install the key and certificate of the same pair",
    ]


def test_expired_and_expiring_certificates_are_warnings(tmp_path: Path) -> None:
    path = site(tmp_path)
    make_pki(tmp_path / "pki", days=365)
    issue(tmp_path / "pki", "client", days=10)
    found = lines(path)
    assert len(found) == 1
    assert ": warning: forwarding.mqtt.tls.certificate: certificate CN=client in " in found[0]
    assert "(in 9 days): renew it" in found[0] or "(in 10 days): renew it" in found[0]
    issue(tmp_path / "pki", "client", days=-3)
    [expired] = lines(path)
    assert ": warning: forwarding.mqtt.tls.certificate: " in expired
    assert " expired on " in expired


def test_a_world_readable_key_is_a_warning(tmp_path: Path) -> None:
    path = site(tmp_path)
    pki = make_pki(tmp_path / "pki", days=365)
    pki["client_key"].chmod(0o644)
    [line] = lines(path)
    assert (
        f"warning: forwarding.mqtt.tls.private_key: {pki['client_key']} is readable by every"
        in line
    )


def test_opcua_security_files_in_der_and_pem(tmp_path: Path) -> None:
    path = site(tmp_path, opcua=True)
    make_pki(tmp_path / "pki", days=365)
    ua = tmp_path / "ua"
    generate_self_signed(ua / "client.pem", ua / "client.key", "urn:edge-agent:client")
    generate_self_signed(ua / "server.pem", ua / "server.key", "urn:server")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate((ua / "client.pem").read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    (ua / "client.der").write_bytes(der)
    assert lines(path) == []
    (ua / "server.pem").unlink()
    (ua / "server.key").replace(ua / "client.key")
    found = [line.split(": error: ")[1] for line in lines(path)]
    assert found == [
        f"connections.ua1.security.private_key: {ua}/client.key is not the private key of the "
        f"certificate {ua}/client.der: install the key and certificate of the same pair",
        f"connections.ua1.security.server_certificate: {ua}/server.pem does not exist: fetch "
        f"and pin the server's with edge-agent certificate {path} ua1 --server --trust SHA256",
    ]


def test_validate_command_exits_1_on_a_missing_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_agent.cli import main

    path = site(tmp_path)
    make_pki(tmp_path / "pki", days=365)
    (tmp_path / "pki" / "ca.pem").unlink()
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert "error: forwarding.mqtt.tls.ca: " in captured.out
    assert "1 error in" in captured.err


def test_skip_host_checks_leaves_the_files_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A site file checked away from its gateway (CI): the files are the gateway's."""
    from edge_agent.cli import main

    path = site(tmp_path)
    assert main(["validate", "--skip-host-checks", str(path)]) == 0
    assert "no problems" in capsys.readouterr().err


def test_a_text_that_starts_with_file_is_not_a_secret(tmp_path: Path) -> None:
    path = site(tmp_path)
    make_pki(tmp_path / "pki", days=365)
    text = path.read_text(encoding="utf-8").replace(
        "    on_delay: 5s\n",
        '    on_delay: 5s\n    work_order: {title: "file: see the pump manual"}\n',
    )
    path.write_text(text, encoding="utf-8")
    assert lines(path) == []


def test_a_certificate_made_by_the_command_passes_and_warns_30_days_ahead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 19: `edge-agent certificate` writes what validate accepts (DER certificate for
    a .der name, its own key, 0600), and validate warns from 30 days before expiry."""
    path = site(tmp_path, opcua=True)
    make_pki(tmp_path / "pki", days=365)
    generate_self_signed(tmp_path / "ua/server.pem", tmp_path / "ua/server.key", "urn:server")
    assert main(["certificate", str(path), "ua1", "--days", "400"]) == 0
    assert lines(path) == []
    assert main(["certificate", str(path), "ua1", "--renew", "--days", "20"]) == 0
    capsys.readouterr()
    [line] = lines(path)
    assert ": warning: connections.ua1.security.certificate: certificate " in line
    assert "(in 19 days): renew it" in line or "(in 20 days): renew it" in line
