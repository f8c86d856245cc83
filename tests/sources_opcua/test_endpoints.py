"""What a server offers, as the installer reads it."""

from __future__ import annotations

from asyncua import ua

from edge_agent.sources.opcua.endpoints import offer_of
from edge_agent.sources.opcua.security import not_offered


def test_an_unsecured_endpoint_reads_none_none_not_asyncuas_enum_name() -> None:
    endpoint = ua.EndpointDescription(
        SecurityPolicyUri="http://opcfoundation.org/UA/SecurityPolicy#None",
        SecurityMode=ua.MessageSecurityMode.None_,
        UserIdentityTokens=[ua.UserTokenPolicy(TokenType=ua.UserTokenType.Anonymous)],
    )
    assert offer_of(endpoint).describe() == "None/None (users: Anonymous)"
    refusal = not_offered("Basic256Sha256", "SignAndEncrypt", [endpoint])
    assert "it offers None/None (users: Anonymous):" in str(refusal)
