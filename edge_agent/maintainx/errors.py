"""The MaintainX client's own exceptions: httpx errors and HTTP statuses are translated here
so that callers (the forwarder, the hub) decide on *kinds* of failure, not on libraries.

::

    MaintainXError
    ├── CredentialsRejected   401 / 403: stop sending until the credentials change
    ├── BadRequest            400 naming a field, 409, 422: this request will never succeed
    │   └── NotFound          404 on one object: the work order (or asset…) does not exist
    ├── Misconfigured         404 on a collection, 400 naming no field, 405/406/415: the
    │                         settings (base_url, organization) are wrong, not the request
    ├── RateLimited           429 that outlasted the client's own waiting
    ├── TransientError        5xx, connection refused/reset before sending: retry later
    └── OutcomeUnknown        timeout or drop *after* the request was sent: it may have
                              been applied; look before repeating a create
"""

from __future__ import annotations

from typing import Any

from edge_agent.errors import EdgeAgentError


class MaintainXError(EdgeAgentError):
    """Base of every error the MaintainX client raises."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        # Set on a create that may have reached MaintainX: its retry rests before the
        # lookup (edge_agent.maintainx.sync.settle_s).
        self.create_unconfirmed = False


class CredentialsRejected(MaintainXError):
    """The API key was refused (401) or lacks access to the organization (403)."""


class BadRequest(MaintainXError):
    """MaintainX refused the request itself; ``body`` holds its error body verbatim."""


class NotFound(BadRequest):
    """404: the object addressed does not exist (or this key cannot see it)."""


class Misconfigured(MaintainXError):
    """MaintainX (or whatever answers at ``base_url``) refuses every request alike: a wrong
    ``base_url`` path (404 on ``/workorders``), a key that needs ``x-organization-id``
    (400 naming no field), a method or media type it does not take. No request can succeed
    until the configuration changes: hold everything, never dead-letter."""


class RateLimited(MaintainXError):
    """429 still returned after the client waited the advertised reset several times."""

    def __init__(self, message: str, *, reset_s: float, body: Any = None) -> None:
        super().__init__(message, status=429, body=body)
        self.reset_s = reset_s


class TransientError(MaintainXError):
    """A failure that says nothing was applied (5xx, 408, 413, refused connection): retry
    later."""


class OutcomeUnknown(MaintainXError):
    """The request was sent but no answer came (timeout, dropped connection): it may or may
    not have been applied."""


RETRYABLE: tuple[type[MaintainXError], ...] = (RateLimited, TransientError, OutcomeUnknown)
"""Failures worth retrying later with backoff, keeping order."""
