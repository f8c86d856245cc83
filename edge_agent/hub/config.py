"""The hub file (a YAML file whose top level has ``hub:``) as pydantic models.

Same conventions as the site file (:mod:`edge_agent.config.models`): unknown keys are errors,
durations and sizes carry units, secrets are ``${ENV}`` or ``file:`` references that stay
references until the hub starts. :func:`check_hub` holds the checks that need more than one
value; ``edge-agent validate`` runs both and reports every problem with file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from edge_agent.common.listen import parse_listen
from edge_agent.common.retention import DEFAULT_RETENTION_NS, check_retention
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.loader import Document, load_model
from edge_agent.config.models import SITE_ID_PATTERN, BackoffSettings, Model, Tls, TopicPrefix
from edge_agent.config.secrets import SecretRef
from edge_agent.config.units import Duration, Size, parse_duration, parse_size
from edge_agent.hub.drivers import check_store_driver
from edge_agent.wire.topics import DEFAULT_PREFIX

GROUP_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
SiteId = Annotated[str, Field(pattern=SITE_ID_PATTERN)]


def _check_listen(value: str) -> str:
    parse_listen(value)
    return value


Listen = Annotated[str, Field(min_length=3)]


class HubIdentity(Model):
    """This replica. ``id`` is unique per replica (its MQTT client id and the name of its
    presence topic ``{prefix}/hub/status/{id}``); by default it is derived from the host name
    and the process id. Replicas that split the load share ``group``."""

    id: SiteId | None = None
    group: Annotated[str, Field(pattern=GROUP_PATTERN)] = "edge-agent-hub"
    # Alerts processed at the same time by this replica (MaintainX calls in flight).
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 16
    # An alert message larger than this is rejected unread.
    max_message: Size = parse_size("64KB")
    # How long a replica may hold an alert before another replica may take it over.
    claim_lease: Duration = parse_duration("60s")
    # Parked alerts (site blocked or MaintainX down) are retried this often.
    retry_interval: Duration = parse_duration("5s")

    @field_validator("claim_lease")
    @classmethod
    def _lease_bounds(cls, value: int) -> int:
        # A lease that ends while its replica is still calling MaintainX lets another replica
        # start the same alert: two creates, two work orders (checked against
        # maintainx.timeout in HubConfig as well).
        if value < parse_duration("1s"):
            raise ValueError("must be at least 1s")
        return value

    @field_validator("retry_interval")
    @classmethod
    def _retry_bounds(cls, value: int) -> int:
        if value < parse_duration("100ms"):  # 0 would re-read the store in a busy loop
            raise ValueError("must be at least 100ms")
        return value


class Broker(Model):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] | None = None  # 1883, or 8883 with tls
    tls: Tls | None = None
    username: str | None = None
    password: SecretRef | None = None
    # Shared subscriptions ($share/<group>/...) exist in MQTT 5 only.
    protocol: Literal["5"] = "5"
    topic_prefix: TopicPrefix = DEFAULT_PREFIX
    keepalive: Duration = parse_duration("30s")
    # How long the broker keeps this replica's session after it disconnected. 0 (the
    # default): the session, and with it the replica's place in the shared subscription, ends
    # with the connection, so the broker routes the group's alerts to live replicas only.
    # Nothing is lost: agents resend every event the hub has not answered. A longer expiry
    # makes a dead replica's session keep receiving (and holding) its share of the alerts.
    session_expiry: Duration = parse_duration("0s")
    backoff: BackoffSettings = BackoffSettings()

    @model_validator(mode="after")
    def _password_needs_user(self) -> Broker:
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls is not None else 1883)


class HubSite(Model):
    """One site: its own MaintainX key and organization. Nothing else may use them."""

    api_key: SecretRef
    organization_id: Annotated[int, Field(ge=1)] | None = None
    location_id: Annotated[int, Field(ge=1)] | None = None
    # Requests a minute for this key before MaintainX says otherwise (default: maintainx's).
    rate_limit: Annotated[int, Field(ge=1)] | None = None
    # No message from the site (status or alert) for this long: "quiet" in /readyz and
    # edge_agent_hub_site_quiet. Agents send nothing while nothing alarms: size it to that.
    quiet_after: Duration = parse_duration("10m")


class HubMaintainX(Model):
    base_url: Annotated[str, Field(pattern=r"^https?://\S+$")] = "https://api.getmaintainx.com/v1"
    timeout: Duration = parse_duration("10s")
    rate_limit: Annotated[int, Field(ge=1)] = 100


class Dedup(Model):
    """Where alert id → work order id lives. SQLite for one replica; PostgreSQL when
    several replicas share the load."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: str | None = None  # sqlite: default <state_dir>/hub.sqlite3
    dsn: SecretRef | None = None  # postgres: e.g. ${HUB_PG_DSN}
    pool: Annotated[int, Field(ge=1, le=100)] = 8
    # Table name prefix (a schema-qualified prefix such as ``hub.`` is allowed).
    table_prefix: Annotated[
        str, Field(pattern=r"^([a-z_][a-z0-9_]{0,30}\.)?[a-z_][a-z0-9_]{0,30}$")
    ] = "hub_"
    # How long applied events are remembered (common/retention.py: longer than any resend).
    retention: Duration = DEFAULT_RETENTION_NS

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: int) -> int:
        return check_retention(value, "dedup.retention")

    @model_validator(mode="after")
    def _backend_settings(self) -> Dedup:
        if self.backend == "postgres" and self.dsn is None:
            raise ValueError("backend postgres needs `dsn:` (a ${ENV_VAR} or file: reference)")
        if self.backend == "postgres" and self.path is not None:
            raise ValueError("`path:` is for backend sqlite; postgres uses `dsn:`")
        if self.backend == "sqlite" and self.dsn is not None:
            raise ValueError("`dsn:` is for backend postgres; sqlite uses `path:`")
        return self


