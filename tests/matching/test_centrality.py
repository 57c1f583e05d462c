"""Our sparse PageRank equals networkx's on graphs small enough for networkx."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.matching.centrality import bipartite_pagerank, pagerank


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pagerank_equals_networkx_on_a_weighted_digraph(seed: int) -> None:
    g = nx.gnp_random_graph(300, 0.02, seed=seed, directed=True)
    rng = np.random.default_rng(seed)
    for u, v in g.edges:
        g[u][v]["weight"] = float(rng.uniform(0.1, 3))
    g.add_node(300)  # a dangling node
    a = nx.to_scipy_sparse_array(g, nodelist=range(301), weight="weight")
    ours = pagerank(a, tol=1e-10, max_iter=500)
    theirs = nx.pagerank(g, tol=1e-10, max_iter=500, weight="weight")
    assert ours == pytest.approx([theirs[i] for i in range(301)], abs=1e-8)


def test_pagerank_converges_whatever_the_graph_size() -> None:
    """networkx's n * tol stopping rule leaves an error that grows with the graph; ours stops
    on the score vector's own L1 change. "Exact": iterated to 1e-14 (the error shrinks by
    0.85 per iteration, so that is exact to about 1e-13)."""
    n = 50_000
    rng = np.random.default_rng(3)
    src = np.repeat(np.arange(n), 3)
    dst = (src + rng.integers(1, n, size=src.size)) % n  # three out-edges each, no dangling
    a = sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
    exact = pagerank(a, tol=1e-14, max_iter=1000)
    assert exact.sum() == pytest.approx(1.0)
    ours = pagerank(a)
    nx_rule = pagerank(a, tol=n * 1e-6)  # the stopping rule of networkx's default
    assert np.abs(ours - exact).sum() < 1e-5
    assert np.abs(nx_rule - exact).sum() > 10 * np.abs(ours - exact).sum()


def test_personalised_pagerank_equals_networkx() -> None:
    g = nx.karate_club_graph()
    pers = {n: (1.0 if n in (0, 33) else 0.0) for n in g}
    a = nx.to_scipy_sparse_array(g, nodelist=range(34), weight=None)
    ours = pagerank(a, personalization=np.array([pers[i] for i in range(34)]), tol=1e-10)
    theirs = nx.pagerank(g, personalization=pers, tol=1e-10, weight=None)
    assert ours == pytest.approx([theirs[i] for i in range(34)], abs=1e-8)


def test_bipartite_pagerank_matches_networkx() -> None:
    rng = np.random.default_rng(5)
    e = sp.random(60, 15, density=0.1, random_state=rng, format="csr")
    e.data[:] = 1.0
    users, talents = bipartite_pagerank(e)
    g = nx.Graph()
    g.add_nodes_from(range(75))
    rows, cols = e.nonzero()
    g.add_edges_from((int(r), 60 + int(c)) for r, c in zip(rows, cols, strict=True))
    theirs = nx.pagerank(g, weight=None, tol=1e-13, max_iter=1000)  # converged
    exact = np.array([theirs[i] for i in range(75)])
    ours = np.concatenate([users, talents])
    assert np.abs(ours - exact).sum() < 1e-6 * 0.85 / 0.15  # the documented L1 bound
    nx_default = nx.pagerank(g, weight=None)  # stops at 75 x 1e-6: further off
    assert (
        np.abs(ours - exact).sum()
        < np.abs(np.array([nx_default[i] for i in range(75)]) - exact).sum()
    )


def test_bipartite_pagerank_equals_the_power_iteration_on_the_full_graph() -> None:
    """The two-half sweeps converge to :func:`pagerank` of the (rows + cols) adjacency,
    dangling nodes on both sides and weighted edges included."""
    rng = np.random.default_rng(8)
    e = sp.random(3_000, 400, density=0.01, random_state=rng, format="csr")  # some empty rows
    e.data[:] = rng.integers(1, 4, size=e.nnz)
    e = sp.csr_matrix(e.multiply(np.arange(400) >= 5))  # five talents without followers
    e.eliminate_zeros()
    assert (np.diff(e.indptr) == 0).any() and (np.diff(e.tocsc().indptr) == 0).any()
    full = sp.bmat([[None, e], [e.T, None]], format="csr")
    exact = pagerank(full, tol=1e-14, max_iter=1000)
    users, talents = bipartite_pagerank(e)
    ours = np.concatenate([users, talents])
    assert ours.sum() == pytest.approx(1.0)
    assert np.abs(ours - exact).sum() < 1e-6
    tight = np.concatenate(bipartite_pagerank(e, tol=1e-13, max_iter=1000))
    assert tight == pytest.approx(exact, abs=1e-12)
