"""Campaigns and bookings: briefs listed, created (internal tools) and joined (merchants), and
talents booked and released all or nothing."""

from __future__ import annotations

from typing import Any

import graphene

from kolmatch.api.errors import (
    BOOKING_ARGUMENTS,
    CAMPAIGN_ARGUMENTS,
    Forbidden,
    api_arguments,
)
from kolmatch.api.types.common import actor_of, context, write_as
from kolmatch.engine.campaigns import CampaignBrief
from kolmatch.errors import BadArgument

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
    products = graphene.List(
        graphene.NonNull(graphene.ID),
        required=True,
        description="the products put up for it: internal tools see all, a merchant its own",
    )
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
    def resolve_products(b: CampaignBrief, info: Any) -> list[str]:
        # whose products they are would tell who joined: a merchant sees its own
        ctx = context(info)
        if ctx.principal.internal:
            return b.products
        owner = ctx.snap.product_merchant
        return [p for p in b.products if ctx.principal.is_merchant(owner.get(p) or "")]

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
        with api_arguments(CAMPAIGN_ARGUMENTS):
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
    request: sent again, nothing is written twice (booking ids are
    ``<merchant>/<key>/<talent>``).
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
        with api_arguments(BOOKING_ARGUMENTS):
            done = ctx.service.book_talents(
                m,
                talents,
                idempotency_key,
                campaign=campaign,
                start=start,
                end=end,
                actor=actor_of(ctx),
            )
        ctx.snap = done.snapshot
        return {
            "booking_ids": done.booking_ids,
            "written": done.written,
            "start": done.start,
            "end": done.end,
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
