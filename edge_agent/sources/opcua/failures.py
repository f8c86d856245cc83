"""How a session ends: the internal ``SessionLost``, the transport errors that mean the
session is gone, asyncua's errors as short text."""

from __future__ import annotations

from asyncua.ua.uaerrors import UaStatusCodeError

from edge_agent.sources.opcua.errors import OpcUaError
from edge_agent.sources.opcua.refusals import status_name as fault_status

# Transport-level failures: the session is gone, reconnect.
TRANSPORT_ERRORS = (ConnectionError, OSError, EOFError)


class SessionLost(OpcUaError):
    """Internal: the session must be torn down and rebuilt (the message says why)."""


def status_name(exc: UaStatusCodeError) -> str:
    """The fault's status code name, else its text: for log lines and reasons."""
    return fault_status(exc) or str(exc) or type(exc).__name__


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
