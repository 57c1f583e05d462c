"""The held-out ranking task: what rankers may read, and the truth they are scored on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["Task"]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Task:
    """One held-out ranking task: what rankers may read, and the held-out truth they are scored on.

    Shapes: T talents (candidates, in ``talent_ids`` order), M evaluated merchants, U users,
    C categories. Rankers read only the training side: ``followers``, the category mixes,
    ``follows`` and ``customers``; ``relevance`` is the held-out truth.
    """

    dataset: str
    split: str
    folder: Path | None  # the converted import folder (training side only); None if not written
    talent_ids: NDArray[np.str_]
    merchant_ids: NDArray[np.str_]  # the evaluated merchants (those with held-out truth)
    followers: F64  # (T,)
    talent_categories: F64  # (T, C) rows sum to 1 (0 for a talent with no category)
    merchant_categories: F64  # (M, C) rows sum to 1
    follows: sp.csr_matrix  # (U, T) training follows, 1 per pair; U = 0 without users
    customers: sp.csr_matrix  # (M, U) 1 where the user bought from the merchant in training
    relevance: sp.csr_matrix  # (M, T) held-out gain of each talent for each merchant
    excluded: sp.csr_matrix  # (M, T) 1 where a talent is not a candidate for the merchant
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def has_users(self) -> bool:
        return bool(self.follows.shape[0] > 0)
