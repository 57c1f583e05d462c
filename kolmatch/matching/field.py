"""FACT's Field: a merchant's own live room, and what more sessions in a window would return.

A room's month of ``n`` sessions sells ``G = A x n^b x level(month)``: the room's own
followers tire of it, so each further session draws fewer viewers (``b`` <= 1), and the
market's activity (trend, season, campaign windows) moves every room alike. The fit
(:func:`fit_field`) is a log-log least squares on every room's months at once, with one effect
per month (so the season is not read as the exponent), each room's own exponent shrunk toward
the market's pooled one by how much its own months can tell (empirical Bayes: a room with few
months, or the same number of sessions every month, gets the pooled exponent). The curve of one
room in a window (:func:`field_curve`) is the extra GMV of each session added to its current
rate, at the cost per session it pays: a falling return per yuan, which the FACT split
(:mod:`kolmatch.matching.fact`) weighs against talents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

from kolmatch.errors import BadArgument

__all__ = [
    "MAX_SESSIONS_PER_DAY",
    "MIN_EXPONENT",
    "MIN_MONTHS",
    "RECENT_MONTHS",
    "FieldCurve",
    "FieldHistory",
    "FieldModel",
    "field_curve",
    "field_history",
    "fit_field",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

#: The least exponent a fit may give: a session that returns nothing at all is not a model.
MIN_EXPONENT = 0.05
#: Fewest months with sessions for a room's own exponent to count at all (else the pooled one).
MIN_MONTHS = 4
#: Months the current rate and cost per session are read from (the latest complete ones).
RECENT_MONTHS = 3
#: Most sessions a room runs a day: the curve stops there.
MAX_SESSIONS_PER_DAY = 2
#: The market's yearly trend the level ahead is projected on, clipped to this (as the growth
#: forecast clips its own: kolmatch/matching/growth.py).
YEARLY_TREND_LIMITS = (0.5, 2.0)
#: Prior weight, in months, of the market's residual variance in each room's own.
_VARIANCE_PRIOR_MONTHS = 4.0
#: Least spread of rooms' true exponents the shrinkage assumes (a spread estimated as 0 would
#: give every room the pooled exponent whatever its own months say).
_MIN_EXPONENT_SD = 0.02
_BACKFIT_ROUNDS = 50


@dataclass(frozen=True)
class FieldHistory:
    """Every room's sessions, GMV and cost per calendar month (rows: merchants, in id order)."""

    first_month: int  # months since year 0 of column 0 (year x 12 + month - 1)
    sessions: F64  # (M, K)
    gmv: F64  # (M, K)
    cost: F64  # (M, K)
    gmv_squares: F64  # (M, K) sum of the sessions' squared GMV (their spread within a month)
    has_room: B  # (M,) the merchant reports a live room (followers on record) or ran sessions
    #: (M, K) sessions whose cost is on record (None: all of them); cost is their sum
    costed: F64 | None = None


def _month_of(ordinal: int) -> int:
    d = date.fromordinal(ordinal)
    return d.year * 12 + d.month - 1


