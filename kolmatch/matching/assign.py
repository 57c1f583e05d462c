"""The market-wide assignment: every merchant's talents at once, under everyone's limits.

:class:`AssignmentProblem` is a sparse set of candidate (merchant, talent) pairs with
values and constraints, solved by :func:`solve_assignment` (HiGHS via ``scipy.optimize.milp``)
or, when only capacities bind, exactly by :func:`assign_by_flow` (a min-cost flow).
:func:`build_assignment` makes the problem from market features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, milp

from kolmatch.errors import BadArgument, InfeasiblePlan
from kolmatch.matching.availability import Window, planning_window
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import expected_orders
from kolmatch.matching.stable import (
    TwoSidedMarket,
    blocking_pairs,
    deferred_acceptance,
    talent_preferences,
)

__all__ = [
    "AGENCY_CAP",
    "AssignmentProblem",
    "AssignmentSolution",
    "MarketAssignment",
    "assign_by_flow",
    "assign_market",
    "build_assignment",
    "solve_assignment",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: Default most talents of one agency per merchant, so no agency's roster dominates a matrix.
AGENCY_CAP = 3


@dataclass(frozen=True)
class AssignmentProblem:
    """N candidate pairs between M merchants and T talents, and the limits on them.

    Attributes
    ----------
    pair_merchant, pair_talent
        (N,) the merchant and talent of each pair.
    value
        (N,) expected value of the pair, >= 0.
    cost
        (N,) the talent's fee.
    talent_capacity
        (T,) most merchants per talent (free slots).
    merchant_budget
        (M,) most fees per merchant (``inf`` for none).
    merchant_min, merchant_max
        (M,) fewest and most talents per merchant.
    conflicts
        (K, 2) pairs of pair indices that may not both be chosen (one talent, two
        competing merchants).
    groups
        (G, N) sparse 0/1: each row a set of pairs of which at most ``group_cap`` may be
        chosen (one merchant's candidates from one agency).
    group_cap
        (G,)
    """

    pair_merchant: I64
    pair_talent: I64
    value: F64
    cost: F64
    talent_capacity: I64
    merchant_budget: F64
    merchant_min: I64
    merchant_max: I64
    conflicts: I64 = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    groups: sp.csr_matrix | None = None
    group_cap: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_pairs(self) -> int:
        return len(self.value)

    @property
    def capacity_only(self) -> bool:
        """Whether only talent capacities and merchant maximums bind (a transportation problem)."""
        return bool(
            not np.isfinite(self.merchant_budget).any()
            and not (self.merchant_min > 0).any()
            and len(self.conflicts) == 0
            and (self.groups is None or self.groups.shape[0] == 0)
        )


@dataclass(frozen=True)
class AssignmentSolution:
    """Chosen pairs (a mask over the problem's pairs) and what the solver certifies."""

    chosen: NDArray[np.bool_]
    objective: float
    bound: float
    gap: float
    method: str
    seconds: float
    minimums_relaxed: bool = False


def _objective(p: AssignmentProblem, chosen: NDArray[np.bool_]) -> float:
    return float(p.value[chosen].sum())


def solve_assignment(
    p: AssignmentProblem, *, time_limit: float = 50.0, rel_gap: float = 0.005
) -> AssignmentSolution:
    """Maximise total value subject to every limit, with HiGHS's certified gap.

    One binary per pair; rows: talent capacity, merchant budget, merchant fewest and most
    talents, one row per conflicting pair, one per agency group. If the merchants'
    minimums cannot all be met together (slots are contended), they are dropped and the
    solution says so (``minimums_relaxed``), rather than failing the whole market.

    Raises
    ------
    InfeasiblePlan
        If even without minimums no assignment exists (it always does: choosing nothing
        is feasible, so this signals a solver failure).
    """
    t0 = time.perf_counter()
    n = p.n_pairs
    if n == 0:
        return AssignmentSolution(np.zeros(0, dtype=bool), 0.0, 0.0, 0.0, "empty", 0.0)
    M, T = len(p.merchant_budget), len(p.talent_capacity)
    ones = np.ones(n)
    by_talent = sp.csr_matrix((ones, (p.pair_talent, np.arange(n))), shape=(T, n))
    by_merchant = sp.csr_matrix((ones, (p.pair_merchant, np.arange(n))), shape=(M, n))
    fees = sp.csr_matrix((p.cost, (p.pair_merchant, np.arange(n))), shape=(M, n))
    rows = [by_talent, by_merchant]
    lo = [np.full(T, -np.inf), p.merchant_min.astype(np.float64)]
    hi = [p.talent_capacity.astype(np.float64), p.merchant_max.astype(np.float64)]
    budgeted = np.nonzero(np.isfinite(p.merchant_budget))[0]
    if len(budgeted):
        rows.append(fees[budgeted])
        lo.append(np.full(len(budgeted), -np.inf))
        hi.append(p.merchant_budget[budgeted])
    if len(p.conflicts):
        k = len(p.conflicts)
        rows.append(
            sp.csr_matrix(
                (np.ones(2 * k), (np.repeat(np.arange(k), 2), p.conflicts.ravel())), shape=(k, n)
            )
        )
        lo.append(np.full(k, -np.inf))
        hi.append(np.ones(k))
    if p.groups is not None and p.groups.shape[0]:
        rows.append(p.groups)
        lo.append(np.full(p.groups.shape[0], -np.inf))
        hi.append(p.group_cap.astype(np.float64))
    a = sp.vstack(rows, format="csr")
    lower = np.concatenate(lo)
    relaxed = False

    def run(lower: F64) -> OptimizeResult:
        return milp(
            -p.value,
            constraints=LinearConstraint(a, lower, np.concatenate(hi)),
            bounds=Bounds(0, 1),
            integrality=np.ones(n),
            options={
                "time_limit": max(time_limit - (time.perf_counter() - t0), 1.0),
                "mip_rel_gap": rel_gap,
            },
        )

    res = run(lower)
    if res.status == 2 or (res.x is None and (p.merchant_min > 0).any()):
        relaxed = True
        lower = lower.copy()
        lower[T : T + M] = -np.inf
        res = run(lower)
    if res.x is None:
        raise InfeasiblePlan(f"the assignment solver found no solution: {res.message}")
    chosen = res.x > 0.5
    obj = _objective(p, chosen)
    dual = res.mip_dual_bound
    bound = max(-float(dual) if dual is not None else float("inf"), obj)
    gap = (bound - obj) / obj if obj > 0 else 0.0
    return AssignmentSolution(
        chosen, obj, bound, max(gap, 0.0), "milp", time.perf_counter() - t0, relaxed
    )


def assign_by_flow(p: AssignmentProblem, *, scale: float = 100.0) -> AssignmentSolution:
    """Exact assignment when only capacities bind, as a min-cost flow (network simplex).

    Source -> merchant (capacity ``merchant_max``) -> talent (one unit per candidate pair,
    cost ``-value``) -> sink (capacity ``talent_capacity``), with a zero-cost bypass so
    that leaving slots empty is allowed. Values are scaled by ``scale`` and rounded to
    integers, which network simplex needs to be exact; the objective is reported in the
    original values.

    Raises
    ------
    BadArgument
        If the problem has budgets, minimums, conflicts or groups.
    """
    import networkx as nx

    if not p.capacity_only:
        raise BadArgument("method", "flow applies only when capacities and maximums alone bind")
    t0 = time.perf_counter()
    M, T = len(p.merchant_max), len(p.talent_capacity)
    g = nx.DiGraph()
    supply = int(np.maximum(p.merchant_max, 0).sum())
    g.add_node("s", demand=-supply)
    g.add_node("z", demand=supply)
    g.add_edge("s", "z", capacity=supply, weight=0)
    for m in range(M):
        g.add_edge("s", ("m", m), capacity=int(max(p.merchant_max[m], 0)), weight=0)
    for t in range(T):
        g.add_edge(("t", t), "z", capacity=int(max(p.talent_capacity[t], 0)), weight=0)
    for i in range(p.n_pairs):
        g.add_edge(
            ("m", int(p.pair_merchant[i])),
            ("t", int(p.pair_talent[i])),
            capacity=1,
            weight=-round(float(p.value[i]) * scale),
        )
    _, flow = nx.network_simplex(g)
    chosen = np.array(
        [
            flow[("m", int(m))][("t", int(t))] > 0
            for m, t in zip(p.pair_merchant, p.pair_talent, strict=True)
        ],
        dtype=bool,
    )
    obj = _objective(p, chosen)
    return AssignmentSolution(chosen, obj, obj, 0.0, "flow", time.perf_counter() - t0)


@dataclass(frozen=True)
class MarketAssignment:
    """A market-wide assignment in ids, with totals and the solver's certificate."""

    window: str
    pairs: list[tuple[str, str, float, float]]  # (merchant, talent, expected value, fee)
    objective: float
    bound: float
    gap: float
    method: str
    seconds: float  # solver time
    build_seconds: float  # candidate generation time
    candidates: int  # candidate pairs
    merchants_served: int
    merchants_below_minimum: list[str]
    minimums_relaxed: bool
    left_out_merchants: dict[str, int]  # merchants with no candidates, by reason
    blocking_pairs: int | None = None  # for the stable option and on request


def build_assignment(
    f: MarketFeatures,
    *,
    candidates: int = 30,
    campaign: str | None = None,
    agency_cap: int | None = AGENCY_CAP,
) -> tuple[AssignmentProblem, Window, dict[str, int]]:
    """Each merchant's ``candidates`` best eligible talents, as an :class:`AssignmentProblem`.

    A pair's value is the talent's expected GMV for the merchant discounted by its risk
    (docs/optimisation.md). Eligible: not excluded for compliance, a known fee within the
    merchant's budget, a free slot in the window, not booked by a competitor of the
    merchant there. Merchants excluded for compliance get no talents.

    Raises
    ------
    BadArgument
        If ``candidates`` or ``agency_cap`` is not positive.
    UnknownId
        If the campaign is not in the graph.
    """
    if candidates < 1:
        raise BadArgument("--candidates", f"must be at least 1, got {candidates}")
    if agency_cap is not None and agency_cap < 1:
        raise BadArgument("--agency-cap", f"must be at least 1, got {agency_cap}")
    window = planning_window(f, campaign)
    T, M = f.n_talents, len(f.merchant_ids)
    overlaps = (f.booking_start <= window.end) & (f.booking_end >= window.start)
    booked = np.bincount(f.booking_talent[overlaps], minlength=T)
    capacity = np.maximum(np.nan_to_num(f.talent_capacity, nan=1.0).astype(np.int64) - booked, 0)
    # who is booked by whom in the window: (talent, merchant) pairs
    booked_by = sp.csr_matrix(
        (np.ones(int(overlaps.sum())), (f.booking_talent[overlaps], f.booking_merchant[overlaps])),
        shape=(T, M),
    )
    blocked_by_rival = sp.csr_matrix(booked_by @ f.competitors)  # (T, M) > 0: out for m
    blocked = blocked_by_rival.T.tocsr()
    fee = np.nan_to_num(f.talent_fee, nan=np.inf)
    base_ok = (f.talent_risk < 1.0) & np.isfinite(fee) & (fee > 0) & (capacity > 0)
    budgets = np.where(np.isnan(f.merchant_budget), np.inf, f.merchant_budget)
    left_out: dict[str, int] = {}
    pm, pt, pv = [], [], []
    for m in range(M):
        if f.merchant_risk[m] >= 1.0:
            left_out["compliance"] = left_out.get("compliance", 0) + 1
            continue
        prods = f.merchant_products[m]
        if len(prods) == 0:
            left_out["no products"] = left_out.get("no products", 0) + 1
            continue
        ok = base_ok & (fee <= budgets[m])
        ok[blocked[m].indices] = False
        rows = np.nonzero(ok)[0]
        if len(rows) == 0:
            left_out["no eligible talent"] = left_out.get("no eligible talent", 0) + 1
            continue
        orders, _ = expected_orders(f, rows, prods)
        gmv = (orders * f.product_price[prods][None, :]).mean(axis=1)
        value = gmv * (1.0 - f.talent_risk[rows])
        k = min(candidates, len(rows))
        top = np.argpartition(-value, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
        top = top[value[top] > 0]
        pm.append(np.full(len(top), m, dtype=np.int64))
        pt.append(rows[top])
        pv.append(value[top])
    pair_m = np.concatenate(pm) if pm else np.zeros(0, dtype=np.int64)
    pair_t = np.concatenate(pt) if pt else np.zeros(0, dtype=np.int64)
    value = np.concatenate(pv) if pv else np.zeros(0)
    order = np.lexsort((pair_t, pair_m))
    pair_m, pair_t, value = pair_m[order], pair_t[order], value[order]
    n = len(value)
    conflicts = _conflicts(pair_m, pair_t, f.competitors, capacity)
    groups, cap = _agency_groups(pair_m, pair_t, f.talent_agency, agency_cap, n)
    lo = np.nan_to_num(f.merchant_min_talents, nan=0.0).astype(np.int64)
    hi = np.where(np.isnan(f.merchant_max_talents), candidates, f.merchant_max_talents).astype(
        np.int64
    )
    # a merchant's minimum is capped by what its own candidates and budget allow
    per_m = np.bincount(pair_m, minlength=M)
    for m in np.nonzero(lo > 0)[0].tolist():
        fees = np.sort(fee[pair_t[pair_m == m]])
        affordable = int(np.searchsorted(np.cumsum(fees), budgets[m], side="right"))
        lo[m] = min(int(lo[m]), int(hi[m]), int(per_m[m]), affordable)
    problem = AssignmentProblem(
        pair_merchant=pair_m,
        pair_talent=pair_t,
        value=value,
        cost=fee[pair_t],
        talent_capacity=capacity,
        merchant_budget=budgets,
        merchant_min=lo,
        merchant_max=hi,
        conflicts=conflicts,
        groups=groups,
        group_cap=cap,
    )
    return problem, window, left_out


def _conflicts(pair_m: I64, pair_t: I64, competitors: sp.csr_matrix, capacity: I64) -> I64:
    """Pairs (a, b) with the same talent for two competing merchants (talent has 2+ slots;
    with one slot, its capacity row already forbids both)."""
    out: list[tuple[int, int]] = []
    order = np.argsort(pair_t, kind="stable")
    starts = np.searchsorted(pair_t[order], np.arange(len(capacity) + 1))
    for t in np.nonzero(np.diff(starts) > 1)[0]:
        if capacity[t] < 2:
            continue
        idx = order[starts[t] : starts[t + 1]]
        ms = pair_m[idx]
        sub = competitors[ms][:, ms].tocoo()
        for i, j in zip(sub.row, sub.col, strict=True):
            if i < j:
                out.append((int(idx[i]), int(idx[j])))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _agency_groups(
    pair_m: I64, pair_t: I64, agency: I64, cap: int | None, n: int
) -> tuple[sp.csr_matrix | None, I64]:
    if cap is None or n == 0:
        return None, np.zeros(0, dtype=np.int64)
    a = agency[pair_t]
    signed = np.nonzero(a >= 0)[0]
    key = pair_m[signed] * (int(agency.max()) + 1) + a[signed]
    uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    big = np.nonzero(counts > cap)[0]
    if len(big) == 0:
        return None, np.zeros(0, dtype=np.int64)
    row_of = np.full(len(uniq), -1)
    row_of[big] = np.arange(len(big))
    member = row_of[inverse] >= 0
    groups = sp.csr_matrix(
        (np.ones(int(member.sum())), (row_of[inverse][member], signed[member])), shape=(len(big), n)
    )
    return groups, np.full(len(big), cap, dtype=np.int64)


def assign_market(
    f: MarketFeatures,
    *,
    candidates: int = 30,
    campaign: str | None = None,
    agency_cap: int | None = AGENCY_CAP,
    method: str = "milp",
    proposing: str = "merchants",
    time_limit: float = 50.0,
    rel_gap: float = 0.005,
) -> MarketAssignment:
    """Assign the whole market for one window.

    Parameters
    ----------
    f
        Market features.
    candidates
        Candidate talents per merchant (the sparse candidate set).
    campaign
        Assign for this campaign's window; default the coming period.
    agency_cap
        Most talents of one agency per merchant (None: no limit).
    method
        ``milp``: the most total expected value under every limit, with a certified gap.
        ``stable``: deferred acceptance over the same candidates, each side choosing
        greedily within its limits (merchants: budget and most talents; talents: free
        slots, never two competitors); minimums and the agency cap are not part of the
        stable model (docs/optimisation.md).
    proposing
        For ``stable``: ``merchants`` or ``talents`` propose.
    time_limit, rel_gap
        For ``milp``: HiGHS's limits.

    Raises
    ------
    BadArgument
        If an argument is out of range or the method unknown.
    UnknownId
        If the campaign is not in the graph.
    """

    if method not in ("milp", "stable"):
        raise BadArgument("--method", f"must be milp or stable, got {method!r}")
    t0 = time.perf_counter()
    p, window, left_out = build_assignment(
        f, candidates=candidates, campaign=campaign, agency_cap=agency_cap
    )
    built = time.perf_counter() - t0
    mk = TwoSidedMarket(
        p.pair_merchant,
        p.pair_talent,
        p.value,
        talent_preferences(f, p.pair_merchant, p.pair_talent, p.value),
        p.merchant_max,
        p.talent_capacity,
        cost=p.cost,
        merchant_budget=p.merchant_budget,
        competitors=f.competitors,
    )
    if method == "stable":
        t1 = time.perf_counter()
        chosen = deferred_acceptance(mk, proposing=proposing)
        obj = _objective(p, chosen)
        sol = AssignmentSolution(
            chosen,
            obj,
            float("nan"),
            float("nan"),
            f"stable ({proposing} propose)",
            time.perf_counter() - t1,
        )
    else:
        sol = solve_assignment(p, time_limit=time_limit, rel_gap=rel_gap)
    return _to_ids(f, p, sol, window, built, left_out, blocking_pairs(mk, sol.chosen))


def _to_ids(
    f: MarketFeatures,
    p: AssignmentProblem,
    sol: AssignmentSolution,
    window: Window,
    built: float,
    left_out: dict[str, int],
    blocking: int | None = None,
) -> MarketAssignment:
    idx = np.nonzero(sol.chosen)[0]
    pairs = [
        (
            str(f.merchant_ids[p.pair_merchant[i]]),
            str(f.talent_ids[p.pair_talent[i]]),
            round(float(p.value[i]), 2),
            float(p.cost[i]),
        )
        for i in idx
    ]
    count = np.bincount(p.pair_merchant[idx], minlength=len(f.merchant_ids))
    mins = np.nan_to_num(f.merchant_min_talents, nan=0.0)
    below = [str(f.merchant_ids[m]) for m in np.nonzero((count < mins) & (count >= 0))[0]]
    return MarketAssignment(
        window=str(window),
        pairs=pairs,
        objective=sol.objective,
        bound=sol.bound,
        gap=sol.gap,
        method=sol.method,
        seconds=sol.seconds,
        build_seconds=built,
        candidates=p.n_pairs,
        merchants_served=int((count > 0).sum()),
        merchants_below_minimum=below,
        minimums_relaxed=sol.minimums_relaxed,
        left_out_merchants=left_out,
        blocking_pairs=blocking,
    )
