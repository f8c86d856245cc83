"""The site↔hub MQTT topics, in one place. Pure: no I/O.

``prefix`` is the configured ``topic_prefix`` (default :data:`DEFAULT_PREFIX`); ``site`` a
validated site id (``[a-z0-9][a-z0-9-]{0,62}``: no wildcard or slash reaches a topic).

======================================  ===========  ========================================
topic                                   direction    what
======================================  ===========  ========================================
``{prefix}/{site}/alerts``              site → hub   an alarm event (``edge-agent/alert@1``)
``{prefix}/{site}/status``              site → hub   ``online`` birth, ``offline`` last will
``{prefix}/{site}/meters``              site → hub   a meter reading (``meter-reading@1``)
``{prefix}/{site}/assets``              site → hub   an asset status (``asset-status@1``)
``{prefix}/{site}/results``             hub → site   what became of an alert
``{prefix}/{site}/results/plant``       hub → site   what became of a reading or status
``{prefix}/{site}/workorders/{id}``     hub → site   a work order's status (retained)
``{prefix}/{site}/commands``            hub → site   an alarm command (``edge-agent/command@1``)
``{prefix}/{site}/command-results``     site → hub   what became of a command
``{prefix}/hub/status/{replica}``       hub → sites  a hub replica's presence (retained)
======================================  ===========  ========================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from edge_agent.wire.alert import SITE_PATTERN

DEFAULT_PREFIX: Final = "edge/v1"
PREFIX_PATTERN: Final = r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$"
"""What a configured ``topic_prefix`` may be (site and hub alike): no wildcard, no empty level."""
_SITE_RE: Final = re.compile(SITE_PATTERN)

SiteTopicKind = Literal["alerts", "status"]


def alerts(prefix: str, site: str) -> str:
    """Where a site publishes its alarm events."""
    return f"{prefix}/{site}/alerts"


def meters(prefix: str, site: str) -> str:
    """Where a site publishes its meter readings (``wire/plant.py``)."""
    return f"{prefix}/{site}/meters"


def assets(prefix: str, site: str) -> str:
    """Where a site publishes its assets' status changes (``wire/plant.py``)."""
    return f"{prefix}/{site}/assets"


def site_status(prefix: str, site: str) -> str:
    """A site's retained ``online`` / ``offline`` (its last will)."""
    return f"{prefix}/{site}/status"


def results(prefix: str, site: str) -> str:
    """Where the hub tells a site what became of its alerts."""
    return f"{prefix}/{site}/results"


def plant_results(prefix: str, site: str) -> str:
    """Where the hub tells a site what became of its meter readings and asset statuses
    (apart from :func:`results`: each forwarder reads only its own answers)."""
    return f"{prefix}/{site}/results/plant"


def shared_plant_filters(prefix: str, group: str) -> list[str]:
    """The hub group's shared subscriptions to every site's :func:`meters` and
    :func:`assets`."""
    return [f"$share/{group}/{prefix}/+/meters", f"$share/{group}/{prefix}/+/assets"]


def work_order(prefix: str, site: str, work_order_id: int) -> str:
    """A work order's retained status, for the site whose alert made it."""
    return f"{work_orders_under(prefix, site)}{work_order_id}"


def work_orders_under(prefix: str, site: str) -> str:
    """What every :func:`work_order` topic of a site starts with."""
    return f"{prefix}/{site}/workorders/"


def work_orders_filter(prefix: str, site: str) -> str:
    """The subscription to every :func:`work_order` topic of a site."""
    return f"{work_orders_under(prefix, site)}+"


def commands(prefix: str, site: str) -> str:
    """Where the hub sends a site its alarm commands (shelve, out of service, ack...)."""
    return f"{prefix}/{site}/commands"


def command_results(prefix: str, site: str) -> str:
    """Where a site answers each alarm command."""
    return f"{prefix}/{site}/command-results"


def hub_status(prefix: str, replica: str) -> str:
    """A hub replica's retained presence (``online``; ``offline`` as its last will)."""
    return f"{hub_status_under(prefix)}{replica}"


def hub_status_under(prefix: str) -> str:
    """What every :func:`hub_status` topic starts with (the replica id follows)."""
    return f"{prefix}/hub/status/"


def hub_status_filter(prefix: str) -> str:
    """The subscription to every replica's :func:`hub_status`."""
    return f"{hub_status_under(prefix)}+"


def shared_alerts_filter(prefix: str, group: str) -> str:
    """The hub group's shared subscription to every site's :func:`alerts`: each message goes
    to one replica of the group."""
    return f"$share/{group}/{prefix}/+/alerts"


def shared_command_results_filter(prefix: str, group: str) -> str:
    """The hub group's shared subscription to every site's :func:`command_results` (one
    replica records each)."""
    return f"$share/{group}/{prefix}/+/command-results"


def command_results_site(prefix: str, topic: str) -> str | None:
    """``edge/v1/plant-a/command-results`` → ``plant-a``; None if it is not such a topic."""
    head, tail = prefix + "/", "/command-results"
    if not topic.startswith(head) or not topic.endswith(tail):
        return None
    site = topic[len(head) : -len(tail)]
    return site if _SITE_RE.match(site) else None


def site_status_filter(prefix: str) -> str:
    """The subscription to every site's :func:`site_status`."""
    return f"{prefix}/+/status"


@dataclass(frozen=True)
class TopicParts:
    """A site topic the hub reads: the site, and whether it carries alerts or status."""

    site: str
    kind: SiteTopicKind


def parse_site_topic(prefix: str, topic: str) -> TopicParts | None:
    """``edge/v1/plant-a/alerts`` → (``plant-a``, ``alerts``); None if it is not ours."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head) :].split("/")
    if len(rest) != 2 or not _SITE_RE.match(rest[0]):
        return None
    if rest[1] == "alerts":
        return TopicParts(rest[0], "alerts")
    if rest[1] == "status":
        return TopicParts(rest[0], "status")
    return None
