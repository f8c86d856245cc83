"""Client security: policy, certificate and key, the trusted server certificate, user.

asyncua does not validate the server certificate unless a ``certificate_validator`` is set
(LIBRARIES.md). We check it twice: before the secure channel is opened, the certificate in
the server's endpoint list must be the configured trusted one (which gives a clear error
naming both fingerprints), and the session's certificate goes through a validator that
compares it byte for byte. Basic128Rsa15 and Basic256 are never offered (deprecated,
CVE-2024-42512/42513): the config model has no way to name them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.utils import ServiceError
from asyncua.crypto import security_policies, uacrypto
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edge_agent.config.models import OpcUa, SecurityMode, SecurityPolicy
from edge_agent.config.secrets import SecretError, resolve
from edge_agent.sources.opcua.certs import load_certificate_der, thumbprint
from edge_agent.sources.opcua.errors import OpcUaConnectError, OpcUaSecurityError

log = logging.getLogger(__name__)

POLICY_CLASSES: dict[SecurityPolicy, Any] = {
    SecurityPolicy.BASIC256SHA256: security_policies.SecurityPolicyBasic256Sha256,
    SecurityPolicy.AES128_SHA256_RSAOAEP: security_policies.SecurityPolicyAes128Sha256RsaOaep,
    SecurityPolicy.AES256_SHA256_RSAPSS: security_policies.SecurityPolicyAes256Sha256RsaPss,
}
MODES: dict[SecurityMode, ua.MessageSecurityMode] = {
    SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
    SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}


def _path(reference: str, base_dir: Path) -> Path:
    path = Path(reference)
    return path if path.is_absolute() else base_dir / path


def security_files(config: OpcUa, base_dir: Path) -> list[Path]:
    """The certificate and key files a secure connection loads (none for policy None)."""
    security = config.security
    if security.policy is SecurityPolicy.NONE:
        return []
    names = (security.certificate, security.private_key, security.server_certificate)
    return [_path(name, base_dir) for name in names if name]


def first_certificate(blob: bytes) -> bytes:
    """The leading certificate of a DER blob that may carry a chain after it."""
    if len(blob) > 4 and blob[0] == 0x30 and blob[1] == 0x82:
        return blob[: int.from_bytes(blob[2:4], "big") + 4]
    return blob


class TrustedServerCertificate:
    """Holds the one server certificate we trust and checks what a server presents."""

    def __init__(self, der: bytes) -> None:
        self.der = der
        self.thumbprint = thumbprint(der)
        self.rejected: str | None = None

    def mismatch(self, presented: bytes) -> str | None:
        """Why ``presented`` is refused, or ``None`` when it is the trusted certificate."""
        presented = first_certificate(presented)
        if presented == self.der:
            return None
        return (
            "server certificate is not trusted: it presented sha256 "
            f"{thumbprint(presented) if presented else '(none)'}, the configured "
            f"server_certificate is sha256 {self.thumbprint}"
        )

    async def validate(self, cert: x509.Certificate, _app: ua.ApplicationDescription) -> None:
        """asyncua ``certificate_validator``: raise unless ``cert`` is the trusted one."""
        self.rejected = self.mismatch(cert.public_bytes(serialization.Encoding.DER))
        if self.rejected is not None:
            raise ServiceError(StatusCodes.BadCertificateUntrusted)


async def check_server_endpoint(
    url: str,
    policy: SecurityPolicy,
    mode: SecurityMode,
    trusted: TrustedServerCertificate,
    timeout_s: float,
) -> None:
    """Ask the server for its endpoints (an unsecured discovery call, as the spec allows)
    and refuse it unless it offers ``policy``/``mode`` with the trusted certificate."""
    probe = Client(url, timeout=timeout_s)
    endpoints = await probe.connect_and_get_server_endpoints()
    policy_uri = POLICY_CLASSES[policy].URI
    matching = [
        ep
        for ep in endpoints
        if ep.SecurityPolicyUri == policy_uri and ep.SecurityMode == MODES[mode]
    ]
    if not matching:
        offered = sorted(
            {
                f"{ep.SecurityPolicyUri.rsplit('#', 1)[-1]}/{ep.SecurityMode.name}"
                for ep in endpoints
            }
        )
        raise OpcUaSecurityError(
            f"server offers no endpoint with {policy.value}/{mode.value} (it offers "
            f"{', '.join(offered)})"
        )
    reasons = [trusted.mismatch(ep.ServerCertificate or b"") for ep in matching]
    if all(reasons):
        raise OpcUaSecurityError(str(reasons[0]))


async def apply_security(
    client: Client, config: OpcUa, base_dir: Path
) -> TrustedServerCertificate | None:
    """Configure ``client`` from the connection's ``security`` and user settings.

    Returns the trusted-certificate checker (``None`` for policy None). Raises
    :class:`OpcUaSecurityError` for unreadable or mismatched files and
    :class:`OpcUaConnectError` for a password that cannot be resolved.
    """
    security = config.security
    client.application_uri = security.application_uri
    if config.username is not None:
        client.set_user(config.username)
    if config.password is not None:
        try:
            client.set_password(resolve(config.password, base_dir).reveal())
        except SecretError as exc:
            raise OpcUaConnectError(f"password: {exc}") from exc
    if security.policy is SecurityPolicy.NONE:
        return None
    # The model validator guarantees these are set for any policy but None.
    assert security.certificate and security.private_key and security.server_certificate
    cert_path = _path(security.certificate, base_dir)
    key_path = _path(security.private_key, base_dir)
    trusted = TrustedServerCertificate(
        load_certificate_der(_path(security.server_certificate, base_dir))
    )
    own_der = load_certificate_der(cert_path)
    _check_own_certificate(own_der, security.application_uri, cert_path)
    try:
        key_bytes = key_path.read_bytes()
    except OSError as exc:
        raise OpcUaSecurityError(f"cannot read private key {key_path}: {exc.strerror}") from exc
    key_format = "pem" if b"-----BEGIN" in key_bytes else "der"
    try:
        await client.set_security(
            POLICY_CLASSES[security.policy],
            certificate=uacrypto.CertProperties(own_der, extension="der"),
            private_key=uacrypto.CertProperties(key_bytes, extension=key_format),
            server_certificate=uacrypto.CertProperties(trusted.der, extension="der"),
            mode=MODES[security.mode],
        )
    except (OSError, ValueError, TypeError) as exc:
        raise OpcUaSecurityError(
            f"cannot load certificate {cert_path} or key {key_path}: {exc}"
        ) from exc
    client.certificate_validator = trusted.validate
    return trusted


def _check_own_certificate(der: bytes, application_uri: str, path: Path) -> None:
    """Servers refuse a client whose certificate does not carry its application URI."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if application_uri not in uris:
        raise OpcUaSecurityError(
            f"certificate {path} does not carry the application_uri {application_uri!r} in its "
            f"subjectAltName (it has {uris or 'none'}); servers refuse such a client"
        )
