"""The talent side: merchants to approach agree with the merchant-side expected GMV."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from kolmatch.errors import NotEligible, UnknownId
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import merchant_signals
from kolmatch.matching.talent_side import recommend_merchants


def _eligible_talent(f: MarketFeatures) -> str:
    ok = np.nonzero((f.talent_risk < 1.0) & (f.talent_audience_size > 0))[0]
    return str(f.talent_ids[ok[0]])


def test_both_sides_agree_on_expected_gmv(tiny_features: MarketFeatures) -> None:
    t = _eligible_talent(tiny_features)
    ti = int(np.searchsorted(tiny_features.talent_ids, t))
    leads = recommend_merchants(tiny_features, [t], top=5)
    assert [x.rank for x in leads] == list(range(1, len(leads) + 1))
    assert all(a.expected_gmv >= b.expected_gmv for a, b in itertools.pairwise(leads))
    for lead in leads:
        m = int(np.searchsorted(tiny_features.merchant_ids, lead.merchant))
        if (tiny_features.product_risk[tiny_features.merchant_products[m]] >= 1).any():
            continue  # a lead's GMV is over the eligible products only (docs/scoring.md)
        assert lead.expected_gmv == pytest.approx(
            merchant_signals(tiny_features, m).expected_gmv[ti], rel=1e-6, abs=0.01
        )
        assert lead.best_product in set(
            tiny_features.product_ids[tiny_features.merchant_products[m]].tolist()
        )


def test_roster_sums_its_talents(tiny_features: MarketFeatures) -> None:
    ok = np.nonzero(tiny_features.talent_risk < 1.0)[0][:3]
    roster = [str(tiny_features.talent_ids[i]) for i in ok]
    one = {
        x.merchant: x.expected_gmv for x in recommend_merchants(tiny_features, roster[:1], top=100)
    }
    all3 = {x.merchant: x.expected_gmv for x in recommend_merchants(tiny_features, roster, top=100)}
    assert set(one) == set(all3)
    assert all(all3[m] >= one[m] - 1e-6 for m in one)


def test_errors_name_the_argument(tiny_features: MarketFeatures) -> None:
    with pytest.raises(UnknownId, match="unknown Talent id 'ghost'"):
        recommend_merchants(tiny_features, ["ghost"])
    with pytest.raises(ValueError, match="talent_ids is empty"):
        recommend_merchants(tiny_features, [])


def test_leads_name_only_eligible_products_and_merchants(tiny_features: MarketFeatures) -> None:
    f = tiny_features
    t = _eligible_talent(f)
    leads = recommend_merchants(f, [t], top=100)
    first = f.merchant_row(leads[0].merchant)
    best = int(np.searchsorted(f.product_ids, leads[0].best_product))
    # the product it led with gets an unresolved violation: another of the merchant's leads
    risk = f.product_risk.copy()
    risk[best] = 1.0
    g = replace(f, product_risk=risk)
    again = {x.merchant: x for x in recommend_merchants(g, [t], top=100)}
    if len(f.merchant_products[first]) > 1:
        lead = again[leads[0].merchant]
        assert lead.best_product != leads[0].best_product
        assert lead.best_product in set(f.product_ids[f.merchant_products[first]].tolist())
    else:
        assert leads[0].merchant not in again
    # the merchant is excluded: it is not led at all
    m_risk = f.merchant_risk.copy()
    m_risk[first] = 1.0
    h = replace(f, merchant_risk=m_risk)
    assert leads[0].merchant not in {x.merchant for x in recommend_merchants(h, [t], top=100)}


def test_an_excluded_talent_is_told_so_and_a_roster_leaves_it_out(
    tiny_features: MarketFeatures,
) -> None:
    f = tiny_features
    bad = str(f.talent_ids[np.argmax(f.talent_risk >= 1.0)])
    with pytest.raises(NotEligible, match=f"talent {bad} is not eligible: excluded for compliance"):
        recommend_merchants(f, [bad])
    good = _eligible_talent(f)
    assert recommend_merchants(f, [bad, good], top=5) == recommend_merchants(f, [good], top=5)
    other = str(f.talent_ids[np.nonzero(f.talent_risk >= 1.0)[0][-1]])
    with pytest.raises(NotEligible, match="so are the other 1 talents named"):
        recommend_merchants(f, [bad, other])
