"""Market assignment: optimal on small instances, exact flow agrees, limits never broken."""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch import progress
from kolmatch.errors import BadArgument
from kolmatch.matching.assign import (
    AssignmentProblem,
    assign_by_flow,
    build_assignment,
    solve_assignment,
    value_bound,
)
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.lagrangian import solve_assignment_lagrangian
from kolmatch.matching.market import assign_market
from kolmatch.matching.score import expected_gmv
from kolmatch.matching.validate import assignment_violations


def _problem(seed: int, M: int = 3, T: int = 4, density: float = 0.8) -> AssignmentProblem:
    rng = np.random.default_rng(seed)
    pairs = [(m, t) for m in range(M) for t in range(T) if rng.random() < density]
    pm = np.array([m for m, _ in pairs], dtype=np.int64)
    pt = np.array([t for _, t in pairs], dtype=np.int64)
    fee = rng.uniform(1, 5, T)
    conflicts = [
        (i, j)
        for i, j in itertools.combinations(range(len(pairs)), 2)
        if pt[i] == pt[j] and {pm[i], pm[j]} == {0, 1}
    ]
    groups = sp.csr_matrix(
        np.array([[1.0 if (pm[i] == 2 and pt[i] < 3) else 0.0 for i in range(len(pairs))]])
    )
    return AssignmentProblem(
        pair_merchant=pm,
        pair_talent=pt,
        value=np.round(rng.uniform(0, 10, len(pairs)), 2),
        cost=fee[pt],
        talent_capacity=rng.integers(1, 3, T),
        merchant_budget=rng.uniform(4, 10, M),
        merchant_min=np.array([1, 0, 0]),
        merchant_max=rng.integers(1, 4, M),
        conflicts=np.array(conflicts, dtype=np.int64).reshape(-1, 2),
        groups=groups,
        group_cap=np.array([1]),
    )


def _feasible(p: AssignmentProblem, x: np.ndarray, *, mins: bool = True) -> bool:
    """Every limit, checked from the raw arrays."""
    M, T = len(p.merchant_max), len(p.talent_capacity)
    if (np.bincount(p.pair_talent[x], minlength=T) > p.talent_capacity).any():
        return False
    count = np.bincount(p.pair_merchant[x], minlength=M)
    if (count > p.merchant_max).any() or (mins and (count < p.merchant_min).any()):
        return False
    spend = np.bincount(p.pair_merchant[x], weights=p.cost[x], minlength=M)
    if (spend > p.merchant_budget + 1e-9).any():
        return False
    if any(x[a] and x[b] for a, b in p.conflicts):
        return False
    return not (p.groups is not None and (p.groups @ x.astype(float) > p.group_cap).any())


def _brute_force(p: AssignmentProblem) -> float:
    best = -np.inf
    for bits in itertools.product([False, True], repeat=p.n_pairs):
        x = np.array(bits, dtype=bool)
        if _feasible(p, x):
            best = max(best, float(p.value[x].sum()))
    return best


@pytest.mark.parametrize("seed", range(10))
def test_milp_is_optimal_against_brute_force(seed: int) -> None:
    p = _problem(seed)
    best = _brute_force(p)
    sol = solve_assignment(p, rel_gap=0.0)
    if np.isfinite(best):
        assert not sol.minimums_relaxed
        assert _feasible(p, sol.chosen)
        assert sol.objective == pytest.approx(best, rel=1e-9)
        assert sol.gap <= 1e-6
    else:  # the minimum cannot be met: dropped, said, and the rest still optimal
        assert sol.minimums_relaxed
        assert _feasible(p, sol.chosen, mins=False)


@pytest.mark.parametrize("seed", range(8))
def test_flow_and_milp_agree_when_only_capacities_bind(seed: int) -> None:
    base = _problem(100 + seed, M=6, T=8, density=0.6)
    p = replace(
        base,
        merchant_budget=np.full(6, np.inf),
        merchant_min=np.zeros(6, dtype=np.int64),
        conflicts=np.zeros((0, 2), dtype=np.int64),
        groups=None,
        group_cap=np.zeros(0, dtype=np.int64),
    )
    assert p.capacity_only
    a, b = solve_assignment(p, rel_gap=0.0), assign_by_flow(p)
    assert _feasible(p, b.chosen)
    assert a.objective == pytest.approx(b.objective, abs=0.01 * p.n_pairs)


@pytest.mark.parametrize("seed", range(10))
def test_lagrangian_bound_and_plan_bracket_the_optimum(seed: int) -> None:
    p = replace(_problem(seed), merchant_min=np.zeros(3, dtype=np.int64))
    best = _brute_force(p)
    sol = solve_assignment_lagrangian(p, target_gap=0.0, iterations=300)
    assert _feasible(p, sol.chosen)
    assert sol.objective <= best + 1e-9 <= sol.bound + 1e-6
    assert sol.objective == pytest.approx(float(p.value[sol.chosen].sum()))