class Webhooks(Model):
    """The HTTP endpoint MaintainX calls. ``secret`` is the subscription secret; secrets
    returned by ``--register-webhooks`` are kept in the state directory and accepted too."""

    listen: Listen = "127.0.0.1:9110"
    public_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    secret: SecretRef | None = None
    max_body: Size = parse_size("64KB")
    max_age: Duration = parse_duration("5m")

    @field_validator("listen")
    @classmethod
    def _listen_ok(cls, value: str) -> str:
        return _check_listen(value)


class HubHealth(Model):
    listen: Listen = "127.0.0.1:9109"

    @field_validator("listen")
    @classmethod
    def _listen_ok(cls, value: str) -> str:
        return _check_listen(value)


class HubLogging(Model):
    level: Literal["debug", "info", "warning", "error"] = "info"


class HubConfig(Model):
    """A whole hub file."""

    version: Literal[1] = 1
    hub: HubIdentity
    broker: Broker
    sites: Annotated[dict[SiteId, HubSite], Field(min_length=1)]
    maintainx: HubMaintainX = HubMaintainX()
    dedup: Dedup = Dedup()
    webhooks: Webhooks | None = None
    state_dir: str = "/var/lib/edge-agent-hub"
    health: HubHealth = HubHealth()
    logging: HubLogging = HubLogging()

    @model_validator(mode="after")
    def _lease_outlasts_a_call(self) -> HubConfig:
        if self.hub.claim_lease <= self.maintainx.timeout:
            raise ValueError(
                "hub.claim_lease must be longer than maintainx.timeout: a claim that expires "
                "during a MaintainX call lets another replica create the same work order"
            )
        return self

    def state_path(self, base_dir: Path) -> Path:
        """The state directory, relative paths taken from the hub file's folder."""
        path = Path(self.state_dir)
        return path if path.is_absolute() else base_dir / path

    def sqlite_path(self, base_dir: Path) -> Path:
        if self.dedup.path is None:
            return self.state_path(base_dir) / "hub.sqlite3"
        path = Path(self.dedup.path)
        return path if path.is_absolute() else base_dir / path


def check_hub(doc: Document) -> Iterator[Diagnostic]:
    """Checks across sections: the health and webhook listeners must differ."""
    health = doc.get("health", "listen")
    hooks = doc.get("webhooks", "listen")
    if isinstance(hooks, str) and hooks == (
        health if isinstance(health, str) else "127.0.0.1:9109"
    ):
        yield doc.at(
            ("webhooks", "listen"),
            f"the webhook listener {hooks} is the health listener too; give each its own port",
        )
    sites = doc.get("sites")
    if isinstance(sites, dict):
        seen: dict[str, str] = {}
        for site_id, site in sites.items():
            if not isinstance(site, dict) or not isinstance(site.get("api_key"), str):
                continue
            key = site["api_key"]
            if key in seen:
                yield doc.at(
                    ("sites", site_id, "api_key"),
                    f"site {site_id} uses the same API key reference as site {seen[key]}; "
                    "every site has its own key",
                    severity="warning",
                )
            else:
                seen[key] = str(site_id)


HUB_CHECKS = (check_hub, check_store_driver)


def load_hub(path: Path) -> tuple[HubConfig | None, list[Diagnostic]]:
    """The hub file as a :class:`HubConfig` (None when it has an error) and every problem."""
    return load_model(path, HubConfig, HUB_CHECKS)
