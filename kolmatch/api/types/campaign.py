"""Campaigns and bookings: briefs listed, created (internal tools) and joined (merchants), and
talents booked and released all or nothing."""

from __future__ import annotations

from typing import Any

import graphene

from kolmatch.api.errors import Forbidden
from kolmatch.api.types.common import actor_of, context, write_as
from kolmatch.engine.campaigns import CampaignBrief
from kolmatch.errors import BadArgument, UnknownId
from kolmatch.graph.booking import Booking

__all__ = ["BookTalents", "Campaign", "CreateCampaign", "JoinCampaign", "ReleaseBookings"]


class Campaign(graphene.ObjectType):
    """A platform campaign and its brief. Who joined is internal; a merchant sees whether it
    joined."""

    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    start = graphene.String(required=True)
    end = graphene.String(required=True)
    status = graphene.String(required=True, description="upcoming, running or over")
    goal = graphene.String(description="gmv, new_customers or reach")
    kpi_target = graphene.Float(description="the goal's target: yuan of GMV, or users")
    budget = graphene.Float(description="the platform's budget for the campaign, in yuan")
    categories = graphene.List(graphene.NonNull(graphene.String), required=True)
    products = graphene.List(graphene.NonNull(graphene.ID), required=True)
    joined = graphene.Boolean(description="whether the asking merchant joined (null otherwise)")
    merchants = graphene.List(
        graphene.NonNull(graphene.ID), description="who joined: internal tools only"
    )

    @staticmethod
    def resolve_status(b: CampaignBrief, info: Any) -> str:
        return b.status(context(info).snap.features.today)

    @staticmethod
    def resolve_joined(b: CampaignBrief, info: Any) -> bool | None:
        p = context(info).principal
        return p.id in b.merchants if p.kind == "merchant" else None

    @staticmethod
    def resolve_merchants(b: CampaignBrief, info: Any) -> list[str]:
        if not context(info).principal.internal:
            raise Forbidden("a campaign's merchants are for internal tools only")
        return b.merchants


class CampaignInput(graphene.InputObjectType):
    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    start = graphene.String(required=True, description="first day, YYYY-MM-DD")
    end = graphene.String(required=True, description="last day, YYYY-MM-DD")
    goal = graphene.String(description="gmv, new_customers or reach")
    kpi_target = graphene.Float()
    budget = graphene.Float()
    categories = graphene.List(graphene.NonNull(graphene.ID))
    products = graphene.List(graphene.NonNull(graphene.ID))


class CreateCampaign(graphene.Mutation):
    """Create a campaign with its brief (internal tools)."""

    class Arguments:
        input = CampaignInput(required=True)

    Output = Campaign

    @staticmethod
    def mutate(root: Any, info: Any, input: dict[str, Any]) -> CampaignBrief:
        ctx = context(info)
        write_as(ctx, "createCampaign", input["id"], dict(input))
        ctx.snap = ctx.service.create_campaign(
            campaign_id=input["id"],
            name=input["name"],
            start=input["start"],
            end=input["end"],
            goal=input.get("goal"),
            kpi_target=input.get("kpi_target"),
            budget=input.get("budget"),
            categories=input.get("categories") or (),
            products=input.get("products") or (),
            actor=actor_of(ctx),
        )
        return ctx.snap.campaigns[input["id"]]


def _merchant_of(ctx: Any, merchant_id: str | None, action: str) -> str:
    """The merchant a write is for: a merchant key's own (default), any for internal tools."""
    p = ctx.principal
    if merchant_id is None:
        if p.kind != "merchant":
            raise BadArgument("merchantId", f"internal tools name the merchant to {action} for")
        return str(p.id)
    return merchant_id


class JoinCampaign(graphene.Mutation):
    """A merchant joins a campaign that is not over, putting up some of its products."""

    class Arguments:
        campaign_id = graphene.ID(required=True)
        merchant_id = graphene.ID(description="default: the asking merchant")
        products = graphene.List(graphene.NonNull(graphene.ID))

    Output = Campaign

    @staticmethod
    def mutate(
        root: Any,
        info: Any,
        campaign_id: str,
        merchant_id: str | None = None,
        products: list[str] | None = None,
    ) -> CampaignBrief:
        ctx = context(info)
        m = _merchant_of(ctx, merchant_id, "join")
        sent = {"merchant": m, "products": products or []}
        write_as(ctx, "joinCampaign", campaign_id, sent, merchant=m)
        ctx.snap = ctx.service.join_campaign(
            m, campaign_id, products=products or (), actor=actor_of(ctx)
        )
        return ctx.snap.campaigns[campaign_id]