def test_lagrangian_reports_its_iterations() -> None:
    class Ticking:  # one second a reading: every iteration is "due" for a line
        now = 0.0

        def __call__(self) -> float:
            self.now += 1.0
            return self.now

    out = io.StringIO()
    p = replace(_problem(0), merchant_min=np.zeros(3, dtype=np.int64))
    with progress.using(progress.Reporter(out, tty=False, clock=Ticking(), ticker=False)):
        solve_assignment_lagrangian(p, target_gap=0.0, iterations=40)
    lines = out.getvalue().splitlines()
    counted = [ln for ln in lines if "Lagrangian): " in ln and "/40 iterations" in ln]
    assert counted, lines
    done = [int(re.search(r"(\d+)/40 iterations", ln).group(1)) for ln in counted]  # type: ignore[union-attr]
    assert all(1 <= k <= 40 for k in done) and done == sorted(done)
    assert re.search(r"Lagrangian\): done \d+ iterations in", lines[-1])


def test_lagrangian_and_milp_agree_on_the_s_market(s_features: MarketFeatures) -> None:
    p, _, _ = build_assignment(s_features, candidates=10)
    p = replace(p, merchant_min=np.zeros_like(p.merchant_min))
    exact = solve_assignment(p, time_limit=30, rel_gap=1e-4)
    lag = solve_assignment_lagrangian(p, time_limit=30)
    assert lag.bound >= exact.objective - 1e-6 * exact.objective
    assert lag.objective >= (1 - 0.01) * exact.objective
    # the certified (dual) gap: 0.97% before follows joined the audience, 1.07% after (the
    # values changed, not the solver); the found objective is held to 1% of the optimum above
    assert lag.gap <= 0.015


def test_flow_refuses_problems_it_cannot_solve() -> None:
    with pytest.raises(BadArgument, match="flow applies only"):
        assign_by_flow(_problem(1))


def test_market_assignment_passes_the_independent_validator(s_features: MarketFeatures) -> None:
    f = s_features
    a = assign_market(f, candidates=10, time_limit=20)
    pairs = [(m, t) for m, t, _, _ in a.pairs]
    assert pairs and a.gap <= 0.01 and a.method == "milp"
    assert assignment_violations(f, pairs, agency_cap=3) == []
    assert a.blocking_pairs is not None and a.blocking_pairs >= 0
    assert a.objective == pytest.approx(sum(v for _, _, v, _ in a.pairs), rel=1e-6)


def test_candidates_are_eligible(s_features: MarketFeatures) -> None:
    f = s_features
    p, window, left_out = build_assignment(f, candidates=5)
    assert (f.talent_risk[p.pair_talent] < 1).all()
    assert (f.merchant_risk[p.pair_merchant] < 1).all()
    assert (np.bincount(p.pair_merchant) <= 5).all()
    assert left_out.get("compliance", 0) == int((f.merchant_risk >= 1).sum())
    assert str(window).startswith("the coming period")


def test_no_candidate_returns_less_than_it_costs(s_features: MarketFeatures) -> None:
    """The floor a plan has: a pair's value returns its fee plus the commission on that value
    (a user trial found 54 of 878 assigned pairs below their fee, e.g. 8,399 of value for a
    fee of 84,480). With no floor (0) such pairs are candidates again; a merchant whose every
    talent falls below it is left out, and said why; a bad floor is refused."""
    f = s_features
    commission = np.clip(np.nan_to_num(f.merchant_commission), 0.0, 1.0)

    def returns(p: AssignmentProblem) -> np.ndarray:
        cost = p.cost + commission[p.pair_merchant] * p.value
        return p.value / cost

    p, _, _ = build_assignment(f, candidates=10)
    assert len(p.value) and (returns(p) >= 1.0).all()
    loose, _, _ = build_assignment(f, candidates=10, min_roi=0.0)
    assert (returns(loose) < 1.0).any()  # (the floor bites on this market)
    high, _, left_out = build_assignment(f, candidates=10, min_roi=1e9)
    assert len(high.value) == 0 and left_out["return below the floor"] > 0
    a = assign_market(f, candidates=10, time_limit=20)
    row_m = {m: i for i, m in enumerate(f.merchant_ids.tolist())}
    row_t = {t: i for i, t in enumerate(f.talent_ids.tolist())}
    assert a.pairs and all(
        v >= f.talent_fee[row_t[t]] + commission[row_m[m]] * v for m, t, v, _ in a.pairs
    )
    for bad in (-1.0, float("nan")):
        with pytest.raises(BadArgument, match="min_roi"):
            build_assignment(f, min_roi=bad)


