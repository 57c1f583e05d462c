"""Merchant types: public storefront; matches, plans and customer aggregates for the merchant."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import graphene
import numpy as np

from kolmatch.api.errors import PLAN_ARGUMENTS, Forbidden, api_arguments
from kolmatch.api.types.common import (
    PairOverlap,
    ReasonCount,
    RequestContext,
    connection,
    context,
    page_size,
    page_window,
    selects,
    sliced,
)
from kolmatch.api.types.fact import FactSplitType, fact_payload
from kolmatch.api.types.talent import Talent, TalentRef
from kolmatch.engine.jobs import request_work
from kolmatch.errors import BadArgument, LimitExceeded
from kolmatch.matching.availability import availability, planning_window
from kolmatch.matching.eligibility import eligible_talents
from kolmatch.matching.fees import merchant_prices
from kolmatch.matching.plan import MAX_REACH_PAIRS, parse_tiers, plan_talent_matrix
from kolmatch.matching.score import DEFAULT_WEIGHTS, WHY_REASONS, match_merchant, why_not
from kolmatch.matching.target import plan_to_target
from kolmatch.policy import sees_merchant_own

__all__ = ["Match", "Merchant", "MerchantRef", "Plan", "WeightInput", "merchant_ref", "to_match"]


@dataclass(frozen=True)
class MerchantRef:
    id: str
    row: int


def merchant_ref(ctx: RequestContext, merchant_id: str) -> MerchantRef:
    """Raises UnknownId if the graph has no such merchant."""
    return MerchantRef(merchant_id, ctx.snap.features.merchant_row(merchant_id))


def _own(info: Any, m: MerchantRef, what: str) -> RequestContext:
    ctx = context(info)
    if not sees_merchant_own(ctx.principal, m.id):
        raise Forbidden(f"{what} of {m.id} may be seen by that merchant and internal tools only")
    return ctx


def _weights(weights: list[dict[str, Any]] | None) -> dict[str, float]:
    w = {x["signal"]: x["weight"] for x in weights or []}
    unknown = sorted(set(w) - set(DEFAULT_WEIGHTS))
    if unknown:
        raise BadArgument("weights", f"unknown signals {unknown}; known: {sorted(DEFAULT_WEIGHTS)}")
    return w


class WeightInput(graphene.InputObjectType):
    signal = graphene.String(required=True, description=", ".join(DEFAULT_WEIGHTS))
    weight = graphene.Float(required=True)


class SignalValue(graphene.ObjectType):
    signal = graphene.String(required=True)
    value = graphene.Float(required=True)


class Match(graphene.ObjectType):
    talent = graphene.Field(Talent, required=True)
    rank = graphene.Int(required=True)
    score = graphene.Float(required=True)
    breakdown = graphene.List(graphene.NonNull(SignalValue), required=True)
    evidence = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description="what the match rests on, one line each, in the request's language "
        "(Accept-Language: en or zh-CN)",
    )
    price = graphene.Float(
        required=True, description="the talent's list price, or its estimate (priceEstimated)"
    )
    price_estimated = graphene.Boolean(
        required=True, description="no list price is quoted: `price` is an estimate"
    )
    affordable = graphene.Boolean(
        description="price within the list's budget (the merchant's own by default); "
        "null where none is stated"
    )


class WhyNotType(graphene.ObjectType):
    class Meta:
        name = "WhyNot"

    talent = graphene.ID(required=True)
    reason = graphene.String(required=True, description=", ".join(WHY_REASONS))
    detail = graphene.String(
        required=True, description="the reason with its figures, in the request's language"
    )
    rank = graphene.Int(description="its place in the full ranking; null if left out first")
    score = graphene.Float()
    cut_rank = graphene.Int(description="the list's last rank")
    cut_score = graphene.Float(description="the list's last score")
    eligible = graphene.Int(required=True, description="talents in the full ranking")
    price = graphene.Float(required=True)
    price_estimated = graphene.Boolean(required=True)


MatchConnection = connection("Match", Match)


def to_match(ctx: RequestContext, m: Any) -> dict[str, Any]:
    return {
        "talent": TalentRef(m.talent, ctx.snap.features.talent_row(m.talent)),
        "rank": m.rank,
        "score": m.score,
        "breakdown": [{"signal": k, "value": v} for k, v in m.breakdown.items()],
        "evidence": m.evidence,
        "price": m.price,
        "price_estimated": m.price_estimated,
        "affordable": m.affordable,
    }


class PlannedTalent(graphene.ObjectType):
    talent = graphene.Field(Talent, required=True)
    tier = graphene.String(required=True)
    fee = graphene.Float(
        required=True, description="the talent's list price: what this merchant would pay"
    )
    fee_estimated = graphene.Boolean(
        required=True, description="no list price is quoted: `fee` is an estimate (Plan.feeNote)"
    )
    expected_gmv = graphene.Float(required=True)
    marginal_reach = graphene.Int(required=True)
    commission = graphene.Float(
        required=True, description="expected commission: Plan.commissionRate x expectedGmv"
    )
    roi = graphene.Float(
        description="expectedGmv / (fee + commission); null where GMV is not estimated"
    )


class Plan(graphene.ObjectType):
    window = graphene.String(required=True)
    budget = graphene.Float(required=True)
    talents = graphene.List(graphene.NonNull(PlannedTalent), required=True)
    cost = graphene.Float(required=True)
    expected_gmv = graphene.Float(required=True)
    unique_reach = graphene.Int(required=True)
    target_users = graphene.Int(required=True)
    objective = graphene.Float(required=True)
    bound = graphene.Float(required=True)
    gap = graphene.Float(required=True)
    method = graphene.String(required=True)
    seconds = graphene.Float(required=True)
    objective_kind = graphene.String(
        required=True,
        description="what was maximised: gmv (expected GMV + target reach) or target_reach "
        "(unique target users, where the market has no collaboration GMV to learn from)",
    )
    objective_note = graphene.String(required=True, description="one line: what and why")
    estimated_fees = graphene.Int(
        required=True, description="planned talents with an estimated fee"
    )
    fee_note = graphene.String(required=True, description="how fees were estimated, if any were")
    ties = graphene.Int(required=True, description="choices decided among equals by tieBreak")
    tie_break = graphene.String(required=True)
    left_out = graphene.List(graphene.NonNull(ReasonCount), required=True)
    overlaps = graphene.List(
        graphene.NonNull(PairOverlap),
        required=True,
        description="the most overlapping pairs of planned talents (at most 100), most first",
    )
    overlap_pairs = graphene.Int(
        required=True, description="pairs of planned talents that share any audience member"
    )
    commission_rate = graphene.Float(
        required=True, description="the commission the merchant's products offer talents, 0..1"
    )
    commission = graphene.Float(required=True, description="expected commission in all")
    roi = graphene.Float(
        description="expectedGmv / (cost + commission); null where GMV is not estimated"
    )
    min_roi = graphene.Float(
        description="the return floor every planned talent met; null: no floor (a plan "
        "that optimises target reach estimates no return)"
    )
    max_talents = graphene.Int(description="the merchant's most talents; null: unstated")
    unspent = graphene.Float(required=True, description="budget - cost")
    unspent_note = graphene.String(
        required=True, description="how much budget was left and why; empty if none was"
    )
    unspent_reasons = graphene.List(
        graphene.NonNull(ReasonCount),
        required=True,
        description="talents whose fee fits the unspent budget, by why none was bought",
    )
    stopped = graphene.String(
        required=True,
        description="what cut the solver short: empty, `node limit` (the deterministic work "
        "limit) or `time limit`",
    )
    reproducible = graphene.Boolean(
        required=True, description="the same inputs give this same plan on every run"
    )


class TargetPick(graphene.ObjectType):
    talent = graphene.Field(Talent, required=True)
    tier = graphene.String(required=True)
    fee = graphene.Float(required=True, description="list price (or its estimate)")
    fee_estimated = graphene.Boolean(required=True)
    expected_gmv = graphene.Float(required=True)
    new_customers = graphene.Int(required=True)


class TargetPlanType(graphene.ObjectType):
    class Meta:
        name = "TargetPlan"

    window = graphene.String(required=True)
    kind = graphene.String(required=True, description="gmv or new_customers")
    target = graphene.Float(required=True)
    reachable = graphene.Boolean(required=True)
    talents = graphene.List(graphene.NonNull(TargetPick), required=True)
    cost = graphene.Float(required=True)
    achieved = graphene.Float(required=True)
    bound = graphene.Float(required=True, description="no matrix reaching it costs less")
    gap = graphene.Float(required=True)
    max_reachable = graphene.Float()
    candidates = graphene.Int(required=True)
    seconds = graphene.Float(required=True)
    note = graphene.String(required=True)


class Product(graphene.ObjectType):
    id = graphene.ID(required=True)
    price = graphene.Float(required=True)
    category = graphene.String()


class AudienceSummary(graphene.ObjectType):
    buyers = graphene.Int(required=True, description="users who bought its products")
    categories = graphene.List(graphene.NonNull(SignalValue), required=True)


class Merchant(graphene.ObjectType):
    """A store or brand. Matches, plans and customer aggregates are the merchant's own."""

    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    categories = graphene.List(graphene.NonNull(graphene.String), required=True)
    products = graphene.List(
        graphene.NonNull(Product),
        required=True,
        first=graphene.Int(required=True, default_value=20),
    )
    audience_summary = graphene.Field(AudienceSummary)
    matches = graphene.Field(
        MatchConnection,
        first=graphene.Int(required=True, default_value=20),
        after=graphene.String(),
        weights=graphene.List(graphene.NonNull(WeightInput)),
        campaign=graphene.ID(),
        budget=graphene.Float(description="leave out talents priced above it"),
    )
    why_not = graphene.Field(
        WhyNotType,
        talent=graphene.ID(required=True),
        first=graphene.Int(required=True, default_value=20),
        weights=graphene.List(graphene.NonNull(WeightInput)),
        campaign=graphene.ID(),
        budget=graphene.Float(),
        description="why a talent is or is not in this merchant's list of `first`",
    )
    plan_to_target = graphene.Field(
        TargetPlanType,
        target_gmv=graphene.Float(description="yuan of expected GMV to reach"),
        target_new_customers=graphene.Int(description="new customers to reach"),
        tiers=graphene.String(description="e.g. top=1,mid=2..5,micro=30%"),
        campaign=graphene.ID(),
        min_roi=graphene.Float(),
        description="the cheapest matrix whose expected GMV (or new customers reached) meets "
        "a target, certified within 1%; out of reach: the most reachable and its cost",
    )
    fact_split = graphene.Field(
        FactSplitType,
        budget=graphene.Float(required=True, description="yuan: sessions and talents' fees"),
        start=graphene.String(description="first day of the window, YYYY-MM-DD"),
        end=graphene.String(description="last day of the window, YYYY-MM-DD"),
        description="the budget split across Field (its own live room), Alliance, Campaign "
        "and Top-KOL by marginal expected GMV per yuan, with the reasons and each part's plan; "
        "default window: the coming 30 days",
    )
    plan = graphene.Field(
        Plan,
        budget=graphene.Float(required=True),
        tiers=graphene.String(description="e.g. top=1,mid=2..5,micro=30%"),
        campaign=graphene.ID(),
        seed=graphene.Int(required=True, default_value=0),
        min_roi=graphene.Float(
            description="least expected return per talent, net of commission (default 1.0 "
            "where GMV can be estimated; 0: no floor)"
        ),
    )

    @staticmethod
    def resolve_id(m: MerchantRef, info: Any) -> str:
        return m.id

    @staticmethod
    def resolve_name(m: MerchantRef, info: Any) -> str:
        return context(info).snap.merchant_names.get(m.id, m.id)

    @staticmethod
    def resolve_categories(m: MerchantRef, info: Any) -> list[str]:
        f = context(info).snap.features
        mix = f.merchant_mix[m.row]
        return [str(f.category_names[c]) for c in np.argsort(-mix, kind="stable") if mix[c] > 0]

    @staticmethod
    def resolve_products(m: MerchantRef, info: Any, first: int) -> list[dict[str, Any]]:
        ctx = context(info)
        page_size(first, ctx.limits)
        f = ctx.snap.features
        return [
            {
                "id": str(f.product_ids[p]),
                "price": float(f.product_price[p]),
                "category": str(f.category_names[f.product_category[p]])
                if f.product_category[p] >= 0
                else None,
            }
            for p in f.merchant_products[m.row][:first]
        ]

    @staticmethod
    def resolve_audience_summary(m: MerchantRef, info: Any) -> dict[str, Any]:
        ctx = _own(info, m, "customer aggregates")
        f = ctx.snap.features
        buyers = f.merchant_buyers[m.row].indices
        spend = np.asarray(f.user_bought[buyers].sum(axis=0)).ravel()
        total = spend.sum()
        order = np.argsort(-spend, kind="stable")[:5]
        return {
            "buyers": len(buyers),
            "categories": [
                {"signal": str(f.category_names[c]), "value": round(float(spend[c] / total), 4)}
                for c in order
                if total > 0 and spend[c] > 0
            ],
        }

    @staticmethod
    def resolve_matches(
        m: MerchantRef,
        info: Any,
        first: int,
        after: str | None = None,
        weights: list[dict[str, Any]] | None = None,
        campaign: str | None = None,
        budget: float | None = None,
    ) -> dict[str, Any]:
        ctx = _own(info, m, "matches")
        offset, size = page_window(first, after, ctx.limits)
        w = _weights(weights)
        f = ctx.snap.features
        with api_arguments(PLAN_ARGUMENTS):
            ranked = match_merchant(
                f,
                m.id,
                top=offset + size,
                weights=w or None,
                campaign=campaign,
                budget=budget,
                rankings=ctx.snap.lists,
                lang=ctx.lang,
                evidence=selects(info, "evidence"),
            )
            eligible = eligible_talents(f)
            if campaign is not None:
                eligible &= availability(f, m.row, planning_window(f, campaign, m.row)).available
        if budget is not None:
            eligible &= merchant_prices(f).fee <= budget
        items = [to_match(ctx, x) for x in ranked[offset : offset + size]]
        return sliced(items, offset, size, int(eligible.sum()))

    @staticmethod
    def resolve_why_not(
        m: MerchantRef,
        info: Any,
        talent: str,
        first: int,
        weights: list[dict[str, Any]] | None = None,
        campaign: str | None = None,
        budget: float | None = None,
    ) -> dict[str, Any]:
        ctx = _own(info, m, "why-not answers")
        page_size(first, ctx.limits)
        with api_arguments(PLAN_ARGUMENTS):
            w = why_not(
                ctx.snap.features,
                m.id,
                talent,
                top=first,
                weights=_weights(weights) or None,
                campaign=campaign,
                budget=budget,
                lang=ctx.lang,
            )
        return {k: v for k, v in w.__dict__.items() if k != "merchant"}

    @staticmethod
    def resolve_plan_to_target(
        m: MerchantRef,
        info: Any,
        target_gmv: float | None = None,
        target_new_customers: int | None = None,
        tiers: str | None = None,
        campaign: str | None = None,
        min_roi: float | None = None,
    ) -> dict[str, Any]:
        ctx = _own(info, m, "plans")
        f = ctx.snap.features
        work = request_work()
        with api_arguments(PLAN_ARGUMENTS):
            p = work.solvers.run(
                plan_to_target,
                f,
                m.id,
                target_gmv=target_gmv,
                target_new_customers=target_new_customers,
                tiers=parse_tiers(tiers),
                campaign=campaign,
                min_roi=min_roi,
                time_limit=ctx.limits.timeout_s,
                cancel=work.cancel,
            )
        return {
            **{k: v for k, v in asdict(p).items() if k not in ("talents", "left_out")},
            "talents": [
                {**asdict(t), "talent": TalentRef(t.talent, f.talent_row(t.talent))}
                for t in p.talents
            ],
        }

    @staticmethod
    def resolve_fact_split(
        m: MerchantRef,
        info: Any,
        budget: float,
        start: str | None = None,
        end: str | None = None,
    ) -> dict[str, Any]:
        ctx = _own(info, m, "FACT splits")
        # the split names its arguments as the API does (budget, start, end)
        s = ctx.service.fact_split(m.id, budget=budget, start=start, end=end, lang=ctx.lang)
        return fact_payload(ctx, s)

    @staticmethod
    def resolve_plan(
        m: MerchantRef,
        info: Any,
        budget: float,
        tiers: str | None = None,
        campaign: str | None = None,
        seed: int = 0,
        min_roi: float | None = None,
    ) -> dict[str, Any]:
        ctx = _own(info, m, "plans")
        f = ctx.snap.features
        work = request_work()
        try:
            # in a solver process killed at the timeout (HiGHS also reads the token)
            with api_arguments(PLAN_ARGUMENTS):
                p = work.solvers.run(
                    plan_talent_matrix,
                    f,
                    m.id,
                    budget=budget,
                    tiers=parse_tiers(tiers),
                    campaign=campaign,
                    seed=seed,
                    min_roi=min_roi,
                    max_reach=MAX_REACH_PAIRS,
                    cancel=work.cancel,
                )
        except LimitExceeded as exc:  # in the API's words: budget is what the caller sizes
            raise LimitExceeded(
                "budget",
                exc.figure,
                exc.ceiling,
                exc.unit,
                "the size is mostly the market's (its talents, the merchant's target users); "
                "a smaller budget leaves out the talents priced above it",
            ) from None
        return {
            "window": p.window,
            "budget": p.budget,
            "talents": [
                {
                    "talent": TalentRef(t.talent, f.talent_row(t.talent)),
                    "tier": t.tier,
                    "fee": t.fee,
                    "fee_estimated": t.fee_estimated,
                    "expected_gmv": t.expected_gmv,
                    "marginal_reach": t.marginal_reach,
                    "commission": t.commission,
                    "roi": t.roi,
                }
                for t in p.talents
            ],
            "cost": p.cost,
            "expected_gmv": p.expected_gmv,
            "unique_reach": p.unique_reach,
            "target_users": p.target_users,
            "objective": p.objective,
            "bound": p.bound,
            "gap": p.gap,
            "method": p.method,
            "seconds": p.seconds,
            "objective_kind": p.objective_kind,
            "objective_note": p.objective_note,
            "estimated_fees": p.estimated_fees,
            "fee_note": p.fee_note,
            "ties": p.ties,
            "tie_break": p.tie_break,
            "left_out": [{"reason": k, "count": v} for k, v in p.left_out.items()],
            "overlaps": [o.__dict__ for o in p.overlaps],
            "overlap_pairs": p.overlap_pairs,
            "commission_rate": p.commission_rate,
            "commission": p.commission,
            "roi": p.roi,
            "min_roi": p.min_roi,
            "max_talents": p.max_talents,
            "unspent": p.unspent,
            "unspent_note": p.unspent_note,
            "unspent_reasons": [{"reason": k, "count": v} for k, v in p.unspent_reasons.items()],
            "stopped": p.stopped,
            "reproducible": p.reproducible,
        }
