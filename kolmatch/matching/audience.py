"""Audience overlap and lookalikes over a (talents x users) audience matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["Overlap", "overlap", "pair_overlaps", "recommend_by_lookalikes", "similar_talents"]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Overlap:
    """Shared audience of two talents."""

    shared: int
    share_of_smaller: float  # shared / min(|A|, |B|)
    jaccard: float  # shared / |A u B|


def _binary(audience: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    b = sp.csr_matrix(audience, dtype=np.float64)
    b.data[:] = 1.0
    return b


def pair_overlaps(
    audience: sp.spmatrix | sp.sparray, rows: NDArray[np.int64]
) -> list[tuple[int, int, Overlap]]:
    """The overlap of every pair among ``rows`` that shares any user: (row a, row b, overlap).

    Pairs come in the order of ``rows`` (a before b), sorted; one sparse product for all.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> a = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [0, 0, 0]]))
    >>> pair_overlaps(a, np.array([0, 1, 2]))
    [(0, 1, Overlap(shared=1, share_of_smaller=0.5, jaccard=0.3333333333333333))]
    """
    e = _binary(sp.csr_matrix(audience)[rows])
    size = np.diff(e.indptr)
    inter = sp.triu(e @ e.T, k=1).tocoo()
    out = []
    triples = zip(inter.row.tolist(), inter.col.tolist(), inter.data.tolist(), strict=True)
    for i, j, s in sorted(triples):
        shared = int(s)
        if shared:
            out.append(
                (
                    int(rows[i]),
                    int(rows[j]),
                    Overlap(
                        shared,
                        float(shared / min(size[i], size[j])),
                        float(shared / (size[i] + size[j] - shared)),
                    ),
                )
            )
    return out


def overlap(audience: sp.spmatrix | sp.sparray, a: int, b: int) -> Overlap:
    """Audience overlap of talent rows ``a`` and ``b``.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> m = sp.csr_matrix([[1, 1, 1, 0], [0, 1, 1, 1]])
    >>> overlap(m, 0, 1)
    Overlap(shared=2, share_of_smaller=0.6666666666666666, jaccard=0.5)
    """
    m = _binary(audience)
    ra, rb = m[a], m[b]
    shared = int(ra.multiply(rb).sum())
    na, nb = int(ra.sum()), int(rb.sum())
    union = na + nb - shared
    return Overlap(
        shared, shared / min(na, nb) if min(na, nb) else 0.0, shared / union if union else 0.0
    )


def similar_talents(
    audience: sp.spmatrix | sp.sparray, t: int, top: int = 10
) -> tuple[NDArray[np.int64], F64]:
    """Talents whose audiences look most like talent ``t``'s (cosine of audience vectors).

    Returns the rows (``t`` itself left out) and their similarities, best first; ties by row.
    """
    m = _binary(audience)
    norms = np.sqrt(np.asarray(m.sum(axis=1)).ravel())
    dots = np.asarray((m @ m[t].T).todense()).ravel()
    sim = np.divide(dots, norms * norms[t], out=np.zeros_like(dots), where=norms > 0)
    sim[t] = -1.0
    order = np.lexsort((np.arange(len(sim)), -sim))[:top]
    order = order[sim[order] > 0]
    return order, sim[order]


def recommend_by_lookalikes(
    audience: sp.spmatrix | sp.sparray, liked: NDArray[np.int64], top: int = 10
) -> tuple[NDArray[np.int64], F64]:
    """Talents to suggest to someone who likes the ``liked`` talents (item-based, cosine).

    Each candidate scores the sum of its audience similarity to the liked talents;
    the liked talents themselves are left out.
    """
    m = _binary(audience)
    norms = np.sqrt(np.asarray(m.sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    n = sp.diags(inv) @ m
    profile = np.asarray(n[liked].sum(axis=0)).ravel()  # (U,)
    score = n @ profile
    score[liked] = -np.inf
    order = np.lexsort((np.arange(len(score)), -score))[:top]
    return order, score[order]
