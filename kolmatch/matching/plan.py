"""The talent matrix for one merchant: a portfolio of talents under a budget and a tier mix.

Builds a :class:`~kolmatch.matching.coverage.CoverageProblem` from market features (who is
free, who is allowed, who reaches which target users) and solves it; docs/optimisation.md
describes the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch.errors import BadArgument, InfeasiblePlan
from kolmatch.graph.model import tier_of
from kolmatch.matching.audience import pair_overlaps as audience_pair_overlaps
from kolmatch.matching.availability import availability, planning_window
from kolmatch.matching.coverage import CoverageProblem, solve_coverage
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import combine, merchant_signals

__all__ = [
    "FIELD_DISCOUNT",
    "TARGET_INTEREST",
    "TIERS",
    "PairOverlap",
    "PlannedTalent",
    "TalentMatrixPlan",
    "TierRule",
    "follower_count_plan",
    "pair_overlaps",
    "parse_tiers",
    "plan_talent_matrix",
    "talent_tiers",
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
    fee: float
    expected_gmv: float
    marginal_reach: int  # target users it adds to those already reached by the ones above
    audience: int  # engaged users in the graph


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
    reach_value: float  # yuan per weighted unique target user in the objective
    objective: float
    bound: float
    gap: float
    method: str
    seconds: float
    candidates: int
    sampled_users: int
    left_out: dict[str, int] = field(default_factory=dict)  # talents not considered, by reason
    overlaps: list[PairOverlap] = field(default_factory=list)


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
    """Each talent's tier as an index into :data:`TIERS`, from its platform follower count."""
    pos = {t: i for i, t in enumerate(TIERS)}
    followers = np.nan_to_num(f.talent_followers, nan=0.0)
    return np.array([pos[tier_of(int(x))] for x in followers], dtype=np.int64)


