"""Talent matrix plans on a generated market: valid by an independent check, explained, stable."""

from __future__ import annotations

import numpy as np
import pytest

from kolmatch.errors import BadArgument, InfeasiblePlan, UnknownId
from kolmatch.matching.availability import availability, planning_window
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.plan import (
    TIERS,
    TierRule,
    follower_count_plan,
    parse_tiers,
    plan_talent_matrix,
    talent_tiers,
    unique_target_reach,
)
from kolmatch.matching.validate import plan_violations


def _rules(tiers: dict[str, TierRule]) -> dict[str, tuple[int, int | None, float | None]]:
    return {k: (r.min_count, r.max_count, r.max_budget_share) for k, r in tiers.items()}


def _rows(f: MarketFeatures, ids: list[str]) -> np.ndarray:
    return np.array([f.talent_row(t) for t in ids], dtype=np.int64)


@pytest.mark.parametrize("merchant", ["m0", "m7", "m42", "m150"])
def test_plans_pass_the_independent_validator(s_features: MarketFeatures, merchant: str) -> None:
    f = s_features
    budget = float(f.merchant_budget[f.merchant_row(merchant)])
    plan = plan_talent_matrix(f, merchant, budget=budget)
    ids = [t.talent for t in plan.talents]
    assert ids, "a merchant with a budget should get a plan"
    assert plan_violations(f, merchant, ids, budget=budget) == []
    assert plan.cost == pytest.approx(sum(f.talent_fee[f.talent_row(t)] for t in ids))
    assert plan.gap <= 0.01
    assert plan.bound >= plan.objective
    # marginal reach is listed greedily: never increasing down the list
    marg = [t.marginal_reach for t in plan.talents]
    assert marg == sorted(marg, reverse=True)
    assert plan.unique_reach == pytest.approx(sum(marg), abs=len(marg))


def test_tier_mix_is_met_and_checked(s_features: MarketFeatures) -> None:
    f = s_features
    tiers = parse_tiers("top=1,mid=2..4,micro=20%")
    plan = plan_talent_matrix(f, "m3", budget=600_000, tiers=tiers)
    got = [t.tier for t in plan.talents]
    assert got.count("top") == 1 and 2 <= got.count("mid") <= 4
    micro_fees = sum(t.fee for t in plan.talents if t.tier == "micro")
    assert micro_fees <= 0.2 * 600_000
    ids = [t.talent for t in plan.talents]
    assert plan_violations(f, "m3", ids, budget=600_000, tiers=_rules(tiers)) == []
    # and the validator does catch a broken mix
    assert plan_violations(f, "m3", ids, budget=600_000, tiers={"top": (2, 2, None)}) != []


def test_plan_beats_follower_count_on_reach(s_features: MarketFeatures) -> None:
    f = s_features
    plan_reach, naive_reach = [], []
    for m in ["m1", "m5", "m9", "m20", "m33", "m60"]:
        budget = float(f.merchant_budget[f.merchant_row(m)])
        plan = plan_talent_matrix(f, m, budget=budget)
        plan_reach.append(unique_target_reach(f, m, _rows(f, [t.talent for t in plan.talents])))
        naive_reach.append(unique_target_reach(f, m, follower_count_plan(f, m, budget=budget)))
    assert sum(plan_reach) >= 1.2 * sum(naive_reach)


def test_same_inputs_and_seed_give_the_same_plan(s_features: MarketFeatures) -> None:
    a = plan_talent_matrix(s_features, "m11", budget=150_000, seed=3)
    b = plan_talent_matrix(s_features, "m11", budget=150_000, seed=3)
    assert a.talents == b.talents and a.objective == b.objective


def test_campaign_window_excludes_booked_talents(s_features: MarketFeatures) -> None:
    f = s_features
    # a merchant with a campaign in which some talent is booked by one of its competitors
    for m in range(len(f.merchant_ids)):
        for g in f.merchant_campaigns[m].indices:
            cid = str(f.campaign_ids[g])
            av = availability(f, m, planning_window(f, cid, m))
            if av.competitor_booked.any():
                plan = plan_talent_matrix(f, str(f.merchant_ids[m]), budget=300_000, campaign=cid)
                chosen = _rows(f, [t.talent for t in plan.talents])
                assert not av.competitor_booked[chosen].any()
                assert (av.free_slots[chosen] > 0).all()
                assert plan.left_out["booked by a competitor"] == int(
                    (av.competitor_booked & (av.free_slots > 0) & (f.talent_risk < 1)).sum()
                )
                assert plan.window.startswith(f"campaign {cid}")
                return
    pytest.fail("the s market should have a campaign with a competitor booking")


def test_campaign_the_merchant_did_not_join(s_features: MarketFeatures) -> None:
    f = s_features
    m = next(i for i in range(len(f.merchant_ids)) if f.merchant_campaigns[i].nnz < 9)
    g = next(g for g in range(len(f.campaign_ids)) if f.merchant_campaigns[m, g] == 0)
    with pytest.raises(BadArgument, match="has not joined campaign"):
        plan_talent_matrix(f, str(f.merchant_ids[m]), budget=1e5, campaign=str(f.campaign_ids[g]))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"budget": 10.0}, InfeasiblePlan, "fee over the budget"),
        ({"budget": -5.0}, BadArgument, "argument --budget: must be a positive"),
        ({"budget": 5e4, "tiers": {"top": TierRule(1, 1)}}, InfeasiblePlan, "tier top"),
        ({"budget": 1e9, "tiers": {"top": TierRule(9_999, 9_999)}}, InfeasiblePlan, "needed"),
        ({"budget": 1e5, "campaign": "cp-nope"}, UnknownId, "unknown Campaign id 'cp-nope'"),
    ],
)
def test_edge_cases_say_why(
    s_features: MarketFeatures, kwargs: dict[str, object], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        plan_talent_matrix(s_features, "m2", **kwargs)  # type: ignore[arg-type]


def test_unknown_merchant(s_features: MarketFeatures) -> None:
    with pytest.raises(UnknownId, match="unknown Merchant id 'nobody'"):
        plan_talent_matrix(s_features, "nobody", budget=1e5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("top=one", "cannot read 'top=one'"),
        ("giant=1", "unknown tier 'giant'"),
        ("mid=5..2", "empty range"),
        ("micro=150%", "a share must be in"),
    ],
)
def test_bad_tier_text_names_the_part(text: str, message: str) -> None:
    with pytest.raises(BadArgument, match=message):
        parse_tiers(text)


def test_tiers_follow_follower_thresholds(s_features: MarketFeatures) -> None:
    tiers = talent_tiers(s_features)
    followers = s_features.talent_followers
    assert (followers[tiers == TIERS.index("top")] >= 1_000_000).all()
    assert (followers[tiers == TIERS.index("micro")] < 100_000).all()


def test_the_validator_catches_what_a_plan_must_not_do(s_features: MarketFeatures) -> None:
    f = s_features
    excluded = str(f.talent_ids[np.argmax(f.talent_risk >= 1.0)])
    pricey = str(f.talent_ids[np.nanargmax(f.talent_fee)])
    problems = plan_violations(f, "m0", [excluded, pricey, pricey], budget=1_000.0)
    text = " | ".join(problems)
    assert "a talent is chosen twice" in text
    assert f"{excluded} is excluded for compliance" in text
    assert "exceed the budget 1,000" in text
