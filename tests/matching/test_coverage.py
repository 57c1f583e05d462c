"""The coverage solver: optimal on small instances (brute force), feasible always, deterministic
(work limited by counts, not the clock), within a most-chosen count, leaving no value unbought."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from kolmatch.errors import Cancel, Cancelled, InfeasiblePlan
from kolmatch.matching.coverage import (
    CoverageProblem,
    _milp,
    _model,
    _reduce,
    _swaps,
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
    if p.max_chosen is not None and len(chosen) > p.max_chosen:
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


@pytest.mark.parametrize("seed", range(8))
def test_at_most_max_chosen_and_optimal(seed: int) -> None:
    base = _instance(200 + seed, n=10, tiers=2)
    p = CoverageProblem(
        **{**base.__dict__, "budget": float(base.cost.sum()), "max_chosen": 2 + seed % 3}
    )
    sol = solve_coverage(p, rel_gap=0.0)
    assert _feasible(p, sol.chosen) and len(sol.chosen) <= p.max_chosen
    assert sol.objective == pytest.approx(_brute_force(p), rel=1e-9)
    assert _feasible(p, greedy_coverage(p))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_greedy_keeps_room_for_tier_minimums_within_max_chosen(seed: int, most: int) -> None:
    base = _instance(seed, n=8, s=30, tiers=2)
    p = CoverageProblem(
        **{
            **base.__dict__,
            "budget": float(base.cost.sum()),
            "tier_min": np.array([min(1, most), 0]),
            "max_chosen": most,
        }
    )
    if (p.tier == 0).sum() < p.tier_min[0]:
        return
    g = greedy_coverage(p)
    assert _feasible(p, g) and len(g) <= most


def test_tier_minimums_over_max_chosen_say_why() -> None:
    p = CoverageProblem(**{**_instance(3).__dict__, "tier_min": np.array([2, 2]), "max_chosen": 3})
    with pytest.raises(InfeasiblePlan, match="ask for 4 candidates, over the most 3 allowed"):
        solve_coverage(p)


def _hard(
    seed: int = 1, n: int = 400, s: int = 4_000, density: float = 0.01, share: float = 0.05
) -> CoverageProblem:
    """Unit-value coverage, a budget of ``share`` of all costs: HiGHS has to branch."""
    rng = np.random.default_rng(seed)
    reach = sp.csr_matrix(rng.random((n, s)) < density)
    cost = np.round(rng.uniform(1, 10, n), 1)
    return CoverageProblem(
        value=np.zeros(n),
        cost=cost,
        reach=reach,
        user_value=np.ones(s),
        tier=np.zeros(n, dtype=np.int64),
        budget=float(cost.sum() * share),
        tier_min=np.zeros(1, dtype=np.int64),
        tier_max=np.array([n]),
        tier_budget=np.array([np.inf]),
    )


def test_the_node_limit_is_a_deterministic_stop() -> None:
    p = _hard(seed=2, n=80, s=200, density=0.1)  # HiGHS needs 3 nodes to prove it optimal
    a = solve_coverage(p, method="full", node_limit=1, rel_gap=0.0)
    b = solve_coverage(p, method="full", node_limit=1, rel_gap=0.0)
    assert a.stopped == "node limit" and a.nodes >= 1
    assert a.chosen.tolist() == b.chosen.tolist() and a.objective == b.objective
    assert a.bound >= a.objective and _feasible(p, a.chosen)


def test_a_time_limited_answer_says_so() -> None:
    sol = solve_coverage(_hard(n=1_500, s=20_000), method="full", time_limit=0.05, rel_gap=0.0)
    assert sol.stopped == "time limit"


class _CancelledOnRead(Cancel):
    """Cancelled from the ``after``-th time anyone asks, so a test can land inside HiGHS."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.reads = after, 0

    @property
    def cancelled(self) -> bool:
        self.reads += 1
        return self.reads >= self.after


def test_a_cancel_stops_highs_mid_solve() -> None:
    """The token is read only in HiGHS's interrupt callbacks here: the solve stops there and
    the caller gets Cancelled, not a plan."""
    p = _hard(seed=2, n=80, s=200, density=0.1)
    m = _model(p, np.arange(p.n, dtype=np.int64))
    c = _CancelledOnRead(after=3)
    with pytest.raises(Cancelled):
        _milp(m, 100, None, 0.0, cancel=c)
    assert c.reads >= 3
    assert _milp(m, 100, None, 0.0, cancel=Cancel()).chosen is not None


def test_highs_keeps_the_start_it_was_given() -> None:
    """With one node and no time to search, HiGHS answers at least the plan it started from."""
    p = _hard(seed=2, n=80, s=200, density=0.1)
    start = greedy_coverage(p)
    m = _model(p, np.arange(p.n, dtype=np.int64))
    res = _milp(m, 1, None, 0.0, start=start)
    assert res.chosen is not None and _feasible(p, res.chosen)
    assert coverage_objective(p, res.chosen) >= coverage_objective(p, start) - 1e-9
    assert res.dual >= coverage_objective(p, res.chosen) - 1e-6


