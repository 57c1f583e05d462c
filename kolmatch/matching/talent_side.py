"""The other side of the market: the merchants and products a talent or roster should approach."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import expected_orders

__all__ = ["MerchantLead", "recommend_merchants"]


@dataclass(frozen=True)
class MerchantLead:
    """A merchant worth approaching, with the product to lead with."""

    merchant: str
    rank: int
    expected_gmv: float  # per collaboration, mean over the merchant's products
    best_product: str
    best_product_gmv: float
    roi: float  # expected GMV / the talent's fee


def recommend_merchants(
    f: MarketFeatures, talent_ids: list[str], *, top: int = 10
) -> list[MerchantLead]:
    """Merchants ranked by the expected GMV a talent (or a roster, summed) would bring them.

    Uses the same expected-orders model as merchant-side matching, so both sides agree.
    Merchants excluded for compliance (risk 1) are left out; so are talents excluded.

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
    ValueError
        If ``top`` is not positive or the list is empty.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if not talent_ids:
        raise ValueError("talent_ids is empty")
    rows = []
    for t in talent_ids:
        i = f.talent_row(t)
        if f.talent_risk[i] < 1.0:
            rows.append(i)
    if not rows:
        return []
    idx = np.array(rows)
    all_products = np.arange(len(f.product_price))
    orders, _ = expected_orders(f, idx, all_products)
    gmv_p = (orders * f.product_price[None, :]).sum(axis=0)  # roster total per product
    fee = float(np.nansum(f.talent_fee[idx]))
    leads = []
    for m, prods in enumerate(f.merchant_products):
        if len(prods) == 0 or f.merchant_risk[m] >= 1.0:
            continue
        best = int(prods[np.argmax(gmv_p[prods])])
        leads.append((float(gmv_p[prods].mean()), m, best))
    leads.sort(key=lambda x: (-x[0], x[1]))
    return [
        MerchantLead(
            merchant=str(f.merchant_ids[m]),
            rank=r + 1,
            expected_gmv=round(g, 2),
            best_product=str(f.product_ids[best]),
            best_product_gmv=round(float(gmv_p[best]), 2),
            roi=round(g / fee, 3) if fee > 0 else float("inf"),
        )
        for r, (g, m, best) in enumerate(leads[:top])
    ]
