"""Ranked matches: deterministic, compliant, explained, and errors that name the argument."""

from __future__ import annotations

import io
import itertools
import re

import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch import progress
from kolmatch.errors import BadArgument, UnknownId
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import (
    DEFAULT_WEIGHTS,
    combine,
    expected_gmv,
    expected_orders,
    few_columns_product,
    match_merchant,
    merchant_signals,
    rank_merchants,
    ranking_order,
    tiebreak_places,
    top_order,
)
from kolmatch.policy import MIN_DEMOGRAPHIC_AUDIENCE


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


def test_the_part_never_exceeds_the_whole(s_features: MarketFeatures) -> None:
    """#17: evidence said "22% of the interest is in the merchant's categories (25% in Home)"."""
    import re

    pattern = re.compile(r"(\d+)% of this talent's audience's interest .*? \((\d+)% in ")
    seen = 0
    ok = s_features.merchant_risk < 1.0
    for m in s_features.merchant_ids[ok][:40]:
        for x in match_merchant(s_features, str(m), top=50):
            for line in x.evidence:
                hit = pattern.search(line)
                if hit:
                    seen += 1
                    assert int(hit.group(2)) <= int(hit.group(1)), line
    assert seen > 1_000


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


def test_expected_gmv_is_the_mean_of_expected_orders_times_price(
    s_features: MarketFeatures,
) -> None:
    """The list's GMV sums the products first; it must equal the model talent by talent."""
    f = s_features
    for m in range(min(len(f.merchant_ids), 25)):
        prods = f.merchant_products[m]
        got = merchant_signals(f, m)
        if not len(prods):
            assert (got.expected_gmv == 0).all()
            continue
        orders, pf = expected_orders(f, np.arange(f.n_talents), prods)
        want = (orders * f.product_price[prods][None, :]).mean(axis=1)
        np.testing.assert_allclose(got.expected_gmv, want, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(got.price_fit, pf.mean(axis=1), rtol=1e-12)


def test_expected_gmv_of_some_talents_is_the_whole_market_s_to_the_bit(
    s_features: MarketFeatures,
) -> None:
    """The assignment scores subsets of talents: each must get the bits the list gets."""
    f = s_features
    rng = np.random.default_rng(7)
    levels = len(np.unique(f.talent_price_level))
    assert levels < f.n_talents  # on the grid, talents share levels (what makes a list cheap)
    for m in range(min(len(f.merchant_ids), 10)):
        prods = f.merchant_products[m]
        gmv, fit = expected_gmv(f, slice(None), prods)
        some = rng.choice(f.n_talents, size=f.n_talents // 3, replace=False)
        sub_gmv, sub_fit = expected_gmv(f, some, prods)
        assert np.array_equal(sub_gmv, gmv[some]) and np.array_equal(sub_fit, fit[some])


def test_expected_gmv_of_products_in_several_categories_or_at_no_price_is_the_model_s(
    tiny_features: MarketFeatures,
) -> None:
    """Per-category sums of the price fits: a product in several categories (by its weights)
    and one at price 0 count as expected_orders has them; a product listed twice, twice."""
    from dataclasses import replace

    f = tiny_features
    rng = np.random.default_rng(3)
    cats = rng.random(f.product_categories.shape) * (rng.random(f.product_categories.shape) < 0.3)
    cats[np.arange(len(cats)), rng.integers(0, cats.shape[1], len(cats))] += 0.5
    cats /= cats.sum(axis=1, keepdims=True)
    price = f.product_price.copy()
    price[::7] = 0.0
    g = replace(f, product_categories=cats, product_price=price)
    assert ((cats > 0).sum(axis=1) > 1).any() and (price == 0).any()
    for prods in (np.arange(min(12, len(price))), np.array([0, 0, 3]), np.array([7])):
        got, fit = expected_gmv(g, slice(None), prods)
        orders, pf = expected_orders(g, np.arange(g.n_talents), prods)
        want = (orders * g.product_price[prods][None, :]).mean(axis=1)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fit, pf.mean(axis=1), rtol=1e-12)


def test_mixed_rows_is_the_weighted_sum_and_refuses_a_weight_per_other_rows() -> None:
    from kolmatch.matching.personalised import mixed_rows

    rows = np.random.default_rng(0).random((5, 7))
    w = np.array([0.0, 0.2, 0.0, 0.8, 0.0])
    np.testing.assert_allclose(mixed_rows(rows, w), w @ rows, rtol=1e-15)
    assert np.array_equal(mixed_rows(rows, np.zeros(5)), np.zeros(7))
    with pytest.raises(ValueError, match=r"weights of shape \(4,\) for 5 rows"):
        mixed_rows(rows, np.ones(4))


def test_the_track_record_percentile_sorts_only_talents_with_a_record_and_equals_a_full_sort(
    s_features: MarketFeatures,
) -> None:
    from kolmatch.policy import percentile

    f = s_features
    for m in range(len(f.merchant_ids)):
        got = merchant_signals(f, m).track_record
        assert np.array_equal(got, percentile(f.talent_track @ f.merchant_mix[m]))


def test_log1p_within_an_ulp_of_numpy_s_and_the_same_at_the_edges() -> None:
    from kolmatch.matching.score import _log1p

    rng = np.random.default_rng(11)
    for x in (rng.lognormal(0.0, 6.0, 100_000), rng.random(100_000) * 1e-9, rng.random(1000)):
        np.testing.assert_allclose(_log1p(x), np.log1p(x), rtol=3e-16, atol=0)
    edges = np.array([0.0, -0.0, np.inf, np.nan, 1e308, 5e-324, -0.5, -1.0])
    with np.errstate(divide="ignore"):
        assert np.array_equal(_log1p(edges), np.log1p(edges), equal_nan=True)


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
    share = f.talent_gender[:, g] * f.talent_age[:, a]
    # demographics of audiences below the policy's minimum are neither shown nor scored
    big = np.diff(f.audience.indptr) >= MIN_DEMOGRAPHIC_AUDIENCE
    assert big.any() and not big.all()
    np.testing.assert_allclose(s.target_fit[big], share[big])
    np.testing.assert_allclose(s.target_fit[~big], share[big].mean())
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
            # available, yes or no: how many slots, and who booked them, are private
            assert ranked[0].evidence[-1].startswith(f"available in campaign {cid}")
            assert not any("slots free" in e for x in ranked for e in x.evidence)
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


def test_roi_is_net_of_commission_on_the_list_price(tiny_features: MarketFeatures) -> None:
    from kolmatch.matching.fees import merchant_prices

    f = tiny_features
    m = 4
    s = merchant_signals(f, m)
    prices = merchant_prices(f)
    assert np.isfinite(f.talent_list_price).all() and not prices.estimated.any()
    np.testing.assert_array_equal(s.price, f.talent_list_price)
    c = f.merchant_commission[m]
    assert 0 < c < 1 and s.commission == pytest.approx(c)
    np.testing.assert_allclose(s.roi, s.expected_gmv / (s.price + c * s.expected_gmv))
    (first,) = match_merchant(f, str(f.merchant_ids[m]), top=1)
    text = " | ".join(first.evidence)
    assert f"plus {c:.0%} commission (ROI" in text and "net of commission" in text
    # the negotiated fee appears nowhere, nor is it the ratio of GMV to ROI
    t = f.talent_row(first.talent)
    assert first.price == pytest.approx(f.talent_list_price[t])
    assert "fee" not in text
    ratio = first.breakdown["expected_gmv"] / first.breakdown["roi"]
    assert abs(ratio / f.talent_fee[t] - 1) > 0.05


def test_track_record_is_a_percentile_not_yuan(tiny_features: MarketFeatures) -> None:
    f = tiny_features
    s = merchant_signals(f, 0)
    assert s.track_record.min() >= 0 and s.track_record.max() <= 100
    ranked = match_merchant(f, "m0", top=f.n_talents)
    lines = [e for x in ranked for e in x.evidence if "in the merchant's categories;" in e]
    assert lines and all("GMV per collaboration in the" in e and "¥" not in e for e in lines)


def test_budget_leaves_out_and_marks_the_unaffordable(tiny_features: MarketFeatures) -> None:
    from kolmatch.errors import BadArgument

    f = tiny_features
    m = int(np.nanargmax(f.merchant_budget))
    mid, own = str(f.merchant_ids[m]), float(f.merchant_budget[m])
    marked = match_merchant(f, mid, top=f.n_talents)
    assert {x.affordable for x in marked} == {True, False}
    assert all(x.affordable == (x.price <= own) for x in marked)
    assert any("above the budget" in e for x in marked if not x.affordable for e in x.evidence)
    budget = float(np.median([x.price for x in marked]))
    within = match_merchant(f, mid, top=f.n_talents, budget=budget)
    assert within and all(x.price <= budget and x.affordable for x in within)
    assert [x.talent for x in within] == [x.talent for x in marked if x.price <= budget]
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(BadArgument, match="budget"):
            match_merchant(f, mid, budget=bad)


def test_why_not_names_the_reason_with_the_figure(tiny_features: MarketFeatures) -> None:
    from kolmatch.matching.score import why_not

    f = tiny_features
    ranked = match_merchant(f, "m2", top=f.n_talents)
    listed, below = ranked[3], ranked[30]
    w = why_not(f, "m2", listed.talent, top=10)
    assert (w.reason, w.rank, w.score) == ("listed", 4, listed.score)
    w = why_not(f, "m2", below.talent, top=10)
    assert (w.reason, w.rank, w.score, w.cut_rank) == ("below the cut", 31, below.score, 10)
    assert w.cut_score == ranked[9].score and f"ranked 31 of {len(ranked)}" in w.detail
    bad = str(f.talent_ids[np.nonzero(f.talent_risk >= 1.0)[0][0]])
    w = why_not(f, "m2", bad)
    assert w.reason == "compliance" and "violation" in w.detail and w.rank is None
    dear = max(ranked, key=lambda x: x.price)
    w = why_not(f, "m2", dear.talent, budget=dear.price / 2)
    assert w.reason == "unaffordable" and "above the budget" in w.detail
    with pytest.raises(UnknownId):
        why_not(f, "m2", "nobody")


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), 1e308, -2e6])
def test_a_weight_that_would_overflow_is_refused(
    tiny_features: MarketFeatures, weight: float
) -> None:
    with pytest.raises(BadArgument, match="weights"):
        match_merchant(tiny_features, "m0", top=5, weights={"reach": weight})


