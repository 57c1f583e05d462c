"""The growth programme for internal tools: who is on track for ¥15M / ¥1.5M a year, and the
pairings that would close the largest gaps."""

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
    last_12_months = graphene.Float(required=True, description="realised GMV, yuan")
    forecast_12_months = graphene.Float(required=True, description="forecast GMV, yuan")
    goal = graphene.Float(required=True)
    on_track = graphene.Boolean(required=True)
    gap = graphene.Float(required=True, description="goal - forecast, at least 0")


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

    months = graphene.List(graphene.NonNull(graphene.String), required=True)
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
