"""Self-signed OPC UA application instance certificates, made with ``cryptography``.

OPC UA peers check that the application URI a client announces is the URI in its
certificate's subjectAltName, so it goes there; the host names and 127.0.0.1 go there too.
Tests and the demo use these; a plant uses the certificates its PKI issues.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_agent.sources.opcua.errors import OpcUaSecurityError


def generate_self_signed(
    cert_path: Path,
    key_path: Path,
    application_uri: str,
    *,
    common_name: str = "edge-agent",
    hostnames: Sequence[str] = ("localhost",),
    days: int = 365,
    key_size: int = 2048,
) -> None:
    """Write a PEM certificate and an unencrypted PEM private key (mode 0600).

    The certificate is usable as client and as server (both extended key usages), with the
    key usages OPC UA requires for Basic256Sha256 and the Aes policies.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt_names += [x509.DNSName(host) for host in hostnames]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)


def load_certificate_der(path: Path) -> bytes:
    """A certificate file (PEM or DER) as DER bytes; :class:`OpcUaSecurityError` if unusable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OpcUaSecurityError(f"cannot read certificate {path}: {exc.strerror}") from exc
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise OpcUaSecurityError(f"{path} is not a PEM or DER X.509 certificate") from exc
    return cert.public_bytes(serialization.Encoding.DER)


def thumbprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate, as hex (what people compare by eye)."""
    return hashlib.sha256(der).hexdigest()
