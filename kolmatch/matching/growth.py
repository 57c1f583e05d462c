"""GMV over time, a forecast of the coming year, and who is on track for the programme's goals.

The platform's programme aims to take 1,000 merchants past ¥15M a year and 10,000 talents past
¥1.5M (:data:`MERCHANT_GOAL`, :data:`TALENT_GOAL`). From the market graph:

- a merchant's GMV in a month is what users paid for its products that month (``PURCHASED``
  amounts through ``SELLS``) plus its own live room's sales (``LiveSession.gmv`` through
  ``HOSTED``, on the session's day: the platform reports them as session totals, not as
  purchases); a talent's is the GMV of its collaborations that month (``PROMOTED.gmv``, on
  the collaboration's day). Both are *realised* GMV: what happened;
- *booked* GMV is what the slots merchants booked in coming windows (``BOOKED``, a window
  not over by the reference day) are expected to bring: one collaboration's expected GMV x
  (1 - risk) each, from the features (:func:`slot_gmv`), counted for the merchant and for the
  talent (:func:`booked_by_owner`);
- the forecast of the next months (:func:`seasonal_forecast`) is multiplicative: a level (a
  steady owner's last :data:`LEVEL_MONTHS` months with the season taken out, a sparse one's
  last year), a trend (a steady owner's last half-year against the one before; a sparse
  one's, the market's), clipped to :data:`TREND_LIMITS`, and the market's seasonal index by
  month of the year, fitted on the market's GMV (purchases and live rooms: one owner's
  months are too few and too noisy to estimate twelve indices from). :func:`last_year` is
  the naive baseline it is measured against: each month as it was a year before;
- forecast and booked GMV of the next twelve months are shown side by side, not added: the
  forecast extrapolates the collaborations the bookings are. An owner is on track when the
  larger of the two reaches its goal (:class:`OwnerGrowth`);
- :func:`backtest` holds out the last months, forecasts them from the rest, and compares both
  forecasts: the weighted absolute percentage error (WAPE: the sum of absolute errors over
  the sum of actuals) over owner-months and over owners' held-out totals, and the error of
  the market's held-out total.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

from kolmatch.errors import BadArgument
from kolmatch.graph.market import MarketGraph
from kolmatch.matching.features import MarketFeatures

__all__ = [
    "LEVEL_MONTHS",
    "MERCHANT_GOAL",
    "TALENT_GOAL",
    "TREND_LIMITS",
    "Backtest",
    "Bookings",
    "GrowthReport",
    "MonthlyGmv",
    "OwnerGrowth",
    "Pairing",
    "backtest",
    "booked_by_owner",
    "bookings",
    "close_gaps",
    "coming",
    "growth_report",
    "last_year",
    "monthly_gmv",
    "seasonal_forecast",
    "seasonal_index",
    "slot_gmv",
    "standing",
    "wape",
]

F64 = NDArray[np.float64]

#: The programme's goals, yuan of GMV a year.
MERCHANT_GOAL = 15_000_000.0
TALENT_GOAL = 1_500_000.0
#: Months the forecast's level averages (deseasonalised).
LEVEL_MONTHS = 3
#: The yearly growth the trend may assume, at least and at most (a young owner's first
#: months would otherwise project a tenfold year).
TREND_LIMITS = (0.5, 2.0)


@dataclass(frozen=True)
class MonthlyGmv:
    """GMV per owner and calendar month: ``values[i, k]`` is owner i's GMV in ``months[k]``."""

    months: list[str]  # "YYYY-MM", consecutive
    merchant_ids: NDArray[np.str_]
    merchant: F64  # (M, K) purchases plus the live room's sales
    talent_ids: NDArray[np.str_]
    talent: F64  # (T, K)
    merchant_room: F64  # (M, K) the live room's part of ``merchant``


