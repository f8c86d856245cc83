"""The exceptions the OPC UA source raises; asyncua's own errors are translated to these.

::

    OpcUaError
    ├── OpcUaConnectError      cannot open a session (unreachable, timeout, closed)
    └── OpcUaSecurityError     the secure channel is refused by our own checks: unreadable
        │                      certificate or key, a certificate without the application URI
        └── OpcUaRefused       a refusal with a known cause (:class:`Cause`) and its fix:
                               ours or the server's certificate, the policy, the user
"""

from __future__ import annotations

from enum import StrEnum

from edge_agent.errors import EdgeAgentError


class Cause(StrEnum):
    """Why a connection is refused: the ``cause`` label of ``edge_agent_source_refused``."""

    CLIENT_CERTIFICATE_UNTRUSTED = "client_certificate_untrusted"
    """The server does not trust our certificate (yet): trust it on the server."""
    CLIENT_CERTIFICATE_EXPIRED = "client_certificate_expired"
    CLIENT_CERTIFICATE_NOT_YET_VALID = "client_certificate_not_yet_valid"
    SERVER_CERTIFICATE_NOT_PINNED = "server_certificate_not_pinned"
    """The server presents another certificate than ``server_certificate``."""
    POLICY_NOT_OFFERED = "policy_not_offered"
    USER_REFUSED = "user_refused"
    """The server refused the user name or its password."""
    ANONYMOUS_REFUSED = "anonymous_refused"
    """The server needs a user name; none is configured."""


class OpcUaError(EdgeAgentError):
    """Base class for errors of the OPC UA source."""


class OpcUaConnectError(OpcUaError):
    """The server could not be reached or refused the session."""


class OpcUaSecurityError(OpcUaError):
    """The connection was refused for a security reason (trust, policy, certificate files)."""


class OpcUaRefused(OpcUaSecurityError):
    """A refusal whose cause is known; the message names it and says what to do."""

    def __init__(self, cause: Cause, message: str) -> None:
        super().__init__(message)
        self.cause = cause
