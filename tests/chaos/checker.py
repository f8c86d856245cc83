"""The checker: after the faults stop and the estate heals, every episode the agents showed
has exactly one work order at the emulator (found by the value in its title, identified by
the alert id in externalData), in that site's organization (its key), on its asset, with its
priority; no other work order; no outbox holding anything; the hub's KPIs agree."""

from __future__ import annotations

import re
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.chaos.estate import ORGS, Estate
from tests.chaos.workload import Episode

# "Re-activated at 2026-12-04 15:13:47 UTC: p101_vibration = 22.37 mm/s (limit 7.10)…"
REACTIVATED = re.compile(r"Re-activated at [^=]+?: \S+ = (-?[0-9.]+)")
DUPLICATE_COMMENTS: set[str] = set()
KPI_SETTLE_S = 15.0
RANK = {"NONE": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
            body = response.read().decode()
    except OSError:
        return {}
    out = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(
    sampled: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (metric, have), value in sampled.items()
        if metric == name and all((k, v) in have for k, v in labels.items())
    )


def ours(estate: Estate) -> list[dict[str, Any]]:
    orgs = set(ORGS.values())
    return [wo for wo in estate.emulator.work_orders if wo.get("organizationId") in orgs]


def outbox_depths(estate: Estate) -> dict[str, float]:
    return {
        site: total(metrics(agent.process.health_port), "edge_agent_outbox_depth")
        for site, agent in estate.agents.items()
    }


def hub_pending(estate: Estate) -> float:
    values = [total(metrics(h.health_port), "edge_agent_hub_pending") for h in estate.hubs.values()]
    return max(values) if values else 0.0


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    first_broken: Episode | None = None
    matched: int = 0
    unseen_with_order: int = 0
    commented: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _key(site: str, value: float) -> str:
    return f"{site} {value:.2f}"


def reactivations(estate: Estate) -> dict[str, list[int]]:
    """ "site value" -> the work orders whose comments say that episode re-activated the rule
    (MQTT mode: an activation while the rule's work order is still open comments on it)."""
    found: dict[str, list[int]] = defaultdict(list)
    site_of = {org: site for site, org in ORGS.items()}
    for wo in ours(estate):
        for comment in estate.emulator.comments(wo["id"]):
            text = str(comment.get("content", ""))
            match = REACTIVATED.match(text)
            key = _key(site_of[wo["organizationId"]], float(match.group(1))) if match else ""
            # A comment is sent at least once: a create's response lost after MaintainX
            # stored it repeats it on the same work order (counted, not a failure).
            if match and wo["id"] not in found[key]:
                found[key].append(wo["id"])
            elif match:
                DUPLICATE_COMMENTS.add(key)
    return found


def missing_orders(estate: Estate, episodes: list[Episode]) -> int:
    titles = Counter(_title_key(wo) for wo in ours(estate))
    again = reactivations(estate)
    return sum(
        1
        for e in episodes
        if e.seen and titles[_key(e.site, e.value)] + len(again[_key(e.site, e.value)]) == 0
    )


def _title_key(wo: dict[str, Any]) -> str:
    parts = str(wo.get("title", "")).split()
    return f"{parts[0]} {parts[-1]}" if len(parts) >= 3 else str(wo.get("title"))


def check(estate: Estate, episodes: list[Episode]) -> Verdict:
    verdict = Verdict()
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for wo in ours(estate):
        by_key[_title_key(wo)].append(wo)
    episode_keys = {_key(e.site, e.value): e for e in episodes}
    again = reactivations(estate)
    # A work order's priority is the highest of its episode's and of those that commented on
    # it (their escalations raise it).
    want_priority: dict[int, str] = {}
    for episode in episodes:
        for wo_id in again.get(_key(episode.site, episode.value), []):
            have = want_priority.get(wo_id, "NONE")
            if RANK[episode.priority] > RANK[have]:
                want_priority[wo_id] = episode.priority

    def broken(episode: Episode | None, why: str) -> None:
        verdict.problems.append(why)
        if verdict.first_broken is None and episode is not None:
            verdict.first_broken = episode

    for episode in sorted(episodes, key=lambda e: e.raised_at):
        orders = by_key.get(_key(episode.site, episode.value), [])
        comments = again.get(_key(episode.site, episode.value), [])
        if not orders and len(comments) == 1:
            verdict.commented += 1
            verdict.matched += 1
            continue
        if orders and comments:
            broken(
                episode,
                f"{episode.site} episode {episode.n}: a work order and re-activations {comments}",
            )
            continue
        if not episode.seen:
            # Never shown ACTIVE while the harness held it: at most one order, allowed.
            if len(orders) > 1:
                broken(
                    episode, f"{episode.site} episode {episode.n}: {len(orders)} orders (unseen)"
                )
            verdict.unseen_with_order += len(orders)
            continue
        if len(orders) != 1:
            broken(
                episode,
                f"{episode.site} episode {episode.n} ({episode.value}): {len(orders)} work orders",
            )
            continue
        wo = orders[0]
        external = wo.get("externalData") or {}
        expect = {
            "organization (the site's key)": (wo.get("organizationId"), ORGS[episode.site]),
            "asset": (wo.get("assetId"), estate.assets[episode.site]),
            "priority": (
                wo.get("priority"),
                max(episode.priority, want_priority.get(wo["id"], "NONE"), key=RANK.__getitem__),
            ),
            "externalData.site": (external.get("site"), episode.site),
        }
        wrong = [
            f"{what} {got!r} != {want!r}" for what, (got, want) in expect.items() if got != want
        ]
        if not external.get("alert_id"):
            wrong.append("no alert id in externalData")
        if wrong:
            broken(episode, f"{episode.site} episode {episode.n}: " + "; ".join(wrong))
            continue
        verdict.matched += 1
    alert_ids = Counter((wo.get("externalData") or {}).get("alert_id") for wo in ours(estate))
    for alert_id, count in alert_ids.items():
        if count > 1:
            broken(None, f"alert id {alert_id}: {count} work orders")
    for key, orders in by_key.items():
        if key not in episode_keys:
            broken(None, f"work order(s) {[wo['id'] for wo in orders]} match no episode ({key})")

    for site, agent in estate.agents.items():
        sampled = metrics(agent.process.health_port)
        depth = total(sampled, "edge_agent_outbox_depth")
        dead = total(sampled, "edge_agent_outbox_dead_letters")
        if depth:
            broken(None, f"{site}: {depth:.0f} alerts left in the outbox")
        if dead:
            broken(None, f"{site}: {dead:.0f} dead letters (none is explained by a fault)")
    if hub_pending(estate):
        broken(None, f"hub: {hub_pending(estate):.0f} events parked")
    _check_kpis(estate, episodes, broken)
    return verdict


def _check_kpis(estate: Estate, episodes: list[Episode], broken: Any) -> None:
    """With a shared store (PostgreSQL) every replica's KPIs cover all sites' orders. The hub
    re-reads them every 5 s: a mismatch counts only if it lasts KPI_SETTLE_S."""
    if estate.store != "postgres":
        return

    def mismatches() -> list[str]:
        sampled = metrics(estate.hubs["hub1"].health_port)
        found = []
        for site in ("site-a", "site-b"):
            made = sum(1 for wo in ours(estate) if wo.get("organizationId") == ORGS[site])
            kpi = total(sampled, "edge_agent_hub_kpi_work_orders_created", site=site)
            if kpi != made:
                found.append(f"hub KPI work orders created for {site}: {kpi:.0f}, emulator {made}")
        return found

    deadline = time.monotonic() + KPI_SETTLE_S
    while mismatches() and time.monotonic() < deadline:
        time.sleep(1.0)
    for problem in mismatches():
        broken(None, problem)
