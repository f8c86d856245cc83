"""The site file as pydantic models. Key names here are the public interface.

Each model forbids unknown keys, so a typo is an error, not a silently ignored option.
Checks that need more than one field of one model (references between sections, register
overlaps, template fields) live in ``checks.py`` so that every error is reported at once.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_agent.common.listen import parse_listen
from edge_agent.common.retention import (
    DEFAULT_RETENTION_NS,
    MAX_RESEND_WINDOW_NS,
    check_retention,
)
from edge_agent.common.time_units import NS_PER_DAY, NS_PER_S
from edge_agent.config.meters import Meter
from edge_agent.config.secrets import SecretRef
from edge_agent.config.units import Duration, Size, parse_duration

SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
# OPC UA node ids as in Part 6 §5.3.1.10: optional ns=, then i= s= g= b=.
NODE_ID_RE = re.compile(
    r"^(?:ns=\d+;|nsu=[^;]+;)?(?:i=\d+|s=.+|g=[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|b=[A-Za-z0-9+/=]+)$"
)

SiteId = Annotated[str, Field(pattern=SITE_ID_PATTERN)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Model(BaseModel):
    """Base for every section: unknown keys are errors, models are immutable."""

    # NaN and infinities are never meant in a site file (`limit: .nan` never trips).
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class Priority(StrEnum):
    NONE = "NONE"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"

    @classmethod
    def _missing_(cls, value: object) -> Priority | None:
        # `priority: high` means HIGH: the words are MaintainX's, the case is not.
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper())
        return None


# --------------------------------------------------------------------------- site, defaults


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


class Chattering(Model):
    """3 activations of one rule within 60 s mark it chattering (ISA-18.2's chattering alarm)."""

    activations: Annotated[int, Field(ge=2)] = 3
    window: Duration = parse_duration("60s")


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


# --------------------------------------------------------------------------- connections


class Backoff(Model):
    """Exponential backoff with full jitter between reconnect attempts."""

    initial: Duration = parse_duration("500ms")
    max: Duration = parse_duration("60s")


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
    backoff: Backoff = Backoff()


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
    backoff: Backoff = Backoff()


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
    backoff: Backoff = Backoff()

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


# --------------------------------------------------------------------------- assets, sensors


class Asset(Model):
    name: str
    maintainx_id: Annotated[int, Field(ge=1)] | None = None
    location_id: Annotated[int, Field(ge=1)] | None = None


class RegisterTable(StrEnum):
    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bits(self) -> bool:
        return self in (RegisterTable.COIL, RegisterTable.DISCRETE)


class RegisterType(StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"


REGISTER_WORDS: dict[RegisterType, int] = {
    RegisterType.BOOL: 1,
    RegisterType.INT16: 1,
    RegisterType.UINT16: 1,
    RegisterType.INT32: 2,
    RegisterType.UINT32: 2,
    RegisterType.INT64: 4,
    RegisterType.UINT64: 4,
    RegisterType.FLOAT32: 2,
    RegisterType.FLOAT64: 4,
}


class Register(Model):
    table: RegisterTable
    address: Annotated[int, Field(ge=0, le=65535)]  # 0-based protocol address
    type: RegisterType | None = None  # default: bool on coil/discrete, uint16 otherwise
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    length: Annotated[int, Field(ge=1, le=250)] | None = None  # characters, for strings
    # One bit of a holding/input register, 0 = least significant (bool sensors).
    bit: Annotated[int, Field(ge=0, le=15)] | None = None

    @field_validator("address", mode="before")
    @classmethod
    def _not_modicon_numbering(cls, value: Any) -> Any:
        # 400021 is the 6-digit Modicon way to write holding register 21 (address 20).
        if isinstance(value, int) and not isinstance(value, bool) and value > 65535:
            text = str(value)
            tables = {"4": "holding", "3": "input", "1": "discrete", "0": "coil"}
            if len(text) == 6 and text[0] in tables and int(text[1:]) >= 1:
                raise ValueError(
                    f"{value} looks like a 1-based register number ({tables[text[0]]} "
                    f"register {int(text[1:])}); write the 0-based protocol address "
                    f"{int(text[1:]) - 1}"
                )
        return value

    @property
    def value_type(self) -> RegisterType:
        if self.type is not None:
            return self.type
        return RegisterType.BOOL if self.table.is_bits else RegisterType.UINT16

    @property
    def count(self) -> int:
        """How many registers (or bits) the value spans."""
        kind = self.value_type
        if self.table.is_bits:
            return 1
        if kind is RegisterType.STRING:
            return ((self.length or 0) + 1) // 2
        return REGISTER_WORDS[kind]

    @model_validator(mode="after")
    def _type_fits_table(self) -> Register:
        kind = self.value_type
        if self.table.is_bits and kind is not RegisterType.BOOL:
            raise ValueError(
                f"a {self.table.value} holds single bits: its type is bool, not {kind.value}"
            )
        if not self.table.is_bits and kind is RegisterType.BOOL and self.bit is None:
            raise ValueError(
                f"a {self.table.value} register holds 16 bits: use a numeric type, or bool "
                "with `bit:` to pick one bit"
            )
        if self.bit is not None and kind is not RegisterType.BOOL:
            raise ValueError("`bit:` picks one bit and goes with type bool")
        if kind is RegisterType.STRING and self.length is None:
            raise ValueError("a string register needs `length:` (characters)")
        if kind is not RegisterType.STRING and self.length is not None:
            raise ValueError("`length:` is for string registers only")
        if self.address + self.count - 1 > 65535:
            raise ValueError(f"address {self.address} + {self.count} registers runs past 65535")
        return self


class Scale(Model):
    """value = raw × factor + offset."""

    factor: float = 1.0
    offset: float = 0.0


class Sensor(Model):
    connection: str
    unit: str | None = None
    description: str = ""
    node: str | None = None  # OPC UA
    register_: Annotated[Register | None, Field(alias="register")] = None  # Modbus
    unit_id: Annotated[int, Field(ge=0, le=255)] | None = None  # overrides the connection's
    scale: Scale | None = None
    stale_after: Duration | None = None
    # Digits after the point in work-order texts (default: from the scale factor's, else
    # 2 for a fractional value); the messages keep the full value.
    decimals: Annotated[int, Field(ge=0, le=10)] | None = None

    @field_validator("node")
    @classmethod
    def _node_id_is_well_formed(cls, value: str | None) -> str | None:
        if value is not None and not NODE_ID_RE.match(value):
            raise ValueError(
                f"{value!r} is not an OPC UA node id; write e.g. ns=2;s=Line1.P101.Temp "
                "or ns=3;i=1001"
            )
        return value

    @model_validator(mode="after")
    def _one_address(self) -> Sensor:
        if self.node is None and self.register_ is None:
            raise ValueError("a sensor needs `node:` (OPC UA) or `register:` (Modbus)")
        if self.node is not None and self.register_ is not None:
            raise ValueError("a sensor has either `node:` (OPC UA) or `register:` (Modbus)")
        return self


# --------------------------------------------------------------------------- rules


class HighLimit(Model):
    limit: float
    deadband: Annotated[float, Field(ge=0)] = 0.0


class LowLimit(Model):
    limit: float
    deadband: Annotated[float, Field(ge=0)] = 0.0


class RateDirection(StrEnum):
    RISING = "rising"
    FALLING = "falling"
    BOTH = "both"


class RateOfChange(Model):
    above: Annotated[float, Field(gt=0)]
    per: Duration = parse_duration("1m")
    # Which way counts: a "rising temperature" rule must not trip on a fall.
    direction: RateDirection = RateDirection.BOTH
    # The slope over this long (from the oldest sample in it), not between consecutive
    # polls: one register step in one poll is then no longer a steep rate.
    window: Annotated[Duration, Field(gt=0)] | None = None


class Flatline(Model):
    for_: Annotated[Duration, Field(alias="for")]
    tolerance: Annotated[float, Field(ge=0)] = 0.0


class Escalation(Model):
    above: float | None = None
    below: float | None = None
    priority: Priority

    @model_validator(mode="after")
    def _one_direction(self) -> Escalation:
        if (self.above is None) == (self.below is None):
            raise ValueError("an escalation level has either `above:` or `below:`")
        return self


class OnlyWhen(Model):
    sensor: str
    equals: bool | float | str


class Assignee(Model):
    type: Literal["USER", "TEAM"]
    id: Annotated[int, Field(ge=1)]


class WorkOrderTemplate(Model):
    title: Annotated[str, Field(min_length=1, max_length=1000)]
    description: str = ""
    categories: list[str] = []
    assignees: list[Assignee] = []
    due_in: Duration | None = None


class OnStale(StrEnum):
    HOLD = "hold"
    CLEAR = "clear"
    ALARM = "alarm"


CONDITION_KEYS = ("high", "low", "rate", "flatline", "equals")

# The fields a work-order template may use, e.g. "{asset.name}: bearing {value:.1f} {unit}".
# Templates are rendered by name lookup in this set only; nothing is evaluated.
TEMPLATE_FIELDS: frozenset[str] = frozenset(
    {
        "asset.name",
        "asset.id",
        "sensor.id",
        "value",
        "peak",
        "limit",
        "unit",
        "started_at",
        "rule.id",
        "priority",
        "site.id",
        "site.name",
        "alert_id",
        "duration",
    }
)


class Rule(Model):
    id: Name
    asset: str
    sensor: str
    high: HighLimit | None = None
    low: LowLimit | None = None
    rate: RateOfChange | None = None
    flatline: Flatline | None = None
    equals: bool | float | str | None = None
    inclusive: bool = False
    on_delay: Duration = 0
    off_delay: Duration = 0
    priority: Priority = Priority.MEDIUM
    escalate: list[Escalation] = []
    cooldown: Duration = 0
    only_when: OnlyWhen | None = None
    stale_after: Duration | None = None
    on_stale: OnStale = OnStale.HOLD
    chattering: Chattering | None = None
    work_order: WorkOrderTemplate | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> Rule:
        problem = condition_problem([k for k in CONDITION_KEYS if getattr(self, k) is not None])
        if problem:
            raise ValueError(problem)
        return self


def condition_problem(present: list[str]) -> str | None:
    """Why a rule with these condition keys is wrong (``None`` when it is right). Shared
    with ``checks.py``, which reports it even when another key of the rule is invalid."""
    if not present:
        return "a rule needs a condition: high, low (or both for a band), rate, flatline or equals"
    if len(present) > 1 and set(present) != {"high", "low"}:
        return (
            f"a rule has one condition, this one has {' and '.join(present)}; "
            "split it into several rules"
        )
    return None


# --------------------------------------------------------------------------- forwarding


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
    topic_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")] = "edge/v1"
    keepalive: Duration = parse_duration("30s")
    inflight: Annotated[int, Field(ge=1, le=1000)] = 20
    backoff: Backoff = Backoff()
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
    backoff: Backoff = Backoff.model_validate({"initial": "1s"})


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


# --------------------------------------------------------------------------- storage, health


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


# --------------------------------------------------------------------------- the site file


class SiteConfig(Model):
    """A whole site file, after ``include:`` has been merged."""

    version: Literal[1]
    site: Site
    defaults: Defaults = Defaults()
    connections: dict[Name, Connection] = {}
    assets: dict[str, Asset] = {}
    sensors: dict[Name, Sensor] = {}
    rules: list[Rule] = []
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


def dump_site(config: SiteConfig) -> dict[str, Any]:
    """The configuration as site-file data that loads back to an equal model (secret
    references kept as written, durations and sizes with units, unset options left out)."""
    data = config.model_dump(mode="python", by_alias=True, exclude_unset=True)
    return dict(_plain(data))
