"""The talent matrix for one merchant: a portfolio of talents under a budget and a tier mix.

Builds a :class:`~kolmatch.matching.coverage.CoverageProblem` from market features (who is
free, who is allowed, who reaches which target users) and solves it. With collaboration
outcomes to learn from it maximises expected GMV plus target reach; without them (no GMV
anywhere, e.g. follows and purchases only) the unique reach of the merchant's target audience.
A plan prices talents as the merchant sees them (list prices, :func:`~kolmatch.matching.fees.
merchant_prices`), takes at most the merchant's ``max_talents``, buys no talent whose expected
return is below a floor (``min_roi``), says why budget is left, and is the same on every run
(the solver's work is limited by counts, not the clock). docs/optimisation.md describes it.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch import progress
from kolmatch.errors import BadArgument, Cancel, InfeasiblePlan, LimitExceeded, check_cancel
from kolmatch.graph.model import TIER_THRESHOLDS
from kolmatch.matching.availability import Window, availability, planning_window
from kolmatch.matching.coverage import NODE_LIMIT, CoverageProblem, solve_coverage
from kolmatch.matching.eligibility import require_merchant
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.fees import TalentFees, merchant_prices
from kolmatch.matching.personalised import customer_ppr
from kolmatch.matching.score import (
    MerchantSignals,
    combine,
    few_columns_product,
    merchant_signals,
    tiebreak_places,
)
from kolmatch.matching.user_partition import pattern_of

__all__ = [
    "DEFAULT_MIN_ROI",
    "FIELD_DISCOUNT",
    "LEFT_OUT_ADDS_NOTHING",
    "LEFT_OUT_ALREADY_HELD",
    "LEFT_OUT_CANDIDATE_CUT",
    "LEFT_OUT_COMPETITOR",
    "LEFT_OUT_COMPLIANCE",
    "LEFT_OUT_MAX_TALENTS",
    "LEFT_OUT_NOT_CHOSEN",
    "LEFT_OUT_NO_FREE_SLOT",
    "LEFT_OUT_NO_LIST_PRICE",
    "LEFT_OUT_OVER_BUDGET",
    "LEFT_OUT_REASONS",
    "LEFT_OUT_RETURN_BELOW",
    "LEFT_OUT_TEMPLATES",
    "LEFT_OUT_TIER_FULL",
    "LEFT_OUT_TIER_SHARE",
    "MAX_OVERLAPS",
    "MAX_REACH_PAIRS",
    "OBJECTIVE_KINDS",
    "TARGET_INTEREST",
    "TIERS",
    "TIE_BREAK",
    "Candidates",
    "PairOverlap",
    "PlannedTalent",
    "TalentMatrixPlan",
    "TargetAudience",
    "TierRule",
    "follower_count_plan",
    "pair_overlaps",
    "parse_tiers",
    "plan_candidates",
    "plan_talent_matrix",
    "talent_tiers",
    "target_audience",
    "unique_target_reach",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

TIERS = ("top", "mid", "micro")
#: A user is a target of the merchant when this share of its interest is in its categories
#: (or it has bought there).
TARGET_INTEREST = 0.25
#: What a target user the merchant already reaches (one of its buyers) is worth, relative to
#: a new one: the Field (its own live room) reaches them already.
FIELD_DISCOUNT = 0.25
#: What a plan maximises: expected GMV plus weighted target reach where the market holds
#: collaboration outcomes, else the unique reach of the merchant's target audience.
OBJECTIVE_KINDS = ("gmv", "target_reach")
#: How candidates of equal value (and listed talents of equal new reach) are ordered.
TIE_BREAK = "more platform followers first, then talent id"
#: Most audience-overlap pairs a plan lists (the most overlapping first; it counts them all).
MAX_OVERLAPS = 100
#: The floor on a planned talent's expected return (ROI net of commission) in plans that
#: optimise GMV: a talent expected to return less than it costs is never bought.
DEFAULT_MIN_ROI = 1.0
#: The API's ceiling on a plan's size, costed before any solver runs: the reach pairs
#: (candidate talent, sampled target user it reaches), the nonzeros of the coverage model
#: HiGHS presolves. Measured on the s market (2 cores, docs/api.md "Bounded work"): plans
#: of 25k-105k pairs took 0.6-15 s, the fastest 10 us a pair; at that best rate 1,000,000
#: pairs takes over the 10 s request timeout, so a plan above it is refused (LIMIT_EXCEEDED)
#: instead of being started. Below it, the request's timeout stops the work.
MAX_REACH_PAIRS = 1_000_000

# Why a plan leaves a talent out, or budget unspent: the keys of ``left_out`` and
# ``unspent_reasons``, in English for logs and the API (kolmatch/cli.py and the FACT split
# write them in the reader's language; tests/test_cli.py checks every one is translated).
LEFT_OUT_COMPLIANCE = "compliance"
LEFT_OUT_NO_FREE_SLOT = "no free slot"
LEFT_OUT_COMPETITOR = "booked by a competitor"
LEFT_OUT_ALREADY_HELD = "already held by the merchant"
LEFT_OUT_NO_LIST_PRICE = "no list price"
LEFT_OUT_OVER_BUDGET = "fee over the budget"
LEFT_OUT_CANDIDATE_CUT = "below the candidate cut"
LEFT_OUT_NOT_CHOSEN = "not chosen by the solver"
LEFT_OUT_ADDS_NOTHING = "add nothing (no expected GMV, no new target user)"
#: The reasons in fixed words.
LEFT_OUT_REASONS = (
    LEFT_OUT_COMPLIANCE,
    LEFT_OUT_NO_FREE_SLOT,
    LEFT_OUT_COMPETITOR,
    LEFT_OUT_ALREADY_HELD,
    LEFT_OUT_NO_LIST_PRICE,
    LEFT_OUT_OVER_BUDGET,
    LEFT_OUT_CANDIDATE_CUT,
    LEFT_OUT_NOT_CHOSEN,
    LEFT_OUT_ADDS_NOTHING,
)
#: Reasons with a figure: the floor as ``1.0x``, a tier of TIERS, ``3 talents``, a share.
LEFT_OUT_RETURN_BELOW = "return below {floor}"
LEFT_OUT_TIER_FULL = "tier {tier} full ({talents})"
LEFT_OUT_TIER_SHARE = "tier {tier} at its {share:.0%} of the budget"
LEFT_OUT_MAX_TALENTS = "max_talents {n} reached"
LEFT_OUT_TEMPLATES = (
    LEFT_OUT_RETURN_BELOW,
    LEFT_OUT_TIER_FULL,
    LEFT_OUT_TIER_SHARE,
    LEFT_OUT_MAX_TALENTS,
)


@dataclass(frozen=True)
class TierRule:
    """Limits on one tier: fewest and most talents, most share of the budget."""

    min_count: int = 0
    max_count: int | None = None
    max_budget_share: float | None = None


@dataclass(frozen=True)
class PlannedTalent:
    """One talent in a plan, in the order its marginal reach was counted."""

    talent: str
    tier: str
    fee: float  # its list price, what the merchant pays (kolmatch.matching.fees)
    fee_estimated: bool  # no list price quoted: ``fee`` is the estimate
    expected_gmv: float  # expected GMV x (1 - risk)
    marginal_reach: int  # target users it adds to those already reached by the ones above
    audience: int  # audience members in the graph (followers and engaged users, each once)
    commission: float  # expected commission: the merchant's commission rate x expected GMV
    roi: float | None  # expected GMV / (fee + commission); None where GMV is not estimated


@dataclass(frozen=True)
class PairOverlap:
    """Engaged-audience overlap of two chosen talents."""

    a: str
    b: str
    shared: int
    share_of_smaller: float
    jaccard: float


@dataclass(frozen=True)
class TalentMatrixPlan:
    """A chosen set of talents with its totals and what the solver certifies."""

    merchant: str
    window: str
    budget: float
    talents: list[PlannedTalent]
    cost: float
    expected_gmv: float
    unique_reach: int  # estimated target users reached at least once (sample x scale)
    target_users: int  # the merchant's target users in the graph
    reach_value: float  # yuan per weighted unique target user (target_reach: 1, users counted)
    objective: float
    bound: float
    gap: float
    method: str
    seconds: float
    candidates: int
    sampled_users: int
    objective_kind: str  # one of OBJECTIVE_KINDS
    objective_note: str  # one line: what the objective counts and why this kind
    estimated_fees: int  # chosen talents whose fee is an estimate
    fee_note: str  # how estimated fees were made ("" when every candidate's fee is on record)
    ties: int  # choices and listing places decided by TIE_BREAK among equals
    tie_break: str
    commission_rate: float  # what the merchant's products offer talents, 0..1
    commission: float  # expected commission on the plan's expected GMV
    roi: float | None  # expected GMV / (cost + commission); None where GMV is not estimated
    min_roi: float | None  # the floor every chosen talent's ROI met; None: no floor
    max_talents: int | None  # the merchant's most talents; None: unstated
    unspent: float  # budget - cost
    unspent_note: str  # one line: how much was left and why ("" when all was spent)
    stopped: str  # what cut the solver short: "", "node limit" (deterministic), "time limit"
    reproducible: bool  # False only when the wall-clock safety net cut the solver short
    left_out: dict[str, int] = field(default_factory=dict)  # talents not considered, by reason
    overlaps: list[PairOverlap] = field(default_factory=list)  # the MAX_OVERLAPS most overlapping
    overlap_pairs: int = 0  # pairs of chosen talents that share any audience member
    # talents whose fee fits the unspent budget, by why none was bought
    unspent_reasons: dict[str, int] = field(default_factory=dict)


def parse_tiers(text: str | None) -> dict[str, TierRule]:
    """Parse a tier mix such as ``top=1,mid=2..5,micro=30%``.

    ``tier=N`` asks for exactly N talents of the tier, ``tier=A..B`` for between A and B,
    ``tier=P%`` lets the tier take at most P% of the budget. Tiers not named are free.

    Raises
    ------
    BadArgument
        Naming the part that cannot be read.

    Examples
    --------
    >>> parse_tiers("top=1,mid=2..5,micro=30%")["mid"]
    TierRule(min_count=2, max_count=5, max_budget_share=None)
    """
    rules: dict[str, TierRule] = {}
    if not text:
        return rules
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\w+)\s*=\s*(?:(\d+)(?:\.\.(\d+))?|(\d+(?:\.\d+)?)%)\s*", part)
        if not m:
            raise BadArgument(
                "--tiers",
                f"cannot read {part.strip()!r}; write tier=N, tier=A..B or tier=P% "
                f"(tiers: {', '.join(TIERS)})",
            )
        name, lo, hi, pct = m.groups()
        if name not in TIERS:
            raise BadArgument("--tiers", f"unknown tier {name!r}; tiers are {', '.join(TIERS)}")
        old = rules.get(name, TierRule())
        given = old.max_budget_share if pct is not None else old.max_count
        if given is not None:  # top=1,top=2 kept the last: say which was meant instead
            kind = "a budget share" if pct is not None else "a count"
            raise BadArgument(
                "--tiers",
                f"{name!r} is given {kind} twice (at {part.strip()!r}); give each tier at most "
                "one count or range and one share",
            )
        if pct is not None:
            share = float(pct) / 100
            if not 0 < share <= 1:
                raise BadArgument("--tiers", f"{part.strip()!r}: a share must be in (0%, 100%]")
            rules[name] = TierRule(old.min_count, old.max_count, share)
        else:
            a, b = int(lo), int(hi) if hi is not None else int(lo)
            if b < a:
                raise BadArgument("--tiers", f"{part.strip()!r}: {a}..{b} is an empty range")
            rules[name] = TierRule(a, b, old.max_budget_share)
    return rules


def talent_tiers(f: MarketFeatures) -> I64:
    """Each talent's tier as an index into :data:`TIERS`, from its platform follower count.

    The thresholds of :func:`kolmatch.graph.model.tier_of`, over the whole column at once.
    """
    followers = np.nan_to_num(f.talent_followers, nan=0.0)
    tier = np.full(len(followers), TIERS.index("micro"), dtype=np.int64)
    tier[followers >= TIER_THRESHOLDS["mid"]] = TIERS.index("mid")
    tier[followers >= TIER_THRESHOLDS["top"]] = TIERS.index("top")
    return tier


def _reach(f: MarketFeatures, users: I64) -> sp.csr_matrix:
    """(T, S) 1 where talent t's audience holds ``users[s]``: ``f.audience[:, users]``.

    Read from the users' side (``audience_by_user``'s rows for ``users``, transposed), so
    the cost follows the sampled users' follows, not the talents': selecting 50,000 user
    columns of the l market's audience for 5,000 talents took ~0.7 s (and the candidate
    pool's counts as long again); this takes ~0.1 s.
    """
    sub = pattern_of(f.audience_by_user[users])  # (a row selection: its own arrays)
    sub.eliminate_zeros()
    return sp.csr_matrix(sub.T)


def _in_categories(f: MarketFeatures, m: int) -> tuple[F64, NDArray[np.bool_]]:
    """Each user's interest in the merchant's categories (summed) and whether it bought in
    them: what both kinds of target audience start from.

    Read from those categories' columns only (:func:`~kolmatch.matching.score.
    few_columns_product`, equal to ``@ cats`` bit for bit): at l, 10M users' 115M interest
    entries took ~0.2 s of each plan read whole.
    """
    cats = (f.merchant_mix[m] > 0).astype(np.float64)
    return few_columns_product(f.user_interest, cats), few_columns_product(f.user_bought, cats) > 0


def _target_users(f: MarketFeatures, m: int) -> tuple[I64, F64]:
    """The merchant's target users and their weights (docs/optimisation.md)."""
    share, bought = _in_categories(f, m)
    target = np.nonzero((share >= TARGET_INTEREST) | bought)[0]
    weight = np.clip(np.maximum(share[target], 0.5 * bought[target]), 0.0, 1.0)
    own = np.zeros(f.users, dtype=bool)
    own[f.merchant_buyers[m].indices] = True
    weight = np.where(own[target], FIELD_DISCOUNT * weight, weight)
    return target.astype(np.int64), weight


@dataclass(frozen=True)
class TargetAudience:
    """A merchant's target audience for plans without GMV history, and what each rule added."""

    users: I64  # user rows, ascending
    customers: int
    category_buyers: int  # bought in the merchant's categories, not from it
    interested: int  # lean to its categories (TARGET_INTEREST), beyond the above
    lookalikes: int  # as close to its customers by personalised PageRank, beyond the above

    def describe(self) -> str:
        return (
            f"{self.customers:,} customers, {self.category_buyers:,} more category buyers, "
            f"{self.interested:,} interested users, {self.lookalikes:,} PageRank lookalikes"
        )


def target_audience(f: MarketFeatures, m: int) -> TargetAudience:
    """The merchant's customers and the users like them: what a plan without GMV history reaches.

    Each rule adds the users not already in:

    1. **customers**: users who bought one of the merchant's products;
    2. **category buyers**: users who bought in the merchant's categories;
    3. **interested**: users with at least :data:`TARGET_INTEREST` of their observed interest
       in the merchant's categories;
    4. **PageRank lookalikes**: users at least as close to the customers as the median
       customer is. Closeness is the personalised PageRank from the customers
       (:func:`~kolmatch.matching.personalised.customer_ppr`) walked one step on from the
       talents to their audiences: the sum, over the talents whose audience the user is in,
       of its audience weight x the talent's score / the talent's total audience weight. The
       median is over the customers in any audience (the category buyers' when the merchant
       has none); a user with closeness 0 is never a lookalike.

    Every target user counts once, customers included: a plan without GMV history is paid for
    reaching the people who buy, and people like them.

    Parameters
    ----------
    f
        Market features.
    m
        Merchant row.
    """
    share, bought = _in_categories(f, m)
    customer = np.zeros(f.users, dtype=bool)
    customers = f.merchant_buyers[m].indices.astype(np.int64)
    customer[customers] = True
    category = bought & ~customer
    interested = (share >= TARGET_INTEREST) & ~(customer | category)
    w = f.audience_by_user
    ppr = customer_ppr(w, customers, f.merchant_mix[m], f.category_ppr_tail)
    talent_weight = np.asarray(w.sum(axis=0)).ravel()
    per_weight = np.divide(ppr, talent_weight, out=np.zeros_like(ppr), where=talent_weight > 0)
    closeness = np.asarray(w @ per_weight).ravel()
    in_audience = np.diff(w.indptr) > 0
    seeds = customer & in_audience
    if not seeds.any():
        seeds = category & in_audience
    lookalike = np.zeros(f.users, dtype=bool)
    if seeds.any():
        bar = float(np.median(closeness[seeds]))
        lookalike = (closeness >= bar) & (closeness > 0) & ~(customer | category | interested)
    users = np.nonzero(customer | category | interested | lookalike)[0].astype(np.int64)
    return TargetAudience(
        users,
        int(customer.sum()),
        int(category.sum()),
        int(interested.sum()),
        int(lookalike.sum()),
    )


def _tie_order(f: MarketFeatures, rows: I64, *keys: F64) -> I64:
    """The order of talent ``rows`` by ``keys`` (descending, first key first), then TIE_BREAK.

    TIE_BREAK is read as each talent's place by it (:func:`~kolmatch.matching.score.
    tiebreak_places`), one integer key, not as followers and then the ids' strings.
    """
    return np.lexsort((tiebreak_places(f)[rows], *(-k for k in reversed(keys))))


def _by_followers(f: MarketFeatures, rows: I64, *keys: F64) -> I64:
    """Talent ``rows`` sorted by ``keys`` (descending, first key first), then TIE_BREAK."""
    return rows[_tie_order(f, rows, *keys)]


def _best_by_followers(f: MarketFeatures, rows: I64, key: F64, n: int) -> I64:
    """``_by_followers(f, rows, key)[:n]``, sorting only the talents whose key is at least the
    ``n``-th best (ties included): the same talents in the same order, as every other sorts
    after them. At l the candidate cut took 5,000 of ~194,000 eligible talents from a full
    sort (~40 ms a plan); a partition finds the cut in ~2 ms.
    """
    if n >= len(rows):
        return _by_followers(f, rows, key)
    if n <= 0:
        return rows[:0]
    neg = -key
    nth = np.partition(neg, n - 1)[n - 1]
    if np.isnan(nth):  # fewer than n keys are numbers (NaN sorts last): sort them all
        return _by_followers(f, rows, key)[:n]
    top = np.flatnonzero(neg <= nth)
    return _by_followers(f, rows[top], key[top])[:n]


def plan_talent_matrix(
    f: MarketFeatures,
    merchant_id: str,
    *,
    budget: float,
    tiers: dict[str, TierRule] | None = None,
    campaign: str | None = None,
    candidates: int = 5_000,
    sample_users: int = 50_000,
    seed: int = 0,
    reach_value: float | None = None,
    min_roi: float | None = None,
    node_limit: int = NODE_LIMIT,
    time_limit: float | None = None,
    method: str = "restricted",
    estimate_fees: bool = True,
    max_reach: int | None = None,
    cancel: Cancel | None = None,
) -> TalentMatrixPlan:
    """Choose the talents that together bring the most unique target reach and expected GMV.

    What is maximised depends on the market (``objective_kind``, docs/optimisation.md):

    - ``gmv``, where some candidate has expected GMV for the merchant (the market holds
      collaboration outcomes): expected GMV x (1 - risk) of the chosen talents plus
      ``reach_value`` x the weighted unique target users they reach;
    - ``target_reach``, where none has (``gmv_rate`` is 0, or the merchant sells nothing the
      model can price): the unique users of the merchant's :func:`target_audience` the chosen
      talents reach, per yuan under the budget.

    Talents are priced at their list price (else its estimate, :func:`~kolmatch.matching.
    fees.merchant_prices`); the budget is for these fees. At most the merchant's
    ``max_talents`` are chosen. In ``gmv`` plans no talent whose expected return, net of
    commission, is below ``min_roi`` is a candidate: ``ROI = expected GMV / (fee + commission
    rate x expected GMV)``, the rate being what the merchant's products offer talents (a
    talent's own terms are private, kolmatch/policy.py). The plan says how much budget it
    left and why (``unspent``, ``unspent_note``, ``unspent_reasons``).

    Candidates of equal value, and listed talents of equal new reach, are ordered by
    :data:`TIE_BREAK`; the plan counts how many choices that decided (``ties``). Every limit
    on the solver's work is a count, so the same inputs give the same plan on any machine
    and under any load (``reproducible``; docs/optimisation.md, "Reproducible").

    Parameters
    ----------
    f
        Market features.
    merchant_id
        The merchant.
    budget
        Most total fees, in yuan.
    tiers
        Tier rules (:func:`parse_tiers`).
    campaign
        A campaign id the merchant joined: plan for its window; default the coming period.
    candidates
        At most this many talents are considered: the best by the match score (by target
        reach, and reach per yuan, for ``target_reach``).
    sample_users
        At most this many target users are sampled (seeded) to count reach on.
    seed
        Seed of the user sample: the same inputs and seed give the same plan.
    reach_value
        ``gmv`` only: yuan per weighted unique target user; default the candidates' expected
        GMV per weighted target user they reach, so reach and GMV weigh alike.
    min_roi
        ``gmv`` plans: the least expected return a chosen talent must bring, net of
        commission (1.0: at least what it costs); default :data:`DEFAULT_MIN_ROI`; 0 for no
        floor. ``target_reach`` plans estimate no return: they have no floor, and a positive
        one is refused.
    node_limit
        Most HiGHS branch-and-bound nodes: the deterministic work limit.
    time_limit
        Optional wall-clock safety net for HiGHS in seconds. A plan it cut short says so
        (``stopped == "time limit"``, ``reproducible`` False) and may differ on a re-run.
    method
        Solver method (:func:`kolmatch.matching.coverage.solve_coverage`).
    estimate_fees
        Plan talents with no list price at an estimated one
        (:func:`kolmatch.matching.fees.merchant_prices`), flagged as such; if False they are
        left out ("no list price").
    max_reach
        Refuse a plan whose coverage model has more reach pairs (candidate, sampled target
        user it reaches) than this, before any solver runs (:data:`MAX_REACH_PAIRS`, the
        API's); None: no ceiling.
    cancel
        Checked between the steps of every loop (:class:`kolmatch.errors.Cancel`); None:
        never cancelled.

    Raises
    ------
    UnknownId
        If the merchant or campaign is not in the graph.
    BadArgument
        If the budget or sizes are not positive, ``min_roi`` is negative (or positive for a
        ``target_reach`` plan), or the merchant did not join the campaign.
    NotEligible
        If the merchant is excluded for compliance.
    InfeasiblePlan
        If no talent is eligible, none is affordable, none returns ``min_roi``, the tier
        mix cannot be met (within ``max_talents``), or (for ``target_reach``) no candidate
        reaches any target user; the message says which and why.
    LimitExceeded
        If the plan has more reach pairs than ``max_reach`` (nothing was solved).
    Cancelled
        If ``cancel`` was set.
    """
    if not np.isfinite(budget) or budget <= 0:
        raise BadArgument("--budget", f"must be a positive amount of yuan, got {budget}")
    for name, v in (("--candidates", candidates), ("--sample-users", sample_users)):
        if v < 1:
            raise BadArgument(name, f"must be at least 1, got {v}")
    if min_roi is not None and (not np.isfinite(min_roi) or min_roi < 0):
        raise BadArgument(
            "--min-roi", f"must be a return of 0 or more (1.0 = break even), got {min_roi}"
        )
    if node_limit < 1:
        raise BadArgument("--node-limit", f"must be at least 1, got {node_limit}")
    tiers = tiers or {}
    c = plan_candidates(
        f,
        merchant_id,
        budget=budget,
        campaign=campaign,
        min_roi=min_roi,
        estimate_fees=estimate_fees,
    )
    m, window, sig, prices, fee, estimated = c.m, c.window, c.sig, c.prices, c.fee, c.estimated
    reasons, eligible, left_out, below, most = c.reasons, c.eligible, c.left_out, c.below, c.most
    tier, gmv_all, kind, rate, floor = c.tier, c.gmv_all, c.kind, c.rate, c.floor
    rng = np.random.default_rng(seed)
    if kind == "gmv":
        target, weight = _target_users(f, m)
    else:
        audience = target_audience(f, m)
        target, weight = audience.users, np.ones(len(audience.users))
    sample = (
        np.sort(rng.choice(len(target), sample_users, replace=False))
        if len(target) > sample_users
        else np.arange(len(target))
    )
    scale = len(target) / max(len(sample), 1)
    users, w = target[sample], weight[sample]

    pool = np.nonzero(eligible)[0].astype(np.int64)
    reach_all = _reach(f, users)
    if kind == "gmv":
        key = combine(sig)[pool]
        chosen_pool = [_best_by_followers(f, pool, key, candidates)]
    else:  # half the best by reach, half by reach per yuan: a budget buys either
        key = np.diff(reach_all.indptr)[pool].astype(np.float64)  # reach alone
        half = max(candidates // 2, 1)
        chosen_pool = [
            _best_by_followers(f, pool, key, half),
            _best_by_followers(f, pool, key / fee[pool], candidates - half),
        ]
    for j, name in enumerate(TIERS):  # keep each constrained tier represented, best by key
        if tiers.get(name, TierRule()).min_count:
            in_tier = tier[pool] == j
            most_of_tier = max(candidates // 10, 50)
            chosen_pool.append(_best_by_followers(f, pool[in_tier], key[in_tier], most_of_tier))
    # the solver breaks ties by candidate order: make that order TIE_BREAK, not id order
    cand = _by_followers(f, np.unique(np.concatenate(chosen_pool)).astype(np.int64))
    if len(pool) > len(cand):
        left_out[LEFT_OUT_CANDIDATE_CUT] = len(pool) - len(cand)

    check_cancel(cancel)
    reach = reach_all[cand]
    if max_reach is not None and reach.nnz > max_reach:
        raise LimitExceeded(
            "--candidates",
            reach.nnz,
            max_reach,
            f"reach pairs ({len(cand):,} candidate talents x {len(users):,} sampled target "
            "users, where one reaches the other)",
            "fewer candidates or sampled users, or a smaller budget (fewer talents fit it)",
        )
    if kind == "gmv":
        gmv = gmv_all[cand]
        weighted = float((reach @ w).sum()) * scale
        lam = (
            reach_value if reach_value is not None else (gmv.sum() / weighted if weighted else 0.0)
        )
        note = (
            f"expected GMV x (1 - risk) + ¥{lam:,.2f} per weighted unique target user "
            f"(collaboration outcomes in the market: gmv_rate {f.gmv_rate:.3g})"
        )
    else:
        gmv, lam = np.zeros(len(cand)), 1.0
        why = (
            "no collaboration GMV in the market to learn from (gmv_rate 0)"
            if f.gmv_rate <= 0
            else "no candidate has expected GMV for this merchant's products"
        )
        note = f"unique target users reached ({audience.describe()}): {why}"
        if reach.nnz == 0:
            raise InfeasiblePlan(
                f"nothing to plan for {merchant_id} in {window}: {why}, and no candidate "
                f"reaches any of its {len(target):,} target users ({audience.describe()})"
            )
    rules = [tiers.get(t, TierRule()) for t in TIERS]
    problem = CoverageProblem(
        value=gmv,
        cost=fee[cand].astype(np.float64),
        reach=reach,
        user_value=lam * scale * w,
        tier=tier[cand],
        budget=float(budget),
        tier_min=np.array([r.min_count for r in rules], dtype=np.int64),
        tier_max=np.array(
            [r.max_count if r.max_count is not None else len(cand) for r in rules], dtype=np.int64
        ),
        tier_budget=np.array(
            [budget * r.max_budget_share if r.max_budget_share else np.inf for r in rules]
        ),
        tier_names=TIERS,
        max_chosen=most,
    )
    try:
        # a big plan solves for minutes: the solver reports nothing, so the line shows the
        # time spent (against the time limit when there is one; the node limit bounds it else)
        what = f"planning ({len(cand):,} candidates x {len(users):,} sampled users)"
        with progress.task(what, time_limit, timed=True):
            sol = solve_coverage(
                problem, method=method, node_limit=node_limit, time_limit=time_limit, cancel=cancel
            )
    except InfeasiblePlan as exc:
        limits = [f"{v:,} {k}" for k, v in left_out.items() if k.startswith("return below")]
        if most is not None:
            limits.append(f"max_talents {most}")
        also = f" (with {', '.join(limits)})" if limits else ""
        raise InfeasiblePlan(f"no plan for {merchant_id} in {window}: {exc}{also}") from exc
    check_cancel(cancel)
    chosen = _drop_idle(problem, sol.chosen)
    picked = cand[chosen]
    talents, listing_ties = _ordered_by_marginal_reach(
        f,
        picked,
        reach[chosen],
        scale,
        gmv[chosen],
        fee,
        estimated,
        rate if kind == "gmv" else None,
        cancel,
    )
    check_cancel(cancel)
    covered = np.asarray(reach[chosen].sum(axis=0)).ravel() > 0
    cost = float(fee[picked].sum())
    expected = float(gmv[chosen].sum())
    unspent = _Unspent.of(
        f,
        budget=float(budget),
        cost=cost,
        picked=picked,
        cand=cand,
        free=np.nonzero(~np.logical_or.reduce(list(reasons.values())))[0],
        fee=fee,
        value=np.where(kind == "gmv", gmv_all, 0.0),
        below=below,
        floor=floor,
        most=most,
        tiers=tiers,
        tier=tier,
        reach=reach_all,
        covered=covered,
    )
    overlaps, overlap_pairs = _overlaps(f, picked, MAX_OVERLAPS)
    return TalentMatrixPlan(
        merchant=merchant_id,
        window=str(window),
        budget=float(budget),
        talents=talents,
        cost=cost,
        expected_gmv=expected,
        unique_reach=round(float(covered.sum()) * scale),
        target_users=len(target),
        reach_value=float(lam),
        objective=sol.objective,
        bound=sol.bound,
        gap=sol.gap,
        method=sol.method,
        seconds=sol.seconds,
        candidates=len(cand),
        sampled_users=len(sample),
        objective_kind=kind,
        objective_note=note,
        estimated_fees=int(estimated[picked].sum()),
        fee_note=prices.rule if estimate_fees and estimated[cand].any() else "",
        ties=_tied_choices(problem, chosen) + listing_ties,
        tie_break=TIE_BREAK,
        commission_rate=rate,
        commission=rate * expected if kind == "gmv" else 0.0,
        roi=float(_roi(np.array([expected]), np.array([cost]), rate)[0]) if kind == "gmv" else None,
        min_roi=floor,
        max_talents=most,
        unspent=unspent.amount,
        unspent_note=unspent.note,
        stopped=sol.stopped,
        reproducible=sol.stopped != "time limit",
        left_out=left_out,
        overlaps=overlaps,
        overlap_pairs=overlap_pairs,
        unspent_reasons=unspent.reasons,
    )


@dataclass(frozen=True)
class Candidates:
    """Who a plan for one merchant and window may choose, at what price, and who is left out.

    Shared by the budget plan (:func:`plan_talent_matrix`) and the target plan
    (:func:`kolmatch.matching.target.plan_to_target`), so both apply one eligibility:
    compliance, free slots net of bookings, competitors' bookings, a price, the return floor.
    """

    m: int
    window: Window
    sig: MerchantSignals
    prices: TalentFees
    fee: F64  # what each talent costs the merchant (list price, else its estimate)
    estimated: NDArray[np.bool_]  # fee is an estimate
    reasons: dict[str, NDArray[np.bool_]]  # left out before prices and returns, by reason
    eligible: NDArray[np.bool_]  # may be chosen
    left_out: dict[str, int]  # talents left out, by reason
    below: NDArray[np.bool_]  # under the return floor
    most: int | None  # the merchant's max_talents
    tier: I64  # each talent's index in TIERS
    gmv_all: F64  # expected GMV x (1 - risk) for this merchant
    kind: str  # one of OBJECTIVE_KINDS
    rate: float  # the merchant's products' commission rate
    floor: float | None  # the return floor applied (None: none)


def plan_candidates(
    f: MarketFeatures,
    merchant_id: str,
    *,
    budget: float | None,
    campaign: str | None = None,
    min_roi: float | None = None,
    estimate_fees: bool = True,
) -> Candidates:
    """The talents a plan for ``merchant_id`` may choose (see :class:`Candidates`).

    Parameters
    ----------
    f
        Market features.
    merchant_id
        The merchant (checked: known and eligible).
    budget
        Talents priced above it are left out ("fee over the budget"); None: no budget.
    campaign, min_roi, estimate_fees
        As for :func:`plan_talent_matrix`.

    Raises
    ------
    UnknownId, NotEligible, BadArgument, InfeasiblePlan
        As :func:`plan_talent_matrix` does, for no eligible talent at all.
    """
    require_merchant(f, merchant_id)
    m = f.merchant_row(merchant_id)
    window = planning_window(f, campaign, m)
    av = availability(f, m, window)
    sig = merchant_signals(f, m)
    prices = merchant_prices(f)
    fee = prices.fee if estimate_fees else f.talent_list_price
    estimated = prices.estimated if estimate_fees else np.zeros(f.n_talents, dtype=bool)
    reasons = {
        LEFT_OUT_COMPLIANCE: sig.excluded,
        LEFT_OUT_NO_FREE_SLOT: ~sig.excluded & (av.free_slots <= 0),
        LEFT_OUT_COMPETITOR: ~sig.excluded & (av.free_slots > 0) & av.competitor_booked,
        LEFT_OUT_ALREADY_HELD: ~sig.excluded
        & (av.free_slots > 0)
        & ~av.competitor_booked
        & (av.held if av.held is not None else False),
        LEFT_OUT_NO_LIST_PRICE: ~np.isfinite(fee) | (np.nan_to_num(fee) <= 0),
    }
    eligible = ~np.logical_or.reduce(list(reasons.values()))
    left_out = {k: int(v.sum()) for k, v in reasons.items() if v.any()}
    over = eligible & (np.nan_to_num(fee) > (np.inf if budget is None else budget))
    if over.any():
        left_out[LEFT_OUT_OVER_BUDGET] = int(over.sum())
    if not (eligible & ~over).any():
        why = ", ".join(f"{v} {k}" for k, v in left_out.items()) or "the graph has no talents"
        cheapest = np.nanmin(np.where(eligible, fee, np.nan)) if eligible.any() else None
        hint = f"; the cheapest eligible talent costs ¥{cheapest:,.0f}" if cheapest else ""
        raise InfeasiblePlan(
            f"no talent can be planned for {merchant_id} in {window}: {why}{hint}",
            left_out=left_out,
            cheapest=None if cheapest is None else float(cheapest),
        )
    eligible &= ~over
    most = _max_talents(f, m)
    if most is not None and most < 1:
        raise InfeasiblePlan(
            f"{merchant_id} takes at most {most} talents (max_talents)",
            left_out=left_out,
            max_talents=most,
        )
    tier = talent_tiers(f)
    gmv_all = sig.expected_gmv * (1.0 - sig.risk)
    kind = "gmv" if f.gmv_rate > 0 and (gmv_all[eligible] > 0).any() else "target_reach"
    rate = float(np.clip(sig.commission, 0.0, 1.0))
    roi_all = _roi(gmv_all, fee, rate)
    if kind == "target_reach" and min_roi:
        raise BadArgument(
            "--min-roi",
            f"{merchant_id}'s plan optimises target reach: the market holds no collaboration "
            "GMV to estimate a talent's return from, so no return floor can be met; leave "
            "the floor out (or 0)",
        )
    floor = (DEFAULT_MIN_ROI if min_roi is None else min_roi) if kind == "gmv" else None
    floor = floor or None  # 0: no floor
    below = eligible & (roi_all < floor) if floor is not None else np.zeros(f.n_talents, bool)
    if below.any():
        left_out[_below(floor)] = int(below.sum())
    if not (eligible & ~below).any():
        best = int(np.argmax(np.where(eligible, roi_all, -np.inf)))
        raise InfeasiblePlan(
            f"no talent that could be planned for {merchant_id} in {window} returns at least "
            f"{_times(floor)} its cost (fee + {rate:.0%} commission on the expected GMV); the "
            f"best, {f.talent_ids[best]}, returns {roi_all[best]:.2f}x",
            left_out=left_out,
        )
    eligible &= ~below
    return Candidates(
        m,
        window,
        sig,
        prices,
        fee,
        estimated,
        reasons,
        eligible,
        left_out,
        below,
        most,
        tier,
        gmv_all,
        kind,
        rate,
        floor,
    )


def _talents(n: int) -> str:
    """``1 talent``, ``2 talents`` (the CLI's own words go through kolmatch/i18n.py)."""
    return f"{n:,} talent" if n == 1 else f"{n:,} talents"


def _times(x: float | None) -> str:
    """A return as the issue writes it: ``1.0x``, ``1.25x``."""
    if x is None:
        return "no floor"
    text = f"{x:g}"
    return f"{text}.0x" if text.isdigit() else f"{text}x"


def _below(floor: float | None) -> str:
    """The reason a talent under the return floor is left out."""
    return LEFT_OUT_RETURN_BELOW.format(floor=_times(floor))


def _max_talents(f: MarketFeatures, m: int) -> int | None:
    """The merchant's ``max_talents``, None where unstated (NaN)."""
    most = float(f.merchant_max_talents[m])
    return int(most) if np.isfinite(most) else None


def _roi(gmv: F64, fee: F64, rate: float) -> F64:
    """Expected return net of commission: ``gmv / (fee + rate x gmv)``; 0 where nothing is paid.

    Examples
    --------
    >>> _roi(np.array([3_000.0, 0.0]), np.array([1_000.0, 500.0]), 0.2).tolist()
    [1.875, 0.0]
    """
    paid = np.nan_to_num(fee, nan=0.0) + rate * gmv
    return np.divide(gmv, paid, out=np.zeros_like(gmv), where=paid > 0)


@dataclass(frozen=True)
class _Unspent:
    """How much of the budget a plan left, and why no further talent was bought with it."""

    amount: float
    note: str
    reasons: dict[str, int]

    @classmethod
    def of(
        cls,
        f: MarketFeatures,
        *,
        budget: float,
        cost: float,
        picked: I64,
        cand: I64,
        free: I64,
        fee: F64,
        value: F64,
        below: NDArray[np.bool_],
        floor: float | None,
        most: int | None,
        tiers: dict[str, TierRule],
        tier: I64,
        reach: sp.csr_matrix,
        covered: NDArray[np.bool_],
    ) -> _Unspent:
        """Classify every talent free for the merchant whose fee fits what is left.

        ``free``: talents neither excluded, fully booked nor competitor-booked, with a
        price; ``reach``: every talent's row over the sampled target users; ``covered``:
        those users the plan reaches.
        Each fitting talent counts once, under the first reason that applies: the
        merchant's ``max_talents``, the return floor, a full tier (count or budget share),
        adding nothing (no expected GMV and no new target user), the candidate cut, else
        the solver's choice.
        """
        left = budget - cost
        if left < 0.5:  # nothing worth a yuan is left
            return cls(max(left, 0.0), "", {})
        taken = np.zeros(f.n_talents, dtype=bool)
        taken[picked] = True
        fits = np.zeros(f.n_talents, dtype=bool)
        fits[free] = True
        fits &= ~taken & (np.nan_to_num(fee, nan=np.inf) <= left + 1e-9)
        head = f"¥{left:,.0f} unspent"
        if not fits.any():
            rest = free[~taken[free]]
            cheapest = f"; the cheapest left costs ¥{np.min(fee[rest]):,.0f}" if len(rest) else ""
            note = f"{head}: no further eligible talent costs ¥{left:,.0f} or less{cheapest}"
            return cls(left, note, {})
        if most is not None and len(picked) >= most:
            why = LEFT_OUT_MAX_TALENTS.format(n=most)
            return cls(left, f"{head}: {why}", {why: int(fits.sum())})
        reasons: dict[str, int] = {}
        rows = np.nonzero(fits)[0]
        count = np.bincount(tier[picked], minlength=len(TIERS))
        spent = np.bincount(tier[picked], weights=fee[picked], minlength=len(TIERS))
        new_users = np.asarray(reach[rows] @ (~covered).astype(np.float64)).ravel() > 0
        in_cand = np.zeros(f.n_talents, dtype=bool)
        in_cand[cand] = True
        for i, t in enumerate(rows):
            rule = tiers.get(TIERS[tier[t]], TierRule())
            name = TIERS[tier[t]]
            if below[t]:
                why = _below(floor)
            elif rule.max_count is not None and count[tier[t]] >= rule.max_count:
                why = LEFT_OUT_TIER_FULL.format(tier=name, talents=_talents(rule.max_count))
            elif rule.max_budget_share and spent[tier[t]] + fee[t] > budget * rule.max_budget_share:
                why = LEFT_OUT_TIER_SHARE.format(tier=name, share=rule.max_budget_share)
            elif value[t] <= 0 and not new_users[i]:
                why = LEFT_OUT_ADDS_NOTHING
            elif not in_cand[t]:
                why = LEFT_OUT_CANDIDATE_CUT
            else:
                why = LEFT_OUT_NOT_CHOSEN
            reasons[why] = reasons.get(why, 0) + 1
        reasons = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
        if len(reasons) == 1:
            only = next(iter(reasons))
            if only == _below(floor):
                lead = f"no further talent returns at least {_times(floor)}"
            elif only == LEFT_OUT_ADDS_NOTHING:
                lead = "no further talent adds expected GMV or a new target user"
            else:
                lead = f"the {_talents(len(rows))} that fit it: {only}"
            return cls(left, f"{head}: {lead}", reasons)
        parts = ", ".join(f"{v:,} {k}" for k, v in reasons.items())
        return cls(left, f"{head}: of the {_talents(len(rows))} that fit it, {parts}", reasons)


def _drop_idle(p: CoverageProblem, chosen: I64) -> I64:
    """Drop chosen candidates that add nothing: no value of their own, every user they reach
    reached by another chosen one. The objective is unchanged and no fee is paid for nothing
    (a greedy fill takes such candidates while the budget lasts). The dearest goes first, and
    of equal fees the one TIE_BREAK ranks lower (candidates are in TIE_BREAK order); tier
    minimums are kept.
    """
    keep = np.zeros(p.n, dtype=bool)
    keep[chosen] = True
    count = np.asarray(p.reach.T @ keep.astype(np.float64)).ravel()
    in_tier = np.bincount(p.tier[keep], minlength=len(p.tier_min))
    indptr, indices = p.reach.indptr, p.reach.indices
    for i in sorted(chosen.tolist(), key=lambda i: (-float(p.cost[i]), -i)):
        users = indices[indptr[i] : indptr[i + 1]]
        worth = users[p.user_value[users] > 0]
        idle = p.value[i] <= 0 and bool((count[worth] >= 2).all())
        if idle and in_tier[p.tier[i]] > p.tier_min[p.tier[i]]:
            keep[i] = False
            count[users] -= 1
            in_tier[p.tier[i]] -= 1
    return np.nonzero(keep)[0].astype(np.int64)


def _tied_choices(p: CoverageProblem, chosen: I64) -> int:
    """Chosen candidates that an unchosen one equals in fee, tier and value on its own.

    Swapping two such candidates can change the objective only through overlap, so which one
    the solver took is decided by candidate order, i.e. by TIE_BREAK.
    """
    alone = p.value + np.asarray(p.reach @ p.user_value).ravel()
    taken = np.zeros(p.n, dtype=bool)
    taken[chosen] = True
    key = np.round(np.stack([p.cost, alone, p.tier.astype(np.float64)], axis=1), 9)
    _, group = np.unique(key, axis=0, return_inverse=True)
    group = group.ravel()
    left = np.zeros(int(group.max()) + 1 if p.n else 0, dtype=bool)
    left[group[~taken]] = True
    return int((taken & left[group]).sum())


def _ordered_by_marginal_reach(
    f: MarketFeatures,
    picked: I64,
    reach: sp.csr_matrix,
    scale: float,
    gmv: F64,
    fee: F64,
    estimated: NDArray[np.bool_],
    rate: float | None,
    cancel: Cancel | None = None,
) -> tuple[list[PlannedTalent], int]:
    """List the chosen talents greedily by the new target users each adds to those above.

    Equal new reach is ordered by TIE_BREAK; returns the list and how many places that decided.
    ``rate``: the merchant's commission rate, None where GMV is not estimated (no ROI).

    A lazy greedy: new reach only shrinks as users are covered, so a talent whose reach
    counted earlier is still at least every other's upper bound is the next one; listing n
    talents reads each one's users a few times, not n times (the quadratic listing took
    10.4 s of 11.3 s at a budget of 1e7, issue 18). Its list and tie count equal the plain
    greedy's (tests/matching/test_plan.py).
    """
    reach = sp.csr_matrix(reach)
    indptr, indices = reach.indptr, reach.indices
    covered = np.zeros(reach.shape[1], dtype=bool)

    def gain(i: int) -> int:
        return int((~covered[indices[indptr[i] : indptr[i + 1]]]).sum())

    # (-new reach counted when last looked at, place in TIE_BREAK order, index in picked)
    heap = [(-gain(int(i)), place, int(i)) for place, i in enumerate(_tie_order(f, picked))]
    heapq.heapify(heap)
    out: list[PlannedTalent] = []
    ties = 0
    tiers = talent_tiers(f)
    audience = np.diff(f.audience.indptr)
    roi = _roi(gmv, fee[picked], rate) if rate is not None else None
    while heap:
        check_cancel(cancel)
        stale, place, i = heapq.heappop(heap)
        g = gain(i)
        if g != -stale:  # others may now add more: look again later
            heapq.heappush(heap, (-g, place, i))
            continue
        # i adds the most and comes first among those that add as much; is there another?
        while heap and -heap[0][0] == g:
            _, p2, i2 = heapq.heappop(heap)
            g2 = gain(i2)
            heapq.heappush(heap, (-g2, p2, i2))
            if g2 == g:
                ties += 1
                break
        covered[indices[indptr[i] : indptr[i + 1]]] = True
        t = int(picked[i])
        out.append(
            PlannedTalent(
                talent=str(f.talent_ids[t]),
                tier=TIERS[tiers[t]],
                fee=float(fee[t]),
                fee_estimated=bool(estimated[t]),
                expected_gmv=round(float(gmv[i]), 2),
                marginal_reach=round(g * scale),
                audience=int(audience[t]),
                commission=round(float(gmv[i]) * rate, 2) if rate is not None else 0.0,
                roi=round(float(roi[i]), 4) if roi is not None else None,
            )
        )
    return out, ties


def pair_overlaps(f: MarketFeatures, picked: I64, *, top: int | None = None) -> list[PairOverlap]:
    """Audience overlap of the pairs of chosen talents that share any user, most first.

    Ordered by share of the smaller audience (descending), then the ids; at most ``top``
    pairs (None: all). One sparse product, sorted in numpy: a plan of 1,951 talents has
    563,380 overlapping pairs, which took 9 s as objects (issue 18).
    """
    return _overlaps(f, picked, top)[0]


def _overlaps(f: MarketFeatures, picked: I64, top: int | None) -> tuple[list[PairOverlap], int]:
    """:func:`pair_overlaps` and how many pairs overlap in all."""
    rows = np.sort(picked)
    e = sp.csr_matrix(f.audience[rows], dtype=np.float64)
    e.data[:] = 1.0
    size = np.diff(e.indptr).astype(np.float64)
    inter = sp.triu(e @ e.T, k=1).tocoo()
    keep = inter.data > 0
    i, j, shared = inter.row[keep], inter.col[keep], inter.data[keep]
    smaller = np.round(shared / np.minimum(size[i], size[j]), 4)
    jaccard = np.round(shared / (size[i] + size[j] - shared), 4)
    a, b = f.talent_ids[rows[i]], f.talent_ids[rows[j]]
    order = np.lexsort((b, a, -smaller))[:top]
    out = [
        PairOverlap(str(a[k]), str(b[k]), int(shared[k]), float(smaller[k]), float(jaccard[k]))
        for k in order
    ]
    return out, len(shared)


def follower_count_plan(
    f: MarketFeatures, merchant_id: str, *, budget: float, campaign: str | None = None
) -> I64:
    """The naive baseline: eligible talents by follower count, largest first, while they fit.

    Uses the same eligibility (compliance, slots, competitor bookings), prices (list prices,
    else their estimates) and ``max_talents`` as the planner; no return floor.
    """
    m = f.merchant_row(merchant_id)
    av = availability(f, m, planning_window(f, campaign, m))
    sig = merchant_signals(f, m)
    fee = np.nan_to_num(merchant_prices(f).fee, nan=np.inf)
    ok = ~sig.excluded & av.available & (fee > 0) & (fee <= budget)
    order = np.nonzero(ok)[0]
    order = order[np.lexsort((f.talent_ids[order], -np.nan_to_num(f.talent_followers[order])))]
    most = _max_talents(f, m)
    spent, out = 0.0, list[int]()
    for t in order:
        if most is not None and len(out) >= most:
            break
        if spent + fee[t] <= budget:
            out.append(int(t))
            spent += fee[t]
    return np.array(out, dtype=np.int64)


def unique_target_reach(f: MarketFeatures, merchant_id: str, talents: I64) -> int:
    """Target users of the merchant (every one, not a sample) reached by any of the talents."""
    target, _ = _target_users(f, f.merchant_row(merchant_id))
    if len(talents) == 0:
        return 0
    reached = np.asarray(f.audience[talents].sum(axis=0)).ravel() > 0
    return int(reached[target].sum())
