"""The FACT split: a merchant's budget across Field, Alliance, Campaign and Top-KOL.

Each channel is a return curve of spend, built from what the merchant may see and buy:

- **Field**: more sessions of its own live room (:mod:`kolmatch.matching.field`), each
  returning less than the one before;
- **Alliance**: mid and micro talents; **Top-KOL**: top-tier talents; each talent at its list
  price and its expected GMV for the merchant (x (1 - risk)), as plans price them;
- **Campaign**: talents promoting the products the merchant put up for the campaigns it
  joined that overlap the window, their expected GMV lifted by the campaign windows' measured
  lift (:func:`campaign_lift`).

Who may be bought is the planner's eligibility (:func:`~kolmatch.matching.plan.plan_candidates`:
compliance, free slots net of bookings, competitors' bookings, a price, the return floor), so
an excluded merchant is refused as plans refuse it and an excluded talent never appears. The
budget goes step by step to the channel whose next step returns the most expected GMV per
yuan (:func:`allocate`, on each channel's concave hull, where greedy is optimal), no talent in
two channels, at most the merchant's ``max_talents``, and no step returning less than the
planner's floor (:data:`~kolmatch.matching.plan.DEFAULT_MIN_ROI` yuan per yuan).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from numpy.typing import NDArray

from kolmatch.errors import BadArgument, InfeasiblePlan
from kolmatch.graph.market import MarketGraph
from kolmatch.graph.projection import day_ordinals
from kolmatch.i18n import DEFAULT_LANG, format_amount, message
from kolmatch.matching.availability import (
    DATES_WINDOW,
    PLANNING_DAYS,
    Window,
    availability,
    planning_window,
)
from kolmatch.matching.eligibility import product_eligibility, require_merchant
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.field import (
    MAX_SESSIONS_PER_DAY,
    FieldCurve,
    FieldModel,
    field_curve,
    field_history,
    fit_field,
)
from kolmatch.matching.plan import (
    DEFAULT_MIN_ROI,
    LEFT_OUT_RETURN_BELOW,
    TIERS,
    Candidates,
    _times,
    plan_candidates,
    talent_tiers,
)
from kolmatch.matching.score import expected_gmv

__all__ = [
    "CAMPAIGN_LIFT_RADIUS",
    "CHANNELS",
    "MAX_WINDOW_DAYS",
    "Curve",
    "FactChannel",
    "FactInputs",
    "FactSplit",
    "FactTalent",
    "Unplanned",
    "allocate",
    "campaign_lift",
    "concave_hull",
    "fact_inputs",
    "fact_split",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: The four channels, in the order a split lists them.
CHANNELS = ("field", "alliance", "campaign", "top_kol")
#: Days either side of a campaign day whose days outside any campaign are its baseline.
CAMPAIGN_LIFT_RADIUS = 30
#: The longest window a split plans for.
MAX_WINDOW_DAYS = 366
#: How far after the market's day a split's window may start.
MAX_LEAD_DAYS = 366


@dataclass(frozen=True)
class FactInputs:
    """What a split needs besides the features, read once per graph version."""

    field_model: FieldModel  # rows in the features' merchant order
    lift: float  # campaign windows' sales against the days around them
    event_days: frozenset[int]  # date ordinals inside any campaign window
    campaign_products: dict[str, list[str]]  # products in each campaign's brief


def fact_inputs(g: MarketGraph, f: MarketFeatures) -> FactInputs:
    """Fit the live rooms and measure the campaign lift from a graph read with ``FACT_READ``.

    Raises
    ------
    StoreError
        If the graph was read without what ``FACT_READ`` names.
    """
    merchants = g.node("Merchant")
    sessions = g.node("LiveSession")
    hosted = g.edge("HOSTED", "Merchant")
    # the store may be a write ahead of the features (a merchant they do not know yet): its
    # sessions wait for the next build rather than failing every merchant's split
    known_ids = f.merchant_ids
    pos = np.searchsorted(known_ids, merchants.ids.astype(known_ids.dtype))
    pos = np.minimum(pos, max(len(known_ids) - 1, 0))
    found = (known_ids[pos] == merchants.ids) if len(known_ids) else np.zeros(0, dtype=bool)
    rows = np.where(found, pos, -1).astype(np.int64)
    owner = np.full(len(sessions), -1, dtype=np.int64)
    owner[hosted.dst] = rows[hosted.src]
    day, ok = day_ordinals(sessions.columns["day"])
    ok &= owner >= 0
    followers = np.asarray(merchants.columns["room_followers"], dtype=np.float64)
    has_room = np.zeros(len(f.merchant_ids), dtype=bool)
    has_room[rows[found]] = np.nan_to_num(followers[found]) > 0
    h = field_history(
        owner[ok],
        day[ok],
        np.asarray(sessions.columns["gmv"], dtype=np.float64)[ok],
        np.asarray(sessions.columns["cost"], dtype=np.float64)[ok],
        has_room,
        today=f.today,
    )
    events = frozenset(
        d
        for a, b in zip(f.campaign_start, f.campaign_end, strict=True)
        for d in range(int(a), int(b) + 1)
    )
    bought = g.edge("PURCHASED", "User")
    when, known = day_ordinals(bought.columns["time"])
    amount = np.asarray(bought.columns["amount"], dtype=np.float64)
    known &= when <= f.today.toordinal()
    lift = campaign_lift(when[known], amount[known], f.campaign_start, f.campaign_end)
    products, campaigns = g.node("Product"), g.node("Campaign")
    in_campaign: dict[str, list[str]] = {}
    e = g.edge("IN_CAMPAIGN", "Product")
    for p, c in zip(e.src, e.dst, strict=True):
        in_campaign.setdefault(str(campaigns.ids[c]), []).append(str(products.ids[p]))
    model = fit_field(h, event_days=events, lift=lift)
    return FactInputs(model, lift, events, in_campaign)


def campaign_lift(
    day: I64, amount: F64, start: I64, end: I64, *, radius: int = CAMPAIGN_LIFT_RADIUS
) -> float:
    """The market's sales inside campaign windows against the days around them.

    Each campaign day's sales are compared with the mean sales of the days outside every
    campaign within ``radius`` days of it (so the trend and the season cancel); the lift is
    the sum of the one over the sum of the other. 1.0 where nothing can be compared.

    Parameters
    ----------
    day
        (N,) date ordinals of sales (purchases).
    amount
        (N,) their amounts in yuan.
    start, end
        (G,) first and last days of the campaigns, date ordinals.

    Examples
    --------
    >>> days = np.arange(100)
    >>> sales = np.where((days >= 40) & (days < 50), 150.0, 100.0)
    >>> campaign_lift(days, sales, np.array([40]), np.array([49]))
    1.5
    """
    ok = np.isfinite(amount)
    if not ok.any():
        return 1.0
    day, amount = day[ok], amount[ok]
    first, last = int(day.min()), int(day.max())
    daily = np.bincount(day - first, weights=amount, minlength=last - first + 1)
    inside = np.zeros(len(daily), dtype=bool)
    for a, b in zip(start, end, strict=True):
        lo, hi = max(int(a) - first, 0), min(int(b) - first, len(daily) - 1)
        if lo <= hi:
            inside[lo : hi + 1] = True
    outside = (~inside).astype(np.float64)
    window = np.ones(2 * radius + 1)
    n_out = np.convolve(outside, window, mode="same")
    s_out = np.convolve(daily * outside, window, mode="same")
    use = inside & (n_out > 0)
    base = float((s_out[use] / n_out[use]).sum())
    return float(daily[use].sum() / base) if base > 0 else 1.0


@dataclass(frozen=True)
class Curve:
    """A channel's steps: each step's cost and expected GMV, in the order they would be bought.

    ``independent`` steps (talents) may be bought in any subset; the others (sessions) only in
    order. ``item`` names what each step buys (a talent row, a session number).
    """

    cost: F64
    gain: F64
    item: I64
    independent: bool


def concave_hull(cost: F64, gain: F64) -> tuple[I64, F64, F64]:
    """Merge consecutive steps into the segments of the curve's upper concave hull.

    Returns, per segment, the index of its last step and its cost and gain; the segments'
    gains per yuan fall. Buying segments in order is buying the steps in order.

    Examples
    --------
    >>> ends, c, g = concave_hull(np.array([1.0, 1.0, 1.0]), np.array([1.0, 3.0, 0.5]))
    >>> ends.tolist(), c.tolist(), g.tolist()
    ([1, 2], [2.0, 1.0], [4.0, 0.5])
    """
    ends: list[int] = []
    seg_c: list[float] = []
    seg_g: list[float] = []
    for i, (c, g) in enumerate(zip(cost.tolist(), gain.tolist(), strict=True)):
        ends.append(i)
        seg_c.append(c)
        seg_g.append(g)
        # a segment steeper than the one before it is bought with it: merge back
        while len(seg_c) >= 2 and seg_g[-1] * seg_c[-2] >= seg_g[-2] * seg_c[-1]:
            c2, g2 = seg_c.pop(), seg_g.pop()
            ends.pop(-2)
            seg_c[-1] += c2
            seg_g[-1] += g2
    return np.array(ends, dtype=np.int64), np.array(seg_c), np.array(seg_g)


@dataclass(frozen=True)
class _Taken:
    steps: list[list[int]]  # per curve, the steps bought
    spent: F64  # per curve
    gain: F64  # per curve
    last: F64  # per curve: gain per yuan of the last segment bought (0: none)
    next: F64  # per curve: of the best segment not bought (0: none)


def allocate(
    curves: Sequence[Curve],
    budget: float,
    *,
    floor: float = 0.0,
    most_items: int | None = None,
    shared: Sequence[bool] | None = None,
    group: Sequence[int] | None = None,
    caps: Sequence[float] | None = None,
) -> _Taken:
    """Spend ``budget`` step by step on the curve whose next segment returns the most per yuan.

    Sequential curves are bought by the segments of their concave hull
    (:func:`concave_hull`), independent ones step by step in the order given (by gain per
    yuan, best first). A segment that no longer fits closes a sequential curve; an
    independent step that does not fit, or whose ``item`` another ``shared`` curve bought
    already, is passed over. Nothing returning less than ``floor`` per yuan is bought, and at
    most ``most_items`` steps of the ``shared`` curves in all; curves of one ``group`` spend at
    most its ``caps`` entry together (default: no cap). With divisible steps this is
    the optimum of the concave curves (tests/matching/test_fact.py checks it against a brute
    force).

    Examples
    --------
    >>> a = Curve(np.array([1.0, 1.0]), np.array([3.0, 1.0]), np.arange(2), False)
    >>> b = Curve(np.array([1.0]), np.array([2.0]), np.arange(1), True)
    >>> t = allocate([a, b], 2.0)
    >>> t.steps, t.spent.tolist(), t.gain.tolist()
    ([[0], [0]], [1.0, 1.0], [3.0, 2.0])
    """
    n = len(curves)
    shared = list(shared) if shared is not None else [False] * n
    group = list(group) if group is not None else list(range(n))
    cap = list(caps) if caps is not None else [np.inf] * (max(group, default=-1) + 1)
    in_group = np.zeros(len(cap))
    segs: list[tuple[I64, F64, F64]] = []
    for cv in curves:
        if cv.independent:
            segs.append((np.arange(len(cv.cost), dtype=np.int64), cv.cost, cv.gain))
        else:
            segs.append(concave_hull(cv.cost, cv.gain))
    pos = [0] * n
    taken: list[list[int]] = [[] for _ in range(n)]
    spent, gain = np.zeros(n), np.zeros(n)
    last, nxt = np.zeros(n), np.zeros(n)
    used: set[int] = set()
    items = 0
    left = float(budget)

    def ratio(i: int) -> float:
        _, c, g = segs[i]
        return float(g[pos[i]] / c[pos[i]]) if c[pos[i]] > 0 else np.inf

    heap = [(-ratio(i), i) for i in range(n) if len(segs[i][1])]
    heapq.heapify(heap)
    while heap:
        r, i = heapq.heappop(heap)
        ends, c, g = segs[i]
        j = pos[i]
        r = -r
        item = int(curves[i].item[ends[j]])
        elsewhere = shared[i] and item in used  # bought by another channel: not an option
        full = shared[i] and most_items is not None and items >= most_items
        room = min(left, cap[group[i]] - in_group[group[i]])
        if r < floor or (c[j] > room + 1e-9 and not curves[i].independent):
            if nxt[i] == 0:
                nxt[i] = r  # the curve's best segment not bought
            continue
        if c[j] <= room + 1e-9 and not elsewhere and not full:
            first = int(ends[j - 1]) + 1 if j > 0 and not curves[i].independent else int(ends[j])
            taken[i].extend(range(first, int(ends[j]) + 1))
            spent[i] += c[j]
            gain[i] += g[j]
            left -= c[j]
            in_group[group[i]] += c[j]
            last[i] = r
            if shared[i]:
                used.add(item)
                items += 1
        elif not elsewhere and nxt[i] == 0:
            nxt[i] = r
        pos[i] += 1
        if pos[i] < len(ends):
            heapq.heappush(heap, (-ratio(i), i))
    return _Taken(taken, spent, gain, last, nxt)


#: Prices of a talent slot tried when ``max_talents`` binds: quantiles of the candidates' GMV.
SLOT_PRICE_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _slot_priced(
    curves: Sequence[Curve],
    budget: float,
    *,
    floor: float,
    most_items: int | None,
    shared: Sequence[bool],
    group: Sequence[int],
    caps: Sequence[float],
) -> _Taken:
    """:func:`allocate` with a price on each talent slot, the best of a few prices.

    Greedy by GMV per yuan fills a merchant's few ``max_talents`` slots with cheap talents and
    leaves budget unspent (on generated s markets the split then sold 11-13% less than the
    planner, which solves the slots exactly). Charging each talent a price ``mu`` per slot
    (ranking by ``(gain - mu) / cost``) favours talents that bring more per slot; prices 0 and
    :data:`SLOT_PRICE_QUANTILES` of the candidates' GMV are tried and the split with the most
    expected GMV kept (0 on ties). Steps returning under ``floor`` per yuan are never bought.
    """
    kept = [cv.gain >= floor * cv.cost for cv in curves]
    gains = np.concatenate(
        [cv.gain[k] for cv, k, sh in zip(curves, kept, shared, strict=True) if sh] + [np.zeros(0)]
    )
    prices = [0.0]
    if most_items is not None and len(gains) > most_items:
        prices += sorted(set(np.quantile(gains, SLOT_PRICE_QUANTILES).tolist()))
    best: _Taken | None = None
    for mu in prices:
        adjusted, index = [], []
        for cv, k, sh in zip(curves, kept, shared, strict=True):
            if not cv.independent:  # a sequence stops where its return falls under the floor
                stop = int(np.argmin(k)) if not k.all() else len(k)
                order = np.arange(stop, dtype=np.int64)
                adjusted.append(Curve(cv.cost[order], cv.gain[order], cv.item[order], False))
            else:
                g = cv.gain - (mu if sh else 0.0)
                rows = np.nonzero(k & (g > 0))[0]
                order = rows[np.argsort(-(g[rows] / cv.cost[rows]), kind="stable")]
                adjusted.append(Curve(cv.cost[order], g[order], cv.item[order], True))
            index.append(order)
        t = allocate(
            adjusted,
            budget,
            most_items=most_items,
            shared=shared,
            group=group,
            caps=caps,
        )
        steps = [[int(index[i][s]) for s in t.steps[i]] for i in range(len(curves))]
        steps = _fill(
            curves,
            steps,
            budget,
            floor=floor,
            most_items=most_items,
            shared=shared,
            group=group,
            caps=caps,
        )
        gain = np.array([float(cv.gain[st].sum()) for cv, st in zip(curves, steps, strict=True)])
        if best is None or gain.sum() > best.gain.sum() + 1e-6:
            used = {
                int(cv.item[s])
                for cv, st, sh in zip(curves, steps, shared, strict=True)
                if sh
                for s in st
            }
            last, nxt = np.zeros(len(curves)), np.zeros(len(curves))
            for i, cv in enumerate(curves):
                ratio = cv.gain / np.where(cv.cost > 0, cv.cost, np.inf)
                if steps[i]:
                    last[i] = float(ratio[steps[i]].min())
                mine = set(steps[i])
                left = [
                    j
                    for j in range(len(cv.cost))
                    if j not in mine and not (shared[i] and int(cv.item[j]) in used)
                ]
                if not cv.independent:
                    left = left[:1]  # a sequence's next step is the one after the last bought
                nxt[i] = float(ratio[left].max()) if left else 0.0
            spent = np.array(
                [float(cv.cost[st].sum()) for cv, st in zip(curves, steps, strict=True)]
            )
            best = _Taken(steps, spent, gain, last, nxt)
    assert best is not None
    return best


def _fill(
    curves: Sequence[Curve],
    steps: list[list[int]],
    budget: float,
    *,
    floor: float,
    most_items: int | None,
    shared: Sequence[bool],
    group: Sequence[int],
    caps: Sequence[float],
) -> list[list[int]]:
    """``steps`` and what the budget they leave buys at no slot price (:func:`allocate`).

    A slot price passes over cheap talents to keep slots for dearer ones; where it leaves both
    budget and slots, steps returning at least ``floor`` per yuan that fit are still worth
    buying (on s, ``fact m0 --budget 1e6`` left ¥8,500 and a slot while a ¥6,790 talent
    returned more than ¥1 per yuan). Steps already bought, and talents bought in another
    channel, are not offered again; a sequence offers the steps after its last one bought.
    """
    used = {
        int(cv.item[s]) for cv, st, sh in zip(curves, steps, shared, strict=True) if sh for s in st
    }
    items = sum(len(st) for st, sh in zip(steps, shared, strict=True) if sh)
    if most_items is not None and items >= most_items:
        return steps
    spent = [float(cv.cost[st].sum()) for cv, st in zip(curves, steps, strict=True)]
    left = budget - sum(spent)
    if left < 0.5:
        return steps
    in_group = np.zeros(len(caps))
    for g, x in zip(group, spent, strict=True):
        in_group[g] += x
    rest: list[Curve] = []
    index: list[I64] = []
    for cv, st, sh in zip(curves, steps, shared, strict=True):
        worth = cv.gain >= floor * cv.cost
        if not cv.independent:
            k = len(st)
            stop = k + int(np.argmin(worth[k:])) if not worth[k:].all() else len(worth)
            order = np.arange(k, stop, dtype=np.int64)
        else:
            bought = np.zeros(len(cv.cost), dtype=bool)
            bought[st] = True
            elsewhere = np.isin(cv.item, list(used)) if sh else np.zeros(len(cv.item), bool)
            rows = np.nonzero(worth & (cv.gain > 0) & ~bought & ~elsewhere)[0]
            order = rows[np.argsort(-(cv.gain[rows] / cv.cost[rows]), kind="stable")]
        rest.append(Curve(cv.cost[order], cv.gain[order], cv.item[order], cv.independent))
        index.append(order.astype(np.int64))
    t = allocate(
        rest,
        left,
        floor=floor,
        most_items=None if most_items is None else most_items - items,
        shared=shared,
        group=group,
        caps=[c - x for c, x in zip(caps, in_group, strict=True)],
    )
    return [st + [int(index[i][s]) for s in t.steps[i]] for i, st in enumerate(steps)]


@dataclass(frozen=True)
class FactTalent:
    """A talent in a channel's plan, at its list price (what the merchant sees)."""

    talent: str
    tier: str
    fee: float
    fee_estimated: bool
    expected_gmv: float
    roi: float  # expected GMV / (fee + commission), as plans compute it
    campaign: str | None = None


