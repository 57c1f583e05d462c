"""Independent checks of plans and assignments against the market, not the solver's word.

Deliberately written apart from the optimisers: it re-derives windows, bookings, tiers and
competition straight from :class:`~kolmatch.matching.features.MarketFeatures` with plain
loops, so a bug in the problem builders cannot hide behind a matching bug here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import timedelta

import numpy as np

from kolmatch.graph.model import tier_of
from kolmatch.matching.features import MarketFeatures

__all__ = ["assignment_violations", "plan_violations", "target_plan_violations"]


def _window(f: MarketFeatures, campaign: str | None, planning_days: int) -> tuple[int, int]:
    if campaign is None:
        start = (f.today + timedelta(days=1)).toordinal()
        return start, start + planning_days - 1
    g = list(f.campaign_ids).index(campaign)
    return int(f.campaign_start[g]), int(f.campaign_end[g])


def _bookings(f: MarketFeatures, start: int, end: int) -> list[tuple[int, int]]:
    """(talent row, merchant row) of every booking overlapping [start, end]."""
    return [
        (int(t), int(m))
        for t, m, a, b in zip(
            f.booking_talent, f.booking_merchant, f.booking_start, f.booking_end, strict=True
        )
        if a <= end and b >= start
    ]


def _talent_problems(
    f: MarketFeatures,
    t: int,
    m: int,
    booked: Counter[int],
    booked_by: dict[int, set[int]],
    rivals: set[int],
) -> list[str]:
    tid = f.talent_ids[t]
    out = []
    if f.talent_risk[t] >= 1.0:
        out.append(f"{tid} is excluded for compliance (risk {f.talent_risk[t]:.2f})")
    cap = f.talent_capacity[t]
    cap = 1 if np.isnan(cap) else int(cap)
    if booked[t] >= cap:
        out.append(f"{tid} has no free slot ({booked[t]} booked of {cap})")
    hit = booked_by.get(t, set()) & rivals
    if hit:
        names = ", ".join(sorted(str(f.merchant_ids[x]) for x in hit))
        out.append(f"{tid} is booked by a competitor ({names}) in the window")
    return out


def plan_violations(
    f: MarketFeatures,
    merchant: str,
    talents: Iterable[str],
    *,
    budget: float,
    tiers: Mapping[str, tuple[int, int | None, float | None]] | None = None,
    campaign: str | None = None,
    planning_days: int = 30,
    fees: Mapping[str, float] | None = None,
) -> list[str]:
    """Every constraint a talent-matrix plan breaks, in words; empty if it breaks none.

    Parameters
    ----------
    f
        Market features.
    merchant
        The merchant planned for.
    talents
        The chosen talent ids.
    budget
        The budget the plan had.
    tiers
        Per tier: (fewest, most or None, most budget share or None).
    campaign
        The campaign whose window the plan is for, or None for the coming period.
    planning_days
        Length of the default window.
    fees
        The fee the plan priced each talent at where no list price is quoted (an estimate);
        a chosen talent with neither is a violation.

    Notes
    -----
    Plans pay talents' list prices (their public quotes, what a merchant sees), not the
    private negotiated fees; at most the merchant's ``max_talents`` may be chosen.
    """
    ids = list(talents)
    out: list[str] = []
    if len(set(ids)) != len(ids):
        out.append("a talent is chosen twice")
    rows = {str(x): i for i, x in enumerate(f.talent_ids)}
    m = list(f.merchant_ids).index(merchant)
    start, end = _window(f, campaign, planning_days)
    bookings = _bookings(f, start, end)
    booked = Counter(t for t, _ in bookings)
    booked_by: dict[int, set[int]] = {}
    for t, b in bookings:
        booked_by.setdefault(t, set()).add(b)
    rivals = set(f.competitors[m].indices.tolist())
    spent = 0.0
    count: Counter[str] = Counter()
    tier_spent: dict[str, float] = {}
    for tid in ids:
        t = rows[tid]
        out += _talent_problems(f, t, m, booked, booked_by, rivals)
        fee = float(f.talent_list_price[t])
        if not np.isfinite(fee) or fee <= 0:
            fee = float((fees or {}).get(tid, np.nan))
            if not np.isfinite(fee) or fee <= 0:
                out.append(f"{tid} has no list price and the plan gives none")
                fee = 0.0
        spent += fee
        tier = tier_of(int(np.nan_to_num(f.talent_followers[t])))
        count[tier] += 1
        tier_spent[tier] = tier_spent.get(tier, 0.0) + fee
    if spent > budget + 1e-6:
        out.append(f"fees {spent:,.0f} exceed the budget {budget:,.0f}")
    most = float(f.merchant_max_talents[m])
    if np.isfinite(most) and len(ids) > most:
        out.append(f"{len(ids)} talents, over {merchant}'s max_talents {most:.0f}")
    for tier, (lo, hi, share) in (tiers or {}).items():
        if count[tier] < lo or (hi is not None and count[tier] > hi):
            out.append(f"{count[tier]} {tier} talents, asked for {lo}..{hi}")
        if share is not None and tier_spent.get(tier, 0.0) > share * budget + 1e-6:
            out.append(f"{tier} takes {tier_spent[tier]:,.0f}, over {share:.0%} of the budget")
    return out


def target_plan_violations(
    f: MarketFeatures,
    merchant: str,
    talents: Iterable[str],
    *,
    target_gmv: float,
    tiers: Mapping[str, tuple[int, int | None, float | None]] | None = None,
    campaign: str | None = None,
    planning_days: int = 30,
    fees: Mapping[str, float] | None = None,
) -> list[str]:
    """Every constraint a plan for a GMV target breaks (:func:`~kolmatch.matching.target.
    plan_to_target`), in words; empty if it breaks none.

    The plan's talents must be plannable as in :func:`plan_violations` (with no budget),
    and their expected GMV x (1 - risk) for the merchant, summed here talent by talent from
    the merchant's signals, must reach ``target_gmv``. A tier's budget share is checked
    against the plan's own cost.
    """
    from kolmatch.matching.score import merchant_signals  # the model's expected GMV

    ids = list(talents)
    rows = {str(x): i for i, x in enumerate(f.talent_ids)}
    cost = 0.0
    for tid in ids:
        fee = float(f.talent_list_price[rows[tid]])
        cost += fee if np.isfinite(fee) and fee > 0 else float((fees or {}).get(tid, 0.0))
    out = plan_violations(
        f,
        merchant,
        ids,
        budget=cost,
        tiers=tiers,
        campaign=campaign,
        planning_days=planning_days,
        fees=fees,
    )
    sig = merchant_signals(f, list(f.merchant_ids).index(merchant))
    gmv = 0.0
    for tid in ids:
        t = rows[tid]
        gmv += float(sig.expected_gmv[t]) * (1.0 - float(sig.risk[t]))
    if gmv < target_gmv * (1 - 1e-9):
        out.append(f"expected GMV {gmv:,.0f} is below the target {target_gmv:,.0f}")
    return out


def assignment_violations(
    f: MarketFeatures,
    pairs: Iterable[tuple[str, str]],
    *,
    campaign: str | None = None,
    planning_days: int = 30,
    agency_cap: int | None = None,
    enforce_budgets: bool = True,
    enforce_counts: bool = True,
) -> list[str]:
    """Every constraint a market-wide assignment of (merchant, talent) pairs breaks.

    Checks, from the features alone: compliance (talents and merchants), free slots after
    bookings in the window, competitor bookings, a talent serving two competing merchants,
    merchants' budgets and their fewest / most talents, and the per-merchant agency cap.
    """
    plist = list(pairs)
    out: list[str] = []
    if len(set(plist)) != len(plist):
        out.append("a pair is assigned twice")
    trow = {str(x): i for i, x in enumerate(f.talent_ids)}
    mrow = {str(x): i for i, x in enumerate(f.merchant_ids)}
    start, end = _window(f, campaign, planning_days)
    bookings = _bookings(f, start, end)
    booked = Counter(t for t, _ in bookings)
    booked_by: dict[int, set[int]] = {}
    for t, b in bookings:
        booked_by.setdefault(t, set()).add(b)
    served: dict[int, set[int]] = {}
    per_merchant: dict[int, list[int]] = {}
    for mid, tid in plist:
        m, t = mrow[mid], trow[tid]
        served.setdefault(t, set()).add(m)
        per_merchant.setdefault(m, []).append(t)
        rivals = set(f.competitors[m].indices.tolist())
        for p in _talent_problems(f, t, m, Counter(), booked_by, rivals):
            out.append(f"{mid}: {p}")
        if f.merchant_risk[m] >= 1.0:
            out.append(f"{mid} is excluded for compliance but was assigned {tid}")
    for t, ms in served.items():
        cap = f.talent_capacity[t]
        free = (1 if np.isnan(cap) else int(cap)) - booked[t]
        if len(ms) > free:
            out.append(f"{f.talent_ids[t]} serves {len(ms)} merchants with {max(free, 0)} free")
        for a in ms:
            clash = ms & set(f.competitors[a].indices.tolist())
            if clash:
                out.append(
                    f"{f.talent_ids[t]} serves competitors {f.merchant_ids[a]} and "
                    f"{', '.join(sorted(str(f.merchant_ids[c]) for c in clash))}"
                )
    for m, ts in per_merchant.items():
        mid = f.merchant_ids[m]
        fees = float(sum(f.talent_fee[t] for t in ts))
        budget, most = f.merchant_budget[m], f.merchant_max_talents[m]
        if enforce_budgets and np.isfinite(budget) and fees > budget + 1e-6:
            out.append(f"{mid} spends {fees:,.0f} of a {budget:,.0f} budget")
        if enforce_counts and np.isfinite(most) and len(ts) > most:
            out.append(f"{mid} has {len(ts)} talents, at most {most:.0f}")
        if agency_cap is not None:
            agencies = Counter(int(f.talent_agency[t]) for t in ts if f.talent_agency[t] >= 0)
            for a, n in agencies.items():
                if n > agency_cap:
                    out.append(f"{mid} has {n} talents of agency {f.agency_ids[a]}")
    return out
