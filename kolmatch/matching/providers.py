"""Service providers matched to merchants by their track record in the merchant's categories.

A provider (live-room operator, store operator, ads, logistics, customer service) engaged by a
merchant leaves an outcome: the merchant's GMV over the engagement against as many days just
before it (``ENGAGED``, docs/data-format.md). From those:

- an engagement's **lift** is ``log(gmv_during / gmv_before)`` minus the market's own change
  over the same two windows (:func:`market_change`): the whole market grows and has seasons
  (February's lull, 618 and Double 11), which move every merchant's GMV whoever serves it.
  The market's change is estimated from the engagements themselves: a log activity level per
  calendar month, fitted by least squares to every completed engagement's outcome (each
  outcome is the mean level over its during-window minus the mean over its before-window;
  a small penalty on month-to-month steps keeps months few windows cover determined).
  Because each row's month weights sum to zero, the fit cannot take up the providers' average
  effect: that stays in the lifts. Running engagements (no ``gmv_during``) count for nothing;
- a merchant's **category shares** are the shares of its catalogue in each category
  (:func:`category_shares`);
- a provider's **expected lift** for merchant m (:func:`expected_lift`) is the mean of its
  engagements' lifts weighted by how alike the engaged merchant's categories are to m's (the
  dot product of their shares: the chance both merchants' main category is the same, which
  is what a provider's skill depends on; plus :data:`SIMILARITY_FLOOR`), shrunk towards the
  mean lift of providers of its kind (empirical Bayes: ``(sum w * lift + kappa * prior) /
  (sum w + kappa)``, ``kappa`` chosen in :func:`fit_providers` by how well it predicts
  held-back engagements). One lucky engagement weighs ``1 / (1 + kappa)`` against the prior,
  so it does not top a list;
- a provider with fewer than :data:`kolmatch.policy.MIN_EVIDENCE_ENGAGEMENTS` completed
  engagements is ranked on its kind's prior alone, and evidence quotes the median lift of
  engagements in the merchant's categories only when there are at least as many: a figure
  built from other merchants' outcomes never stands for fewer than that many of them
  (kolmatch/policy.py). The figures are lifts (ratios net of the market), never a
  merchant's GMV or fee.

Measured on generated markets: bench/providers.py, docs/fact.md ("Service providers").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from kolmatch.errors import BadArgument, UnknownId
from kolmatch.graph.market import MarketGraph
from kolmatch.graph.projection import day_ordinals
from kolmatch.policy import MIN_EVIDENCE_ENGAGEMENTS

__all__ = [
    "KAPPA_GRID",
    "KIND_SHRINK",
    "MONTH_SMOOTHING",
    "SIMILARITY_FLOOR",
    "Engagements",
    "ProviderLead",
    "ProviderMarket",
    "ProviderMatch",
    "ProviderModel",
    "category_shares",
    "engagement_lift",
    "expected_lift",
    "fit_providers",
    "market_change",
    "provider_leads",
    "provider_market",
    "rank_providers",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: Weight of an engagement whose merchant shares no category with the merchant asked about,
#: relative to one whose main category is surely the same (1). Measured (bench/providers.py
#: --floor, 2,000 merchants, seed 1): the top provider's true skill 0.143 at 0, 0.137 at
#: 0.05, 0.121 at 0.1: other categories' engagements only dilute. 0.
SIMILARITY_FLOOR = 0.0
#: Penalty on the squared step between consecutive months' log activity in
#: :func:`market_change`, in units of one engagement's squared error.
MONTH_SMOOTHING = 1.0
#: A kind's prior is its mean lift shrunk towards all engagements' mean as if that were
#: this many engagements: a kind seen in a few lucky engagements would otherwise put its
#: unproven providers on top (measured: seed 4 at s, the top provider's true skill 0.024
#: against 0.060 for the most popular, with the kinds' raw means).
KIND_SHRINK = 20.0
#: The date ordinal of 1970-01-01: engagement days count from it.
_EPOCH = 719_163
#: Days a provider's list price is quoted for.
PRICE_DAYS = 30


@dataclass(frozen=True)
class Engagements:
    """Merchants' engagements of providers, one row each.

    Days are whole days since 1970-01-01; ``end`` is the last day (inclusive), so an
    engagement lasts ``end - start + 1`` days and ``gmv_before`` covers as many days before
    ``start``. ``gmv_during`` is NaN while an engagement runs.
    """

    ids: NDArray[np.str_]
    merchant: I64
    provider: I64
    start: I64
    end: I64
    fee: F64
    gmv_before: F64
    gmv_during: F64

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name in ("merchant", "provider", "start", "end", "fee", "gmv_before", "gmv_during"):
            if len(getattr(self, name)) != n:
                raise BadArgument(name, f"has {len(getattr(self, name))} rows, ids has {n}")
        if n and np.any(self.end < self.start):
            raise BadArgument("end", "an engagement ends before it starts")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def days(self) -> I64:
        out: I64 = (self.end - self.start + 1).astype(np.int64)
        return out

    @property
    def completed(self) -> NDArray[np.bool_]:
        """Engagements with an outcome: both GMVs known and positive."""
        with np.errstate(invalid="ignore"):
            ok: NDArray[np.bool_] = (
                np.isfinite(self.gmv_during)
                & np.isfinite(self.gmv_before)
                & (self.gmv_during > 0)
                & (self.gmv_before > 0)
            )
        return ok


@dataclass(frozen=True)
class ProviderMarket:
    """What provider matching reads (``PROVIDERS_READ``), as id-ordered arrays."""

    provider_ids: NDArray[np.str_]
    provider_names: list[str]
    provider_kind: list[str]  # "" where unknown
    list_price: F64  # yuan per PRICE_DAYS days; NaN where not quoted
    merchant_ids: NDArray[np.str_]
    merchant_names: list[str]
    category_names: list[str]
    shares: F64  # (M, C) category shares of each merchant's catalogue
    engagements: Engagements
    served_merchant: I64  # SERVED_BY: the providers merchants use now
    served_provider: I64

    def provider_row(self, provider_id: str) -> int:
        """Row of a provider id; :class:`UnknownId` if there is none."""
        i = int(np.searchsorted(self.provider_ids, provider_id))
        if i >= len(self.provider_ids) or self.provider_ids[i] != provider_id:
            raise UnknownId("ServiceProvider", provider_id)
        return i

    def merchant_row(self, merchant_id: str) -> int:
        """Row of a merchant id; :class:`UnknownId` if there is none."""
        i = int(np.searchsorted(self.merchant_ids, merchant_id))
        if i >= len(self.merchant_ids) or self.merchant_ids[i] != merchant_id:
            raise UnknownId("Merchant", merchant_id)
        return i

    def categories_of(self, merchant: int) -> list[str]:
        """The merchant's categories, largest share first (public: its catalogue)."""
        s = self.shares[merchant]
        order = np.lexsort((np.arange(len(s)), -s))
        return [self.category_names[c] for c in order if s[c] > 0]


