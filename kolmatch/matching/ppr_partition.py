"""The category PPR tails (:func:`~kolmatch.matching.personalised.category_ppr_tails`) per chunk.

Each category's walk from its buyers is its own solve; :func:`category_ppr_tails` solves
:data:`~kolmatch.matching.personalised.PPR_CHUNK` categories together. Here each chunk is a
part of a :class:`~kolmatch.matching.partition.PartitionMap`, the audience graph the value every
part shares: the same chunks, the same arithmetic, so the tails are the same bits whether the
chunks run in this process or on a cluster's workers (a test holds them to
``category_ppr_tails``). Chunking is by category, not by user: every iteration of a walk
touches every user, so a user partition would need a reduce per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch.matching.partition import PartitionMap
from kolmatch.matching.personalised import PPR_ALPHA, PPR_CHUNK, bipartite_ppr, first_step

__all__ = ["PprChunk", "PprShared", "partitioned_ppr_tails", "ppr_chunks", "ppr_tail_chunk"]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class PprChunk:
    """A few categories' buyers: (U, k) 1 where the user (in some audience) bought in them."""

    buyers: sp.csc_matrix


@dataclass(frozen=True)
class PprShared:
    """The audience graph every chunk walks on, broadcast once."""

    by_user: sp.csr_matrix  # (U, T) audience weights
    by_talent: sp.csr_matrix  # (T, U) its transpose, made once for every chunk
    alpha: float


def ppr_chunks(by_user: sp.csr_matrix, category_buyers: sp.spmatrix) -> list[PprChunk]:
    """The categories' buyers in chunks of ``PPR_CHUNK``, buyers in no audience left out."""
    deg = np.asarray(by_user.sum(axis=1)).ravel()
    live = sp.diags((deg > 0).astype(np.float64))
    buyers = sp.csc_matrix(live @ sp.csr_matrix(category_buyers, dtype=np.float64))
    n_c = buyers.shape[1]
    return [
        PprChunk(sp.csc_matrix(buyers[:, lo : min(lo + PPR_CHUNK, n_c)]))
        for lo in range(0, n_c, PPR_CHUNK)
    ]


def ppr_tail_chunk(chunk: PprChunk, shared: PprShared) -> F64:
    """(k, T): each of the chunk's categories' PageRank from its buyers, less the first step.

    A pure function of its arguments (it runs on a cluster's worker as well as here).
    """
    _, talents = bipartite_ppr(
        shared.by_user,
        np.asarray(chunk.buyers.todense(), dtype=np.float64),  # normalised in place
        alpha=shared.alpha,
        transposed=shared.by_talent,
        overwrite_seeds=True,
    )
    out = np.zeros((chunk.buyers.shape[1], shared.by_user.shape[1]))
    for j in range(chunk.buyers.shape[1]):
        first = first_step(shared.by_user, chunk.buyers[:, j].indices, alpha=shared.alpha)
        out[j] = np.maximum(talents[:, j] - first, 0.0)
    return out


def partitioned_ppr_tails(
    by_user: sp.csr_matrix,
    category_buyers: sp.spmatrix,
    partitions: PartitionMap,
    *,
    alpha: float = PPR_ALPHA,
) -> F64:
    """:func:`~kolmatch.matching.personalised.category_ppr_tails`, its chunks mapped by
    ``partitions``: (C, T), the chunks' rows in category order.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from kolmatch.matching.partition import in_process
    >>> w = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 1.0]]))
    >>> buyers = sp.csr_matrix(np.array([[1.0], [0.0]]))
    >>> partitioned_ppr_tails(w, buyers, in_process, alpha=0.5).round(4).tolist()
    [[0.0611, 0.0222]]
    """
    chunks = ppr_chunks(by_user, category_buyers)
    if not chunks:
        return np.zeros((0, by_user.shape[1]))
    w = sp.csr_matrix(by_user, dtype=np.float64)
    shared = PprShared(w, w.T.tocsr(), alpha)
    return np.vstack(list(partitions(ppr_tail_chunk, chunks, shared)))
