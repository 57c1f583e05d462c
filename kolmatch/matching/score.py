"""Score every talent for one merchant: signals as arrays, one weighted score, concrete evidence.

Match lists are written for the merchant (kolmatch/policy.py): every signal, breakdown number and
evidence line comes from values the merchant may see, so the same list is safe for every reader.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch import progress
from kolmatch.errors import BadArgument, Cancel, check_cancel
from kolmatch.graph.model import AGE_BANDS, GENDERS
from kolmatch.i18n import DEFAULT_LANG, category_name, format_amount, message
from kolmatch.matching.availability import Availability, availability, planning_window
from kolmatch.matching.eligibility import require_merchant
from kolmatch.matching.features import MarketFeatures, price_fit
from kolmatch.matching.fees import TalentFees, merchant_prices
from kolmatch.matching.personalised import (
    PPR_ALPHA,
    PartnerWalk,
    customer_ppr,
    mixed_rows,
    rows_gathered,
)
from kolmatch.policy import (
    MIN_DEMOGRAPHIC_AUDIENCE,
    demographics_shown,
    percentile,
    percentile_among,
    percentile_band,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "RERANK_BELOW_SHARE",
    "SIGNALS",
    "WHY_REASONS",
    "Match",
    "MerchantRankings",
    "MerchantSignals",
    "PatchedRankings",
    "WhyNot",
    "collaborations_moved",
    "expected_gmv",
    "expected_orders",
    "few_columns_product",
    "match_merchant",
    "merchant_signals",
    "rank_into",
    "rank_merchants",
    "ranking_order",
    "rankings_after_collaboration",
    "rankings_after_risk",
    "rankings_worn",
    "tiebreak_places",
    "top_order",
    "why_not",
]

F64 = NDArray[np.float64]

#: Default weights of the standardised signals (docs/scoring.md); callers may override any.
DEFAULT_WEIGHTS: dict[str, float] = {
    "expected_gmv": 1.0,
    "audience_fit": 0.005,
    "category_fit": 0.002,
    "target_fit": 0.05,
    "hidden_need_reach": 0.005,
    "customer_reach": 0.05,
    "customer_affinity": 0.05,
    "partner_affinity": 0.005,
    "reach": 0.001,
    "influence": 0.05,
    "track_record": 0.05,
    "roi": 0.05,
    "audience_quality": 0.1,
    "risk": 1.0,
}


@dataclass(frozen=True)
class MerchantSignals:
    """Every talent's signals for one merchant, aligned with ``features.talent_ids``."""

    merchant: int
    audience_fit: F64
    category_fit: F64
    target_fit: F64
    price_fit: F64
    expected_gmv: F64
    hidden_need_reach: F64
    customer_reach: F64
    customer_affinity: F64
    partner_affinity: F64
    reach: F64
    track_record: F64
    roi: F64
    influence: F64
    audience_quality: F64
    risk: F64
    excluded: NDArray[np.bool_]
    price: F64  # (T,) what the merchant sees a talent cost: list price, else an estimate
    price_estimated: NDArray[np.bool_]  # (T,) no list price quoted: ``price`` is an estimate
    commission: float  # the commission the merchant's products offer, 0..1 (0 if none recorded)
    demographics: NDArray[np.bool_]  # (T,) audience large enough to show demographics
    #: :data:`MARKET_SIGNALS` standardised, from the features' market-wide arrays (the same
    #: arrays as ``reach``, ``influence`` and ``audience_quality``); empty: standardised anew.
    #: A copy of these signals with one of those three replaced must empty it too
    market_z: Mapping[str, F64] = field(default_factory=dict)
    #: The talent rows these arrays are of (:func:`merchant_signals`' ``rows``); None: all
    rows: NDArray[np.int64] | None = None
    #: (mean, sd) each named :data:`STANDARDISED` signal is standardised with, as
    #: :func:`_combined` takes it (log-scaled where it log-scales); a signal not named is
    #: standardised over these arrays. Every one is named where ``rows`` is given
    moments: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, F64]:
        return {
            "expected_gmv": self.expected_gmv,
            "audience_fit": self.audience_fit,
            "category_fit": self.category_fit,
            "target_fit": self.target_fit,
            "hidden_need_reach": self.hidden_need_reach,
            "customer_reach": self.customer_reach,
            "customer_affinity": self.customer_affinity,
            "partner_affinity": self.partner_affinity,
            "reach": self.reach,
            "influence": self.influence,
            "track_record": self.track_record,
            "roi": self.roi,
            "audience_quality": self.audience_quality,
            "risk": self.risk,
        }


@dataclass(frozen=True)
class Match:
    """One ranked talent with its score, signal breakdown, price and evidence.

    ``price`` is the talent's list price (``price_estimated``: an estimate, none is quoted);
    ``affordable`` says whether it is within the budget the list was made for (None: no
    budget stated).
    """

    talent: str
    rank: int
    score: float
    breakdown: dict[str, float]
    evidence: list[str] = field(default_factory=list)
    price: float = float("nan")
    price_estimated: bool = False
    affordable: bool | None = None


def expected_orders(
    f: MarketFeatures, talents: slice | NDArray[np.int64], products: NDArray[np.int64]
) -> tuple[F64, F64]:
    """Expected orders of one collaboration for each (talent, product), and the price fit.

    orders = market rate x skill x audience (engaged + FOLLOW_WEIGHT x other followers) x
    audience interest in the product's categories x price fit (docs/scoring.md).
    """
    logp = np.log(np.maximum(f.product_price[products], 0.01))
    tp = f.talent_price_level[talents]
    pf = price_fit(tp[:, None], logp[None, :])
    # a product in several categories: its audience's interest in each, by the product's weights
    interest = f.talent_audience[talents] @ f.product_categories[products].T
    size = f.talent_audience_size[talents]
    orders = f.gmv_rate * f.talent_skill[talents][:, None] * size[:, None] * interest * pf
    return orders, pf


def expected_gmv(
    f: MarketFeatures,
    talents: slice | NDArray[np.int64],
    products: NDArray[np.int64],
    skill: F64 | None = None,
) -> tuple[F64, F64]:
    """Each talent's expected GMV of one collaboration, averaged over ``products``, and its
    price fit averaged likewise: :func:`expected_orders` x price, mean over the products.

    The price fit depends on a talent only through its price level, and levels are on a grid
    (:data:`~kolmatch.matching.features.PRICE_LEVEL_GRID`): the products' price fits are
    made once per level in use (at l ~3,300, not 200,000 talents: the exponentials were most
    of a match list's time), summed per product category weighted by price, and each talent
    takes its level's sums times its audience's interest in each category and its rate x
    skill x size. A subset of talents (the assignment's) reads the same per-level sums: the
    same bits as the whole market's. ``skill``: (T,) the skills to take instead of
    ``f.talent_skill`` (the calibration's, :func:`merchant_signals`).
    """
    n_talents = len(f.talent_skill[talents])
    if len(products) == 0:
        return np.zeros(n_talents), np.zeros(n_talents)
    price = f.product_price[products]
    logp = np.log(np.maximum(price, 0.01))
    weights = f.product_categories[products]
    used = np.flatnonzero(weights.any(axis=0))
    coef = weights[:, used] * (price / len(products))[:, None]  # (products, used categories)
    wide = _market_wide(f)
    pf = price_fit(wide.price_levels[None, :], logp[:, None])  # (products, levels)
    by_category = coef.T @ pf  # (used categories, levels)
    level = wide.price_level_of[talents]
    audience = wide.columns.audience
    gmv = np.zeros(n_talents)
    tmp = np.empty(n_talents)
    for j, c in enumerate(used):
        np.multiply(audience[c][talents], by_category[j][level], out=tmp)
        gmv += tmp
    rate = f.talent_skill if skill is None else skill
    gmv *= f.gmv_rate * rate[talents] * f.talent_audience_size[talents]
    return gmv, pf.mean(axis=0)[level]


