"""Personalised PageRank from a merchant's customers: exact against networkx, the mix bounded."""

from __future__ import annotations

import tracemalloc

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.matching.personalised import (
    PartnerWalk,
    bipartite_ppr,
    category_ppr_tails,
    customer_ppr,
    first_step,
    partner_walk,
    rows_gathered,
)


def _graph(users: int, talents: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    w = sp.random(users, talents, density=0.12, random_state=seed, format="csr")
    w.data[:] = rng.choice([0.5, 1.0], size=w.nnz)  # bare follows and engagements
    return w


def _networkx(w: sp.csr_matrix, seeds: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    g = nx.Graph()
    g.add_nodes_from([("u", i) for i in range(w.shape[0])] + [("t", j) for j in range(w.shape[1])])
    c = w.tocoo()
    for i, j, v in zip(c.row, c.col, c.data, strict=True):
        g.add_edge(("u", int(i)), ("t", int(j)), weight=float(v))
    pers = {("u", i): float(seeds[i]) for i in range(w.shape[0])}
    pers |= {("t", j): 0.0 for j in range(w.shape[1])}
    pr = nx.pagerank(g, alpha=alpha, personalization=pers, tol=1e-13, max_iter=20_000)
    return (
        np.array([pr[("u", i)] for i in range(w.shape[0])]),
        np.array([pr[("t", j)] for j in range(w.shape[1])]),
    )


@pytest.mark.parametrize(("seed", "alpha"), [(1, 0.5), (2, 0.85), (3, 0.3)])
def test_exact_solve_equals_networkx(seed: int, alpha: float) -> None:
    w = _graph(50, 12, seed)
    seeds = np.zeros((50, 2))
    seeds[[1, 4, 7, 9], 0] = 1.0
    seeds[[0, 2], 1] = [3.0, 1.0]  # weighted restart
    users, talents = bipartite_ppr(w, seeds, alpha=alpha, tol=1e-13)
    for b in range(2):
        nu, nt = _networkx(w, seeds[:, b], alpha)
        np.testing.assert_allclose(talents[:, b], nt, atol=1e-9)
        np.testing.assert_allclose(users[:, b], nu, atol=1e-9)
        assert users[:, b].sum() + talents[:, b].sum() == pytest.approx(1.0)


def test_a_given_transpose_walks_the_same_bits_and_a_wrong_one_is_refused() -> None:
    w = _graph(40, 9, 5)
    seeds = np.zeros((40, 3))
    seeds[[2, 3, 30], 0], seeds[[5], 1], seeds[[7, 8], 2] = 1.0, 2.0, 1.0
    users, talents = bipartite_ppr(w, seeds)
    given_u, given_t = bipartite_ppr(w, seeds, transposed=w.T.tocsr())
    assert np.array_equal(users, given_u) and np.array_equal(talents, given_t)
    with pytest.raises(ValueError, match=r"transposed is \(40, 9\), edges.T is \(9, 40\)"):
        bipartite_ppr(w, seeds, transposed=w)


@pytest.mark.parametrize("order", ["C", "F"])
def test_seeds_overwritten_walk_the_same_bits_and_are_normalised_in_place(order: str) -> None:
    w = _graph(60, 11, 6)
    seeds = np.zeros((60, 3), order=order)  # F: what a CSC matrix's todense() gives
    seeds[[2, 3, 30], 0], seeds[[5, 9], 1] = 1.0, [3.0, 1.0]  # the third walk: no seed
    users, talents = bipartite_ppr(w, seeds.copy())
    given = seeds.copy(order="K")
    own_u, own_t = bipartite_ppr(w, given, overwrite_seeds=True)
    assert np.array_equal(users, own_u) and np.array_equal(talents, own_t)
    np.testing.assert_array_equal(given.sum(axis=0), [1.0, 1.0, 0.0])  # normalised, in place
    ints = np.zeros((60, 1), dtype=np.int64)  # not float64: copied, left as it was
    ints[4, 0] = 2
    bipartite_ppr(w, ints, overwrite_seeds=True)
    assert ints[4, 0] == 2


def test_the_walk_holds_four_users_by_walks_arrays_at_most() -> None:
    """The (users x walks) arrays are a walk's memory (at l, 320 MB each for four walks): the
    normalised seeds, the iterate, the next one and one scratch array, nothing copied per
    sweep (an F-ordered scratch array made every sparse product copy it: one more)."""
    users, walks = 200_000, 4
    rng = np.random.default_rng(7)
    w = sp.csr_matrix(
        (np.ones(400_000), (rng.integers(0, users, 400_000), rng.integers(0, 50, 400_000))),
        shape=(users, 50),
    )
    wt = w.T.tocsr()
    seeds = np.asarray(sp.csc_matrix((rng.random((users, walks)) < 0.01) * 1.0).todense())
    one = users * walks * 8
    tracemalloc.start()
    try:
        bipartite_ppr(w, seeds, transposed=wt, max_iter=5, overwrite_seeds=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # beyond the seeds: the iterate, the next, the scratch array, and the (users,) degrees
    assert peak < 3.7 * one, f"{peak / one:.2f} (users x walks) arrays"


def test_an_empty_seed_scores_nothing() -> None:
    w = _graph(20, 5, 4)
    users, talents = bipartite_ppr(w, np.zeros((20, 1)))
    assert not users.any() and not talents.any()


def test_customers_equal_to_the_category_buyers_give_the_exact_answer() -> None:
    w = _graph(60, 15, 5)
    deg = np.asarray(w.sum(axis=1)).ravel()
    buyers = np.zeros((60, 2))
    buyers[[3, 5, 8, 13, 21], 0] = 1.0
    buyers[[2, 8, 40], 1] = 1.0
    buyers *= (deg > 0)[:, None]
    tails = category_ppr_tails(w, sp.csr_matrix(buyers), alpha=0.5)
    customers = np.nonzero(buyers[:, 0])[0]
    got = customer_ppr(w, customers, np.array([1.0, 0.0]), tails, alpha=0.5)
    _, exact = bipartite_ppr(w, buyers[:, 0], alpha=0.5, tol=1e-13)
    np.testing.assert_allclose(got, exact, atol=1e-9)


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.85])
def test_other_customers_stay_within_the_stated_bound(alpha: float) -> None:
    # customers drawn apart from the category's buyers: the mix is off by at most the mass of
    # walks of three or more steps, twice: 2 alpha^3 / (1 + alpha) in L1
    w = _graph(80, 20, 6)
    deg = np.asarray(w.sum(axis=1)).ravel()
    live = np.nonzero(deg > 0)[0]
    rng = np.random.default_rng(0)
    buyers = np.zeros((80, 1))
    buyers[rng.choice(live, 10, replace=False), 0] = 1.0
    customers = rng.choice(live, 6, replace=False)
    tails = category_ppr_tails(w, sp.csr_matrix(buyers), alpha=alpha)
    got = customer_ppr(w, customers, np.ones(1), tails, alpha=alpha)
    seed = np.zeros(80)
    seed[customers] = 1.0
    _, exact = bipartite_ppr(w, seed, alpha=alpha, tol=1e-13)
    err = np.abs(got - exact).sum()
    assert err <= 2 * alpha**3 / (1 + alpha) + 1e-9
    # the first step is exact: it is the customers' own
    np.testing.assert_allclose(
        first_step(w, customers, alpha=alpha),
        (1 - alpha) * alpha * (sp.diags(1 / deg[customers]) @ w[customers]).sum(axis=0).A1 / 6,
    )


def _matrix_first_step(w: sp.csr_matrix, seeds: np.ndarray, alpha: float) -> np.ndarray:
    """The first step as matrix products: each live seed's row over its degree, averaged."""
    rows = w[seeds]
    deg = np.asarray(rows.sum(axis=1)).ravel()
    live = np.nonzero(deg > 0)[0]
    if not len(live):
        return np.zeros(w.shape[1])
    walked = (sp.diags(1.0 / deg[live]) @ rows[live]).sum(axis=0).A1
    return (1 - alpha) * alpha * walked / len(live)  # type: ignore[no-any-return]


def _matrix_partner_walk(promo: sp.csr_matrix, products: np.ndarray, alpha: float) -> np.ndarray:
    """The partner walk as matrix products over the whole graph: seed -> talents -> products
    -> talents, each step over the node's degree."""
    deg_p = np.asarray(promo.sum(axis=1)).ravel()
    deg_t = np.asarray(promo.sum(axis=0)).ravel()
    inv_p = np.divide(1.0, deg_p, out=np.zeros_like(deg_p), where=deg_p > 0)
    inv_t = np.divide(1.0, deg_t, out=np.zeros_like(deg_t), where=deg_t > 0)
    seed = np.zeros(promo.shape[0])
    seed[products] = 1.0 / len(products)
    t1 = promo.T @ (seed * inv_p)
    t3 = promo.T @ (inv_p * (promo @ (inv_t * t1)))
    return (1 - alpha) * alpha * t1 + (1 - alpha) * alpha**3 * t3  # type: ignore[no-any-return]


def test_gathered_rows_are_the_rows_entries() -> None:
    w = _graph(30, 8, 7)
    rows = np.array([4, 0, 4, 29, 12])  # repeated, and rows that may be empty
    owner, cols, vals = rows_gathered(w, rows)
    got = sp.csr_matrix((vals, (owner, cols)), shape=(len(rows), 8))
    assert np.array_equal(got.toarray(), w[rows].toarray())
    assert [len(x) for x in rows_gathered(w, np.array([], dtype=np.int64))] == [0, 0, 0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_first_step_is_the_matrix_definition(seed: int) -> None:
    keep = np.ones(60)
    keep[5] = 0.0  # user 5 in no audience: as a seed it is left out, not averaged in
    w = sp.csr_matrix(sp.diags(keep) @ _graph(60, 14, seed))
    w.eliminate_zeros()
    rng = np.random.default_rng(seed)
    customers = np.append(rng.choice(60, 9, replace=False), 5)
    customers = np.append(customers, customers[:2])  # listed twice: counted twice, as w[rows]
    got = first_step(w, customers, alpha=0.5)
    np.testing.assert_allclose(got, _matrix_first_step(w, customers, 0.5), rtol=1e-13)
    assert not first_step(w, np.array([5]), alpha=0.5).any()
    assert not first_step(w, np.array([], dtype=np.int64), alpha=0.5).any()


def test_gathering_refuses_what_is_not_row_numbers_of_a_csr_matrix() -> None:
    w = _graph(10, 4, 2)
    with pytest.raises(TypeError, match="CSR matrix, got"):
        rows_gathered(w.tocsc(), np.array([1]))
    with pytest.raises(TypeError, match="row numbers"):
        rows_gathered(w, np.ones(10, dtype=bool))
    with pytest.raises(IndexError, match=r"outside 0..9"):
        rows_gathered(w, np.array([3, -1]))
    with pytest.raises(IndexError, match=r"outside 0..9"):
        rows_gathered(w, np.array([10]))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_partner_walk_is_the_matrix_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    promo = sp.random(40, 25, density=0.08, random_state=seed, format="csr")
    promo.data[:] = rng.integers(1, 4, size=promo.nnz)  # collaborations per pair
    walk = PartnerWalk.of(promo)
    for k in (1, 3, 8):
        products = rng.choice(40, k, replace=False)
        got = walk.walk(products, alpha=0.5)
        want = _matrix_partner_walk(promo, products, 0.5)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)
        assert np.array_equal(got != 0, want != 0)  # the same support: no talent made up
        assert np.array_equal(partner_walk(promo, products, alpha=0.5), got)
    # a product listed twice is seeded once, at 1 / (the products listed), as the definition
    twice = np.array([3, 3, 7])
    np.testing.assert_allclose(
        walk.walk(twice, alpha=0.5), _matrix_partner_walk(promo, twice, 0.5), rtol=1e-13
    )
