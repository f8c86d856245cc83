"""The exceptions the OPC UA source raises; asyncua's own errors are translated to these.

::

    OpcUaError
    ├── OpcUaConnectError      cannot open a session (refused, timeout, bad credentials)
    └── OpcUaSecurityError     the secure channel is refused by our own checks: the server
                               certificate is not the trusted one, no matching endpoint,
                               unreadable certificate or key
"""

from __future__ import annotations


class OpcUaError(Exception):
    """Base class for errors of the OPC UA source."""


class OpcUaConnectError(OpcUaError):
    """The server could not be reached or refused the session."""


class OpcUaSecurityError(OpcUaError):
    """The connection was refused for a security reason (trust, policy, certificate files)."""