def merchant_signals(
    f: MarketFeatures,
    m: int,
    rows: NDArray[np.int64] | None = None,
    moments: Mapping[str, tuple[float, float]] | None = None,
) -> MerchantSignals:
    """Compute every talent's signals for merchant row ``m``.

    Expected GMV follows the model the features calibrate: for each of the
    merchant's products, orders = market rate x talent skill x audience size
    x audience interest in the product's category x price fit; GMV = orders x
    price, averaged over the merchant's products.

    Talents are measured against the calibration (docs/scoring.md, "Calibration"): a track
    record is a percentile among the calibration's track records, the partner walk reads its
    collaborations, and expected GMV, ROI and track record are standardised with their
    moments under the calibration's skills and track records
    (:attr:`MerchantSignals.moments`), so that a talent whose own record changed since moves
    no other talent's score.

    Parameters
    ----------
    f
        Market features.
    m
        The merchant's row.
    rows
        Only these talents' signals (a ranking patched after a collaborations:
        :func:`rankings_after_collaboration`); the same bits as theirs among all. Default all.
    moments
        With ``rows``: every :data:`STANDARDISED` signal's (mean, sd) for this merchant, as
        a ranking recorded them (:attr:`MerchantRankings.moments`).

    Raises
    ------
    ValueError
        If ``rows`` is given without the moments of every standardised signal.
    """
    if rows is not None and set(STANDARDISED) - set(moments or {}):
        raise ValueError(
            f"the signals of some talents need the moments of {list(STANDARDISED)}: "
            f"missing {sorted(set(STANDARDISED) - set(moments or {}))}"
        )
    sel: slice | NDArray[np.int64] = slice(None) if rows is None else rows
    mix = f.merchant_mix[m]
    wide = _market_wide(f)
    cols = wide.columns

    def mixed(a: F64) -> F64:  # the rows' columns alone: the same bits
        return mixed_rows(a if rows is None else a[:, rows], mix)

    fit = mixed(cols.audience)
    prods = f.merchant_products[m]
    gmv, mean_fit = expected_gmv(f, sel, prods)
    # hidden needs: the talent's audience members leaning to the merchant's categories who have
    # bought nothing there (so not the merchant's customers either), weighted by its mix
    reach = mixed(cols.hidden_need)
    # the merchant's stated target: share of the audience of that gender and age band
    target = np.ones(f.n_talents)
    if f.merchant_target_gender[m] >= 0:
        target = target * cols.gender[f.merchant_target_gender[m]]
    if f.merchant_target_age[m] >= 0:
        target = target * cols.age[f.merchant_target_age[m]]
    # the merchant's own customers: how many are in each audience, and the personalised
    # PageRank from them (own customers' first step, category buyers' longer walks)
    customers = _row(f.merchant_buyers, m)
    in_audience = rows_gathered(f.audience_by_user, customers)  # once, for both
    customer_reach = np.bincount(in_audience[1], minlength=f.n_talents).astype(np.float64)
    affinity = customer_ppr(
        f.audience_by_user,
        customers,
        mix,
        f.category_ppr_tail,
        gathered=in_audience,
        talents=rows,
    )
    # talents close to those who promoted the merchant's products (a walk over the
    # collaborations of the calibration: the merchant's side of the graph, there even without
    # users)
    partners = wide.partners.walk(prods, alpha=PPR_ALPHA)
    # track record: shrunk mean GMV per collaboration in the merchant's categories, shown and
    # scored as a percentile among the calibration's track records: its yuan would reveal
    # other merchants' GMV. A talent with no known GMV in them has their means (most talents:
    # only the rest sorted)
    reference = mixed_rows(cols.track_reference, mix)
    if rows is None:
        on = np.flatnonzero(mix)
        unknown = ~np.logical_or.reduce([cols.track_known[c] for c in on]) if len(on) else None
        reference_track = percentile(reference, unknown)
        track = percentile_among(mixed(cols.track), reference, reference_track)
    else:
        reference_track = None
        track = percentile_among(mixed(cols.track), reference)
    # ROI on what the merchant sees and pays: the list price (else its estimate) plus the
    # commission its own products offer on the expected GMV, never the private fee or terms
    prices = wide.prices
    commission = float(np.clip(np.nan_to_num(f.merchant_commission[m]), 0.0, 1.0))
    roi = _roi(gmv, prices.fee[sel], commission)
    # demographics of small audiences are not shown, nor scored: the market's mean instead
    shown = wide.shown
    if not shown.all():
        target = np.where(shown, target, float(target[shown].mean()) if shown.any() else 1.0)
    if rows is None:
        moments = _calibrated_moments(
            f, wide, prods, gmv, roi, prices.fee, commission, track, reference_track
        )
    risk = f.talent_risk[sel]
    return MerchantSignals(
        merchant=m,
        audience_fit=fit,
        category_fit=mixed(cols.category),
        target_fit=target[sel],
        price_fit=mean_fit,
        expected_gmv=gmv,
        hidden_need_reach=reach,
        customer_reach=customer_reach[sel],
        customer_affinity=affinity * f.n_talents,
        partner_affinity=partners[sel] * f.n_talents,
        reach=wide.followers[sel],
        track_record=track,
        roi=roi,
        influence=f.talent_influence[sel],
        audience_quality=f.talent_active_share[sel],
        risk=risk,
        excluded=risk >= 1.0,
        price=prices.fee[sel],
        price_estimated=prices.estimated[sel],
        commission=commission,
        demographics=shown[sel],
        market_z=wide.market_z if rows is None else {k: v[rows] for k, v in wide.market_z.items()},
        rows=rows,
        moments=moments or {},
    )


def _roi(gmv: F64, fee: F64, commission: float) -> F64:
    """Expected GMV per yuan paid: the price plus the commission on the GMV (0 where nothing
    is paid)."""
    cost = fee + commission * gmv
    return np.divide(gmv, cost, out=np.zeros_like(gmv), where=np.nan_to_num(cost) > 0)


def _calibrated_moments(
    f: MarketFeatures,
    wide: _MarketWide,
    prods: NDArray[np.int64],
    gmv: F64,
    roi: F64,
    fee: F64,
    commission: float,
    track: F64,
    reference_track: F64 | None,
) -> dict[str, tuple[float, float]]:
    """The moments :data:`CALIBRATED` signals are standardised with: theirs over the talents
    as the calibration measured them (its skills, its track records). Empty where every
    talent is as measured (they are then the signals' own: the same bits)."""
    moved = wide.skill_moved
    if reference_track is None or (not len(moved) and track is reference_track):
        return {}
    gmv_ref, roi_ref = gmv, roi
    if len(moved):
        gmv_ref = gmv.copy()
        gmv_ref[moved] = expected_gmv(f, moved, prods, skill=f.calibration_skill)[0]
        roi_ref = roi.copy()
        roi_ref[moved] = _roi(gmv_ref[moved], fee[moved], commission)
    return {
        "expected_gmv": _moments(_log1p(gmv_ref)),
        "track_record": _moments(reference_track),
        "roi": _moments(_log1p(roi_ref)),
    }


def _row(a: sp.csr_matrix, i: int) -> NDArray[np.int64]:
    """Row ``i``'s column indices of ``a``, a view (slicing a row builds a matrix: ~0.1 ms)."""
    return a.indices[a.indptr[i] : a.indptr[i + 1]]  # type: ignore[no-any-return]


def _z(x: F64) -> F64:
    """``x`` (1-d) standardised: ``(x - mean) / sd``, zeros where it does not vary (or its
    spread is not a number). numpy's ``mean`` and ``std`` as they compute them (one pairwise
    sum each), the deviations made once for both: the same bits in half the passes."""
    return _standardised(x)[0]


def _standardised(
    x: F64, moments: tuple[float, float] | None = None
) -> tuple[F64, tuple[float, float]]:
    """``_z(x)`` and the (mean, sd) it took; with ``moments``, ``x`` standardised with them
    instead: each value the same bits as it has among the values they were measured on."""
    n = len(x)
    if moments is None:
        if not n:
            return np.zeros_like(x), (0.0, math.nan)
        mean = np.add.reduce(x) / n
        d: F64 = x - mean
        sd = math.sqrt(float(np.add.reduce(d * d)) / n)
        moments = (float(mean), sd)
    else:
        d = x - moments[0]
        sd = moments[1]
    if not sd > 0:
        return np.zeros_like(x), moments
    d /= sd
    return d, moments


def _moments(x: F64) -> tuple[float, float]:
    """The (mean, sd) :func:`_z` standardises ``x`` with."""
    return _standardised(x)[1]


def _log1p(x: F64) -> F64:
    """``log(1 + x)`` to within a few units in the last place, at about half ``np.log1p``'s
    cost on machines without numpy's vectorised log1p (AVX2: 17 ns a value, a match list at
    l spent 14 ms in it): ``log(u) - ((u - 1) - x) / u`` with ``u = 1 + x``, the second term
    correcting the rounding of ``u``. Where that is not a finite number (x infinite, or -1),
    ``np.log1p``'s value. Arrays only; -0.0 gives +0.0."""
    with np.errstate(divide="ignore", invalid="ignore"):  # np.log1p's own say, below
        u = 1.0 + x
        out = np.log(u)
        c = u - 1.0
        c -= x
        c /= u
        out -= c
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = np.log1p(x[bad])
    return out


