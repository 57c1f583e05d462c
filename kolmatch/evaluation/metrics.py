"""Ranking metrics over held-out truth (NDCG@k, recall@k) and their bootstrap intervals."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from kolmatch.evaluation.task import Task

__all__ = ["NDCG_K", "RECALL_K", "bootstrap_mean", "ndcg_at", "recall_at", "top_k"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: The cut-offs reported: NDCG@20 and recall@50.
NDCG_K, RECALL_K = 20, 50


def top_k(score: F64, k: int) -> I64:
    """The ``k`` best finite scores' positions, best first; ties go to the lower position.

    Examples
    --------
    >>> top_k(np.array([0.5, 2.0, -np.inf, 2.0, np.nan]), 3).tolist()
    [1, 3, 0]
    """
    s = np.where(np.isnan(score), -np.inf, score)
    order = np.lexsort((np.arange(len(s)), -s))
    return order[np.isfinite(s[order])][:k].astype(np.int64)


def ndcg_at(score: F64, relevance: F64, k: int) -> float:
    """NDCG@k with linear gains: DCG of the top k by ``score`` over the best possible DCG.

    Discount ``1 / log2(rank + 1)``; talents with a non-finite score are not ranked. NaN if
    nothing is relevant.

    Examples
    --------
    >>> round(ndcg_at(np.array([3.0, 2.0, 1.0]), np.array([0.0, 2.0, 1.0]), 2), 4)
    0.4796
    """
    top = top_k(score, k)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.sort(relevance)[::-1][:k]
    idcg = float(ideal @ disc[: len(ideal)])
    if idcg <= 0:
        return float("nan")
    return float(relevance[top] @ disc[: len(top)]) / idcg


def recall_at(score: F64, relevance: F64, k: int) -> float:
    """Share of the held-out gain that the top k by ``score`` hold (plain recall if 0/1).

    Examples
    --------
    >>> recall_at(np.array([3.0, 2.0, 1.0]), np.array([0.0, 2.0, 1.0]), 2)
    0.6666666666666666
    """
    total = float(relevance.sum())
    if total <= 0:
        return float("nan")
    return float(relevance[top_k(score, k)].sum()) / total


def bootstrap_mean(
    values: Sequence[float] | F64, *, seed: int, resamples: int = 1000, level: float = 0.95
) -> tuple[float, float, float]:
    """The mean and a percentile bootstrap interval of it (values resampled with replacement).

    The same ``seed`` resamples the same merchants for every ranker, so intervals are paired.

    Examples
    --------
    >>> bootstrap_mean([1.0, 1.0, 1.0], seed=0)
    (1.0, 1.0, 1.0)
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (float("nan"),) * 3
    idx = np.random.default_rng(seed).integers(0, v.size, size=(resamples, v.size))
    means = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(v.mean()), float(lo), float(hi)


def _mean_metric(scores: F64, task: Task, k: int, metric: Callable[[F64, F64, int], float]) -> F64:
    """The metric for every evaluated merchant, excluded pairs masked."""
    rel = task.relevance.toarray()
    mask = task.excluded.toarray() > 0
    s = np.where(mask, -np.inf, scores)
    return np.array([metric(s[m], rel[m], k) for m in range(len(task.merchant_ids))])
