"""Ranked matches: deterministic, compliant, explained, and errors that name the argument."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kolmatch.errors import UnknownId
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import DEFAULT_WEIGHTS, combine, match_merchant, merchant_signals


def test_ranks_are_ordered_and_stable(tiny_features: MarketFeatures) -> None:
    a = match_merchant(tiny_features, "m3", top=10)
    b = match_merchant(tiny_features, "m3", top=10)
    assert [m.talent for m in a] == [m.talent for m in b]
    assert [m.rank for m in a] == list(range(1, 11))
    assert all(x.score >= y.score for x, y in itertools.pairwise(a))
    assert set(a[0].breakdown) == set(DEFAULT_WEIGHTS)


def test_excluded_talents_are_never_ranked(tiny_features: MarketFeatures) -> None:
    excluded = set(tiny_features.talent_ids[tiny_features.talent_risk >= 1.0])
    assert excluded, "the tiny market should have severe or unresolved violations"
    for m in tiny_features.merchant_ids:
        ranked = {x.talent for x in match_merchant(tiny_features, str(m), top=100)}
        assert not ranked & excluded
        assert len(ranked) == tiny_features.n_talents - len(excluded)


def test_evidence_is_concrete(tiny_features: MarketFeatures) -> None:
    (first,) = match_merchant(tiny_features, "m0", top=1)
    text = " | ".join(first.evidence)
    assert "% of this talent's audience's interest is in the merchant's categories" in text
    assert "followers and engaged users" in text
    assert "not bought there yet" in text and "expected GMV ¥" in text
    assert "of this merchant's" in text and "customers follow or engage with this talent" in text
    assert first.evidence[-1] == "no violations" or "violation" in first.evidence[-1]


def test_weights_change_the_order(tiny_features: MarketFeatures) -> None:
    default = [m.talent for m in match_merchant(tiny_features, "m1", top=20)]
    reach_only = {k: 0.0 for k in DEFAULT_WEIGHTS} | {"hidden_need_reach": 1.0}
    by_reach = [m.talent for m in match_merchant(tiny_features, "m1", top=20, weights=reach_only)]
    assert default != by_reach
    s = merchant_signals(tiny_features, 1)
    top = int(np.argmax(np.where(s.excluded, -1, s.hidden_need_reach)))
    assert by_reach[0] == tiny_features.talent_ids[top]


def test_expected_gmv_grows_with_audience_interest(tiny_features: MarketFeatures) -> None:
    s = merchant_signals(tiny_features, 2)
    base = s.expected_gmv / np.maximum(tiny_features.talent_skill, 1e-9)
    ok = tiny_features.talent_audience_size > 0
    corr = np.corrcoef(base[ok], (tiny_features.talent_audience_size * s.audience_fit)[ok])[0, 1]
    assert corr > 0.8


def test_unknown_merchant_and_bad_arguments(tiny_features: MarketFeatures) -> None:
    with pytest.raises(UnknownId, match="unknown Merchant id 'nope'"):
        match_merchant(tiny_features, "nope")
    with pytest.raises(ValueError, match="top must be at least 1"):
        match_merchant(tiny_features, "m0", top=0)
    with pytest.raises(ValueError, match=r"unknown signal weights \['charisma'\]"):
        combine(merchant_signals(tiny_features, 0), {"charisma": 1.0})


def test_stated_target_is_the_audience_share_of_that_gender_and_age(
    tiny_features: MarketFeatures,
) -> None:
    f = tiny_features
    both = np.nonzero((f.merchant_target_gender >= 0) & (f.merchant_target_age >= 0))[0]
    none = np.nonzero((f.merchant_target_gender < 0) & (f.merchant_target_age < 0))[0]
    assert len(both) and len(none)
    m = int(both[0])
    s = merchant_signals(f, m)
    g, a = f.merchant_target_gender[m], f.merchant_target_age[m]
    np.testing.assert_allclose(s.target_fit, f.talent_gender[:, g] * f.talent_age[:, a])
    assert np.allclose(f.talent_gender.sum(axis=1)[f.talent_audience_size > 0], 1.0)
    assert (merchant_signals(f, int(none[0])).target_fit == 1.0).all()
    (first,) = match_merchant(f, str(f.merchant_ids[m]), top=1)
    assert any("the merchant's stated target" in e for e in first.evidence)


def test_campaign_match_leaves_out_the_unavailable(s_features: MarketFeatures) -> None:
    from kolmatch.matching.availability import availability, planning_window

    f = s_features
    for m in range(len(f.merchant_ids)):
        for g in f.merchant_campaigns[m].indices:
            av = availability(f, m, planning_window(f, str(f.campaign_ids[g]), m))
            if not av.competitor_booked.any():
                continue
            cid, mid = str(f.campaign_ids[g]), str(f.merchant_ids[m])
            ranked = match_merchant(f, mid, top=f.n_talents, campaign=cid)
            rows = [f.talent_row(x.talent) for x in ranked]
            assert av.available[rows].all()
            assert len(rows) == int((av.available & (f.talent_risk < 1.0)).sum())
            assert f"slots free in campaign {cid}" in ranked[0].evidence[-1]
            plain = match_merchant(f, mid, top=f.n_talents)
            assert len(plain) > len(ranked)
            return
    pytest.fail("the s market should have a campaign with a competitor booking")


def test_precomputed_rankings_give_exactly_the_same_matches(s_features: MarketFeatures) -> None:
    from kolmatch.matching.score import rank_merchants

    f = s_features
    rankings = rank_merchants(f, depth=40)
    assert rankings.eligible.tolist() == [int((f.talent_risk < 1.0).sum())] * len(f.merchant_ids)
    for m in ["m0", "m17", "m123", "m299"]:
        for top in (1, 20, 40):
            assert match_merchant(f, m, top=top, rankings=rankings) == match_merchant(f, m, top=top)
    # beyond the depth, or with weights, the full computation is used
    assert len(match_merchant(f, "m0", top=41, rankings=rankings)) == 41
    w = {"influence": 1.0}
    assert match_merchant(f, "m0", weights=w, rankings=rankings) == match_merchant(
        f, "m0", weights=w
    )
