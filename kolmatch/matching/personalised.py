"""Personalised PageRank on the user-talent audience graph, seeded by a merchant's customers.

The walk: from a user to a talent whose audience it is in, from a talent to a user of its
audience (edge weights: engagement above a bare follow), and back to the seed (the customers)
with probability ``1 - alpha`` at every step. A talent's score is how much of that walk it
holds: how close it sits to the merchant's customers and to people like them.

An exact solve per merchant costs a pass over the whole audience graph per step (seconds at m,
hours for 5,000 merchants), so the engine mixes two exact parts: the walk's first step from the
merchant's own customers (which talents they are in the audience of), and every longer walk
from the buyers of the merchant's categories, solved once per category for the whole market
(:func:`category_ppr_tails`) and mixed by the merchant's category mix
(:func:`customer_ppr`). When the customers are the category's buyers, this is exact; otherwise
its L1 distance from the exact answer is at most ``2 alpha^3 / (1 + alpha)`` (the mass of walks
of three or more steps, twice), and a test holds it to that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch.matching.partition import run_positions

__all__ = [
    "PPR_ALPHA",
    "Gathered",
    "PartnerWalk",
    "bipartite_ppr",
    "category_ppr_tails",
    "customer_ppr",
    "first_step",
    "first_step_of",
    "mixed_rows",
    "partner_walk",
    "rows_gathered",
]

F64 = NDArray[np.float64]

#: Probability of walking on rather than returning to the customers (tuned on the real Twitch
#: follows' tuning split, docs/scoring.md).
PPR_ALPHA = 0.5
#: Categories solved together by :func:`category_ppr_tails` (bounds its memory).
PPR_CHUNK = 4


def _degrees(w: sp.csr_matrix) -> tuple[F64, F64]:
    return np.asarray(w.sum(axis=1)).ravel(), np.asarray(w.sum(axis=0)).ravel()


#: What :func:`rows_gathered` gives: (which of the rows each entry is of, its column, its value).
Gathered = tuple[NDArray[np.int64], NDArray[np.integer[Any]], F64]


def rows_gathered(a: sp.csr_matrix, rows: NDArray[np.integer[Any]]) -> Gathered:
    """The stored entries of ``a``'s ``rows``, in their order: what ``a[rows]`` holds, without
    building a matrix (scipy's row indexing and the products on it cost ~0.1 ms a call in
    checks and index types: a third of a match list's walks at m).

    Parameters
    ----------
    a
        A CSR matrix.
    rows
        Row numbers, each in ``0 .. a.shape[0] - 1``; a row may be listed more than once (its
        entries are then gathered once for each).

    Returns
    -------
    (owner, columns, values)
        For each entry: which of ``rows`` it is of (its position in ``rows``), its column, and
        its value as float64.

    Raises
    ------
    TypeError
        If ``a`` is not CSR or ``rows`` are not integers (a boolean mask is not row numbers).
    IndexError
        If a row is outside the matrix.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> a = sp.csr_matrix(np.array([[0.0, 2.0], [3.0, 4.0]]))
    >>> [x.tolist() for x in rows_gathered(a, np.array([1, 0]))]
    [[0, 0, 1], [0, 1, 1], [3.0, 4.0, 2.0]]
    """
    if getattr(a, "format", None) != "csr":
        raise TypeError(f"rows_gathered reads a CSR matrix, got {type(a).__name__}")
    rows = np.asarray(rows)
    if rows.size and rows.dtype.kind not in "iu":
        raise TypeError(f"rows must be row numbers (integers), got {rows.dtype}")
    rows = rows.astype(np.int64, copy=False)
    if rows.size and (rows.min() < 0 or rows.max() >= a.shape[0]):
        raise IndexError(f"rows outside 0..{a.shape[0] - 1}")
    start = a.indptr[rows].astype(np.int64)
    size = a.indptr[rows + 1].astype(np.int64) - start
    owner = np.repeat(np.arange(len(rows), dtype=np.int64), size)
    at = run_positions(start, size)  # each entry's place in ``a``
    return owner, a.indices[at], np.asarray(a.data[at], dtype=np.float64)


def bipartite_ppr(
    edges: sp.spmatrix | sp.sparray,
    seeds: F64,
    *,
    alpha: float = PPR_ALPHA,
    tol: float = 1e-10,
    max_iter: int = 1000,
    transposed: sp.csr_matrix | None = None,
    overwrite_seeds: bool = False,
) -> tuple[F64, F64]:
    """Exact personalised PageRank on the undirected bipartite graph of ``edges``, batched.

    The definition of :func:`networkx.pagerank` with ``personalization`` on row nodes (and
    dangling nodes jumping to it), for several seed vectors at once.

    Parameters
    ----------
    edges
        (R, C) weights of the edges between row nodes (users) and column nodes (talents).
    seeds
        (R,) or (R, B) non-negative restart weights on row nodes, one column per walk;
        each column is normalised (an all-zero column gives all-zero scores).
    alpha
        Probability of following an edge rather than restarting.
    tol
        Stop when every column's L1 change of one iteration is below this.
    max_iter
        Iterations at most.
    transposed
        ``edges.T`` as a float64 CSR matrix, when the caller holds it (a walk per chunk of
        categories would otherwise transpose the audience graph once per chunk: at l, ~2 GiB
        made and dropped each time). Not checked against ``edges`` beyond its shape.
    overwrite_seeds
        ``seeds`` (a float64 array the caller no longer needs) is normalised in place rather
        than copied: one (R, B) array less held (at l, 320 MB for four walks).

    Returns
    -------
    (rows, cols)
        (R, B) and (C, B) scores (or (R,) and (C,) for a 1-d seed); each walk sums to 1.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> w = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 1.0]]))
    >>> _, talents = bipartite_ppr(w, np.array([1.0, 0.0]), alpha=0.5)
    >>> [round(float(x), 4) for x in talents]
    [0.3111, 0.0222]
    """
    w = sp.csr_matrix(edges, dtype=np.float64)
    one_d = seeds.ndim == 1
    s = np.asarray(seeds, dtype=np.float64)
    s = s[:, None] if one_d else s
    total = s.sum(axis=0)
    if overwrite_seeds and s.dtype == np.float64 and s.flags.writeable:
        p = np.divide(s, total, out=s, where=total > 0)  # the same bits, in the seeds' array
        p[:, ~(total > 0)] = 0.0
    else:
        p = np.divide(s, total, out=np.zeros_like(s), where=total > 0)
    del s
    deg_r, deg_c = _degrees(w)
    inv_r = np.divide(1.0, deg_r, out=np.zeros_like(deg_r), where=deg_r > 0)
    inv_c = np.divide(1.0, deg_c, out=np.zeros_like(deg_c), where=deg_c > 0)
    if transposed is None:
        wt = w.T.tocsr()
    elif transposed.shape != (w.shape[1], w.shape[0]):
        raise ValueError(f"transposed is {transposed.shape}, edges.T is {w.shape[::-1]}")
    else:
        wt = transposed
    n = w.shape[0] + w.shape[1]
    xr = np.full_like(p, 1.0 / n)
    xc = np.full((w.shape[1], p.shape[1]), 1.0 / n)
    # the (rows x walks) arrays are the walk's memory (at l, 320 MB each for four walks): p,
    # the iterate, the next one and one scratch array for every product, difference and
    # restart term (each computed into it as numpy would into a temporary: the same bits)
    buf = np.empty(p.shape)  # C order, whatever p's: a sparse product copies any other
    for _ in range(max_iter):
        # rows from the columns, then the columns from the new rows (Gauss-Seidel on the two
        # halves, as centrality.bipartite_pagerank): the same fixed point in about half the
        # sweeps of updating both from the old scores
        dangling = xr[deg_r == 0].sum(axis=0) + xc[deg_c == 0].sum(axis=0)
        # alpha * (w @ (xc / deg_c) + dangling * p) + (1 - alpha) * p, in place
        nr = w @ (xc * inv_c[:, None])
        nr += np.multiply(dangling, p, out=buf)
        nr *= alpha
        nr += np.multiply(1 - alpha, p, out=buf)
        nc = wt @ np.multiply(nr, inv_r[:, None], out=buf)
        nc *= alpha
        step = np.subtract(nr, xr, out=buf)
        np.abs(step, out=step)
        change = step.sum(axis=0) + np.abs(nc - xc).sum(axis=0)
        xr, xc = nr, nc
        if np.all(change < tol):
            break
    del buf
    mass = xr.sum(axis=0) + xc.sum(axis=0)
    live = total > 0
    xr[:, live] /= mass[live]
    xc[:, live] /= mass[live]
    xr[:, ~live] = 0.0
    xc[:, ~live] = 0.0
    return (xr.ravel(), xc.ravel()) if one_d else (xr, xc)


def first_step(by_user: sp.csr_matrix, seed_users: NDArray[np.int64], *, alpha: float) -> F64:
    """The talents' share of a walk's first step from ``seed_users`` (uniform over them).

    Parameters
    ----------
    by_user
        (U, T) audience weights, user rows.
    seed_users
        The seed's users; those in no audience are left out (they reach no talent).
    alpha
        As :func:`bipartite_ppr`.
    """
    return first_step_of(
        rows_gathered(by_user, seed_users), len(seed_users), by_user.shape[1], alpha=alpha
    )


def first_step_of(gathered: Gathered, n_seeds: int, n_talents: int, *, alpha: float) -> F64:
    """:func:`first_step` from the seed users' rows as :func:`rows_gathered` gives them (a
    match list gathers its customers' rows once, for this and for its customer reach).

    Parameters
    ----------
    gathered
        ``rows_gathered(by_user, seed_users)``.
    n_seeds
        ``len(seed_users)``.
    n_talents
        ``by_user.shape[1]``.
    alpha
        As :func:`bipartite_ppr`.

    Returns
    -------
    ndarray
        (T,) as :func:`first_step`.
    """
    owner, cols, vals = gathered
    deg = np.bincount(owner, weights=vals, minlength=n_seeds)
    live = deg > 0
    if not live.any():
        return np.zeros(n_talents)
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=live)
    walked = np.bincount(cols, weights=vals * inv[owner], minlength=n_talents)
    return (1 - alpha) * alpha * walked / live.sum()  # type: ignore[no-any-return]


def category_ppr_tails(
    by_user: sp.csr_matrix, category_buyers: sp.csr_matrix, *, alpha: float = PPR_ALPHA
) -> F64:
    """Each category's PageRank over talents from its buyers, less the walk's first step.

    Parameters
    ----------
    by_user
        (U, T) audience weights.
    category_buyers
        (U, C) 1 where the user bought in the category. Buyers in no audience are left out.
    alpha
        As :func:`bipartite_ppr`.

    Returns
    -------
    ndarray
        (C, T): what walks of three or more steps from the category's buyers give each talent.
    """
    deg = np.asarray(by_user.sum(axis=1)).ravel()
    live = sp.diags((deg > 0).astype(np.float64))
    buyers = sp.csc_matrix(live @ sp.csr_matrix(category_buyers, dtype=np.float64))
    n_c = buyers.shape[1]
    out = np.zeros((n_c, by_user.shape[1]))
    by_talent = sp.csr_matrix(by_user, dtype=np.float64).T.tocsr()  # once for every chunk
    # a few categories at a time: each walk's dense (users x walks) iterates are the memory
    # (1M users x 20 categories x 8 bytes = 160 MB an array at m, several arrays at once)
    for lo in range(0, n_c, PPR_CHUNK):
        cols = range(lo, min(lo + PPR_CHUNK, n_c))
        seeds = np.asarray(buyers[:, cols].todense())
        _, talents = bipartite_ppr(
            by_user, seeds, alpha=alpha, transposed=by_talent, overwrite_seeds=True
        )
        del seeds
        for j, c in enumerate(cols):
            first = first_step(by_user, buyers[:, c].indices, alpha=alpha)
            out[c] = np.maximum(talents[:, j] - first, 0.0)
    return out


def customer_ppr(
    by_user: sp.csr_matrix,
    customers: NDArray[np.int64],
    category_mix: F64,
    tails: F64,
    *,
    alpha: float = PPR_ALPHA,
    gathered: Gathered | None = None,
    talents: NDArray[np.int64] | None = None,
) -> F64:
    """A merchant's personalised PageRank over talents: own customers' first step + category tail.

    Parameters
    ----------
    by_user
        (U, T) audience weights.
    customers
        The merchant's customers (user rows).
    category_mix
        (C,) the merchant's category mix (sums to 1).
    tails
        (C, T) from :func:`category_ppr_tails`.
    alpha
        As :func:`bipartite_ppr` (the tails must have been solved with the same).
    gathered
        ``rows_gathered(by_user, customers)`` when the caller holds it (a match list gathers
        its customers' rows once, for this and for its customer reach); default gathered here.
    talents
        Only these talents' (the same bits as theirs among all); default every talent's.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> w = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 1.0]]))
    >>> buyers = sp.csr_matrix(np.array([[1.0], [0.0]]))
    >>> tails = category_ppr_tails(w, buyers, alpha=0.5)
    >>> [round(float(x), 4) for x in customer_ppr(w, np.array([0]), np.ones(1), tails, alpha=0.5)]
    [0.3111, 0.0222]
    """
    rows = rows_gathered(by_user, customers) if gathered is None else gathered
    head = first_step_of(rows, len(customers), tails.shape[1], alpha=alpha)
    if talents is not None:
        return head[talents] + mixed_rows(tails[:, talents], category_mix)
    head += mixed_rows(tails, category_mix)
    return head


def mixed_rows(rows: F64, weights: F64) -> F64:
    """``weights @ rows`` for a (C, T) ``rows`` and mostly-zero ``weights``: the rows of the
    non-zero weights, weighted and added in row order (a merchant's mix names 1 to 3 of 20
    categories: at l, 200,000 talents, 0.65 ms where the full product reads all 20 rows,
    1.8 ms). A row under a zero weight is not read (an infinite value there adds nothing,
    where the product would give NaN).

    Raises
    ------
    ValueError
        If ``weights`` is not one per row.

    Examples
    --------
    >>> import numpy as np
    >>> mixed_rows(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([0.5, 0.0, 2.0]))
    array([10.5, 13. ])
    """
    if np.shape(weights) != (rows.shape[0],):
        raise ValueError(f"weights of shape {np.shape(weights)} for {rows.shape[0]} rows")
    on = np.flatnonzero(weights)
    if not len(on):
        return np.zeros(rows.shape[1])
    out: F64 = rows[on[0]] * weights[on[0]]
    tmp = np.empty_like(out)
    for c in on[1:]:
        np.multiply(rows[c], weights[c], out=tmp)
        out += tmp
    return out


def partner_walk(promotions: sp.csr_matrix, products: NDArray[np.int64], *, alpha: float) -> F64:
    """A walk over past collaborations from ``products``: its talents' share after 1 and 3 steps.

    The walk of :func:`bipartite_ppr` on the (products x talents) collaboration graph, seeded
    uniformly on ``products``, truncated at three steps: product -> talent (who promoted it),
    then talent -> product -> talent (who promoted what they promoted). Each step reads only
    the rows of the walk's support (:func:`rows_gathered`), so a merchant costs the
    collaborations it touches plus a count over the talents and products, not a solve over
    the market (at m the converged solve cost ~200 ms a merchant). What is left out, walks of
    five or more steps, weighs ``alpha^5 / (1 + alpha)`` of the walk at most (2% at 0.5).
    Many merchants over one graph: :class:`PartnerWalk` prepares the graph once.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> promo = sp.csr_matrix(np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    >>> [round(float(x), 4) for x in partner_walk(promo, np.array([0]), alpha=0.5)]
    [0.2969, 0.0156, 0.0]
    """
    return PartnerWalk.of(promotions).walk(products, alpha=alpha)


@dataclass(frozen=True)
class PartnerWalk:
    """The collaboration graph of :func:`partner_walk`, both ways, with its degrees: what every
    merchant's walk reads, prepared once per graph (preparing it was a fifth of a match list's
    time at m: a copy, a transpose and two degree sums of every collaboration per merchant)."""

    by_product: sp.csr_matrix  # (P, T)
    by_talent: sp.csr_matrix  # (T, P)
    inv_product: F64  # (P,) 1 / degree, 0 where none
    inv_talent: F64  # (T,)

    @classmethod
    def of(cls, promotions: sp.csr_matrix) -> PartnerWalk:
        """Prepare a collaboration graph for walks.

        Parameters
        ----------
        promotions
            (products x talents) collaboration counts.
        """
        by_product = sp.csr_matrix(promotions, dtype=np.float64)
        by_talent = sp.csr_matrix(by_product.T)

        def inverse(deg: F64) -> F64:
            return np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)

        return cls(
            by_product,
            by_talent,
            inverse(np.asarray(by_product.sum(axis=1)).ravel()),
            inverse(np.asarray(by_talent.sum(axis=1)).ravel()),
        )

    def walk(self, products: NDArray[np.int64], *, alpha: float) -> F64:
        """:func:`partner_walk` from ``products`` over this graph.

        Parameters
        ----------
        products
            The seed's product rows.
        alpha
            As :func:`bipartite_ppr`.

        Returns
        -------
        ndarray
            (T,) each talent's share of the walk.
        """
        n_t = self.by_product.shape[1]
        if len(products) == 0 or self.by_product.nnz == 0:
            return np.zeros(n_t)
        seed = np.unique(np.asarray(products, dtype=np.int64))
        share = np.full(len(seed), 1.0 / len(products))  # (a product listed twice: once)

        def step(
            at: NDArray[np.integer[Any]], x: F64, m: sp.csr_matrix, inv: F64
        ) -> tuple[NDArray[np.integer[Any]], F64]:
            # x on the nodes ``at`` walked one step over ``m``: only the walk's support is
            # touched (the rows of ``at``), and only it is returned (the nodes reached, their
            # shares), each share summed in the edges' order as a dense count would
            owner, cols, vals = rows_gathered(m, at)
            reached, slot = np.unique(cols, return_inverse=True)
            walked = np.bincount(slot, weights=vals * (x * inv[at])[owner], minlength=len(reached))
            return reached, np.asarray(walked, dtype=np.float64)

        on1, t1 = step(seed, share, self.by_product, self.inv_product)
        on2, p2 = step(on1, t1, self.by_talent, self.inv_talent)
        on3, t3 = step(on2, p2, self.by_product, self.inv_product)
        out = np.zeros(n_t)
        out[on1] = (1 - alpha) * alpha * t1
        out[on3] += (1 - alpha) * alpha**3 * t3
        return out
