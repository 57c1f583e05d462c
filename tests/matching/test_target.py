"""The cheapest matrix that reaches a target: met, certified within 1%, optimal where checkable."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from kolmatch.errors import BadArgument, InfeasiblePlan
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.plan import TierRule, plan_candidates
from kolmatch.matching.target import TARGET_GAP, plan_to_target
from kolmatch.matching.validate import target_plan_violations

MERCHANTS = ("m0", "m1", "m5")


def _gmv_pool(f: MarketFeatures, merchant: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    c = plan_candidates(f, merchant, budget=None)
    pool = np.nonzero(c.eligible & (c.gmv_all > 0))[0]
    return c.fee[pool], c.gmv_all[pool], c.most


@pytest.mark.parametrize("merchant", MERCHANTS)
@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_a_gmv_target_is_met_at_a_certified_cost(
    s_features: MarketFeatures, merchant: str, share: float
) -> None:
    f = s_features
    fee, gmv, most = _gmv_pool(f, merchant)
    reachable = np.sort(gmv)[::-1][: most or len(gmv)].sum()
    target = share * reachable
    p = plan_to_target(f, merchant, target_gmv=target)
    assert p.reachable and p.kind == "gmv"
    assert p.achieved >= target
    # the independent validator: plannable talents, and their GMV (summed apart) meets it
    est = {t.talent: t.fee for t in p.talents if t.fee_estimated}
    assert (
        target_plan_violations(
            f, merchant, [t.talent for t in p.talents], target_gmv=target, fees=est
        )
        == []
    )
    assert p.cost == pytest.approx(sum(t.fee for t in p.talents))
    # certified: no matrix costs less than the bound, and the plan is within 1% of it
    assert p.bound <= p.cost + 1e-6
    assert p.gap <= TARGET_GAP + 1e-9
    # the bound is at least the LP relaxation's, computed here apart from the solver
    a_ub = [-gmv] + ([np.ones(len(gmv))] if most is not None else [])
    b_ub = [-target] + ([most] if most is not None else [])
    lp = linprog(fee, A_ub=np.vstack(a_ub), b_ub=b_ub, bounds=(0, 1), method="highs")
    assert lp.status == 0
    assert p.bound >= lp.fun - 1e-6 * max(lp.fun, 1)


def test_the_optimum_on_small_markets_is_found_exactly(tiny_features: MarketFeatures) -> None:
    """Every merchant of the tiny market with a handful of candidates: all subsets tried."""
    f = tiny_features
    tried = 0
    for m in map(str, f.merchant_ids):
        try:
            fee, gmv, most = _gmv_pool(f, m)
        except InfeasiblePlan:
            continue
        if not 2 <= len(gmv) <= 12:
            continue
        target = 0.6 * gmv.sum()
        best = np.inf
        for k in range(1, min(most or len(gmv), len(gmv)) + 1):
            for pick in itertools.combinations(range(len(gmv)), k):
                idx = list(pick)
                if gmv[idx].sum() >= target:
                    best = min(best, float(fee[idx].sum()))
        p = plan_to_target(f, m, target_gmv=target)
        if np.isfinite(best):
            assert p.reachable
            assert p.cost <= best * (1 + TARGET_GAP) + 1e-6, m
            assert p.cost >= best - 1e-6, m
        else:
            assert not p.reachable
        tried += 1
    assert tried >= 5


def test_a_target_out_of_reach_says_the_largest_and_its_cost(s_features: MarketFeatures) -> None:
    p = plan_to_target(s_features, "m0", target_gmv=1e12)
    assert not p.reachable
    assert p.max_reachable is not None and p.achieved == pytest.approx(p.max_reachable, rel=1e-6)
    assert "out of reach" in p.note and f"{p.max_reachable:,.0f}" in p.note
    # the budget it needs: a GMV target of what is reachable costs the same
    again = plan_to_target(s_features, "m0", target_gmv=p.achieved * (1 - 1e-9))
    assert again.reachable and again.cost <= p.cost * (1 + TARGET_GAP)


def test_tier_rules_hold_in_a_target_plan(s_features: MarketFeatures) -> None:
    p = plan_to_target(
        s_features,
        "m5",
        target_gmv=5e5,
        tiers={"micro": TierRule(min_count=2), "top": TierRule(max_count=0)},
    )
    tiers = [t.tier for t in p.talents]
    assert tiers.count("micro") >= 2 and "top" not in tiers
    assert p.achieved >= 5e5


def test_new_customers_reached_meet_the_target(s_features: MarketFeatures) -> None:
    p = plan_to_target(s_features, "m5", target_new_customers=2000)
    assert p.reachable and p.kind == "new_customers"
    assert p.achieved >= 2000
    assert p.gap <= TARGET_GAP + 1e-9
    assert all(t.new_customers > 0 for t in p.talents)


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({}, "--target-gmv"),
        ({"target_gmv": 1e5, "target_new_customers": 10}, "--target-gmv"),
        ({"target_gmv": -1.0}, "--target-gmv"),
        ({"target_gmv": float("nan")}, "--target-gmv"),
        ({"target_new_customers": 0}, "--target-new-customers"),
    ],
)
def test_bad_targets_name_the_flag(
    s_features: MarketFeatures, kwargs: dict[str, float], flag: str
) -> None:
    with pytest.raises(BadArgument, match=flag):
        plan_to_target(s_features, "m0", **kwargs)  # type: ignore[arg-type]
