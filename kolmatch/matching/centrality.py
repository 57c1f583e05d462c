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
    edges: sp.spmatrix | sp.sparray,
    *,
    alpha: float = 0.85,
    tol: float = 1.0e-6,
    max_iter: int = 200,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """PageRank on the undirected bipartite graph of a (rows x cols) edge matrix.

    The same scores as :func:`pagerank` on the graph's full (rows + cols) adjacency, computed
    without building it: one sweep updates the row scores from the column scores, then the
    column scores from the new row scores (Gauss-Seidel on the two halves). Each sweep costs
    two products with the edge matrix and shrinks the error by about ``alpha**2``, where a
    power iteration on the full adjacency costs the same per step and shrinks it by
    ``alpha``: on the m market's follow graph (1.02M nodes, 8.8M edges, 2 cores) 40 sweeps,
    5.0 s, against 21.7 s for the power iteration and 20.7 s for igraph's PRPACK under the
    same load, largest difference to PRPACK 1.7e-8 (bench/run.py ``centrality``).

    Parameters
    ----------
    edges
        (rows, cols) weights; an edge's weight counts in both directions.
    alpha
        Damping factor.
    tol
        Stop when a sweep changes the scores by less than this (L1).
    max_iter
        Sweeps at most.

    Returns
    -------
    tuple of ndarray
        The scores of the row nodes and of the column nodes (e.g. users and talents of the
        follow graph); together they sum to 1.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> rows, cols = bipartite_pagerank(sp.csr_matrix([[1.0, 1.0], [1.0, 0.0]]))
    >>> [round(float(x), 4) for x in (*rows, *cols)]
    [0.3246, 0.1754, 0.3246, 0.1754]
    """
    e = sp.csr_matrix(edges, dtype=np.float64)
    r, c = e.shape
    n = r + c
    if n == 0:
        return np.zeros(0), np.zeros(0)
    et = e.T.tocsr()
    deg_r = np.asarray(e.sum(axis=1)).ravel()
    deg_c = np.asarray(e.sum(axis=0)).ravel()
    inv_r = np.divide(1.0, deg_r, out=np.zeros(r), where=deg_r != 0)
    inv_c = np.divide(1.0, deg_c, out=np.zeros(c), where=deg_c != 0)
    dangling_r, dangling_c = deg_r == 0, deg_c == 0
    p = 1.0 / n  # the uniform restart; dangling nodes jump by it too
    xr, xc = np.full(r, p), np.full(c, p)
    for _ in range(max_iter):
        pr, pc = xr, xc
        jump = alpha * (xr[dangling_r].sum() + xc[dangling_c].sum()) + (1 - alpha)
        xr = alpha * (e @ (xc * inv_c)) + jump * p
        jump = alpha * (xr[dangling_r].sum() + xc[dangling_c].sum()) + (1 - alpha)
        xc = alpha * (et @ (xr * inv_r)) + jump * p
        if np.abs(xr - pr).sum() + np.abs(xc - pc).sum() < tol:
            break
    total = xr.sum() + xc.sum()
    return xr / total, xc / total
