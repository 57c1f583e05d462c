"""Stable two-sided matching: deferred acceptance under each side's limits, blocking pairs.

Talents choose too. Over the same candidate pairs as the market assignment, each side
ranks the other (merchants by expected value, talents by what a collaboration pays them and
how well the brand fits their own content) and chooses greedily within its limits: a
merchant its best talents within its budget and most talents, a talent its best merchants
within its free slots and never two competitors. Deferred acceptance (the generalised,
cumulative-offer form) finds a matching in which no pair would both choose each other over
what they hold: zero blocking pairs, which :func:`blocking_pairs` counts for any matching.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch.errors import BadArgument, Cancel, check_cancel
from kolmatch.matching.features import MarketFeatures

__all__ = [
    "TwoSidedMarket",
    "blocking_pairs",
    "deferred_acceptance",
    "stabilise",
    "talent_preferences",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Mask = NDArray[np.bool_]


@dataclass(frozen=True)
class TwoSidedMarket:
    """Candidate pairs with both sides' scores and limits.

    Attributes
    ----------
    pair_merchant, pair_talent
        (N,) the pairs.
    merchant_score, talent_score
        (N,) how much the merchant, and the talent, values the pair (higher is better).
    merchant_quota, talent_quota
        Most partners per merchant, per talent.
    cost
        (N,) the talent's fee, charged to the merchant's budget (optional).
    merchant_budget
        (M,) most fees per merchant, ``inf`` for none (optional).
    competitors
        (M, M) sparse, nonzero where two merchants compete: a talent serves at most one
        of them (optional).
    """

    pair_merchant: I64
    pair_talent: I64
    merchant_score: F64
    talent_score: F64
    merchant_quota: I64
    talent_quota: I64
    cost: F64 | None = None
    merchant_budget: F64 | None = None
    competitors: sp.csr_matrix | None = None

    @property
    def n(self) -> int:
        return len(self.pair_merchant)


def talent_preferences(f: MarketFeatures, pair_merchant: I64, pair_talent: I64, gmv: F64) -> F64:
    """What each pair is worth to the talent: pay, scaled by brand fit and the merchant's risk.

    pay = fee + commission x expected GMV (the merchant's products' mean commission, else
    the talent's own rate); fit = the talent's content mix . the merchant's category mix;
    the talent's score = pay x (0.5 + 0.5 fit) x (1 - merchant risk).
    """
    fee = np.nan_to_num(f.talent_fee[pair_talent], nan=0.0)
    rate = f.merchant_commission[pair_merchant]
    own = np.nan_to_num(f.talent_commission[pair_talent], nan=0.0)
    rate = np.where(rate > 0, rate, own)
    fit = np.einsum("ij,ij->i", f.talent_category[pair_talent], f.merchant_mix[pair_merchant])
    pay = fee + rate * gmv
    return pay * (0.5 + 0.5 * fit) * (1.0 - f.merchant_risk[pair_merchant])  # type: ignore[no-any-return]


class _Chooser:
    """Greedy choice functions of both sides: best first, add while the limits allow."""

    def __init__(self, mk: TwoSidedMarket) -> None:
        self.mk = mk
        n = mk.n
        # each owner's pairs, best first (ties by the other side's index, then pair index)
        self.m_order = _grouped(mk.pair_merchant, mk.merchant_score, mk.pair_talent)
        self.t_rank = np.empty(n, dtype=np.int64)
        order = np.lexsort((np.arange(n), mk.pair_merchant, -mk.talent_score, mk.pair_talent))
        self.t_rank[order] = np.arange(n)
        self.m_rank = np.empty(n, dtype=np.int64)
        order = np.lexsort((np.arange(n), mk.pair_talent, -mk.merchant_score, mk.pair_merchant))
        self.m_rank[order] = np.arange(n)
        self.cost = mk.cost if mk.cost is not None else np.zeros(n)
        self.rivals = mk.competitors

    def merchant_choice(self, owner: int, pairs: list[int]) -> list[int]:
        """The merchant's greedy choice among ``pairs`` (its own)."""
        mk = self.mk
        m = owner
        budget = float(mk.merchant_budget[m]) if mk.merchant_budget is not None else np.inf
        out: list[int] = []
        spent = 0.0
        for i in sorted(pairs, key=lambda j: self.m_rank[j]):
            if len(out) >= mk.merchant_quota[m]:
                break
            if spent + self.cost[i] <= budget + 1e-9:
                out.append(i)
                spent += float(self.cost[i])
        return out

    def talent_choice(self, owner: int, pairs: list[int]) -> list[int]:
        """The talent's greedy choice among ``pairs`` (its own): never two competitors."""
        mk = self.mk
        out: list[int] = []
        taken: set[int] = set()
        for i in sorted(pairs, key=lambda j: self.t_rank[j]):
            if len(out) >= mk.talent_quota[owner]:
                break
            m = int(mk.pair_merchant[i])
            if self.rivals is not None and taken & set(self.rivals[m].indices.tolist()):
                continue
            out.append(i)
            taken.add(m)
        return out


def _grouped(owner: I64, score: F64, tie: I64) -> list[I64]:
    order = np.lexsort((np.arange(len(owner)), tie, -score, owner))
    bounds = np.searchsorted(owner[order], np.arange(int(owner.max(initial=-1)) + 2))
    return [order[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]


def deferred_acceptance(
    mk: TwoSidedMarket, *, proposing: str = "merchants", cancel: Cancel | None = None
) -> Mask:
    """A stable matching: the proposing side's best, under both sides' limits.

    Cumulative-offer deferred acceptance: each proposer offers its choice among the pairs
    not yet rejected; each receiver holds its choice among what it is offered and rejects
    the rest, for good; proposers with rejections choose again. With quotas alone (no
    budgets, no competitors) this is Gale-Shapley with capacities and the result is the
    proposing side's best stable matching. With budgets or competitors, the few pairs
    left blocking are then satisfied by :func:`stabilise`; :func:`blocking_pairs` tells
    whether any remain.

    Parameters
    ----------
    mk
        The pairs, scores and limits.
    proposing
        ``merchants`` or ``talents``.
    cancel
        Checked every proposal round (:class:`kolmatch.errors.Cancel`); None: never.

    Returns
    -------
    ndarray of bool
        (N,) the chosen pairs.

    Examples
    --------
    Two merchants both prefer talent 0, who prefers merchant 1:

    >>> import numpy as np
    >>> one = np.ones(2, dtype=np.int64)
    >>> mk = TwoSidedMarket(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]),
    ...     np.array([2., 1., 2., 1.]), np.array([1., 1., 2., 1.]), one, one)
    >>> deferred_acceptance(mk).tolist()
    [False, True, True, False]
    """
    if proposing not in ("merchants", "talents"):
        raise BadArgument("--proposing", f"must be merchants or talents, got {proposing!r}")
    n = mk.n
    if n == 0:
        return np.zeros(0, dtype=bool)
    ch = _Chooser(mk)
    by_m = _grouped(mk.pair_merchant, np.zeros(n), np.arange(n))
    by_t = _grouped(mk.pair_talent, np.zeros(n), np.arange(n))
    choose: Callable[[int, list[int]], list[int]]
    receive: Callable[[int, list[int]], list[int]]
    if proposing == "merchants":
        proposer_of, receiver_of = mk.pair_merchant, mk.pair_talent
        own, choose, receive = by_m, ch.merchant_choice, ch.talent_choice
    else:
        proposer_of, receiver_of = mk.pair_talent, mk.pair_merchant
        own, choose, receive = by_t, ch.talent_choice, ch.merchant_choice
    rejected = np.zeros(n, dtype=bool)
    offered = np.zeros(n, dtype=bool)
    held: dict[int, list[int]] = {}
    queue = deque(range(len(own)))
    while queue:
        check_cancel(cancel)
        p = queue.popleft()
        if p >= len(own) or len(own[p]) == 0:
            continue
        pick = choose(p, [int(i) for i in own[p] if not rejected[i]])
        picked = set(pick)
        # an offer the proposer no longer chooses (a competitor clash it can now avoid)
        # is withdrawn; it may be offered again later
        for i in own[p]:
            if offered[i] and not rejected[i] and int(i) not in picked:
                offered[i] = False
                r = int(receiver_of[i])
                held[r] = [j for j in held.get(r, []) if j != i]
        new = [i for i in pick if not offered[i]]
        by_receiver: dict[int, list[int]] = {}
        for i in new:
            offered[i] = True
            by_receiver.setdefault(int(receiver_of[i]), []).append(i)
        for r, offers in by_receiver.items():
            pool = held.get(r, []) + offers
            keep = receive(r, pool)
            kept = set(keep)
            held[r] = keep
            for i in pool:
                if i not in kept:
                    rejected[i] = True
                    queue.append(int(proposer_of[i]))
    chosen = np.zeros(n, dtype=bool)
    for keep in held.values():
        chosen[keep] = True
    if mk.merchant_budget is not None or mk.competitors is not None:
        chosen = stabilise(mk, chosen, cancel=cancel)
    return chosen


def stabilise(
    mk: TwoSidedMarket,
    chosen: Mask,
    *,
    max_steps: int | None = None,
    cancel: Cancel | None = None,
) -> Mask:
    """Satisfy blocking pairs one at a time until none is left (or ``max_steps`` is spent).

    With budgets and competitor exclusivity the two sides' choices are not substitutable,
    so deferred acceptance alone may leave a few blocking pairs (a talent that rejected a
    merchant for one it later dropped for a competitor). Each step takes the lowest
    blocking pair, lets both sides choose again with it (dropping what they no longer
    choose) and re-examines only the pairs whose merchant or talent changed (Roth and
    Vande Vate's path to stability, in a deterministic order).
    """
    import heapq

    ch = _Chooser(mk)
    x = chosen.copy()
    m_has: dict[int, set[int]] = {}
    t_has: dict[int, set[int]] = {}
    for i in np.nonzero(x)[0].tolist():
        m_has.setdefault(int(mk.pair_merchant[i]), set()).add(i)
        t_has.setdefault(int(mk.pair_talent[i]), set()).add(i)
    by_m = _grouped(mk.pair_merchant, np.zeros(mk.n), np.arange(mk.n))
    by_t = _grouped(mk.pair_talent, np.zeros(mk.n), np.arange(mk.n))
    work = np.nonzero(~x)[0].tolist()
    heapq.heapify(work)
    queued = ~x
    steps = 0
    limit = max_steps if max_steps is not None else 20 * mk.n
    while work and steps < limit:
        check_cancel(cancel)
        i = heapq.heappop(work)
        queued[i] = False
        if x[i]:
            continue
        m, t = int(mk.pair_merchant[i]), int(mk.pair_talent[i])
        m_new = set(ch.merchant_choice(m, [*m_has.get(m, set()), i]))
        t_new = set(ch.talent_choice(t, [*t_has.get(t, set()), i]))
        if i not in m_new or i not in t_new:
            continue
        steps += 1
        dropped = (m_has.get(m, set()) - m_new) | (t_has.get(t, set()) - t_new)
        x[i] = True
        m_has.setdefault(m, set()).add(i)
        t_has.setdefault(t, set()).add(i)
        touched_m, touched_t = {m}, {t}
        for j in dropped:
            x[j] = False
            jm, jt = int(mk.pair_merchant[j]), int(mk.pair_talent[j])
            m_has[jm].discard(j)
            t_has[jt].discard(j)
            touched_m.add(jm)
            touched_t.add(jt)
        for pairs in [*(by_m[a] for a in touched_m), *(by_t[b] for b in touched_t)]:
            for j in pairs.tolist():
                if not x[j] and not queued[j]:
                    queued[j] = True
                    heapq.heappush(work, j)
    return x


def blocking_pairs(mk: TwoSidedMarket, chosen: Mask, *, cancel: Cancel | None = None) -> int:
    """How many unchosen pairs both sides would choose given what they hold (0: stable).

    Pair (m, t) blocks when m's choice among its partners plus t includes t, and t's
    choice among its partners plus m includes m (the same greedy choices as
    :func:`deferred_acceptance`: quotas, budgets, competitors).

    Examples
    --------
    >>> import numpy as np
    >>> one = np.ones(2, dtype=np.int64)
    >>> mk = TwoSidedMarket(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]),
    ...     np.array([2., 1., 2., 1.]), np.array([1., 1., 2., 1.]), one, one)
    >>> blocking_pairs(mk, np.array([True, False, False, True]))
    1
    """
    if mk.n == 0:
        return 0
    ch = _Chooser(mk)
    m_has: dict[int, list[int]] = {}
    t_has: dict[int, list[int]] = {}
    for i in np.nonzero(chosen)[0].tolist():
        m_has.setdefault(int(mk.pair_merchant[i]), []).append(i)
        t_has.setdefault(int(mk.pair_talent[i]), []).append(i)
    count = 0
    for k, i in enumerate(np.nonzero(~chosen)[0].tolist()):
        if k % 256 == 0:
            check_cancel(cancel)
        m, t = int(mk.pair_merchant[i]), int(mk.pair_talent[i])
        if i in ch.merchant_choice(m, [*m_has.get(m, []), i]) and i in ch.talent_choice(
            t, [*t_has.get(t, []), i]
        ):
            count += 1
    return count