def _log1p_sparse(x: F64) -> F64:
    """``np.log1p(x)`` for a signal that is mostly 0 (customer reach, partner walk): the
    logarithm taken of the entries that are not (log1p(0) is 0)."""
    out = np.zeros_like(x)
    on = np.flatnonzero(x)
    out[on] = np.log1p(x[on])
    return out


#: The signals every merchant's list has alike (a talent's own, not the pair's): standardised
#: once per features (:func:`_market_wide`), not once per list.
MARKET_SIGNALS = ("reach", "influence", "audience_quality")

#: The signals standardised over the talents of each merchant's list, in the order of
#: :attr:`MerchantRankings.moments`' second axis.
STANDARDISED = (
    "expected_gmv",
    "audience_fit",
    "category_fit",
    "target_fit",
    "hidden_need_reach",
    "customer_reach",
    "customer_affinity",
    "partner_affinity",
    "track_record",
    "roi",
)

#: The standardised signals a recorded collaboration moves (its talent's skill and track
#: record): standardised with their moments under the calibration (:func:`merchant_signals`).
CALIBRATED = ("expected_gmv", "track_record", "roi")


def _market_z(followers: F64, influence: F64, active_share: F64) -> dict[str, F64]:
    """The standardised :data:`MARKET_SIGNALS`, as :func:`_combined` would make them."""
    return {
        "reach": _z(np.log1p(followers)),
        "influence": _z(np.log(np.maximum(influence, 1e-12))),
        "audience_quality": _z(active_share),
    }


def combine(signals: MerchantSignals, weights: Mapping[str, float] | None = None) -> F64:
    """One score per talent: a weighted sum of standardised (log-scaled where heavy-tailed) signals.

    Excluded talents score ``-inf``.
    """
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    unknown = set(w) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise ValueError(
            f"unknown signal weights {sorted(unknown)}; known: {sorted(DEFAULT_WEIGHTS)}"
        )
    # signals are standardised: weights beyond +-1e6 only overflow (NaN scores, empty lists)
    bad = sorted(k for k, v in w.items() if not (math.isfinite(v) and abs(v) <= MAX_WEIGHT))
    if bad:
        raise BadArgument("weights", f"{bad} must be finite numbers within +-{MAX_WEIGHT:g}")
    return _combined(signals, w)[1]


def _combined(
    s: MerchantSignals, w: Mapping[str, float], record: F64 | None = None
) -> tuple[F64, F64]:
    """(the score before risk, the score): risk is subtracted last, unstandardised, so a talent
    whose risk alone changes scores ``base - w_risk * risk`` again, to the bit.

    The weighted standardised signals are added in one order, each weighted in place (the
    same bits as ``w * z + w * z + ...``, without an array per product and per sum).
    ``record``: (len(STANDARDISED), 2) filled with the (mean, sd) each was standardised with.
    """
    market = s.market_z or _market_z(s.reach, s.influence, s.audience_quality)

    def term(k: str, x: F64) -> F64:
        z, used = _standardised(x, s.moments.get(k))
        if record is not None:
            record[STANDARDISED.index(k)] = used
        z *= w[k]
        return z

    base = term("expected_gmv", _log1p(s.expected_gmv))
    base += term("audience_fit", s.audience_fit)
    base += term("category_fit", s.category_fit)
    base += term("target_fit", s.target_fit)
    base += term("hidden_need_reach", _log1p(s.hidden_need_reach))
    base += term("customer_reach", _log1p_sparse(s.customer_reach))
    base += term("customer_affinity", _log1p(s.customer_affinity))
    base += term("partner_affinity", _log1p_sparse(s.partner_affinity))
    base += w["reach"] * market["reach"]
    base += w["influence"] * market["influence"]
    base += term("track_record", s.track_record)
    base += term("roi", _log1p(s.roi))
    base += w["audience_quality"] * market["audience_quality"]
    score = base - w["risk"] * s.risk
    return base, np.where(s.excluded, -np.inf, score)


def _yuan(x: float, lang: str = "en") -> str:
    """An amount as evidence shows it: ``¥12k`` / ``¥1.2M`` in English (the form evidence has
    always had), :func:`~kolmatch.i18n.format_amount` beyond (``¥3.4B``) and in Chinese."""
    if lang != "en" or x >= 1e6:
        return format_amount(x, lang)
    if x >= 1e3:
        return f"¥{x / 1e3:.0f}k"
    return f"¥{x:.0f}"


@dataclass(frozen=True)
class _Prices:
    """What one list shows about money: each talent's price and the budget it is held to."""

    price: F64
    estimated: NDArray[np.bool_]
    commission: float
    budget: float  # NaN: none stated
    demographics: NDArray[np.bool_]


def _prices(f: MarketFeatures, merchant: int, budget: float | None) -> _Prices:
    wide = _market_wide(f)
    b = float(f.merchant_budget[merchant]) if budget is None else float(budget)
    return _Prices(
        wide.prices.fee,
        wide.prices.estimated,
        float(np.clip(np.nan_to_num(f.merchant_commission[merchant]), 0.0, 1.0)),
        b if np.isfinite(b) and b > 0 else float("nan"),
        wide.shown,
    )


@dataclass(frozen=True)
class _MarketWide:
    """What every merchant's list derives alike from one features object: computed once."""

    prices: TalentFees  # what merchants see a talent cost (fees.merchant_prices)
    shown: NDArray[np.bool_]  # whose demographics are shown (policy.demographics_shown)
    tiebreak: NDArray[np.int64]  # each talent's place by (most followers, id): equal scores' order
    partners: PartnerWalk  # the calibration's collaborations: every partner walk reads them
    followers: F64  # (T,) platform-reported followers, 0 where unknown: the reach signal
    market_z: dict[str, F64]  # the standardised MARKET_SIGNALS (_market_z)
    columns: _ByCategory  # talent x category matrices category by category
    price_levels: F64  # the talents' price levels, each once, ascending
    price_level_of: NDArray[np.int64]  # (T,) each talent's place in price_levels
    any_track: bool  # some talent has a collaboration on record
    skill_moved: NDArray[np.int64]  # talents whose skill is no longer the calibration's


@dataclass(frozen=True)
class _ByCategory:
    """The talent x category (and gender, age band) matrices a list weighs by the merchant's
    mix, transposed: (C, T), each category's row contiguous. A mix of k categories then reads
    k rows of T values, not every talent's C (at l, 200,000 talents x 20 categories: one
    product 1.8 -> 0.65 ms for a mix of three). 4 x T x C x 8 bytes more per features (at l
    130 MB, at m 13 MB), made on a features' first list."""

    audience: F64
    hidden_need: F64
    category: F64
    track: F64
    track_reference: F64  # the calibration's track records (MarketFeatures.calibration_track)
    track_known: NDArray[np.bool_]  # known GMV there: elsewhere the track is the category's mean
    gender: F64
    age: F64

    @staticmethod
    def of(f: MarketFeatures) -> _ByCategory:
        return _ByCategory(
            _kept(f.talent_audience, _transposed),
            _kept(f.talent_hidden_need, _transposed),
            _kept(f.talent_category, _transposed),
            _kept(f.talent_track, _transposed),
            _kept(f.calibration_track, _transposed),
            _kept(f.talent_track_known, _transposed_positive),
            _kept(f.talent_gender, _transposed),
            _kept(f.talent_age, _transposed),
        )


def _transposed(a: NDArray[Any]) -> NDArray[Any]:
    """``a.T`` as a read-only C-contiguous copy."""
    t = np.ascontiguousarray(a.T)
    t.setflags(write=False)
    return t


def _transposed_positive(a: F64) -> NDArray[np.bool_]:
    return _transposed(a > 0)


def few_columns_product(a: sp.csr_matrix, weights: F64) -> F64:
    """``a @ weights`` read from the columns ``weights`` names, not from every row.

    ``a`` is (rows, categories) with few categories named, e.g. the users' interest by
    category and a merchant's category mask: its by-column copy (CSC), made on the first
    call and kept while ``a`` lives, gives each named column's entries in one run. At l
    (10M users x 20 categories, 115M entries) ``a @ weights`` read all 115M: ~150 ms;
    this reads one category's ~6M per name: ~30 ms each. The copy is as large as ``a``
    (1.3 GiB at l) and takes ~2 s to make, once per ``a``.

    The sum is the same, bit for bit: each row's terms are added in ascending column order,
    from 0, as ``a @ weights`` adds them over a canonical ``a`` (sorted indices, no
    duplicates; a non-canonical ``a`` is multiplied as it is), and the terms of columns
    weighted 0 that it skips add only zeros there (``a``'s values finite).

    Parameters
    ----------
    a
        (R, C) matrix with finite values.
    weights
        (C,) weight of each column; the columns weighted 0 are not read.

    Returns
    -------
    ndarray
        (R,) ``a @ weights``.

    Examples
    --------
    >>> a = sp.csr_matrix(np.array([[0.5, 0.0, 0.25], [0.0, 1.0, 0.0]]))
    >>> few_columns_product(a, np.array([1.0, 0.0, 2.0])).tolist()
    [1.0, 0.0]
    """
    if not a.has_canonical_format:
        return np.asarray(a @ weights).ravel()
    named = np.flatnonzero(weights)
    columns = _kept(a, _by_column)
    return np.asarray(columns[:, named] @ weights[named], dtype=np.float64).ravel()