class BookingResult(graphene.ObjectType):
    booking_ids = graphene.List(
        graphene.NonNull(graphene.ID), required=True, description="one per talent, in order"
    )
    written = graphene.List(
        graphene.NonNull(graphene.ID),
        required=True,
        description="the ids this request wrote (a repeat of an earlier request writes none)",
    )
    start = graphene.String(required=True)
    end = graphene.String(required=True)
    version = graphene.Int(required=True)


class BookTalents(graphene.Mutation):
    """Book talents for a merchant and a window, all or nothing: a plan's talents at once.

    Each talent's free slot and competitors' bookings are checked in the store's
    transaction (CONFLICT, naming each talent refused: nothing booked). ``idempotencyKey`` names the
    request: sent again, nothing is written twice (booking ids are ``<key>-<talent>``).
    """

    class Arguments:
        talents = graphene.List(graphene.NonNull(graphene.ID), required=True)
        idempotency_key = graphene.String(required=True)
        merchant_id = graphene.ID(description="default: the asking merchant")
        campaign = graphene.ID(description="a campaign the merchant joined: its window")
        start = graphene.String(description="first day (without a campaign)")
        end = graphene.String(description="last day (without a campaign)")

    Output = BookingResult

    @staticmethod
    def mutate(
        root: Any,
        info: Any,
        talents: list[str],
        idempotency_key: str,
        merchant_id: str | None = None,
        campaign: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> dict[str, Any]:
        ctx = context(info)
        m = _merchant_of(ctx, merchant_id, "book")
        sent = {"merchant": m, "talents": talents, "campaign": campaign, "start": start, "end": end}
        write_as(ctx, "bookTalents", idempotency_key, sent, merchant=m)
        if not idempotency_key.strip():
            raise BadArgument("idempotencyKey", "must not be empty")
        if len(set(talents)) != len(talents):
            raise BadArgument("talents", "a talent is named twice")
        if campaign is not None:
            brief = ctx.snap.campaigns.get(campaign)
            if brief is None:
                raise UnknownId("Campaign", campaign)
            if m not in brief.merchants:
                raise BadArgument("campaign", f"merchant {m} has not joined campaign {campaign}")
            start, end = brief.start[:10], brief.end[:10]
        elif start is None or end is None:
            raise BadArgument("start", "give a campaign, or start and end days")
        ids = [f"{idempotency_key}-{t}" for t in talents]
        bookings = [
            Booking(i, t, m, start, end, campaign) for i, t in zip(ids, talents, strict=True)
        ]
        ctx.snap, written = ctx.service.book(bookings, actor=actor_of(ctx))
        return {
            "booking_ids": ids,
            "written": written,
            "start": start,
            "end": end,
            "version": ctx.snap.version,
        }


class ReleaseResult(graphene.ObjectType):
    released = graphene.List(graphene.NonNull(graphene.ID), required=True)
    version = graphene.Int(required=True)


class ReleaseBookings(graphene.Mutation):
    """Release bookings: a merchant its own (others' ids are left out, not told), internal
    tools any. A repeat is a no-op."""

    class Arguments:
        ids = graphene.List(graphene.NonNull(graphene.ID), required=True)

    Output = ReleaseResult

    @staticmethod
    def mutate(root: Any, info: Any, ids: list[str]) -> dict[str, Any]:
        ctx = context(info)
        p = ctx.principal
        if not (p.internal or p.kind == "merchant"):
            write_as(ctx, "releaseBookings", None, {"ids": ids})
        merchant = None if p.internal else str(p.id)
        ctx.snap, gone = ctx.service.release(ids, merchant=merchant, actor=actor_of(ctx))
        return {"released": gone, "version": ctx.snap.version}
