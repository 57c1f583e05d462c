"""PageRank by scipy.sparse power iteration: networkx's definition, at scales beyond networkx."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["bipartite_pagerank", "pagerank"]


def pagerank(
    adjacency: sp.spmatrix | sp.sparray,
    *,
    alpha: float = 0.85,
    personalization: NDArray[np.float64] | None = None,
    tol: float = 1.0e-6,
    max_iter: int = 200,
) -> NDArray[np.float64]:
    """PageRank of a weighted directed graph given as a sparse adjacency matrix.

    Same definition as :func:`networkx.pagerank`: edge weights are normalised
    per source row and dangling nodes jump by the personalisation vector. One
    difference, on purpose: iteration stops when the L1 change of the score
    vector (which sums to 1) is below ``tol``, whatever the graph's size.
    networkx stops at ``n * tol``, which for a million nodes is a change of 1:
    on the m market's follow graph that stopped after a few iterations, 6.8e-3
    from the exact (PRPACK) answer.

    Parameters
    ----------
    adjacency
        (n, n) matrix, ``A[i, j]`` the weight of the edge i -> j.
    alpha
        Damping factor.
    personalization
        Restart distribution (normalised here); uniform if None.
    tol
        Stop when the L1 change of one iteration is below this (the L1 error is
        then below ``tol * alpha / (1 - alpha)``).
    max_iter
        Iterations at most (the error shrinks by ``alpha`` per iteration: 1e-6
        from a uniform start takes under 90).

    Returns
    -------
    ndarray
        Scores summing to 1.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> a = sp.csr_matrix([[0, 1, 1], [1, 0, 0], [1, 0, 0]], dtype=float)
    >>> [round(float(x), 4) for x in pagerank(a)]
    [0.4865, 0.2568, 0.2568]
    """
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    n = a.shape[0]
    if n == 0:
        return np.zeros(0)
    out = np.asarray(a.sum(axis=1)).ravel()
    inv = np.divide(1.0, out, out=np.zeros(n), where=out != 0)
    m = sp.diags(inv) @ a  # row-stochastic where out-degree > 0
    mt = m.T.tocsr()
    p = np.full(n, 1.0 / n) if personalization is None else personalization / personalization.sum()
    dangling = out == 0
    x = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        prev = x
        x = alpha * (mt @ prev + prev[dangling].sum() * p) + (1 - alpha) * p
        if np.abs(x - prev).sum() < tol:
            return x  # type: ignore[no-any-return]
    return x


def bipartite_pagerank(
    edges: sp.spmatrix | sp.sparray, *, alpha: float = 0.85
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """PageRank on the undirected bipartite graph of a (rows x cols) edge matrix.

    Returns the scores of the row nodes and of the column nodes (e.g. users and
    talents of the follow graph); together they sum to 1.
    """
    e = sp.csr_matrix(edges, dtype=np.float64)
    r, c = e.shape
    a = sp.bmat([[None, e], [e.T, None]], format="csr")
    if a.shape != (r + c, r + c):  # an empty side
        a = sp.csr_matrix((r + c, r + c))
    x = pagerank(a, alpha=alpha)
    return x[:r], x[r:]
