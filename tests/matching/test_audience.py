"""Audience overlap, lookalikes, and their proof on real Twitch follows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from bench import real_twitch
from kolmatch.loaders.twitch import twitch_audience
from kolmatch.matching.audience import (
    category_homophily,
    overlap,
    recommend_by_lookalikes,
    similar_talents,
)
from tests.conftest import NEEDS_TWITCH, SHARED_DATA

M = sp.csr_matrix(
    [
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 1, 1],
        [0, 0, 0, 0, 1, 1],
    ]
)


def test_overlap_share_and_jaccard() -> None:
    o = overlap(M, 0, 1)
    assert (o.shared, o.share_of_smaller, o.jaccard) == (3, 1.0, 0.75)
    assert overlap(M, 1, 3).shared == 0 and overlap(M, 1, 3).jaccard == 0.0


def test_similar_talents_cosine_order() -> None:
    rows, sims = similar_talents(M, 0, top=3)
    assert rows.tolist() == [1, 2]  # talent 3 shares nobody with talent 0
    assert sims[0] == pytest.approx(3 / np.sqrt(4 * 3))
    assert sims[1] == pytest.approx(1 / np.sqrt(4 * 3))


def test_lookalike_recommendation_leaves_out_what_is_liked() -> None:
    rows, _ = recommend_by_lookalikes(M, np.array([2]), top=2)
    assert rows.tolist() == [3, 0]


@NEEDS_TWITCH
def test_lookalikes_recover_real_held_out_follows_better_than_popularity(tmp_path: Path) -> None:
    r = real_twitch.run(SHARED_DATA / "twitch-follows", tmp_path, k=10)
    assert r.users == 3000
    best_pop = max(
        r.recall["popularity (platform followers)"], r.recall["popularity (in-sample follows)"]
    )
    assert r.recall["audience lookalikes (graph)"] > 2 * best_pop
    assert r.hit_rate["audience lookalikes (graph)"] > r.hit_rate["category match + popularity"]


def _homophily_by_loops(aud: np.ndarray, cat: np.ndarray, min_talents: int) -> dict[int, float]:
    """The definition, written out: leave-one-out interest of each follower, then lifts."""
    T, U = aud.shape
    C = int(cat.max()) + 1
    interest = np.zeros((T, C))
    for t in range(T):
        kept = 0
        for u in range(U):
            if not aud[t, u]:
                continue
            others = [o for o in range(T) if o != t and aud[o, u]]
            if not others:
                continue
            kept += 1
            for o in others:
                interest[t, cat[o]] += 1.0 / len(others)
        interest[t] /= max(kept, 1)
    has = np.array(
        [sum(1 for u in range(U) if aud[t, u] and aud[:, u].sum() > 1) > 0 for t in range(T)]
    )
    out = {}
    for c in range(C):
        inside = cat == c
        if inside.sum() >= min_talents:
            out[c] = interest[inside & has, c].mean() / interest[~inside & has, c].mean()
    return out


def test_category_homophily_hand_worked() -> None:
    # t0, t1 (category 0) and t2, t3 (category 1); users 1 and 3 follow across categories.
    # t0's followers u0 (other: t1) and u1 (others: t1, t3) lean 1 and 1/2 to category 0: 3/4;
    # t1's: u0 1, u1 1/2, u3 0 -> 1/2; t2 (u2: t3 -> 0; u3: t1, t3 -> 1/2) -> 1/4;
    # t3 (u1: t0, t1 -> 1; u2 -> 0; u3: t1, t2 -> 1/2) -> 1/2. Lift of 0: (5/8) / (3/8).
    aud = sp.csr_matrix([[1, 1, 0, 0], [1, 1, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1]])
    h = category_homophily(aud, np.array([0, 0, 1, 1]), min_talents=2)
    assert h.categories.tolist() == [0, 1]
    assert h.lift == pytest.approx([5 / 3, 5 / 3])
    assert h.interest[:, 0] == pytest.approx([0.75, 0.5, 0.25, 0.5])
    assert category_homophily(aud, np.array([0, 0, 0, 1]), min_talents=2).categories.tolist() == [0]


def test_category_homophily_equals_its_definition_on_a_random_graph() -> None:
    rng = np.random.default_rng(7)
    aud = (rng.random((30, 80)) < 0.12).astype(np.float64)
    cat = rng.integers(0, 4, 30)
    h = category_homophily(sp.csr_matrix(aud), cat, min_talents=3)
    want = _homophily_by_loops(aud, cat, 3)
    assert h.categories.tolist() == sorted(want)
    assert h.lift == pytest.approx([want[c] for c in sorted(want)])


def test_category_homophily_names_a_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="talent_category has shape"):
        category_homophily(M, np.array([0, 1]))


@NEEDS_TWITCH
def test_real_audiences_gather_by_main_game() -> None:
    tw = twitch_audience(SHARED_DATA / "twitch-follows", categories=20)
    assert tw.audience.shape == (1904, 10985) and tw.audience.nnz == 222131
    assert tw.category_names[0] == "Just Chatting" and tw.category_names[-1] == "other"
    h = category_homophily(tw.audience, tw.category)
    assert len(h.lift) == 18  # categories with at least 25 streamers
    assert h.median == pytest.approx(8.97, abs=0.01)
    named = h.categories < 19  # "other" mixes many games: 1.9x
    assert (h.lift[named] > 2.0).all()
