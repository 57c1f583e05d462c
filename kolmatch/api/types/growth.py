"""The growth programme for internal tools: realised, forecast and booked GMV, who is on track
for ¥15M / ¥1.5M a year, and the pairings that would close the largest gaps."""

from __future__ import annotations

from typing import Any

import graphene

from kolmatch.api.types.common import context, page_size, require_internal
from kolmatch.matching.growth import GrowthReport

__all__ = ["GrowthReportType", "resolve_growth"]


class OwnerGrowthType(graphene.ObjectType):
    class Meta:
        name = "OwnerGrowth"

    id = graphene.ID(required=True)
    last_12_months = graphene.Float(
        required=True, description="realised GMV of the last 12 months of history, yuan"
    )
    forecast_12_months = graphene.Float(
        required=True, description="forecast GMV of the next 12 months, yuan"
    )
    booked_slots = graphene.Int(
        required=True, description="slots booked in coming windows within the next 12 months"
    )
    booked_gmv = graphene.Float(
        required=True,
        description="their expected GMV x (1 - risk), yuan: beside the forecast, not added to it",
    )
    goal = graphene.Float(required=True)
    on_track = graphene.Boolean(
        required=True, description="the larger of forecast and booked GMV reaches the goal"
    )
    gap = graphene.Float(
        required=True, description="goal - the larger of forecast and booked GMV, at least 0"
    )
    basis = graphene.String(
        required=True, description="which one on track and gap used: forecast or booked"
    )


class PairingType(graphene.ObjectType):
    class Meta:
        name = "GrowthPairing"

    merchant = graphene.ID(required=True)
    talent = graphene.ID(required=True)
    expected_gmv = graphene.Float(required=True, description="one collaboration's")
    gap_closed = graphene.Float(required=True)


class BacktestType(graphene.ObjectType):
    class Meta:
        name = "ForecastBacktest"

    holdout = graphene.List(graphene.NonNull(graphene.String), required=True)
    owners = graphene.Int(required=True)
    forecast_wape = graphene.Float(required=True)
    last_year_wape = graphene.Float(required=True)
    forecast_owner_wape = graphene.Float(required=True)
    last_year_owner_wape = graphene.Float(required=True)
    forecast_total_error = graphene.Float(required=True)
    last_year_total_error = graphene.Float(required=True)


class GrowthReportType(graphene.ObjectType):
    class Meta:
        name = "GrowthReport"

    months = graphene.List(
        graphene.NonNull(graphene.String), required=True, description="the history's"
    )
    horizon = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description="the 12 months forecast and booked GMV are of",
    )
    realised_12_months = graphene.Float(
        required=True, description="every merchant's realised GMV of the last 12 months"
    )
    forecast_12_months = graphene.Float(
        required=True, description="every merchant's forecast of the next 12"
    )
    booked_slots = graphene.Int(required=True, description="slots booked within the horizon")
    booked_gmv = graphene.Float(required=True, description="their expected GMV, each slot once")
    later_slots = graphene.Int(
        required=True, description="coming slots starting after the horizon: in no figure"
    )
    merchants_on_track = graphene.Int(required=True)
    talents_on_track = graphene.Int(required=True)
    merchants = graphene.List(
        graphene.NonNull(OwnerGrowthType), required=True, description="on track, then by gap"
    )
    talents = graphene.List(graphene.NonNull(OwnerGrowthType), required=True)
    pairings = graphene.List(graphene.NonNull(PairingType), required=True)
    backtest_merchants = graphene.Field(BacktestType)
    backtest_talents = graphene.Field(BacktestType)
    note = graphene.String(required=True)


def resolve_growth(root: Any, info: Any, first: int) -> dict[str, Any]:
    """Internal tools: the report, with the first ``first`` merchants and talents of each list."""
    ctx = context(info)
    require_internal(ctx, "growth")
    page_size(first, ctx.limits)
    r: GrowthReport = ctx.service.growth(top=first)
    return {**r.__dict__, "merchants": r.merchants[:first], "talents": r.talents[:first]}
