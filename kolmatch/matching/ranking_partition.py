"""Every merchant's default match list (the batch of internal tools), in ranges of merchants.

The same per-merchant arithmetic as :func:`~kolmatch.matching.score.rank_merchants`
(signals, one score, the ranking order, the top ``depth``), written as a function of a range of
merchants and the features every range shares, so that a
:class:`~kolmatch.matching.partition.PartitionMap` can run the ranges anywhere (a Dask cluster
from the engine) and the blocks stack in merchant order: the same rankings, row for row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.partition import PartitionMap, row_ranges
from kolmatch.matching.score import SIGNALS, STANDARDISED, MerchantRankings, rank_into

__all__ = ["MERCHANT_PARTITION_ROWS", "RankingShared", "partitioned_rankings", "ranking_block"]

#: Merchants per part: a part is seconds of work at m (~0.3 s a merchant), the features it
#: shares are sent once per worker.
MERCHANT_PARTITION_ROWS = 50


@dataclass(frozen=True)
class RankingShared:
    """What every range of merchants reads: the features and the list depth."""

    features: MarketFeatures
    depth: int


def ranking_block(part: tuple[int, int], shared: RankingShared) -> MerchantRankings:
    """The rankings of merchants ``[lo, hi)``: rows of :class:`MerchantRankings`, in order."""
    lo, hi = part
    f, depth = shared.features, shared.depth
    n, k = hi - lo, len(SIGNALS)
    rows = np.full((n, depth), -1, dtype=np.int64)
    scores = np.full((n, depth), -np.inf)
    signals = np.zeros((n, depth, k))
    eligible = np.zeros(n, dtype=np.int64)
    bases = np.full((n, depth), -np.inf)
    moments = np.zeros((n, len(STANDARDISED), 2))
    for i, m in enumerate(range(lo, hi)):
        rank_into(f, m, rows[i], scores[i], signals[i], eligible, i, bases[i], moments[i])
    return MerchantRankings(
        depth, rows, scores, signals, eligible, bases, np.minimum(eligible, depth), moments
    )


def partitioned_rankings(
    f: MarketFeatures,
    partitions: PartitionMap,
    *,
    depth: int = 200,
    merchants_per_part: int = MERCHANT_PARTITION_ROWS,
) -> MerchantRankings:
    """Every merchant's top ``depth`` talents by the default score, ranges mapped by
    ``partitions`` (:func:`~kolmatch.matching.score.rank_merchants`'s result).

    Raises
    ------
    BadArgument
        If ``merchants_per_part`` is not a positive whole number.
    """
    ranges = row_ranges(len(f.merchant_ids), merchants_per_part, argument="merchants_per_part")
    blocks = list(partitions(ranking_block, ranges, RankingShared(f, depth)))
    return MerchantRankings(
        depth,
        np.concatenate([b.rows for b in blocks]),
        np.concatenate([b.scores for b in blocks]),
        np.concatenate([b.signals for b in blocks]),
        np.concatenate([b.eligible for b in blocks]),
        np.concatenate([b.bases for b in blocks]),
        np.concatenate([b.valid for b in blocks]),
        np.concatenate([b.moments for b in blocks]),
    )