def _month_days(month: int) -> int:
    a = date(month // 12, month % 12 + 1, 1)
    b = date((month + 1) // 12, (month + 1) % 12 + 1, 1)
    return (b - a).days


def field_history(
    merchant: I64, day: I64, gmv: F64, cost: F64, has_room: B, *, today: date
) -> FieldHistory:
    """Sum sessions by merchant and calendar month, up to the last complete month by ``today``.

    Parameters
    ----------
    merchant
        (S,) each session's merchant row.
    day
        (S,) each session's day as a date ordinal.
    gmv, cost
        (S,) each session's GMV and cost in yuan (NaN counts as 0).
    has_room
        (M,) merchants with a live room; a merchant with sessions has one whatever this says.
    today
        The market's day: later sessions, and today's month unless it ends today, are left out.

    Examples
    --------
    >>> h = field_history(np.array([0, 0, 1]), np.array([date(2026, 5, 3).toordinal(),
    ...     date(2026, 6, 9).toordinal(), date(2026, 6, 1).toordinal()]),
    ...     np.array([100.0, 50.0, 10.0]), np.array([20.0, 20.0, 5.0]),
    ...     np.array([True, False, False]), today=date(2026, 6, 30))
    >>> h.sessions.tolist(), h.has_room.tolist()
    ([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]], [True, True, False])
    """
    n_merchants = len(has_room)
    last = _month_of(today.toordinal())
    if (today + timedelta(days=1)).day != 1:
        last -= 1  # today's month is not over: its sessions would read as a slow month
    month = np.array([_month_of(int(d)) for d in day], dtype=np.int64)
    keep = month <= last
    room = np.asarray(has_room, dtype=bool).copy()
    room[merchant[keep]] = True
    if not keep.any():
        empty = np.zeros((n_merchants, 0))
        return FieldHistory(last + 1, empty, empty, empty.copy(), empty.copy(), room, empty.copy())
    first = int(month[keep].min())
    k = last - first + 1
    out = []
    g = np.nan_to_num(gmv)
    # a session without a cost on record is left out of the cost per session, not taken as
    # free (a free session would be bought to the cap at an infinite return)
    known = np.isfinite(cost).astype(np.float64)
    for w in (np.ones(len(day)), g, np.nan_to_num(cost), g * g, known):
        a = np.zeros((n_merchants, k))
        np.add.at(a, (merchant[keep], month[keep] - first), w[keep])
        out.append(a)
    return FieldHistory(first, out[0], out[1], out[2], out[3], room, out[4])


@dataclass(frozen=True)
class FieldModel:
    """The fitted Field model of every room (:func:`fit_field`)."""

    first_month: int
    exponent: F64  # (M,) b: the month's GMV grows as sessions^b
    own_exponent: F64  # (M,) the room's own least-squares exponent, NaN where it has none
    own_weight: F64  # (M,) weight of its own exponent against the pooled one, 0..1
    pooled_exponent: float
    scale: F64  # (M,) A: GMV of a month of one session at level 1
    month_effect: F64  # (K,) log level of each history month
    trend: float  # log growth per month of the level, campaign windows taken out
    season: F64  # (12,) log level of each calendar month (January first) about the trend
    intercept: float
    lift: float  # the campaign windows' lift the level was deflated by
    session_cost: F64  # (M,) yuan per session, recent months (NaN: no session)
    rate: F64  # (M,) sessions per 30 days in the recent months
    months: I64  # (M,) months with sessions and GMV, the fit's cells
    has_room: B

    def level(self, day: int, in_event: bool) -> float:
        """The market's activity on ``day`` (a date ordinal), projected from the history."""
        j = _month_of(day) - self.first_month
        log_level = self.intercept + self.trend * j + self.season[(self.first_month + j) % 12]
        return float(np.exp(log_level) * (self.lift if in_event else 1.0))


def _campaign_share(first_month: int, k: int, event_days: set[int]) -> F64:
    out = np.zeros(k)
    for j in range(k):
        m = first_month + j
        a = date(m // 12, m % 12 + 1, 1).toordinal()
        n = _month_days(m)
        out[j] = sum(1 for d in range(a, a + n) if d in event_days) / n
    return out


def fit_field(
    h: FieldHistory, *, event_days: set[int] | frozenset[int] = frozenset(), lift: float = 1.0
) -> FieldModel:
    """Fit every room's exponent, scale and cost per session, and the market's monthly level.

    ``log G[m, k] = a[m] + g[k] + b[m] log n[m, k]`` on the cells with sessions and GMV:

    1. one exponent for all rooms and the month effects ``g`` by alternating least squares
       (the month effects are the market's level: trend, season, campaigns);
    2. each room's own exponent on its months less the month effects, with its sampling
       variance (its residual variance, shrunk toward the market's, over its spread of
       ``log n``);
    3. shrunk toward the pooled exponent with weight ``t2 / (t2 + var)``, ``t2`` the spread
       of true exponents (the own exponents' spread less their mean sampling variance), and
       clipped to [:data:`MIN_EXPONENT`, 1]; under :data:`MIN_MONTHS` months, or no spread
       of sessions, the pooled exponent;
    4. the scale ``A`` as the ratio of the room's GMV to ``n^b x level`` summed over its
       months; the level's trend and calendar months are fitted on the month effects with
       the share of campaign days (``event_days``, lifting ``lift``) taken out, for windows
       ahead (:meth:`FieldModel.level`).

    Parameters
    ----------
    h
        :func:`field_history`.
    event_days
        Date ordinals inside campaign windows (past and coming).
    lift
        The campaign windows' lift on the market's sales (1: none).

    Raises
    ------
    BadArgument
        If ``lift`` is not positive.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = rng.integers(2, 20, (30, 12)).astype(float)
    >>> level = np.exp(0.3 * np.sin(np.arange(12)))
    >>> b = np.linspace(0.4, 0.8, 30)[:, None]
    >>> gmv = 1000.0 * n**b * level * np.exp(rng.normal(0, 0.05, n.shape))
    >>> h = FieldHistory(2025 * 12, n, gmv, 50.0 * n, gmv**2 / n, np.ones(30, bool))
    >>> fit = fit_field(h)
    >>> round(float(np.abs(fit.exponent - b.ravel()).mean()), 2)
    0.02
    """
    if not np.isfinite(lift) or lift <= 0:
        raise BadArgument("lift", f"must be a positive ratio, got {lift}")
    n_m, k = h.sessions.shape
    cell = (h.sessions > 0) & (h.gmv > 0)
    rows, cols = np.nonzero(cell)
    n_cell = h.sessions[rows, cols]
    x = np.log(n_cell)
    count = np.bincount(rows, minlength=n_m).astype(np.float64)

    def by_room(v: F64) -> F64:
        return np.bincount(rows, weights=v, minlength=n_m).astype(np.float64)

    # the log of a month's GMV sits below the log of its mean by half its squared coefficient
    # of variation, CV2 / n for n sessions of spread CV2: a month of few sessions reads low,
    # which tilts the exponent up (+0.04 on the s market) unless it is added back
    g_cell = h.gmv[rows, cols]
    within = by_room(h.gmv_squares[rows, cols] - g_cell**2 / n_cell)
    per_session = np.divide(by_room(g_cell), by_room(n_cell), out=np.zeros(n_m), where=count > 0)
    spread = by_room(n_cell - 1)
    cv2 = np.divide(
        within / np.maximum(spread, 1), per_session**2, out=np.zeros(n_m), where=per_session > 0
    )
    cv2 = np.where(spread > 0, np.maximum(cv2, 0.0), 0.0)
    y = np.log(g_cell) + cv2[rows] / (2 * n_cell)

    def room_mean(v: F64) -> F64:
        return np.divide(by_room(v), count, out=np.zeros(n_m), where=count > 0)

    xc = x - room_mean(x)[rows]  # within-room spread of log sessions
    sxx = by_room(xc * xc)
    gamma = np.zeros(k)
    pooled = 0.5
    in_month = np.bincount(cols, minlength=k).astype(np.float64)
    for _ in range(_BACKFIT_ROUNDS if len(x) else 0):
        r = y - gamma[cols]
        total_sxx = float(sxx.sum())
        pooled = float((xc * r).sum() / total_sxx) if total_sxx > 0 else pooled
        a = room_mean(r - pooled * x)
        resid = y - a[rows] - pooled * x
        new = np.divide(
            np.bincount(cols, weights=resid, minlength=k),
            in_month,
            out=np.zeros(k),
            where=in_month > 0,
        )
        new -= new[in_month > 0].mean() if (in_month > 0).any() else 0.0
        done = np.abs(new - gamma).max() < 1e-10
        gamma = new
        if done:
            break
    r = y - gamma[cols]
    own = np.divide(by_room(xc * r), sxx, out=np.full(n_m, np.nan), where=sxx > 1e-9)
    a_own = room_mean(r) - np.nan_to_num(own) * room_mean(x)
    rss = by_room((r - a_own[rows] - np.nan_to_num(own)[rows] * x) ** 2)
    dof = np.maximum(count - 2, 0)
    sigma2 = float(rss.sum() / dof.sum()) if dof.sum() > 0 else 0.0
    var_room = (rss + _VARIANCE_PRIOR_MONTHS * sigma2) / (dof + _VARIANCE_PRIOR_MONTHS)
    se2 = np.divide(var_room, sxx, out=np.full(n_m, np.inf), where=sxx > 1e-9)
    usable = np.isfinite(own) & (count >= MIN_MONTHS)
    own = np.where(usable, own, np.nan)
    if usable.sum() >= 2:
        spread_b = float(np.mean((own[usable] - pooled) ** 2) - np.mean(se2[usable]))
    else:
        spread_b = 0.0
    tau2 = max(spread_b, _MIN_EXPONENT_SD**2)
    weight = np.where(usable, tau2 / (tau2 + np.where(usable, se2, np.inf)), 0.0)
    pooled_b = float(np.clip(pooled, MIN_EXPONENT, 1.0))
    b = np.clip(weight * np.nan_to_num(own) + (1 - weight) * pooled_b, MIN_EXPONENT, 1.0)
    # the scale: a ratio of sums is the level's mean (a mean of logs would be its geometric
    # mean, below it by half the residual variance)
    expected = h.sessions[rows, cols] ** b[rows] * np.exp(gamma[cols])
    scale = np.divide(
        by_room(h.gmv[rows, cols]), by_room(expected), out=np.zeros(n_m), where=count > 0
    )
    # the level ahead: month effects with campaign days taken out, on a trend and the months
    share = _campaign_share(h.first_month, k, set(event_days))
    seen = in_month > 0
    base = gamma - np.log1p((lift - 1.0) * share)
    t = np.arange(k, dtype=np.float64)
    cal = (h.first_month + np.arange(k)) % 12
    season: F64 = np.zeros(12)
    trend, intercept = 0.0, float(base[seen].mean()) if seen.any() else 0.0
    if seen.sum() >= 13:
        xs = np.zeros((int(seen.sum()), 13))
        xs[:, 0] = t[seen]
        xs[np.arange(int(seen.sum())), 1 + cal[seen]] = 1.0
        coef, *_ = np.linalg.lstsq(xs, base[seen], rcond=None)
        trend = float(coef[0])
        months_seen = np.unique(cal[seen])
        intercept = float(coef[1 + months_seen].mean())
        season = np.asarray(coef[1:] - intercept, dtype=np.float64)
        # a calendar month the history never saw has no effect of its own (least squares left
        # its column at 0, which would read as minus the level)
        unseen = np.ones(12, dtype=bool)
        unseen[months_seen] = False
        season[unseen] = 0.0
    elif seen.sum() >= 3:
        trend, intercept = (float(c) for c in np.polyfit(t[seen], base[seen], 1))
    # a year's growth of 0.5-2x, as the growth forecast clips it: a window a year ahead is
    # then at most twice (or half) the last level, never an extrapolation run away
    lo, hi = (float(np.log(x)) / 12 for x in YEARLY_TREND_LIMITS)
    trend = float(np.clip(trend, lo, hi))
    recent = slice(max(k - RECENT_MONTHS, 0), k)
    days = sum(_month_days(h.first_month + j) for j in range(recent.start, k))
    n_recent = h.sessions[:, recent].sum(axis=1)
    rate = n_recent * 30.0 / max(days, 1)
    # cost per session: the recent months' sessions with a cost on record, else the whole
    # history's; NaN (no curve) where none has one
    costed = h.sessions if h.costed is None else h.costed
    c_recent, k_recent = h.cost[:, recent].sum(axis=1), costed[:, recent].sum(axis=1)
    k_all, c_all = costed.sum(axis=1), h.cost.sum(axis=1)
    cost = np.where(
        k_recent > 0,
        np.divide(c_recent, k_recent, out=np.zeros(n_m), where=k_recent > 0),
        np.divide(c_all, k_all, out=np.full(n_m, np.nan), where=k_all > 0),
    )
    return FieldModel(
        first_month=h.first_month,
        exponent=b,
        own_exponent=own,
        own_weight=weight,
        pooled_exponent=pooled_b,
        scale=scale,
        month_effect=gamma,
        trend=trend,
        season=season,
        intercept=intercept,
        lift=float(lift),
        session_cost=cost,
        rate=rate,
        months=count.astype(np.int64),
        has_room=h.has_room,
    )


@dataclass(frozen=True)
class FieldCurve:
    """One room in one window: each further session's expected GMV, at its cost per session."""

    merchant: int
    has_room: bool
    sessions_now: float  # sessions in the window at the room's current rate
    session_cost: float  # yuan per session (0 without a room)
    gains: F64  # (J,) expected extra GMV of the 1st, 2nd, ... session added
    exponent: float
    own_weight: float  # how much of the exponent is the room's own months (0: pooled)
    level: float  # the window's mean market level
    reason: str  # why the curve is zero ("" when it is not)

    @property
    def costs(self) -> F64:
        return np.full(len(self.gains), self.session_cost)

    def gmv_of(self, extra: int) -> float:
        """Expected extra GMV of ``extra`` more sessions in the window."""
        return float(self.gains[:extra].sum())


def field_curve(
    model: FieldModel,
    m: int,
    *,
    start: int,
    end: int,
    event_days: set[int] | frozenset[int] = frozenset(),
) -> FieldCurve:
    """Room ``m``'s extra GMV from each session added in the window ``start..end``.

    At the current rate the window holds ``n0 = rate x L / 30`` sessions (``L`` days); with
    ``j`` more it sells ``A x ((n0 + j) x 30 / L)^b x level x L / 30``, ``level`` the window's
    mean projected activity (campaign days lifted). The ``j``-th session's gain is the
    difference: falling with ``j`` since ``b <= 1``. At most :data:`MAX_SESSIONS_PER_DAY` a
    day in all. A merchant without a room, or without a session with sales, gets no gain and
    a reason.

    Raises
    ------
    BadArgument
        If the window is empty.

    Examples
    --------
    >>> n = np.array([[4.0, 8.0, 4.0, 8.0, 4.0, 8.0]])
    >>> g = 100.0 * n**0.5
    >>> h = FieldHistory(2026 * 12, n, g, 10.0 * n, g**2 / n, np.ones(1, bool))
    >>> c = field_curve(fit_field(h), 0, start=date(2026, 7, 1).toordinal(),
    ...                 end=date(2026, 7, 30).toordinal())
    >>> round(c.sessions_now), c.session_cost, bool((np.diff(c.gains) < 0).all())
    (7, 10.0, True)
    """
    if end < start:
        raise BadArgument("end", "the window ends before it starts")
    length = end - start + 1
    zero = np.zeros(0)
    if not model.has_room[m]:
        return FieldCurve(m, False, 0.0, 0.0, zero, 0.0, 0.0, 0.0, "no live room")
    if model.months[m] == 0 or not np.isfinite(model.session_cost[m]) or model.scale[m] <= 0:
        return FieldCurve(
            m, True, 0.0, 0.0, zero, 0.0, 0.0, 0.0, "no session with sales to learn from"
        )
    level = float(np.mean([model.level(d, d in event_days) for d in range(start, end + 1)]))
    b, a = float(model.exponent[m]), float(model.scale[m])
    n0 = float(model.rate[m]) * length / 30.0
    most = max(int(MAX_SESSIONS_PER_DAY * length - np.ceil(n0)), 0)
    n = n0 + np.arange(most + 1)
    total = a * (n * 30.0 / length) ** b * level * length / 30.0
    return FieldCurve(
        m,
        True,
        n0,
        float(model.session_cost[m]),
        np.diff(total),
        b,
        float(model.own_weight[m]),
        level,
        "",
    )
