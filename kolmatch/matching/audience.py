"""Audience overlap and lookalikes over a (talents x users) audience matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = [
    "FOLLOW_WEIGHT",
    "Homophily",
    "Overlap",
    "audience_weights",
    "category_homophily",
    "overlap",
    "pair_overlaps",
    "recommend_by_lookalikes",
    "similar_talents",
]

F64 = NDArray[np.float64]

#: What a bare follow weighs in an audience, against 1 for a user who engaged with the talent's
#: content (docs/scoring.md): a follow is a standing interest, an engagement a shown one.
FOLLOW_WEIGHT = 0.5


def audience_weights(engaged: sp.csr_matrix, follows: sp.csr_matrix) -> sp.csr_matrix:
    """(users x talents) audience weights: 1 if the user engaged, else FOLLOW_WEIGHT if it follows.

    Parameters
    ----------
    engaged
        (talents x users) engagement strength (any positive value counts as engaged).
    follows
        (users x talents) 1 where the user follows the talent.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> e = sp.csr_matrix([[2.0, 0.0], [0.0, 0.0]])  # talent 0 engaged user 0
    >>> f = sp.csr_matrix([[1.0, 1.0], [1.0, 0.0]])  # user 0 follows both, user 1 talent 0
    >>> audience_weights(e, f).toarray().tolist()
    [[1.0, 0.5], [0.5, 0.0]]
    """
    e = sp.csr_matrix(engaged.T > 0, dtype=np.float64)
    fo = sp.csr_matrix(follows > 0, dtype=np.float64)
    return sp.csr_matrix(e.maximum(FOLLOW_WEIGHT * fo))


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
    audience: sp.spmatrix | sp.sparray,
    t: int,
    top: int = 10,
    *,
    eligible: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[np.int64], F64]:
    """Talents whose audiences look most like talent ``t``'s (cosine of audience vectors).

    Returns the rows (``t`` itself left out) and their similarities, best first; ties by row.

    Parameters
    ----------
    audience
        (T, U) who is in each talent's audience (any nonzero counts).
    t
        The talent's row.
    top
        How many talents.
    eligible
        (T,) talents that may be suggested, the others left out (compliance:
        :func:`~kolmatch.matching.eligibility.talent_eligibility`). Default: all.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> m = sp.csr_matrix([[1, 1, 0], [1, 1, 0], [1, 0, 1]])
    >>> similar_talents(m, 0)[0].tolist()
    [1, 2]
    >>> similar_talents(m, 0, eligible=np.array([True, False, True]))[0].tolist()
    [2]
    """
    m = _binary(audience)
    norms = np.sqrt(np.asarray(m.sum(axis=1)).ravel())
    dots = np.asarray((m @ m[t].T).todense()).ravel()
    sim = np.divide(dots, norms * norms[t], out=np.zeros_like(dots), where=norms > 0)
    sim[t] = -1.0
    if eligible is not None:
        if eligible.shape != sim.shape:
            raise ValueError(f"eligible has shape {eligible.shape}, expected {sim.shape}")
        sim[~eligible] = -1.0
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


@dataclass(frozen=True)
class Homophily:
    """How much more a category's talents' audiences lean to it than other talents' audiences."""

    categories: NDArray[np.int64]  # the categories measured (enough talents)
    lift: F64  # per measured category: in-category audience interest / out-of-category
    median: float  # median lift over the measured categories
    interest: F64  # (T, C) each talent's audience interest, leave-one-out


def category_homophily(
    audience: sp.spmatrix | sp.sparray,
    talent_category: NDArray[np.int64],
    *,
    min_talents: int = 25,
) -> Homophily:
    """Audience homophily by category: the lift of a talent's audience's interest in its category.

    A user's interest in category c is the share of the *other* talents it follows (or engages
    with) whose category is c — leave-one-out, so following a Beauty talent does not by itself
    make its audience look Beauty-minded. A talent's audience interest ``I[t, c]`` is the mean
    over its users who have at least one other talent. The lift of c is the mean ``I[t, c]`` over
    the talents of category c against the mean over all other talents; it is measured the same
    way on any audience graph, real or generated.

    Parameters
    ----------
    audience
        (talents x users) audience matrix; nonzero means the user is in the talent's audience.
    talent_category
        (talents,) each talent's main category, as a non-negative integer.
    min_talents
        Categories with fewer talents than this are not measured.

    Returns
    -------
    Homophily
        Measured categories, their lifts, the median lift, and the (T, C) audience interest.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> # users 0-1 follow the two category-0 talents, users 2-3 the two category-1 talents
    >>> aud = sp.csr_matrix([[1, 1, 0, 0], [1, 1, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1]])
    >>> h = category_homophily(aud, np.array([0, 0, 1, 1]), min_talents=2)
    >>> h.lift.round(2).tolist()
    [1.67, 1.67]
    """
    m = _binary(audience)
    cat = np.asarray(talent_category, dtype=np.int64)
    if cat.shape != (m.shape[0],):
        raise ValueError(
            f"talent_category has shape {cat.shape}; the audience has {m.shape[0]} talents"
        )
    n_cat = int(cat.max()) + 1 if len(cat) else 0
    onehot = sp.csr_matrix((np.ones(len(cat)), (np.arange(len(cat)), cat)), shape=(len(cat), n_cat))
    per_user = np.asarray(m.sum(axis=0)).ravel()  # talents per user
    weight = np.divide(1.0, per_user - 1.0, out=np.zeros_like(per_user), where=per_user > 1)
    a = sp.csr_matrix(m @ sp.diags(weight))  # (T, U): 1 / (s_u - 1) per kept user
    interest = np.asarray((a @ (m.T @ onehot)).todense())  # (T, C): sums of R_u / (s_u - 1)
    interest[np.arange(len(cat)), cat] -= np.asarray(a.sum(axis=1)).ravel()  # leave t out
    kept = np.asarray((m @ sp.diags((per_user > 1).astype(np.float64))).sum(axis=1)).ravel()
    interest /= np.maximum(kept, 1.0)[:, None]
    has = kept > 0
    cats, lifts = [], []
    for c in range(n_cat):
        inside = cat == c
        if inside.sum() < min_talents:
            continue
        out_mean = interest[~inside & has, c].mean() if (~inside & has).any() else 0.0
        in_mean = interest[inside & has, c].mean() if (inside & has).any() else 0.0
        cats.append(c)
        lifts.append(in_mean / out_mean if out_mean > 0 else np.inf)
    lift = np.array(lifts, dtype=np.float64)
    median = float(np.median(lift)) if len(lift) else float("nan")
    return Homophily(np.array(cats, dtype=np.int64), lift, median, interest)
