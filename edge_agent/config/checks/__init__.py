"""Checks of a site file that need more than one value: references between sections,
duplicate rule ids, register overlaps, bands, escalation levels and templates.

They read the merged raw data defensively (a value may be missing or of the wrong type:
pydantic reports that), so they run even when the models fail and every problem in the
file is reported in one pass. One module per concern; :data:`SITE_CHECKS` runs them all,
in an order that fixes the order of the report.
"""

from __future__ import annotations

from typing import Final

from edge_agent.config.checks.common import KnownNames
from edge_agent.config.checks.connections import check_hosts, check_rtu_broadcast
from edge_agent.config.checks.durations import (
    check_duration_limits,
    check_poll_floor,
    check_positive_durations,
    check_stale_vs_poll,
)
from edge_agent.config.checks.meters import check_downtime, check_meters
from edge_agent.config.checks.references import (
    check_direct_asset_links,
    check_references,
    check_rule_ids,
)
from edge_agent.config.checks.registers import (
    check_address_kinds,
    check_modicon_addresses,
    check_register_overlaps,
)
from edge_agent.config.checks.rules import (
    check_bands,
    check_conditions_fit_sensor,
    check_equals_fit_sensor,
    check_escalation,
    check_rate_resolution,
    check_rule_conditions,
)
from edge_agent.config.checks.storage import check_storage_size
from edge_agent.config.checks.templates import check_templates, template_problems
from edge_agent.config.document import Check

__all__ = ["SITE_CHECKS", "KnownNames", "template_problems"]

SITE_CHECKS: Final[tuple[Check, ...]] = (
    check_references,
    check_rule_ids,
    check_rule_conditions,
    check_address_kinds,
    check_register_overlaps,
    check_modicon_addresses,
    check_conditions_fit_sensor,
    check_bands,
    check_escalation,
    check_templates,
    check_equals_fit_sensor,
    check_stale_vs_poll,
    check_hosts,
    check_positive_durations,
    check_duration_limits,
    check_poll_floor,
    check_storage_size,
    check_rtu_broadcast,
    check_direct_asset_links,
    check_rate_resolution,
    check_meters,
    check_downtime,
)
"""Every check of a site file, in the order they run."""
