"""The backbone of a weighted graph: each node's strongest edges, for drawing a network."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["strongest_edges"]


def strongest_edges(
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    weight: NDArray[np.float64],
    *,
    per_node: int,
) -> NDArray[np.int64]:
    """Indices of the edges that are among the ``per_node`` heaviest of either end.

    A graph of audience overlaps is dense (most pairs share someone) and its heaviest
    edges gather in one tight group, so neither all edges nor the top few draw its
    structure; every node's few strongest edges do (a k-nearest-neighbour backbone).

    Parameters
    ----------
    a, b
        The two ends of each edge (any integer node labels), aligned with ``weight``.
    weight
        Each edge's weight; heavier is stronger.
    per_node
        How many of its strongest edges each node keeps (at least 1).

    Returns
    -------
    ndarray
        Indices into the edge arrays, heaviest first (equal weights in edge order).

    Raises
    ------
    ValueError
        If the arrays differ in length or ``per_node`` is below 1.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.array([0, 0, 1, 2]), np.array([1, 2, 2, 3])
    >>> strongest_edges(a, b, np.array([0.9, 0.1, 0.5, 0.2]), per_node=1).tolist()
    [0, 2, 3]
    """
    if not len(a) == len(b) == len(weight):
        raise ValueError(f"a, b and weight differ in length: {len(a)}, {len(b)}, {len(weight)}")
    if per_node < 1:
        raise ValueError(f"per_node must be at least 1, got {per_node}")
    order = np.argsort(-np.asarray(weight, dtype=np.float64), kind="stable")
    kept = np.zeros(len(order), dtype=bool)
    taken: dict[int, int] = {}
    for e in order.tolist():
        u, v = int(a[e]), int(b[e])
        # an edge stays if it is one of the strongest of either of its ends
        if taken.get(u, 0) < per_node or taken.get(v, 0) < per_node:
            kept[e] = True
        taken[u] = taken.get(u, 0) + 1
        taken[v] = taken.get(v, 0) + 1
    return order[kept[order]]