@dataclass(frozen=True)
class Unplanned:
    """Why the planner offers a channel no talent (:func:`~kolmatch.matching.plan.
    plan_candidates` refused), counted as it counts them."""

    campaign: str | None  # whose window; None: the split's own (the coming period)
    left_out: dict[str, int]  # talents, by the planner's reason (plan.LEFT_OUT_*)
    cheapest: float | None = None  # the cheapest eligible talent's price, over the budget
    max_talents: int | None = None  # the merchant takes no talent at all (max_talents < 1)


@dataclass(frozen=True)
class FactChannel:
    """What one channel gets: spend, expected GMV, returns, reasons and its plan."""

    channel: str  # one of CHANNELS
    spend: float
    expected_gmv: float
    roi: float | None  # expected GMV / spend; None where nothing is spent
    marginal_return: float  # expected GMV per yuan of the last step bought (0: none)
    next_return: float  # of the best step not bought (0: none left)
    reasons: list[str]
    talents: list[FactTalent] = field(default_factory=list)
    sessions_added: int = 0  # Field: sessions to add in the window
    sessions_now: float = 0.0  # Field: sessions in the window at the current rate
    session_cost: float = 0.0  # Field: yuan per session
    campaigns: list[str] = field(default_factory=list)  # Campaign: those planned for
    #: where the planner offers no talent: why, by campaign in Campaign (the reasons' words)
    unplanned: list[Unplanned] = field(default_factory=list)


