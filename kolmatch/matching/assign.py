"""The market-wide assignment: every merchant's talents at once, under everyone's limits.

:class:`AssignmentProblem` is a sparse set of candidate (merchant, talent) pairs with
values and constraints, solved by :func:`solve_assignment` (HiGHS via ``scipy.optimize.milp``)
or, when only capacities bind, exactly by :func:`assign_by_flow` (a min-cost flow).
:func:`build_assignment` makes the problem from market features.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, milp

from kolmatch import progress
from kolmatch.errors import BadArgument, Cancel, InfeasiblePlan, check_cancel
from kolmatch.matching.availability import Window, availability, planning_window
from kolmatch.matching.coverage import NODE_LIMIT
from kolmatch.matching.eligibility import (
    eligible_talents,
    merchant_eligibility,
    product_eligibility,
)
from kolmatch.matching.features import MarketFeatures, price_fit
from kolmatch.matching.plan import DEFAULT_MIN_ROI
from kolmatch.matching.score import expected_gmv

__all__ = [
    "AGENCY_CAP",
    "UNASSIGNED_REASONS",
    "AssignmentProblem",
    "AssignmentSolution",
    "assign_by_flow",
    "build_assignment",
    "solve_assignment",
    "value_bound",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: Default most talents of one agency per merchant, so no agency's roster dominates a matrix.
AGENCY_CAP = 3
#: Talents whose exact value is computed at a time while building candidates.
CHUNK = 2048

# Why a merchant gets no talents: the keys of an assignment's ``left_out``, in English for
# logs and the API (kolmatch/cli.py writes them in the reader's language).
_NOT_JOINED = "not in the campaign"
_COMPLIANCE = "compliance"
_NO_PRODUCTS = "no products"
_NO_ELIGIBLE_PRODUCTS = "no eligible products"
_NO_ELIGIBLE_TALENT = "no eligible talent"
_RETURN_BELOW_FLOOR = "return below the floor"
#: Every reason a merchant is left out, in the order they are tried.
UNASSIGNED_REASONS = (
    _NOT_JOINED,
    _COMPLIANCE,
    _NO_PRODUCTS,
    _NO_ELIGIBLE_PRODUCTS,
    _NO_ELIGIBLE_TALENT,
    _RETURN_BELOW_FLOOR,
)


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
    # what cut the solver short: "" (finished), "node limit" (deterministic: the same answer
    # every run) or "time limit" (the wall-clock safety net: a re-run may differ)
    stopped: str = ""


def _objective(p: AssignmentProblem, chosen: NDArray[np.bool_]) -> float:
    return float(p.value[chosen].sum())


def solve_assignment(
    p: AssignmentProblem,
    *,
    time_limit: float | None = 50.0,
    rel_gap: float = 0.005,
    node_limit: int = NODE_LIMIT,
    cancel: Cancel | None = None,
) -> AssignmentSolution:
    """Maximise total value subject to every limit, with HiGHS's certified gap.

    One binary per pair; rows: talent capacity, merchant budget, merchant fewest and most
    talents, one row per conflicting pair, one per agency group. If the merchants'
    minimums cannot all be met together (slots are contended), they are dropped and the
    solution says so (``minimums_relaxed``), rather than failing the whole market.

    HiGHS's work is limited by ``node_limit`` branch-and-bound nodes, which gives the same
    answer on every run whatever the machine's load; ``time_limit`` (seconds, None for none)
    is only a safety net: an answer it cut short says so (``stopped``, and ``method`` reads
    "milp, cut short by the time limit") and should not be cached as the answer.

    ``cancel`` (:class:`kolmatch.errors.Cancel`) is checked before each HiGHS run; HiGHS
    itself cannot be interrupted, so callers that must stop it run this in a process they
    can kill (kolmatch/engine/jobs.py).

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
    c_unit = float(np.median(p.cost)) if n else 1.0
    fees = sp.csr_matrix((p.cost / c_unit, (p.pair_merchant, np.arange(n))), shape=(M, n))
    rows = [by_talent, by_merchant]
    lo = [np.full(T, -np.inf), p.merchant_min.astype(np.float64)]
    hi = [p.talent_capacity.astype(np.float64), p.merchant_max.astype(np.float64)]
    budgeted = np.nonzero(np.isfinite(p.merchant_budget))[0]
    if len(budgeted):
        rows.append(fees[budgeted])
        lo.append(np.full(len(budgeted), -np.inf))
        hi.append(p.merchant_budget[budgeted] / c_unit)
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

    # HiGHS works best with coefficients near 1: values and fees in units of their medians
    v_unit = float(np.median(p.value[p.value > 0])) if (p.value > 0).any() else 1.0

    def run(lower: F64) -> OptimizeResult:
        options: dict[str, float | int] = {"node_limit": node_limit, "mip_rel_gap": rel_gap}
        if time_limit is not None:
            options["time_limit"] = max(time_limit - (time.perf_counter() - t0), 1.0)
        return milp(
            -p.value / v_unit,
            constraints=LinearConstraint(a, lower, np.concatenate(hi)),
            bounds=Bounds(0, 1),
            integrality=np.ones(n),
            options=options,
        )

    # HiGHS reports nothing while it runs: the line shows the time spent against the limit
    with progress.task(f"solving the assignment ({n:,} pairs)", time_limit, timed=True):
        check_cancel(cancel)
        res = run(lower)
        if res.status == 2 or (res.x is None and (p.merchant_min > 0).any()):
            relaxed = True
            lower = lower.copy()
            lower[T : T + M] = -np.inf
            check_cancel(cancel)
            res = run(lower)
    if res.x is None:
        raise InfeasiblePlan(f"the assignment solver found no solution: {res.message}")
    chosen = res.x > 0.5
    obj = _objective(p, chosen)
    dual = res.mip_dual_bound
    bound = max(-float(dual) * v_unit if dual is not None else float("inf"), obj)
    gap = (bound - obj) / obj if obj > 0 else 0.0
    # scipy reports HiGHS's node limit as status 4 ("solution limit"), its time limit as 1
    nodes = int(getattr(res, "mip_node_count", 0) or 0)
    stopped = "time limit" if res.status == 1 else "node limit" if nodes >= node_limit else ""
    method = "milp, cut short by the time limit" if stopped == "time limit" else "milp"
    return AssignmentSolution(
        chosen, obj, bound, max(gap, 0.0), method, time.perf_counter() - t0, relaxed, stopped
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


def value_bound(f: MarketFeatures, rows: I64, products: I64) -> F64:
    """An upper bound on each talent's expected GMV of one collaboration for ``products``
    (:func:`~kolmatch.matching.score.expected_gmv`), at a fraction of its cost: the mean of
    price x price fit x interest over the products is at most the mean price x the best price
    fit over them x the talent's largest audience interest in any of their categories (every
    category a product is in, not only its first: a product's interest is a weighted mean
    over its categories, weights summing to 1).

    Parameters
    ----------
    f
        Market features.
    rows
        Talent rows.
    products
        Product rows (at least one).

    Returns
    -------
    ndarray
        (len(rows),) bounds, each at least the talent's expected GMV (a relative 1e-9 above
        for the round-off of the two ways of computing it).
    """
    cats = np.flatnonzero((f.product_categories[products] > 0).any(axis=0))
    best_interest = f.talent_audience[rows][:, cats].max(axis=1) if len(cats) else 0.0
    logp = np.sort(np.log(np.maximum(f.product_price[products], 0.01)))
    tp = f.talent_price_level[rows]
    at = np.clip(np.searchsorted(logp, tp), 1, len(logp) - 1) if len(logp) > 1 else 0
    nearest = np.minimum(np.abs(tp - logp[at]), np.abs(tp - logp[np.maximum(at - 1, 0)]))
    scale = f.gmv_rate * f.talent_skill[rows] * f.talent_audience_size[rows]
    return (  # type: ignore[no-any-return]
        scale
        * best_interest
        * f.product_price[products].mean()
        * price_fit(np.zeros_like(nearest), nearest)
        * (1 + 1e-9)
    )


def build_assignment(
    f: MarketFeatures,
    *,
    candidates: int = 10,
    campaign: str | None = None,
    agency_cap: int | None = AGENCY_CAP,
    cancel: Cancel | None = None,
    min_roi: float = DEFAULT_MIN_ROI,
) -> tuple[AssignmentProblem, Window, dict[str, int]]:
    """Each merchant's ``candidates`` best eligible talents, as an :class:`AssignmentProblem`.

    Half are the best by expected value, the rest the best by value per yuan of fee.

    A pair's value is the talent's expected GMV for the merchant's eligible products,
    discounted by its risk (docs/optimisation.md). Eligible talents: not excluded for
    compliance (:mod:`kolmatch.matching.eligibility`), a known fee within the merchant's
    budget, a free slot in the window, not booked by a competitor of the merchant there.
    Merchants get no talents (counted in ``left_out`` by reason) when a campaign is given and
    they have not joined it (``not in the campaign``), when excluded for compliance
    (``compliance``), with no products (``no products``), with none eligible (``no eligible
    products``), with no eligible talent (``no eligible talent``), or when no eligible talent
    returns its cost (``return below the floor``). A talent is a candidate only if its value
    returns ``min_roi`` times its cost, the fee plus the commission the merchant's products
    offer on that value (a plan's floor, :data:`~kolmatch.matching.plan.DEFAULT_MIN_ROI`: a
    talent expected to return less than it costs is never bought; 0: no floor). Every solver
    works on these candidates, so the rules hold for every method. ``cancel`` is checked per
    merchant.

    Raises
    ------
    BadArgument
        If ``candidates`` or ``agency_cap`` is not positive, or ``min_roi`` is negative or not
        a number.
    UnknownId
        If the campaign is not in the graph.
    """
    if candidates < 1:
        raise BadArgument("--candidates", f"must be at least 1, got {candidates}")
    if agency_cap is not None and agency_cap < 1:
        raise BadArgument("--agency-cap", f"must be at least 1, got {agency_cap}")
    if not (np.isfinite(min_roi) and min_roi >= 0):
        raise BadArgument(
            "min_roi", f"must be a return of 0 or more (1 = break even), got {min_roi}"
        )
    window = planning_window(f, campaign)
    T, M = f.n_talents, len(f.merchant_ids)
    joined = (
        np.ones(M, dtype=bool)
        if campaign is None
        else np.asarray(f.merchant_campaigns[:, f.campaign_row(campaign)].todense()).ravel() > 0
    )
    merchant_ok = merchant_eligibility(f).ok
    product_ok = product_eligibility(f).ok
    capacity = availability(f, None, window).free_slots
    overlaps = (f.booking_start <= window.end) & (f.booking_end >= window.start)
    # who is booked by whom in the window: (talent, merchant) pairs
    booked_by = sp.csr_matrix(
        (np.ones(int(overlaps.sum())), (f.booking_talent[overlaps], f.booking_merchant[overlaps])),
        shape=(T, M),
    )
    blocked_by_rival = sp.csr_matrix(booked_by @ f.competitors)  # (T, M) > 0: out for m
    blocked = blocked_by_rival.T.tocsr()
    fee = np.nan_to_num(f.talent_fee, nan=np.inf)
    base_ok = eligible_talents(f) & np.isfinite(fee) & (fee > 0) & (capacity > 0)
    budgets = np.where(np.isnan(f.merchant_budget), np.inf, f.merchant_budget)
    left_out: dict[str, int] = {}
    k_value = (candidates + 1) // 2

    def candidates_of(m: int) -> tuple[I64, F64] | str:
        check_cancel(cancel)
        if not joined[m]:
            return _NOT_JOINED
        if not merchant_ok[m]:
            return _COMPLIANCE
        prods = f.merchant_products[m]
        if len(prods) == 0:
            return _NO_PRODUCTS
        prods = prods[product_ok[prods]]
        if len(prods) == 0:
            return _NO_ELIGIBLE_PRODUCTS
        ok = base_ok & (fee <= budgets[m])
        ok[blocked[m].indices] = False
        rows = np.nonzero(ok)[0]
        if len(rows) == 0:
            return _NO_ELIGIBLE_TALENT
        # an upper bound on every talent's value lets the exact value be computed for the
        # promising talents only
        ub = value_bound(f, rows, prods) * (1.0 - f.talent_risk[rows])
        value = np.full(len(rows), -np.inf)
        done = np.zeros(len(rows), dtype=bool)
        # the floor: value >= min_roi x (fee + commission x value)
        kept = 1.0 - min_roi * float(np.clip(np.nan_to_num(f.merchant_commission[m]), 0.0, 1.0))
        below = [0]

        def evaluate(idx: I64) -> None:
            todo = idx[~done[idx]]
            if len(todo):
                gmv, _ = expected_gmv(f, rows[todo], prods)
                v = gmv * (1.0 - f.talent_risk[rows[todo]])
                short = v * kept < min_roi * fee[rows[todo]]
                below[0] += int((short & (v > 0)).sum())
                value[todo] = np.where(short, -np.inf, v)  # (out of every pick below)
                done[todo] = True

        for key, k in ((ub, k_value), (ub / fee[rows], candidates)):
            # by value, then by value per yuan of fee (k counts the value picks too): the
            # best CHUNK by bound first, then four times as many while a talent not yet
            # evaluated could still be among the k best (the floor can leave fewer than k of a
            # chunk: then growing it, not evaluating every talent, at l 200,000 a merchant)
            size = CHUNK
            while size < len(key):
                part = np.argpartition(-key, size)
                evaluate(part[:size])
                exact = (value if key is ub else value / fee[rows])[done]
                kth = (
                    np.partition(exact, len(exact) - k)[len(exact) - k]
                    if len(exact) >= k
                    else -np.inf
                )
                if kth >= key[part[size]]:
                    break
                size *= 4
            else:
                evaluate(np.arange(len(key)))
        # half the best by value, the rest the best by value per yuan of fee: a budget
        # buys either a few big names or many efficient ones
        pick = _top(value, k_value)
        per_fee = value / fee[rows]
        per_fee[pick] = -np.inf
        pick = np.concatenate([pick, _top(per_fee, candidates - len(pick))])
        pick = np.sort(pick[value[pick] > 0])
        if not len(pick) and below[0]:
            return _RETURN_BELOW_FLOOR
        return rows[pick], value[pick]

    with (
        progress.task("choosing candidates", M, unit="merchants") as shown,
        ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool,
    ):
        found = []
        for got in pool.map(candidates_of, range(M), chunksize=64):
            found.append(got)
            shown.advance()  # one counter add per merchant (~1 ms of work each)
    pm, pt, pv = [], [], []
    for m, got in enumerate(found):
        if isinstance(got, str):
            left_out[got] = left_out.get(got, 0) + 1
            continue
        pm.append(np.full(len(got[0]), m, dtype=np.int64))
        pt.append(got[0])
        pv.append(got[1])
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


def _top(x: F64, k: int) -> I64:
    """Indices of the k largest finite entries, largest first (ties by index)."""
    ok = np.nonzero(np.isfinite(x))[0]
    if k <= 0 or len(ok) == 0:
        return np.zeros(0, dtype=np.int64)
    if k < len(ok):
        ok = ok[np.argpartition(-x[ok], k - 1)[:k]]
    return ok[np.lexsort((ok, -x[ok]))].astype(np.int64)


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
