"""The certificate, key and secret files a site file names: whatever is found on disk,
``validate`` answers with one clear line per file and never a traceback, and a file that
changes into something unusable never drops a working connection's files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.commands.validate import check_file
from edge_agent.config.tls_files import MAX_FILE_BYTES
from tests.forwarders_mqtt.certs import make_pki

SITE = """\
version: 1
site: {id: plant-07, name: "Plant 7"}
connections:
  plc1: {protocol: modbus-tcp, host: 127.0.0.1, port: 15020}
sensors:
  s1: {connection: plc1, register: {table: holding, address: 0, type: int16}}
forwarding:
  mode: mqtt
  mqtt:
    host: 127.0.0.1
    tls: {ca: pki/ca.pem, certificate: pki/client.pem, private_key: pki/client.key}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    make_pki(tmp_path / "pki", days=365)
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    return path


def problems(site: Path) -> list[str]:
    return [f"{d.severity}: {'.'.join(map(str, d.path))}: {d.message}" for d in check_file(site)]


def test_a_huge_file_is_refused_without_reading_it_all(site: Path) -> None:
    ca = site.parent / "pki" / "ca.pem"
    with ca.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES * 50)  # sparse: 50 MB on paper
    assert problems(site) == [
        f"error: forwarding.mqtt.tls.ca: {ca} is larger than {MAX_FILE_BYTES} bytes: "
        "not a certificate"
    ]


def test_a_directory_a_symlink_loop_and_an_empty_file(site: Path) -> None:
    pki = site.parent / "pki"
    (pki / "ca.pem").unlink()
    (pki / "ca.pem").mkdir()
    (pki / "client.pem").unlink()
    os.symlink(pki / "client.pem", pki / "client.pem")
    (pki / "client.key").write_bytes(b"")
    assert problems(site) == [
        f"error: forwarding.mqtt.tls.ca: {pki}/ca.pem is a directory, not a file",
        f"error: forwarding.mqtt.tls.certificate: {pki}/client.pem cannot be read: "
        "Too many levels of symbolic links",
        f"error: forwarding.mqtt.tls.private_key: {pki}/client.key is not a PEM private key",
    ]


def test_an_encrypted_key_is_named(site: Path) -> None:
    key_path = site.parent / "pki" / "client.key"
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    [line] = problems(site)
    assert line.startswith("error: forwarding.mqtt.tls.private_key: ")
    assert "is encrypted with a passphrase" in line


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["ca.pem", "client.pem", "client.key"]),
    body=st.one_of(
        st.binary(max_size=3000),
        st.binary(max_size=2000).map(lambda b: b"-----BEGIN CERTIFICATE-----\n" + b),
        st.binary(max_size=2000).map(lambda b: b"-----BEGIN PRIVATE KEY-----\n" + b),
    ),
)
def test_any_bytes_in_a_certificate_file_give_one_error(
    site: Path, which: str, body: bytes
) -> None:
    target = site.parent / "pki" / which
    original = target.read_bytes()
    try:
        target.write_bytes(body)
        found = problems(site)
        assert len(found) >= 1, found
        assert all(line.startswith("error: forwarding.mqtt.tls.") for line in found), found
    finally:
        target.write_bytes(original)
