"""The overlap network's backbone: each node's strongest edges."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from kolmatch.matching.backbone import strongest_edges


def test_every_node_keeps_its_strongest_edges_and_nothing_else() -> None:
    rng = np.random.default_rng(0)
    g = nx.gnp_random_graph(40, 0.3, seed=0)
    a = np.array([u for u, _ in g.edges], dtype=np.int64)
    b = np.array([v for _, v in g.edges], dtype=np.int64)
    w = rng.random(len(a))
    kept = set(strongest_edges(a, b, w, per_node=2).tolist())
    for node in g.nodes:
        mine = [e for e in range(len(a)) if node in (a[e], b[e])]
        top = sorted(mine, key=lambda e: -w[e])[:2]
        assert set(top) <= kept, node
    for e in kept:  # each kept edge is among the two strongest of one of its ends
        ends = []
        for node in (a[e], b[e]):
            mine = [x for x in range(len(a)) if node in (a[x], b[x])]
            ends.append(e in sorted(mine, key=lambda x: -w[x])[:2])
        assert any(ends), e


def test_heaviest_first_and_ties_in_edge_order() -> None:
    a, b = np.array([0, 1, 2]), np.array([1, 2, 3])
    assert strongest_edges(a, b, np.array([0.5, 0.5, 0.9]), per_node=5).tolist() == [2, 0, 1]
    assert strongest_edges(a[:0], b[:0], np.array([]), per_node=1).tolist() == []


@pytest.mark.parametrize(
    ("a", "b", "w", "per_node"),
    [([0], [1], [0.1, 0.2], 1), ([0], [1], [0.1], 0)],
)
def test_bad_input_is_refused(a: list[int], b: list[int], w: list[float], per_node: int) -> None:
    with pytest.raises(ValueError):
        strongest_edges(np.array(a), np.array(b), np.array(w), per_node=per_node)
