"""The cheapest talent matrix that reaches a target: expected GMV, or new customers reached.

The question merchants ask is not "what does ¥X buy?" (:func:`~kolmatch.matching.plan.
plan_talent_matrix`) but "what is the least I must spend to reach ¥X of GMV (or N new
customers)?". Both are mixed-integer programmes over the same candidates as the budget plan
(:func:`~kolmatch.matching.plan.plan_candidates`: compliance, free slots net of bookings,
competitors' bookings, a price, the return floor), solved by HiGHS to a certified gap:

- **GMV**: minimise the fees of the chosen talents such that their expected GMV x (1 - risk)
  sums to at least the target, under the tier rules and the merchant's ``max_talents``. GMV
  adds up across talents in expectation (the plan's expected GMV is the same sum), so the
  programme is a covering knapsack.
- **New customers**: target users who have not bought from the merchant, reached by at least
  one chosen talent (reach, not conversion: the market holds no per-user conversion model),
  counted on a seeded sample of them and scaled. Minimise fees such that the reached count
  meets the target (a set-cover programme with one variable per sampled user).

When the target is out of reach the answer says so, with the largest reachable target and
the least budget that reaches it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, milp

from kolmatch.errors import BadArgument, Cancel, InfeasiblePlan, check_cancel
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.plan import (
    TIERS,
    Candidates,
    TierRule,
    plan_candidates,
)

__all__ = ["TARGET_GAP", "TARGET_KINDS", "TargetPick", "TargetPlan", "plan_to_target"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: The relative gap HiGHS must certify between the plan's cost and the least possible cost.
TARGET_GAP = 0.01
TARGET_KINDS = ("gmv", "new_customers")


@dataclass(frozen=True)
class TargetPick:
    """One chosen talent: what it costs and brings."""

    talent: str
    tier: str
    fee: float
    fee_estimated: bool
    expected_gmv: float  # expected GMV x (1 - risk)
    new_customers: int  # sampled new customers it reaches (scaled), alone


@dataclass(frozen=True)
class TargetPlan:
    """The cheapest matrix found for a target, and what HiGHS certifies about it."""

    merchant: str
    window: str
    kind: str  # one of TARGET_KINDS
    target: float  # what was asked (yuan of GMV, or customers)
    reachable: bool  # False: the target is out of reach; the plan reaches ``achieved`` instead
    talents: list[TargetPick]
    cost: float
    achieved: float  # expected GMV (or new customers reached) of the chosen talents
    bound: float  # no matrix reaching the target costs less than this
    gap: float  # (cost - bound) / cost
    # the most any eligible matrix reaches (under tiers, max_talents); None: not computed
    # (a new-customer target within reach: that bound costs as much as the plan)
    max_reachable: float | None
    candidates: int
    seconds: float
    note: str  # one line: what was minimised, and the answer's caveats
    left_out: dict[str, int] = field(default_factory=dict)


#: Linear constraints as blocks: (coefficients, one row per constraint; low; high).
Block = tuple[sp.csr_matrix, F64, F64]


def _tier_rows(c: Candidates, cand: I64, tiers: dict[str, TierRule], cost: F64) -> Block:
    """The tier rules and ``max_talents`` as linear rows over the candidates."""
    rows: list[F64] = []
    lo: list[float] = []
    hi: list[float] = []
    if c.most is not None:
        rows.append(np.ones(len(cand)))
        lo.append(0.0)
        hi.append(float(c.most))
    for j, name in enumerate(TIERS):
        r = tiers.get(name, TierRule())
        inside = (c.tier[cand] == j).astype(np.float64)
        if r.min_count or r.max_count is not None:
            rows.append(inside)
            lo.append(float(r.min_count))
            hi.append(float(r.max_count) if r.max_count is not None else np.inf)
        if r.max_budget_share is not None:
            # the tier's fees at most this share of the plan's: linear in the choice
            rows.append(inside * cost - r.max_budget_share * cost)
            lo.append(-np.inf)
            hi.append(0.0)
    a = sp.csr_matrix(np.vstack(rows)) if rows else sp.csr_matrix((0, len(cand)))
    return a, np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)


def _solve(
    objective: F64, n_int: int, blocks: list[Block], *, gap: float, time_limit: float | None
) -> tuple[F64 | None, float, int]:
    """HiGHS on binary talents (the first ``n_int``) and [0, 1] others: ``x`` (None when
    infeasible), the dual bound, scipy's status."""
    blocks = [b for b in blocks if b[0].shape[0]]
    cons = (
        [
            LinearConstraint(
                sp.vstack([b[0] for b in blocks]).tocsr(),
                np.concatenate([b[1] for b in blocks]),
                np.concatenate([b[2] for b in blocks]),
            )
        ]
        if blocks
        else []
    )
    options: dict[str, float] = {"mip_rel_gap": gap}
    if time_limit is not None:
        options["time_limit"] = max(time_limit, 0.05)
    integrality = np.zeros(len(objective))
    integrality[:n_int] = 1
    res = milp(
        objective, constraints=cons, bounds=Bounds(0, 1), integrality=integrality, options=options
    )
    bound = float(res.mip_dual_bound) if res.mip_dual_bound is not None else -np.inf
    return (res.x if res.x is not None else None), bound, int(res.status)