def _days(values: NDArray[np.object_]) -> I64:
    """Days since 1970-01-01 (NaT's integer where unset)."""
    ordinal, ok = day_ordinals(values)
    out: I64 = np.where(ok, ordinal - _EPOCH, np.datetime64("NaT").astype(np.int64))
    return out


def provider_market(g: MarketGraph) -> ProviderMarket:
    """The arrays of :class:`ProviderMarket` from a market graph read with ``PROVIDERS_READ``."""
    sp, merchants = g.node("ServiceProvider"), g.node("Merchant")
    products, categories = g.node("Product"), g.node("Category")
    eng, served = g.edge("ENGAGED", "Merchant"), g.edge("SERVED_BY", "Merchant")
    sells, in_cat = g.edge("SELLS", "Merchant"), g.edge("IN_CATEGORY", "Product")
    product_merchant = np.full(len(products), -1, dtype=np.int64)
    product_merchant[sells.dst] = sells.src
    shares = category_shares(
        product_merchant[in_cat.src], in_cat.dst, len(merchants), len(categories)
    )
    c = eng.columns
    e = Engagements(
        ids=np.array([str(x) for x in c["engagement_id"]], dtype=str),
        merchant=eng.src.astype(np.int64),
        provider=eng.dst.astype(np.int64),
        start=_days(c["start"]),
        end=_days(c["end"]),
        fee=c["fee"].astype(np.float64),
        gmv_before=c["gmv_before"].astype(np.float64),
        gmv_during=c["gmv_during"].astype(np.float64),
    )
    col = sp.columns
    names = categories.columns.get("name", categories.ids)
    return ProviderMarket(
        provider_ids=sp.ids,
        provider_names=[str(n or i) for i, n in zip(sp.ids, col["name"], strict=True)],
        provider_kind=[str(k or "") for k in col["kind"]],
        list_price=col["list_price"].astype(np.float64),
        merchant_ids=merchants.ids,
        merchant_names=[
            str(n or i) for i, n in zip(merchants.ids, merchants.columns["name"], strict=True)
        ],
        category_names=[str(n or i) for i, n in zip(categories.ids, names, strict=True)],
        shares=shares,
        engagements=e,
        served_merchant=served.src.astype(np.int64),
        served_provider=served.dst.astype(np.int64),
    )


