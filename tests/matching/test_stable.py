"""Deferred acceptance: stable by an independent brute-force check, for both proposing sides."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from kolmatch.errors import BadArgument
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.market import assign_market
from kolmatch.matching.stable import (
    TwoSidedMarket,
    _Chooser,
    blocking_pairs,
    deferred_acceptance,
)


def _market(seed: int, *, limits: bool) -> TwoSidedMarket:
    rng = np.random.default_rng(seed)
    M, T = 4, 5
    pairs = [(m, t) for m in range(M) for t in range(T) if rng.random() < 0.7]
    pm = np.array([m for m, _ in pairs], dtype=np.int64)
    pt = np.array([t for _, t in pairs], dtype=np.int64)
    fee = rng.uniform(1, 4, T)
    comp = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    return TwoSidedMarket(
        pm,
        pt,
        rng.permutation(len(pairs)).astype(float),
        rng.permutation(len(pairs)).astype(float),
        rng.integers(1, 3, M),
        rng.integers(1, 3, T),
        cost=fee[pt] if limits else None,
        merchant_budget=rng.uniform(3, 7, M) if limits else None,
        competitors=comp if limits else None,
    )


def _blocks_quota_only(mk: TwoSidedMarket, x: np.ndarray) -> int:
    """Textbook definition for quotas alone, written independently of the module."""
    n = 0
    for i in range(mk.n):
        if x[i]:
            continue
        m, t = mk.pair_merchant[i], mk.pair_talent[i]
        mine = [j for j in range(mk.n) if x[j] and mk.pair_merchant[j] == m]
        theirs = [j for j in range(mk.n) if x[j] and mk.pair_talent[j] == t]
        m_wants = len(mine) < mk.merchant_quota[m] or any(
            mk.merchant_score[j] < mk.merchant_score[i] for j in mine
        )
        t_wants = len(theirs) < mk.talent_quota[t] or any(
            mk.talent_score[j] < mk.talent_score[i] for j in theirs
        )
        n += bool(m_wants and t_wants)
    return n


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 100_000), st.sampled_from(["merchants", "talents"]))
def test_quota_only_matching_is_stable(seed: int, proposing: str) -> None:
    mk = _market(seed, limits=False)
    x = deferred_acceptance(mk, proposing=proposing)
    assert _blocks_quota_only(mk, x) == 0 == blocking_pairs(mk, x)
    assert (np.bincount(mk.pair_merchant[x], minlength=4) <= mk.merchant_quota).all()
    assert (np.bincount(mk.pair_talent[x], minlength=5) <= mk.talent_quota).all()


def _a_stable_matching_exists(mk: TwoSidedMarket) -> bool:
    """Brute force: is any set of pairs, each side holding exactly what it would choose of it,
    blocked by no pair? (With budgets and competitors one need not exist.)"""
    ch = _Chooser(mk)
    for bits in range(1 << mk.n):
        x = np.array([(bits >> i) & 1 for i in range(mk.n)], dtype=bool)
        held = np.nonzero(x)[0].tolist()
        if (
            all(
                sorted(ch.merchant_choice(m, mine)) == mine
                for m in range(len(mk.merchant_quota))
                if (mine := [i for i in held if mk.pair_merchant[i] == m])
            )
            and all(
                sorted(ch.talent_choice(t, theirs)) == theirs
                for t in range(len(mk.talent_quota))
                if (theirs := [i for i in held if mk.pair_talent[i] == t])
            )
            and blocking_pairs(mk, x) == 0
        ):
            return True
    return False


def test_with_budgets_blocked_answers_are_rare() -> None:
    # without substitutable choices deferred acceptance plus the path to stability may end
    # blocked: measured in 7 of 6,000 runs (seeds 0..2999, both sides), 6 of them markets with
    # no stable matching at all and 1 (seed 1140, merchants proposing) where one existed
    blocked = sum(
        blocking_pairs(mk, deferred_acceptance(mk, proposing=side)) > 0
        for seed in range(400)
        for mk in [_market(seed, limits=True)]
        for side in ("merchants", "talents")
    )
    assert blocked <= 4  # 1% of 800


def test_with_budgets_a_market_may_have_no_stable_matching() -> None:
    # found by hypothesis: with budgets and a competitor pair the choices are not substitutable
    # and no set of pairs is stable; the matching then keeps its limits and says it blocks
    mk = _market(25949, limits=True)
    assert mk.n == 13 and not _a_stable_matching_exists(mk)
    assert blocking_pairs(mk, deferred_acceptance(mk)) == 1


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 100_000), st.sampled_from(["merchants", "talents"]))
def test_matching_with_budgets_and_competitors_keeps_every_limit(seed: int, proposing: str) -> None:
    mk = _market(seed, limits=True)
    x = deferred_acceptance(mk, proposing=proposing)
    # stability is not guaranteed here (see the tests below); the limits always are
    assert mk.cost is not None and mk.merchant_budget is not None
    spend = np.bincount(mk.pair_merchant[x], weights=mk.cost[x], minlength=4)
    assert (spend <= mk.merchant_budget + 1e-9).all()
    for t in range(5):
        served = set(mk.pair_merchant[x & (mk.pair_talent == t)].tolist())
        assert not {0, 1} <= served, "a talent serves two competitors"


def test_merchant_proposing_is_merchant_optimal_among_stable_matchings() -> None:
    mk = _market(7, limits=False)
    x = deferred_acceptance(mk, proposing="merchants")
    # every stable matching, by brute force: no merchant does better in any of them
    stable = [
        np.array(bits, dtype=bool)
        for bits in itertools.product([False, True], repeat=mk.n)
        if _feasible_quota(mk, np.array(bits, dtype=bool))
        and _blocks_quota_only(mk, np.array(bits, dtype=bool)) == 0
    ]
    assert any((s == x).all() for s in stable)
    for s in stable:
        for m in range(4):
            mine_x = sorted(mk.merchant_score[x & (mk.pair_merchant == m)], reverse=True)
            mine_s = sorted(mk.merchant_score[s & (mk.pair_merchant == m)], reverse=True)
            assert mine_x >= mine_s[: len(mine_x)] or len(mine_s) <= len(mine_x)


def _feasible_quota(mk: TwoSidedMarket, x: np.ndarray) -> bool:
    return bool(
        (np.bincount(mk.pair_merchant[x], minlength=4) <= mk.merchant_quota).all()
        and (np.bincount(mk.pair_talent[x], minlength=5) <= mk.talent_quota).all()
    )


def test_a_value_optimal_matching_can_be_unstable() -> None:
    # m0 values t0 most; t0 values m1 most; the value-optimal pairing ignores t0's wish
    mk = TwoSidedMarket(
        np.array([0, 0, 1]),
        np.array([0, 1, 0]),
        np.array([10.0, 1.0, 2.0]),
        np.array([1.0, 1.0, 5.0]),
        np.array([1, 1]),
        np.array([1, 1]),
    )
    value_optimal = np.array([True, False, False])
    assert blocking_pairs(mk, value_optimal) == 1
    assert blocking_pairs(mk, deferred_acceptance(mk)) == 0


def test_unknown_side() -> None:
    with pytest.raises(BadArgument, match="--proposing"):
        deferred_acceptance(_market(1, limits=False), proposing="agencies")


@pytest.mark.parametrize("proposing", ["merchants", "talents"])
def test_the_stable_option_keeps_to_eligible_campaign_merchants(
    tiny_features: MarketFeatures, proposing: str
) -> None:
    f = tiny_features
    g = int(np.argmax(np.asarray(f.merchant_campaigns.sum(axis=0)).ravel()))
    joined = f.merchant_campaigns[:, g].toarray().ravel() > 0
    first = int(np.nonzero(joined)[0][0])
    risk = f.merchant_risk.copy()
    risk[first] = 1.0  # one of the campaign's merchants is excluded for compliance
    h = replace(f, merchant_risk=risk)
    a = assign_market(
        h, candidates=5, campaign=str(f.campaign_ids[g]), method="stable", proposing=proposing
    )
    served = {h.merchant_row(m) for m, _, _, _ in a.pairs}
    assert served and all(joined[m] for m in served) and first not in served
    assert a.blocking_pairs == 0
