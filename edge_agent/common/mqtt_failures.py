"""Why an MQTT connection failed, in words an operator can act on.

paho reports a TLS alert from the broker only as a log line ("failed to receive on
socket: [SSL: TLSV1_ALERT_UNKNOWN_CA] ...") followed by "Unspecified error"; a name that
does not resolve is a bare ``socket.gaierror``. These turn both into sentences that say
what to fix.
"""

from __future__ import annotations

import socket
import ssl
from typing import Final

# OpenSSL alert names (lower case, as in its messages) sent by a broker that refuses the
# client's certificate during the handshake.
_REFUSED_CERTIFICATE: Final = (
    "alert bad certificate",
    "alert unknown ca",
    "alert certificate unknown",
    "alert certificate expired",
    "alert certificate revoked",
    "alert unsupported certificate",
    "alert access denied",
)
_CERTIFICATE_REQUIRED: Final = ("alert certificate required", "alert handshake failure")


def describe_socket_error(text: str, has_client_certificate: bool | None) -> str | None:
    """A sentence for a socket error paho logged, when it is the broker refusing TLS
    (``has_client_certificate``: whether one was offered, ``None`` when not known)."""
    lowered = text.lower()
    refused = next((alert for alert in _REFUSED_CERTIFICATE if alert in lowered), None)
    if refused is not None:
        return f"the broker refused the client certificate (TLS {refused})"
    required = next((alert for alert in _CERTIFICATE_REQUIRED if alert in lowered), None)
    if required is None:
        if "eof occurred in violation of protocol" not in lowered:
            return None
        # Some brokers close the connection without an alert (mosquitto under TLS 1.3).
        if has_client_certificate is False:
            return (
                "the broker closed the TLS connection before answering: it may require a "
                "client certificate and none is configured (tls: certificate, private_key)"
            )
        return (
            "the broker closed the TLS connection before answering: it may have refused "
            "the client certificate"
        )
    if has_client_certificate is False:
        return (
            "the broker requires a client certificate and none is configured "
            f"(tls: certificate, private_key; TLS {required})"
        )
    return f"the broker refused the TLS handshake (TLS {required})"


def describe_connect_error(exc: BaseException, host: str, port: int) -> str | None:
    """A sentence for an exception from paho's ``connect`` (resolve, TCP, TLS handshake)."""
    if isinstance(exc, socket.gaierror):
        return f"the broker host {host!r} does not resolve: {exc.strerror or exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the broker's certificate at {host}:{port} is not trusted: "
            f"{exc.verify_message or exc} (check tls.ca and the host name)"
        )
    if isinstance(exc, ssl.SSLError):
        found = describe_socket_error(str(exc), None)
        return found or f"TLS handshake with {host}:{port} failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing accepts connections at {host}:{port} (connection refused)"
    return None
