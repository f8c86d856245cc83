"""The `connections:` section: Modbus TCP, Modbus RTU and OPC UA, told apart by
`protocol:`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from edge_agent.config.models.base import (
    BackoffSettings,
    Model,
)
from edge_agent.config.secrets import SecretRef
from edge_agent.config.units import Duration, parse_duration


class ModbusTcp(Model):
    protocol: Literal["modbus-tcp"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    # "socket" is Modbus TCP (MBAP); "rtu" is RTU frames over a TCP serial gateway.
    framer: Literal["socket", "rtu"] = "socket"
    poll: Duration | None = None
    timeout: Duration = parse_duration("1s")
    retries: Annotated[int, Field(ge=0, le=5)] = 0
    max_gap: Annotated[int, Field(ge=0, le=124)] = 10
    max_registers: Annotated[int, Field(ge=1, le=125)] = 125
    max_bits: Annotated[int, Field(ge=1, le=2000)] = 2000
    request_delay: Duration = 0
    backoff: BackoffSettings = BackoffSettings()


class ModbusRtu(Model):
    protocol: Literal["modbus-rtu"]
    device: str
    baudrate: Annotated[int, Field(ge=300, le=921600)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit_id: Annotated[int, Field(ge=0, le=247)] = 1
    poll: Duration | None = None
    timeout: Duration = parse_duration("500ms")
    retries: Annotated[int, Field(ge=0, le=5)] = 0
    max_gap: Annotated[int, Field(ge=0, le=124)] = 10
    max_registers: Annotated[int, Field(ge=1, le=125)] = 125
    max_bits: Annotated[int, Field(ge=1, le=2000)] = 2000
    # A serial bus carries one request at a time; some devices need a pause between them.
    request_delay: Duration = parse_duration("0s")
    backoff: BackoffSettings = BackoffSettings()


class SecurityPolicy(StrEnum):
    NONE = "None"
    BASIC256SHA256 = "Basic256Sha256"
    AES128_SHA256_RSAOAEP = "Aes128_Sha256_RsaOaep"
    AES256_SHA256_RSAPSS = "Aes256_Sha256_RsaPss"


class SecurityMode(StrEnum):
    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


class OpcUaSecurity(Model):
    policy: SecurityPolicy = SecurityPolicy.NONE
    mode: SecurityMode = SecurityMode.NONE
    certificate: str | None = None
    private_key: str | None = None
    # The server's certificate we trust; without it a secure channel is refused.
    server_certificate: str | None = None
    application_uri: str = "urn:edge-agent:client"

    @field_validator("application_uri")
    @classmethod
    def _ascii_uri(cls, value: str) -> str:
        # It goes into the certificate's subjectAltName, which holds ASCII only.
        if not value.isascii():
            raise ValueError(
                f"{value!r} is not ASCII: a URI takes other characters percent-encoded "
                "(ü is %C3%BC), or write them without accents"
            )
        return value

    @model_validator(mode="after")
    def _policy_and_mode_agree(self) -> OpcUaSecurity:
        if (self.policy is SecurityPolicy.NONE) != (self.mode is SecurityMode.NONE):
            raise ValueError(
                "policy and mode go together: both None, or a policy such as Basic256Sha256 "
                "with mode Sign or SignAndEncrypt"
            )
        if self.policy is not SecurityPolicy.NONE:
            missing = [
                key
                for key in ("certificate", "private_key", "server_certificate")
                if getattr(self, key) is None
            ]
            if missing:
                raise ValueError(f"security policy {self.policy.value} needs {', '.join(missing)}")
        return self


class OpcUa(Model):
    protocol: Literal["opcua"]
    endpoint: Annotated[str, Field(pattern=r"^opc\.tcp://\S+$")]
    mode: Literal["poll", "subscribe"] = "poll"
    poll: Duration | None = None
    sampling_interval: Duration | None = None
    # Absolute data-change deadband for subscriptions (0: every change).
    deadband: Annotated[float, Field(ge=0)] = 0.0
    timeout: Duration = parse_duration("4s")
    max_nodes_per_read: Annotated[int, Field(ge=1, le=1000)] = 1000
    # A subscription that delivers nothing for this long (and no keep-alive) is rebuilt.
    watchdog: Duration = parse_duration("30s")
    security: OpcUaSecurity = OpcUaSecurity()
    username: str | None = None
    password: SecretRef | None = None
    backoff: BackoffSettings = BackoffSettings()

    @field_validator("endpoint")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        # asyncua logs in with a user:password@ in the URL, and every error prints the URL.
        if "@" in value.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError(
                "carries a user name or password (user:password@host): put them in username "
                "and password (a secret reference), never in the endpoint"
            )
        return value

    @model_validator(mode="after")
    def _password_needs_user(self) -> OpcUa:
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        return self


Connection = Annotated[ModbusTcp | ModbusRtu | OpcUa, Field(discriminator="protocol")]