def plan_to_target(
    f: MarketFeatures,
    merchant_id: str,
    *,
    target_gmv: float | None = None,
    target_new_customers: int | None = None,
    tiers: dict[str, TierRule] | None = None,
    campaign: str | None = None,
    min_roi: float | None = None,
    sample_users: int = 1_000,
    candidates: int = 500,
    seed: int = 0,
    gap: float = TARGET_GAP,
    time_limit: float | None = 60.0,
    cancel: Cancel | None = None,
) -> TargetPlan:
    """The cheapest matrix of talents whose expected GMV (or new customers reached) meets a target.

    Parameters
    ----------
    f
        Market features.
    merchant_id
        The merchant.
    target_gmv
        Yuan of expected GMV x (1 - risk) to reach; exactly one of the two targets is given.
    target_new_customers
        Users who have not bought from the merchant, to reach at least once.
    tiers
        Tier rules (:func:`~kolmatch.matching.plan.parse_tiers`); a budget share is a share
        of the plan's own cost.
    campaign
        A campaign the merchant joined: plan for its window; default the coming period.
    min_roi
        The return floor of the budget plan (``gmv`` targets; default 1.0, 0 for none).
    sample_users
        New-customer targets: at most this many of the merchant's non-buyers are sampled
        (seeded) to count reach on.
    candidates
        New-customer targets: at most this many talents are considered, the best by reach
        per yuan and by reach (half each). GMV targets consider every eligible talent.
    seed
        Seed of the user sample.
    gap
        The relative gap to certify (default :data:`TARGET_GAP`, 1%).
    time_limit
        Wall-clock safety net for all of HiGHS's solves together, in seconds (None: none); a
        plan it cut short has a larger ``gap`` than asked and says so, and one it stopped
        before any matrix reached the target is refused (InfeasiblePlan), not called out of
        reach.
    cancel
        Checked between steps.

    Returns
    -------
    TargetPlan
        ``reachable`` False (with the largest reachable target and its least cost) when no
        eligible matrix meets the target.

    Raises
    ------
    BadArgument
        If not exactly one target is given, or it is not positive and finite.
    InfeasiblePlan
        If nothing can be planned (no eligible talent; a GMV target in a market without
        collaboration outcomes to estimate GMV from; tier rules no choice meets).
    UnknownId, NotEligible
        As for the budget plan.
    """
    t0 = time.perf_counter()
    if (target_gmv is None) == (target_new_customers is None):
        raise BadArgument(
            "--target-gmv", "give exactly one of --target-gmv and --target-new-customers"
        )
    kind = "gmv" if target_gmv is not None else "new_customers"
    flag = "--target-gmv" if kind == "gmv" else "--target-new-customers"
    target = float(target_gmv if target_gmv is not None else target_new_customers)  # type: ignore[arg-type]
    if not np.isfinite(target) or target <= 0:
        raise BadArgument(flag, f"must be a positive number, got {target:g}")
    if not 0 < gap < 1:
        raise BadArgument("--gap", f"must be between 0 and 1, got {gap}")
    tiers = tiers or {}
    c = plan_candidates(
        f, merchant_id, budget=None, campaign=campaign, min_roi=min_roi if kind == "gmv" else 0.0
    )
    check_cancel(cancel)
    pool = np.nonzero(c.eligible)[0].astype(np.int64)
    if kind == "gmv":
        if c.kind != "gmv":
            raise InfeasiblePlan(
                f"no GMV target can be planned for {merchant_id}: the market holds no "
                "collaboration outcomes to estimate its talents' GMV from; plan for new "
                "customers reached instead (--target-new-customers)"
            )
        cand = pool[c.gmv_all[pool] > 0]
        gain = c.gmv_all[cand]
        reach = None
        scale = 1.0
    else:
        users = _new_customers(f, c.m, sample_users, seed)
        scale = users.total / max(len(users.sample), 1)
        alone = np.diff(f.audience[pool][:, users.sample].indptr).astype(np.float64)
        keep = alone > 0
        pool, alone = pool[keep], alone[keep]
        half = max(candidates // 2, 1)
        by_reach = pool[np.lexsort((pool, -alone))][:half]
        by_ratio = pool[np.lexsort((pool, -alone / c.fee[pool]))][: candidates - half]
        cand = np.unique(np.concatenate([by_reach, by_ratio])).astype(np.int64)
        reach = sp.csr_matrix(f.audience[cand][:, users.sample])
        reach.data[:] = 1.0
        gain = np.asarray(reach.sum(axis=1)).ravel() * scale
    if len(cand) == 0:
        what = "expected GMV" if kind == "gmv" else "reach among users who have not bought"
        raise InfeasiblePlan(f"no eligible talent brings {merchant_id} any {what} in {c.window}")
    cost = c.fee[cand].astype(np.float64)
    n = len(cand)
    tier_a, tier_lo, tier_hi = _tier_rows(c, cand, tiers, cost)
    if reach is None:  # one variable per candidate; the target's measure is the GMV sum
        measure_row = sp.csr_matrix(gain[None, :])
        blocks: list[Block] = [(tier_a, tier_lo, tier_hi)]
        extra = 0
    else:  # and one per sampled user, reached (y_u <= the chosen talents reaching u)
        g = reach.shape[1]
        measure_row = sp.hstack([sp.csr_matrix((1, n)), sp.csr_matrix(np.full((1, g), scale))])
        cover = sp.hstack([-reach.T, sp.identity(g)]).tocsr()
        blocks = [
            (sp.hstack([tier_a, sp.csr_matrix((tier_a.shape[0], g))]).tocsr(), tier_lo, tier_hi),
            (cover, np.full(g, -np.inf), np.zeros(g)),
        ]
        extra = g

    def achieved_of(x: F64) -> float:
        if reach is None:
            return float((measure_row @ x)[0])
        # users the chosen talents reach, counted (not the relaxed y's sum), scaled
        chosen = x[:n] > 0.5
        return float((np.asarray(reach[chosen].sum(axis=0)).ravel() > 0).sum() * scale)

    def at_least(level: float) -> Block:
        return sp.csr_matrix(measure_row), np.array([level]), np.array([np.inf])

    fee_obj = np.concatenate([cost, np.zeros(extra)])
    most_obj = -np.asarray(measure_row.todense()).ravel()
    # one wall-clock budget for every solve, and a solve it cut short is said, not taken for
    # an answer ("out of reach" is only what the bound proves)
    deadline = None if time_limit is None else time.monotonic() + time_limit

    def left() -> float | None:
        return None if deadline is None else max(deadline - time.monotonic(), 0.05)

    def timed_out(what: str) -> InfeasiblePlan:
        return InfeasiblePlan(
            f"no {what} for {merchant_id} found within the time limit of {time_limit:g} s: "
            "a smaller target, fewer candidates or a longer limit"
        )

    check_cancel(cancel)
    x, bound, status = _solve(fee_obj, n, [*blocks, at_least(target)], gap=gap, time_limit=left())
    if x is None and status == 1:
        raise timed_out("matrix reaching the target")
    reachable = x is not None
    max_reachable: float | None = None
    if x is None or kind == "gmv":  # (cheap for GMV: said always; else only when out of reach)
        check_cancel(cancel)
        # the most reachable: maximise the target's measure under tiers and max_talents alone
        x_most, bound_most, most_status = _solve(most_obj, n, blocks, gap=1e-6, time_limit=left())
        if x_most is None and most_status == 1:
            raise timed_out("largest reachable target")
        if x_most is None:
            raise InfeasiblePlan(f"no choice of talents for {merchant_id} meets the tier rules")
        max_found = achieved_of(x_most)
        max_reachable = max(-bound_most, max_found) if np.isfinite(bound_most) else max_found
        if x is None:
            check_cancel(cancel)
            level = max_found * (1 - 1e-9)
            x, bound, status = _solve(
                fee_obj, n, [*blocks, at_least(level)], gap=gap, time_limit=left()
            )
            if x is None:  # numerically at the edge of reach, or the clock: the most-reach one
                x, bound = x_most, float(cost @ x_most[:n])
    chosen = np.nonzero(x[:n] > 0.5)[0]
    picked = cand[chosen]
    total = float(cost[chosen].sum())
    bound = min(bound, total)
    order = np.lexsort((picked, -gain[chosen]))
    picks = [
        TargetPick(
            talent=str(f.talent_ids[picked[i]]),
            tier=TIERS[int(c.tier[picked[i]])],
            fee=float(cost[chosen[i]]),
            fee_estimated=bool(c.estimated[picked[i]]),
            expected_gmv=float(c.gmv_all[picked[i]]),
            new_customers=round(float(gain[chosen[i]])) if reach is not None else 0,
        )
        for i in order
    ]
    measure = "expected GMV x (1 - risk)" if kind == "gmv" else "new customers reached (sampled)"
    note = f"minimised the fees of talents whose {measure} meets the target"
    if status == 1:
        note += "; HiGHS stopped at its time limit, the gap is what it certified by then"
    if not reachable:
        note = (
            f"out of reach: the most any eligible matrix brings is {max_reachable or 0:,.0f}; "
            f"this is the cheapest matrix that brings {achieved_of(x):,.0f}"
        )
    return TargetPlan(
        merchant=merchant_id,
        window=str(c.window),
        kind=kind,
        target=target,
        reachable=reachable,
        talents=picks,
        cost=total,
        achieved=achieved_of(x),
        bound=bound,
        gap=(total - bound) / total if total > 0 else 0.0,
        max_reachable=max_reachable,
        candidates=n,
        seconds=time.perf_counter() - t0,
        note=note,
        left_out=dict(c.left_out),
    )


@dataclass(frozen=True)
class _Sample:
    sample: I64  # sampled user rows
    total: int  # non-buyers among the target users


def _new_customers(f: MarketFeatures, m: int, size: int, seed: int) -> _Sample:
    """The merchant's target users who have not bought from it, a seeded sample of them."""
    from kolmatch.matching.plan import target_audience

    users = target_audience(f, m).users
    bought = np.zeros(f.users, dtype=bool)
    bought[f.merchant_buyers[m].indices] = True
    new = users[~bought[users]]
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(new, size, replace=False)) if len(new) > size else new
    return _Sample(sample.astype(np.int64), len(new))
