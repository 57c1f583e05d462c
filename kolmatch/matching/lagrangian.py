"""Market assignment at scale: Lagrangian relaxation with exactly solved merchant subproblems.

Dualising the constraints that couple merchants (talent capacity, competitor clashes) splits
the assignment into one small problem per merchant: choose a subset of its K candidates
within its budget, fewest / most talents and agency caps, maximising reduced values. With
K <= 14 every subset is enumerated, for all merchants at once, as one matrix product, so
each subproblem is solved exactly and the Lagrangian value is a certified upper bound.
Subgradient steps tighten the bound; a repair heuristic turns each iteration's choices into a
feasible assignment. The gap between the two is what the solver certifies.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray

from kolmatch import progress
from kolmatch.errors import BadArgument, Cancel, check_cancel
from kolmatch.matching.assign import AssignmentProblem, AssignmentSolution

__all__ = ["MAX_CANDIDATES", "solve_assignment_lagrangian"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Mask = NDArray[np.bool_]

#: Most candidate pairs per merchant the subset enumeration allows (2**14 subsets).
MAX_CANDIDATES = 14


class _Blocks:
    """The pairs laid out as an (M, K) table, every subset's static feasibility precomputed."""

    def __init__(self, p: AssignmentProblem) -> None:
        M = len(p.merchant_budget)
        per = np.bincount(p.pair_merchant, minlength=M)
        K = int(per.max(initial=0))
        if K > MAX_CANDIDATES:
            raise BadArgument(
                "--candidates",
                f"the Lagrangian solver enumerates subsets of at most {MAX_CANDIDATES} "
                f"candidates per merchant; a merchant has {K}",
            )
        order = np.lexsort((np.arange(p.n_pairs), p.pair_merchant))
        start = np.concatenate([[0], np.cumsum(per)[:-1]])
        slot = np.arange(p.n_pairs) - start[p.pair_merchant[order]]
        idx = np.full((M, max(K, 1)), -1, dtype=np.int64)
        idx[p.pair_merchant[order], slot] = order
        self.idx, self.K = idx, max(K, 1)
        # every subset of K slots, as rows of 0/1
        subsets = ((np.arange(2**self.K)[:, None] >> np.arange(self.K)[None, :]) & 1).astype(
            np.float64
        )
        self.subsets = subsets
        pad = (idx < 0).astype(np.float64)
        cost = np.where(idx >= 0, p.cost[np.maximum(idx, 0)], 0.0)
        size = subsets.sum(axis=1)
        fees = cost @ subsets.T  # (M, 2^K)
        ok = (pad @ subsets.T) == 0
        ok &= fees <= p.merchant_budget[:, None] + 1e-9
        ok &= size[None, :] <= p.merchant_max[:, None]
        if p.groups is not None:
            slot_of = np.full(p.n_pairs, -1, dtype=np.int64)
            slot_of[order] = slot
            for g in range(p.groups.shape[0]):
                members = p.groups[g].indices
                m = int(p.pair_merchant[members[0]])
                taken = subsets[:, slot_of[members]].sum(axis=1)
                ok[m] &= taken <= p.group_cap[g]
        # merchants' minimums are not in the subproblems: the repair cannot promise them
        # under contended slots, so the bound covers the problem without them (reported)
        self.feasible = ok

    def best(self, reduced: F64) -> tuple[F64, I64]:
        """Each merchant's best feasible subset under ``reduced`` pair values."""
        r = np.where(self.idx >= 0, reduced[np.maximum(self.idx, 0)], 0.0)
        val = r @ self.subsets.T
        val[~self.feasible] = -np.inf
        pick = np.argmax(val, axis=1)
        return val[np.arange(len(pick)), pick], pick

    def chosen(self, pick: I64, n: int) -> Mask:
        x = np.zeros(n, dtype=bool)
        use = self.subsets[pick] > 0  # (M, K)
        x[self.idx[use & (self.idx >= 0)]] = True
        return x