def category_shares(
    item_merchant: I64, item_category: I64, n_merchants: int, n_categories: int
) -> F64:
    """Each merchant's share of catalogue items in each category (rows sum to 1, or 0).

    ``item_merchant[i]`` and ``item_category[i]`` are one (product, category) pair, each
    counting one. Pairs with merchant -1 (a product nobody sells) are left out.

    Examples
    --------
    >>> category_shares(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), 3, 2).tolist()
    [[0.6666666666666666, 0.3333333333333333], [0.0, 1.0], [0.0, 0.0]]
    """
    m = np.asarray(item_merchant, dtype=np.int64)
    c = np.asarray(item_category, dtype=np.int64)
    if len(m) != len(c):
        raise BadArgument("item_category", f"has {len(c)} rows, item_merchant has {len(m)}")
    keep = m >= 0
    m, c = m[keep], c[keep]
    out = np.zeros((n_merchants, n_categories))
    if not len(m):
        return out
    out += np.bincount(m * n_categories + c, minlength=out.size).reshape(out.shape)
    total = out.sum(axis=1, keepdims=True)
    shares: F64 = np.divide(out, total, out=np.zeros_like(out), where=total > 0)
    return shares


def _window_months(lo: I64, hi: I64, edges: I64) -> F64:
    """(E, K) share of each window ``[lo, hi)`` falling in month k (``edges``: K + 1 days)."""
    a = np.maximum(lo[:, None], edges[None, :-1])
    b = np.minimum(hi[:, None], edges[None, 1:])
    days = np.clip(b - a, 0, None).astype(np.float64)
    n = np.maximum(hi - lo, 1).astype(np.float64)
    out: F64 = days / n[:, None]
    return out


def market_change(start: I64, end: I64, outcome: F64, *, smoothing: float = MONTH_SMOOTHING) -> F64:
    """The market's own log change from each engagement's before-window to its during-window.

    Fits a log activity level ``a[k]`` per calendar month to the finite ``outcome`` values
    (``log(gmv_during / gmv_before)``) by least squares: an outcome is modelled as the mean of
    ``a`` over the during-window minus its mean over the before-window, plus noise; a penalty
    ``smoothing * sum (a[k+1] - a[k])^2`` keeps months few windows cover determined. The
    level is fixed only up to a constant, which no window difference sees.

    Parameters
    ----------
    start, end
        Each engagement's first and last day (days since 1970-01-01).
    outcome
        ``log(gmv_during / gmv_before)``; NaN for engagements without an outcome (their
        change is still returned, from the others).
    smoothing
        The penalty's weight, 0 or more.

    Returns
    -------
    ndarray
        Per engagement, the market's change (0 where no engagement has an outcome).

    Examples
    --------
    A market that doubles from January to March: windows of a month before and during.

    >>> day = lambda s: int(np.datetime64(s, "D").astype(np.int64))
    >>> start = np.array([day("2025-02-01"), day("2025-03-01"), day("2025-02-01")])
    >>> end = np.array([day("2025-02-28"), day("2025-03-31"), day("2025-02-28")])
    >>> y = np.array([np.log(1.5), np.log(2 / 1.5), np.nan])
    >>> np.round(market_change(start, end, y, smoothing=0.0), 2).tolist()
    [0.41, 0.29, 0.41]
    """
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    y = np.asarray(outcome, dtype=np.float64)
    if not len(start) == len(end) == len(y):
        raise BadArgument("outcome", "start, end and outcome must have one row per engagement")
    if smoothing < 0 or not np.isfinite(smoothing):
        raise BadArgument("smoothing", f"must be 0 or more, got {smoothing}")
    known = np.isfinite(y)
    if not known.any():
        return np.zeros(len(y))
    days = end - start + 1
    lo_day = int((start - days).min())
    hi_day = int((end + 1).max())
    first = np.datetime64(lo_day, "D").astype("datetime64[M]")
    last = np.datetime64(hi_day, "D").astype("datetime64[M]") + 1
    edges = np.arange(first, last + 1).astype("datetime64[D]").astype(np.int64)
    x = _window_months(start, end + 1, edges) - _window_months(start - days, start, edges)
    k = x.shape[1]
    step = np.diff(np.eye(k), axis=0)  # (K-1, K)
    a = np.vstack([x[known], np.sqrt(smoothing) * step])
    b = np.concatenate([y[known], np.zeros(k - 1)])
    level, *_ = np.linalg.lstsq(a, b, rcond=None)
    out: F64 = x @ level
    return out