@dataclass(frozen=True)
class FactSplit:
    """The recommended split of a budget across the four channels (:func:`fact_split`)."""

    merchant: str
    window: str
    start: str
    end: str
    budget: float
    spent: float
    unspent: float
    expected_gmv: float
    floor: float  # least expected GMV per yuan a step had to return
    campaign_lift: float
    channels: list[FactChannel]
    reasons: list[str]  # the split as a whole: what was left and why

    def channel(self, name: str) -> FactChannel:
        return next(c for c in self.channels if c.channel == name)


def _window(f: MarketFeatures, start: date | None, end: date | None) -> Window:
    default = planning_window(f)
    if start is None and end is None:
        return default
    a = start.toordinal() if start is not None else default.start
    if a <= f.today.toordinal():
        raise BadArgument(
            "start", f"must be after the market's day {f.today.isoformat()}, got {start}"
        )
    b = end.toordinal() if end is not None else a + PLANNING_DAYS - 1
    if b < a:
        raise BadArgument("end", f"must not be before the start {date.fromordinal(a)}")
    if b - a + 1 > MAX_WINDOW_DAYS:
        raise BadArgument("end", f"a window is at most {MAX_WINDOW_DAYS} days, got {b - a + 1}")
    if a - f.today.toordinal() > MAX_LEAD_DAYS:
        # the rooms' trend and season are fitted on the history: a year ahead is as far as
        # they are worth extrapolating (and far enough for any brief on the calendar)
        raise BadArgument(
            "start",
            f"must be within {MAX_LEAD_DAYS} days of the market's day {f.today.isoformat()}, "
            f"got {date.fromordinal(a)}",
        )
    return Window(a, b, DATES_WINDOW)


