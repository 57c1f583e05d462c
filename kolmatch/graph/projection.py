"""Projections: the graph read once into id-ordered numpy arrays, CSR matrices and networkx graphs.

Nodes of a label are ordered by id (code-point order, sorted here rather than
by the store, so every store gives the same order); an edge list holds the
row indices of its endpoints in those orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch.graph.model import NUMERIC_TYPES, FieldType, node_spec, rel_spec
from kolmatch.graph.store import GraphStore, NodeRows

__all__ = [
    "EdgeList",
    "NodeTable",
    "day_ordinals",
    "edge_list",
    "node_table",
    "nodes_of",
    "to_csr",
    "to_networkx",
]


def day_ordinals(values: NDArray[Any]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """A date column (``YYYY-MM-DD...`` text, None where unset) as date ordinals, and which
    rows had a readable day (the others read 0).

    Examples
    --------
    >>> d, ok = day_ordinals(np.array(["2026-06-30", None, "2026-07-01T08:00", "June"], object))
    >>> (d[2] - d[0]).item(), ok.tolist()
    (1, [True, False, True, False])
    """
    out = np.zeros(len(values), dtype=np.int64)
    ok = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if isinstance(v, str) and len(v) >= 10:
            try:
                out[i] = date.fromisoformat(v[:10]).toordinal()
                ok[i] = True
            except ValueError:
                pass
    return out, ok


@dataclass(frozen=True)
class NodeTable:
    """Every node of a label in id order, with property columns.

    Numeric columns are float64 arrays (NaN where unset); text and date columns
    are object arrays (None where unset).
    """

    label: str
    ids: NDArray[np.str_]
    columns: dict[str, NDArray[Any]]
    #: Row of each of the store's integer node keys (:attr:`NodeRows.keys`; -1 for a key
    #: that is no node of this table), where the store has keys; else None.
    key_rows: NDArray[np.int64] | None = None
    #: The URI of the store the keys are of: another store's edges are read by ids.
    key_store: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, node_id: str) -> int:
        """Row of ``node_id``; -1 if absent."""
        i = int(np.searchsorted(self.ids, node_id))
        return i if i < len(self.ids) and self.ids[i] == node_id else -1

    def indices_of(self, node_ids: NDArray[np.str_] | list[str]) -> NDArray[np.int64]:
        """Rows of ``node_ids``; -1 for absent ones."""
        q = np.asarray(node_ids, dtype=str)
        if len(self.ids) == 0:
            return np.full(len(q), -1, dtype=np.int64)
        i = np.minimum(np.searchsorted(self.ids, q), len(self.ids) - 1)
        return np.where(self.ids[i] == q, i, -1).astype(np.int64)


@dataclass(frozen=True)
class EdgeList:
    """Relationships of a type from one source label, sorted by (source row, target row, key)."""

    rel_type: str
    src_label: str
    src: NDArray[np.int64]
    dst: NDArray[np.int64]
    columns: dict[str, NDArray[Any]]

    def __len__(self) -> int:
        return len(self.src)


def _column(
    values: Sequence[Any] | NDArray[Any],
    ftype: FieldType,
    *,
    unique: bool = False,
    seen: dict[Any, Any] | None = None,
) -> NDArray[Any]:
    if ftype in NUMERIC_TYPES:  # None reads as NaN
        return np.asarray(values, dtype=np.float64)
    if unique:  # a key: every value differs, nothing to share
        return np.array(values, dtype=object)
    # text: one object per distinct value (a million engagements' dates are a few hundred
    # strings: the m market's ENGAGED_WITH.last held 529 MiB as one string per row, 64 here),
    # shared by the chunks of a read (``seen``: a chunk's own copies are freed with it rather
    # than each pinning the allocator's pages the chunk's rows were in)
    seen = {} if seen is None else seen
    out = np.empty(len(values), dtype=object)
    out[:] = [seen.setdefault(v, v) for v in values]
    return out


def _key_rows(keys: NDArray[np.int64], order: NDArray[np.int64]) -> NDArray[np.int64]:
    """Row (in id order) of each integer key; -1 where a key is no node."""
    out = np.full(int(keys.max()) + 1 if len(keys) else 0, -1, dtype=np.int64)
    out[keys[order]] = np.arange(len(order))
    return out


def _endpoint_rows(table: NodeTable, values: Any, keyed: bool) -> NDArray[np.int64]:
    """Rows of a chunk's endpoints: integer keys through ``table.key_rows``, else ids."""
    if not keyed or table.key_rows is None:
        return table.indices_of(np.asarray(values, dtype=str))
    keys, key_rows = np.asarray(values, np.int64), table.key_rows
    # a key past the table (a node written after the table was read) is -1, as an unknown id
    # is: read_market then sees the version move and reads again
    inside = (keys >= 0) & (keys < len(key_rows))
    return np.where(inside, key_rows[np.where(inside, keys, 0)] if len(key_rows) else -1, -1)


def node_table(store: GraphStore, label: str, fields: tuple[str, ...] | None = None) -> NodeTable:
    """Read every node of ``label`` into a :class:`NodeTable` ordered by id.

    Parameters
    ----------
    store
        Any :class:`~kolmatch.graph.store.GraphStore`.
    label
        A node label of the domain model.
    fields
        Properties to read; default all.
    """
    fields = node_spec(label).field_names if fields is None else fields
    return nodes_of(store.node_rows(label, fields), label, store.uri)


