"""Categories as sets: a product's category weights and a talent's categories from what it shows."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch.graph.projection import EdgeList

__all__ = ["primary_category", "product_category_weights", "talent_categories"]

F64 = NDArray[np.float64]


def product_category_weights(
    in_category: EdgeList, n_products: int, n_categories: int
) -> sp.csr_matrix:
    """(products x categories) weights: a product in k categories weighs 1/k in each.

    Equal weights, because the import format says only *that* a product is in a category, not
    how much; a product in no category has an empty row.

    Examples
    --------
    >>> import numpy as np
    >>> e = EdgeList("IN_CATEGORY", "Product", np.array([0, 0, 1]), np.array([0, 2, 1]), {})
    >>> product_category_weights(e, 3, 3).toarray().tolist()
    [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    m = sp.csr_matrix(
        (np.ones(len(in_category)), (in_category.src, in_category.dst)),
        shape=(n_products, n_categories),
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    k = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, k, out=np.zeros_like(k), where=k > 0)
    return sp.csr_matrix(sp.diags(inv) @ m)


def primary_category(weights: sp.csr_matrix) -> NDArray[np.int64]:
    """Each product's primary category: its heaviest, the first by id among equals; -1 if none.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> primary_category(sp.csr_matrix([[0.5, 0.0, 0.5], [0.0, 0.0, 0.0]])).tolist()
    [0, -1]
    """
    dense = np.asarray(weights.todense())
    if dense.shape[1] == 0:
        return np.full(dense.shape[0], -1, dtype=np.int64)
    return np.where(dense.sum(axis=1) > 0, dense.argmax(axis=1), -1).astype(np.int64)


def talent_categories(own: sp.csr_matrix, audience_mix: F64) -> tuple[F64, NDArray[np.int8]]:
    """A talent's category mix: what its content features and it promoted, else its audience's.

    Parameters
    ----------
    own
        (talents x categories) rows normalised: categories of its content and promotions.
    audience_mix
        (talents x categories) its audience's interest mix (rows sum to 1 or 0).

    Returns
    -------
    (mix, source)
        The mix, and where each row came from: 1 content and promotions, 2 audience, 0 none.
    """
    mine = np.asarray(own.todense()).reshape(audience_mix.shape)
    has_own = mine.sum(axis=1) > 0
    has_aud = audience_mix.sum(axis=1) > 0
    mix = np.where(has_own[:, None], mine, audience_mix)
    source = np.where(has_own, 1, np.where(has_aud, 2, 0)).astype(np.int8)
    return mix, source