def _talent_curve(
    f: MarketFeatures, free: NDArray[np.bool_], gmv: F64, fee: F64
) -> tuple[Curve, I64]:
    rows = np.nonzero(free & (gmv > 0))[0].astype(np.int64)
    ratio = gmv[rows] / fee[rows]
    followers = np.nan_to_num(f.talent_followers[rows])
    rows = rows[np.lexsort((f.talent_ids[rows], -followers, -ratio))]
    return Curve(fee[rows], gmv[rows], rows, True), rows


def _roi(gmv: float, fee: float, rate: float) -> float:
    paid = fee + rate * gmv
    return round(gmv / paid, 4) if paid > 0 else 0.0


def fact_split(
    f: MarketFeatures,
    merchant_id: str,
    *,
    budget: float,
    field_model: FieldModel,
    lift: float = 1.0,
    campaign_products: Mapping[str, Sequence[str]] | None = None,
    event_days: set[int] | frozenset[int] = frozenset(),
    start: date | None = None,
    end: date | None = None,
    shares: Mapping[str, float] | None = None,
    lang: str = DEFAULT_LANG,
) -> FactSplit:
    """Split ``budget`` across Field, Alliance, Campaign and Top-KOL (see the module's docs).

    Parameters
    ----------
    f
        Market features.
    merchant_id
        The merchant (known and eligible, as for a plan).
    budget
        Yuan to spend in the window: session costs and talents' list prices.
    field_model
        The rooms' fitted model (:func:`~kolmatch.matching.field.fit_field`), rows in
        ``f.merchant_ids`` order.
    lift
        The campaign windows' lift on sales (:func:`campaign_lift`).
    campaign_products
        The products each campaign's brief holds, by campaign id (the merchant's own count).
    event_days
        Date ordinals inside campaign windows (the Field level's lift).
    start, end
        The window; default the coming :data:`~kolmatch.matching.availability.PLANNING_DAYS`
        days after the market's day.
    shares
        Most share of the budget a channel may take, by channel (default: none); the
        equal four-way baseline of bench/fact.py is 0.25 each.
    lang
        The reasons' language.

    Raises
    ------
    UnknownId
        If the merchant is not in the graph.
    NotEligible
        If the merchant is excluded for compliance.
    BadArgument
        If the budget is not a positive amount, or the window is not after the market's day,
        ends before it starts or is longer than :data:`MAX_WINDOW_DAYS`.
    """
    if not np.isfinite(budget) or budget <= 0:
        raise BadArgument("budget", f"must be a positive amount of yuan, got {budget}")
    m = require_merchant(f, merchant_id)
    window = _window(f, start, end)
    floor = DEFAULT_MIN_ROI
    say = _Say(lang)
    curves: list[Curve] = []
    names: list[str] = []
    shared: list[bool] = []
    notes: dict[str, list[str]] = {c: [] for c in CHANNELS}
    unplanned: dict[str, list[Unplanned]] = {c: [] for c in CHANNELS}
    meta: list[tuple[str, str | None]] = []  # per curve: channel, campaign

    # Field
    fc = field_curve(field_model, m, start=window.start, end=window.end, event_days=event_days)
    curves.append(Curve(fc.costs, fc.gains, np.arange(len(fc.gains)), False))
    names.append("field")
    shared.append(False)
    meta.append(("field", None))
    # Alliance and Top-KOL: the planner's candidates for the coming window
    base: Candidates | None = None
    try:
        base = plan_candidates(f, merchant_id, budget=budget)
    except InfeasiblePlan as refused:
        why = _unplanned(refused, None)
        for ch in ("alliance", "top_kol"):
            unplanned[ch].append(why)
            notes[ch].append(say("fact.talents.none", channel=say.channel(ch), why=say.why(why)))
    rate = base.rate if base is not None else 0.0
    # per curve: whose list prices are estimates (the planner's candidates it came from)
    estimated_of: list[NDArray[np.bool_] | None] = [None]
    if base is not None:
        free = base.eligible
        if (window.start, window.end) != (base.window.start, base.window.end):
            free = free & availability(f, m, window).available
        top = TIERS.index("top")
        for ch, rows in (("alliance", base.tier != top), ("top_kol", base.tier == top)):
            curve, _ = _talent_curve(f, free & rows, base.gmv_all, base.fee)
            curves.append(curve)
            names.append(ch)
            shared.append(True)
            meta.append((ch, None))
            estimated_of.append(base.estimated)
            if not len(curve.cost):
                notes[ch].append(say("fact.talents.no_candidate", channel=say.channel(ch)))
    # Campaign: the joined campaigns overlapping the window, their products, lifted
    joined = f.merchant_campaigns[m].indices
    live = [
        int(g)
        for g in joined
        if f.campaign_start[g] <= window.end
        and f.campaign_end[g] >= window.start
        and f.campaign_end[g] > f.today.toordinal()
    ]
    if not live:
        span = f"{date.fromordinal(window.start)}..{date.fromordinal(window.end)}"
        notes["campaign"].append(say("fact.campaign.none", window=span))
    by_campaign = campaign_products or {}
    # the merchant's own products that compliance lets be promoted, by id (a brief also lists
    # other merchants' products, some perhaps newer than these features)
    own = np.nonzero((f.product_merchant == m) & product_eligibility(f).ok)[0]
    own_row = {str(f.product_ids[p]): int(p) for p in own}
    for g in live:
        cid = str(f.campaign_ids[g])
        prods = np.array(
            [own_row[p] for p in by_campaign.get(cid, ()) if p in own_row], dtype=np.int64
        )
        if not len(prods):
            notes["campaign"].append(say("fact.campaign.no_products", campaign=cid))
            continue
        try:
            c = plan_candidates(f, merchant_id, budget=budget, campaign=cid)
        except InfeasiblePlan as refused:
            why = _unplanned(refused, cid)
            unplanned["campaign"].append(why)
            channel = f"{say.channel('campaign')} {cid}"
            notes["campaign"].append(say("fact.talents.none", channel=channel, why=say.why(why)))
            continue
        gmv, _ = expected_gmv(f, slice(None), prods)
        gmv = gmv * (1.0 - c.sig.risk) * lift
        # the planner's eligibility before its return floor, which is taken on this GMV
        free = ~np.logical_or.reduce(list(c.reasons.values()))
        free &= np.nan_to_num(c.fee, nan=np.inf) <= budget
        paid = np.nan_to_num(c.fee, nan=np.inf) + c.rate * gmv
        if c.floor is not None:
            free &= gmv >= c.floor * paid
        curve, _ = _talent_curve(f, free, gmv, c.fee)
        curves.append(curve)
        names.append("campaign")
        shared.append(True)
        meta.append(("campaign", cid))
        estimated_of.append(c.estimated)
        rate = c.rate
    most = float(f.merchant_max_talents[m])
    caps = [budget * (shares or {}).get(ch, 1.0) for ch in CHANNELS]
    t = _slot_priced(
        curves,
        budget,
        floor=floor,
        most_items=int(most) if np.isfinite(most) else None,
        shared=shared,
        group=[CHANNELS.index(n) for n in names],
        caps=caps,
    )
    tiers_of = talent_tiers(f)
    channels: list[FactChannel] = []
    for ch in CHANNELS:
        idx = [i for i, n in enumerate(names) if n == ch]
        spend = float(sum(t.spent[i] for i in idx))
        gmv_ch = float(sum(t.gain[i] for i in idx))
        # the last yuan spent: the least return among the curves that bought a step
        last = min((float(t.last[i]) for i in idx if len(t.steps[i])), default=0.0)
        nxt = max((float(t.next[i]) for i in idx), default=0.0)
        talents: list[FactTalent] = []
        for i in idx:
            cur = curves[i]
            for s in t.steps[i]:
                if ch == "field":
                    continue
                row = int(cur.item[s])
                est = estimated_of[i]
                talents.append(
                    FactTalent(
                        talent=str(f.talent_ids[row]),
                        tier=TIERS[int(tiers_of[row])],
                        fee=float(cur.cost[s]),
                        fee_estimated=bool(est[row]) if est is not None else False,
                        expected_gmv=round(float(cur.gain[s]), 2),
                        roi=_roi(float(cur.gain[s]), float(cur.cost[s]), rate),
                        campaign=meta[i][1],
                    )
                )
        reasons = list(notes[ch])
        if ch == "field":
            added = len(t.steps[0])
            reasons.insert(0, _field_reason(say, fc, added, t.last[0], t.next[0], window))
        elif talents:
            reasons.insert(
                0,
                say(
                    "fact.talents.chosen",
                    channel=say.channel(ch),
                    talents=len(talents),
                    spend=say.yuan(spend),
                    gmv=say.yuan(gmv_ch),
                    last=last,
                    next=nxt,
                ),
            )
        elif any(len(curves[i].cost) for i in idx):
            reasons.insert(
                0,
                say(
                    "fact.talents.unbought",
                    channel=say.channel(ch),
                    best=max(float(t.next[i]) for i in idx),
                    floor=floor,
                ),
            )
        if ch == "campaign" and live and any(len(curves[i].cost) for i in idx):
            ids = ", ".join(str(f.campaign_ids[g]) for g in live)
            reasons.append(say("fact.campaign.lift", campaigns=ids, lift=lift))
        channels.append(
            FactChannel(
                channel=ch,
                spend=spend,
                expected_gmv=round(gmv_ch, 2),
                roi=round(gmv_ch / spend, 4) if spend > 0 else None,
                marginal_return=round(last, 4),
                next_return=round(nxt, 4),
                reasons=reasons,
                talents=talents,
                sessions_added=len(t.steps[0]) if ch == "field" else 0,
                sessions_now=round(fc.sessions_now, 2) if ch == "field" else 0.0,
                session_cost=round(fc.session_cost, 2) if ch == "field" else 0.0,
                campaigns=sorted({c for (n, c) in meta if n == ch and c is not None}),
                unplanned=unplanned[ch],
            )
        )
    spent = float(t.spent.sum())
    overall: list[str] = []
    left = budget - spent
    if left >= 0.5:
        picked = sum(len(t.steps[i]) for i in range(len(curves)) if shared[i])
        cheapest = _cheapest_worth_buying(curves, t, shared, floor)
        if np.isfinite(most) and picked >= most:
            overall.append(say("fact.unspent.max_talents", left=say.yuan(left), n=int(most)))
        elif cheapest is None:  # every step not bought returns less than the floor
            overall.append(say("fact.unspent.floor", left=say.yuan(left), floor=floor))
        elif cheapest > left:
            overall.append(
                say("fact.unspent.too_dear", left=say.yuan(left), cheapest=say.yuan(cheapest))
            )
        else:  # one fits, and _fill buys what fits: its channel is at its cap (``shares``)
            overall.append(
                say("fact.unspent.capped", left=say.yuan(left), cheapest=say.yuan(cheapest))
            )
    return FactSplit(
        merchant=merchant_id,
        window=str(window),
        start=date.fromordinal(window.start).isoformat(),
        end=date.fromordinal(window.end).isoformat(),
        budget=float(budget),
        spent=spent,
        unspent=max(left, 0.0),
        expected_gmv=round(float(t.gain.sum()), 2),
        floor=floor,
        campaign_lift=round(float(lift), 4),
        channels=channels,
        reasons=overall,
    )


