"""The market-wide assignment for one window, in ids: candidates, a solver, a report."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kolmatch.errors import BadArgument, Cancel, LimitExceeded, check_cancel
from kolmatch.matching.assign import (
    AGENCY_CAP,
    AssignmentProblem,
    AssignmentSolution,
    build_assignment,
    solve_assignment,
)
from kolmatch.matching.availability import Window
from kolmatch.matching.eligibility import merchant_eligibility
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.lagrangian import MAX_CANDIDATES, solve_assignment_lagrangian
from kolmatch.matching.stable import (
    TwoSidedMarket,
    blocking_pairs,
    deferred_acceptance,
    talent_preferences,
)

__all__ = [
    "JOB_MAX_PAIRS",
    "METHODS",
    "MILP_MAX_PAIRS",
    "QUERY_MAX_PAIRS",
    "MarketAssignment",
    "assign_market",
    "assignment_pairs",
]

#: Solvers of :func:`assign_market`.
METHODS = ("auto", "milp", "lagrangian", "stable")
#: Up to this many candidate pairs ``auto`` uses HiGHS's branch and bound on the whole
#: problem; above it, the Lagrangian decomposition (HiGHS does not finish presolving the m
#: market's 49k pairs and 30k clash rows in a minute).
MILP_MAX_PAIRS = 10_000
#: The API's ceilings on an assignment's candidate pairs (merchants taking part x
#: ``candidates``), costed before anything is built (docs/api.md, "Bounded work"). The
#: ``assignment`` query answers within its request: on the s market (2 cores) 2,940 pairs
#: took 4.3 s idle and ~8 s beside other requests, so 3,000 is its ceiling; larger problems
#: run as jobs (``startAssignment``), up to the m market's 50,000 (its 49k pairs, Lagrangian).
QUERY_MAX_PAIRS = 3_000
JOB_MAX_PAIRS = 60_000


@dataclass(frozen=True)
class MarketAssignment:
    """A market-wide assignment in ids, with totals and the solver's certificate."""

    window: str
    pairs: list[tuple[str, str, float, float]]  # (merchant, talent, expected value, fee)
    objective: float
    bound: float
    gap: float
    method: str
    seconds: float  # solver time (every round)
    build_seconds: float  # candidate generation time
    candidates: int  # candidate pairs
    merchants_served: int
    merchants_below_minimum: list[str]  # of those taking part (eligible, in the campaign)
    minimums_relaxed: bool
    left_out_merchants: dict[str, int]  # merchants with no candidates, by reason (compliance,
    # not in the campaign, no eligible products, ...: build_assignment)
    blocking_pairs: int | None = None  # for the stable option and on request


