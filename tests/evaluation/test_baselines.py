"""Baselines on toy markets: audience counts and cosines, categories, item-kNN brute-forced."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.evaluation.baselines import (
    audience_cosine,
    category_followers,
    customers_following,
    follower_count,
    item_knn,
    tune_knn,
)
from kolmatch.evaluation.convert import convert_twitch_follows
from kolmatch.evaluation.metrics import top_k
from tests.evaluation.sources import twitch_follows

# 4 users x 3 talents; customers of merchant 0: users 0 and 1, of merchant 1: user 3
F = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1]], dtype=np.float64))
CUST = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64))


def test_audience_baselines_on_a_toy_market() -> None:
    assert customers_following(CUST, F).tolist() == [[2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    # audiences: t0 {0, 1}, t1 {0, 2}, t2 {2, 3}
    cos = audience_cosine(CUST, F)
    assert cos[0] == pytest.approx([1.0, 0.5, 0.0])
    assert cos[1] == pytest.approx([0.0, 0.0, 1 / math.sqrt(2)])
    assert follower_count(np.array([3.0, np.nan, 1.0]), 2).tolist() == [[3, 0, 1], [3, 0, 1]]
    tc = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    s = category_followers(tc, np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([10.0, 1.0, 5.0]))
    assert top_k(s[0], 3).tolist() == [1, 0, 2]  # only t1 is in category 1; then by followers
    assert top_k(s[1], 3).tolist() == [0, 2, 1]


def test_item_knn_matches_a_brute_force_count() -> None:
    rng = np.random.default_rng(0)
    f = sp.csr_matrix((rng.random((30, 8)) < 0.3).astype(np.float64))
    cust = sp.csr_matrix((rng.random((3, 30)) < 0.4).astype(np.float64))
    d = f.toarray()
    norms = np.sqrt(d.sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.nan_to_num(d.T @ d / np.outer(norms, norms))
    np.fill_diagonal(sim, -1.0)
    for k in (1, 3, 7):
        keep = np.zeros_like(sim)
        for j in range(8):
            order = np.lexsort((np.arange(8), -sim[j]))[:k]
            keep[j, order] = np.maximum(sim[j, order], 0.0)
        for new_only in (True, False):
            want = np.zeros((3, 8))
            for m in range(3):
                for u in np.nonzero(cust.toarray()[m])[0]:
                    per = d[u] @ keep
                    want[m] += per * (1 - d[u]) if new_only else per
            got = item_knn(cust, f, k, new_only=new_only)
            assert got == pytest.approx(want), (k, new_only)


def test_tune_knn_returns_a_setting_it_tried(tmp_path: Path) -> None:
    task = convert_twitch_follows(twitch_follows(tmp_path), None, min_customers=1)
    (k, new_only), tried = tune_knn(task, ks=(1, 2))
    assert f"k={k} {'new' if new_only else 'all'}" in tried and len(tried) == 4