def _unplanned(refused: InfeasiblePlan, campaign: str | None) -> Unplanned:
    """What :func:`~kolmatch.matching.plan.plan_candidates` counted when it refused to plan
    (``refused``, its InfeasiblePlan): its ``left_out`` by reason, the cheapest eligible
    talent's price where the budget is the reason, or the merchant's ``max_talents`` where it
    takes none; ``campaign`` the window it planned for (None: the coming period)."""
    return Unplanned(
        campaign,
        dict(refused.left_out or {}),
        cheapest=refused.cheapest,
        max_talents=refused.max_talents,
    )


def _cheapest_worth_buying(
    curves: Sequence[Curve], t: _Taken, shared: Sequence[bool], floor: float
) -> float | None:
    """The cost of the cheapest step not bought that would return at least ``floor`` per yuan
    (a talent taken in another channel is not on offer; a sequence offers its next step only);
    None if there is none."""
    taken = {
        int(c.item[s]) for c, sh, st in zip(curves, shared, t.steps, strict=True) if sh for s in st
    }
    costs: list[float] = []
    for c, sh, st in zip(curves, shared, t.steps, strict=True):
        if not len(c.cost):
            continue
        if not c.independent:
            k = len(st)
            if k < len(c.cost) and c.gain[k] >= floor * c.cost[k]:
                costs.append(float(c.cost[k]))
            continue
        bought = set(st)
        for s in range(len(c.cost)):
            if s in bought or (sh and int(c.item[s]) in taken):
                continue
            if c.gain[s] >= floor * c.cost[s]:
                costs.append(float(c.cost[s]))
    return min(costs) if costs else None


