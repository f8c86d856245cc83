"""The site file as a whole: `site:`, `defaults:`, `storage:`, `history:`, `health:`,
`logging:`, and :class:`SiteConfig` that holds every section."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from edge_agent.common.listen import parse_listen
from edge_agent.common.retention import (
    DEFAULT_RETENTION_NS,
    check_retention,
)
from edge_agent.config.models.base import (
    Chattering,
    Model,
    Name,
    SiteId,
)
from edge_agent.config.models.connections import Connection
from edge_agent.config.models.forwarding import Forwarding
from edge_agent.config.models.meters import Meter
from edge_agent.config.models.rules import Rule
from edge_agent.config.models.sensors import Asset, Sensor
from edge_agent.config.secrets import KEEP_REFERENCES
from edge_agent.config.units import Duration, Size, parse_duration


class Site(Model):
    id: SiteId
    name: str = ""
    # Times in work-order texts are written in this zone (an IANA name such as
    # Europe/Berlin); the wire keeps UTC.
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from edge_agent.common.local_time import zone

        zone(value)  # raises ValueError with the fix
        return value


class FloodGuard(Model):
    """More than ``work_orders`` in ``window`` across the site: hold further notifications."""

    work_orders: Annotated[int, Field(ge=1)] = 20
    window: Duration = parse_duration("10m")


class Defaults(Model):
    poll: Duration = parse_duration("1s")
    stale_after: Duration = parse_duration("2m")
    chattering: Chattering = Chattering()
    flood: FloodGuard = FloodGuard()
    # How far a source's own timestamp may be from the agent's clock before it is reported
    # as implausible (the reading is used either way, on the agent's time).
    source_time_skew: Duration = parse_duration("10m")

    @field_validator("source_time_skew")
    @classmethod
    def _skew_bounds(cls, value: int) -> int:
        if not parse_duration("1s") <= value <= parse_duration("7d"):
            raise ValueError("must be between 1s and 7d")
        return value


class Alarms(Model):
    """The alarm lifecycle's site-wide limits (docs/rules.md)."""

    # A shelved alarm is forgotten easily: no shelve lasts longer (longer is out of service).
    max_shelve: Annotated[Duration, Field(gt=0)] = parse_duration("8h")
    # A command whose time is further than this from the agent's clock (queued for an
    # offline site, or dated ahead) is refused (wire/commands.py).
    max_command_age: Annotated[Duration, Field(gt=0)] = parse_duration("10m")


class Storage(Model):
    path: str = "/var/lib/edge-agent"
    max_bytes: Size = 256 * 1000**2
    # Alerts held in memory (and in the rule state) while the outbox refuses them; beyond
    # this the newest are dropped, counted (service/held_alerts.py).
    max_held_alerts: Annotated[int, Field(ge=1, le=100_000)] = 1000
    # How long the work-order ledger remembers applied events (common/retention.py).
    ledger_retention: Duration = DEFAULT_RETENTION_NS

    @field_validator("ledger_retention")
    @classmethod
    def _retention(cls, value: int) -> int:
        return check_retention(value, "storage.ledger_retention")


class History(Model):
    """Recent readings kept on the gateway (``<state>/history.sqlite``), for ``edge-agent
    history`` and ``replay --recent``: stored on change (and once a minute unchanged),
    never in the way of the rules; a full disk stops only the history."""

    enabled: bool = True
    keep: Duration = parse_duration("24h")
    max_bytes: Size = 64 * 1000**2

    @field_validator("keep")
    @classmethod
    def _keep_bounds(cls, value: int) -> int:
        if not parse_duration("1m") <= value <= parse_duration("90d"):
            raise ValueError("must be between 1m and 90d")
        return value

    @field_validator("max_bytes")
    @classmethod
    def _size_bounds(cls, value: int) -> int:
        if not 1000**2 <= value <= 100 * 1000**3:
            raise ValueError("must be between 1MB and 100GB")
        return value


class Health(Model):
    listen: str = "127.0.0.1:9108"

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        try:
            port = parse_listen(value)[1]
        except ValueError:
            port = 0
        if port == 0:  # the agent's endpoint is probed at a port known in advance
            raise ValueError(f"{value!r} is not host:port; write e.g. 127.0.0.1:9108")
        return value


class Logging(Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "text"] = "auto"


class SiteConfig(Model):
    """A whole site file, after ``include:`` has been merged."""

    version: Literal[1]
    site: Site
    defaults: Defaults = Defaults()
    connections: dict[Name, Connection] = {}
    assets: dict[str, Asset] = {}
    sensors: dict[Name, Sensor] = {}
    rules: list[Rule] = []
    alarms: Alarms = Alarms()
    meters: dict[Name, Meter] = {}
    forwarding: Forwarding | None = None
    storage: Storage = Storage()
    history: History = History()
    health: Health = Health()
    logging: Logging = Logging()

    def sensor_poll_ns(self, sensor_id: str) -> int:
        connection = self.connections[self.sensors[sensor_id].connection]
        return connection.poll or self.defaults.poll

    def stale_after_ns(self, rule: Rule) -> int:
        sensor = self.sensors[rule.sensor]
        return rule.stale_after or sensor.stale_after or self.defaults.stale_after


def dump_for_print(config: SiteConfig) -> dict[str, Any]:
    """The resolved configuration with defaults filled in and secrets shown as ``***``.

    Options whose default comes from elsewhere are shown with the value in effect: a
    connection's ``poll`` (from ``defaults.poll``) and a register's ``type``."""
    data = config.model_dump(mode="json", by_alias=True)
    default_poll = data["defaults"]["poll"]
    for connection in data["connections"].values():
        if connection.get("poll") is None:
            connection["poll"] = default_poll
    for sensor_id, sensor in config.sensors.items():
        if sensor.register_ is not None:
            data["sensors"][sensor_id]["register"]["type"] = sensor.register_.value_type.value
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


def share_fields_sets(config: SiteConfig) -> SiteConfig:
    """Let the models of ``config`` with the same options set share one set of those names.

    Every pydantic instance carries the set of its fields the file named (216 bytes for
    two or three names); a 10,000-sensor site holds 20,000 of them, nearly all alike. The
    models are frozen: pydantic changes the set of an instance only on assignment (refused)
    and copies it for ``model_copy``, so a shared set is never changed through one model.
    Returns ``config``."""
    shared: dict[frozenset[str], set[str]] = {}
    pending: list[Any] = [config]
    while pending:
        node = pending.pop()
        if isinstance(node, BaseModel):
            names = node.__pydantic_fields_set__
            object.__setattr__(
                node, "__pydantic_fields_set__", shared.setdefault(frozenset(names), names)
            )
            pending.extend(node.__dict__.values())
        elif isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, list | tuple):
            pending.extend(node)
    return config


def site_json(config: SiteConfig, indent: int | None = None) -> str:
    """:func:`dump_site` as JSON text, serialized without building the Python data first:
    at 10,000 sensors that data is ≈ 30 MiB the process would keep resident after it is
    freed (CPython rarely returns its arenas), the text ≈ 1 MiB."""
    return config.model_dump_json(
        by_alias=True, exclude_unset=True, indent=indent, context={KEEP_REFERENCES: True}
    )


def dump_site(config: SiteConfig) -> dict[str, Any]:
    """The configuration as site-file data that loads back to an equal model (secret
    references kept as written, durations and sizes with units, unset options left out)."""
    data = config.model_dump(mode="python", by_alias=True, exclude_unset=True)
    return dict(_plain(data))
