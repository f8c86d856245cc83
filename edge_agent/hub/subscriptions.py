"""The hub's MaintainX webhook subscriptions: registered once, listed, pruned.

MaintainX's API has no way to list subscriptions (``POST /subscriptions``,
``GET|PATCH|DELETE /subscriptions/{id}``, ``GET /subscriptions/{id}/secret`` only), so the
hub records the id of every subscription it creates in ``<state_dir>/webhook-subscriptions.json``
(``{site: [{"id", "url"}]}``, mode 0600, no secret in it). ``--register-webhooks`` asks
MaintainX about each recorded id and reuses the one that still points at the site's URL; it
creates a subscription only when none does. ``hub HUB.yaml webhooks list`` shows what each
recorded id is at MaintainX; ``webhooks prune`` deletes the recorded ones that are not the
site's current subscription (duplicates, old URLs) and forgets those MaintainX no longer has.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from edge_agent.common.atomic import read_json_object, write_atomic
from edge_agent.errors import EdgeAgentError
from edge_agent.hub.config import HubConfig
from edge_agent.hub.sites import SiteRuntime
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.errors import MaintainXError

log = logging.getLogger(__name__)

SUBSCRIPTIONS_FILE: Final = "webhook-subscriptions.json"
WEBHOOK_TYPE: Final = "WORK_ORDER_STATUS_CHANGE"
MAX_RECORDED: Final = 100
"""Ids kept per site: more means something keeps creating them; the oldest are dropped."""


class SubscriptionError(EdgeAgentError):
    """No public URL configured, or a site has no usable key."""


@dataclass(frozen=True)
class SubscriptionRow:
    """One recorded subscription as ``webhooks list|prune`` and ``--register-webhooks``
    report it. ``state``: created, reused, current, stale (another URL or a duplicate),
    gone (MaintainX no longer has it), deleted, forgotten, unknown (MaintainX could not be
    asked: the site's key refused, or no answer), failed (``--register-webhooks`` could not
    register it: logged, the hub runs without it)."""

    site: str
    subscription_id: int
    url: str
    state: str


def load_subscriptions(state_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The recorded ids per site (empty when none yet; malformed entries are skipped)."""
    data = read_json_object(state_dir / SUBSCRIPTIONS_FILE)
    out: dict[str, list[dict[str, Any]]] = {}
    for site, entries in data.items():
        if not isinstance(entries, list):
            continue
        out[str(site)] = [
            {"id": e["id"], "url": str(e.get("url", ""))}
            for e in entries
            if isinstance(e, dict)
            and isinstance(e.get("id"), int)
            and not isinstance(e["id"], bool)
            and 0 < e["id"] < 2**63
        ][-MAX_RECORDED:]
    return out


