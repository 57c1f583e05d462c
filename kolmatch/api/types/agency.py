"""Agency (MCN) types: the roster, its reach and overlap, gaps, communities of talents."""

from __future__ import annotations

from typing import Any

import graphene
import networkx as nx
import numpy as np

from kolmatch.api.errors import Forbidden
from kolmatch.api.types.common import (
    PairOverlap,
    RequestContext,
    connection,
    context,
    page_size,
    page_window,
    sliced,
)
from kolmatch.api.types.talent import Talent, TalentRef
from kolmatch.errors import BadArgument
from kolmatch.matching.audience import pair_overlaps
from kolmatch.matching.backbone import strongest_edges

__all__ = ["Agency", "TalentConnection", "roster_rows"]

TalentConnection = connection("Talent", Talent)

#: Most edges per talent in ``rosterEdges``.
MAX_EDGES_PER_TALENT = 10


def roster_rows(ctx: RequestContext, agency_id: str) -> np.ndarray:
    f = ctx.snap.features
    return np.array(
        sorted(f.talent_row(t) for t in ctx.snap.agency_roster.get(agency_id, [])), dtype=np.int64
    )


def _own(info: Any, agency_id: str, what: str) -> RequestContext:
    ctx = context(info)
    if not ctx.principal.is_agency(agency_id):
        raise Forbidden(f"{what} of {agency_id} may be seen by that agency and internal tools only")
    return ctx


class CategoryGap(graphene.ObjectType):
    category = graphene.String(required=True)
    demand_share = graphene.Float(required=True, description="share of merchants' sales mix")
    roster_share = graphene.Float(required=True, description="share of the roster's content")


class Agency(graphene.ObjectType):
    """An MCN agency. The roster is public; its analytics are the agency's own."""

    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    roster = graphene.Field(
        TalentConnection,
        required=True,
        first=graphene.Int(required=True, default_value=20),
        after=graphene.String(),
    )
    roster_reach = graphene.Int(
        description="distinct audience members (followers or engaged users) of any roster talent"
    )
    roster_overlap = graphene.List(
        graphene.NonNull(PairOverlap), first=graphene.Int(required=True, default_value=10)
    )
    roster_edges = graphene.List(
        graphene.NonNull(PairOverlap),
        per_talent=graphene.Int(required=True, default_value=2),
        description="the roster's overlap network drawn from each talent's `perTalent` "
        "strongest overlaps (by jaccard, 1 to 10), heaviest first",
    )
    category_gaps = graphene.List(
        graphene.NonNull(CategoryGap), first=graphene.Int(required=True, default_value=3)
    )
    communities = graphene.List(
        graphene.NonNull(graphene.List(graphene.NonNull(graphene.ID))),
        description="groups of roster talents sharing audiences (Louvain, seeded)",
    )

    @staticmethod
    def resolve_id(a: str, info: Any) -> str:
        return a

    @staticmethod
    def resolve_name(a: str, info: Any) -> str:
        return context(info).snap.agency_names.get(a, a)

    @staticmethod
    def resolve_roster(a: str, info: Any, first: int, after: str | None = None) -> dict[str, Any]:
        ctx = context(info)
        offset, size = page_window(first, after, ctx.limits)
        ids = sorted(ctx.snap.agency_roster.get(a, []))
        f = ctx.snap.features
        page = [TalentRef(t, f.talent_row(t)) for t in ids[offset : offset + size]]
        return sliced(page, offset, size, len(ids))

    @staticmethod
    def resolve_roster_reach(a: str, info: Any) -> int:
        ctx = _own(info, a, "roster analytics")
        rows = roster_rows(ctx, a)
        if len(rows) == 0:
            return 0
        return int((np.asarray(ctx.snap.features.audience[rows].sum(axis=0)).ravel() > 0).sum())

    @staticmethod
    def resolve_roster_overlap(a: str, info: Any, first: int) -> list[dict[str, Any]]:
        ctx = _own(info, a, "roster analytics")
        rows = roster_rows(ctx, a)
        pairs = _pairs(ctx, rows)
        pairs.sort(key=lambda p: (-p["jaccard"], p["a"], p["b"]))
        return pairs[: page_size(first, ctx.limits)]

    @staticmethod
    def resolve_roster_edges(a: str, info: Any, per_talent: int) -> list[dict[str, Any]]:
        ctx = _own(info, a, "roster analytics")
        if not 1 <= per_talent <= MAX_EDGES_PER_TALENT:
            raise BadArgument(
                "perTalent", f"must be between 1 and {MAX_EDGES_PER_TALENT}, got {per_talent}"
            )
        pairs = _pairs(ctx, roster_rows(ctx, a))
        ends = {t: i for i, t in enumerate(sorted({p[k] for p in pairs for k in ("a", "b")}))}
        keep = strongest_edges(
            np.array([ends[p["a"]] for p in pairs], dtype=np.int64),
            np.array([ends[p["b"]] for p in pairs], dtype=np.int64),
            np.array([p["jaccard"] for p in pairs], dtype=np.float64),
            per_node=per_talent,
        )
        return [pairs[i] for i in keep.tolist()]

    @staticmethod
    def resolve_category_gaps(a: str, info: Any, first: int) -> list[dict[str, Any]]:
        ctx = _own(info, a, "roster analytics")
        f = ctx.snap.features
        rows = roster_rows(ctx, a)
        demand = f.merchant_mix.sum(axis=0)
        demand = demand / max(demand.sum(), 1e-12)
        supply = f.talent_category[rows].sum(axis=0) if len(rows) else np.zeros_like(demand)
        supply = supply / max(supply.sum(), 1e-12)
        order = np.argsort(-(demand - supply), kind="stable")[: page_size(first, ctx.limits)]
        return [
            {
                "category": str(f.category_names[c]),
                "demand_share": round(float(demand[c]), 4),
                "roster_share": round(float(supply[c]), 4),
            }
            for c in order
        ]

    @staticmethod
    def resolve_communities(a: str, info: Any) -> list[list[str]]:
        ctx = _own(info, a, "roster analytics")
        rows = roster_rows(ctx, a)
        g = nx.Graph()
        g.add_nodes_from(str(ctx.snap.features.talent_ids[r]) for r in rows)
        for p in _pairs(ctx, rows):
            g.add_edge(p["a"], p["b"], weight=p["jaccard"])
        groups = nx.community.louvain_communities(g, weight="weight", seed=0)
        return sorted((sorted(c) for c in groups), key=lambda c: (-len(c), c))


def _pairs(ctx: RequestContext, rows: np.ndarray) -> list[dict[str, Any]]:
    ids = ctx.snap.features.talent_ids
    return [
        {
            "a": str(ids[a]),
            "b": str(ids[b]),
            "shared": o.shared,
            "share_of_smaller": round(o.share_of_smaller, 4),
            "jaccard": round(o.jaccard, 4),
        }
        for a, b, o in pair_overlaps(ctx.snap.features.audience, rows)
    ]
