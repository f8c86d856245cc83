"""Maintenance KPIs from what the hub recorded: per site and asset, alerts raised, work
orders created, open backlog, mean time to repair (created → DONE, from the webhooks), and
from the alarm lifecycle (issue 13, :mod:`edge_agent.hub.store_lifecycle`) the first-time-fix
rate (repairs verified without a reopen / all verified or reopened) and the mean time to
normal (alarm raised → returned to normal).

Computed by the store (:meth:`HubStore.kpis`); this module only presents them, as a table
for people or JSON for scripts (``edge-agent hub HUB.yaml kpis [--json]``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from edge_agent.hub.store import KpiRow


def kpis_json(rows: Sequence[KpiRow]) -> str:
    """``{"kpis": [{"site", "asset", "alerts_raised", ..., "mttr_s", "repairs_judged",
    "first_time_fixes", "first_time_fix_rate", "time_to_normal_s"}]}``."""
    return json.dumps({"kpis": [asdict(row) for row in rows]}, indent=2)


def duration_cell(seconds: float | None) -> str:
    """A KPI table's duration: ``90s``, ``12.5m``, ``3.2h``; ``-`` when there is none."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _rate(first: int, judged: int) -> str:
    """``75% (3/4)``: first-time fixes of the repairs judged; ``-`` before any."""
    if not judged:
        return "-"
    return f"{100 * first / judged:.0f}% ({first}/{judged})"


def kpis_table(rows: Sequence[KpiRow]) -> str:
    """A plain text table, one line per (site, asset)."""
    header = (
        "SITE",
        "ASSET",
        "ALERTS",
        "WORK ORDERS",
        "OPEN",
        "DONE",
        "MTTR",
        "FIRST FIX",
        "TO NORMAL",
    )
    lines = [
        (
            row.site,
            row.asset or "-",
            str(row.alerts_raised),
            str(row.work_orders_created),
            str(row.open_backlog),
            str(row.work_orders_done),
            duration_cell(row.mttr_s),
            _rate(row.first_time_fixes, row.repairs_judged),
            duration_cell(row.time_to_normal_s),
        )
        for row in rows
    ]
    widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    if not lines:
        out.append("(no alerts recorded yet)")
    return "\n".join(out)