def _target_users(f: MarketFeatures, m: int) -> tuple[I64, F64]:
    """The merchant's target users and their weights (docs/optimisation.md)."""
    cats = (f.merchant_mix[m] > 0).astype(np.float64)
    share = np.asarray(f.user_interest @ cats).ravel()
    bought = np.asarray(f.user_bought @ cats).ravel() > 0
    target = np.nonzero((share >= TARGET_INTEREST) | bought)[0]
    weight = np.clip(np.maximum(share[target], 0.5 * bought[target]), 0.0, 1.0)
    own = np.zeros(f.users, dtype=bool)
    own[f.merchant_buyers[m].indices] = True
    weight = np.where(own[target], FIELD_DISCOUNT * weight, weight)
    return target.astype(np.int64), weight


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
    time_limit: float = 10.0,
    method: str = "restricted",
) -> TalentMatrixPlan:
    """Choose the talents that together bring the most unique target reach and expected GMV.

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
        At most this many talents are considered: the best by the match score.
    sample_users
        At most this many target users are sampled (seeded) to count reach on.
    seed
        Seed of the user sample: the same inputs and seed give the same plan.
    reach_value
        Yuan per weighted unique target user; default the candidates' expected GMV per
        weighted target user they reach, so reach and GMV weigh alike.
    time_limit
        Seconds the MILP may take.
    method
        Solver method (:func:`kolmatch.matching.coverage.solve_coverage`).

    Raises
    ------
    UnknownId
        If the merchant or campaign is not in the graph.
    BadArgument
        If the budget or sizes are not positive, or the merchant did not join the campaign.
    InfeasiblePlan
        If no talent is eligible, none is affordable, or the tier mix cannot be met; the
        message says which and why.
    """
    if not np.isfinite(budget) or budget <= 0:
        raise BadArgument("--budget", f"must be a positive amount of yuan, got {budget}")
    for name, v in (("--candidates", candidates), ("--sample-users", sample_users)):
        if v < 1:
            raise BadArgument(name, f"must be at least 1, got {v}")
    tiers = tiers or {}
    m = f.merchant_row(merchant_id)
    window = planning_window(f, campaign, m)
    av = availability(f, m, window)
    sig = merchant_signals(f, m)
    fee = f.talent_fee
    reasons = {
        "compliance": sig.excluded,
        "no free slot": ~sig.excluded & (av.free_slots <= 0),
        "booked by a competitor": ~sig.excluded & (av.free_slots > 0) & av.competitor_booked,
        "no fee on record": ~np.isfinite(fee) | (np.nan_to_num(fee) <= 0),
    }
    eligible = ~np.logical_or.reduce(list(reasons.values()))
    left_out = {k: int(v.sum()) for k, v in reasons.items() if v.any()}
    over = eligible & (np.nan_to_num(fee) > budget)
    if over.any():
        left_out["fee over the budget"] = int(over.sum())
    if not (eligible & ~over).any():
        why = ", ".join(f"{v} {k}" for k, v in left_out.items()) or "the graph has no talents"
        cheapest = np.nanmin(np.where(eligible, fee, np.nan)) if eligible.any() else None
        hint = f"; the cheapest eligible talent costs ¥{cheapest:,.0f}" if cheapest else ""
        raise InfeasiblePlan(f"no talent can be planned for {merchant_id} in {window}: {why}{hint}")
    eligible &= ~over
    tier = talent_tiers(f)
    score = combine(sig)
    pool = np.nonzero(eligible)[0]
    pool = pool[np.lexsort((f.talent_ids[pool], -score[pool]))]
    chosen_pool = [pool[:candidates]]
    for j, name in enumerate(TIERS):  # keep each constrained tier represented
        if tiers.get(name, TierRule()).min_count:
            chosen_pool.append(pool[tier[pool] == j][: max(candidates // 10, 50)])
    cand = np.unique(np.concatenate(chosen_pool)).astype(np.int64)
    if len(pool) > len(cand):
        left_out["below the candidate cut"] = len(pool) - len(cand)

    target, weight = _target_users(f, m)
    rng = np.random.default_rng(seed)
    sample = (
        np.sort(rng.choice(len(target), sample_users, replace=False))
        if len(target) > sample_users
        else np.arange(len(target))
    )
    scale = len(target) / max(len(sample), 1)
    users, w = target[sample], weight[sample]
    reach = sp.csr_matrix(f.audience[cand][:, users])
    reach.data[:] = 1.0
    gmv = sig.expected_gmv[cand] * (1.0 - sig.risk[cand])
    weighted = float((reach @ w).sum()) * scale
    lam = reach_value if reach_value is not None else (gmv.sum() / weighted if weighted else 0.0)
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
    )
    try:
        sol = solve_coverage(problem, method=method, time_limit=time_limit)
    except InfeasiblePlan as exc:
        raise InfeasiblePlan(f"no plan for {merchant_id} in {window}: {exc}") from exc
    picked = cand[sol.chosen]
    talents = _ordered_by_marginal_reach(f, picked, reach[sol.chosen], scale, gmv[sol.chosen])
    covered = np.asarray(reach[sol.chosen].sum(axis=0)).ravel() > 0
    return TalentMatrixPlan(
        merchant=merchant_id,
        window=str(window),
        budget=float(budget),
        talents=talents,
        cost=float(fee[picked].sum()),
        expected_gmv=float(gmv[sol.chosen].sum()),
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
        left_out=left_out,
        overlaps=pair_overlaps(f, picked),
    )


def _ordered_by_marginal_reach(
    f: MarketFeatures, picked: I64, reach: sp.csr_matrix, scale: float, gmv: F64
) -> list[PlannedTalent]:
    """List the chosen talents greedily by the new target users each adds to those above."""
    covered = np.zeros(reach.shape[1], dtype=bool)
    left = list(range(len(picked)))
    out: list[PlannedTalent] = []
    tiers = talent_tiers(f)
    while left:
        gains = [int((~covered[reach[i].indices]).sum()) for i in left]
        k = int(np.argmax(gains))
        i = left.pop(k)
        covered[reach[i].indices] = True
        t = int(picked[i])
        out.append(
            PlannedTalent(
                talent=str(f.talent_ids[t]),
                tier=TIERS[tiers[t]],
                fee=float(f.talent_fee[t]),
                expected_gmv=round(float(gmv[i]), 2),
                marginal_reach=round(gains[k] * scale),
                audience=int(f.talent_audience_size[t]),
            )
        )
    return out


def pair_overlaps(f: MarketFeatures, picked: I64) -> list[PairOverlap]:
    """Engaged-audience overlap of every pair of chosen talents that share any user."""
    out = [
        PairOverlap(
            str(f.talent_ids[a]),
            str(f.talent_ids[b]),
            o.shared,
            round(o.share_of_smaller, 4),
            round(o.jaccard, 4),
        )
        for a, b, o in audience_pair_overlaps(f.audience, np.sort(picked))
    ]
    out.sort(key=lambda o: (-o.share_of_smaller, o.a, o.b))
    return out


def follower_count_plan(
    f: MarketFeatures, merchant_id: str, *, budget: float, campaign: str | None = None
) -> I64:
    """The naive baseline: eligible talents by follower count, largest first, while they fit.

    Uses the same eligibility (compliance, slots, competitor bookings) as the planner.
    """
    m = f.merchant_row(merchant_id)
    av = availability(f, m, planning_window(f, campaign, m))
    sig = merchant_signals(f, m)
    fee = np.nan_to_num(f.talent_fee, nan=np.inf)
    ok = ~sig.excluded & av.available & (fee > 0) & (fee <= budget)
    order = np.nonzero(ok)[0]
    order = order[np.lexsort((f.talent_ids[order], -np.nan_to_num(f.talent_followers[order])))]
    spent, out = 0.0, []
    for t in order:
        if spent + fee[t] <= budget:
            out.append(t)
            spent += fee[t]
    return np.array(out, dtype=np.int64)


def unique_target_reach(f: MarketFeatures, merchant_id: str, talents: I64) -> int:
    """Target users of the merchant (every one, not a sample) reached by any of the talents."""
    target, _ = _target_users(f, f.merchant_row(merchant_id))
    if len(talents) == 0:
        return 0
    reached = np.asarray(f.audience[talents].sum(axis=0)).ravel() > 0
    return int(reached[target].sum())