def test_highs_writes_nothing_to_stdout() -> None:
    """At the file descriptor, in a process of its own: what a pipe from ``plan --json`` gets.
    (highspy 1.16.0 prints a banner there when a solver is made, before any option can
    silence it; pyproject.toml pins 1.15.1, which does not.)"""
    code = (
        "import numpy as np, scipy.sparse as sp\n"
        "from kolmatch.matching.coverage import CoverageProblem, solve_coverage\n"
        "p = CoverageProblem(value=np.array([3.0, 2.0]), cost=np.array([2.0, 2.0]),\n"
        "    reach=sp.csr_matrix((2, 1)), user_value=np.zeros(1), tier=np.array([0, 0]),\n"
        "    budget=3.0, tier_min=np.array([0]), tier_max=np.array([2]),\n"
        "    tier_budget=np.array([np.inf]))\n"
        "solve_coverage(p, method='full')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""


def test_enough_stops_highs_once_its_bound_adds_nothing() -> None:
    """Given a bound above the LP's, HiGHS has nothing left to prove: it stops at the root's
    first bound (the LP's, looser than what it proves with rel_gap 0 alone) with the start.

    Bounds, not node counts: HiGHS 1.15 branched 3 nodes on this instance, 1.16 proves it at
    the root, and both prove a bound below the LP's that a stopped solve does not reach."""
    p = _hard(seed=2, n=80, s=200, density=0.1)
    start = greedy_coverage(p)
    m = _model(p, np.arange(p.n, dtype=np.int64))
    full = _milp(m, 100, None, 0.0, start=start)
    quick = _milp(m, 100, None, 0.0, start=start, enough=full.dual * 2)
    assert quick.nodes <= 1 and quick.nodes <= full.nodes
    assert quick.dual > full.dual * (1 + 1e-6)  # stopped before proving what it could
    assert quick.chosen is not None and _feasible(p, quick.chosen)
    assert coverage_objective(p, quick.chosen) >= coverage_objective(p, start) - 1e-9


def test_no_candidate_that_fits_and_adds_value_is_left(s: int = 300) -> None:
    """A loose MILP gap stops HiGHS early; the answer is completed so no value is left unbought."""
    p = _hard(seed=4, n=120, s=s)
    sol = solve_coverage(p, rel_gap=0.5)
    left = p.budget - p.cost[sol.chosen].sum()
    covered = (p.reach.T @ np.isin(np.arange(p.n), sol.chosen).astype(float)) > 0
    for i in np.setdiff1d(np.arange(p.n), sol.chosen):
        if p.cost[i] <= left:
            new = p.reach[i].indices[~covered[p.reach[i].indices]]
            assert p.value[i] + p.user_value[new].sum() <= 0


def test_greedy_fills_few_slots_with_value_not_cheapness() -> None:
    """Two slots, a loose budget: four cheap candidates with the best value per yuan, two dear
    ones worth 20x more. Value per yuan alone takes two cheap ones (or the best single one);
    pricing slots as well takes the two dear ones, the optimum."""
    users = [1, 1, 1, 1, 39, 39]
    rows = np.repeat(np.arange(6), users)
    reach = sp.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))))
    p = CoverageProblem(
        value=np.zeros(6),
        cost=np.array([1.0, 1, 1, 1, 40, 40]),
        reach=reach,
        user_value=np.full(len(rows), 2.0),
        tier=np.zeros(6, dtype=np.int64),
        budget=100.0,
        tier_min=np.zeros(1, dtype=np.int64),
        tier_max=np.array([6]),
        tier_budget=np.array([np.inf]),
        max_chosen=2,
    )
    g = greedy_coverage(p)
    assert sorted(g.tolist()) == [4, 5]
    assert coverage_objective(p, g) == _brute_force(p) == 156.0