def engagement_lift(e: Engagements, *, use: NDArray[np.bool_] | None = None) -> F64:
    """Each completed engagement's lift: its log outcome minus the market's change
    (:func:`market_change`); NaN for running ones and those not in ``use``.

    ``use`` (default every engagement) also limits the engagements the market's change is
    fitted on (a hold-out leaves its engagements out of both).
    """
    ok = e.completed if use is None else e.completed & use
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(ok, np.log(e.gmv_during / e.gmv_before), np.nan)
    return y - market_change(e.start, e.end, y)


@dataclass(frozen=True)
class ProviderModel:
    """A fitted track record: what :func:`expected_lift` ranks with.

    ``lift`` is NaN for engagements not used (running, held out, or of a provider with too
    few completed engagements to count: ``qualified``); ``prior`` is each provider's kind's
    mean lift; ``kappa`` the shrinkage in engagements' worth of weight.
    """

    lift: F64  # per engagement
    merchant: I64  # per engagement
    provider: I64  # per engagement
    completed: I64  # per provider: completed engagements used
    qualified: NDArray[np.bool_]  # per provider: at least min_engagements of them
    prior: F64  # per provider
    kappa: float
    floor: float
    min_engagements: int
    shares: F64 = field(repr=False)  # (M, C) category shares


def fit_providers(
    e: Engagements,
    shares: F64,
    provider_kind: list[str],
    *,
    use: NDArray[np.bool_] | None = None,
    floor: float = SIMILARITY_FLOOR,
    min_engagements: int = MIN_EVIDENCE_ENGAGEMENTS,
) -> ProviderModel:
    """Lifts, priors by kind and the shrinkage, from the engagements in ``use``.

    ``kappa`` is chosen from :data:`KAPPA_GRID` by how well it predicts each engagement's lift
    from the same provider's engagements for other merchants (leave that merchant out):
    empirical Bayes by prediction rather than by moments, which grouping merchants into
    categories made unstable (kappa 15 on a market, at its ceiling of 50 with a tenth held
    out).

    Parameters
    ----------
    e
        The engagements.
    shares
        (M, C) category shares of every merchant (:func:`category_shares`).
    provider_kind
        Each provider's kind ("" where unknown: its own group).
    use
        Engagements to learn from (default all); a hold-out passes the others.
    floor
        :data:`SIMILARITY_FLOOR`, in [0, 1].
    min_engagements
        Fewest completed engagements a provider's own record is used with.

    Raises
    ------
    BadArgument
        If ``floor`` is outside [0, 1], ``min_engagements`` below 1, or the arrays disagree.
    """
    if not 0.0 <= floor <= 1.0:
        raise BadArgument("floor", f"must be between 0 and 1, got {floor}")
    if min_engagements < 1:
        raise BadArgument("min_engagements", f"must be at least 1, got {min_engagements}")
    shares = np.asarray(shares, dtype=np.float64)
    n_p = len(provider_kind)
    if len(e) and (e.provider.max() >= n_p or e.merchant.max() >= len(shares)):
        raise BadArgument("e", "an engagement names a provider or merchant row out of range")
    if use is not None and len(use) != len(e):
        raise BadArgument("use", f"has {len(use)} rows, engagements have {len(e)}")
    lift = engagement_lift(e, use=use)
    known = np.isfinite(lift)
    completed = np.bincount(e.provider[known], minlength=n_p).astype(np.int64)
    qualified = completed >= min_engagements
    kinds = sorted(set(provider_kind))
    kind_of = np.array([kinds.index(k) for k in provider_kind], dtype=np.int64)
    e_kind = kind_of[e.provider]
    overall = float(np.mean(lift[known])) if known.any() else 0.0
    kind_mean = np.full(len(kinds), overall)
    for k in range(len(kinds)):
        x = lift[known & (e_kind == k)]
        if len(x) >= min_engagements:  # a kind's mean is an aggregate too
            kind_mean[k] = (x.sum() + KIND_SHRINK * overall) / (len(x) + KIND_SHRINK)
    prior = kind_mean[kind_of]
    kappa = _kappa(lift, known, e, shares, prior, floor)
    lift = np.where(known & qualified[e.provider], lift, np.nan)
    return ProviderModel(
        lift=lift,
        merchant=e.merchant,
        provider=e.provider,
        completed=completed,
        qualified=qualified,
        prior=prior,
        kappa=kappa,
        floor=floor,
        min_engagements=min_engagements,
        shares=shares,
    )


