"""Names that must exist or be unique: references between sections, rule ids, and the
MaintainX asset a direct-mode rule files under."""

from __future__ import annotations

from collections.abc import Iterator

from edge_agent.config.checks.common import (
    KnownNames,
    items_of,
    rules_of,
    unknown_reference,
)
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document


def check_references(doc: Document) -> Iterator[Diagnostic]:
    """sensor → connection, rule → sensor and asset, only_when → sensor."""
    names = KnownNames()
    for sensor_id, _sensor in items_of(doc.get("sensors")):
        yield from unknown_reference(
            doc, ("sensors", sensor_id, "connection"), "connection", "connections", names
        )
    for index, rule in rules_of(doc):
        yield from unknown_reference(doc, ("rules", index, "sensor"), "sensor", "sensors", names)
        yield from unknown_reference(doc, ("rules", index, "asset"), "asset", "assets", names)
        if isinstance(rule.get("only_when"), dict):
            yield from unknown_reference(
                doc, ("rules", index, "only_when", "sensor"), "sensor", "sensors", names
            )


def check_rule_ids(doc: Document) -> Iterator[Diagnostic]:
    """Rule ids are unique: they name the alarm in every event and work order."""
    first_at: dict[str, int] = {}
    for index, rule in rules_of(doc):
        rule_id = rule.get("id")
        if not isinstance(rule_id, str):
            continue
        if rule_id in first_at:
            earlier = ("rules", first_at[rule_id], "id")
            yield doc.at(
                ("rules", index, "id"),
                f"duplicate rule id `{rule_id}` (already used by the rule at {doc.where(earlier)})",
            )
        else:
            first_at[rule_id] = index


def check_direct_asset_links(doc: Document) -> Iterator[Diagnostic]:
    """In direct mode the agent itself files the work order: a rule whose asset has no
    ``maintainx_id`` makes work orders that MaintainX links to no asset (no history, no
    downtime on the asset). Allowed, since some sites file by location, but said."""
    forwarding = doc.get("forwarding")
    if not isinstance(forwarding, dict) or forwarding.get("mode") != "maintainx":
        return
    assets = doc.get("assets")
    if not isinstance(assets, dict):
        return
    warned: set[str] = set()
    for index, rule in rules_of(doc):
        asset_id = rule.get("asset")
        asset = assets.get(asset_id) if isinstance(asset_id, str) else None
        if not isinstance(asset, dict) or asset.get("maintainx_id") is not None:
            continue
        if asset_id in warned:
            continue
        warned.add(str(asset_id))
        yield doc.at(
            ("rules", index, "asset"),
            f"asset `{asset_id}` has no `maintainx_id`: its work orders are linked to no asset "
            "in MaintainX (add `maintainx_id:` to the asset)",
            "warning",
        )
