"""Real follows held out: do graph signals recover them better than popularity does?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["HoldoutRecovery", "holdout_recovery"]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class HoldoutRecovery:
    """How well each ranker recovers held-out follows: hit rate and recall at k."""

    users: int
    k: int
    hit_rate: dict[str, float]
    recall: dict[str, float]


def holdout_recovery(
    train: sp.csr_matrix,
    test_users: NDArray[np.int64],
    test_talents: NDArray[np.int64],
    platform_followers: F64,
    talent_category: F64,
    *,
    k: int = 10,
    max_users: int = 3000,
    seed: int = 0,
) -> HoldoutRecovery:
    """Rank talents for users from their training follows; score on their held-out follows.

    Rankers: platform popularity (follower count), in-sample popularity, category match
    (the categories of the user's talents) then popularity, and audience lookalikes
    (item-based cosine over the training audience, :mod:`kolmatch.matching.audience`).

    Parameters
    ----------
    train
        (users x talents) training follows.
    test_users, test_talents
        The held-out pairs, as row and column indices of ``train``.
    platform_followers
        (talents,) follower counts the platform reports.
    talent_category
        (talents, categories) category mix of each talent.
    k, max_users, seed
        List length; how many users with held-out follows to sample.
    """
    f = sp.csr_matrix(train, dtype=np.float64)
    f.data[:] = 1.0
    held: dict[int, set[int]] = {}
    for u, t in zip(test_users.tolist(), test_talents.tolist(), strict=True):
        held.setdefault(u, set()).add(t)
    users = np.array(sorted(u for u in held if f[u].nnz > 0), dtype=np.int64)
    rng = np.random.default_rng(seed)
    if len(users) > max_users:
        users = np.sort(rng.choice(users, size=max_users, replace=False))
    fe = f[users]
    b = f.T.tocsr()
    norms = np.sqrt(np.asarray(b.sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    n = sp.csr_matrix(sp.diags(inv) @ b)
    sim = np.asarray((n @ n.T).todense())
    np.fill_diagonal(sim, 0.0)
    pop = np.log1p(np.nan_to_num(platform_followers))
    sample_pop = np.asarray(f.sum(axis=0)).ravel()
    user_cats = np.asarray(fe @ talent_category)  # (E, C)
    rankers = {
        "popularity (platform followers)": np.broadcast_to(pop, fe.shape),
        "popularity (in-sample follows)": np.broadcast_to(sample_pop, fe.shape),
        "category match + popularity": (user_cats @ talent_category.T) * 100.0 + pop[None, :],
        "audience lookalikes (graph)": np.asarray(fe @ sim),
    }
    seen = fe.toarray() > 0
    hit: dict[str, float] = {}
    rec: dict[str, float] = {}
    for name, score in rankers.items():
        s = np.where(seen, -np.inf, score)
        top = np.argpartition(-s, k, axis=1)[:, :k]
        hits = [len(held[int(u)] & set(top[i].tolist())) for i, u in enumerate(users)]
        hit[name] = float(np.mean([h > 0 for h in hits]))
        rec[name] = float(
            np.mean([h / len(held[int(u)]) for h, u in zip(hits, users, strict=True)])
        )
    return HoldoutRecovery(len(users), k, hit, rec)