def nodes_of(rows: NodeRows, label: str, uri: str) -> NodeTable:
    """``rows`` of ``label``'s nodes (:meth:`~kolmatch.graph.store.GraphStore.node_rows`, or
    some of them) as a :class:`NodeTable` ordered by id, its columns ``rows``'s, its keys
    those of the store at ``uri``."""
    types = {f.name: f.type for f in node_spec(label).fields}
    ids = np.array(rows.ids, dtype=str)
    order = np.argsort(ids, kind="stable")
    cols = {f: _column(values, types[f])[order] for f, values in rows.columns.items()}
    if rows.keys is None:
        return NodeTable(label, ids[order], cols)
    keys = _key_rows(np.asarray(rows.keys, np.int64), order)
    return NodeTable(label, ids[order], cols, keys, uri)


def edge_list(
    store: GraphStore,
    rel_type: str,
    src: NodeTable,
    dst: NodeTable,
    fields: tuple[str, ...] | None = None,
    *,
    sources: Sequence[str] | None = None,
) -> EdgeList:
    """Read every relationship of ``rel_type`` from ``src``'s label into an :class:`EdgeList`.

    Endpoints are mapped to rows of ``src`` and ``dst`` (which must be
    projections of the same store state); the list is sorted so that two
    stores holding the same graph give identical arrays. With ``sources`` (ids of ``src``'s
    nodes), only the relationships from those (:meth:`GraphStore.edge_rows_from`): the rows
    of the whole list that start at them, in the same order, once however often an id is
    named.
    """
    spec = rel_spec(rel_type)
    fields = spec.field_names if fields is None else fields
    asked = fields
    if spec.key and spec.key not in fields:
        # the key orders relationships between the same pair: without it two stores may list
        # two purchases of one user and product in different orders (found by the store
        # contract test, tests/graph/test_market.py)
        fields = (*fields, spec.key)
    types = {f.name: f.type for f in spec.fields}
    s_parts: list[NDArray[np.int64]] = []
    d_parts: list[NDArray[np.int64]] = []
    c_parts: dict[str, list[NDArray[Any]]] = {f: [] for f in fields}
    seen: dict[str, dict[Any, Any]] = {f: {} for f in fields}
    # by the store's integer keys where both tables hold this store's (no text ids matched)
    keyed = (
        src.key_rows is not None
        and dst.key_rows is not None
        and src.key_store == dst.key_store == store.uri
    )
    key_rows = src.key_rows
    if sources is not None:
        sources = list(dict.fromkeys(sources))  # (a source named twice: its rows once)
    if sources is not None and keyed and key_rows is not None:
        rows = src.indices_of(np.asarray(sources, dtype=str))
        rows = rows[rows >= 0]  # (an id no node of the table has adds nothing)
        row_key = np.full(len(src), -1, dtype=np.int64)  # key_rows inverted
        known = np.flatnonzero(key_rows >= 0)
        row_key[key_rows[known]] = known
        chunks = store.edge_keys_from(rel_type, src.label, row_key[rows], fields)
    elif sources is not None:
        chunks = store.edge_rows_from(rel_type, src.label, sources, fields)
    else:
        chunks = (store.edge_keys if keyed else store.edge_rows)(rel_type, src.label, fields)
    for chunk in chunks:
        s_parts.append(_endpoint_rows(src, chunk.src, keyed))
        d_parts.append(_endpoint_rows(dst, chunk.dst, keyed))
        for f in fields:
            c_parts[f].append(
                _column(chunk.columns[f], types[f], unique=f == spec.key, seen=seen[f])
            )
    s = np.concatenate(s_parts) if s_parts else np.zeros(0, np.int64)
    d = np.concatenate(d_parts) if d_parts else np.zeros(0, np.int64)
    del s_parts, d_parts
    cols = {f: (np.concatenate(c_parts[f]) if c_parts[f] else np.zeros(0)) for f in fields}
    del c_parts
    # one int64 per pair (rows are -1 or below the table's length): a sort, not a lexsort
    pair = (s + 1) * (len(dst) + 1) + (d + 1)
    order = np.argsort(pair, kind="stable")
    if spec.key and len(s):
        # the few pairs related more than once (a user buying one product twice) are ordered
        # by key among themselves; sorting every row by its text key cost seconds at m
        p = pair[order]
        twice = np.flatnonzero(p[1:] == p[:-1])
        at = np.union1d(twice, twice + 1)
        if len(at):
            sub = order[at]
            order[at] = sub[np.lexsort([cols[spec.key][sub].astype(str), p[at]])]
        del p
    del pair
    # put in order one array at a time, each unordered one freed as its ordered copy is made:
    # the table is held once and a column twice, never twice whole (l's engagements: ~4 GiB)
    s = s[order]
    d = d[order]
    kept = {f: cols.pop(f) for f in asked}
    del cols
    for f in asked:
        kept[f] = kept[f][order]
    return EdgeList(rel_type, src.label, s, d, kept)


def to_csr(edges: EdgeList, shape: tuple[int, int], weight: str | None = None) -> sp.csr_matrix:
    """Sparse (source x target) matrix; repeated pairs (keyed types) are summed.

    Examples
    --------
    >>> import numpy as np
    >>> e = EdgeList("FOLLOWS", "User", np.array([0, 1, 1]), np.array([1, 0, 1]), {})
    >>> to_csr(e, (2, 2)).toarray().tolist()
    [[0.0, 1.0], [1.0, 1.0]]
    """
    w = np.ones(len(edges)) if weight is None else np.nan_to_num(edges.columns[weight])
    m = sp.csr_matrix((w, (edges.src, edges.dst)), shape=shape, dtype=np.float64)
    m.sum_duplicates()
    return m


def to_networkx(matrix: sp.spmatrix, ids: NDArray[np.str_], *, directed: bool = False) -> nx.Graph:
    """A networkx graph of a square adjacency matrix, nodes named by ``ids``."""
    g = nx.from_scipy_sparse_array(matrix, create_using=nx.DiGraph if directed else nx.Graph)
    return nx.relabel_nodes(g, dict(enumerate(ids.tolist())), copy=False)
