"""`edge-agent certificate`: make the client pair, fetch and pin the server's certificate,
and a pair made by the command opens a secure session with a server that trusts it."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge_agent.cli import main
from edge_agent.simulators.opcua import SERVER_APPLICATION_URI, SimulatorSecurity
from edge_agent.sources.opcua.certs import generate_self_signed, load_certificate_der, thumbprint
from tests.conftest import free_port

from .conftest import SimulatorThread

CLIENT_URI = "urn:plant-test:edge-agent"
USER, PASSWORD = "operator", "pw-4-tests"


def site_text(endpoint: str) -> str:
    """Two secured connections (one per policy) with files that do not exist yet."""
    connections = ""
    sensors = ""
    for name, policy in (("ua_b256", "Basic256Sha256"), ("ua_pss", "Aes256_Sha256_RsaPss")):
        connections += f"""
  {name}:
    protocol: opcua
    endpoint: "{endpoint}"
    timeout: 3s
    security:
      policy: {policy}
      mode: SignAndEncrypt
      certificate: pki/{name}/client.pem
      private_key: pki/{name}/private/client.key
      server_certificate: pki/server.der
      application_uri: "{CLIENT_URI}"
    username: {USER}
    password: file:secrets/ua.pw
"""
        sensors += f'  {name}_temp: {{connection: {name}, node: "ns=2;s=Line1.P101.BearingTemp"}}\n'
    return f"version: 1\nsite: {{id: plant-test}}\nconnections:{connections}sensors:\n{sensors}"


@pytest.fixture(scope="module")
def server_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server-pki")
    generate_self_signed(root / "server.pem", root / "server.key", SERVER_APPLICATION_URI)
    return root


@pytest.fixture(scope="module")
def served(server_pki: Path) -> Iterator[SimulatorThread]:
    """SignAndEncrypt only, no anonymous access, an empty trust list."""
    thread = SimulatorThread(
        port=free_port(),
        security=SimulatorSecurity(
            certificate=server_pki / "server.pem",
            private_key=server_pki / "server.key",
            policies=("Basic256Sha256_SignAndEncrypt", "Aes256Sha256RsaPss_SignAndEncrypt"),
        ),
        users={USER: PASSWORD},
    )
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture
def site(tmp_path: Path, served: SimulatorThread) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(site_text(served.simulator.endpoint))
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ua.pw").write_text(PASSWORD + "\n")
    return path


def server_sha256(server_pki: Path) -> str:
    return thumbprint(load_certificate_der(server_pki / "server.pem"))


def test_makes_the_pair_opc_ua_asks_for(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certificate", str(site), "ua_b256", "--days", "400"]) == 0
    out = capsys.readouterr().out
    cert_path = site.parent / "pki/ua_b256/client.pem"
    key_path = site.parent / "pki/ua_b256/private/client.key"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)

    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert cert.public_key().key_size == 2048  # type: ignore[union-attr]
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.issuer == cert.subject  # self-signed
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [CLIENT_URI]
    assert san.get_values_for_type(x509.DNSName)  # this host's name
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    assert usage.key_encipherment and usage.data_encipherment
    extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in extended
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 400

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(cert_path.parent.stat().st_mode) == 0o700
    assert "CN=edge-agent ua_b256" in out
    assert f"SHA-256:     {thumbprint(der)}" in out
    assert "valid:" in out
    assert "next: trust this certificate on the server" in out


def test_never_overwrites_and_renew_keeps_the_old_pair(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certificate", str(site), "ua_b256"]) == 0
    cert_path = site.parent / "pki/ua_b256/client.pem"
    key_path = site.parent / "pki/ua_b256/private/client.key"
    first_cert, first_key = cert_path.read_bytes(), key_path.read_bytes()
    capsys.readouterr()

    assert main(["certificate", str(site), "ua_b256"]) == 1
    assert "exists already; nothing written" in capsys.readouterr().err
    assert (cert_path.read_bytes(), key_path.read_bytes()) == (first_cert, first_key)

    assert main(["certificate", str(site), "ua_b256", "--renew"]) == 0
    assert cert_path.read_bytes() != first_cert
    kept_certs = list(cert_path.parent.glob("client.pem.old-*"))
    kept_keys = list(key_path.parent.glob("client.key.old-*"))
    assert [p.read_bytes() for p in kept_certs] == [first_cert]
    assert [p.read_bytes() for p in kept_keys] == [first_key]
    assert stat.S_IMODE(kept_keys[0].stat().st_mode) == 0o600


def test_an_unknown_connection_is_named(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certificate", str(site), "nope"]) == 2
    assert "ua_b256, ua_pss" in capsys.readouterr().err


def test_server_shows_endpoints_and_certificate_and_writes_nothing(
    site: Path, server_pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(site.parent.rglob("*"))
    assert main(["certificate", str(site), "ua_b256", "--server"]) == 0
    out = capsys.readouterr().out
    assert "Basic256Sha256/SignAndEncrypt (users: UserName)" in out
    assert "Aes256_Sha256_RsaPss/SignAndEncrypt (users: UserName)" in out
    assert f"SHA-256:     {server_sha256(server_pki)}" in out
    assert "pinned:      no" in out
    assert sorted(site.parent.rglob("*")) == before


def test_trust_with_a_wrong_fingerprint_writes_nothing(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(site.parent.rglob("*"))
    assert main(["certificate", str(site), "ua_b256", "--server", "--trust", "ab" * 32]) == 1
    assert "nothing written" in capsys.readouterr().err
    assert sorted(site.parent.rglob("*")) == before
    assert not (site.parent / "pki/server.der").exists()


def test_trust_with_the_fingerprint_pins_the_certificate(
    site: Path, server_pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fingerprint = server_sha256(server_pki)
    # As read off a screen: colons, upper case.
    typed = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    assert main(["certificate", str(site), "ua_b256", "--server", "--trust", typed]) == 0
    pinned = site.parent / "pki/server.der"
    assert load_certificate_der(pinned) == pinned.read_bytes()  # DER, as the name says
    assert thumbprint(pinned.read_bytes()) == fingerprint
    capsys.readouterr()
    assert main(["certificate", str(site), "ua_b256", "--server"]) == 0
    assert f"pinned:      yes ({pinned})" in capsys.readouterr().out


def test_a_pair_made_by_the_command_is_accepted_in_both_policies(
    site: Path, served: SimulatorThread, server_pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("ua_b256", "ua_pss"):
        assert main(["certificate", str(site), name]) == 0
    fingerprint = server_sha256(server_pki)
    assert main(["certificate", str(site), "ua_b256", "--server", "--trust", fingerprint]) == 0
    # Not trusted yet: the server refuses and keeps both in its rejected list.
    assert main(["read", str(site)]) == 1
    made = [
        load_certificate_der(site.parent / f"pki/{n}/client.pem") for n in ("ua_b256", "ua_pss")
    ]
    assert all(der in served.simulator.rejected_clients for der in made)
    for der in made:
        served.simulator.trust_client(der)
    capsys.readouterr()
    assert main(["read", str(site)]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "ua_b256_temp" in out and "ua_pss_temp" in out


def test_server_that_cannot_be_asked_exits_1_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(site_text(f"opc.tcp://127.0.0.1:{free_port()}/nothing-listens/"))
    assert main(["certificate", str(site), "ua_b256", "--server", "--trust", "ab" * 32]) == 1
    assert "cannot get the endpoints of opc.tcp://127.0.0.1:" in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == [site]


def test_trust_needs_server_and_a_fingerprint(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certificate", str(site), "ua_b256", "--trust", "ab" * 32]) == 2
    assert "--trust goes with --server" in capsys.readouterr().err
    assert main(["certificate", str(site), "ua_b256", "--server", "--trust", "abc"]) == 2
    assert "is not a SHA-256 fingerprint" in capsys.readouterr().err


def test_pinning_a_renewed_server_certificate_keeps_the_old_one(
    site: Path, server_pki: Path, tmp_path: Path
) -> None:
    pinned = site.parent / "pki/server.der"
    pinned.parent.mkdir(parents=True, exist_ok=True)
    generate_self_signed(tmp_path / "old.pem", tmp_path / "old.key", SERVER_APPLICATION_URI)
    old = load_certificate_der(tmp_path / "old.pem")
    pinned.write_bytes(old)
    fingerprint = server_sha256(server_pki)
    assert main(["certificate", str(site), "ua_b256", "--server", "--trust", fingerprint]) == 0
    assert thumbprint(pinned.read_bytes()) == fingerprint
    [kept] = pinned.parent.glob("server.der.old-*")
    assert kept.read_bytes() == old


def test_trust_never_writes_through_a_symlink_at_the_temporary_name(
    site: Path, server_pki: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    pinned = site.parent / "pki/server.der"
    pinned.parent.mkdir(parents=True, exist_ok=True)
    (pinned.parent / ".server.der.new").symlink_to(victim)
    fingerprint = server_sha256(server_pki)
    assert main(["certificate", str(site), "ua_b256", "--server", "--trust", fingerprint]) == 0
    assert victim.read_text() == "precious\n"
    assert not pinned.is_symlink() and thumbprint(pinned.read_bytes()) == fingerprint


def test_a_sha1_thumbprint_as_opc_ua_tools_show_it_is_named_and_pins_nothing(
    site: Path, server_pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # UaExpert and servers' trust lists show the SHA-1 thumbprint: --server prints it too,
    # so the installer can compare, and --trust says it wants the SHA-256 beside it.
    sha1 = hashlib.sha1(load_certificate_der(server_pki / "server.pem")).hexdigest()
    assert main(["certificate", str(site), "ua_b256", "--server"]) == 0
    assert f"SHA-1:       {sha1}" in capsys.readouterr().out
    before = sorted(site.parent.rglob("*"))
    assert main(["certificate", str(site), "ua_b256", "--server", "--trust", sha1.upper()]) == 2
    err = capsys.readouterr().err
    assert "SHA-1 thumbprint" in err and "SHA-256" in err
    assert sorted(site.parent.rglob("*")) == before


def test_server_on_a_connection_without_security_says_to_name_the_files_first(
    tmp_path: Path, served: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nsite: {id: plant-test}\nconnections:\n"
        f'  plain: {{protocol: opcua, endpoint: "{served.simulator.endpoint}", timeout: 3s}}\n'
        'sensors:\n  t: {connection: plain, node: "ns=2;s=Line1.P101.BearingTemp"}\n'
    )
    assert main(["certificate", str(site), "plain", "--server"]) == 0
    out = capsys.readouterr().out
    assert "pinned:      no (the connection names no server_certificate)" in out
    assert "--trust SHA256" not in out
    assert "name the files in the connection's security: first" in out


def test_pinning_first_makes_the_folder_0700_as_making_our_pair_would(
    site: Path, server_pki: Path
) -> None:
    # The installer who pins before making the pair: the key later goes in the same folder.
    fingerprint = server_sha256(server_pki)
    assert main(["certificate", str(site), "ua_b256", "--server", "--trust", fingerprint]) == 0
    assert stat.S_IMODE((site.parent / "pki").stat().st_mode) == 0o700
