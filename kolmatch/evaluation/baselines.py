"""The rankers the engine is held against, each an (M, T) score matrix (higher is better)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch.evaluation.metrics import NDCG_K, _mean_metric, ndcg_at
from kolmatch.evaluation.task import Task

__all__ = [
    "CATEGORY_SHARE",
    "K_GRID",
    "audience_cosine",
    "category_followers",
    "customers_following",
    "follower_count",
    "item_knn",
    "tune_knn",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: Item-kNN neighbourhood sizes tried on the validation split.
K_GRID = (5, 10, 20, 50, 100, 200)
#: Category + followers: a talent is "in the merchant's categories" from this share of its mix.
CATEGORY_SHARE = 0.2


def follower_count(followers: F64, merchants: int) -> F64:
    """Every merchant ranks talents by their reported followers.

    Examples
    --------
    >>> follower_count(np.array([5.0, 7.0]), 2).tolist()
    [[5.0, 7.0], [5.0, 7.0]]
    """
    f = np.nan_to_num(np.asarray(followers, dtype=np.float64))
    return np.tile(f, (merchants, 1))


def category_followers(
    talent_categories: F64,
    merchant_categories: F64,
    followers: F64,
    *,
    share: float = CATEGORY_SHARE,
) -> F64:
    """Talents in the merchant's categories first (``share`` of their mix or more), by followers.

    Examples
    --------
    >>> from kolmatch.evaluation.metrics import top_k
    >>> tc = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    >>> s = category_followers(tc, np.array([[0.0, 1.0]]), np.array([9.0, 1.0, 5.0]))
    >>> top_k(s[0], 3).tolist()
    [2, 1, 0]
    """
    mass = (talent_categories @ (merchant_categories > 0).T.astype(np.float64)).T  # (M, T)
    inside = mass >= share
    f = np.nan_to_num(np.asarray(followers, dtype=np.float64))
    rank = np.empty(len(f))
    rank[np.argsort(f, kind="stable")] = np.arange(len(f))
    return inside.astype(np.float64) + rank[None, :] / (len(f) + 1.0)


def customers_following(customers: sp.csr_matrix, follows: sp.csr_matrix) -> F64:
    """How many of the merchant's customers follow each talent (training follows).

    Examples
    --------
    >>> c = sp.csr_matrix([[1.0, 1.0, 0.0]])
    >>> f = sp.csr_matrix([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    >>> customers_following(c, f).tolist()
    [[2.0, 1.0]]
    """
    return np.asarray(sp.csr_matrix(customers @ follows).toarray(), dtype=np.float64)


def audience_cosine(customers: sp.csr_matrix, follows: sp.csr_matrix) -> F64:
    """Cosine between each talent's audience (users following it) and the merchant's customers.

    Examples
    --------
    >>> c = sp.csr_matrix([[1.0, 1.0, 0.0]])
    >>> f = sp.csr_matrix([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    >>> np.round(audience_cosine(c, f), 4).tolist()
    [[1.0, 0.5]]
    """
    both = customers_following(customers, follows)
    aud = np.sqrt(np.asarray(follows.sum(axis=0)).ravel())
    cust = np.sqrt(np.asarray(customers.sum(axis=1)).ravel())
    norm = cust[:, None] * aud[None, :]
    out: F64 = np.divide(both, norm, out=np.zeros_like(both), where=norm > 0)
    return out


def _neighbours(follows: sp.csr_matrix, k: int, *, block: int = 512) -> tuple[I64, F64]:
    """Each talent's ``k`` most similar talents (audience cosine, self excluded), best first."""
    f = sp.csc_matrix(follows, dtype=np.float64)
    f.data[:] = 1.0
    T = f.shape[1]
    k = max(1, min(k, T - 1))
    norms = np.sqrt(np.asarray(f.sum(axis=0)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    ft = sp.csr_matrix(f.T)
    idx = np.zeros((T, k), dtype=np.int64)
    val = np.zeros((T, k))
    for a in range(0, T, block):
        b = min(a + block, T)
        sim = np.asarray(sp.csr_matrix(ft[a:b] @ f).toarray()) * inv[a:b, None] * inv[None, :]
        sim[np.arange(b - a), np.arange(a, b)] = -1.0  # never one's own neighbour
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        pv = np.take_along_axis(sim, part, axis=1)
        order = np.lexsort((part, -pv), axis=1)  # by similarity, ties by position
        idx[a:b] = np.take_along_axis(part, order, axis=1)
        val[a:b] = np.maximum(np.take_along_axis(pv, order, axis=1), 0.0)
    return idx, val


def _knn_parts(
    customers: sp.csr_matrix, follows: sp.csr_matrix, idx: I64, val: F64, k: int
) -> tuple[F64, F64]:
    """Item-kNN through each talent's first ``k`` neighbours: the (M, T) sum over all
    customers, and the part of it that comes from customers already following the talent.

    Per customer c, ``score_c(t) = sum over j followed by c of sim_k(j, t)``; the second part
    is read only at follow pairs, a block of users at a time.
    """
    T = idx.shape[0]
    k = min(k, idx.shape[1])
    rows = np.repeat(np.arange(T), k)
    sim = sp.csr_matrix((val[:, :k].ravel(), (rows, idx[:, :k].ravel())), shape=(T, T))
    f = sp.csr_matrix(follows, dtype=np.float64)
    total = np.asarray(sp.csr_matrix(sim.T) @ customers_following(customers, f).T).T
    parts = [
        sp.csr_matrix(sp.csr_matrix(f[a : a + 2048] @ sim).multiply(f[a : a + 2048]))
        for a in range(0, f.shape[0], 2048)
    ]
    own = sp.vstack(parts, format="csr") if parts else sp.csr_matrix(f.shape)
    return total, np.asarray(sp.csr_matrix(customers @ own).toarray(), dtype=np.float64)


def item_knn(
    customers: sp.csr_matrix, follows: sp.csr_matrix, k: int, *, new_only: bool = True
) -> F64:
    """Item-kNN for a merchant: summed over its customers, each one's item-kNN score.

    Talent-talent similarity is the cosine of their audiences (training follows), each talent
    keeping its ``k`` nearest; a customer scores a talent by the summed similarity of the
    talents it follows to it. With ``new_only`` only customers not yet following the talent
    count (they alone can follow it anew); otherwise all do.

    Examples
    --------
    >>> f = sp.csr_matrix([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    >>> c = sp.csr_matrix([[1.0, 0.0, 1.0]])
    >>> [np.round(item_knn(c, f, 1, new_only=n), 4).tolist() for n in (True, False)]
    [[[0.5, 0.0, 0.0]], [[1.5, 1.0, 0.0]]]
    """
    idx, val = _neighbours(follows, k)
    total, own = _knn_parts(customers, follows, idx, val, k)
    return total - own if new_only else total


def tune_knn(task: Task, ks: Iterable[int] = K_GRID) -> tuple[tuple[int, bool], dict[str, float]]:
    """The item-kNN ``k`` and ``new_only`` with the best mean NDCG@20 on ``task`` (validation).

    Returns
    -------
    ((int, bool), dict)
        The best ``(k, new_only)`` (smaller ``k`` first among ties) and the mean NDCG@20 of
        each setting tried, keyed ``"k=50 new"`` / ``"k=50 all"``.
    """
    ks = sorted(set(ks))
    idx, val = _neighbours(task.follows, max(ks))
    means: dict[tuple[int, bool], float] = {}
    for k in ks:
        total, own = _knn_parts(task.customers, task.follows, idx, val, k)
        for new_only in (True, False):
            s = total - own if new_only else total
            means[k, new_only] = float(np.nanmean(_mean_metric(s, task, NDCG_K, ndcg_at)))
    best = max(means, key=lambda kn: (means[kn], -kn[0], kn[1]))
    return best, {f"k={k} {'new' if n else 'all'}": v for (k, n), v in means.items()}
