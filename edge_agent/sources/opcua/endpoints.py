"""What a server offers: its endpoints (policy, mode, user token types) and certificates.

GetEndpoints needs no security (OPC UA Part 4, 5.4.4), so this works before anything is
trusted in either direction. Nothing here writes a file.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncua import ua
from asyncua.client.client import Client

from edge_agent.sources.opcua.certs import first_certificate

# Weaker first is how servers list them; people read the strongest last.
_TOKEN_NAMES = {
    ua.UserTokenType.Anonymous: "Anonymous",
    ua.UserTokenType.UserName: "UserName",
    ua.UserTokenType.Certificate: "Certificate",
    ua.UserTokenType.IssuedToken: "IssuedToken",
}


@dataclass(frozen=True)
class Offer:
    """One endpoint the server offers."""

    policy: str
    """The policy's short name (``Basic256Sha256``, ``None``)."""
    mode: str
    """``None``, ``Sign`` or ``SignAndEncrypt``."""
    user_tokens: tuple[str, ...]
    certificate: bytes
    """The server's certificate (DER) on this endpoint; empty for policy None."""

    def describe(self) -> str:
        users = ", ".join(self.user_tokens) or "none"
        return f"{self.policy}/{self.mode} (users: {users})"


def policy_name(uri: str) -> str:
    """``http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256`` → ``Basic256Sha256``."""
    return uri.rsplit("#", 1)[-1] if uri else "None"


def offer_of(endpoint: ua.EndpointDescription) -> Offer:
    tokens = tuple(
        dict.fromkeys(
            _TOKEN_NAMES.get(token.TokenType, str(token.TokenType))
            for token in endpoint.UserIdentityTokens or []
        )
    )
    return Offer(
        policy=policy_name(endpoint.SecurityPolicyUri),
        # asyncua names the mode None ``None_`` (a Python keyword); the site file says None.
        mode=endpoint.SecurityMode.name.rstrip("_"),
        user_tokens=tokens,
        certificate=first_certificate(endpoint.ServerCertificate or b""),
    )


async def fetch_offers(url: str, timeout_s: float) -> list[Offer]:
    """The server's endpoints, in the order it lists them (raises asyncua's errors)."""
    probe = Client(url, timeout=timeout_s)
    endpoints = await probe.connect_and_get_server_endpoints()
    return [offer_of(endpoint) for endpoint in endpoints]


def offered_summary(offers: list[Offer]) -> str:
    """``Basic256Sha256/SignAndEncrypt (users: UserName), ...`` without repeats."""
    return ", ".join(dict.fromkeys(offer.describe() for offer in offers)) or "no endpoints"