def test_the_value_bound_holds_with_products_in_two_categories(
    s_features: MarketFeatures,
) -> None:
    """Every product also in a second category (most of its weight there): each talent's
    value bound, by which the candidates' exact values are computed for the promising ones
    only, is at least its expected GMV for every merchant's products, and the candidates
    chosen with that pruning (a chunk of 8 evaluated first) are those every talent's exact
    value gives. A bound over the products' first categories alone fell short for talents
    whose audience leans to a second one."""
    f = s_features
    C = len(f.category_names)
    first = np.maximum(f.product_category, 0)
    two = np.zeros_like(f.product_categories)
    two[np.arange(len(first)), first] = 0.05
    two[np.arange(len(first)), (first + 7) % C] += 0.95
    f = replace(f, product_categories=two)
    rows = np.arange(f.n_talents)
    short = 0
    for m in range(0, len(f.merchant_ids), 7):
        prods = f.merchant_products[m]
        if len(prods):
            gmv, _ = expected_gmv(f, rows, prods)
            short += int((value_bound(f, rows, prods) < gmv).sum())
    assert short == 0
    exact, _, _ = build_assignment(f, candidates=6)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("kolmatch.matching.assign.CHUNK", 8)
        pruned, _, _ = build_assignment(f, candidates=6)
    assert np.array_equal(pruned.pair_merchant, exact.pair_merchant)
    assert np.array_equal(pruned.pair_talent, exact.pair_talent)
    np.testing.assert_array_equal(pruned.value, exact.value)


@pytest.mark.parametrize("method", ["milp", "lagrangian"])
def test_same_inputs_same_assignment(s_features: MarketFeatures, method: str) -> None:
    a = assign_market(s_features, candidates=5, time_limit=20, method=method)
    b = assign_market(s_features, candidates=5, time_limit=20, method=method)
    assert a.pairs == b.pairs
    assert assignment_violations(s_features, [(m, t) for m, t, _, _ in a.pairs], agency_cap=3) == []


def test_stable_option_has_no_blocking_pairs_and_keeps_limits(s_features: MarketFeatures) -> None:
    f = s_features
    for proposing in ("merchants", "talents"):
        a = assign_market(f, candidates=10, method="stable", proposing=proposing)
        assert a.blocking_pairs == 0
        pairs = [(m, t) for m, t, _, _ in a.pairs]
        # budgets, slots, competitors and most talents hold; the agency cap is not modelled
        assert assignment_violations(f, pairs) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"candidates": 0}, "--candidates: must be at least 1"),
        ({"agency_cap": 0}, "--agency-cap: must be at least 1"),
        ({"method": "lottery"}, "--method: must be one of auto, milp, lagrangian, stable"),
        ({"method": "lagrangian", "candidates": 20}, "--candidates: the lagrangian method"),
    ],
)
def test_bad_arguments(s_features: MarketFeatures, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(BadArgument, match=message):
        assign_market(s_features, **kwargs)  # type: ignore[arg-type]


def _with_refusals(f: MarketFeatures) -> tuple[MarketFeatures, int, int, int]:
    """``f`` with a merchant and a talent excluded, and another merchant's products all flagged."""
    t = int(np.argmax(f.talent_risk < 1))
    bad_m, flagged_m = 0, 1
    m_risk, t_risk, p_risk = f.merchant_risk.copy(), f.talent_risk.copy(), f.product_risk.copy()
    m_risk[bad_m] = 1.0
    t_risk[t] = 1.0
    p_risk[f.merchant_products[flagged_m]] = 1.0
    g = replace(f, merchant_risk=m_risk, talent_risk=t_risk, product_risk=p_risk)
    return g, bad_m, flagged_m, t


@pytest.mark.parametrize("method", ["milp", "lagrangian", "stable"])
def test_every_method_assigns_only_eligible_merchants_talents_and_products(
    tiny_features: MarketFeatures, method: str
) -> None:
    f, bad_m, flagged_m, bad_t = _with_refusals(tiny_features)
    a = assign_market(f, candidates=5, method=method, time_limit=20)
    assert a.pairs
    merchants = {m for m, _, _, _ in a.pairs}
    talents = {t for _, t, _, _ in a.pairs}
    assert str(f.merchant_ids[bad_m]) not in merchants
    assert str(f.merchant_ids[flagged_m]) not in merchants
    assert str(f.talent_ids[bad_t]) not in talents
    assert (f.talent_risk[[f.talent_row(t) for t in talents]] < 1).all()
    assert a.left_out_merchants.get("compliance") == 1
    assert a.left_out_merchants.get("no eligible products") == 1


@pytest.mark.parametrize("method", ["milp", "lagrangian", "stable"])
def test_a_campaign_assigns_only_the_merchants_that_joined_it(
    tiny_features: MarketFeatures, method: str
) -> None:
    f = tiny_features
    joined = np.asarray(f.merchant_campaigns.sum(axis=0)).ravel()
    g = int(np.argmax(joined))
    cid = str(f.campaign_ids[g])
    members = set(f.merchant_ids[f.merchant_campaigns[:, g].toarray().ravel() > 0].tolist())
    assert 0 < len(members) < len(f.merchant_ids)
    a = assign_market(f, candidates=5, campaign=cid, method=method, time_limit=20)
    assert a.pairs and {m for m, _, _, _ in a.pairs} <= members
    assert a.left_out_merchants["not in the campaign"] == len(f.merchant_ids) - len(members)
    assert set(a.merchants_below_minimum) <= members  # the others take no part
    p, _, _ = build_assignment(f, candidates=5, campaign=cid)
    assert set(f.merchant_ids[np.unique(p.pair_merchant)].tolist()) <= members
