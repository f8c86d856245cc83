"""The site file as pydantic models. Key names here are the public interface.

Each model forbids unknown keys, so a typo is an error, not a silently ignored option.
Checks that need more than one field of one model (references between sections, register
overlaps, template fields) live in :mod:`edge_agent.config.checks` so that every error is
reported at once.

One module per section of the file (:mod:`.connections`, :mod:`.sensors`, :mod:`.rules`,
:mod:`.forwarding`), what they share in :mod:`.base`, and the file as a whole in
:mod:`.site`; every name is importable from here.
"""

from __future__ import annotations

from edge_agent.config.models.base import (
    NAME_PATTERN,
    NODE_ID_RE,
    SITE_ID_PATTERN,
    BackoffSettings,
    Chattering,
    Model,
    Name,
    Priority,
    SiteId,
    TopicPrefix,
)
from edge_agent.config.models.connections import (
    Connection,
    ModbusRtu,
    ModbusTcp,
    OpcUa,
    OpcUaSecurity,
    SecurityMode,
    SecurityPolicy,
)
from edge_agent.config.models.forwarding import (
    Forwarding,
    MaintainX,
    Mqtt,
    Tls,
)
from edge_agent.config.models.rules import (
    CONDITION_KEYS,
    TEMPLATE_FIELDS,
    Assignee,
    Escalation,
    Flatline,
    HighLimit,
    LowLimit,
    OnlyWhen,
    OnStale,
    RateDirection,
    RateOfChange,
    Rule,
    WorkOrderTemplate,
    condition_problem,
)
from edge_agent.config.models.sensors import (
    REGISTER_WORDS,
    Asset,
    Maintenance,
    Register,
    RegisterTable,
    RegisterType,
    Scale,
    Sensor,
)
from edge_agent.config.models.site import (
    Alarms,
    Defaults,
    FloodGuard,
    Health,
    History,
    Logging,
    Site,
    SiteConfig,
    Storage,
    dump_for_print,
    dump_site,
    share_fields_sets,
    site_json,
)

__all__ = [
    "CONDITION_KEYS",
    "NAME_PATTERN",
    "NODE_ID_RE",
    "REGISTER_WORDS",
    "SITE_ID_PATTERN",
    "TEMPLATE_FIELDS",
    "Alarms",
    "Asset",
    "Assignee",
    "BackoffSettings",
    "Chattering",
    "Connection",
    "Defaults",
    "Escalation",
    "Flatline",
    "FloodGuard",
    "Forwarding",
    "Health",
    "HighLimit",
    "History",
    "Logging",
    "LowLimit",
    "MaintainX",
    "Maintenance",
    "ModbusRtu",
    "ModbusTcp",
    "Model",
    "Mqtt",
    "Name",
    "OnStale",
    "OnlyWhen",
    "OpcUa",
    "OpcUaSecurity",
    "Priority",
    "RateDirection",
    "RateOfChange",
    "Register",
    "RegisterTable",
    "RegisterType",
    "Rule",
    "Scale",
    "SecurityMode",
    "SecurityPolicy",
    "Sensor",
    "Site",
    "SiteConfig",
    "SiteId",
    "Storage",
    "Tls",
    "TopicPrefix",
    "WorkOrderTemplate",
    "condition_problem",
    "dump_for_print",
    "dump_site",
    "share_fields_sets",
    "site_json",
]