def assign_market(
    f: MarketFeatures,
    *,
    candidates: int = 10,
    campaign: str | None = None,
    agency_cap: int | None = AGENCY_CAP,
    method: str = "auto",
    proposing: str = "merchants",
    time_limit: float = 50.0,
    rel_gap: float = 0.005,
    max_pairs: int | None = None,
    cancel: Cancel | None = None,
) -> MarketAssignment:
    """Assign the whole market for one window.

    Parameters
    ----------
    f
        Market features.
    candidates
        Candidate talents per merchant (the sparse candidate set).
    campaign
        Assign for this campaign's window, among the merchants that joined it (the others
        are counted in ``left_out_merchants`` as ``not in the campaign``, as ``match`` and
        ``plan`` refuse them); default the coming period, every merchant.
    agency_cap
        Most talents of one agency per merchant (None: no limit).
    method
        ``milp``: the most total expected value under every limit, by HiGHS's branch and
        bound, with its certified gap. ``lagrangian``: the same objective by Lagrangian
        decomposition (merchants' minimums left to a repair step), for large markets.
        ``auto``: ``milp`` up to :data:`MILP_MAX_PAIRS` candidate pairs, else
        ``lagrangian``. ``stable``: deferred acceptance over the same candidates, each side choosing
        greedily within its limits (merchants: budget and most talents; talents: free
        slots, never two competitors); minimums and the agency cap are not part of the
        stable model (docs/optimisation.md). Every method assigns only eligible merchants,
        talents and products (:mod:`kolmatch.matching.eligibility`): they share the
        candidates of :func:`~kolmatch.matching.assign.build_assignment`.
    proposing
        For ``stable``: ``merchants`` or ``talents`` propose.
    time_limit, rel_gap
        For ``milp``: HiGHS's limits.
    max_pairs
        Refuse, before building anything, a problem of more candidate pairs than this
        (:func:`assignment_pairs`; the API's :data:`QUERY_MAX_PAIRS`, :data:`JOB_MAX_PAIRS`).
    cancel
        Checked per merchant while building, between solver iterations and before HiGHS
        (:class:`kolmatch.errors.Cancel`); None: never cancelled.

    Raises
    ------
    BadArgument
        If an argument is out of range or the method unknown.
    LimitExceeded
        If the problem has more candidate pairs than ``max_pairs``.
    Cancelled
        If ``cancel`` was set.
    UnknownId
        If the campaign is not in the graph.
    """

    if method not in METHODS:
        raise BadArgument("--method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    if not math.isfinite(time_limit) or time_limit <= 0:
        raise BadArgument("--time-limit", f"must be a positive number of seconds, got {time_limit}")
    if method == "lagrangian" and candidates > MAX_CANDIDATES:
        raise BadArgument(
            "--candidates", f"the lagrangian method takes at most {MAX_CANDIDATES} per merchant"
        )
    if max_pairs is not None:
        pairs = assignment_pairs(f, candidates=candidates, campaign=campaign)
        if pairs > max_pairs:
            raise LimitExceeded(
                "--candidates",
                pairs,
                max_pairs,
                f"candidate pairs ({pairs // max(candidates, 1):,} merchants x {candidates})",
                "fewer candidates per merchant, or one campaign's merchants",
            )
    t0 = time.perf_counter()
    p, window, left_out = build_assignment(
        f, candidates=candidates, campaign=campaign, agency_cap=agency_cap, cancel=cancel
    )
    built = time.perf_counter() - t0
    mk = _two_sided(f, p)
    check_cancel(cancel)
    if method == "stable":
        t1 = time.perf_counter()
        chosen = deferred_acceptance(mk, proposing=proposing, cancel=cancel)
        obj = float(p.value[chosen].sum())
        sol = AssignmentSolution(
            chosen,
            obj,
            float("nan"),
            float("nan"),
            f"stable ({proposing} propose)",
            time.perf_counter() - t1,
        )
    elif method == "milp" or (method == "auto" and p.n_pairs <= MILP_MAX_PAIRS):
        sol = solve_assignment(p, time_limit=time_limit, rel_gap=rel_gap, cancel=cancel)
    else:
        sol = solve_assignment_lagrangian(p, time_limit=time_limit, cancel=cancel)
    solved = time.perf_counter() - t0 - built
    # merchants outside the campaign or excluded for compliance take no part: none of them is
    # "below its minimum"
    taking_part = merchant_eligibility(f).ok
    if campaign is not None:
        taking_part &= f.merchant_campaigns[:, f.campaign_row(campaign)].toarray().ravel() > 0
    blocking = blocking_pairs(mk, sol.chosen, cancel=cancel)
    return _to_ids(f, p, sol, window, built, solved, left_out, taking_part, blocking)


def assignment_pairs(f: MarketFeatures, *, candidates: int, campaign: str | None = None) -> int:
    """The most candidate pairs :func:`assign_market` could build: its cost, known up front.

    Merchants taking part (eligible, and in the campaign if one is given) x ``candidates``;
    the built problem has at most this many (fewer where a merchant has fewer eligible
    talents). Reads two arrays: costing it is free.

    Raises
    ------
    UnknownId
        If the campaign is not in the graph.
    """
    taking_part = merchant_eligibility(f).ok
    if campaign is not None:
        taking_part &= f.merchant_campaigns[:, f.campaign_row(campaign)].toarray().ravel() > 0
    return int(taking_part.sum()) * max(int(candidates), 0)


def _two_sided(f: MarketFeatures, p: AssignmentProblem) -> TwoSidedMarket:
    return TwoSidedMarket(
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


def _to_ids(
    f: MarketFeatures,
    p: AssignmentProblem,
    sol: AssignmentSolution,
    window: Window,
    built: float,
    solved: float,
    left_out: dict[str, int],
    taking_part: NDArray[np.bool_],
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
    below = [str(f.merchant_ids[m]) for m in np.nonzero(taking_part & (count < mins))[0]]
    return MarketAssignment(
        window=str(window),
        pairs=pairs,
        objective=sol.objective,
        bound=sol.bound,
        gap=sol.gap,
        method=sol.method,
        seconds=solved,
        build_seconds=built,
        candidates=p.n_pairs,
        merchants_served=int((count > 0).sum()),
        merchants_below_minimum=below,
        minimums_relaxed=sol.minimums_relaxed,
        left_out_merchants=left_out,
        blocking_pairs=blocking,
    )