def _limited(seed: int) -> CoverageProblem:
    base = _instance(seed, n=9, s=40, tiers=2)
    return CoverageProblem(
        **{
            **base.__dict__,
            "tier_min": np.array([1, 0]),
            "tier_max": np.array([3, 9]),
            "tier_budget": np.array([np.inf, base.budget * 0.6]),
            "max_chosen": 3,
        }
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_swaps_never_lose_and_keep_every_limit(seed: int) -> None:
    p = _limited(seed)
    try:
        start = greedy_coverage(p)
    except InfeasiblePlan:
        return
    value, shared, w, _ = _reduce(p.value, p.reach, p.user_value)
    after = _swaps(p, value, shared, w, start)
    assert _feasible(p, after)
    assert coverage_objective(p, after) >= coverage_objective(p, start) - 1e-9
    assert coverage_objective(p, after) <= _brute_force(p) + 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_swaps_from_any_one_candidate_reach_the_best_one(seed: int) -> None:
    """With one slot, every plan is one swap from the best: the search must make it."""
    base = _instance(300 + seed)
    p = CoverageProblem(**{**base.__dict__, "budget": float(base.cost.max()), "max_chosen": 1})
    value, shared, w, _ = _reduce(p.value, p.reach, p.user_value)
    for start in range(p.n):
        after = _swaps(p, value, shared, w, np.array([start]))
        assert len(after) == 1
        assert coverage_objective(p, after) == pytest.approx(_brute_force(p), rel=1e-12)


def test_a_start_that_breaks_a_limit_is_returned_unchanged() -> None:
    p = CoverageProblem(**{**_instance(5).__dict__, "max_chosen": 1})
    value, shared, w, _ = _reduce(p.value, p.reach, p.user_value)
    start = np.array([0, 1], dtype=np.int64)
    assert _swaps(p, value, shared, w, start).tolist() == [0, 1]


def test_a_pass_that_breaks_a_tier_minimum_never_wins() -> None:
    """Tier 0 needs two talents within ¥10 of its own: priced by share, the greedy takes the
    ¥9 one first and then cannot afford a second; that plan scores more on what it did not
    buy, and must not be the answer (a review of 747bf67 found it was)."""
    p = CoverageProblem(
        value=np.array([3.0, 3.0, 10.0, 1.0]),
        cost=np.array([2.0, 2.0, 9.0, 1.0]),
        reach=sp.csr_matrix((4, 1)),
        user_value=np.zeros(1),
        tier=np.array([0, 0, 0, 1]),
        budget=100.0,
        tier_min=np.array([2, 0]),
        tier_max=np.array([3, 3]),
        tier_budget=np.array([10.0, np.inf]),
        max_chosen=3,
    )
    assert _feasible(p, greedy_coverage(p))
    sol = solve_coverage(p, rel_gap=0.0)
    assert _feasible(p, sol.chosen)
    assert sol.objective == pytest.approx(_brute_force(p))


def _tiered(seed: int, *, tier_only: bool) -> CoverageProblem:
    """Three tiers with random minimums, budgets (half of them) and ``max_chosen``. With
    ``tier_only`` the total budget never binds, only the tiers' do (at 30% of every fee);
    else tier maximums are random too and tier budgets are 40% of the budget."""
    base = _instance(seed, n=8, s=30, tiers=3)
    rng = np.random.default_rng(seed)
    whole = float(base.cost.sum())
    return CoverageProblem(
        **{
            **base.__dict__,
            "budget": whole if tier_only else base.budget,
            "tier_min": rng.integers(0, 2, 3),
            "tier_max": np.full(3, base.n) if tier_only else rng.integers(1, 4, 3),
            "tier_budget": np.where(
                rng.random(3) < 0.5, whole * 0.3 if tier_only else base.budget * 0.4, np.inf
            ),
            "max_chosen": int(rng.integers(2, 6)),
        }
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_plans_keep_tier_minimums_under_tier_budgets(seed: int) -> None:
    p = _tiered(seed, tier_only=True)
    best = _brute_force(p)
    if not np.isfinite(best):
        return
    sol = solve_coverage(p, rel_gap=0.0)
    assert _feasible(p, sol.chosen)
    assert sol.objective == pytest.approx(best)


def _neighbours(p: CoverageProblem, chosen: list[int]) -> list[list[int]]:
    """Every plan one addition or one swap away from ``chosen``."""
    out = [[*chosen, c] for c in range(p.n) if c not in chosen]
    out += [
        [*(x for x in chosen if x != d), c] for d in chosen for c in range(p.n) if c not in chosen
    ]
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_one_round_makes_the_best_move_there_is(seed: int) -> None:
    """One round of the search against every addition and swap, priced from the raw arrays."""
    p = _tiered(seed, tier_only=False)
    rng = np.random.default_rng(seed + 1)
    plans = [
        list(c)
        for k in range(p.n + 1)
        for c in itertools.combinations(range(p.n), k)
        if _feasible(p, np.array(c, dtype=np.int64))
    ]
    if not plans:
        return
    start = plans[int(rng.integers(len(plans)))]
    now = coverage_objective(p, np.array(start, dtype=np.int64))
    best = max(
        (
            coverage_objective(p, q)
            for q in map(np.array, _neighbours(p, start))
            if _feasible(p, q.astype(np.int64))
        ),
        default=now,
    )
    value, shared, w, _ = _reduce(p.value, p.reach, p.user_value)
    after = _swaps(p, value, shared, w, np.array(start, dtype=np.int64), moves=1)
    assert _feasible(p, after)
    assert coverage_objective(p, after) == pytest.approx(max(best, now), rel=1e-9, abs=1e-9)