def test_the_top_of_a_partitioned_order_is_the_full_order_s(tiny_features: MarketFeatures) -> None:
    """top_order sorts only the top: ties across its cut, excluded and NaN scores included, it
    gives the full sort's first rows (equal scores by followers, then id)."""
    f = tiny_features
    rng = np.random.default_rng(3)
    T = f.n_talents
    for trial in range(30):
        score = rng.integers(0, 6, T).astype(float)  # many ties, also at the cut
        score[rng.random(T) < 0.2] = -np.inf
        if trial % 3 == 0:
            score[rng.random(T) < 0.05] = np.nan
        full = ranking_order(f, score)
        for depth in (1, 5, 17, T // 2, T, T + 3):
            top, n = top_order(f, score, depth)
            assert n == int(np.isfinite(score).sum())
            assert top.tolist() == full[:depth].tolist(), (trial, depth)
    # equal scores: most followers first, then id
    tie = top_order(f, np.zeros(T), T)[0]
    followers = np.nan_to_num(f.talent_followers, nan=0.0)[tie]
    assert (np.diff(followers) <= 0).all()
    same = followers[:-1] == followers[1:]
    assert (f.talent_ids[tie][:-1][same] < f.talent_ids[tie][1:][same]).all()


def test_ranking_every_merchant_counts_merchants(tiny_features: MarketFeatures) -> None:
    class Ticking:  # one second a reading: a line is due every few merchants
        now = 0.0

        def __call__(self) -> float:
            self.now += 1.0
            return self.now

    out = io.StringIO()
    M = len(tiny_features.merchant_ids)
    with progress.using(progress.Reporter(out, tty=False, clock=Ticking(), ticker=False)):
        ranked = rank_merchants(tiny_features)
    assert len(ranked.eligible) == M
    lines = out.getvalue().splitlines()
    counts = [re.search(rf"ranking {M} merchants: (\d+)/{M} merchants", ln) for ln in lines]
    done = [int(c.group(1)) for c in counts if c]
    assert done and all(1 <= k <= M for k in done), lines
    assert lines[-1].startswith(f"ranking {M} merchants: done {M} merchants in")


def test_rankings_after_a_risk_rise_are_a_fresh_rankings_top(s_features: MarketFeatures) -> None:
    from dataclasses import replace

    from kolmatch.matching.score import rankings_after_risk

    f, depth = s_features, 30
    r = rank_merchants(f, depth=depth)
    listed = np.bincount(r.rows[r.rows >= 0], minlength=len(f.talent_ids))
    by_lists = np.argsort(-listed, kind="stable")
    out_t, worse_t, mid_t = by_lists[0], by_lists[1], by_lists[40]  # in many lists, and fewer
    risk = f.talent_risk.copy()
    risk[out_t] = 1.0  # excluded: out of every list
    risk[worse_t] = min(risk[worse_t] + 0.6, 0.99)  # down the lists, past the end of some
    risk[mid_t] = min(risk[mid_t] + 0.05, 0.99)
    after = replace(f, talent_risk=risk)
    got = rankings_after_risk(r, f, after)
    fresh = rank_merchants(after, depth=depth)
    assert got is not None
    assert (got.valid < depth).any() and (got.valid == depth).any()
    assert np.array_equal(got.eligible, fresh.eligible)
    for m in range(len(f.merchant_ids)):
        v = int(got.valid[m])
        assert v >= depth - 2  # at most the two talents whose score fell left the list
        for mine, theirs in (
            (got.rows, fresh.rows),
            (got.scores, fresh.scores),
            (got.bases, fresh.bases),
            (got.signals, fresh.signals),
        ):
            assert np.array_equal(mine[m, :v], theirs[m, :v]), m  # to the bit
    short = [str(f.merchant_ids[m]) for m in np.nonzero(got.valid < depth)[0][:3]]
    for m in [*short, "m0", "m123"]:
        for top in (1, 20, depth):  # past the valid entries: ranked live, the same list
            assert match_merchant(after, m, top=top, rankings=got) == match_merchant(
                after, m, top=top
            )
    # a fall in risk, or a change of a standardised signal, moves other scores: rank anew
    assert rankings_after_risk(got, after, f) is None
    share = f.talent_active_share.copy()
    share[mid_t] *= 0.5
    assert rankings_after_risk(r, f, replace(after, talent_active_share=share)) is None
    assert rankings_after_risk(r, f, f) is r


def test_rankings_after_many_risks_rise_at_once(s_features: MarketFeatures) -> None:
    """Several talents of one list moving at once (a merchant flagged: all its promoters'
    risk rises), some landing between the same two entries: still a fresh ranking's top."""
    from dataclasses import replace

    from kolmatch.matching.score import rankings_after_risk

    f, depth = s_features, 30
    r = rank_merchants(f, depth=depth)
    rng = np.random.default_rng(7)
    listed = np.unique(r.rows[r.rows >= 0])
    moved = rng.choice(listed, size=min(60, len(listed)), replace=False)
    risk = f.talent_risk.copy()
    risk[moved] = np.minimum(risk[moved] + rng.choice([0.01, 0.05, 0.2, 2.0], len(moved)), 1.0)
    after = replace(f, talent_risk=risk)
    got = rankings_after_risk(r, f, after)
    fresh = rank_merchants(after, depth=depth)
    assert got is not None and np.array_equal(got.eligible, fresh.eligible)
    for m in range(len(f.merchant_ids)):
        v = int(got.valid[m])
        for name in ("rows", "scores", "bases", "signals"):
            assert np.array_equal(getattr(got, name)[m, :v], getattr(fresh, name)[m, :v]), m
    assert (got.valid < depth).any()


def _collaborations(f: MarketFeatures, seed: int, n: int) -> list[MarketFeatures]:
    """``f`` after each of ``n`` random collaborations, some with GMV, some without, some by a
    talent that had none, some by one that is in many lists."""
    from kolmatch.matching.incremental import CollaborationWrite, apply_collaboration

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = int(rng.integers(len(f.talent_ids)))
        p = int(rng.integers(len(f.product_ids)))
        known = i % 3 != 2
        gmv = float(rng.choice([50.0, 5_000.0, 500_000.0])) if known else None
        orders = float(rng.integers(0, 400)) if known else None
        f = apply_collaboration(
            f,
            CollaborationWrite(str(f.talent_ids[t]), str(f.product_ids[p]), gmv, orders),
        )
        out.append(f)
    return out


def test_rankings_after_collaborations_are_a_fresh_rankings_top(
    s_features: MarketFeatures,
) -> None:
    from kolmatch.matching.score import rankings_after_collaboration

    f, depth = s_features, 30
    r = rank_merchants(f, depth=depth)
    before = f
    # one at a time, and three at once (a patch that was stopped, then taken up later)
    steps = _collaborations(f, 3, 6)
    for after in [*steps[:3], steps[5]]:
        got = rankings_after_collaboration(r, before, after)
        fresh = rank_merchants(after, depth=depth)
        assert got is not None
        assert np.array_equal(got.eligible, fresh.eligible)
        assert np.array_equal(got.moments, fresh.moments)  # frozen: the same as before
        for m in range(len(f.merchant_ids)):
            v = int(got.valid[m])
            assert v >= depth - 3, m  # at most the moved talents fell past the list
            for name in ("rows", "scores", "bases", "signals"):
                assert np.array_equal(getattr(got, name)[m, :v], getattr(fresh, name)[m, :v]), (
                    m,
                    name,
                )
        r, before = got, after
    for m in ["m0", "m5", str(f.merchant_ids[int(np.argmin(r.valid))])]:
        for top in (1, 20, depth):  # past the valid entries: ranked live, the same list
            assert match_merchant(before, m, top=top, rankings=r) == match_merchant(
                before, m, top=top
            )


def test_lists_patched_when_asked_for_are_the_batch_patch_and_the_live_lists(
    s_features: MarketFeatures,
) -> None:
    """What a serving process reads between a collaboration and its patched rankings: each
    merchant's list patched on its own, the same as the whole patch, and a match list read
    from it the same as one ranked live."""
    from kolmatch.matching.score import PatchedRankings, rankings_after_collaboration

    f, depth = s_features, 30
    r = rank_merchants(f, depth=depth)
    after = _collaborations(f, 3, 3)[-1]  # three talents moved
    batch = rankings_after_collaboration(r, f, after)
    lazy = PatchedRankings.of(r, f, after)
    assert batch is not None and lazy is not None
    for m in range(len(f.merchant_ids)):
        rows, scores, signals, valid, eligible = lazy.list_of(m)
        want = batch.list_of(m)
        assert (valid, eligible) == want[3:]
        for mine, theirs in zip((rows, scores, signals), want[:3], strict=True):
            assert np.array_equal(mine, theirs), m
    for m in ["m0", "m7", str(f.merchant_ids[int(np.argmin(batch.valid))])]:
        for top in (1, 20, depth):
            assert match_merchant(after, m, top=top, rankings=lazy) == match_merchant(
                after, m, top=top
            )
    # a patch that would decline: none (lists ranked live)
    other = _collaborations(f, 4, 1)[0]
    from dataclasses import replace

    assert PatchedRankings.of(r, f, replace(other, talent_active_share=f.talent_skill)) is None


def test_a_collaboration_moves_no_other_talents_score(s_features: MarketFeatures) -> None:
    """Scores are measured against the calibration: a talent's new record changes its own
    scores, and every other talent's stays to the bit (whatever the merchant)."""
    from kolmatch.matching.score import _combined, collaborations_moved, merchant_signals

    f = s_features
    after = _collaborations(f, 11, 1)[0]
    moved = collaborations_moved(f, after)
    assert moved is not None and len(moved) == 1
    others = np.ones(len(f.talent_ids), dtype=bool)
    others[moved] = False
    changed = 0
    for m in range(0, len(f.merchant_ids), 25):
        was = _combined(merchant_signals(f, m), DEFAULT_WEIGHTS)[1]
        now = _combined(merchant_signals(after, m), DEFAULT_WEIGHTS)[1]
        assert np.array_equal(was[others], now[others]), m
        changed += int(was[moved[0]] != now[moved[0]])
    assert changed > 0  # and its own moved


def test_a_patch_excludes_readmits_and_keeps_lists_holding_everyone(
    tiny_features: MarketFeatures,
) -> None:
    """Risk alone moving (a violation flagged, then resolved): a talent leaves every list and
    comes back; lists longer than the market hold every eligible talent, patched whole."""
    from dataclasses import replace

    from kolmatch.matching.score import rankings_after_collaboration

    f = tiny_features
    depth = f.n_talents + 5
    r = rank_merchants(f, depth=depth)
    top = int(r.rows[0, 0])
    risk = f.talent_risk.copy()
    risk[top] = 1.0
    out = replace(f, talent_risk=risk)
    ranked = r
    for before, after in ((f, out), (out, f)):
        got = rankings_after_collaboration(ranked, before, after)
        fresh = rank_merchants(after, depth=depth)
        assert got is not None
        for name in ("rows", "scores", "bases", "signals", "eligible", "valid", "moments"):
            assert np.array_equal(getattr(got, name), getattr(fresh, name)), name
        assert (got.rows == top).any(axis=1).all() == (after is f)  # out of every list, back
        ranked = got


def test_the_last_entry_moved_but_not_for_this_merchant_stays(
    tiny_features: MarketFeatures,
) -> None:
    """A talent whose record moved in a category outside a merchant's mix scores the same for
    it: as the last entry of its list it stays (the list keeps its length)."""
    from dataclasses import replace

    from kolmatch.matching.score import rankings_after_collaboration

    f, depth = tiny_features, 3
    r = rank_merchants(f, depth=depth)
    m = next(i for i in range(len(f.merchant_ids)) if (f.merchant_mix[i] == 0).any())
    last = int(r.rows[m, depth - 1])
    c = int(np.flatnonzero(f.merchant_mix[m] == 0)[0])
    track = f.talent_track.copy()
    track[last, c] += 1_000.0
    after = replace(f, talent_track=track)
    got = rankings_after_collaboration(r, f, after)
    assert got is not None and got.valid[m] == depth
    assert np.array_equal(got.rows[m], r.rows[m]) and np.array_equal(got.scores[m], r.scores[m])


def test_a_patch_after_collaborations_refuses_what_it_cannot_patch(
    s_features: MarketFeatures,
) -> None:
    from dataclasses import replace

    from kolmatch.matching.score import rankings_after_collaboration

    f = s_features
    r = rank_merchants(f, depth=10)
    after = _collaborations(f, 5, 1)[0]
    assert rankings_after_collaboration(r, f, f) is r  # nothing moved
    # another calibration, or a standardised signal of every list moved: rank anew
    other = replace(after, calibration_skill=after.talent_skill.copy())
    assert rankings_after_collaboration(r, f, other) is None
    share = after.talent_active_share.copy()
    share[0] *= 0.5
    assert rankings_after_collaboration(r, f, replace(after, talent_active_share=share)) is None
    # anything else a score reads (a delta's audiences, a merchant's customers, prices)
    for name in ("talent_audience", "merchant_commission", "product_price"):
        moved = getattr(after, name).copy()
        moved.flat[0] += 1.0
        assert rankings_after_collaboration(r, f, replace(after, **{name: moved})) is None, name
    buyers = sp.csr_matrix(after.merchant_buyers, copy=True)
    buyers.data[0] += 1.0
    assert rankings_after_collaboration(r, f, replace(after, merchant_buyers=buyers)) is None
    # a talent's signals need the list's moments
    with pytest.raises(ValueError, match="moments"):
        from kolmatch.matching.score import merchant_signals

        merchant_signals(f, 0, rows=np.array([1]))


def test_a_ranking_stops_between_merchants_when_cancelled(
    tiny_features: MarketFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kolmatch.matching.score as score_module
    from kolmatch.errors import Cancel, Cancelled

    done: list[int] = []
    cancel = Cancel()
    real = score_module.rank_into

    def counted(f: MarketFeatures, m: int, *args: object) -> None:
        real(f, m, *args)  # type: ignore[arg-type]
        done.append(m)
        if len(done) == 3:  # a newer version arrives after three merchants
            cancel.cancel("a newer version is served")

    monkeypatch.setattr(score_module, "rank_into", counted)
    monkeypatch.setattr(score_module.os, "cpu_count", lambda: 2)  # the pool's threads
    with pytest.raises(Cancelled, match="a newer version is served"):
        rank_merchants(tiny_features, cancel=cancel)
    # the merchants under way when it was cancelled finish; no other starts
    assert 3 <= len(done) <= 3 + 2 < len(tiny_features.merchant_ids)


def test_standardising_is_numpys_mean_and_std_to_the_bit() -> None:
    from kolmatch.matching.score import _z

    rng = np.random.default_rng(3)
    for x in (rng.lognormal(2.0, 1.5, 5000), rng.normal(0.0, 1e-9, 77), np.arange(4.0)):
        assert np.array_equal(_z(x), (x - x.mean()) / x.std())
    # no spread, or a spread that is not a number: every talent scores 0 on it
    for flat in (np.full(9, 2.5), np.array([1.0, np.nan, 2.0])):
        assert np.array_equal(_z(flat), np.zeros_like(flat))


def test_market_wide_signals_standardised_once_score_as_anew(
    tiny_features: MarketFeatures,
) -> None:
    from dataclasses import replace

    f = tiny_features

    def z(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / x.std()  # type: ignore[no-any-return]

    want = {
        "reach": z(np.log1p(np.nan_to_num(f.talent_followers, nan=0.0))),
        "influence": z(np.log(np.maximum(f.talent_influence, 1e-12))),
        "audience_quality": z(f.talent_active_share),
    }
    for m in range(len(f.merchant_ids)):
        s = merchant_signals(f, m)
        assert set(s.market_z) == set(want)
        for k, v in want.items():
            np.testing.assert_allclose(s.market_z[k], v, rtol=1e-12, atol=1e-12)
        for w in (None, {"reach": 0.7, "influence": -0.2, "audience_quality": 0.3}):
            assert np.array_equal(combine(s, w), combine(replace(s, market_z={}), w))


def test_customer_reach_counts_the_merchants_customers_in_each_audience(
    tiny_features: MarketFeatures,
) -> None:
    from dataclasses import replace

    import scipy.sparse as sp

    f = tiny_features
    for m in range(len(f.merchant_ids)):
        customers = f.merchant_buyers[m].indices
        want = np.bincount(f.audience_by_user[customers].indices, minlength=f.n_talents)
        assert np.array_equal(merchant_signals(f, m).customer_reach, want)
    # a merchant none has bought from: no reach, and its affinity is its categories' walk alone
    buyers = sp.lil_matrix(f.merchant_buyers)
    buyers[0, :] = 0.0
    g = replace(f, merchant_buyers=sp.csr_matrix(buyers))
    s = merchant_signals(g, 0)
    assert not s.customer_reach.any()
    np.testing.assert_allclose(
        s.customer_affinity, (f.merchant_mix[0] @ f.category_ppr_tail) * f.n_talents
    )


def _bits(x: np.ndarray) -> list[int]:
    return np.ascontiguousarray(x, dtype=np.float64).view(np.int64).tolist()  # type: ignore[no-any-return]


@pytest.mark.parametrize("seed", range(6))
def test_few_columns_product_is_the_whole_product_to_the_bit(seed: int) -> None:
    """Read from the named columns only, every row's sum is ``a @ weights``'s bit for bit: a
    mask of several categories, weights that are 0, negative or odd, one column, all, none."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((400, 20)) < 0.4, rng.lognormal(-2.0, 1.5, (400, 20)), 0.0)
    dense[rng.integers(0, 400, 30)] = 0.0  # users with no interest
    a = sp.csr_matrix(dense)  # shares whose sums round
    assert a.has_canonical_format
    mask = np.zeros(20)
    mask[rng.choice(20, 3, replace=False)] = 1.0
    mixed = np.where(rng.random(20) < 0.5, 0.0, rng.normal(0.3, 1.0, 20))
    one = np.zeros(20)
    one[int(rng.integers(20))] = 0.7
    for weights in (mask, mixed, one, rng.random(20), np.zeros(20), -mask):
        want = np.asarray(a @ weights).ravel()
        got = few_columns_product(a, weights)
        assert got.shape == want.shape and got.dtype == np.float64
        assert _bits(got) == _bits(want)


def test_few_columns_product_keeps_one_copy_and_multiplies_a_non_canonical_matrix_as_it_is() -> (
    None
):
    from kolmatch.matching.score import _by_column, _kept

    a = sp.csr_matrix(np.array([[0.5, 0.0, 0.25], [0.0, 1.0, 0.0]]))
    first = _kept(a, _by_column)
    assert few_columns_product(a, np.array([1.0, 0.0, 1.0])).tolist() == [0.75, 0.0]
    assert _kept(a, _by_column) is first and not first.data.flags.writeable
    # duplicates (not canonical): summed as a @ weights sums them, term by term
    d = sp.csr_matrix(
        (np.array([0.1, 0.2, 0.3]), np.array([1, 1, 0]), np.array([0, 3])), shape=(1, 2)
    )
    assert not d.has_canonical_format
    w = np.array([3.0, 1.0])
    assert _bits(few_columns_product(d, w)) == _bits(np.asarray(d @ w).ravel())


def test_tiebreak_places_are_most_followers_then_id(tiny_features: MarketFeatures) -> None:
    f = tiny_features
    by = np.argsort(tiebreak_places(f))
    followers = np.nan_to_num(f.talent_followers, nan=0.0)
    assert by.tolist() == np.lexsort((f.talent_ids, -followers)).tolist()