class _Say:
    """The reasons' words in one language (kolmatch/i18n.py)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, key: str, **values: object) -> str:
        return message(key, self.lang, **values)

    def channel(self, name: str) -> str:
        return message(f"fact.channel.{name}", self.lang)

    def yuan(self, x: float) -> str:
        return format_amount(x, self.lang)

    def why(self, u: Unplanned) -> str:
        """Why no talent can be planned: the left-out counts, by the planner's reasons."""
        if u.max_talents is not None:
            return self("fact.why.max_talents", n=u.max_talents)
        if not u.left_out:
            return self("fact.why.no_talents")
        below = LEFT_OUT_RETURN_BELOW.format(floor=_times(DEFAULT_MIN_ROI))
        parts = [
            self(
                "reason.item",
                n=f"{n:,}",
                reason=(
                    self("reason.return below", floor=_times(DEFAULT_MIN_ROI))
                    if k == below
                    else self(f"reason.{k}")
                ),
            )
            for k, n in u.left_out.items()
        ]
        text = self("reason.sep").join(parts)
        if u.cheapest is not None:
            text += self("fact.why.cheapest", cheapest=self.yuan(u.cheapest))
        return text


def _field_reason(
    say: _Say, fc: FieldCurve, added: int, last: float, nxt: float, window: Window
) -> str:
    if not fc.has_room:
        return say("fact.field.no_room")
    if fc.reason:
        return say("fact.field.no_sales")
    days = window.end - window.start + 1
    monthly = fc.sessions_now * 30.0 / days
    if added and added >= len(fc.gains):  # the last session the window holds was bought
        return say(
            "fact.field.full",
            now=monthly,
            cost=say.yuan(fc.session_cost),
            b=fc.exponent,
            added=added,
            gmv=say.yuan(fc.gmv_of(added)),
            most=MAX_SESSIONS_PER_DAY,
        )
    if not added:
        return say(
            "fact.field.curve_none",
            now=monthly,
            cost=say.yuan(fc.session_cost),
            b=fc.exponent,
            own=fc.own_weight,
            next=nxt,
        )
    return say(
        "fact.field.curve",
        now=monthly,
        cost=say.yuan(fc.session_cost),
        b=fc.exponent,
        own=fc.own_weight,
        added=added,
        gmv=say.yuan(fc.gmv_of(added)),
        last=last,
        next=nxt,
    )