def _repair(p: AssignmentProblem, x: Mask, order: I64) -> Mask:
    """A feasible assignment from a possibly infeasible one: drop, then fill by value."""
    x = x.copy()
    T = len(p.talent_capacity)
    M = len(p.merchant_budget)
    # capacity: keep each talent's most valuable pairs
    chosen = np.nonzero(x)[0]
    chosen = chosen[np.lexsort((chosen, -p.value[chosen], p.pair_talent[chosen]))]
    rank = np.zeros(len(chosen), dtype=np.int64)
    if len(chosen):
        tal = p.pair_talent[chosen]
        first = np.concatenate([[0], np.nonzero(np.diff(tal))[0] + 1])
        rank = np.arange(len(chosen)) - np.repeat(first, np.diff(np.append(first, len(chosen))))
        x[chosen[rank >= p.talent_capacity[tal]]] = False
    clash: dict[int, list[int]] = {}
    for a, b in p.conflicts.tolist():
        clash.setdefault(a, []).append(b)
        clash.setdefault(b, []).append(a)
        if x[a] and x[b]:
            x[b if p.value[b] < p.value[a] or (p.value[b] == p.value[a] and b > a) else a] = False
    # group caps were respected by every subproblem and dropping keeps them; fill greedily
    used_t = np.bincount(p.pair_talent[x], minlength=T)
    used_m = np.bincount(p.pair_merchant[x], minlength=M)
    spent = np.bincount(p.pair_merchant[x], weights=p.cost[x], minlength=M).astype(np.float64)
    group_of: dict[int, list[int]] = {}
    group_used = np.zeros(0)
    if p.groups is not None and p.groups.shape[0]:
        for g in range(p.groups.shape[0]):
            for i in p.groups[g].indices.tolist():
                group_of.setdefault(i, []).append(g)
        group_used = np.asarray(p.groups @ x.astype(np.float64)).ravel()
    for i in order.tolist():
        if x[i]:
            continue
        t, m = int(p.pair_talent[i]), int(p.pair_merchant[i])
        if used_t[t] >= p.talent_capacity[t] or used_m[m] >= p.merchant_max[m]:
            continue
        if spent[m] + p.cost[i] > p.merchant_budget[m] + 1e-9:
            continue
        if any(x[j] for j in clash.get(i, ())):
            continue
        if any(group_used[g] >= p.group_cap[g] for g in group_of.get(i, ())):
            continue
        x[i] = True
        used_t[t] += 1
        used_m[m] += 1
        spent[m] += p.cost[i]
        for g in group_of.get(i, ()):
            group_used[g] += 1
    return x


def _improve(p: AssignmentProblem, blocks: _Blocks, y: Mask, order: I64, rounds: int = 10) -> Mask:
    """Let every merchant re-choose its best subset among what a feasible ``y`` leaves it.

    A merchant may keep its own pairs and take any talent with a free slot whose pair clashes
    with nobody else's choice; each solves its subset problem exactly (budget, most talents,
    agency caps), and the repair settles talents two merchants took at once. Kept while the
    total value rises.
    """
    best, best_val = y, float(p.value[y].sum())
    for _ in range(rounds):
        used = np.bincount(p.pair_talent[best], minlength=len(p.talent_capacity))
        open_ = best | (used < p.talent_capacity)[p.pair_talent]
        if len(p.conflicts):
            a, b = p.conflicts[:, 0], p.conflicts[:, 1]
            other = p.pair_merchant[a] != p.pair_merchant[b]
            open_[a[other & best[b]]] = False
            open_[b[other & best[a]]] = False
            open_ |= best
        _, pick = blocks.best(np.where(open_, p.value, -1e18))
        z = _repair(p, blocks.chosen(pick, p.n_pairs) & open_, order)
        val = float(p.value[z].sum())
        if val <= best_val * (1 + 1e-12):
            break
        best, best_val = z, val
    return best


