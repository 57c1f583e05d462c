"""Budgeted maximum coverage with a tier mix: a fast greedy bound, then HiGHS via scipy's milp.

The problem: choose candidates ``x`` to maximise ``value @ x + user_value @ covered(x)``, where
a user counts once however many chosen candidates reach it, subject to a budget on ``cost``,
per-tier limits (counts and budget shares) and at most ``max_chosen`` candidates in all. Pure
functions over arrays; ids never appear.

Every limit on the solver's work is a count (column-generation rounds, HiGHS branch-and-bound
nodes), so the same instance gives the same answer on any machine and under any load. A
wall-clock ``time_limit`` is a safety net only: an answer it cut short says so
(``CoverageSolution.stopped``) and may differ on a re-run.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import linprog

from kolmatch.errors import Cancel, InfeasiblePlan, check_cancel

__all__ = [
    "NODE_LIMIT",
    "CoverageProblem",
    "CoverageSolution",
    "coverage_objective",
    "greedy_coverage",
    "solve_coverage",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: Most HiGHS branch-and-bound nodes per MILP: the deterministic work limit. On the s market's
#: plans (docs/optimisation.md, "Reproducible") HiGHS closes the gap within it, or stops
#: within 0.3 points of where 10 s of wall clock would have.
NODE_LIMIT = 500


@dataclass(frozen=True)
class CoverageProblem:
    """A budgeted coverage instance over n candidates and S sampled users.

    Attributes
    ----------
    value
        (n,) value of choosing each candidate on its own (e.g. expected GMV), >= 0.
    cost
        (n,) cost of each candidate (fee), > 0.
    reach
        (n, S) sparse, nonzero where candidate i reaches user s.
    user_value
        (S,) value of reaching user s at least once, >= 0.
    tier
        (n,) tier index of each candidate, in ``range(len(tier_min))``.
    budget
        Total cost allowed.
    tier_min, tier_max
        (k,) fewest and most candidates per tier.
    tier_budget
        (k,) most cost per tier (``inf`` for no limit).
    tier_names
        Names of the tiers for messages (default ``tier 0``, ``tier 1``, ...).
    max_chosen
        Most candidates chosen in all (e.g. the merchant's ``max_talents``); None for no limit.
    """

    value: F64
    cost: F64
    reach: sp.csr_matrix
    user_value: F64
    tier: I64
    budget: float
    tier_min: I64
    tier_max: I64
    tier_budget: F64
    tier_names: tuple[str, ...] = ()
    max_chosen: int | None = None

    def tier_name(self, j: int) -> str:
        return f"tier {self.tier_names[j]}" if j < len(self.tier_names) else f"tier {j}"

    @property
    def n(self) -> int:
        return len(self.value)


@dataclass(frozen=True)
class CoverageSolution:
    """The chosen candidates and what the solver certifies about them.

    ``bound`` is an upper bound on the best objective (HiGHS's dual bound, or the LP
    relaxation's when the MILP did not run); ``gap = (bound - objective) / objective``.
    ``stopped`` says what cut the MILP short: ``""`` (it finished, or did not run), ``"node
    limit"`` (the deterministic work limit: the same answer on every run) or ``"time limit"``
    (the wall-clock safety net: a re-run may differ). ``nodes``: HiGHS's branch-and-bound nodes.
    """

    chosen: I64
    objective: float
    bound: float
    gap: float
    method: str  # "milp", "local search" (the greedy improved by swaps) or "greedy"
    greedy_objective: float
    seconds: float
    reduced_users: int  # user rows left in the MILP after folding and merging
    stopped: str = ""
    nodes: int = 0


def coverage_objective(p: CoverageProblem, chosen: I64) -> float:
    """The objective of a set of candidates, recomputed from the problem's raw arrays.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> reach = sp.csr_matrix(np.array([[1, 1], [0, 1]]))
    >>> p = CoverageProblem(np.array([1.0, 2.0]), np.ones(2), reach, np.array([10.0, 20.0]),
    ...     np.zeros(2, dtype=np.int64), 2.0, np.zeros(1, dtype=np.int64), np.array([2]),
    ...     np.array([np.inf]))
    >>> coverage_objective(p, np.array([0, 1]))
    33.0
    """
    x = np.zeros(p.n)
    x[chosen] = 1.0
    covered = (p.reach.T @ x) > 0
    return float(p.value @ x + p.user_value[covered].sum())


def _reduce(
    value: F64, reach: sp.csr_matrix, user_value: F64
) -> tuple[F64, sp.csr_matrix, F64, I64]:
    """Fold users reached by one candidate into its value; merge users reached by the same set.

    Returns the candidates' values, the (n, G) reach of the merged users still shared by two
    or more candidates, the merged users' values, and each user's group: its column in the
    shared reach, ``-1`` if folded into a candidate, ``-2`` if unreached or worth nothing.
    The objective of every choice is unchanged.
    """
    n, s = reach.shape
    r = sp.csc_matrix(reach, dtype=np.float64)
    r.sum_duplicates()
    count = np.diff(r.indptr)
    value = value.astype(np.float64).copy()
    group = np.full(s, -2, dtype=np.int64)
    worth = user_value > 0
    single = np.nonzero((count == 1) & worth)[0]
    np.add.at(value, r.indices[r.indptr[single]], user_value[single])
    group[single] = -1
    multi = np.nonzero((count >= 2) & worth)[0]
    groups: dict[bytes, int] = {}
    weight: list[float] = []
    cols: list[I64] = []
    for u in multi:
        members = r.indices[r.indptr[u] : r.indptr[u + 1]]
        key = members.tobytes()
        g = groups.get(key)
        if g is None:
            g = groups[key] = len(weight)
            weight.append(0.0)
            cols.append(members)
        weight[g] += float(user_value[u])
        group[u] = g
    if cols:
        rows = np.concatenate(cols)
        col_ix = np.repeat(np.arange(len(cols)), [len(c) for c in cols])
    else:
        rows = col_ix = np.zeros(0, dtype=np.int64)
    shared = sp.csr_matrix((np.ones(len(rows)), (rows, col_ix)), shape=(n, len(cols)))
    return value, shared, np.array(weight, dtype=np.float64), group


def _check_feasible(p: CoverageProblem) -> None:
    k = len(p.tier_min)
    if p.n == 0:
        raise InfeasiblePlan("no candidates to choose from")
    if p.max_chosen is not None and p.max_chosen < 1:
        raise InfeasiblePlan(f"at most {p.max_chosen} candidates may be chosen")
    if p.max_chosen is not None and int(p.tier_min.sum()) > p.max_chosen:
        raise InfeasiblePlan(
            f"the tier minimums ask for {int(p.tier_min.sum())} candidates, over the most "
            f"{p.max_chosen} allowed"
        )
    affordable = p.cost <= p.budget
    if not affordable.any():
        raise InfeasiblePlan(
            f"the budget {p.budget:,.0f} is below the cheapest candidate's cost {p.cost.min():,.0f}"
        )
    need = 0.0
    for j in range(k):
        in_tier = np.sort(p.cost[p.tier == j])
        m = int(p.tier_min[j])
        if m > p.tier_max[j]:
            raise InfeasiblePlan(
                f"{p.tier_name(j)}: at least {m} but at most {p.tier_max[j]} asked"
            )
        if m > len(in_tier):
            raise InfeasiblePlan(
                f"{p.tier_name(j)}: {m} needed but only {len(in_tier)} candidate(s) available"
            )
        cheapest = float(in_tier[:m].sum())
        if cheapest > p.tier_budget[j]:
            raise InfeasiblePlan(
                f"{p.tier_name(j)}: the {m} cheapest candidates cost {cheapest:,.0f}, over "
                f"the tier's budget {p.tier_budget[j]:,.0f}"
            )
        need += cheapest
    if need > p.budget:
        raise InfeasiblePlan(
            f"the tier minimums cost at least {need:,.0f} together, over the budget {p.budget:,.0f}"
        )


def greedy_coverage(p: CoverageProblem) -> I64:
    """A fast feasible plan: lazy greedy by marginal value per unit of what it uses up.

    Tier minimums are filled first (best ratio within the tier, keeping enough budget and
    enough of ``max_chosen`` for every tier's unmet minimum), then any candidate that still
    fits. Without tier minimums the result is compared with the best single candidate and
    the better returned.

    What a candidate uses up is its cost; when ``max_chosen`` binds (fewer slots than
    candidates), more passes price each candidate by its share of the budget and its share
    of the slots (``SHARE_WEIGHTS``), and the best plan is returned. Value per yuan alone
    fills a few slots with the cheapest candidates (on the l market's five bench plans, 6 to
    12 slots over 5,000 candidates: 39 to 86% of the optimum, four of five under 45%;
    docs/optimisation.md).

    Raises
    ------
    InfeasiblePlan
        If no choice can satisfy the budget and the tier mix (checked up front).
    """
    _check_feasible(p)
    value, shared, w, _ = _reduce(p.value, p.reach, p.user_value)
    return _best_greedy(p, value, shared, w)


#: Weights of the budget's share against the slots' share in the greedy's prices when
#: ``max_chosen`` binds (``a * cost / budget + (1 - a) / max_chosen``), besides value per
#: yuan and the larger of the two shares. On the l market's five bench plans the best of
#: these, improved by swaps, is the optimum for four (the fifth: 3% short).
SHARE_WEIGHTS = (0.5, 0.75, 0.9)


def _greedy_plans(
    p: CoverageProblem, value: F64, shared: sp.csr_matrix, w: F64, cancel: Cancel | None = None
) -> list[I64]:
    """The distinct plans of the greedy under each price: per yuan, and per share of the limits.

    Only value per yuan when ``max_chosen`` does not bind (it is the first plan either way).
    """
    plans = [_greedy(p, value, shared, w, p.cost, cancel)]
    if p.max_chosen is None or p.max_chosen >= p.n:
        return plans
    k, budget = float(p.max_chosen), p.budget
    prices = [np.maximum(p.cost / budget, 1.0 / k)]
    prices += [a * p.cost / budget + (1.0 - a) / k for a in SHARE_WEIGHTS]
    for price in prices:
        plan = _greedy(p, value, shared, w, price, cancel)
        if not any(np.array_equal(plan, q) for q in plans):
            plans.append(plan)
    return plans


def _within(p: CoverageProblem, chosen: I64) -> bool:
    """Whether ``chosen`` keeps the budget, ``max_chosen`` and every tier's limits."""
    k = len(p.tier_min)
    count = np.bincount(p.tier[chosen], minlength=k)
    spent_tier = np.bincount(p.tier[chosen], weights=p.cost[chosen], minlength=k)
    most = p.max_chosen if p.max_chosen is not None else p.n
    return bool(
        len(chosen) <= most
        and float(p.cost[chosen].sum()) <= p.budget + 1e-9
        and (count <= p.tier_max).all()
        and (count >= p.tier_min).all()
        and (spent_tier <= p.tier_budget + 1e-9).all()
    )


def _best(p: CoverageProblem, value: F64, shared: sp.csr_matrix, w: F64, plans: list[I64]) -> I64:
    """The plan of highest objective among those within every limit; ties go to the first.

    The greedy can break a tier's minimum under that tier's own budget share (it reserves
    the total budget for unmet minimums, not the tier's); a pass that did must not win on
    the money it did not spend. If none is within, the first (value per yuan) is returned.
    """
    ok = [q for q in plans if _within(p, q)] or plans[:1]
    scores = [_reduced_objective(value, shared, w, q) for q in ok]
    return ok[int(np.argmax(scores))]


def _best_greedy(
    p: CoverageProblem, value: F64, shared: sp.csr_matrix, w: F64, cancel: Cancel | None = None
) -> I64:
    """The best of the greedy's plans (:func:`_greedy_plans`)."""
    return _best(p, value, shared, w, _greedy_plans(p, value, shared, w, cancel))


def _greedy(
    p: CoverageProblem,
    value: F64,
    shared: sp.csr_matrix,
    w: F64,
    price: F64,
    cancel: Cancel | None = None,
) -> I64:
    """Lazy greedy by marginal value per ``price`` (feasibility always by the real cost)."""
    k = len(p.tier_min)
    covered = np.zeros(shared.shape[1], dtype=bool)
    taken = np.zeros(p.n, dtype=bool)
    count = np.zeros(k, dtype=np.int64)
    spent_tier = np.zeros(k)
    spent = 0.0
    indptr, indices = shared.indptr, shared.indices

    def gain(i: int) -> float:
        cols = indices[indptr[i] : indptr[i + 1]]
        return float(value[i] + w[cols[~covered[cols]]].sum())

    by_cost = [
        np.nonzero(p.tier == j)[0][np.argsort(p.cost[p.tier == j], kind="stable")] for j in range(k)
    ]

    def reserve(i: int) -> float:
        """Cost the tiers' unmet minimums still need at their cheapest, once i is taken."""
        total = 0.0
        for j in range(k):
            short = int(p.tier_min[j] - count[j]) - (1 if j == p.tier[i] else 0)
            for t in by_cost[j]:
                if short <= 0:
                    break
                if not taken[t] and t != i:
                    total += float(p.cost[t])
                    short -= 1
        return total

    most = p.max_chosen if p.max_chosen is not None else p.n

    def slots_left(i: int) -> bool:
        """Whether taking i leaves enough of ``max_chosen`` for the unmet tier minimums."""
        short = np.maximum(p.tier_min - count, 0)
        short[int(p.tier[i])] = max(int(short[int(p.tier[i])]) - 1, 0)
        return int(count.sum()) + 1 + int(short.sum()) <= most

    def fits(i: int) -> bool:
        j = int(p.tier[i])
        c = float(p.cost[i])
        return bool(
            slots_left(i)
            and count[j] < p.tier_max[j]
            and spent_tier[j] + c <= p.tier_budget[j] + 1e-9
            and spent + c + (reserve(i) if unmet() else 0.0) <= p.budget + 1e-9
        )

    def unmet() -> bool:
        return bool((count < p.tier_min).any())

    def take(i: int) -> None:
        nonlocal spent
        taken[i] = True
        j = int(p.tier[i])
        count[j] += 1
        spent_tier[j] += float(p.cost[i])
        spent += float(p.cost[i])
        cols = indices[indptr[i] : indptr[i + 1]]
        covered[cols] = True

    def run(pool: NDArray[np.bool_], stop_at: int | None, tier: int | None) -> None:
        rows = np.nonzero(pool)[0]
        start = (value + shared @ (w * ~covered))[rows] / price[rows]  # every gain at once
        heap = list(zip((-start).tolist(), rows.tolist(), strict=True))
        heapq.heapify(heap)
        while heap:
            check_cancel(cancel)
            if int(count.sum()) >= most:  # no slot left: nothing more fits
                return
            if tier is not None and stop_at is not None and count[tier] >= stop_at:
                return
            _, i = heapq.heappop(heap)
            if taken[i] or not fits(i):
                continue
            fresh = -gain(i) / float(price[i])
            if heap and fresh > heap[0][0] + 1e-12:  # stale: push back with its true ratio
                heapq.heappush(heap, (fresh, i))
                continue
            take(i)

    for j in range(k):
        if p.tier_min[j] > 0:
            run(p.tier == j, int(p.tier_min[j]), j)
    run(np.ones(p.n, dtype=bool), None, None)
    chosen = np.nonzero(taken)[0]
    if not (p.tier_min > 0).any():  # the classic guard: never worse than the best single one
        ok = (p.cost <= p.budget) & (p.tier_max[p.tier] >= 1) & (p.cost <= p.tier_budget[p.tier])
        if ok.any() and most >= 1:
            single = value + np.asarray(shared @ w).ravel()
            best = int(np.argmax(np.where(ok, single, -np.inf)))
            if single[best] > _reduced_objective(value, shared, w, chosen):
                chosen = np.array([best])
    return chosen.astype(np.int64)


def _complete(p: CoverageProblem, chosen: I64, cancel: Cancel | None = None) -> I64:
    """``chosen`` plus every candidate that still fits and adds value, best per cost first.

    HiGHS stops once within its relative gap, which can leave budget that a cheap candidate
    with value would use; this adds such candidates (a lazy greedy, ties by candidate order)
    so no plan leaves money unspent that could still buy value.
    """
    k = len(p.tier_min)
    taken = np.zeros(p.n, dtype=bool)
    taken[chosen] = True
    covered = (p.reach.T @ taken.astype(np.float64)) > 0
    count = np.bincount(p.tier[taken], minlength=k)
    spent_tier = np.bincount(p.tier[taken], weights=p.cost[taken], minlength=k)
    spent = float(p.cost[taken].sum())
    most = p.max_chosen if p.max_chosen is not None else p.n
    indptr, indices = p.reach.indptr, p.reach.indices

    def gain(i: int) -> float:
        users = indices[indptr[i] : indptr[i + 1]]
        return float(p.value[i] + p.user_value[users[~covered[users]]].sum())

    heap = [(-gain(int(i)) / float(p.cost[i]), int(i)) for i in np.nonzero(~taken)[0]]
    heapq.heapify(heap)
    while heap and int(count.sum()) < most:
        check_cancel(cancel)
        _, i = heapq.heappop(heap)
        j, c = int(p.tier[i]), float(p.cost[i])
        if (
            spent + c > p.budget + 1e-9
            or count[j] >= p.tier_max[j]
            or spent_tier[j] + c > p.tier_budget[j] + 1e-9
        ):
            continue
        g = gain(i)
        if g <= 0:
            continue
        if heap and -g / c > heap[0][0] + 1e-12:  # stale: push back with its true ratio
            heapq.heappush(heap, (-g / c, i))
            continue
        taken[i] = True
        covered[indices[indptr[i] : indptr[i + 1]]] = True
        count[j] += 1
        spent_tier[j] += c
        spent += c
    return np.nonzero(taken)[0].astype(np.int64)


#: Most improving moves of the local search after the greedy (a count, so runs agree).
SWAP_MOVES = 50


def _swaps(
    p: CoverageProblem,
    value: F64,
    shared: sp.csr_matrix,
    w: F64,
    chosen: I64,
    cancel: Cancel | None = None,
    moves: int = SWAP_MOVES,
) -> I64:
    """Local search from ``chosen``: the best feasible swap (one out, one in) or addition, again.

    Each round prices every move at once: for the set ``S`` with ``cnt[g]`` chosen
    candidates reaching group ``g``, adding ``c`` gains ``gain[c] = value[c] + sum of w over
    c's groups with cnt 0``, dropping ``s`` loses ``loss[s] = value[s] + sum of w over s's
    groups with cnt 1``, and the swap is worth ``gain[c] - loss[s] + both[c, s]``, where
    ``both`` adds back the groups only ``s`` covered that ``c`` reaches too: one sparse
    product a round (:func:`_best_swap`). A move must keep the budget, every tier's count, minimum
    and budget, and ``max_chosen``. Stops when no move gains, or after ``moves`` moves.
    The objective never falls; a start that breaks a limit is returned unchanged.
    """
    k = len(p.tier_min)
    most = p.max_chosen if p.max_chosen is not None else p.n
    taken = np.zeros(p.n, dtype=bool)
    taken[chosen] = True
    by_group = sp.csc_matrix(shared)
    for _ in range(moves):
        check_cancel(cancel)
        s = np.nonzero(taken)[0]
        count = np.bincount(p.tier[s], minlength=k)
        spent_tier = np.bincount(p.tier[s], weights=p.cost[s], minlength=k).astype(np.float64)
        spent = float(p.cost[s].sum())
        if not _within(p, s):
            break
        cnt = np.asarray(shared[s].sum(axis=0)).ravel()
        gain = value + shared @ (w * (cnt == 0))
        gain[taken] = -np.inf
        tol = 1e-9 * max(1.0, _reduced_objective(value, shared, w, s))
        best: float = tol
        move: tuple[int | None, int] | None = None
        tc = p.tier  # additions: every candidate that fits as it is
        ok = (
            (len(s) + 1 <= most)
            & (spent + p.cost <= p.budget + 1e-9)
            & (count[tc] + 1 <= p.tier_max[tc])
            & (spent_tier[tc] + p.cost <= p.tier_budget[tc] + 1e-9)
        )
        add = np.where(ok & ~taken, gain, -np.inf)
        if len(add) and add.max() > best:
            best, move = float(add.max()), (None, int(np.argmax(add)))
        out, into, worth = _best_swap(
            p, value, gain, shared, by_group, w * (cnt == 1), s, count, spent_tier
        )
        if worth > best:
            best, move = worth, (out, into)
        if move is None:
            break
        leave, join = move
        after = taken.copy()
        if leave is not None:
            after[leave] = False
        after[join] = True
        if not _within(p, np.nonzero(after)[0]):  # a rounding step past a limit: keep what was
            break
        taken = after
    return np.nonzero(taken)[0].astype(np.int64)


def _best_swap(
    p: CoverageProblem,
    value: F64,
    gain: F64,
    shared: sp.csr_matrix,
    by_group: sp.csc_matrix,
    only: F64,
    s: I64,
    count: I64,
    spent_tier: F64,
) -> tuple[int, int, float]:
    """The best feasible swap from the chosen ``s``: (out, in, worth), worth -inf if none.

    ``gain`` is -inf for chosen candidates and ``only`` is the weight of each group exactly
    one chosen candidate reaches. Swapping ``s[j]`` for ``c`` is worth
    ``gain[c] - lose[j] + both[c, j]``: ``lose[j]`` is ``value[s[j]]`` and the weight of
    the groups only ``s[j]`` covers, ``both[c, j]`` the weight of those ``c`` reaches too.
    ``both`` has at most one entry per (candidate, group) pair, as each such group has one
    chosen candidate: it is gathered from ``by_group`` (``shared`` by column). Where it is
    zero the worth is ``gain[c] - lose[j]``: the best of those, per tier of ``c``, is a
    running maximum of ``gain`` over the tier's candidates by cost, looked up at what each
    ``s[j]`` frees.
    A swap must keep the budget, both tiers' counts, minimums and budgets.
    """
    if len(s) == 0:
        return -1, -1, -np.inf
    spent = float(p.cost[s].sum())
    ts, cs = p.tier[s], p.cost[s]
    mine = sp.csr_matrix(shared[s].multiply(only[None, :]))
    lose = value[s] + np.asarray(mine.sum(axis=1)).ravel()
    top = np.full(len(s), -np.inf)
    pick = np.full(len(s), -1, dtype=np.int64)
    free = np.isfinite(gain)
    for tc in range(len(p.tier_min)):
        same = ts == tc
        room = (p.budget - spent + cs, p.tier_budget[tc] - spent_tier[tc] + same * cs)
        ok = (count[tc] + 1 - same <= p.tier_max[tc]) & ((count[ts] - 1 >= p.tier_min[ts]) | same)
        # zeros of both: the best gain among the tier's free candidates that fit the room
        group = np.nonzero(free & (p.tier == tc))[0]
        if len(group) == 0:
            continue
        group = group[np.argsort(p.cost[group], kind="stable")]
        g = gain[group]
        run = np.maximum.accumulate(g)
        at = np.maximum.accumulate(np.where(g == run, np.arange(len(g)), 0))
        pos = np.searchsorted(p.cost[group], np.minimum(*room) + 1e-9, side="right") - 1
        val = np.where(ok & (pos >= 0), run[np.maximum(pos, 0)], -np.inf)
        better = val > top
        top = np.where(better, val, top)
        pick = np.where(better, group[at[np.maximum(pos, 0)]], pick)
    worth = top - lose
    # both: each group one chosen s[j] alone covers, against every candidate reaching it
    jj, gg = mine.nonzero()
    start, size = by_group.indptr[gg], np.diff(by_group.indptr)[gg]
    at = np.repeat(start - np.cumsum(size) + size, size) + np.arange(int(size.sum()))
    both = sp.coo_matrix(
        (np.repeat(only[gg], size), (by_group.indices[at], np.repeat(jj, size))),
        shape=(p.n, len(s)),
    )
    both.sum_duplicates()
    c, j, extra = both.row, both.col, both.data
    tc, tj = p.tier[c], ts[j]
    same = tc == tj
    fits = (
        np.isfinite(gain[c])
        & (p.cost[c] <= p.budget - spent + cs[j] + 1e-9)
        & (count[tc] + 1 - same <= p.tier_max[tc])
        & (p.cost[c] <= p.tier_budget[tc] - spent_tier[tc] + same * cs[j] + 1e-9)
        & ((count[tj] - 1 >= p.tier_min[tj]) | same)
    )
    if fits.any():
        c, j = c[fits], j[fits]
        v = gain[c] - lose[j] + extra[fits]
        best_pair = int(np.argmax(v))
        jb = int(np.argmax(worth))
        if v[best_pair] > worth[jb]:
            return int(s[j[best_pair]]), int(c[best_pair]), float(v[best_pair])
    jb = int(np.argmax(worth))
    return int(s[jb]), int(pick[jb]), float(worth[jb])


def _reduced_objective(value: F64, shared: sp.csr_matrix, w: F64, chosen: I64) -> float:
    x = np.zeros(len(value))
    x[chosen] = 1.0
    return float(value @ x + w[(shared.T @ x) > 0].sum())


@dataclass
class _Model:
    """The coverage model over a subset of candidates, in ``A x <= b`` form."""

    members: I64  # candidate indices in the model
    value: F64
    shared: sp.csr_matrix
    w: F64
    group: I64
    a: sp.csr_matrix
    b: F64
    tier_rows: list[tuple[str, int, int]]  # (kind, tier, row): "max", "min", "budget", "count"


def _model(p: CoverageProblem, members: I64) -> _Model:
    value, shared, w, group = _reduce(p.value[members], p.reach[members], p.user_value)
    n, g = len(members), shared.shape[1]
    zeros = np.zeros(g)
    rows = [sp.hstack([-shared.T, sp.identity(g)], format="csr")]
    b = [np.zeros(g)]
    cost = p.cost[members]
    tier = p.tier[members]
    rows.append(sp.csr_matrix(np.concatenate([cost, zeros])[None, :]))
    b.append(np.array([p.budget]))
    tier_rows: list[tuple[str, int, int]] = []
    at = g + 1
    for j in range(len(p.tier_min)):
        member = (tier == j).astype(np.float64)
        for kind, coef, bound, needed in (
            ("max", member, float(p.tier_max[j]), p.tier_max[j] < n),
            ("min", -member, -float(p.tier_min[j]), p.tier_min[j] > 0),
            ("budget", member * cost, float(p.tier_budget[j]), np.isfinite(p.tier_budget[j])),
        ):
            if needed:
                rows.append(sp.csr_matrix(np.concatenate([coef, zeros])[None, :]))
                b.append(np.array([bound]))
                tier_rows.append((kind, j, at))
                at += 1
    if p.max_chosen is not None and p.max_chosen < n:  # tier -1: every candidate
        rows.append(sp.csr_matrix(np.concatenate([np.ones(n), zeros])[None, :]))
        b.append(np.array([float(p.max_chosen)]))
        tier_rows.append(("count", -1, at))
    a = sp.vstack(rows, format="csr")
    return _Model(members, value, shared, w, group, a, np.concatenate(b), tier_rows)


def _lp_prices(p: CoverageProblem, m: _Model) -> tuple[float, F64]:
    """The LP over ``m``'s candidates and the reduced cost it gives every candidate left out.

    With the restricted LP's row duals ``lam``, any feasible plan ``x`` satisfies
    ``value(x) <= D + sum(rc[i] for i chosen outside m)`` (Lagrangian weak duality), where
    ``D`` is the restricted LP's optimum and ``rc`` the left-out candidates' reduced costs.
    Users the model folded into one candidate, or that no candidate in the model reaches,
    are priced at their full value. Returns ``D`` and ``rc`` (``-inf`` for ``m``'s own).
    """
    g = m.shared.shape[1]
    c = -np.concatenate([m.value, m.w])
    res = linprog(c, A_ub=m.a, b_ub=m.b, bounds=(0, 1), method="highs")
    if res.status != 0:
        raise InfeasiblePlan("no choice satisfies the budget and the tier mix together")
    lam = -np.asarray(res.ineqlin.marginals)
    mu = p.user_value.astype(np.float64).copy()
    grouped = m.group >= 0
    gw = m.w[m.group[grouped]]
    mu[grouped] = np.divide(
        lam[:g][m.group[grouped]] * p.user_value[grouped],
        gw,
        out=np.zeros(int(grouped.sum())),
        where=gw > 0,
    )
    rc = p.value + p.reach @ mu - lam[g] * p.cost
    for kind, j, row in m.tier_rows:
        t = p.tier == j if j >= 0 else np.ones(p.n, dtype=bool)
        if kind in ("max", "count"):
            rc[t] -= lam[row]
        elif kind == "min":
            rc[t] += lam[row]
        else:
            rc[t] -= lam[row] * p.cost[t]
    rc[m.members] = -np.inf
    return -float(res.fun), rc


def _outside_bound(d: float, rc: F64, cost: F64, budget: float) -> float:
    """Bound on plans that use at least one left-out candidate: ``D`` plus a knapsack of rc.

    The fractional knapsack of the positive reduced costs under the budget bounds their
    sum; if none is positive, the best single (negative) one does.
    """
    out = np.isfinite(rc)
    if not out.any():
        return -np.inf
    pos = np.nonzero(out & (rc > 0))[0]
    if len(pos) == 0:
        return d + float(rc[out].max())
    order = pos[np.argsort(-rc[pos] / cost[pos], kind="stable")]
    fill = np.cumsum(cost[order])
    full = fill <= budget
    extra = float(rc[order][full].sum())
    k = int(full.sum())
    if k < len(order):
        left = budget - (fill[k - 1] if k else 0.0)
        extra += float(rc[order[k]]) * max(left, 0.0) / float(cost[order[k]])
    return d + extra


@dataclass(frozen=True)
class _MilpResult:
    chosen: I64 | None
    dual: float
    stopped: str  # "", "node limit" or "time limit"
    nodes: int


def _milp(
    m: _Model,
    node_limit: int,
    time_limit: float | None,
    rel_gap: float,
    start: I64 | None = None,
    enough: float = -np.inf,
    cancel: Cancel | None = None,
) -> _MilpResult:
    """HiGHS on the model, limited by ``node_limit`` nodes (and ``time_limit`` seconds if set).

    Through HiGHS's own interface (highspy), not ``scipy.optimize.milp``, for three things
    scipy does not pass on:

    - ``start``, a feasible plan (candidate indices; the greedy and swaps' incumbent) HiGHS
      prunes against from the root, instead of searching for one of its own;
    - ``enough``, a bound the caller already holds for plans outside the model: the
      certified bound is the larger of it and HiGHS's, so HiGHS stops once its own is
      within ``enough`` of the plan (``mip_abs_gap``), or within ``rel_gap``;
    - ``cancel``, checked in HiGHS's interrupt callbacks (simplex and branch and bound), so
      a cancelled plan stops mid-solve and raises :class:`kolmatch.errors.Cancelled`.

    HiGHS's branch and bound is deterministic for a given model, start and node count (its
    random seed is fixed at 0), so only the wall-clock limit can make two runs differ.
    """
    n, g = len(m.members), m.shared.shape[1]
    h = highspy.Highs()  # type: ignore[no-untyped-call]  # its __init__ is unannotated
    options: dict[str, bool | int | float | str] = {
        "output_flag": False,
        "mip_max_nodes": node_limit,
        "mip_rel_gap": rel_gap,
    }
    if time_limit is not None:
        options["time_limit"] = max(time_limit, 0.05)
    x0 = None
    if start is not None:
        x0 = np.isin(m.members, start).astype(np.float64)
        have = _reduced_objective(m.value, m.shared, m.w, np.nonzero(x0)[0])
        if np.isfinite(enough) and enough > have:
            options["mip_abs_gap"] = enough - have
    for name, val in options.items():
        h.setOptionValue(name, val)
    a = sp.csc_matrix(m.a)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n + g, a.shape[0]
    lp.col_cost_ = -np.concatenate([m.value, m.w])
    lp.col_lower_, lp.col_upper_ = np.zeros(n + g), np.ones(n + g)
    lp.row_lower_, lp.row_upper_ = np.full(a.shape[0], -highspy.kHighsInf), m.b
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n + g, a.shape[0]
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n + [highspy.HighsVarType.kContinuous] * g
    h.passModel(lp)
    if x0 is not None:
        sol = highspy.HighsSolution()
        sol.col_value = np.concatenate([x0, np.minimum(m.shared.T @ x0, 1.0)]).tolist()
        sol.value_valid = True
        h.setSolution(sol)
    if cancel is not None:

        def stop(event: Any) -> None:
            if cancel.cancelled:
                event.interrupt()

        h.cbSimplexInterrupt += stop
        h.cbMipInterrupt += stop
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInterrupt:
        check_cancel(cancel)
    if status == highspy.HighsModelStatus.kInfeasible:
        raise InfeasiblePlan("no choice satisfies the budget and the tier mix together")
    info = h.getInfo()
    nodes = int(info.mip_node_count)
    stopped = (
        "time limit"
        if status == highspy.HighsModelStatus.kTimeLimit
        else "node limit"
        if status == highspy.HighsModelStatus.kSolutionLimit and nodes >= node_limit
        else ""
    )
    dual = -float(info.mip_dual_bound)
    if not np.isfinite(dual):
        dual = float("inf")
    if info.primal_solution_status != 2:  # no feasible point found
        return _MilpResult(None, dual, stopped, nodes)
    x = np.asarray(h.getSolution().col_value[:n])
    chosen = m.members[np.nonzero(x > 0.5)[0]].astype(np.int64)
    return _MilpResult(chosen, dual, stopped, nodes)


def solve_coverage(
    p: CoverageProblem,
    *,
    method: str = "restricted",
    node_limit: int = NODE_LIMIT,
    time_limit: float | None = None,
    rel_gap: float = 0.005,
    target_gap: float = 0.01,
    pool: int = 100,
    max_rounds: int = 8,
    cancel: Cancel | None = None,
) -> CoverageSolution:
    """Solve a coverage instance and certify how far from optimal the answer can be.

    ``restricted`` (default), a small branch-and-price:

    1. a lazy greedy plan, improved by swaps (the incumbent: ``_swaps``);
    2. column generation: a restricted LP over the greedy's and the swaps' picks and the
       ``pool`` candidates with the best value per cost, grown by the left-out candidates whose
       reduced cost is positive until none is, so it equals the LP over every candidate;
    3. reduced-cost fixing: a plan using left-out candidate i is worth at most
       ``LP + rc[i]``; candidates that cannot lift a plan above ``(1 + target_gap)`` times
       the incumbent stay out, the rest join the set;
    4. HiGHS on the set (:func:`_milp`), started from the incumbent, for at most
       ``node_limit`` nodes; its dual bound covers plans inside it, the fixing covers plans
       outside it, and the LP bound covers both. It stops once within ``rel_gap``, or once
       its bound is no higher than the fixing's (more proof inside would not lower the
       certified bound).

    Every step is bounded by a count (rounds, nodes), never by the clock, so the answer is
    the same on every run; only ``time_limit``, if given, can cut it short (and says so).

    The best plan found is returned with its gap to the certified bound. ``full``: plain
    ``milp`` on every candidate, no greedy (the baseline the benchmark compares with).
    ``greedy``: step 1's plan (method ``local search`` if the swaps gained, else
    ``greedy``) with the certified LP bound, no MILP.

    Parameters
    ----------
    p
        The instance.
    method
        ``restricted``, ``full`` or ``greedy``.
    node_limit
        Most HiGHS branch-and-bound nodes (the deterministic work limit).
    time_limit
        A wall-clock safety net in seconds for HiGHS (None: none). An answer it cut short has
        ``stopped == "time limit"`` and may differ on a re-run: do not cache it as the answer.
    rel_gap
        HiGHS stops once its relative gap (inside the restricted set) is below this.
    target_gap
        The search stops once the certified gap over all candidates is below this.
    pool
        Size of the first restricted set beyond the greedy's picks.
    max_rounds
        Most column-generation rounds.
    cancel
        Checked between the greedy's steps and column-generation rounds, and inside HiGHS
        by its interrupt callbacks (:class:`kolmatch.errors.Cancel`). The column
        generation's LPs (scipy's ``linprog``) are not interrupted; callers that must stop
        within milliseconds run this in a process they can kill (kolmatch/engine/jobs.py).

    Raises
    ------
    InfeasiblePlan
        If no choice satisfies the budget and tier mix.
    Cancelled
        If ``cancel`` was set.
    ValueError
        If ``method`` is unknown.
    """
    if method not in ("restricted", "full", "greedy"):
        raise ValueError(f"method must be restricted, full or greedy, got {method!r}")
    if node_limit < 1:
        raise ValueError(f"node_limit must be at least 1, got {node_limit}")
    t0 = time.perf_counter()
    _check_feasible(p)
    if method == "full":
        m = _model(p, np.arange(p.n, dtype=np.int64))
        check_cancel(cancel)
        res = _milp(m, node_limit, time_limit, rel_gap, cancel=cancel)
        chosen = _complete(
            p, res.chosen if res.chosen is not None else np.zeros(0, np.int64), cancel
        )
        obj = coverage_objective(p, chosen)
        bound = max(res.dual, obj)
        return CoverageSolution(
            chosen,
            obj,
            bound,
            _gap(bound, obj),
            "milp",
            float("nan"),
            time.perf_counter() - t0,
            m.shared.shape[1],
            res.stopped,
            res.nodes,
        )
    value, shared, w, _ = _reduce(p.value, p.reach, p.user_value)
    plans = _greedy_plans(p, value, shared, w, cancel)
    greedy = _best(p, value, shared, w, plans)
    g_obj = coverage_objective(p, greedy)
    chosen, obj, how = greedy, g_obj, "greedy"
    swapped = _best(p, value, shared, w, [_swaps(p, value, shared, w, q, cancel) for q in plans])
    s_obj = coverage_objective(p, swapped)
    if s_obj > obj + 1e-9 * max(1.0, abs(obj)):
        chosen, obj, how = swapped, s_obj, "local search"
    standalone = p.value + p.reach @ p.user_value
    ratio = np.where(p.cost <= p.budget, standalone / p.cost, -np.inf)
    start = [greedy, chosen, np.argsort(-ratio, kind="stable")[:pool]]
    for j in range(len(p.tier_min)):  # the cheapest of each tier keep tier minimums feasible
        t = np.nonzero(p.tier == j)[0]
        start.append(t[np.argsort(p.cost[t], kind="stable")][: int(p.tier_min[j])])
    members = np.unique(np.concatenate(start)).astype(np.int64)
    # 1. column generation: grow the set until no left-out candidate has a positive
    #    reduced cost, so the restricted LP is the LP over every candidate
    for _ in range(max_rounds):
        check_cancel(cancel)
        m = _model(p, members)
        d, rc = _lp_prices(p, m)
        priced_in = np.nonzero(rc > 1e-9 * max(1.0, obj))[0]
        if len(priced_in) == 0:
            break
        priced_in = priced_in[np.argsort(-rc[priced_in], kind="stable")][: max(pool // 2, 1)]
        members = np.union1d(members, priced_in).astype(np.int64)
    converged = not (rc > 1e-9 * max(1.0, obj)).any()
    full_lp = d + float(np.maximum(rc[np.isfinite(rc)], 0.0).sum())
    bound = full_lp
    if method == "greedy" or _gap(bound, obj) <= rel_gap:
        return _solution(chosen, obj, max(bound, obj), how, g_obj, t0, m)
    # 2. reduced-cost fixing: with converged duals, a plan that uses left-out candidate i is
    #    worth at most d + rc[i]; those that cannot beat the target stay out, the rest join
    outside = -np.inf
    if converged:
        relevant = np.isfinite(rc) & (d + rc > obj * (1 + target_gap))
        fixed = np.isfinite(rc) & ~relevant
        outside = float((d + rc[fixed]).max()) if fixed.any() else -np.inf
        members = np.union1d(members, np.nonzero(relevant)[0]).astype(np.int64)
        m = _model(p, members)
    # 3. HiGHS on the set: its bound covers plans inside it; the fixing covers the rest
    left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
    check_cancel(cancel)
    res = _milp(m, node_limit, left, rel_gap, start=chosen, enough=outside, cancel=cancel)
    if res.chosen is not None:
        m_chosen = _complete(p, res.chosen, cancel)
        m_obj = coverage_objective(p, m_chosen)
        if m_obj > obj + 1e-9 * max(1.0, abs(obj)):
            chosen, obj, how = m_chosen, m_obj, "milp"
    if not converged:  # left-out candidates priced by the knapsack of their reduced costs
        outside = _outside_bound(d, rc, p.cost, p.budget)
    bound = min(full_lp, max(res.dual, outside))
    return _solution(chosen, obj, max(bound, obj), how, g_obj, t0, m, res)


def _solution(
    chosen: I64,
    obj: float,
    bound: float,
    how: str,
    g_obj: float,
    t0: float,
    m: _Model,
    res: _MilpResult | None = None,
) -> CoverageSolution:
    return CoverageSolution(
        np.sort(chosen),
        obj,
        bound,
        _gap(bound, obj),
        how,
        g_obj,
        time.perf_counter() - t0,
        m.shared.shape[1],
        res.stopped if res is not None else "",
        res.nodes if res is not None else 0,
    )


def _gap(bound: float, obj: float) -> float:
    if obj <= 0:
        return 0.0 if bound <= 0 else float("inf")
    return max(0.0, (bound - obj) / obj)
