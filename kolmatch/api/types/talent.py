"""Talent types: public profile, audience, network; fees and bookings for who may see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import graphene
import numpy as np

from kolmatch.api.errors import Forbidden
from kolmatch.api.types.common import RequestContext, context, page_size
from kolmatch.errors import BadArgument, KolmatchError
from kolmatch.graph.model import AGE_BANDS, GENDERS, tier_of
from kolmatch.matching.audience import overlap, similar_talents
from kolmatch.matching.eligibility import eligible_talents
from kolmatch.matching.talent_side import recommend_merchants
from kolmatch.policy import demographics_visible, sees_private_talent_values

__all__ = ["Talent", "TalentRef", "may_see_private", "talent_ref"]


@dataclass(frozen=True)
class TalentRef:
    """The parent object of every Talent field: an id and its row in the features."""

    id: str
    row: int


def talent_ref(ctx: RequestContext, talent_id: str) -> TalentRef:
    """Raises UnknownId if the graph has no such talent."""
    return TalentRef(talent_id, ctx.snap.features.talent_row(talent_id))


def may_see_private(ctx: RequestContext, talent_id: str) -> bool:
    """Internal tools, and the agency the talent is signed with (kolmatch/policy.py)."""
    p = ctx.principal
    return sees_private_talent_values(p, talent_id, ctx.snap.agency_roster.get(p.id or "", ()))


def _private(info: Any, t: TalentRef, what: str) -> RequestContext:
    ctx = context(info)
    if not may_see_private(ctx, t.id):
        raise Forbidden(f"{what} of {t.id} may be seen by its agency and internal tools only")
    return ctx


class Share(graphene.ObjectType):
    """A value and its share, e.g. a category and the part of an audience interested in it."""

    value = graphene.String(required=True)
    share = graphene.Float(required=True)


class AudienceProfile(graphene.ObjectType):
    size = graphene.Int(
        required=True, description="audience members in the graph: followers and engaged users"
    )
    active_share = graphene.Float(required=True, description="followers that ever engaged")
    categories = graphene.List(graphene.NonNull(Share), required=True)
    genders = graphene.List(graphene.NonNull(Share), required=True)
    age_bands = graphene.List(graphene.NonNull(Share), required=True)


class Overlap(graphene.ObjectType):
    other = graphene.ID(required=True)
    shared = graphene.Int(required=True)
    share_of_smaller = graphene.Float(required=True)
    jaccard = graphene.Float(required=True)


class Booking(graphene.ObjectType):
    merchant = graphene.ID(required=True)
    start = graphene.String(required=True)
    end = graphene.String(required=True)


class CollaborationType(graphene.ObjectType):
    class Meta:
        name = "Collaboration"

    id = graphene.ID(required=True)
    product = graphene.ID(required=True)
    merchant = graphene.ID()
    gmv = graphene.Float(description="null: not known (e.g. a sponsored post)")
    orders = graphene.Int(description="null: not known")
    fee = graphene.Float(description="null: not known")
    time = graphene.String(required=True)
    campaign = graphene.ID()


class MerchantLeadType(graphene.ObjectType):
    class Meta:
        name = "MerchantLead"

    merchant = graphene.ID(required=True)
    merchant_name = graphene.String(
        required=True, description="the merchant's storefront name (public, as Merchant.name)"
    )
    rank = graphene.Int(required=True)
    expected_gmv = graphene.Float(required=True)
    best_product = graphene.ID(required=True)
    roi = graphene.Float(description="expected GMV per yuan of fee; null where not estimable")
    customers_reached = graphene.Int(
        description="the merchant's customers in the talent's audience; internal tools only "
        "(a merchant's customers are its own: docs/api.md Policy)"
    )
    roi_basis = graphene.String(
        required=True,
        description="what roi divides by: here the talent's negotiated fee (its agency sees it)",
    )

    @staticmethod
    def resolve_merchant_name(lead: dict[str, Any], info: Any) -> str:
        merchant = str(lead["merchant"])
        return context(info).snap.merchant_names.get(merchant, merchant)

    @staticmethod
    def resolve_customers_reached(lead: dict[str, Any], info: Any) -> int:
        if context(info).principal.kind != "internal":
            raise Forbidden(
                f"how many of {lead['merchant']}'s customers a talent reaches may be seen by "
                "internal tools only"
            )
        return int(lead["customers_reached"])

    @staticmethod
    def resolve_roi_basis(lead: dict[str, Any], info: Any) -> str:
        return "negotiated fee"


class Talent(graphene.ObjectType):
    """A talent (KOL, creator, live host). Fees, rates, slots and bookings are private.

    Every field that may be refused (FORBIDDEN) is nullable, so that a refusal nulls that
    field alone and the rest of the talent is answered (docs/api.md).
    """

    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    tier = graphene.String(required=True)
    followers = graphene.Float()
    region = graphene.String()
    centrality = graphene.Float(required=True, description="PageRank on the follow graph x T")
    audience = graphene.Field(AudienceProfile, required=True)
    agency = graphene.Field(lambda: _agency_type())
    risk = graphene.Float(required=True)
    risk_flags = graphene.List(graphene.NonNull(graphene.String), required=True)
    excluded = graphene.Boolean(required=True, description="severe or unresolved violations")
    list_price = graphene.Float(description="the talent's public quote (its rate card); null: none")
    fee = graphene.Float()
    commission_rate = graphene.Float()
    capacity = graphene.Int()
    bookings = graphene.List(graphene.NonNull(Booking))
    overlap_with = graphene.List(
        Overlap,
        description="one overlap per id, in order; an unknown id is null at its index with "
        "its own error, and the others are answered",
        ids=graphene.List(graphene.NonNull(graphene.ID), required=True),
    )
    similar = graphene.List(
        graphene.NonNull(lambda: SimilarTalent),
        required=True,
        first=graphene.Int(required=True, default_value=10),
    )
    history = graphene.List(
        graphene.NonNull(CollaborationType),
        required=True,
        first=graphene.Int(required=True, default_value=20),
    )
    collaborators = graphene.List(
        graphene.NonNull(graphene.ID),
        first=graphene.Int(required=True, default_value=20),
    )
    recommended_merchants = graphene.List(
        graphene.NonNull(MerchantLeadType),
        first=graphene.Int(required=True, default_value=10),
    )

    @staticmethod
    def resolve_id(t: TalentRef, info: Any) -> str:
        return t.id

    @staticmethod
    def resolve_name(t: TalentRef, info: Any) -> str:
        return context(info).snap.talent_names.get(t.id, t.id)

    @staticmethod
    def resolve_tier(t: TalentRef, info: Any) -> str:
        return tier_of(int(np.nan_to_num(context(info).snap.features.talent_followers[t.row])))

    @staticmethod
    def resolve_followers(t: TalentRef, info: Any) -> float | None:
        x = float(context(info).snap.features.talent_followers[t.row])
        return None if np.isnan(x) else x

    @staticmethod
    def resolve_region(t: TalentRef, info: Any) -> str | None:
        return context(info).snap.talent_region.get(t.id)

    @staticmethod
    def resolve_centrality(t: TalentRef, info: Any) -> float:
        return round(float(context(info).snap.features.talent_influence[t.row]), 6)

    @staticmethod
    def resolve_audience(t: TalentRef, info: Any) -> dict[str, Any]:
        f = context(info).snap.features
        cats = f.talent_audience[t.row]
        order = np.argsort(-cats, kind="stable")[:5]
        # demographics of a small audience name too few people (kolmatch/policy.py)
        shown = demographics_visible(int(f.audience[t.row].nnz))
        return {
            "size": int(f.audience[t.row].nnz),
            "active_share": round(float(f.talent_active_share[t.row]), 4),
            "categories": [
                {"value": str(f.category_names[c]), "share": round(float(cats[c]), 4)}
                for c in order
                if cats[c] > 0
            ],
            "genders": [
                {"value": g, "share": round(float(s), 4)}
                for g, s in zip(GENDERS, f.talent_gender[t.row], strict=True)
                if shown
            ],
            "age_bands": [
                {"value": a, "share": round(float(s), 4)}
                for a, s in zip(AGE_BANDS, f.talent_age[t.row], strict=True)
                if shown
            ],
        }

    @staticmethod
    def resolve_agency(t: TalentRef, info: Any) -> str | None:
        f = context(info).snap.features
        a = int(f.talent_agency[t.row])
        return None if a < 0 else str(f.agency_ids[a])

    @staticmethod
    def resolve_risk(t: TalentRef, info: Any) -> float:
        return round(float(context(info).snap.features.talent_risk[t.row]), 4)

    @staticmethod
    def resolve_risk_flags(t: TalentRef, info: Any) -> list[str]:
        return list(context(info).snap.features.talent_risk_notes[t.row])

    @staticmethod
    def resolve_excluded(t: TalentRef, info: Any) -> bool:
        return bool(context(info).snap.features.talent_risk[t.row] >= 1.0)

    @staticmethod
    def resolve_list_price(t: TalentRef, info: Any) -> float | None:
        x = float(context(info).snap.features.talent_list_price[t.row])
        return None if np.isnan(x) else x

    @staticmethod
    def resolve_fee(t: TalentRef, info: Any) -> float | None:
        x = float(_private(info, t, "the fee").snap.features.talent_fee[t.row])
        return None if np.isnan(x) else x

    @staticmethod
    def resolve_commission_rate(t: TalentRef, info: Any) -> float | None:
        x = float(_private(info, t, "the commission rate").snap.features.talent_commission[t.row])
        return None if np.isnan(x) else x

    @staticmethod
    def resolve_capacity(t: TalentRef, info: Any) -> int | None:
        x = float(_private(info, t, "the capacity").snap.features.talent_capacity[t.row])
        return None if np.isnan(x) else int(x)

    @staticmethod
    def resolve_bookings(t: TalentRef, info: Any) -> list[dict[str, str]]:
        f = _private(info, t, "the bookings").snap.features
        mine = np.nonzero(f.booking_talent == t.row)[0]
        return [
            {
                "merchant": str(f.merchant_ids[f.booking_merchant[b]]),
                "start": date.fromordinal(int(f.booking_start[b])).isoformat(),
                "end": date.fromordinal(int(f.booking_end[b])).isoformat(),
            }
            for b in mine
        ]

    @staticmethod
    def resolve_overlap_with(
        t: TalentRef, info: Any, ids: list[str]
    ) -> list[dict[str, Any] | KolmatchError]:
        ctx = context(info)
        if len(ids) > ctx.limits.max_page:
            raise BadArgument("ids", f"at most {ctx.limits.max_page} talents, got {len(ids)}")
        f = ctx.snap.features
        out: list[dict[str, Any] | KolmatchError] = []
        for other in ids:
            try:
                row = f.talent_row(other)
            except KolmatchError as exc:  # raised by graphql-core at this item's path alone
                out.append(exc)
                continue
            o = overlap(f.audience, t.row, row)
            out.append(
                {
                    "other": other,
                    "shared": o.shared,
                    "share_of_smaller": round(o.share_of_smaller, 4),
                    "jaccard": round(o.jaccard, 4),
                }
            )
        return out

    @staticmethod
    def resolve_similar(t: TalentRef, info: Any, first: int) -> list[dict[str, Any]]:
        ctx = context(info)
        page_size(first, ctx.limits)
        f = ctx.snap.features
        rows, sims = similar_talents(f.audience, t.row, top=first, eligible=eligible_talents(f))
        ids = f.talent_ids
        return [
            {"talent": TalentRef(str(ids[r]), int(r)), "similarity": round(float(s), 4)}
            for r, s in zip(rows, sims, strict=True)
        ]

    @staticmethod
    def resolve_history(t: TalentRef, info: Any, first: int) -> list[Any]:
        ctx = context(info)
        page_size(first, ctx.limits)
        p = ctx.principal
        items = ctx.snap.history.get(t.id, [])
        if not may_see_private(ctx, t.id):
            # a merchant sees its own collaborations with the talent, no one else's sales
            items = [c for c in items if p.kind == "merchant" and c.merchant == p.id]
        return [
            {
                "id": c.collab_id,
                "product": c.product,
                "merchant": c.merchant,
                "gmv": c.gmv,
                "orders": c.orders,
                "fee": c.fee,
                "time": c.time,
                "campaign": c.campaign,
            }
            for c in items[:first]
        ]

    @staticmethod
    def resolve_collaborators(t: TalentRef, info: Any, first: int) -> list[str]:
        ctx = _private(info, t, "the collaborators")
        page_size(first, ctx.limits)
        merchants = {c.merchant for c in ctx.snap.history.get(t.id, []) if c.merchant}
        others: dict[str, int] = {}
        for tid, items in ctx.snap.history.items():
            if tid != t.id:
                n = sum(1 for c in items if c.merchant in merchants)
                if n:
                    others[tid] = n
        return [k for k, _ in sorted(others.items(), key=lambda kv: (-kv[1], kv[0]))][:first]

    @staticmethod
    def resolve_recommended_merchants(t: TalentRef, info: Any, first: int) -> list[Any]:
        ctx = _private(info, t, "merchant recommendations")
        page_size(first, ctx.limits)
        return [
            {
                "merchant": x.merchant,
                "rank": x.rank,
                "expected_gmv": round(x.expected_gmv, 2),
                "best_product": x.best_product,
                "roi": None if x.roi is None else round(x.roi, 4),
                "customers_reached": x.customers_reached,
            }
            for x in recommend_merchants(ctx.snap.features, [t.id], top=first)
        ]


class SimilarTalent(graphene.ObjectType):
    talent = graphene.Field(Talent, required=True)
    similarity = graphene.Float(required=True)


def _agency_type() -> type[graphene.ObjectType]:
    from kolmatch.api.types.agency import Agency

    return Agency
