"""What every section of the site file builds on: the strict base model, names and ids,
priorities, and the backoff and chattering settings that several sections share."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.config.units import Duration, parse_duration
from edge_agent.wire.alert import SITE_PATTERN
from edge_agent.wire.topics import PREFIX_PATTERN

# The site↔hub contract's own pattern: a site id the config accepts is one the wire accepts.
SITE_ID_PATTERN = SITE_PATTERN
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
# OPC UA node ids as in Part 6 §5.3.1.10: optional ns=, then i= s= g= b=.
NODE_ID_RE = re.compile(
    r"^(?:ns=\d+;|nsu=[^;]+;)?(?:i=\d+|s=.+|g=[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|b=[A-Za-z0-9+/=]+)$"
)

SiteId = Annotated[str, Field(pattern=SITE_ID_PATTERN)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
TopicPrefix = Annotated[str, Field(pattern=PREFIX_PATTERN)]


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


class BackoffSettings(Model):
    """Exponential backoff with full jitter between reconnect attempts."""

    initial: Duration = parse_duration("500ms")
    max: Duration = parse_duration("60s")


class Chattering(Model):
    """3 activations of one rule within 60 s mark it chattering (ISA-18.2's chattering alarm)."""

    activations: Annotated[int, Field(ge=2)] = 3
    window: Duration = parse_duration("60s")
