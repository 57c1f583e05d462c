"""Campaign briefs as the API and the CLI show them: window, goal, target, budget, categories,
products, and who joined."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from kolmatch.engine.write_rules import checked_amount, checked_id, checked_text
from kolmatch.errors import BadArgument
from kolmatch.graph.booking import iso_day
from kolmatch.graph.market import MarketGraph
from kolmatch.graph.model import CAMPAIGN_GOALS, node_spec

__all__ = ["CampaignBrief", "briefs_of", "checked_brief"]


@dataclass(frozen=True)
class CampaignBrief:
    """One campaign: its window and brief, and the merchants that joined it."""

    id: str
    name: str
    start: str
    end: str
    goal: str | None = None
    kpi_target: float | None = None
    budget: float | None = None
    categories: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    merchants: list[str] = field(default_factory=list)  # who joined (internal tools see it)

    def status(self, today: date) -> str:
        """``upcoming``, ``running`` or ``over`` on ``today``."""
        if today.isoformat() < self.start[:10]:
            return "upcoming"
        return "running" if today.isoformat() <= self.end[:10] else "over"


def _float(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def briefs_of(g: MarketGraph) -> dict[str, CampaignBrief]:
    """Every campaign of a graph read with at least ``CAMPAIGNS_READ``, by id (date order)."""
    c = g.node("Campaign")
    merchants, cats, prods = g.node("Merchant"), g.node("Category"), g.node("Product")
    joined: dict[int, list[str]] = {}
    for m, k in zip(
        g.edge("JOINED", "Merchant").src, g.edge("JOINED", "Merchant").dst, strict=True
    ):
        joined.setdefault(int(k), []).append(str(merchants.ids[m]))
    covers: dict[int, list[str]] = {}
    e = g.edge("COVERS", "Campaign")
    for k, x in zip(e.src, e.dst, strict=True):
        covers.setdefault(int(k), []).append(str(cats.ids[x]))
    products: dict[int, list[str]] = {}
    e = g.edge("IN_CAMPAIGN", "Product")
    for p, k in zip(e.src, e.dst, strict=True):
        products.setdefault(int(k), []).append(str(prods.ids[p]))
    col = c.columns
    out = [
        CampaignBrief(
            id=str(c.ids[i]),
            name=str(col["name"][i]),
            start=str(col["start"][i]),
            end=str(col["end"][i]),
            goal=col["goal"][i] or None,
            kpi_target=_float(col["kpi_target"][i]),
            budget=_float(col["budget"][i]),
            categories=sorted(covers.get(i, [])),
            products=sorted(products.get(i, [])),
            merchants=sorted(joined.get(i, [])),
        )
        for i in range(len(c))
    ]
    return {b.id: b for b in sorted(out, key=lambda b: (b.start, b.id))}


def checked_brief(
    *,
    campaign_id: str,
    name: str,
    start: str,
    end: str,
    goal: str | None,
    kpi_target: float | None,
    budget: float | None,
) -> dict[str, Any]:
    """A new campaign's node row, checked: an id as the import format writes ids, a name,
    a window of ISO days, a known goal, a KPI target and a budget within their Campaign
    fields' ranges (up to :data:`~kolmatch.graph.model.MAX_AMOUNT`, as a load checks them)
    and above 0 (the API's addition: a load takes 0).

    Raises
    ------
    BadArgument
        Naming the argument at fault.

    Examples
    --------
    >>> row = checked_brief(campaign_id="cp9", name="Double 11", start="2026-10-20",
    ...                     end="2026-11-11", goal="gmv", kpi_target=5e6, budget=1e5)
    >>> row["name"], row["goal"], row["budget"]
    ('Double 11', 'gmv', 100000.0)
    >>> checked_brief(campaign_id="cp9", name="x", start="2026-11-11", end="2026-10-20",
    ...               goal=None, kpi_target=None, budget=None)
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument end: 2026-10-20 is before start 2026-11-11
    """
    checked_id(campaign_id, "id")
    checked_text(name, "name")
    iso_day(start, "start")
    iso_day(end, "end")
    if end < start:
        raise BadArgument("end", f"{end} is before start {start}")
    if goal is not None and goal not in CAMPAIGN_GOALS:
        raise BadArgument("goal", f"must be one of {', '.join(CAMPAIGN_GOALS)}, got {goal!r}")
    campaign = node_spec("Campaign")
    for arg, written_to, v in (
        ("kpiTarget", "kpi_target", kpi_target),
        ("budget", "budget", budget),
    ):
        if v is not None:
            checked_amount(v, arg, campaign.field_named(written_to), positive=True)
    return {
        "id": campaign_id,
        "name": name,
        "start": start,
        "end": end,
        "goal": goal,
        "kpi_target": kpi_target,
        "budget": budget,
    }