#: Shrinkage values :func:`fit_providers` chooses from (engagements' worth of weight).
KAPPA_GRID = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
#: Engagements the choice of kappa predicts at most (a sample beyond: the (n, n) similarity).
KAPPA_SAMPLE = 3_000


def _kappa(
    lift: F64,
    known: NDArray[np.bool_],
    e: Engagements,
    shares: F64,
    prior: F64,
    floor: float,
) -> float:
    """The kappa of :data:`KAPPA_GRID` that best predicts each engagement's lift from the
    same provider's engagements for other merchants (squared error)."""
    idx = np.nonzero(known)[0]
    if len(idx) > KAPPA_SAMPLE:
        idx = np.sort(np.random.default_rng(0).choice(idx, KAPPA_SAMPLE, replace=False))
    if len(idx) < 3:
        return KAPPA_GRID[-1]
    p, m = e.provider[idx], e.merchant[idx]
    sim = shares[m] @ shares[m].T
    # only the same provider's engagements, never the merchant's own (what is predicted)
    same = (p[:, None] == p[None, :]) & (m[:, None] != m[None, :])
    w = (floor + (1.0 - floor) * np.clip(sim, 0.0, 1.0)) * same
    sw, swl = w.sum(axis=1), w @ lift[idx]
    best, err = KAPPA_GRID[-1], np.inf
    for k in KAPPA_GRID:
        pred = (swl + k * prior[p]) / (sw + k)
        e2 = float(np.mean((lift[idx] - pred) ** 2))
        if e2 < err - 1e-12:
            best, err = k, e2
    return best


def _weights(model: ProviderModel, merchants: I64 | int, rows: NDArray[np.bool_]) -> F64:
    """(len(merchants), rows) weights of the used engagements ``rows`` for each merchant:
    ``floor + (1 - floor) *`` the chance the two merchants' main categories are the same
    (the dot product of their category shares)."""
    sim = np.atleast_2d(model.shares[merchants]) @ model.shares[model.merchant[rows]].T
    out: F64 = model.floor + (1.0 - model.floor) * np.clip(sim, 0.0, 1.0)
    return out


