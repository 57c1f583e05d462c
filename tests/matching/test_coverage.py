"""The coverage solver: optimal on small instances (brute force), feasible always, deterministic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from kolmatch.errors import InfeasiblePlan
from kolmatch.matching.coverage import (
    CoverageProblem,
    coverage_objective,
    greedy_coverage,
    solve_coverage,
)


def _instance(seed: int, n: int = 9, s: int = 40, tiers: int = 2) -> CoverageProblem:
    rng = np.random.default_rng(seed)
    reach = sp.csr_matrix(rng.random((n, s)) < rng.uniform(0.05, 0.4, (n, 1)))
    cost = np.round(rng.uniform(1, 10, n), 1)
    return CoverageProblem(
        value=np.round(rng.uniform(0, 5, n), 2),
        cost=cost,
        reach=reach,
        user_value=np.round(rng.uniform(0, 2, s), 2),
        tier=rng.integers(0, tiers, n),
        budget=float(np.round(cost.sum() * rng.uniform(0.2, 0.6), 1)),
        tier_min=np.zeros(tiers, dtype=np.int64),
        tier_max=np.full(tiers, n, dtype=np.int64),
        tier_budget=np.full(tiers, np.inf),
    )


def _feasible(p: CoverageProblem, chosen: np.ndarray) -> bool:
    """The constraints, checked from the raw arrays (not from the solver's word)."""
    if len(set(chosen.tolist())) != len(chosen):
        return False
    if p.cost[chosen].sum() > p.budget + 1e-9:
        return False
    for j in range(len(p.tier_min)):
        mine = chosen[p.tier[chosen] == j]
        if not p.tier_min[j] <= len(mine) <= p.tier_max[j]:
            return False
        if p.cost[mine].sum() > p.tier_budget[j] + 1e-9:
            return False
    return True


def _brute_force(p: CoverageProblem) -> float:
    best = -np.inf
    for k in range(p.n + 1):
        for combo in itertools.combinations(range(p.n), k):
            c = np.array(combo, dtype=np.int64)
            if _feasible(p, c):
                best = max(best, coverage_objective(p, c))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_milp_is_optimal_against_brute_force(seed: int) -> None:
    p = _instance(seed)
    sol = solve_coverage(p, rel_gap=0.0)
    assert _feasible(p, sol.chosen)
    assert sol.objective == pytest.approx(coverage_objective(p, sol.chosen))
    assert sol.objective == pytest.approx(_brute_force(p), rel=1e-9)
    assert sol.gap <= 1e-6


@pytest.mark.parametrize("seed", range(6))
def test_tier_counts_and_shares_are_respected_and_optimal(seed: int) -> None:
    base = _instance(100 + seed, n=10, tiers=3)
    p = CoverageProblem(
        **{
            **base.__dict__,
            "budget": float(base.cost.sum() * 0.7),
            "tier_min": np.array([1, 1, 0]),
            "tier_max": np.array([2, 3, 10]),
            "tier_budget": np.array([np.inf, np.inf, base.cost.sum() * 0.2]),
        }
    )
    try:
        best = _brute_force(p)
    except ValueError:
        best = -np.inf
    if not np.isfinite(best):
        with pytest.raises(InfeasiblePlan):
            solve_coverage(p)
        return
    sol = solve_coverage(p, rel_gap=0.0)
    assert _feasible(p, sol.chosen)
    assert sol.objective == pytest.approx(best, rel=1e-9)
    assert _feasible(p, greedy_coverage(p))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_greedy_is_always_feasible_and_never_beats_the_optimum(seed: int) -> None:
    p = _instance(seed, n=8, s=30)
    g = greedy_coverage(p)
    assert _feasible(p, g)
    assert coverage_objective(p, g) <= _brute_force(p) + 1e-9


def test_a_user_reached_three_times_counts_once() -> None:
    reach = sp.csr_matrix(np.ones((3, 1)))
    p = CoverageProblem(
        np.zeros(3),
        np.ones(3),
        reach,
        np.array([5.0]),
        np.zeros(3, dtype=np.int64),
        3.0,
        np.zeros(1, dtype=np.int64),
        np.array([3]),
        np.array([np.inf]),
    )
    assert coverage_objective(p, np.array([0, 1, 2])) == 5.0
    assert len(solve_coverage(p).chosen) >= 1


def test_same_inputs_same_plan() -> None:
    p = _instance(7, n=60, s=2_000)
    a, b = solve_coverage(p), solve_coverage(p)
    assert a.chosen.tolist() == b.chosen.tolist()
    assert a.objective == b.objective


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budget": 0.5}, "below the cheapest candidate's cost"),
        ({"tier_min": np.array([20, 0]), "tier_max": np.array([30, 9])}, "20 needed but only"),
        ({"tier_min": np.array([3, 0]), "tier_max": np.array([2, 9])}, "at least 3 but at most 2"),
    ],
)
def test_infeasible_instances_say_why(change: dict[str, object], message: str) -> None:
    p = CoverageProblem(**{**_instance(3).__dict__, **change})
    with pytest.raises(InfeasiblePlan, match=message):
        solve_coverage(p)


def test_no_candidates() -> None:
    p = CoverageProblem(
        np.zeros(0),
        np.zeros(0),
        sp.csr_matrix((0, 5)),
        np.ones(5),
        np.zeros(0, dtype=np.int64),
        10.0,
        np.zeros(1, dtype=np.int64),
        np.array([0]),
        np.array([np.inf]),
    )
    with pytest.raises(InfeasiblePlan, match="no candidates"):
        solve_coverage(p)
