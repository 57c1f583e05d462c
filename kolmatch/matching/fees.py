"""Talent prices: the list price merchants see (else an estimate from the market's own quotes).

A talent's negotiated ``fee`` is private (docs/api.md, "Policy"); what a merchant sees, in match
lists, affordability and plans, is its public ``list_price``, or where it quotes none an
estimate from the other list prices per follower (:func:`merchant_prices`). Estimates never
use negotiated fees: the median fee per follower is one talent's own ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kolmatch.matching.features import MarketFeatures

__all__ = [
    "DEFAULT_FEE_PER_FOLLOWER",
    "FEE_RULE_DEFAULT",
    "FEE_RULE_MEDIAN",
    "MIN_ESTIMATED_FEE",
    "TalentFees",
    "merchant_prices",
    "talent_fees",
]

F64 = NDArray[np.float64]

#: Yuan per platform follower when the market records no fee at all (e.g. public Twitch
#: follows). It is the generated market's own fee model (``fee = 0.1 x followers``,
#: kolmatch/loaders/synthetic.py), so such a market is priced like the generated ones and a
#: plan can be built at all; it is an order of magnitude, not a quote: load ``fee`` in
#: talent.csv for real prices.
DEFAULT_FEE_PER_FOLLOWER = 0.1
#: No estimate is below this when the market records no fee (the generated market's floor);
#: with fees on record, the floor is the cheapest of them.
MIN_ESTIMATED_FEE = 500.0
# How estimates were made (``TalentFees.rule``, English; kolmatch/cli.py writes it in the
# reader's language): ``quote`` is what the prices are ("fee", "list price").
FEE_RULE_MEDIAN = (
    "¥{rate:.4g} per platform follower: the median {quote} per follower of the {n:,} talents "
    "with a {quote} on record (at least ¥{floor:,.0f}, the cheapest {quote} on record)"
)
FEE_RULE_DEFAULT = (
    "¥{rate:g} per platform follower (DEFAULT_FEE_PER_FOLLOWER, the generated market's fee "
    "model; at least ¥{floor:,.0f}): no {quote} is on record in this market"
)


@dataclass(frozen=True)
class TalentFees:
    """Each talent's fee for planning and whether it is an estimate.

    Attributes
    ----------
    fee
        (T,) yuan per collaboration: the fee on record, else the estimate.
    estimated
        (T,) True where ``fee`` is an estimate.
    per_follower
        Yuan per platform follower the estimates use.
    rule
        One line saying how the estimates were made ("" when none was needed).
    """

    fee: F64
    estimated: NDArray[np.bool_]
    per_follower: float
    rule: str


def talent_fees(fee: F64, followers: F64, audience_size: F64, *, quote: str = "fee") -> TalentFees:
    """The fee on record where there is one (finite, > 0), else an estimate by audience size.

    The estimate is ``per_follower x size``, no less than a floor, where:

    - ``size`` is the talent's platform follower count, or where none is on record its
      audience in the graph times the market's median followers per graph audience member
      (1 if no talent has both);
    - ``per_follower`` is the median fee per follower of the talents with both a fee and a
      follower count on record, or :data:`DEFAULT_FEE_PER_FOLLOWER` if there are none;
    - the floor is the cheapest fee on record, or :data:`MIN_ESTIMATED_FEE`.

    Parameters
    ----------
    fee
        (T,) fees on record, NaN (or <= 0) where unknown.
    followers
        (T,) platform-reported followers, NaN where unknown.
    audience_size
        (T,) audience in the graph (``MarketFeatures.talent_audience_size``).
    quote
        What ``fee`` holds, for the rule's wording ("fee", "list price").

    Examples
    --------
    >>> import numpy as np
    >>> fees = talent_fees(
    ...     np.array([1_000.0, np.nan, 3_000.0]),
    ...     np.array([10_000.0, 50_000.0, 20_000.0]),
    ...     np.array([10.0, 50.0, 20.0]),
    ... )
    >>> fees.fee.tolist(), fees.estimated.tolist(), fees.per_follower
    ([1000.0, 6250.0, 3000.0], [False, True, False], 0.125)
    >>> talent_fees(np.full(2, np.nan), np.array([1e6, 0.0]), np.zeros(2)).fee.tolist()
    [100000.0, 500.0]
    """
    fee = np.asarray(fee, dtype=np.float64)
    followers = np.nan_to_num(np.asarray(followers, dtype=np.float64), nan=0.0)
    audience = np.nan_to_num(np.asarray(audience_size, dtype=np.float64), nan=0.0)
    known = np.isfinite(fee) & (np.nan_to_num(fee) > 0)
    if known.all():
        return TalentFees(fee.copy(), np.zeros(len(fee), dtype=bool), float("nan"), "")
    both = (followers > 0) & (audience > 0)
    per_member = float(np.median(followers[both] / audience[both])) if both.any() else 1.0
    size = np.where(followers > 0, followers, audience * per_member)
    quoted = known & (size > 0)
    if quoted.any():
        rate = float(np.median(fee[quoted] / size[quoted]))
        floor = float(fee[known].min())
        rule = FEE_RULE_MEDIAN.format(rate=rate, quote=quote, n=int(quoted.sum()), floor=floor)
    else:
        rate, floor = DEFAULT_FEE_PER_FOLLOWER, MIN_ESTIMATED_FEE
        rule = FEE_RULE_DEFAULT.format(rate=rate, quote=quote, floor=floor)
    estimate = np.maximum(rate * size, floor)
    return TalentFees(np.where(known, fee, estimate), ~known, rate, rule)


def merchant_prices(f: MarketFeatures) -> TalentFees:
    """What merchants see a talent cost: its list price, else an estimate from list prices.

    :func:`talent_fees` over ``list_price``: where a talent quotes none, the median list price
    per follower of those that do (:data:`DEFAULT_FEE_PER_FOLLOWER` if none does), marked
    ``estimated``. Negotiated fees never enter: match lists, affordability and plans built on
    these prices reveal nothing private (docs/api.md, "Policy").

    Parameters
    ----------
    f
        Market features.
    """
    return talent_fees(
        f.talent_list_price, f.talent_followers, f.talent_audience_size, quote="list price"
    )
