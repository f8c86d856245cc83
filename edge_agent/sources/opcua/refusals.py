"""A failed connect in the installer's terms: which refusal it is, and what fixes it.

asyncua raises the same exceptions at different steps of ``connect()``, and a server that
refuses our certificate may not say so: node-opcua closes the secure channel during
OpenSecureChannel, and asyncua then raises ``AssertionError`` (LIBRARIES.md). So the step
that failed (:class:`ConnectSteps`) decides as much as the exception does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaStatusCodeError

from edge_agent.config.models import OpcUa
from edge_agent.sources.opcua.endpoints import fetch_offers
from edge_agent.sources.opcua.errors import Cause, OpcUaRefused
from edge_agent.sources.opcua.security import ClientSecurity, policy_refusal

# What servers answer a client certificate they do not accept (Prosys and open62541 say
# BadSecurityChecksFailed, asyncua and UA-.NETStandard BadCertificateUntrusted).
UNTRUSTED_STATUSES = frozenset(
    {
        "BadCertificateUntrusted",
        "BadSecurityChecksFailed",
        "BadCertificateInvalid",
        "BadCertificateChainIncomplete",
        "BadCertificateRevoked",
        "BadCertificateIssuerRevoked",
        "BadCertificateRevocationUnknown",
        "BadCertificateIssuerRevocationUnknown",
        "BadCertificateUseNotAllowed",
    }
)
POLICY_STATUSES = frozenset({"BadSecurityPolicyRejected", "BadSecurityModeRejected"})
USER_STATUSES = frozenset(
    {
        "BadUserAccessDenied",
        "BadIdentityTokenRejected",
        "BadIdentityTokenInvalid",
        "BadUserSignatureInvalid",
    }
)
# The steps of asyncua's ``Client.connect()``, by the method that runs each.
STEPS = (
    ("send_hello", "hello"),
    ("open_secure_channel", "secure_channel"),
    ("create_session", "session"),
    ("activate_session", "activation"),
)


class ConnectSteps:
    """Which step of ``connect()`` ran last, by wrapping this client's step methods (the
    instance only, never asyncua's class)."""

    def __init__(self, client: Client) -> None:
        self.current = "socket"
        for method, step in STEPS:
            setattr(client, method, self._tracking(step, getattr(client, method)))

    def _tracking(
        self, step: str, method: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def tracked(*args: Any, **kwargs: Any) -> Any:
            self.current = step
            return await method(*args, **kwargs)

        return tracked


def status_name(exc: BaseException) -> str | None:
    """The status code name a service fault carries, or ``None``."""
    if not isinstance(exc, UaStatusCodeError):
        return None
    code = getattr(exc, "code", None)
    return ua.StatusCode(ua.UInt32(code)).name if isinstance(code, int) else None


@dataclass(frozen=True)
class Attempt:
    """What the failed connect was trying."""

    step: str
    security: ClientSecurity | None
    """``None`` for policy None."""
    username: str | None


def refusal(exc: BaseException, attempt: Attempt) -> OpcUaRefused | None:
    """The refusal ``exc`` stands for, or ``None`` when it is not one we can name."""
    status = status_name(exc)
    security = attempt.security
    closed = (
        attempt.step == "secure_channel" and status is None and not isinstance(exc, TimeoutError)
    )
    if security is not None and (status in UNTRUSTED_STATUSES or closed):
        why = status or "it closed the secure channel during the handshake"
        return OpcUaRefused(
            Cause.CLIENT_CERTIFICATE_UNTRUSTED,
            f"the server does not trust our certificate {security.certificate_name} "
            f"(SHA-256 {security.thumbprint}; {why}): trust it on the server; a new client "
            "certificate usually waits in its rejected list",
        )
    if status in USER_STATUSES:
        if attempt.username is None:
            return OpcUaRefused(
                Cause.ANONYMOUS_REFUSED,
                f"the server refused anonymous access ({status}): it needs a user name; set "
                "username and password on this connection",
            )
        return OpcUaRefused(
            Cause.USER_REFUSED,
            f"the server refused the user name {attempt.username!r} or its password "
            f"({status}): check both",
        )
    return None


def policy_may_be_refused(exc: BaseException, attempt: Attempt) -> bool:
    """Worth asking the server what it offers: it refused the policy or mode, or an
    unsecured client failed before its session was activated (servers drop an unsecured
    channel, or open it for discovery and refuse the session; asyncua's client then finds
    no endpoint of its own policy and raises a bare ``UaError``)."""
    if status_name(exc) in POLICY_STATUSES:
        return True
    return attempt.security is None and attempt.step in ("hello", "secure_channel", "session")


async def named_refusal(
    exc: BaseException, attempt: Attempt, config: OpcUa, timeout_s: float
) -> OpcUaRefused | None:
    """The refusal a failed ``connect()`` stands for, asking the server what it offers when
    that may be why; ``None`` when it is another failure (unreachable, timeout)."""
    security = attempt.security
    if security is not None and security.trusted.rejected is not None:
        return OpcUaRefused(Cause.SERVER_CERTIFICATE_NOT_PINNED, security.trusted.rejected)
    named = refusal(exc, attempt)
    if named is None and policy_may_be_refused(exc, attempt):
        named = await policy_refusal(
            config.endpoint, config.security.policy, config.security.mode, timeout_s
        )
    if named is not None and named.cause is Cause.USER_REFUSED:
        named = await user_not_offered(config, timeout_s) or named
    return named


async def user_not_offered(config: OpcUa, timeout_s: float) -> OpcUaRefused | None:
    """The refusal when our endpoint takes no user name at all (anonymous only): the
    password was never the problem. ``None`` when it takes one, or cannot be asked."""
    try:
        async with asyncio.timeout(2 * timeout_s):
            offers = await fetch_offers(config.endpoint, timeout_s)
    except Exception:  # only a better reason is looked for: the refusal stands
        return None
    policy, mode = config.security.policy.value, config.security.mode.value
    ours = [offer for offer in offers if (offer.policy, offer.mode) == (policy, mode)]
    if not ours or any("UserName" in offer.user_tokens for offer in ours):
        return None
    takes = ", ".join(dict.fromkeys(t for offer in ours for t in offer.user_tokens)) or "none"
    return OpcUaRefused(
        Cause.USER_REFUSED,
        f"the server takes no user name on {policy}/{mode} (it takes {takes}): remove "
        "username and password from this connection, or enable user names on the server",
    )