def solve_assignment_lagrangian(
    p: AssignmentProblem,
    *,
    iterations: int = 3000,
    time_limit: float | None = None,
    target_gap: float = 0.005,
    repair_every: int = 25,
    trace: list[tuple[int, float, float, float, float]] | None = None,
    cancel: Cancel | None = None,
) -> AssignmentSolution:
    """Maximise total value under every limit by Lagrangian relaxation; certify the gap.

    Talent capacity and competitor clashes are priced (multipliers ``lam`` per talent,
    ``mu`` per clash); every merchant then solves its own subset problem exactly (budget,
    most talents, agency caps), all merchants in one matrix product. Merchants' minimums
    are left to the repair, which adds pairs while any fits; the solution says
    ``minimums_relaxed`` and the market report lists merchants left below theirs. The sum of
    their optima plus the prices is an upper bound (weak duality) for every feasible
    assignment; Polyak subgradient steps lower it. Every ``repair_every`` iterations the
    merchants' choices are repaired into a feasible assignment (drop over-capacity and
    clashing pairs, lowest value first, then add pairs by value while every limit allows).

    Parameters
    ----------
    p
        The problem; at most :data:`MAX_CANDIDATES` pairs per merchant.
    iterations
        Stop after this many: a count, so the same problem gives the same answer on any
        machine load.
    time_limit
        A safety net in seconds, off by default; an answer it cuts short says so in its
        ``method`` ("lagrangian, cut short by the time limit").
    target_gap
        Stop once the certified gap is below this.
    repair_every
        Iterations between repairs.
    trace
        If given, (iteration, dual, bound, best, step scale) is appended per iteration.
    cancel
        Checked every iteration (:class:`kolmatch.errors.Cancel`); None: never.

    Raises
    ------
    BadArgument
        If a merchant has more than :data:`MAX_CANDIDATES` candidates.
    """
    t0 = time.perf_counter()
    n = p.n_pairs
    if n == 0:
        return AssignmentSolution(np.zeros(0, dtype=bool), 0.0, 0.0, 0.0, "lagrangian", 0.0)
    blocks = _Blocks(p)
    T = len(p.talent_capacity)
    cap = p.talent_capacity.astype(np.float64)
    lam = np.zeros(T)
    mu = np.zeros(len(p.conflicts))
    ca, cb = p.conflicts[:, 0], p.conflicts[:, 1]
    order = np.lexsort((np.arange(n), -p.value))
    best_x = _repair(p, np.zeros(n, dtype=bool), order)
    best = float(p.value[best_x].sum())
    bound = np.inf
    theta, stall = 2.0, 0
    cut_short = False
    # the line counts iterations against the most allowed (the gap test usually stops sooner)
    with progress.task(
        f"solving the assignment ({n:,} pairs, Lagrangian)", iterations, unit="iterations"
    ) as shown:
        for it in range(iterations):
            check_cancel(cancel)
            shown.update(it + 1)
            reduced = p.value - lam[p.pair_talent]
            if len(mu):
                reduced = reduced - np.bincount(ca, mu, n) - np.bincount(cb, mu, n)
            val, pick = blocks.best(reduced)
            x = blocks.chosen(pick, n)
            dual = float(val[np.isfinite(val)].sum() + lam @ cap + mu.sum())
            if not np.isfinite(bound) or dual < bound - 1e-9 * max(1.0, abs(bound)):
                bound, stall = dual, 0
            else:
                stall += 1
                if stall >= 25:
                    theta, stall = max(theta / 2, 0.005), 0
            if it % repair_every == 0 or it == iterations - 1:
                y = _improve(p, blocks, _repair(p, x, order), order)
                obj = float(p.value[y].sum())
                if obj > best:
                    best, best_x = obj, y
            if trace is not None:
                trace.append((it, dual, bound, best, theta))
            if (bound - best) <= target_gap * max(best, 1e-9):
                break
            if time_limit is not None and time.perf_counter() - t0 > time_limit:
                cut_short = it < iterations - 1
                break
            g_lam = cap - np.bincount(p.pair_talent[x], minlength=T)
            g_mu = 1.0 - x[ca].astype(np.float64) - x[cb] if len(mu) else np.zeros(0)
            # only violated or priced constraints move
            g_lam = np.where((g_lam < 0) | (lam > 0), g_lam, 0.0)
            g_mu = np.where((g_mu < 0) | (mu > 0), g_mu, 0.0)
            norm = float(g_lam @ g_lam + g_mu @ g_mu)
            if norm == 0:  # the relaxed choice is feasible and complementary: optimal
                y = _repair(p, x, order)
                obj = float(p.value[y].sum())
                if obj > best:
                    best, best_x = obj, y
                bound = min(bound, dual)
                break
            step = theta * max(dual - best, 1e-9 * max(1.0, best)) / norm
            lam = np.maximum(0.0, lam - step * g_lam)
            mu = np.maximum(0.0, mu - step * g_mu)
    bound = max(bound, best)
    gap = (bound - best) / best if best > 0 else 0.0
    return AssignmentSolution(
        best_x,
        best,
        bound,
        gap,
        "lagrangian, cut short by the time limit" if cut_short else "lagrangian",
        time.perf_counter() - t0,
        minimums_relaxed=True,
    )