def _month_index(days: NDArray[np.object_]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Months since year 0 of ISO days (or date-times); and which were readable."""
    out = np.zeros(len(days), dtype=np.int64)
    ok = np.zeros(len(days), dtype=bool)
    for i, d in enumerate(days):
        if isinstance(d, str) and len(d) >= 7 and d[4] == "-":
            try:
                out[i] = int(d[:4]) * 12 + int(d[5:7]) - 1
                ok[i] = True
            except ValueError:
                pass
    return out, ok


def monthly_gmv(g: MarketGraph) -> MonthlyGmv:
    """Every merchant's and talent's GMV per month, from the first month with any to the last.

    Parameters
    ----------
    g
        A market graph read with ``PURCHASED`` (amount, time), ``SELLS``, ``PROMOTED``
        (gmv, time), ``LiveSession`` (day, gmv) and ``HOSTED``:
        :data:`kolmatch.graph.market.GROWTH_READ`.

    Returns
    -------
    MonthlyGmv
        Zeros where an owner sold nothing; rows without a readable day or amount, purchases of
        a product nobody sells and sessions nobody hosted are skipped.
    """
    merchants, talents = g.node("Merchant"), g.node("Talent")
    products = g.node("Product")
    sells = g.edge("SELLS", "Merchant")
    seller = np.full(len(products), -1, dtype=np.int64)
    seller[sells.dst] = sells.src
    bought = g.edge("PURCHASED", "User")
    promoted = g.edge("PROMOTED", "Talent")
    sessions = g.node("LiveSession")
    hosted = g.edge("HOSTED", "Merchant")
    bm, bok = _month_index(bought.columns["time"])
    pm, pok = _month_index(promoted.columns["time"])
    lm, lok = _month_index(sessions.columns["day"][hosted.dst])
    amount = np.nan_to_num(np.asarray(bought.columns["amount"], dtype=np.float64))
    gmv = np.nan_to_num(np.asarray(promoted.columns["gmv"], dtype=np.float64))
    room = np.nan_to_num(np.asarray(sessions.columns["gmv"], dtype=np.float64)[hosted.dst])
    owner = seller[bought.dst]
    bok &= owner >= 0
    stamps = np.concatenate([bm[bok], pm[pok], lm[lok]])
    if len(stamps) == 0:
        return MonthlyGmv(
            [],
            merchants.ids,
            np.zeros((len(merchants), 0)),
            talents.ids,
            np.zeros((len(talents), 0)),
            np.zeros((len(merchants), 0)),
        )
    first, last = int(stamps.min()), int(stamps.max())
    k = last - first + 1
    m_room = np.zeros((len(merchants), k))
    np.add.at(m_room, (hosted.src[lok], lm[lok] - first), room[lok])
    m_series = m_room.copy()
    np.add.at(m_series, (owner[bok], bm[bok] - first), amount[bok])
    t_series = np.zeros((len(talents), k))
    np.add.at(t_series, (promoted.src[pok], pm[pok] - first), gmv[pok])
    months = [f"{(first + j) // 12:04d}-{(first + j) % 12 + 1:02d}" for j in range(k)]
    return MonthlyGmv(months, merchants.ids, m_series, talents.ids, t_series, m_room)


def seasonal_index(total: F64, first_month: int) -> F64:
    """Twelve multiplicative indices, one per calendar month (January first), averaging 1.

    A least-squares fit of the log of a market-wide monthly series ``total`` (its first value
    is calendar month ``first_month``, 0 = January) on a straight trend and the twelve months:
    a calendar month seen once is told apart from the trend by the months seen twice, so 13
    months suffice (a centred moving average would need 24 for every month). With fewer
    months, or a month without sales, every index is 1.

    Examples
    --------
    >>> months = np.arange(18)
    >>> total = 100.0 * 1.03**months * (1 + 0.5 * (months % 12 == 10))  # November sells 1.5x
    >>> idx = seasonal_index(total, 0)
    >>> round(float(idx[10] / idx[0]), 2), round(float(idx.mean()), 6)
    (1.5, 1.0)
    """
    k = len(total)
    if k < 13 or (total <= 0).any():
        return np.ones(12)
    t = np.arange(k)
    cal = (first_month + t) % 12
    x = np.zeros((k, 13))
    x[:, 0] = t
    x[t, 1 + cal] = 1.0  # one intercept per calendar month: the trend's slope is shared
    coef, *_ = np.linalg.lstsq(x, np.log(total), rcond=None)
    idx = np.exp(coef[1:] - coef[1:].mean())
    out: F64 = idx / idx.mean()
    return out


def seasonal_forecast(
    series: F64, first_month: int, horizon: int = 12, *, market: F64 | None = None
) -> F64:
    """The next ``horizon`` months of each row of ``series`` (see the module's docstring).

    Parameters
    ----------
    series
        (N, K) monthly GMV; column 0 is calendar month ``first_month`` (0 = January).
    first_month
        Calendar month of the first column.
    horizon
        Months to forecast.
    market
        The market's monthly sales over the same months, the seasonal index is estimated
        from (default ``series`` summed): talents' collaboration GMV is too few, too heavy
        -tailed deals to show the season, the market's purchases show it.

    Returns
    -------
    ndarray
        (N, horizon), never negative.

    Examples
    --------
    >>> months = np.arange(30)
    >>> s = (100.0 * 1.02 ** months * (1 + 0.5 * (months % 12 == 10)))[None, :]
    >>> f = seasonal_forecast(s, 0, 12)
    >>> bool(f[0, 4] > 1.3 * f[0, 3])  # month 34 is a November
    True
    """
    n, k = series.shape
    if k == 0:
        return np.zeros((n, horizon))
    idx = seasonal_index(series.sum(axis=0) if market is None else market, first_month)
    season = idx[(first_month + np.arange(k)) % 12]
    flat = series / season
    # a steady owner (sales in each of its last LEVEL_MONTHS months) is levelled on them and
    # trends on its own last half-year; a sparse one (a talent's few collaborations) on its
    # last year and the market's trend: its own months are mostly zeros, and its own trend
    # would be noise clipped to TREND_LIMITS
    short = min(LEVEL_MONTHS, k)
    long = min(12, k)
    steady = (series[:, -short:] > 0).all(axis=1)
    span = np.where(steady, short, long)
    level = np.where(steady, flat[:, -short:].mean(axis=1), flat[:, -long:].mean(axis=1))
    if k >= 12:
        recent, before = flat[:, -6:].sum(axis=1), flat[:, -12:-6].sum(axis=1)
        own = np.divide(recent, before, out=np.ones(n), where=before > 0) ** 2
        whole = (flat.sum(axis=0) if market is None else market / season)[-12:]
        r, b = whole[-6:].sum(), whole[:6].sum()
        trend = (r / b) ** 2 if b > 0 and r > 0 else 1.0
        yearly = np.clip(np.where(steady & (before > 0), own, trend), *TREND_LIMITS)
    else:
        yearly = np.ones(n)
    # the level sits mid-window: (span - 1) / 2 months before the last month, h after it
    ahead = (np.arange(1, horizon + 1)[None, :] + (span[:, None] - 1) / 2.0) / 12.0
    growth = yearly[:, None] ** ahead
    future = idx[(first_month + k + np.arange(horizon)) % 12]
    out: F64 = np.maximum(level[:, None] * growth * future[None, :], 0.0)
    return out


def last_year(series: F64, horizon: int = 12) -> F64:
    """The naive baseline: each coming month as it was twelve months before (zeros before any
    history).

    Examples
    --------
    >>> last_year(np.arange(14.0)[None, :], 3).tolist()
    [[2.0, 3.0, 4.0]]
    """
    n, k = series.shape
    out = np.zeros((n, horizon))
    for h in range(horizon):
        j = k + h - 12
        if 0 <= j < k:
            out[:, h] = series[:, j]
        elif j >= k:  # beyond a year ahead: a year before that month's forecast
            out[:, h] = out[:, h - 12]
    return out


def wape(actual: F64, predicted: F64) -> float:
    """Weighted absolute percentage error: sum |error| / sum actual (NaN for no actual GMV).

    Examples
    --------
    >>> wape(np.array([[100.0, 100.0]]), np.array([[90.0, 120.0]]))
    0.15
    """
    total = float(np.abs(actual).sum())
    return float(np.abs(actual - predicted).sum() / total) if total > 0 else float("nan")


@dataclass(frozen=True)
class Backtest:
    """Both forecasts of held-out months against what happened."""

    holdout: list[str]  # the months held out
    owners: int
    forecast_wape: float  # over owner-months
    last_year_wape: float
    forecast_owner_wape: float  # over owners' held-out totals (what "on track" turns on)
    last_year_owner_wape: float
    forecast_total_error: float  # (forecast - actual) / actual of the held-out sum
    last_year_total_error: float


def backtest(
    series: F64, months: list[str], holdout: int = 6, *, market: F64 | None = None
) -> Backtest:
    """Forecast the last ``holdout`` months from the ones before and score both forecasts.

    ``market``: the market's monthly sales for the seasonal index (see
    :func:`seasonal_forecast`); only its months before the held-out ones are used.

    Raises
    ------
    ValueError
        If fewer than 13 months would remain to learn from (no year to compare with).
    """
    k = series.shape[1]
    if k - holdout < 13:
        raise ValueError(f"{k} months of history: a backtest of {holdout} needs {holdout + 13}")
    train, test = series[:, : k - holdout], series[:, k - holdout :]
    mth = int(months[0][5:7]) - 1
    ours = seasonal_forecast(
        train, mth, holdout, market=None if market is None else market[: k - holdout]
    )
    naive = last_year(train, holdout)
    total = float(test.sum())

    def bias(p: F64) -> float:
        return float((p.sum() - total) / total) if total > 0 else float("nan")

    return Backtest(
        holdout=months[k - holdout :],
        owners=int((series.sum(axis=1) > 0).sum()),
        forecast_wape=wape(test, ours),
        last_year_wape=wape(test, naive),
        forecast_owner_wape=wape(test.sum(axis=1), ours.sum(axis=1)),
        last_year_owner_wape=wape(test.sum(axis=1), naive.sum(axis=1)),
        forecast_total_error=bias(ours),
        last_year_total_error=bias(naive),
    )


@dataclass(frozen=True)
class OwnerGrowth:
    """One merchant's or talent's standing against its goal: realised, forecast and booked GMV.

    ``on_track`` and ``gap`` turn on the larger of the forecast and the booked GMV, never on
    their sum: the forecast extrapolates the owner's collaborations and sales, the booked ones
    among them, so adding the bookings would count them twice; but a year is worth at least
    what its booked slots are expected to bring (``basis`` says which of the two it was).
    """

    id: str
    last_12_months: float  # realised GMV of the last twelve months of history
    forecast_12_months: float  # the forecast of the next twelve
    goal: float
    on_track: bool  # max(forecast, booked) at least the goal
    gap: float  # goal - max(forecast, booked), at least 0
    booked_slots: int = 0  # slots booked in coming windows that start within the next twelve
    booked_gmv: float = 0.0  # their expected GMV x (1 - risk)
    basis: str = "forecast"  # what on_track and gap used: "forecast" or "booked"


@dataclass(frozen=True)
class Pairing:
    """A collaboration that would close part of a merchant's and a talent's gaps."""

    merchant: str
    talent: str
    expected_gmv: float  # one collaboration's expected GMV x (1 - risk)
    gap_closed: float  # of the merchant's gap plus of the talent's gap


@dataclass(frozen=True)
class GrowthReport:
    """Who is on track for the programme's goals, and which pairings close the most gap.

    Realised GMV is the history's (``months``); the forecast and the booked GMV are of the
    twelve months after it (``horizon``), shown side by side (see :class:`OwnerGrowth`).
    """

    months: list[str]
    merchants: list[OwnerGrowth]  # sorted: on track first, then by gap
    talents: list[OwnerGrowth]
    merchants_on_track: int
    talents_on_track: int
    pairings: list[Pairing]
    backtest_merchants: Backtest | None  # None with under 19 months of history
    backtest_talents: Backtest | None
    note: str
    horizon: list[str] = field(default_factory=list)  # the forecast's months
    realised_12_months: float = 0.0  # every merchant's last twelve months
    forecast_12_months: float = 0.0  # every merchant's forecast of the next twelve
    booked_slots: int = 0  # slots in coming windows starting within the horizon
    booked_gmv: float = 0.0  # their expected GMV (each slot once)
    later_slots: int = 0  # coming slots that start after the horizon: in no figure above


def standing(
    ids: NDArray[np.str_],
    series: F64,
    months: list[str],
    goal: float,
    *,
    market: F64 | None = None,
    booked_slots: NDArray[np.int64] | None = None,
    booked_gmv: F64 | None = None,
) -> list[OwnerGrowth]:
    """Each owner's last and next twelve months against ``goal``, the closest to it first
    (``market``: as for :func:`seasonal_forecast`; ``booked_slots``, ``booked_gmv``: each
    owner's, :func:`booked_by_owner`, none by default).

    Examples
    --------
    >>> months = [f"2025-{k:02d}" for k in range(1, 13)]
    >>> rows = standing(np.array(["a"]), np.full((1, 12), 10.0), months, 200.0,
    ...                 booked_slots=np.array([2]), booked_gmv=np.array([250.0]))
    >>> r = rows[0]
    >>> r.forecast_12_months, r.booked_gmv, r.on_track, r.basis, r.gap
    (120.0, 250.0, True, 'booked', 0.0)
    """
    first = int(months[0][5:7]) - 1 if months else 0
    ahead = seasonal_forecast(series, first, 12, market=market).sum(axis=1)
    past = series[:, -12:].sum(axis=1)
    n = len(ids)
    slots = np.zeros(n, dtype=np.int64) if booked_slots is None else booked_slots
    booked = np.zeros(n) if booked_gmv is None else booked_gmv
    out = []
    for i, p, a, k, b in zip(ids, past, ahead, slots, booked, strict=True):
        basis = "booked" if b > a else "forecast"
        year = float(max(a, b))
        out.append(
            OwnerGrowth(
                str(i),
                float(p),
                float(a),
                goal,
                bool(year >= goal),
                float(max(goal - year, 0.0)),
                int(k),
                float(b),
                basis,
            )
        )
    return sorted(out, key=lambda o: (not o.on_track, o.gap, o.id))


@dataclass(frozen=True)
class Bookings:
    """Booked slots, one row each: talent ``talent[i]`` booked by ``merchant[i]`` for the days
    ``start[i]``..``end[i]`` (ISO, inclusive)."""

    booking_ids: NDArray[np.str_]
    talent: NDArray[np.str_]
    merchant: NDArray[np.str_]
    start: NDArray[np.str_]
    end: NDArray[np.str_]


def bookings(g: MarketGraph) -> Bookings:
    """Every ``BOOKED`` slot of ``g`` (:data:`kolmatch.graph.market.GROWTH_READ`); a slot
    without a readable window is left out."""
    b = g.edge("BOOKED", "Talent")
    start = np.array([str(x or "")[:10] for x in b.columns["start"]], dtype=str)
    end = np.array([str(x or "")[:10] for x in b.columns["end"]], dtype=str)
    ok = np.array([len(x) == 10 and len(y) == 10 for x, y in zip(start, end, strict=True)], bool)
    return Bookings(
        np.array([str(x) for x in b.columns["booking_id"]], dtype=str)[ok],
        g.node("Talent").ids[b.src][ok],
        g.node("Merchant").ids[b.dst][ok],
        start[ok],
        end[ok],
    )


def slot_gmv(f: MarketFeatures, b: Bookings) -> F64:
    """Each slot's expected GMV: one collaboration of its talent for its merchant, expected GMV
    x (1 - risk) as the features price it (:func:`kolmatch.matching.score.merchant_signals`,
    the pairings' price); 0 for a talent excluded for compliance or an id the features do not
    know (written after they were built)."""
    from kolmatch.matching.score import merchant_signals

    out = np.zeros(len(b.talent))
    m_rows = _rows(f.merchant_ids, b.merchant)
    t_rows = _rows(f.talent_ids, b.talent)
    for m in np.unique(m_rows[m_rows >= 0]):
        sig = merchant_signals(f, int(m))
        gmv = np.where(sig.excluded, 0.0, sig.expected_gmv * (1.0 - sig.risk))
        mine = (m_rows == m) & (t_rows >= 0)
        out[mine] = gmv[t_rows[mine]]
    return out


def _rows(ids: NDArray[np.str_], query: NDArray[np.str_]) -> NDArray[np.int64]:
    """Rows of ``query`` in the sorted ``ids``; -1 for absent ones."""
    if len(ids) == 0 or len(query) == 0:
        return np.full(len(query), -1, dtype=np.int64)
    i = np.minimum(np.searchsorted(ids, query), len(ids) - 1)
    return np.where(ids[i] == query, i, -1).astype(np.int64)


def coming(b: Bookings, today: date, until: date) -> NDArray[np.bool_]:
    """The slots in coming windows: not over by ``today`` (a window over has run or lapsed,
    its GMV is realised or never came) and starting before ``until``.

    Examples
    --------
    >>> b = Bookings(np.array(["b1", "b2", "b3"]), np.array(["t1"] * 3), np.array(["m1"] * 3),
    ...              np.array(["2026-06-01", "2026-06-20", "2027-08-01"]),
    ...              np.array(["2026-06-10", "2026-07-02", "2027-08-05"]))
    >>> coming(b, date(2026, 6, 15), date(2027, 7, 1)).tolist()
    [False, True, False]
    """
    return (b.end >= today.isoformat()) & (b.start < until.isoformat())


def booked_by_owner(
    ids: NDArray[np.str_], owner: NDArray[np.str_], gmv: F64
) -> tuple[NDArray[np.int64], F64]:
    """Slots and their expected GMV summed per owner, in the order of ``ids`` (sorted);
    ``owner[i]`` holds slot i and ``gmv[i]`` is its expected GMV (slots of an owner not in
    ``ids`` are left out).

    Examples
    --------
    >>> n, total = booked_by_owner(np.array(["m1", "m2"]), np.array(["m2", "m2", "m9"]),
    ...                            np.array([10.0, 5.0, 7.0]))
    >>> n.tolist(), total.tolist()
    ([0, 2], [0.0, 15.0])
    """
    rows = _rows(ids, owner)
    ok = rows >= 0
    slots = np.bincount(rows[ok], minlength=len(ids)).astype(np.int64)
    total: F64 = np.bincount(rows[ok], weights=gmv[ok], minlength=len(ids)).astype(np.float64)
    return slots, total


def close_gaps(
    merchants: list[OwnerGrowth],
    talents: list[OwnerGrowth],
    candidates: dict[str, list[tuple[str, float]]],
    top: int = 20,
) -> list[Pairing]:
    """The ``top`` pairings that close the most gap: for each merchant off track, its
    candidate talents (id, expected GMV of one collaboration), valued at what they close of
    the merchant's gap plus what they close of the talent's (a talent on track closes none).

    Examples
    --------
    >>> m = [OwnerGrowth("m1", 0, 0, 100.0, False, 100.0)]
    >>> t = [OwnerGrowth("t1", 0, 0, 10.0, False, 10.0), OwnerGrowth("t2", 0, 0, 10.0, True, 0)]
    >>> [(p.talent, p.gap_closed) for p in close_gaps(m, t, {"m1": [("t1", 30.0), ("t2", 50.0)]})]
    [('t2', 50.0), ('t1', 40.0)]
    """
    t_gap = {t.id: t.gap for t in talents}
    out = []
    for m in merchants:
        if m.on_track:
            continue
        for tid, gmv in candidates.get(m.id, []):
            closed = min(gmv, m.gap) + min(gmv, t_gap.get(tid, 0.0))
            if closed > 0:
                out.append(Pairing(m.id, tid, float(gmv), float(closed)))
    out.sort(key=lambda p: (-p.gap_closed, p.merchant, p.talent))
    return out[:top]


def _complete_months(s: MonthlyGmv, today: date) -> MonthlyGmv:
    """``s`` without the month of ``today`` unless ``today`` ends it: a month still running
    would read as a drop in both the level and the trend."""
    running = f"{today.year:04d}-{today.month:02d}"
    if not s.months or s.months[-1] != running or (today + timedelta(days=1)).day == 1:
        return s
    return replace(
        s,
        months=s.months[:-1],
        merchant=s.merchant[:, :-1],
        talent=s.talent[:, :-1],
        merchant_room=s.merchant_room[:, :-1],
    )


def _month_after(month: str, n: int) -> date:
    """The first day of the ``n``-th month after ``month`` ("YYYY-MM")."""
    k = int(month[:4]) * 12 + int(month[5:7]) - 1 + n
    return date(k // 12, k % 12 + 1, 1)


def growth_report(
    s: MonthlyGmv,
    f: MarketFeatures,
    booked: Bookings | None = None,
    expected: F64 | None = None,
    *,
    merchants: int = 50,
    per_merchant: int = 5,
    top: int = 20,
    holdout: int = 3,
) -> GrowthReport:
    """Who is on track for the programme's goals, and the pairings that close the most gap.

    Parameters
    ----------
    s
        GMV by month (:func:`monthly_gmv`): the realised GMV.
    f
        Market features (expected GMV of a collaboration, compliance, the reference day).
    booked
        The booked slots (:func:`bookings`); those in coming windows (:func:`coming`: not over
        by ``f.today``, starting within the forecast's twelve months) are the booked GMV.
    expected
        Each slot's expected GMV, aligned with ``booked`` (default :func:`slot_gmv`).
    merchants
        The merchants off track and closest to the goal whose pairings are looked for.
    per_merchant
        Each one's candidate talents: the eligible ones with the most expected GMV for it.
    top
        Pairings returned.
    holdout
        Months the forecast is backtested on (none with too short a history).

    Raises
    ------
    BadArgument
        If ``expected`` is not one value per booked slot.
    """
    from kolmatch.matching.score import merchant_signals

    s = _complete_months(s, f.today)
    # the season of the market's GMV: purchases and live rooms, what merchants' forecasts
    # forecast (fitted on purchases alone, bench/growth.py --season-on purchases, the
    # merchants' backtest WAPE moves by 0.004 at most, the talents' by 0.031: s, 3 seeds)
    market = s.merchant.sum(axis=0)
    this_month = f"{f.today.year:04d}-{f.today.month:02d}"
    # the forecast's twelve months follow the history's last complete month
    last = s.months[-1] if s.months else _month_after(this_month, -1).isoformat()[:7]
    ahead_days = [_month_after(last, j) for j in range(1, 14)]
    horizon, horizon_end = [d.isoformat()[:7] for d in ahead_days[:12]], ahead_days[12]
    if booked is None:
        booked = Bookings(*(np.zeros(0, dtype=str) for _ in range(5)))
    gmv = slot_gmv(f, booked) if expected is None else np.asarray(expected, dtype=np.float64)
    if len(gmv) != len(booked.talent):
        raise BadArgument(
            "expected", f"{len(gmv)} expected GMVs for {len(booked.talent)} booked slots"
        )
    ahead = coming(booked, f.today, horizon_end)
    later = (booked.end >= f.today.isoformat()) & ~ahead
    m_slots, m_booked = booked_by_owner(s.merchant_ids, booked.merchant[ahead], gmv[ahead])
    t_slots, t_booked = booked_by_owner(s.talent_ids, booked.talent[ahead], gmv[ahead])
    m_rows = standing(
        s.merchant_ids,
        s.merchant,
        s.months,
        MERCHANT_GOAL,
        market=market,
        booked_slots=m_slots,
        booked_gmv=m_booked,
    )
    t_rows = standing(
        s.talent_ids,
        s.talent,
        s.months,
        TALENT_GOAL,
        market=market,
        booked_slots=t_slots,
        booked_gmv=t_booked,
    )
    eligible_m = {str(x) for x in f.merchant_ids[f.merchant_risk < 1.0]}
    off = [r for r in m_rows if not r.on_track and r.id in eligible_m][:merchants]
    candidates: dict[str, list[tuple[str, float]]] = {}
    for r in off:
        sig = merchant_signals(f, f.merchant_row(r.id))
        pair_gmv = np.where(sig.excluded, 0.0, sig.expected_gmv * (1.0 - sig.risk))
        best = np.argsort(-pair_gmv, kind="stable")[:per_merchant]
        candidates[r.id] = [
            (str(f.talent_ids[t]), float(pair_gmv[t])) for t in best if pair_gmv[t] > 0
        ]

    def tested(series: F64) -> Backtest | None:
        try:
            return backtest(series, s.months, holdout, market=market)
        except ValueError:
            return None

    return GrowthReport(
        months=s.months,
        merchants=m_rows,
        talents=t_rows,
        merchants_on_track=sum(r.on_track for r in m_rows),
        talents_on_track=sum(r.on_track for r in t_rows),
        pairings=close_gaps(m_rows, t_rows, candidates, top),
        backtest_merchants=tested(s.merchant),
        backtest_talents=tested(s.talent),
        note=(
            f"realised: the last 12 months of history; forecast and booked: the next 12, against "
            f"¥{MERCHANT_GOAL:,.0f} (merchants) and ¥{TALENT_GOAL:,.0f} (talents) a year; "
            "booked: slots in coming windows, one collaboration's expected GMV x (1 - risk) "
            "each; on track: the larger of forecast and booked, never their sum (the forecast "
            "already extrapolates the collaborations the bookings are); pairings: one "
            "collaboration's expected GMV closing the merchant's gap and the talent's"
        ),
        horizon=horizon,
        realised_12_months=float(s.merchant[:, -12:].sum()),
        forecast_12_months=float(sum(r.forecast_12_months for r in m_rows)),
        booked_slots=int(ahead.sum()),
        booked_gmv=float(gmv[ahead].sum()),
        later_slots=int(later.sum()),
    )
