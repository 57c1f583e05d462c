"""The FACT split as the API shows it: per channel the spend, expected GMV, reasons and plan."""

from __future__ import annotations

from typing import Any

import graphene

from kolmatch.api.types.common import ReasonCount, RequestContext
from kolmatch.api.types.talent import Talent, TalentRef
from kolmatch.matching.fact import CHANNELS, FactSplit

__all__ = ["FactChannelType", "FactSplitType", "fact_payload"]


class FactTalentType(graphene.ObjectType):
    class Meta:
        name = "FactTalent"

    talent = graphene.Field(Talent, required=True)
    tier = graphene.String(required=True)
    fee = graphene.Float(
        required=True, description="the talent's list price: what this merchant would pay"
    )
    fee_estimated = graphene.Boolean(
        required=True, description="no list price is quoted: `fee` is an estimate"
    )
    expected_gmv = graphene.Float(
        required=True, description="for this channel (lifted in Campaign)"
    )
    roi = graphene.Float(required=True, description="expectedGmv / (fee + commission)")
    campaign = graphene.ID(description="Campaign: the campaign it is planned for")


class FactUnplannedType(graphene.ObjectType):
    class Meta:
        name = "FactUnplanned"
        description = (
            "why the planner offers a channel no talent, counted as plans count them (a plan's "
            "leftOut)"
        )

    campaign = graphene.ID(
        description="Campaign: whose window; null: the split's own coming period"
    )
    left_out = graphene.List(
        graphene.NonNull(ReasonCount),
        required=True,
        description="talents by the planner's reason, as a plan's leftOut names them",
    )
    cheapest = graphene.Float(
        description="the cheapest eligible talent's list price, where every one is over the budget"
    )
    max_talents = graphene.Int(
        description="the merchant's max_talents, where it is 0: it takes no talent at all"
    )


class FactChannelType(graphene.ObjectType):
    class Meta:
        name = "FactChannel"

    channel = graphene.String(required=True, description=", ".join(CHANNELS))
    spend = graphene.Float(required=True)
    expected_gmv = graphene.Float(required=True)
    roi = graphene.Float(description="expectedGmv / spend; null where nothing is spent")
    marginal_return = graphene.Float(
        required=True, description="expected GMV per yuan of the last step bought (0: none)"
    )
    next_return = graphene.Float(
        required=True, description="expected GMV per yuan of the best step not bought (0: none)"
    )
    reasons = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description="why, with the figures, in the request's language",
    )
    talents = graphene.List(graphene.NonNull(FactTalentType), required=True)
    sessions_added = graphene.Int(required=True, description="Field: sessions to add")
    sessions_now = graphene.Float(
        required=True, description="Field: sessions in the window at the room's current rate"
    )
    session_cost = graphene.Float(required=True, description="Field: yuan per session")
    campaigns = graphene.List(graphene.NonNull(graphene.ID), required=True)
    unplanned = graphene.List(
        graphene.NonNull(FactUnplannedType),
        required=True,
        description="where the planner offers this channel no talent: why (empty otherwise)",
    )


class FactSplitType(graphene.ObjectType):
    class Meta:
        name = "FactSplit"

    window = graphene.String(required=True)
    start = graphene.String(required=True)
    end = graphene.String(required=True)
    budget = graphene.Float(required=True)
    spent = graphene.Float(required=True)
    unspent = graphene.Float(required=True)
    expected_gmv = graphene.Float(required=True)
    floor = graphene.Float(
        required=True, description="least expected GMV per yuan a step had to return"
    )
    campaign_lift = graphene.Float(
        required=True, description="sales in campaign windows against the days around them"
    )
    channels = graphene.List(graphene.NonNull(FactChannelType), required=True)
    reasons = graphene.List(graphene.NonNull(graphene.String), required=True)


def fact_payload(ctx: RequestContext, s: FactSplit) -> dict[str, Any]:
    """The split as the schema's fields, talents as references."""
    f = ctx.snap.features
    return {
        **{k: v for k, v in s.__dict__.items() if k not in ("channels", "merchant")},
        "channels": [
            {
                **{k: v for k, v in c.__dict__.items() if k not in ("talents", "unplanned")},
                "unplanned": [
                    {
                        **u.__dict__,
                        "left_out": [{"reason": k, "count": v} for k, v in u.left_out.items()],
                    }
                    for u in c.unplanned
                ],
                "talents": [
                    {**t.__dict__, "talent": TalentRef(t.talent, f.talent_row(t.talent))}
                    for t in c.talents
                ],
            }
            for c in s.channels
        ],
    }