def save_subscriptions(state_dir: Path, data: dict[str, list[dict[str, Any]]]) -> None:
    """Replace the record atomically (mode 0600)."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(state_dir / SUBSCRIPTIONS_FILE, json.dumps(data).encode())


def _base_url(config: HubConfig) -> str:
    if config.webhooks is None or config.webhooks.public_url is None:
        raise SubscriptionError("webhooks need webhooks.public_url in the hub file")
    return config.webhooks.public_url.rstrip("/")


@asynccontextmanager
async def _client(
    config: HubConfig, base_dir: Path, site_id: str
) -> AsyncIterator[MaintainXClient]:
    site = SiteRuntime(site_id, config.sites[site_id], config, base_dir)
    site.open()
    if site.client is None:
        raise SubscriptionError(f"site {site_id}: {site.config_error}")
    try:
        yield site.client
    finally:
        await site.close()


async def register_webhooks(config: HubConfig, base_dir: Path) -> list[SubscriptionRow]:
    """One ``WORK_ORDER_STATUS_CHANGE`` subscription per site at ``{public_url}/{site}``,
    with the site's own key: a recorded one MaintainX still has for that URL is reused,
    otherwise one is created. The secrets are kept in the state directory. A site whose
    key is refused, or a MaintainX that cannot be reached, is logged and reported
    ``failed``; the other sites are registered."""
    base_url = _base_url(config)
    state_dir = config.state_path(base_dir)
    record = load_subscriptions(state_dir)
    rows: list[SubscriptionRow] = []
    for site_id in config.sites:
        url = f"{base_url}/{site_id}"
        try:
            row, kept = await _register_site(config, base_dir, state_dir, record, site_id, url)
        except (SubscriptionError, MaintainXError) as exc:
            # One site's refused key or an unreachable MaintainX must not keep the hub, and
            # with it every other site, from starting: this site waits for the next run.
            log.error(
                "Webhook subscription not registered; the hub runs without it for this site.",
                extra={"site": site_id, "error": str(exc)},
            )
            rows.append(SubscriptionRow(site_id, 0, url, "failed"))
            continue
        rows.append(row)
        record[site_id] = kept
        save_subscriptions(state_dir, record)  # after each site: a crash loses no id
        log.info(
            "Webhook subscription ready.",
            extra={"site": site_id, "subscription_id": row.subscription_id, "state": row.state},
        )
    return rows


async def _register_site(
    config: HubConfig,
    base_dir: Path,
    state_dir: Path,
    record: dict[str, list[dict[str, Any]]],
    site_id: str,
    url: str,
) -> tuple[SubscriptionRow, list[dict[str, Any]]]:
    from edge_agent.hub.webhook_secrets import save_webhook_secret

    async with _client(config, base_dir, site_id) as client:
        kept: list[dict[str, Any]] = []
        reused: int | None = None
        for entry in record.get(site_id, []):
            found = await client.get_subscription(entry["id"])
            if found is None:
                continue  # deleted at MaintainX: forgotten
            kept.append(entry)
            if reused is None and found.get("url") == url and found.get("type") == WEBHOOK_TYPE:
                reused = int(entry["id"])
        if reused is not None:
            # The secret may predate this state directory: fetch it, it is kept once.
            # Never an empty one: anyone could sign with it.
            secret = await client.subscription_secret(reused)
            if secret:
                save_webhook_secret(state_dir, site_id, secret)
            return SubscriptionRow(site_id, reused, url, "reused"), kept
        answer = await client.create_subscription(WEBHOOK_TYPE, url)
        created = int(answer["id"])
        kept.append({"id": created, "url": url})
        if answer.get("secret"):
            save_webhook_secret(state_dir, site_id, str(answer["secret"]))
        return SubscriptionRow(site_id, created, url, "created"), kept


async def list_webhooks(
    config: HubConfig, base_dir: Path, *, prune: bool = False
) -> list[SubscriptionRow]:
    """Every recorded subscription and what MaintainX says of it; with ``prune``, delete the
    stale ones and forget the gone ones."""
    base_url = _base_url(config)
    state_dir = config.state_path(base_dir)
    record = load_subscriptions(state_dir)
    rows: list[SubscriptionRow] = []
    for site_id in config.sites:
        entries = record.get(site_id, [])
        if not entries:
            continue
        url = f"{base_url}/{site_id}"
        try:
            site_rows, kept = await _list_site(config, base_dir, site_id, entries, url, prune)
        except (SubscriptionError, MaintainXError) as exc:
            # One site's refused key must not hide every other site's subscriptions.
            log.warning(
                "Webhook subscriptions of this site could not be checked.",
                extra={"site": site_id, "error": str(exc)},
            )
            rows += [SubscriptionRow(site_id, int(e["id"]), e["url"], "unknown") for e in entries]
            continue
        rows += site_rows
        if prune:
            record[site_id] = kept
            save_subscriptions(state_dir, record)
    return rows


async def _list_site(
    config: HubConfig,
    base_dir: Path,
    site_id: str,
    entries: list[dict[str, Any]],
    url: str,
    prune: bool,
) -> tuple[list[SubscriptionRow], list[dict[str, Any]]]:
    rows: list[SubscriptionRow] = []
    kept: list[dict[str, Any]] = []
    current_seen = False
    async with _client(config, base_dir, site_id) as client:
        for entry in entries:
            found = await client.get_subscription(entry["id"])
            sid = int(entry["id"])
            if found is None:
                rows.append(
                    SubscriptionRow(site_id, sid, entry["url"], "forgotten" if prune else "gone")
                )
                continue
            seen_url = str(found.get("url") or "")
            current = not current_seen and seen_url == url and found.get("type") == WEBHOOK_TYPE
            current_seen |= current
            if current or not prune:
                kept.append(entry)
                rows.append(
                    SubscriptionRow(site_id, sid, seen_url, "current" if current else "stale")
                )
                continue
            await client.delete_subscription(sid)
            rows.append(SubscriptionRow(site_id, sid, seen_url, "deleted"))
    return rows, kept


def rows_table(rows: list[SubscriptionRow]) -> str:
    """``SITE  ID  STATE  URL``, one line per subscription."""
    if not rows:
        return "(no webhook subscriptions recorded; run the hub with --register-webhooks)"
    lines = [("SITE", "ID", "STATE", "URL")] + [
        (r.site, str(r.subscription_id), r.state, r.url) for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line[:3], widths, strict=True)) + "  " + line[3]
        for line in lines
    )