def _by_column(a: sp.csr_matrix) -> sp.csc_matrix:
    """``a`` as a CSC matrix whose arrays are read-only (kept, shared by every caller)."""
    columns = sp.csc_matrix(a)
    for x in (columns.data, columns.indices, columns.indptr):
        x.setflags(write=False)
    return columns


def _levels(a: F64) -> tuple[F64, NDArray[np.int64]]:
    """The distinct values of ``a``, ascending, and each entry's place among them."""
    levels, of = np.unique(a, return_inverse=True)
    return levels, of


#: What is derived from an object (a features, one of its arrays), by the object's ``id`` and
#: the deriving function, with a weak reference to the object that tells a live entry from a
#: dead one's id reused. Features after a write share the arrays the write did not change
#: (``dataclasses.replace``), so a new version's first list derives again only what changed: a
#: collaboration's version makes the track's transpose again, not the audience's (at l each
#: is ~25 ms and 32 MB). Features and their arrays are never changed in place. No lock: single
#: dict operations are atomic, and the reference's callback may run inside a garbage
#: collection at any allocation (a lock held there could deadlock).
_KEPT: dict[tuple[int, Callable[[Any], Any]], tuple[weakref.ref[Any], Any]] = {}

T = TypeVar("T")
K = TypeVar("K")


def _kept(obj: K, make: Callable[[K], T]) -> T:
    """``make(obj)``, kept while ``obj`` lives."""
    key = (id(obj), make)
    hit = _KEPT.get(key)
    if hit is not None and hit[0]() is obj:
        return hit[1]  # type: ignore[no-any-return]
    value = make(obj)

    # the dict bound here: at interpreter exit the module's globals may be None by the time a
    # dying object's callback runs
    def forget(
        ref: weakref.ref[Any],
        key: tuple[int, Callable[[Any], Any]] = key,
        kept: dict[Any, Any] = _KEPT,
    ) -> None:
        if kept.get(key, (None,))[0] is ref:  # (a newer entry popped here is made again)
            kept.pop(key, None)

    _KEPT[key] = (weakref.ref(obj, forget), value)
    return value


def _market_wide(f: MarketFeatures) -> _MarketWide:
    """``f``'s market-wide arrays, kept while ``f`` lives (ranking 5,000 merchants at m built
    them 5,000 times: a third of a list's time went to the demographics rule alone)."""
    return _kept(f, _market_wide_of)


def _market_wide_of(f: MarketFeatures) -> _MarketWide:
    followers = np.nan_to_num(f.talent_followers, nan=0.0)
    by = np.lexsort((f.talent_ids, -followers))
    tiebreak = np.empty(len(by), dtype=np.int64)
    tiebreak[by] = np.arange(len(by))
    wide = _MarketWide(
        merchant_prices(f),
        demographics_shown(np.diff(f.audience.indptr)),
        tiebreak,
        PartnerWalk.of(f.calibration_promotions),
        followers,
        _market_z(followers, f.talent_influence, f.talent_active_share),
        _ByCategory.of(f),
        *_kept(f.talent_price_level, _levels),
        bool(f.talent_track_n.any()),
        np.flatnonzero(f.talent_skill != f.calibration_skill),
    )
    # shared by every list of these features: read-only, so no caller can change another's
    for a in (wide.followers, *wide.market_z.values()):
        a.setflags(write=False)
    return wide


def _plural(n: int, key: str, lang: str) -> str:
    """``{key}_one`` for 0 or 1, else ``{key}_many`` (as evidence has always counted)."""
    return message(f"{key}_{'many' if n > 1 else 'one'}", lang, n=n)


def _band(p: float) -> str:
    """The catalogue key of :func:`~kolmatch.policy.percentile_band`'s words for ``p``."""
    return {
        "top 10%": "evidence.band.top10",
        "top 25%": "evidence.band.top25",
        "upper half": "evidence.band.upper",
        "lower half": "evidence.band.lower",
    }.get(percentile_band(p), "evidence.band.bottom25")


def _evidence(
    f: MarketFeatures,
    merchant: int,
    t: int,
    sig: Mapping[str, float],
    money: _Prices,
    lang: str = DEFAULT_LANG,
) -> list[str]:
    """What a match rests on, in the merchant's words and from what it may see (policy.py).

    Each line is a template of :data:`kolmatch.i18n.MESSAGES` in ``lang``.
    """

    def say(key: str, **values: object) -> str:
        return message(f"evidence.{key}", lang, **values)

    mix = f.merchant_mix[merchant]
    top = int(np.argmax(mix)) if len(mix) and mix.any() else -1
    cat = category_name(str(f.category_names[top]), lang) if top >= 0 else say("its_categories")
    size, eng = f.talent_audience_size[t], int(f.talent_audience_engaged[t])
    members = int(f.audience.indptr[t + 1] - f.audience.indptr[t])
    if not f.follows_observed:
        who = say("who_engaged", engaged=eng)
    elif f.engagement_observed:
        who = say("who_both", members=members, engaged=eng)
    else:
        who = say("who_followers", members=members)
    out: list[str] = []
    if size > 0:
        # the share of interest in the merchant's categories: a part of the whole, never above it
        share = float(f.talent_audience[t][mix > 0].sum())
        top_part = (
            say("interest_top", top_share=f.talent_audience[t, top], category=cat)
            if top >= 0
            else ""
        )
        out.append(say("interest", share=share, top=top_part, who=who))
        lean = int(sig["hidden_need_reach"])
        out.append(say("hidden_one" if lean == 1 else "hidden_many", n=lean, category=cat))
    else:
        out.append(say("no_audience"))
    n_customers = int(f.merchant_buyers.indptr[merchant + 1] - f.merchant_buyers.indptr[merchant])
    if n_customers:
        out.append(say("customers", reached=int(sig["customer_reach"]), customers=n_customers))
    if sig["customer_affinity"] > 0:
        out.append(say("affinity", times=sig["customer_affinity"]))
    elif f.users:
        out.append(say("no_customers"))
    if f.talent_category_source[t] == 1:
        out.append(say("content", share=float(f.talent_category[t][mix > 0].sum())))
    if sig["partner_affinity"] > 0:
        out.append(say("partners", times=sig["partner_affinity"]))
    if f.talent_category_source[t] == 2:
        out.append(say("categories_from_audience"))
    g, a = f.merchant_target_gender[merchant], f.merchant_target_age[merchant]
    if (g >= 0 or a >= 0) and size > 0:
        if money.demographics[t]:
            gender = say(f"gender.{GENDERS[g]}") if g >= 0 else ""
            age = AGE_BANDS[a] if a >= 0 else ""
            target = (
                say("target_gender_age", gender=gender, age=age)
                if g >= 0 and a >= 0
                else say("target_gender", gender=gender)
                if g >= 0
                else say("target_age", age=age)
            )
            out.append(say("target", share=sig["target_fit"], who=target))
        else:
            out.append(say("target_hidden", minimum=MIN_DEMOGRAPHIC_AUDIENCE))
    n = f.talent_track_n[t]
    if n.sum() > 0:
        mask = mix > 0
        k, nm = int(n[mask].sum()), int(f.talent_track_merchants[t][mask].sum())
        collabs = say(
            "collabs_with",
            collaborations=_plural(k, "evidence.collabs", lang),
            merchants=_plural(nm, "evidence.merchants", lang),
        )
        if k and f.gmv_rate <= 0:
            out.append(say("collabs_unmeasured", collabs=collabs))
        elif k:
            # a percentile, not yuan: other merchants' GMV is theirs (policy.py)
            p = sig["track_record"]
            out.append(
                say("collabs_track", collabs=collabs, band=message(_band(p), lang), percentile=p)
            )
        else:
            out.append(_plural(int(n.sum()), "evidence.past", lang))
    else:
        out.append(say("no_track" if _market_wide(f).any_track else "no_collabs_market"))
    price = float(money.price[t])
    quoted = say(
        "price_estimated" if money.estimated[t] else "price_list", price=_yuan(price, lang)
    )
    if f.gmv_rate <= 0:
        out.append(say("gmv_unmeasured", quoted=quoted))
    else:
        out.append(
            say(
                "gmv",
                gmv=_yuan(sig["expected_gmv"], lang),
                quoted=quoted,
                commission=money.commission,
                roi=sig["roi"],
            )
        )
    if np.isfinite(money.budget) and price > money.budget:
        out.append(say("over_budget", budget=_yuan(money.budget, lang)))
    if not f.engagement_observed and size > 0:
        out.append(say("no_engagement"))
    elif sig["audience_quality"] < 0.4:
        out.append(say("low_quality", share=sig["audience_quality"]))
    # violation notes are recorded in English (kolmatch/matching/features.py)
    notes = f.talent_risk_notes[t]
    out.append("; ".join(notes) if notes else say("no_violations"))
    return out


