"""The other side of the market: the merchants and products a talent or roster should approach."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kolmatch.errors import NotEligible
from kolmatch.matching.eligibility import (
    merchant_eligibility,
    product_eligibility,
    talent_eligibility,
)
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import expected_orders

__all__ = ["MerchantLead", "recommend_merchants"]


@dataclass(frozen=True)
class MerchantLead:
    """A merchant worth approaching, with the product to lead with."""

    merchant: str
    rank: int
    expected_gmv: float  # per collaboration, mean over the merchant's eligible products
    best_product: str  # an eligible product (docs/scoring.md, "Compliance")
    best_product_gmv: float
    roi: float | None  # expected GMV / the talents' fees; None where no fee is on record
    customers_reached: int  # the merchant's customers in the talents' (united) audience
    customers: int  # the merchant's customers


def recommend_merchants(
    f: MarketFeatures, talent_ids: list[str], *, top: int = 10
) -> list[MerchantLead]:
    """Merchants ranked by the expected GMV a talent (or a roster, summed) would bring them.

    Uses the same expected-orders model as merchant-side matching, so both sides agree. Where
    the market has no collaboration outcomes to estimate GMV from, and among equal GMV, the
    merchants whose customers the talents reach most come first (then by id). A talent named
    twice counts once.

    Compliance (:mod:`kolmatch.matching.eligibility`): merchants excluded are left out; so are
    products that are not eligible (the lead product and the mean GMV are over the eligible
    ones, and a merchant none of whose products is eligible is left out). Talents of a roster
    who are excluded are left out of it; if every talent named is, :class:`NotEligible`.

    Parameters
    ----------
    f
        Market features.
    talent_ids
        One talent, or an agency's roster.
    top
        How many merchants.

    Raises
    ------
    UnknownId
        If a talent is not in the graph.
    NotEligible
        If every talent named is excluded for compliance (the first one's reason).
    ValueError
        If ``top`` is not positive or the list is empty.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if not talent_ids:
        raise ValueError("talent_ids is empty")
    named = [f.talent_row(t) for t in dict.fromkeys(talent_ids)]  # a roster: each talent once
    talents = talent_eligibility(f)
    rows = [i for i in named if talents.ok[i]]
    if not rows:
        others = len(named) - 1
        also = f"; so are the other {others} talents named" if others else ""
        raise NotEligible("Talent", str(f.talent_ids[named[0]]), talents.reason(named[0]) + also)
    idx = np.array(rows)
    all_products = np.arange(len(f.product_price))
    orders, _ = expected_orders(f, idx, all_products)
    gmv_p = (orders * f.product_price[None, :]).sum(axis=0)  # roster total per product
    fees = f.talent_fee[idx]
    fee = float(np.nansum(fees)) if np.isfinite(fees).all() else 0.0
    # the merchants' customers among the talents' audience members (each user once)
    members = np.zeros(f.users, dtype=bool)
    members[np.unique(f.audience[idx].indices)] = True
    merchant_ok = merchant_eligibility(f).ok
    product_ok = product_eligibility(f).ok
    leads = []
    for m, catalogue in enumerate(f.merchant_products):
        prods = catalogue[product_ok[catalogue]]
        if len(prods) == 0 or not merchant_ok[m]:
            continue
        best = int(prods[np.argmax(gmv_p[prods])])
        buyers = f.merchant_buyers[m].indices
        reached = int(members[buyers].sum())
        leads.append((float(gmv_p[prods].mean()), reached, len(buyers), m, best))
    leads.sort(key=lambda x: (-x[0], -x[1], str(f.merchant_ids[x[3]])))
    return [
        MerchantLead(
            merchant=str(f.merchant_ids[m]),
            rank=r + 1,
            expected_gmv=round(g, 2),
            best_product=str(f.product_ids[best]),
            best_product_gmv=round(float(gmv_p[best]), 2),
            roi=round(g / fee, 3) if fee > 0 and f.gmv_rate > 0 else None,
            customers_reached=reached,
            customers=n,
        )
        for r, (g, reached, n, m, best) in enumerate(leads[:top])
    ]
