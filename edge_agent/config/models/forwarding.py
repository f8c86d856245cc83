"""The `forwarding:` section: to the hub over MQTT, or straight to MaintainX."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.common.retention import (
    MAX_RESEND_WINDOW_NS,
)
from edge_agent.common.time_units import NS_PER_DAY, NS_PER_S
from edge_agent.config.models.base import (
    BackoffSettings,
    Model,
    TopicPrefix,
)
from edge_agent.config.secrets import SecretRef
from edge_agent.config.units import Duration, parse_duration
from edge_agent.wire.topics import DEFAULT_PREFIX


class Tls(Model):
    ca: str | None = None
    certificate: str | None = None
    private_key: str | None = None

    @model_validator(mode="after")
    def _cert_and_key(self) -> Tls:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("a client certificate needs its private_key, and the key its cert")
        return self


class Mqtt(Model):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] | None = None  # 1883, or 8883 with tls
    tls: Tls | None = None
    username: str | None = None
    password: SecretRef | None = None
    client_id: str | None = None  # default: edge-agent-{site}
    protocol: Literal["5", "3.1.1"] = "5"
    topic_prefix: TopicPrefix = DEFAULT_PREFIX
    keepalive: Duration = parse_duration("30s")
    inflight: Annotated[int, Field(ge=1, le=1000)] = 20
    backoff: BackoffSettings = BackoffSettings()
    # Who confirms delivery: "hub" (the hub's result on {prefix}/{site}/results; the broker's
    # PUBACK only moves the event to "sent, awaiting the hub") or "broker" (the PUBACK, for
    # a plain MQTT consumer without a hub).
    confirm: Literal["hub", "broker"] = "hub"
    # No result within result_timeout: publish again (same ids), doubling up to the max.
    result_timeout: Duration = parse_duration("60s")
    result_timeout_max: Duration = parse_duration("10m")
    # Events sent and not yet confirmed by the hub at once; past it, new events wait.
    max_awaiting: Annotated[int, Field(ge=1, le=100_000)] = 100

    @model_validator(mode="after")
    def _result_timeouts(self) -> Mqtt:
        if not NS_PER_S <= self.result_timeout <= NS_PER_DAY:
            raise ValueError("result_timeout must be between 1s and 24h")
        if self.result_timeout_max < self.result_timeout:
            raise ValueError("result_timeout_max must not be shorter than result_timeout")
        if self.result_timeout_max > MAX_RESEND_WINDOW_NS:
            raise ValueError("result_timeout_max must be at most 24h")
        return self


class MaintainX(Model):
    base_url: Annotated[str, Field(pattern=r"^https?://\S+$")] = "https://api.getmaintainx.com/v1"
    api_key: SecretRef
    organization_id: Annotated[int, Field(ge=1)] | None = None
    timeout: Duration = parse_duration("10s")
    # Requests a minute this agent allows itself before MaintainX tells it otherwise.
    rate_limit: Annotated[int, Field(ge=1)] = 100
    backoff: BackoffSettings = BackoffSettings.model_validate({"initial": "1s"})


class Forwarding(Model):
    mode: Literal["mqtt", "maintainx"]
    mqtt: Mqtt | None = None
    maintainx: MaintainX | None = None

    @model_validator(mode="after")
    def _mode_is_configured(self) -> Forwarding:
        if self.mode == "mqtt" and self.mqtt is None:
            raise ValueError("mode is mqtt but there is no `mqtt:` section")
        if self.mode == "maintainx" and self.maintainx is None:
            raise ValueError("mode is maintainx but there is no `maintainx:` section")
        return self
