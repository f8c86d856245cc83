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


def build_certificate(
    key: rsa.RSAPrivateKey,
    application_uri: str,
    *,
    common_name: str,
    hostnames: Sequence[str],
    ip_addresses: Sequence[str] = (),
    days: int,
    server_auth: bool = True,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A self-signed OPC UA application instance certificate (OPC UA Part 6, 6.2.2).

    SHA-256 signature; subjectAltName carries the application URI (peers compare it with
    the URI the application announces) and the host names; key usages digitalSignature,
    nonRepudiation, keyEncipherment, dataEncipherment and keyCertSign (self-signed);
    extended key usage clientAuth (and serverAuth when ``server_auth``).
    """
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edge-agent"),
        ]
    )
    now = now or dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt_names += [x509.DNSName(host) for host in hostnames]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server_auth:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # A few minutes back: a server whose clock is a little behind still accepts it.
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
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def new_key(key_size: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key (2048 bits: what Basic256Sha256 and the Aes policies require at least)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """The unencrypted PKCS#8 PEM of ``key`` (the agent starts unattended: no passphrase)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_bytes(cert: x509.Certificate, path: Path) -> bytes:
    """DER for a ``.der`` file name, PEM otherwise."""
    if path.suffix.lower() == ".der":
        return cert.public_bytes(serialization.Encoding.DER)
    return cert.public_bytes(serialization.Encoding.PEM)


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
    key = new_key(key_size)
    cert = build_certificate(
        key,
        application_uri,
        common_name=common_name,
        hostnames=hostnames,
        ip_addresses=("127.0.0.1",),
        days=days,
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem(key))


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


def sha1_thumbprint(der: bytes) -> str:
    """The SHA-1 thumbprint OPC UA itself uses (Part 6, 6.2.2): what UaExpert and servers'
    trust lists show. Printed to compare by eye; trust is pinned by SHA-256."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest()


def first_certificate(blob: bytes) -> bytes:
    """The leading certificate of a DER blob that may carry a chain after it."""
    if len(blob) > 4 and blob[0] == 0x30 and blob[1] == 0x82:
        return blob[: int.from_bytes(blob[2:4], "big") + 4]
    return blob


def normalize_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as typed or pasted (colons, spaces, either case) in the form
    :func:`thumbprint` gives; ``ValueError`` when it is not 64 hex digits."""
    digits = "".join(text.split()).replace(":", "").lower()
    if len(digits) == 40 and all(c in "0123456789abcdef" for c in digits):
        raise ValueError(
            f"{text!r} is a SHA-1 thumbprint (what OPC UA tools show); give the SHA-256 "
            "fingerprint (64 hex digits) printed beside it"
        )
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"{text!r} is not a SHA-256 fingerprint (64 hex digits)")
    return digits
