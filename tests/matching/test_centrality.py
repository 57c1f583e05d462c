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
    theirs = nx.pagerank(g, weight=None)
    assert np.concatenate([users, talents]) == pytest.approx(
        [theirs[i] for i in range(75)], abs=1e-6
    )