def _matches(
    f: MarketFeatures,
    merchant: int,
    rows: NDArray[np.int64],
    scores: F64,
    signals: list[dict[str, float]],
    money: _Prices,
    extra: list[list[str]] | None = None,
    lang: str = DEFAULT_LANG,
    *,
    evidence: bool = True,
) -> list[Match]:
    """Match objects for ranked talent rows: one construction for both ranking paths."""
    ties = [int((scores == scores[r]).sum()) - 1 for r in range(len(rows))]
    return [
        Match(
            talent=str(f.talent_ids[t]),
            rank=r + 1,
            score=round(float(scores[r]), 4),
            breakdown={k: round(float(v), 4) for k, v in signals[r].items()},
            evidence=_evidence(f, merchant, int(t), signals[r], money, lang)
            + (extra[r] if extra else [])
            + ([_plural(ties[r], "evidence.tied", lang)] if ties[r] else [])
            if evidence
            else [],
            price=round(float(money.price[t]), 2),
            price_estimated=bool(money.estimated[t]),
            affordable=None
            if not np.isfinite(money.budget)
            else bool(money.price[t] <= money.budget),
        )
        for r, t in enumerate(rows)
    ]


def tiebreak_places(f: MarketFeatures) -> NDArray[np.int64]:
    """Each talent's place by most platform followers (unknown: 0), then id: the order of
    equal scores (:func:`ranking_order`), made once per ``f`` and shared; not to be changed.

    Parameters
    ----------
    f
        Market features.

    Returns
    -------
    ndarray
        (T,) ``tiebreak_places(f)[t]`` is talent ``t``'s place, 0 first.
    """
    return _market_wide(f).tiebreak


def ranking_order(f: MarketFeatures, score: F64) -> NDArray[np.int64]:
    """Talent rows by score, best first; equal scores by follower count, then id; finite only."""
    order = np.lexsort((_market_wide(f).tiebreak, -score))
    return order[np.isfinite(score[order])]


def top_order(f: MarketFeatures, score: F64, depth: int) -> tuple[NDArray[np.int64], int]:
    """``ranking_order(f, score)[:depth]`` and how many scores are finite, without sorting
    past the top: a partition finds the ``depth``-th best score, and only the talents at or
    above it (ties included) are sorted.
    """
    finite = np.isfinite(score)
    n = int(finite.sum())
    if n <= depth:
        return ranking_order(f, score), n
    neg = np.where(finite, -score, np.inf)
    kth = np.partition(neg, depth - 1)[depth - 1]
    cand = np.flatnonzero(neg <= kth)
    tiebreak = _market_wide(f).tiebreak
    return cand[np.lexsort((tiebreak[cand], neg[cand]))][:depth], n


@dataclass(frozen=True)
class MerchantRankings:
    """Every merchant's default-weight ranking, computed once per graph version.

    A match list with default weights and no campaign is then a lookup plus the evidence of
    its page; :func:`match_merchant` returns exactly the same matches either way (tested).
    """

    depth: int
    rows: NDArray[np.int64]  # (M, depth) talent rows, best first; -1 past the eligible ones
    scores: F64  # (M, depth)
    signals: F64  # (M, depth, len(SIGNALS)) unrounded signal values
    eligible: NDArray[np.int64]  # (M,) talents with a finite score
    bases: F64  # (M, depth) the scores before risk (see _combined)
    # (M,) leading entries known to be the merchant's ranking: min(depth, eligible) after a
    # ranking; fewer once rankings_after_risk dropped talents whose place is past the list
    valid: NDArray[np.int64]
    # (M, len(STANDARDISED), 2) the (mean, sd) each standardised signal took: what a patch
    # after a collaboration scores its talent with (rankings_after_collaboration)
    moments: F64

    def list_of(self, m: int) -> tuple[NDArray[np.int64], F64, F64, int, int]:
        """Merchant ``m``'s list: (rows, scores, signals) of its exact entries, how many there
        are (``valid``) and how many talents it may list (``eligible``)."""
        v = int(self.valid[m])
        return self.rows[m, :v], self.scores[m, :v], self.signals[m, :v], v, int(self.eligible[m])


#: Largest weight a signal may be given (signals are z-scores: a larger one only overflows).
MAX_WEIGHT = 1e6

#: Signal names in the order of :attr:`MerchantRankings.signals`' last axis.
SIGNALS = tuple(DEFAULT_WEIGHTS)


def rank_into(
    f: MarketFeatures,
    m: int,
    rows: NDArray[np.int64],
    scores: F64,
    signals: F64,
    eligible: NDArray[np.int64],
    at: int,
    bases: F64,
    moments: F64,
) -> None:
    """Merchant ``m``'s default ranking written into one row of :class:`MerchantRankings`'s
    arrays (``rows``, ``scores``, ``bases``: (depth,), ``signals``: (depth, K), ``moments``:
    (len(STANDARDISED), 2); ``eligible[at]``): the per-merchant arithmetic of
    :func:`rank_merchants` and of the partitioned batch
    (kolmatch/matching/ranking_partition.py)."""
    s = merchant_signals(f, m)
    base, score = _combined(s, DEFAULT_WEIGHTS, moments)
    order, eligible[at] = top_order(f, score, len(rows))
    rows[: len(order)] = order
    scores[: len(order)] = score[order]
    bases[: len(order)] = base[order]
    sig = s.as_dict()
    signals[: len(order)] = np.stack([sig[k][order] for k in SIGNALS], axis=1)


def rank_merchants(
    f: MarketFeatures, *, depth: int = 200, cancel: Cancel | None = None
) -> MerchantRankings:
    """Each merchant's top ``depth`` talents by the default score (threads over merchants).

    Parameters
    ----------
    f
        Market features.
    depth
        How many talents to keep per merchant.
    cancel
        Checked before each merchant: a serving process stops ranking a version it no longer
        serves.

    Raises
    ------
    Cancelled
        If ``cancel`` was set.
    """
    from concurrent.futures import ThreadPoolExecutor

    M, K = len(f.merchant_ids), len(SIGNALS)
    rows = np.full((M, depth), -1, dtype=np.int64)
    scores = np.full((M, depth), -np.inf)
    signals = np.zeros((M, depth, K))
    eligible = np.zeros(M, dtype=np.int64)
    bases = np.full((M, depth), -np.inf)
    moments = np.zeros((M, len(STANDARDISED), 2))

    def one(m: int) -> None:
        check_cancel(cancel)
        rank_into(f, m, rows[m], scores[m], signals[m], eligible, m, bases[m], moments[m])
        shown.advance()

    with (
        progress.task(f"ranking {M:,} merchants", M, unit="merchants") as shown,
        ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool,
    ):
        list(pool.map(one, range(M), chunksize=16))
    return MerchantRankings(
        depth, rows, scores, signals, eligible, bases, np.minimum(eligible, depth), moments
    )


#: Patched lists (:func:`rankings_after_risk`) are ranked again, in the background, once a
#: merchant's exact entries fall below this share of what a fresh ranking holds: past them its
#: match lists are ranked live, per request.
RERANK_BELOW_SHARE = 0.5


def rankings_worn(r: MerchantRankings, share: float = RERANK_BELOW_SHARE) -> bool:
    """Whether some merchant's list holds fewer exact entries than ``share`` of a fresh one's.

    Examples
    --------
    >>> from dataclasses import replace
    >>> z = np.zeros((2, 4))
    >>> r = MerchantRankings(4, z.astype(int), z, z[..., None], np.array([9, 3]), z,
    ...                      np.array([4, 3]), z[..., None])
    >>> rankings_worn(r), rankings_worn(replace(r, valid=np.array([1, 3])))
    (False, True)
    """
    full = np.minimum(r.eligible, r.depth)
    return bool((r.valid < share * full).any())


