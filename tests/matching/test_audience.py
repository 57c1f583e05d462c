"""Audience overlap, lookalikes, and their proof on real Twitch follows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.matching.audience import overlap, recommend_by_lookalikes, similar_talents
from tests.conftest import SHARED_DATA

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


@pytest.mark.skipif(
    not (SHARED_DATA / "twitch-follows").is_dir(),
    reason="../shared/data/twitch-follows is not beside this clone",
)
def test_lookalikes_recover_real_held_out_follows_better_than_popularity(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "real_twitch", Path(__file__).resolve().parents[2] / "bench" / "real_twitch.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.run(SHARED_DATA / "twitch-follows", tmp_path, k=10)
    assert r.users == 3000
    best_pop = max(
        r.recall["popularity (platform followers)"], r.recall["popularity (in-sample follows)"]
    )
    assert r.recall["audience lookalikes (graph)"] > 2 * best_pop
    assert r.hit_rate["audience lookalikes (graph)"] > r.hit_rate["category match + popularity"]