def _private_weights(
    model: ProviderModel, merchant: int, used: NDArray[np.bool_], w: F64, *, steps: int = 40
) -> F64:
    """The weights of the ``used`` engagements for ``merchant``, evened per provider so that no
    figure rests on fewer than ``model.min_engagements`` other merchants.

    Counted in merchants, not engagements (one business that re-engaged a provider five times
    is one contributor), as the threshold rule of statistical offices does: each other
    merchant's weight is the sum over its engagements, their effective number is
    ``(sum W)^2 / sum W^2``, and where it is below the minimum every other merchant gets the
    least common addition that brings it there (found by bisection: the effective number
    grows with it), shared among its engagements. The others' weights are then scaled back to
    their total before, so the shrinkage towards the prior keeps its strength (the effective
    number does not change under scaling). Providers with fewer other merchants than the
    minimum keep nothing of them. The merchant's own engagements are its own to see.
    """
    n_p, k = len(model.prior), float(model.min_engagements)
    prov, who = model.provider[used], model.merchant[used]
    other = who != merchant
    out = w.copy()
    if not other.any():
        return out
    key = prov[other].astype(np.int64) * (int(model.merchant.max()) + 1) + who[other]
    groups, g = np.unique(key, return_inverse=True)
    size = np.bincount(g)
    gp = (groups // (int(model.merchant.max()) + 1)).astype(np.int64)
    wg = np.bincount(g, weights=w[other])
    n_merchants = np.bincount(gp, minlength=n_p)

    def ess(add: F64) -> F64:
        x = wg + add[gp]
        s1 = np.bincount(gp, weights=x, minlength=n_p)
        s2 = np.bincount(gp, weights=x**2, minlength=n_p)
        r: F64 = np.divide(s1**2, s2, out=np.zeros(n_p), where=s2 > 0)
        return r

    enough = k * (1 - 1e-6)
    need = (ess(np.zeros(n_p)) < enough) & (n_merchants >= k)
    lo, hi = np.zeros(n_p), np.where(need, 1.0, 0.0)
    while (need & (ess(hi) < enough)).any():  # ess -> the number of merchants as it grows
        hi = np.where(need & (ess(hi) < enough), hi * 4.0, hi)
    for _ in range(steps):
        mid = (lo + hi) / 2
        short = ess(mid) < enough
        lo, hi = np.where(short, mid, lo), np.where(short, hi, mid)
    add = np.where(need, hi, 0.0)
    evened = w[other] + (add[gp] / size)[g]
    before = np.bincount(gp, weights=wg, minlength=n_p)
    after = np.bincount(gp, weights=wg + add[gp], minlength=n_p)
    scale = np.divide(before, after, out=np.zeros(n_p), where=after > 0)
    # a provider with fewer other merchants than the minimum: nothing of them counts
    scale[n_merchants < k] = 0.0
    out[other] = evened * scale[gp][g]
    return out


def expected_lift(model: ProviderModel, merchant: int) -> F64:
    """Every provider's expected lift for ``merchant`` (a row of the shares).

    The similarity-weighted mean lift of the provider's engagements, shrunk towards its
    kind's mean: ``(sum w * lift + kappa * prior) / (sum w + kappa)``; a provider without
    enough completed engagements (``model.qualified``) gets its prior.

    Examples
    --------
    Provider 0 grew merchants 0-4 (category 0) by 30% and merchants 5-9 (category 1) not at
    all; provider 1 (same kind) the other way round. For merchant 10, in category 0:

    >>> up = np.array([0.3] * 5 + [0.0] * 5 + [0.0] * 5 + [0.3] * 5)
    >>> e = Engagements(
    ...     ids=np.array([f"e{i}" for i in range(20)]),
    ...     merchant=np.tile(np.arange(10), 2), provider=np.repeat([0, 1], 10),
    ...     start=np.full(20, 20_000), end=np.full(20, 20_029), fee=np.full(20, 1e4),
    ...     gmv_before=np.full(20, 1e5), gmv_during=1e5 * np.exp(up),
    ... )
    >>> shares = np.repeat([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], [5, 5, 1], axis=0)
    >>> m = fit_providers(e, shares, ["ops", "ops"])
    >>> np.round(expected_lift(m, 10), 2).tolist()
    [0.15, -0.13]
    """
    used = np.isfinite(model.lift)
    n_p = len(model.prior)
    w = _private_weights(model, merchant, used, _weights(model, merchant, used)[0])
    sw = np.bincount(model.provider[used], weights=w, minlength=n_p)
    swl = np.bincount(model.provider[used], weights=w * model.lift[used], minlength=n_p)
    out: F64 = (swl + model.kappa * model.prior) / (sw + model.kappa)
    return out


@dataclass(frozen=True)
class ProviderMatch:
    """One provider in a merchant's list, with its evidence.

    ``in_categories``: the provider's completed engagements for other merchants sharing a
    category with this one; ``median_lift`` their median lift, None when they come from fewer
    merchants than the policy's minimum (``too_few``); ``list_price`` per :data:`PRICE_DAYS`
    days (public); ``extra_gmv_per_yuan``: the merchant's own GMV per 30 days x (e^lift - 1) /
    list price, None where the merchant's GMV or the price is not known.
    """

    rank: int
    provider: str
    name: str
    kind: str
    expected_lift: float
    engagements: int
    in_categories: int
    median_lift: float | None
    too_few: bool
    list_price: float | None
    extra_gmv_per_yuan: float | None


def _gmv_per_day(market: ProviderMarket, merchant: int) -> float | None:
    """The merchant's own latest GMV per day: its latest window with a known GMV."""
    e = market.engagements
    mine = np.nonzero(e.merchant == merchant)[0]
    best, when = None, -(10**9)
    for i in mine:
        d = int(e.end[i] - e.start[i] + 1)
        if np.isfinite(e.gmv_during[i]) and e.gmv_during[i] > 0 and e.end[i] > when:
            best, when = float(e.gmv_during[i]) / d, int(e.end[i])
        elif np.isfinite(e.gmv_before[i]) and e.gmv_before[i] > 0 and e.start[i] - 1 > when:
            best, when = float(e.gmv_before[i]) / d, int(e.start[i]) - 1
    return best


def rank_providers(
    model: ProviderModel, market: ProviderMarket, merchant: str, *, top: int = 10
) -> list[ProviderMatch]:
    """The merchant's providers, best expected lift first (ties by id), with evidence.

    Raises
    ------
    UnknownId
        If there is no such merchant.
    BadArgument
        If ``top`` is below 1.
    """
    if top < 1:
        raise BadArgument("top", f"must be at least 1, got {top}")
    m = market.merchant_row(merchant)
    lift = expected_lift(model, m)
    order = np.lexsort((market.provider_ids, -lift))[:top]
    used = np.isfinite(model.lift)
    share_any = model.shares[model.merchant] @ model.shares[m] > 0
    level = _gmv_per_day(market, m)
    out = []
    others = model.merchant != m
    for r, p in enumerate(order):
        # the median is of other merchants' engagements in its categories (its own it knows)
        # and shown over at least the policy's minimum of merchants, not engagements
        mine = used & (model.provider == p) & share_any & others
        n_in = int(mine.sum())
        few = len(np.unique(model.merchant[mine])) < model.min_engagements
        price = float(market.list_price[p])
        roi = None
        if level is not None and np.isfinite(price) and price > 0:
            roi = level * PRICE_DAYS * float(np.expm1(lift[p])) / price
        out.append(
            ProviderMatch(
                rank=r + 1,
                provider=str(market.provider_ids[p]),
                name=market.provider_names[p],
                kind=market.provider_kind[p],
                expected_lift=float(lift[p]),
                engagements=int(model.completed[p]),
                in_categories=n_in,
                median_lift=None if few else float(np.median(model.lift[mine])),
                too_few=few,
                list_price=price if np.isfinite(price) else None,
                extra_gmv_per_yuan=roi,
            )
        )
    return out


@dataclass(frozen=True)
class ProviderLead:
    """A merchant a provider could serve: only what is public of it, and the provider's own
    expected lift for it."""

    rank: int
    merchant: str
    name: str
    categories: list[str]
    expected_lift: float


def provider_leads(
    model: ProviderModel,
    market: ProviderMarket,
    provider: str,
    *,
    eligible: NDArray[np.bool_],
    top: int = 10,
) -> list[ProviderLead]:
    """Merchants the provider would serve best: by its expected lift for each, best first
    (ties by id), leaving out merchants it serves now and those not ``eligible`` (a mask
    over merchants: compliance, :func:`kolmatch.matching.eligibility.merchant_eligibility`).

    Raises
    ------
    UnknownId
        If there is no such provider.
    BadArgument
        If ``top`` is below 1 or ``eligible`` is not one flag per merchant.
    """
    if top < 1:
        raise BadArgument("top", f"must be at least 1, got {top}")
    eligible = np.asarray(eligible, dtype=bool)
    if eligible.shape != (len(market.merchant_ids),):
        raise BadArgument("eligible", f"needs one flag per merchant ({len(market.merchant_ids)})")
    p = market.provider_row(provider)
    rows = np.isfinite(model.lift) & (model.provider == p)
    keep = eligible.copy()
    keep[market.served_merchant[market.served_provider == p]] = False
    cand = np.nonzero(keep)[0]
    if rows.any():
        w = _weights(model, cand, rows)
        lift = (w @ model.lift[rows] + model.kappa * model.prior[p]) / (w.sum(axis=1) + model.kappa)
    else:
        lift = np.full(len(cand), model.prior[p])
    order = np.lexsort((market.merchant_ids[cand], -lift))[:top]
    return [
        ProviderLead(
            rank=r + 1,
            merchant=str(market.merchant_ids[cand[i]]),
            name=market.merchant_names[cand[i]],
            categories=market.categories_of(int(cand[i])),
            expected_lift=float(lift[i]),
        )
        for r, i in enumerate(order)
    ]