def rankings_after_risk(
    r: MerchantRankings, before: MarketFeatures, after: MarketFeatures
) -> MerchantRankings | None:
    """``r``, the rankings of ``before``, as rankings of ``after`` when all that changed is some
    talents' risk rising (a violation flagged); None when anything else moved.

    Risk enters a score last and unstandardised (``base - w_risk * risk``), so a talent whose
    risk rose scores ``base - w_risk * new`` with the base its list entry kept, to the bit, and
    no other talent's score moves. A merchant's list is re-sorted; a talent now excluded, or
    now below the list's last entry (its place is past the list, among talents not kept), is
    dropped, and :attr:`MerchantRankings.valid` counts what is left, the exact top of the
    merchant's ranking (:func:`match_merchant` ranks live past it). Merchants whose list holds
    no such talent keep theirs. Cost: array passes over the (M, depth) rows and the lists that
    hold a changed talent (what did not move is not sorted again): 0.2-0.6 s at m for a talent
    in every list, against a ranking of every merchant (minutes at m).

    Parameters
    ----------
    r
        Rankings of ``before`` (:func:`rank_merchants`).
    before, after
        Features of two graph versions that differ only in compliance
        (:func:`~kolmatch.matching.features.refresh_risk`).

    Returns
    -------
    MerchantRankings or None
        None if a talent's risk fell, its active share changed (a standardised signal: every
        score of a merchant moves), or the talents differ: rank anew.
    """
    if not np.array_equal(before.talent_ids, after.talent_ids):
        return None
    if not np.array_equal(before.talent_active_share, after.talent_active_share, equal_nan=True):
        return None
    old, new = before.talent_risk, after.talent_risk
    if (new < old).any() or np.isnan(new).any():
        return None
    changed = np.nonzero(new != old)[0]
    if not len(changed):
        return r
    w, k_risk = DEFAULT_WEIGHTS["risk"], SIGNALS.index("risk")
    newly_out = int(((old < 1.0) & (new >= 1.0)).sum())
    rows, scores, bases, signals = r.rows.copy(), r.scores.copy(), r.bases.copy(), r.signals.copy()
    valid = r.valid.copy()
    eligible = np.maximum(r.eligible - newly_out, 0)
    followers = np.nan_to_num(after.talent_followers, nan=0.0)
    ids = after.talent_ids
    hit = np.nonzero(np.isin(r.rows, changed).any(axis=1))[0]  # lists holding such a talent
    if len(hit):
        h, depth = len(hit), r.depth
        id_rank = np.empty(len(ids), dtype=np.int64)
        id_rank[np.argsort(ids, kind="stable")] = np.arange(len(ids))
        ent, sc, bs, sg = rows[hit], scores[hit], bases[hit], signals[hit]
        n = valid[hit]
        listed = np.arange(depth)[None, :] < n[:, None]
        t = np.maximum(ent, 0)
        mine = listed & np.isin(ent, changed)
        out = mine & (new[t] >= 1.0)  # excluded
        moved = mine & ~out
        sc = np.where(moved, bs - w * new[t], sc)
        sg[..., k_risk] = np.where(moved, new[t], sg[..., k_risk])
        # the last entry's key before the change: a talent now ranked after it may have been
        # overtaken by one past the list, unless the list held every eligible talent
        last = t[np.arange(h), np.maximum(n - 1, 0)][:, None]
        ls, lf, lr = (
            scores[hit][np.arange(h), np.maximum(n - 1, 0)][:, None],
            followers[last],
            id_rank[last],
        )
        fol, idr = followers[t], id_rank[t]
        after_last = (sc < ls) | ((sc == ls) & ((fol < lf) | ((fol == lf) & (idr > lr))))
        past = moved & ~(n >= r.eligible[hit])[:, None] & after_last
        keep = listed & ~out & ~past
        # Each list re-sorted by (score, followers, id), the dropped after the kept, without
        # sorting what did not move: the kept entries that did not move stay in order; a moved
        # one goes before the first of them it now beats (ties among moved by their own keys).
        still = keep & ~moved
        rank_still = np.cumsum(still, axis=1) - 1  # place among the unmoved kept
        went = np.nonzero(keep & moved)  # (line, position) of the moved kept entries
        key = np.where(still, rank_still * (depth + 2) + depth + 1, np.iinfo(np.int64).max)
        if len(went[0]):
            li, pj = went
            s_, f_, i_ = sc[li, pj][:, None], fol[li, pj][:, None], idr[li, pj][:, None]
            s_u, f_u, i_u = sc[li], fol[li], idr[li]
            beaten = still[li] & (
                (s_u > s_) | ((s_u == s_) & ((f_u > f_) | ((f_u == f_) & (i_u < i_))))
            )
            gap = beaten.sum(axis=1)  # unmoved kept entries ahead of it
            among = np.lexsort((i_[:, 0], -f_[:, 0], -s_[:, 0], gap, li))
            nth = np.empty(len(li), dtype=np.int64)  # order among the moved in the same gap
            first = np.r_[
                True, (li[among][1:] != li[among][:-1]) | (gap[among][1:] != gap[among][:-1])
            ]
            starts = np.maximum.accumulate(np.where(first, np.arange(len(li)), 0))
            nth[among] = np.arange(len(li)) - starts
            key[li, pj] = gap * (depth + 2) + nth
        order = np.argsort(key, axis=1, kind="stable")
        k = keep.sum(axis=1)
        tail = np.arange(depth)[None, :] >= k[:, None]
        rows[hit] = np.where(tail, -1, np.take_along_axis(ent, order, axis=1))
        scores[hit] = np.where(tail, -np.inf, np.take_along_axis(sc, order, axis=1))
        bases[hit] = np.where(tail, -np.inf, np.take_along_axis(bs, order, axis=1))
        sg = np.take_along_axis(sg, order[..., None], axis=1)
        sg[tail] = 0.0
        signals[hit] = sg
        valid[hit] = k
    return MerchantRankings(
        r.depth, rows, scores, signals, eligible, bases, np.minimum(valid, eligible), r.moments
    )


#: Past this many talents moved, :func:`rankings_after_collaboration` gives up: a ranking of
#: every merchant costs less than patching each list for each of them.
PATCH_TALENTS_MAX = 32

#: Past this many talents moved, :class:`PatchedRankings` declines (lists are ranked live):
#: at m a list patched for 506 talents took 2.6 ms, one ranked live 4.1 ms (no evidence).
PATCHED_LISTS_MAX = 512


def rankings_after_collaboration(
    r: MerchantRankings,
    before: MarketFeatures,
    after: MarketFeatures,
    *,
    cancel: Cancel | None = None,
) -> MerchantRankings | None:
    """``r``, the rankings of ``before``, as rankings of ``after`` when what changed between
    them is talents' own records: collaborations recorded
    (:func:`~kolmatch.matching.incremental.apply_collaboration`, under one calibration) and
    violations that moved risk alone; None when anything else moved.

    Scores are measured against the calibration (:func:`merchant_signals`), so a recorded
    collaboration moves its talent's scores alone: each merchant's list has the talent's
    entry taken out and the talent put back where its new score places it, if that is
    within the list (scored with the moments the list was ranked with,
    :attr:`MerchantRankings.moments`: the same bits as a ranking of ``after``). A talent now
    placed past the list's last entry is left out, and :attr:`MerchantRankings.valid`
    counts the exact top that is left, as :func:`rankings_after_risk` does. Cost: the moved
    talents' signals for each merchant (:func:`merchant_signals` with ``rows``), against
    every talent's in a ranking.

    Parameters
    ----------
    r
        Rankings of ``before``.
    before, after
        Features of two graph versions.
    cancel
        Checked before each merchant.

    Returns
    -------
    MerchantRankings or None
        None if the talents, merchants or calibration differ, a talent's own market-wide
        signal (followers, influence, active share) moved, or more than
        :data:`PATCH_TALENTS_MAX` talents moved: rank anew.

    Raises
    ------
    Cancelled
        If ``cancel`` was set.
    """
    patch = _Patch.of(r, before, after, PATCH_TALENTS_MAX)
    if patch is None:
        return None
    if not len(patch.moved):
        return r
    depth, M, k, K = r.depth, len(after.merchant_ids), len(patch.moved), len(SIGNALS)
    # the moved talents' scores for every merchant (what costs: their signals, list by list)
    new_score, new_base = np.empty((M, k)), np.empty((M, k))
    new_signals = np.empty((M, k, K))

    def one(m: int) -> None:
        check_cancel(cancel)
        new_base[m], new_score[m], new_signals[m] = patch.scores_of(m)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # as rank_merchants
        list(pool.map(one, range(M), chunksize=16))
    # the lists that change: those holding a moved talent, and those one now enters
    every = np.arange(M)
    held, come = patch.changes(every, new_score)
    rows, scores, bases, signals = r.rows.copy(), r.scores.copy(), r.bases.copy(), r.signals.copy()
    valid = r.valid.copy()
    for m in np.flatnonzero(held | come.any(axis=1)).tolist():
        out = patch.merged(m, new_base[m], new_score[m], new_signals[m], come[m])
        rows[m], scores[m], bases[m], signals[m] = -1, -np.inf, -np.inf, 0.0
        j = len(out[0])
        rows[m, :j], scores[m, :j], bases[m, :j], signals[m, :j] = out
        valid[m] = j
    return MerchantRankings(
        depth,
        rows,
        scores,
        signals,
        patch.eligible,
        bases,
        np.minimum(valid, patch.eligible),
        r.moments,
    )


