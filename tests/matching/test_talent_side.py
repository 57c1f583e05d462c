"""The talent side: merchants to approach agree with the merchant-side expected GMV."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kolmatch.errors import UnknownId
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
