"""Client security: policy, certificate and key, the trusted server certificate, user.

asyncua does not validate the server certificate unless a ``certificate_validator`` is set
(LIBRARIES.md). We check it twice: before the secure channel is opened, the certificate in
the server's endpoint list must be the configured trusted one (which gives a clear error
naming both fingerprints), and the session's certificate goes through a validator that
compares it byte for byte. Basic128Rsa15 and Basic256 are never offered (deprecated,
CVE-2024-42512/42513): the config model has no way to name them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
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
from edge_agent.sources.opcua.certs import first_certificate, load_certificate_der, thumbprint
from edge_agent.sources.opcua.endpoints import offer_of, offered_summary
from edge_agent.sources.opcua.errors import (
    Cause,
    OpcUaConnectError,
    OpcUaRefused,
    OpcUaSecurityError,
)

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
            f"server_certificate is sha256 {self.thumbprint}; if the server's certificate "
            "was renewed, check the new one with its administrator and pin it "
            "(edge-agent certificate SITE CONNECTION --server --trust SHA256)"
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
        raise not_offered(policy.value, mode.value, endpoints)
    reasons = [trusted.mismatch(ep.ServerCertificate or b"") for ep in matching]
    if all(reasons):
        raise OpcUaRefused(Cause.SERVER_CERTIFICATE_NOT_PINNED, str(reasons[0]))


async def policy_refusal(
    url: str, policy: SecurityPolicy, mode: SecurityMode, timeout_s: float
) -> OpcUaRefused | None:
    """The refusal when the server does not offer ``policy``/``mode`` (``None`` when it
    does, or when it cannot be asked: the original failure then stands)."""
    probe = Client(url, timeout=timeout_s)
    try:
        async with asyncio.timeout(2 * timeout_s):
            endpoints = await probe.connect_and_get_server_endpoints()
    except Exception:  # only a better reason is looked for: the failure stands
        return None
    policy_uri = (
        security_policies.SecurityPolicyNone.URI
        if policy is SecurityPolicy.NONE
        else POLICY_CLASSES[policy].URI
    )
    wanted_mode = MODES.get(mode, ua.MessageSecurityMode.None_)
    if any(
        ep.SecurityPolicyUri == policy_uri and ep.SecurityMode == wanted_mode for ep in endpoints
    ):
        return None
    return not_offered(policy.value, mode.value, endpoints)


def not_offered(policy: str, mode: str, endpoints: list[ua.EndpointDescription]) -> OpcUaRefused:
    """The refusal for a policy and mode the server does not offer, listing what it does."""
    offers = [offer_of(endpoint) for endpoint in endpoints]
    return OpcUaRefused(
        Cause.POLICY_NOT_OFFERED,
        f"the server offers no endpoint with security {policy}/{mode}; it offers "
        f"{offered_summary(offers)}: set the connection's security policy and mode to one "
        "of these",
    )


@dataclass(frozen=True)
class ClientSecurity:
    """What a secure connection loaded: the server check and our own certificate."""

    trusted: TrustedServerCertificate
    certificate: x509.Certificate
    certificate_name: str
    """As the site file names it (what the installer looks for)."""

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.certificate.public_bytes(serialization.Encoding.DER))


async def apply_security(
    client: Client, config: OpcUa, base_dir: Path, now: dt.datetime | None = None
) -> ClientSecurity | None:
    """Configure ``client`` from the connection's ``security`` and user settings.

    Returns what was loaded (``None`` for policy None). Raises :class:`OpcUaSecurityError`
    for unreadable or mismatched files and for our certificate out of its validity
    (checked here, before any server sees it), and :class:`OpcUaConnectError` for a
    password that cannot be resolved.
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
    server_path = _path(security.server_certificate, base_dir)
    # Files not made yet: say which step of docs/opcua-security.md makes them.
    command = "edge-agent certificate SITE CONNECTION"
    for path, fix in (
        (cert_path, f"make it with {command}"),
        (key_path, f"make it with {command}"),
        (server_path, f"fetch and pin the server's with {command} --server --trust SHA256"),
    ):
        if not path.exists():
            raise OpcUaSecurityError(f"{path} does not exist: {fix}")
    trusted = TrustedServerCertificate(load_certificate_der(server_path))
    own_der = load_certificate_der(cert_path)
    own = x509.load_der_x509_certificate(own_der)
    _check_own_certificate(own, security.application_uri, cert_path)
    _check_validity(own, security.certificate, now or dt.datetime.now(dt.UTC))
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
    return ClientSecurity(trusted, own, security.certificate)


def _check_validity(cert: x509.Certificate, name: str, now: dt.datetime) -> None:
    """A server refuses a certificate out of its validity, often without saying why."""
    valid = (
        f"valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    )
    renew = (
        "make a new one (edge-agent certificate SITE CONNECTION --renew) and trust it on the server"
    )
    if cert.not_valid_after_utc <= now:
        raise OpcUaRefused(
            Cause.CLIENT_CERTIFICATE_EXPIRED,
            f"our certificate {name} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC "
            f"({valid}): {renew}",
        )
    if cert.not_valid_before_utc > now:
        raise OpcUaRefused(
            Cause.CLIENT_CERTIFICATE_NOT_YET_VALID,
            f"our certificate {name} is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC ({valid}): check this machine's "
            "clock, or make a new certificate",
        )


def _check_own_certificate(cert: x509.Certificate, application_uri: str, path: Path) -> None:
    """Servers refuse a client whose certificate does not carry its application URI."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if application_uri not in uris:
        raise OpcUaSecurityError(
            f"certificate {path} does not carry the application_uri {application_uri!r} in its "
            f"subjectAltName (it has {uris or 'none'}); servers refuse such a client: set "
            "application_uri to the certificate's, or make a new certificate (edge-agent "
            "certificate SITE CONNECTION --renew) and trust it on the server"
        )