@dataclass(frozen=True)
class _Patch:
    """Rankings ``r`` of ``before`` and what a patch to ``after`` needs: the talents that
    moved (:func:`collaborations_moved`), each merchant's moments, the order of ties."""

    r: MerchantRankings
    after: MarketFeatures
    moved: NDArray[np.int64]
    eligible: NDArray[np.int64]  # (M,) after

    @cached_property
    def tiebreak(self) -> NDArray[np.int64]:
        """The order of equal scores (made on ``after``'s first list, not in the write that
        made the patch)."""
        return _market_wide(self.after).tiebreak

    @staticmethod
    def of(
        r: MerchantRankings, before: MarketFeatures, after: MarketFeatures, most: int
    ) -> _Patch | None:
        moved = collaborations_moved(before, after)
        if moved is None or len(moved) > most:
            return None
        was_in = int((before.talent_risk[moved] < 1.0).sum())
        now_in = int((after.talent_risk[moved] < 1.0).sum())
        return _Patch(r, after, moved, r.eligible + now_in - was_in)

    def scores_of(self, m: int) -> tuple[F64, F64, F64]:
        """The moved talents' (bases, scores, signals) for merchant ``m``, as a ranking has
        them: the same bits."""
        moments = self.r.moments[m].tolist()
        known = {name: (mean, sd) for name, (mean, sd) in zip(STANDARDISED, moments, strict=True)}
        sig = merchant_signals(self.after, m, rows=self.moved, moments=known)
        base, score = _combined(sig, DEFAULT_WEIGHTS)
        values = sig.as_dict()
        return base, score, np.stack([values[name] for name in SIGNALS], axis=1)

    def changes(
        self, merchants: NDArray[np.int64], new_score: F64
    ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """For these merchants (rows of ``new_score``): whether their list holds a moved
        talent, and which moved talents it now takes in (ahead of its last entry, past which
        the talents not listed rank; any, in a list holding every eligible talent)."""
        r, depth = self.r, self.r.depth
        n = r.valid[merchants]
        ent = r.rows[merchants]
        listed = np.isin(ent, self.moved) & (np.arange(depth)[None, :] < n[:, None])
        held: NDArray[np.bool_] = np.asarray(listed.any(axis=1), dtype=bool)
        at = np.maximum(n - 1, 0)
        last = np.arange(len(merchants))
        last_score = np.where(n > 0, r.scores[merchants, at], np.inf)[:, None]
        last_place = np.where(n > 0, self.tiebreak[np.maximum(ent[last, at], 0)], -1)[:, None]
        place = self.tiebreak[self.moved][None, :]
        come = np.isfinite(new_score) & (
            (n >= r.eligible[merchants])[:, None]
            | (new_score > last_score)
            | ((new_score == last_score) & (place <= last_place))  # (<=: the last entry itself)
        )
        return held, come

    def merged(
        self, m: int, base: F64, score: F64, signals: F64, come: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int64], F64, F64, F64]:
        """Merchant ``m``'s exact list after the patch: (rows, scores, bases, signals)."""
        r, n = self.r, int(self.r.valid[m])
        ent = r.rows[m, :n]
        stay = ~np.isin(ent, self.moved)
        ids = np.concatenate([ent[stay], self.moved[come]])
        sc = np.concatenate([r.scores[m, :n][stay], score[come]])
        order = np.lexsort((self.tiebreak[ids], -sc))[: r.depth]
        b = np.concatenate([r.bases[m, :n][stay], base[come]])
        sg = np.concatenate([r.signals[m, :n][stay], signals[come]])
        return ids[order], sc[order], b[order], sg[order]


class PatchedRankings:
    """Rankings of ``before`` read as rankings of ``after``, each merchant's list patched when
    first asked for (:func:`rankings_after_collaboration`'s arithmetic, one merchant at a
    time: ~1 ms at m, against ~11 ms for a list ranked live): what a serving process reads
    between a collaboration and its patched rankings. Only :meth:`list_of` and ``depth``.
    Thread-safe: a list asked for twice at once is patched twice, alike.
    """

    def __init__(self, patch: _Patch) -> None:
        self.depth = patch.r.depth
        self._patch = patch
        self._lists: dict[int, tuple[NDArray[np.int64], F64, F64, int, int]] = {}

    @staticmethod
    def of(
        r: MerchantRankings, before: MarketFeatures, after: MarketFeatures
    ) -> PatchedRankings | None:
        """None where :func:`rankings_after_collaboration` would decline (here: past
        :data:`PATCHED_LISTS_MAX` talents moved)."""
        patch = _Patch.of(r, before, after, PATCHED_LISTS_MAX)
        return None if patch is None else PatchedRankings(patch)

    def list_of(self, m: int) -> tuple[NDArray[np.int64], F64, F64, int, int]:
        """As :meth:`MerchantRankings.list_of`."""
        hit = self._lists.get(m)
        if hit is not None:
            return hit
        p = self._patch
        rows, scores, signals, valid, _ = p.r.list_of(m)  # as it was, unless a talent moved in it
        if len(p.moved):
            base, score, moved_signals = p.scores_of(m)
            held, come = p.changes(np.array([m]), score[None, :])
            if held[0] or come[0].any():
                rows, scores, _, signals = p.merged(m, base, score, moved_signals, come[0])
                valid = len(rows)
        eligible = int(p.eligible[m])
        out = (rows, scores, signals, min(valid, eligible), eligible)
        self._lists[m] = out
        return out


#: What :func:`merchant_signals` reads that only a talent's own record (skill, track record,
#: risk) may leave changed for :func:`rankings_after_collaboration` to patch: ids, the
#: calibration, each talent's market-wide signals and audience, the merchants' side.
_SCORED_AS_BEFORE = (
    "talent_ids",
    "merchant_ids",
    "category_gmv_mean",
    "calibration_skill",
    "calibration_track",
    "calibration_promotions",
    "talent_followers",
    "talent_influence",
    "talent_active_share",
    "talent_fee",
    "talent_list_price",
    "talent_audience",
    "talent_audience_size",
    "talent_price_level",
    "talent_hidden_need",
    "talent_category",
    "talent_gender",
    "talent_age",
    "category_ppr_tail",
    "audience",
    "audience_by_user",
    "merchant_mix",
    "merchant_products",
    "merchant_buyers",
    "merchant_commission",
    "merchant_target_gender",
    "merchant_target_age",
    "product_price",
    "product_categories",
)


def collaborations_moved(before: MarketFeatures, after: MarketFeatures) -> NDArray[np.int64] | None:
    """The talents whose scores may differ between ``before`` and ``after``, two features
    under one calibration that collaborations recorded set apart (their skill, track record
    or risk moved); None where something else a score reads differs (the talents, the
    merchants, the calibration, a talent's followers, influence or active share).
    """

    def same(a: Any, b: Any) -> bool:  # the same object (a write shares what it leaves)
        if a is b:
            return True
        if sp.issparse(a) or sp.issparse(b):
            return bool(
                sp.issparse(a)
                and sp.issparse(b)
                and a.shape == b.shape
                and a.nnz == b.nnz
                and (a != b).nnz == 0
            )
        if isinstance(a, list):
            return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
        return bool(np.array_equal(a, b, equal_nan=True))

    if not (
        before.gmv_rate == after.gmv_rate
        and all(same(getattr(before, k), getattr(after, k)) for k in _SCORED_AS_BEFORE)
    ):
        return None
    changed = (
        (before.talent_skill != after.talent_skill)
        | (before.talent_track != after.talent_track).any(axis=1)
        | (before.talent_risk != after.talent_risk)
    )
    return np.flatnonzero(changed)


def _check_budget(budget: float | None) -> None:
    if budget is not None and (not np.isfinite(budget) or budget <= 0):
        raise BadArgument("budget", f"must be a positive amount of yuan, got {budget}")


