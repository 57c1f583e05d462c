"""Ranking metrics: NDCG and recall against hand-computed values, ties, the bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kolmatch.evaluation.metrics import bootstrap_mean, ndcg_at, recall_at, top_k


def test_ndcg_and_recall_match_hand_computed_values() -> None:
    score = np.array([3.0, 2.0, 1.0, 0.0])
    rel = np.array([0.0, 2.0, 1.0, 0.0])
    # top 2 = [0, 1]: DCG = 2 / log2(3); ideal [2, 1]: 2 + 1 / log2(3)
    assert ndcg_at(score, rel, 2) == pytest.approx((2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert recall_at(score, rel, 2) == pytest.approx(2 / 3)
    # top 3 = [0, 1, 2]: DCG = 2 / log2(3) + 1 / 2
    assert ndcg_at(score, rel, 3) == pytest.approx(
        (2 / math.log2(3) + 0.5) / (2 + 1 / math.log2(3))
    )
    assert recall_at(score, rel, 3) == pytest.approx(1.0)
    assert ndcg_at(-score, rel[::-1].copy(), 4) == pytest.approx(
        (2 / math.log2(3) + 1 / math.log2(4)) / (2 + 1 / math.log2(3))
    )
    assert ndcg_at(rel, rel, 20) == pytest.approx(1.0)  # best order, k past the end
    assert math.isnan(ndcg_at(score, np.zeros(4), 2)) and math.isnan(
        recall_at(score, np.zeros(4), 2)
    )


def test_excluded_talents_are_not_ranked_and_ties_go_to_the_lower_position() -> None:
    rel = np.array([1.0, 0.0, 0.0])
    assert top_k(np.array([1.0, 1.0, 1.0]), 2).tolist() == [0, 1]
    assert ndcg_at(np.array([-np.inf, 1.0, 1.0]), rel, 20) == 0.0
    assert recall_at(np.array([np.nan, 1.0, 2.0]), rel, 20) == 0.0
    assert top_k(np.array([-np.inf, np.nan]), 5).tolist() == []


def test_bootstrap_interval_is_seeded_and_holds_the_mean() -> None:
    v = np.random.default_rng(1).random(50)
    m, lo, hi = bootstrap_mean(v, seed=7)
    assert m == pytest.approx(v.mean()) and lo < m < hi
    assert (m, lo, hi) == bootstrap_mean(v, seed=7)
    assert bootstrap_mean([2.0], seed=0) == (2.0, 2.0, 2.0)