@dataclass(frozen=True)
class _Ranked:
    """One merchant's full ranking under the list's arguments, before the top cut."""

    signals: MerchantSignals
    score: F64  # -inf where left out (compliance, availability, budget)
    order: NDArray[np.int64]  # eligible rows, best first
    av: Availability | None
    money: _Prices


def _rank(
    f: MarketFeatures,
    i: int,
    weights: Mapping[str, float] | None,
    campaign: str | None,
    budget: float | None,
    top: int | None = None,
) -> _Ranked:
    """``top``: only the first ``top`` of ``order`` are sorted (a match list's; why-not needs
    every eligible talent's place)."""
    s = merchant_signals(f, i)
    score = combine(s, weights)
    av = None
    if campaign is not None:
        av = availability(f, i, planning_window(f, campaign, i))
        score = np.where(av.available, score, -np.inf)
    money = _prices(f, i, budget)
    if budget is not None:
        score = np.where(money.price <= budget, score, -np.inf)
    order = ranking_order(f, score) if top is None else top_order(f, score, top)[0]
    return _Ranked(s, score, order, av, money)


def match_merchant(
    f: MarketFeatures,
    merchant_id: str,
    *,
    top: int = 20,
    weights: Mapping[str, float] | None = None,
    campaign: str | None = None,
    budget: float | None = None,
    rankings: MerchantRankings | PatchedRankings | None = None,
    lang: str = DEFAULT_LANG,
    evidence: bool = True,
) -> list[Match]:
    """Rank talents for one merchant, or for one of its campaigns.

    Every number and line of a match is one the merchant may see (kolmatch/policy.py): the
    price is the talent's list price (or its estimate), ROI is net of the merchant's own
    commission, the track record is a percentile.

    Parameters
    ----------
    f
        Market features (:func:`kolmatch.matching.features.build_features`).
    merchant_id
        The merchant's id.
    top
        How many matches to return.
    weights
        Overrides of :data:`DEFAULT_WEIGHTS`.
    campaign
        A campaign the merchant joined: talents not available in its window (no free slot,
        or exclusive to one of the merchant's competitors there) are left out; each match
        says it is available (not how many slots, nor who booked the others).
    budget
        Yuan for one talent's price: talents priced above it are left out. Default: none are
        left out, and each match is marked ``affordable`` against the merchant's own budget
        (None where it states none).
    rankings
        Precomputed default rankings (:func:`rank_merchants`): used when no weights, campaign
        or budget are given and ``top`` is within the entries known to be the merchant's
        (:attr:`MerchantRankings.valid`); the result is the same.
    lang
        The evidence's language, one of :data:`kolmatch.i18n.LANGS`; nothing else depends
        on it.
    evidence
        False: the matches carry no evidence lines (an API query that selects none; about
        half a ranked list's time at m), everything else the same.

    Raises
    ------
    UnknownId
        If the merchant or the campaign is not in the graph.
    BadArgument
        If the merchant has not joined the campaign, or the budget is not a positive amount.
    ValueError
        If ``top`` is not positive or a weight names no signal.
    """
    require_merchant(f, merchant_id)  # excluded for compliance: NotEligible, not a list
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    _check_budget(budget)
    i = f.merchant_row(merchant_id)
    listed = (
        rankings.list_of(i)
        if rankings is not None
        and not weights
        and campaign is None
        and budget is None
        and top <= rankings.depth
        else None
    )
    if listed is not None and (top <= listed[3] or listed[3] >= listed[4]):
        rows, scores, signals, _, eligible = listed
        n = min(top, eligible)
        sig = [dict(zip(SIGNALS, signals[r].tolist(), strict=True)) for r in range(n)]
        money = _prices(f, i, None)
        return _matches(f, i, rows[:n], scores[:n], sig, money, lang=lang, evidence=evidence)
    ranked = _rank(f, i, weights, campaign, budget, top)
    order = ranked.order
    values = ranked.signals.as_dict()
    sig = [{k: float(v[t]) for k, v in values.items()} for t in order]
    av = ranked.av
    extra = (
        [[message("evidence.available", lang, window=av.window.name)] for _ in order]
        if av is not None
        else None
    )
    return _matches(
        f, i, order, ranked.score[order], sig, ranked.money, extra, lang, evidence=evidence
    )


#: Why a talent is or is not in a merchant's list, in the order they are checked.
WHY_REASONS = ("compliance", "booked", "unaffordable", "below the cut", "listed")


@dataclass(frozen=True)
class WhyNot:
    """Why a talent is (or is not) in a merchant's list, with the figure.

    ``reason`` is one of :data:`WHY_REASONS`; ``rank`` and ``score`` are the talent's place in
    the full ranking (None where it is left out before ranking), ``cut_rank`` and
    ``cut_score`` those of the list's last entry.
    """

    merchant: str
    talent: str
    reason: str
    detail: str
    rank: int | None
    score: float | None
    cut_rank: int | None
    cut_score: float | None
    eligible: int  # talents in the full ranking
    price: float
    price_estimated: bool


def why_not(
    f: MarketFeatures,
    merchant_id: str,
    talent_id: str,
    *,
    top: int = 20,
    weights: Mapping[str, float] | None = None,
    campaign: str | None = None,
    budget: float | None = None,
    lang: str = DEFAULT_LANG,
) -> WhyNot:
    """Why talent ``talent_id`` is or is not in the merchant's list of ``top``.

    The same ranking as :func:`match_merchant` with the same arguments; the first reason that
    applies: excluded for compliance (its public flags), not available in the campaign's
    window ("booked"), priced above ``budget`` ("unaffordable"), ranked below the list's last
    entry ("below the cut", with both ranks and scores), else "listed".

    Parameters
    ----------
    f, merchant_id, top, weights, campaign, budget
        As :func:`match_merchant`.
    talent_id
        The talent asked about.
    lang
        The language of ``detail``, one of :data:`kolmatch.i18n.LANGS` (``reason`` is a code
        of :data:`WHY_REASONS` in any language).

    Raises
    ------
    UnknownId
        If the merchant, talent or campaign is not in the graph.
    NotEligible
        If the merchant is excluded for compliance.
    BadArgument
        As :func:`match_merchant`.
    ValueError
        If ``top`` is not positive or a weight names no signal.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    _check_budget(budget)
    require_merchant(f, merchant_id)  # a merchant excluded for compliance has no list
    i = f.merchant_row(merchant_id)
    t = f.talent_row(talent_id)
    r = _rank(f, i, weights, campaign, budget)
    price, est = float(r.money.price[t]), bool(r.money.estimated[t])
    listed = r.order[:top]
    cut_rank = len(listed) if len(listed) else None
    cut_score = round(float(r.score[listed[-1]]), 4) if len(listed) else None

    def answer(reason: str, detail: str, rank: int | None = None) -> WhyNot:
        return WhyNot(
            merchant_id,
            talent_id,
            reason,
            detail,
            rank,
            None if rank is None else round(float(r.score[t]), 4),
            cut_rank,
            cut_score,
            len(r.order),
            round(price, 2),
            est,
        )

    def say(key: str, **values: object) -> str:
        return message(f"why.{key}", lang, talent=talent_id, **values)

    if r.signals.excluded[t]:
        # violation notes are recorded in English (kolmatch/matching/features.py)
        notes = "; ".join(f.talent_risk_notes[t]) or message("why.violations", lang)
        return answer("compliance", say("compliance", notes=notes))
    if r.av is not None and not r.av.available[t]:
        return answer("booked", say("booked", window=r.av.window.name))
    quoted = message(
        "why.quoted_estimated" if est else "why.quoted_list", lang, price=_yuan(price, lang)
    )
    if budget is not None and price > budget:
        return answer(
            "unaffordable", say("unaffordable", quoted=quoted, budget=_yuan(budget, lang))
        )
    at = np.nonzero(r.order == t)[0]
    if len(at) == 0:  # weights so large the score is not finite: it is not ranked at all
        return answer("below the cut", say("not_finite"))
    rank = int(at[0]) + 1
    mine = message("why.ranked", lang, rank=rank, eligible=len(r.order), score=float(r.score[t]))
    if rank > top:
        return answer(
            "below the cut",
            say("below_cut", ranked=mine, top=top, cut_rank=cut_rank, cut_score=cut_score),
            rank,
        )
    over = (
        message("why.over_budget", lang, quoted=quoted, budget=_yuan(r.money.budget, lang))
        if np.isfinite(r.money.budget) and price > r.money.budget
        else ""
    )
    return answer("listed", say("listed", ranked=mine, over=over), rank)
