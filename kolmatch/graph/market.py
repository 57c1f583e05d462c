"""The market graph: the one read of a store that features, compliance and the API all work on.

A :class:`MarketGraph` holds, for one consistent graph version, the node tables and edge lists
a :class:`ReadSpec` asks for (id-ordered arrays, :mod:`kolmatch.graph.projection`). Nothing
above this module reads a store: features are pure functions of a market graph, and the engine
decides what to read (:data:`FULL_READ` on a cache miss, the small :data:`CATALOG_READ` and
:data:`COMPLIANCE_READ` otherwise).

Edges are read in the chunks the store yields (``GraphStore.edge_keys`` where the store has
integer node keys, as SQLite does; ``GraphStore.edge_rows`` by ids otherwise) and mapped to
rows as they come (:func:`kolmatch.graph.projection.edge_list`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from kolmatch.errors import StoreError
from kolmatch.graph.model import node_spec, rel_spec
from kolmatch.graph.projection import EdgeList, NodeTable, edge_list, node_table, nodes_of
from kolmatch.graph.store import GraphStore

__all__ = [
    "BOOKINGS_READ",
    "CAMPAIGNS_READ",
    "CATALOG_READ",
    "COMPLIANCE_READ",
    "FACT_READ",
    "FIELD_READ",
    "FULL_READ",
    "GROWTH_READ",
    "PROVIDERS_READ",
    "USER_EDGES_READ",
    "VIOLATIONS_READ",
    "MarketGraph",
    "ReadSpec",
    "read_edges_from",
    "read_market",
    "read_nodes_into",
]

#: Fields to read: a tuple of names, or None for every field of the label or type.
Fields = tuple[str, ...] | None
EdgeKey = tuple[str, str]  # (relationship type, source label)
Identity = tuple[str, int]  # (graph id, version)
T = TypeVar("T")


def _merge(a: Fields, b: Fields) -> Fields:
    if a is None or b is None:
        return None
    return tuple(dict.fromkeys((*a, *b)))


@dataclass(frozen=True)
class ReadSpec:
    """Which node labels and relationship types to read, with which properties.

    Specs combine with ``|`` (labels and types united, fields united).

    Examples
    --------
    >>> a = ReadSpec({"Talent": ("name",)}, {})
    >>> b = ReadSpec({"Talent": ("region",), "Product": ()}, {("SELLS", "Merchant"): ()})
    >>> c = a | b
    >>> c.nodes["Talent"], sorted(c.nodes), sorted(c.edges)
    (('name', 'region'), ['Merchant', 'Product', 'Talent'], [('SELLS', 'Merchant')])
    """

    nodes: Mapping[str, Fields]
    edges: Mapping[EdgeKey, Fields] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # every edge needs both endpoint tables to map ids to rows: read their ids at least
        nodes = dict(self.nodes)
        for rel, src in self.edges:
            for label in (src, rel_spec(rel).dst):
                nodes.setdefault(label, ())
        object.__setattr__(self, "nodes", nodes)

    def __or__(self, other: ReadSpec) -> ReadSpec:
        nodes = dict(self.nodes)
        for label, fields in other.nodes.items():
            nodes[label] = _merge(nodes[label], fields) if label in nodes else fields
        edges = dict(self.edges)
        for key, fields in other.edges.items():
            edges[key] = _merge(edges[key], fields) if key in edges else fields
        return ReadSpec(nodes, edges)


@dataclass(frozen=True)
class MarketGraph:
    """Node tables and edge lists of one graph version, as one :class:`ReadSpec` asked.

    ``identity`` is the store's ``(graph id, version)`` the whole read saw.
    """

    identity: Identity
    nodes: Mapping[str, NodeTable]
    edges: Mapping[EdgeKey, EdgeList]

    def node(self, label: str) -> NodeTable:
        """The table of ``label``; :class:`StoreError` if the read did not include it."""
        try:
            return self.nodes[label]
        except KeyError:
            raise StoreError(f"the market graph was read without {label} nodes") from None

    def edge(self, rel_type: str, src_label: str) -> EdgeList:
        """The edges of ``rel_type`` from ``src_label``; :class:`StoreError` if not read."""
        try:
            return self.edges[(rel_type, src_label)]
        except KeyError:
            raise StoreError(
                f"the market graph was read without {rel_type} from {src_label}"
            ) from None

    def release(self, *keys: EdgeKey) -> None:
        """Drop the edge lists ``keys`` from this graph, for a holder that no longer needs
        them (a build's largest tables: their memory goes once nothing else refers to them).
        Reading one afterwards raises :class:`StoreError`, as for a type never read.

        Examples
        --------
        >>> import numpy as np
        >>> from kolmatch.graph.projection import EdgeList
        >>> e = EdgeList("FOLLOWS", "User", np.zeros(1, np.int64), np.zeros(1, np.int64), {})
        >>> g = MarketGraph(("g", 1), {}, {("FOLLOWS", "User"): e})
        >>> g.release(("FOLLOWS", "User"))
        >>> g.has(ReadSpec({}, {("FOLLOWS", "User"): ()}))
        False
        """
        edges = self.edges
        if not isinstance(edges, dict):
            raise TypeError("a market graph's edges are not releasable here")
        for key in keys:
            edges.pop(key, None)

    def has(self, spec: ReadSpec) -> bool:
        """Whether this graph holds every label and type of ``spec`` (fields not checked)."""
        return set(spec.nodes) <= set(self.nodes) and set(spec.edges) <= set(self.edges)

    def restricted(self, spec: ReadSpec) -> MarketGraph:
        """This graph with only the tables and columns ``spec`` reads (what a serving process
        keeps of a larger read, e.g. :data:`COMPLIANCE_READ`'s tables).

        Raises
        ------
        StoreError
            If the graph lacks a label, type or column ``spec`` reads.
        """

        def kept(columns: Mapping[str, Any], fields: Fields, what: str) -> dict[str, Any]:
            if fields is None:
                return dict(columns)
            missing = [f for f in fields if f not in columns]
            if missing:
                raise StoreError(f"the market graph was read without {what}.{missing[0]}")
            return {f: columns[f] for f in fields}

        nodes = {
            label: replace(self.node(label), columns=kept(self.node(label).columns, f, label))
            for label, f in spec.nodes.items()
        }
        edges = {
            (rel, src): replace(
                self.edge(rel, src), columns=kept(self.edge(rel, src).columns, f, rel)
            )
            for (rel, src), f in spec.edges.items()
        }
        return MarketGraph(self.identity, nodes, edges)

    def with_edge(
        self, rel_type: str, src_label: str, src_id: str, dst_id: str, identity: Identity
    ) -> MarketGraph:
        """This graph one relationship later, as a read at ``identity`` would give it.

        The relationship goes after those between the same pair (a fresh read orders them by
        key, and a new one's key is not kept here: the edge list must hold no columns).

        Raises
        ------
        StoreError
            If either endpoint is not in its table, or the edge list holds columns.
        """
        e = self.edge(rel_type, src_label)
        src, dst = self.node(src_label), self.node(rel_spec(rel_type).dst)
        s, d = src.index_of(src_id), dst.index_of(dst_id)
        if s < 0 or d < 0:
            missing = src_id if s < 0 else dst_id
            raise StoreError(f"{rel_type}: {missing!r} is not in the market graph")
        if e.columns:
            raise StoreError(f"{rel_type} is held with columns: read it again instead")
        pair = (e.src + 1) * (len(dst) + 1) + (e.dst + 1)  # edge_list's order
        at = int(np.searchsorted(pair, (s + 1) * (len(dst) + 1) + (d + 1), side="right"))
        edges = dict(self.edges)
        edges[(rel_type, src_label)] = replace(
            e, src=np.insert(e.src, at, s), dst=np.insert(e.dst, at, d)
        )
        return MarketGraph(identity, self.nodes, edges)

    def with_rows_from(self, read: MarketGraph, src_label: str, rows: Any) -> MarketGraph:
        """This graph with every edge of ``read``'s types from the ``src_label`` nodes at
        ``rows`` replaced by ``read``'s: a delta's read by user (:func:`read_edges_from`, at a
        later version) spliced into the whole market's, as :func:`read_market` of that version
        would list it. Types ``read`` lacks are kept as they are (a delta that did not write
        them); the result has ``read``'s identity. The node tables are this graph's: a delta
        that changes a node's own properties (a user's corrected gender) needs those rows
        read too.

        Parameters
        ----------
        read
            The edges from those nodes (of the types it holds), on this graph's node tables.
        src_label
            The label every type of ``read`` starts at.
        rows
            The rows of ``src_label``'s table that ``read`` was read from (every one, also
            those that now have no edge of a type).

        Returns
        -------
        MarketGraph

        Raises
        ------
        StoreError
            If a type of ``read`` does not start at ``src_label``, is not in this graph, or
            holds other columns; or an edge of ``read`` starts at a node not among ``rows``.
        ValueError
            If ``rows`` holds a number that is not a row of ``src_label``'s table.

        Examples
        --------
        >>> import numpy as np
        >>> from kolmatch.graph.projection import EdgeList
        >>> def follows(src, dst):
        ...     return {("FOLLOWS", "User"): EdgeList("FOLLOWS", "User", np.array(src),
        ...                                           np.array(dst), {})}
        >>> users = {"User": NodeTable("User", np.array(["a", "b", "c"], dtype=object), {})}
        >>> g = MarketGraph(("g", 1), users, follows([0, 1, 1, 2], [0, 0, 1, 1]))
        >>> read = MarketGraph(("g", 2), users, follows([1], [2]))
        >>> e = g.with_rows_from(read, "User", np.array([1])).edge("FOLLOWS", "User")
        >>> e.src.tolist(), e.dst.tolist()
        ([0, 1, 2], [0, 2, 1])
        """
        named = np.zeros(len(self.node(src_label)), dtype=bool)
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(named)):
            raise ValueError(f"rows must be rows of the {len(named)} {src_label} nodes")
        named[rows] = True
        edges = dict(self.edges)
        for key, new in read.edges.items():
            old = self.edge(*key)
            if key[1] != src_label:
                raise StoreError(f"{key[0]} from {key[1]} is not a type from {src_label}")
            if set(new.columns) != set(old.columns):
                raise StoreError(f"{key[0]} was read with other columns than the graph holds")
            if not named[new.src].all():
                raise StoreError(f"{key[0]}: an edge from a {src_label} not among the rows")
            kept = ~named[old.src]
            # the read's rows go where their sources' rows were: both lists are ordered by
            # source, and no source has rows in both
            ks = old.src[kept]
            at = np.searchsorted(ks, new.src, side="left") + np.arange(len(new.src))
            slot = np.ones(len(ks) + len(new.src), dtype=bool)
            slot[at] = False
            edges[key] = EdgeList(
                old.rel_type,
                old.src_label,
                _spliced(old.src, new.src, kept, at, slot),
                _spliced(old.dst, new.dst, kept, at, slot),
                {c: _spliced(old.columns[c], new.columns[c], kept, at, slot) for c in old.columns},
            )
        return MarketGraph(read.identity, self.nodes, edges)

    def rows_of_pairs(self, key: EdgeKey, pairs: pa.Table) -> tuple[Any, Any]:
        """The rows in this graph's end tables of the (``src``, ``dst``) ids of ``pairs``
        (a load's pairs of ``key``'s type: :meth:`~kolmatch.loaders.load.LoadReport.pairs`),
        for :meth:`with_pairs`.

        Raises
        ------
        StoreError
            If an end is not in its table (written since it was read: a delta of new nodes
            needs the whole market read again).
        """
        src = self.node(key[1]).indices_of(pairs.column("src").to_numpy(zero_copy_only=False))
        dst = self.node(rel_spec(key[0]).dst).indices_of(
            pairs.column("dst").to_numpy(zero_copy_only=False)
        )
        if (src < 0).any() or (dst < 0).any():
            raise StoreError(f"{key[0]} from {key[1]}: an end the tables read lack")
        return src, dst

    def with_pairs(self, key: EdgeKey, src: Any, dst: Any) -> MarketGraph:
        """This graph with the relationships ``src[i] -> dst[i]`` (rows of the type's end
        tables) of ``key``'s type added where it does not hold them yet, as :func:`read_market`
        would list them after a load that wrote them: a delta's follows, taken from what the
        load wrote (a type the graph holds without properties and without a key is its pairs
        alone: nothing of it needs reading back). A pair named twice is added once.

        Parameters
        ----------
        key
            The (type, source label): a type this graph holds with no columns, without a key.
        src, dst
            Rows of the source and target tables, of equal length.

        Returns
        -------
        MarketGraph
            With this graph's identity (the caller names the version it is of).

        Raises
        ------
        StoreError
            If the type has a key or this graph holds it with columns (their values are the
            store's to give: read them), or the graph's edges of the type are not in
            :func:`read_market`'s order, each pair once (a store holding a pair twice: a
            delta of it is a build's).
        ValueError
            If a row is not one of its table, or the lengths differ.

        Examples
        --------
        >>> import numpy as np
        >>> from kolmatch.graph.projection import EdgeList
        >>> nodes = {"User": NodeTable("User", np.array(["a", "b"], dtype=object), {}),
        ...          "Talent": NodeTable("Talent", np.array(["s", "t"], dtype=object), {})}
        >>> e = EdgeList("FOLLOWS", "User", np.array([0, 1]), np.array([0, 1]), {})
        >>> g = MarketGraph(("g", 1), nodes, {("FOLLOWS", "User"): e})
        >>> out = g.with_pairs(("FOLLOWS", "User"), [1, 0, 1], [0, 0, 0]).edge("FOLLOWS", "User")
        >>> out.src.tolist(), out.dst.tolist()
        ([0, 1, 1], [0, 0, 1])
        """
        old = self.edge(*key)
        spec = rel_spec(key[0])
        if spec.key or old.columns:
            raise StoreError(f"{key[0]} from {key[1]} has a key or properties: read it back")
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        n_src, n_dst = len(self.node(key[1])), len(self.node(spec.dst))
        if src.shape != dst.shape or src.ndim != 1:
            raise ValueError("src and dst must be rows of equal length")
        for rows, n, label in ((src, n_src, key[1]), (dst, n_dst, spec.dst)):
            if len(rows) and (rows.min() < 0 or rows.max() >= n):
                raise ValueError(f"rows must be rows of the {n} {label} nodes")
        # one int64 per pair, as edge_list orders them (rows below each table's length)
        width = n_dst + 1
        held = old.src + 1  # (in place: one array of the list's length, not four)
        held *= width
        held += old.dst
        held += 1
        if len(held) > 1 and not (held[1:] > held[:-1]).all():
            raise StoreError(
                f"{key[0]} from {key[1]} is not in read order (source, target) with each pair "
                "once: read it whole"
            )
        new = np.unique((src + 1) * width + (dst + 1))
        at = np.searchsorted(held, new)
        there = at < len(held)
        there[there] = held[at[there]] == new[there]
        new, at = new[~there], at[~there]
        edges = dict(self.edges)
        edges[key] = EdgeList(
            old.rel_type,
            old.src_label,
            np.insert(old.src, at, new // width - 1),
            np.insert(old.dst, at, new % width - 1),
            {},
        )
        return MarketGraph(self.identity, self.nodes, edges)

    def with_table(self, table: NodeTable, rows: NDArray[np.int64]) -> MarketGraph:
        """This graph on ``table``, a later table of one of its labels holding every node of
        it (at ``rows``) and new ones (a load's sign-ups: :func:`read_nodes_into`): the edges
        at that label renumbered to ``table``'s rows (both tables are in id order, so every
        edge list keeps its order). The nodes' own columns are ``table``'s.

        Raises
        ------
        ValueError
            If ``rows`` are not the rows of this graph's nodes in ``table``.

        Examples
        --------
        >>> import numpy as np
        >>> from kolmatch.graph.projection import EdgeList
        >>> def users(*ids):
        ...     return NodeTable("User", np.array(ids, dtype=object), {})
        >>> e = EdgeList("FOLLOWS", "User", np.array([0, 1]), np.array([0, 0]), {})
        >>> g = MarketGraph(("g", 1), {"User": users("a", "c")}, {("FOLLOWS", "User"): e})
        >>> g.with_table(users("a", "b", "c"), np.array([0, 2])).edge("FOLLOWS", "User").src
        array([0, 2])
        """
        label = table.label
        now = np.asarray(rows, dtype=np.int64)
        was = self.node(label).ids
        if (
            len(now) != len(was)
            or (len(now) and (now.min() < 0 or now.max() >= len(table)))
            or not np.array_equal(table.ids[now], was)
        ):
            raise ValueError(f"rows must be the rows in the new table of the {len(was)} {label}")
        edges = dict(self.edges)
        for (rel, src), e in self.edges.items():
            at_src, at_dst = src == label, rel_spec(rel).dst == label
            if at_src or at_dst:
                edges[(rel, src)] = replace(
                    e, src=now[e.src] if at_src else e.src, dst=now[e.dst] if at_dst else e.dst
                )
        return MarketGraph(self.identity, {**self.nodes, label: table}, edges)


def _spliced(a: np.ndarray, b: np.ndarray, kept: Any, at: Any, slot: Any) -> np.ndarray:
    """``a``'s entries where ``kept``, into ``slot``; ``b``'s at ``at`` (with_rows_from)."""
    out = np.empty(len(slot), dtype=np.result_type(a.dtype, b.dtype))
    out[slot] = a[kept]
    out[at] = b
    return out


def _spec(nodes: Mapping[str, Fields], edges: Iterable[tuple[str, str, Fields]]) -> ReadSpec:
    return ReadSpec(dict(nodes), {(r, s): f for r, s, f in edges})


#: What the feature build reads: the whole market.
FEATURES_READ = _spec(
    {
        "User": ("gender", "age_band"),
        "Talent": None,
        "Merchant": (
            "name",
            "target_gender",
            "target_age_band",
            "budget",
            "min_talents",
            "max_talents",
        ),
        "Product": ("price", "commission_rate"),
        "Category": ("name",),
        "Content": (),
        "Violation": ("kind", "severity", "resolved", "time"),
        "Institution": (),
        "Campaign": ("start", "end"),
    },
    [
        ("IN_CATEGORY", "Product", None),
        # watch time is not a signal (yet): 63 MiB at m not read
        ("ENGAGED_WITH", "User", ("views", "likes", "comments", "shares", "last")),
        ("PUBLISHED", "Talent", None),
        ("FEATURES", "Content", None),
        ("PROMOTED", "Talent", None),
        ("PURCHASED", "User", ("amount", "time", "talent")),
        ("FOLLOWS", "User", ()),
        ("SELLS", "Merchant", None),
        ("HAS_VIOLATION", "Talent", ()),
        ("HAS_VIOLATION", "Merchant", ()),
        ("HAS_VIOLATION", "Product", ()),
        ("SIGNED_WITH", "Talent", ()),
        ("COMPETES_WITH", "Merchant", ()),
        ("BOOKED", "Talent", ("start", "end")),
        ("JOINED", "Merchant", ()),
    ],
)

#: What compliance (risk) reads: violations, whom they are against, what talents promoted and
#: whom they are signed with (an agency's roster shares its risk).
COMPLIANCE_READ = _spec(
    {"Violation": ("kind", "severity", "resolved", "time")},
    [
        ("HAS_VIOLATION", "Talent", ()),
        ("HAS_VIOLATION", "Merchant", ()),
        ("HAS_VIOLATION", "Product", ()),
        ("PROMOTED", "Talent", ()),
        ("SELLS", "Merchant", ()),
        ("SIGNED_WITH", "Talent", ()),
    ],
)

#: What a write of violations alone changes (a flag or a resolve): the rest of
#: :data:`COMPLIANCE_READ` is kept from before it (``read_market``'s ``base``).
VIOLATIONS_READ = _spec(
    {"Violation": ("kind", "severity", "resolved", "time")},
    [
        ("HAS_VIOLATION", "Talent", ()),
        ("HAS_VIOLATION", "Merchant", ()),
        ("HAS_VIOLATION", "Product", ()),
    ],
)

#: Campaigns and their briefs: windows, goals, who joined, categories and products.
CAMPAIGNS_READ = _spec(
    {"Campaign": None, "Merchant": (), "Category": (), "Product": ()},
    [("JOINED", "Merchant", ()), ("COVERS", "Campaign", ()), ("IN_CAMPAIGN", "Product", ())],
)

#: What the API shows besides features: names, rosters, sellers and collaboration history;
#: and the compliance tables, which a serving process keeps for the writes of violations.
CATALOG_READ = (
    CAMPAIGNS_READ
    | COMPLIANCE_READ
    | _spec(
        {
            "Talent": ("name", "region"),
            "Merchant": ("name",),
            "Institution": ("name",),
            "Product": (),
            "Violation": (),
        },
        [
            ("SIGNED_WITH", "Talent", ()),
            ("SELLS", "Merchant", ()),
            ("PROMOTED", "Talent", ("collab_id", "gmv", "orders", "fee", "time", "campaign")),
        ],
    )
)

#: What a booking or release changes: who holds which talent's slots when.
BOOKINGS_READ = _spec({"Talent": (), "Merchant": ()}, [("BOOKED", "Talent", ("start", "end"))])

#: What the growth report reads: sales by month (purchases, collaborations and the merchants'
#: own live rooms) and the bookings of coming windows (kolmatch/matching/growth.py).
GROWTH_READ = _spec(
    {"Merchant": (), "Talent": (), "Product": (), "LiveSession": ("day", "gmv")},
    [
        ("PURCHASED", "User", ("amount", "time")),
        ("SELLS", "Merchant", ()),
        ("PROMOTED", "Talent", ("gmv", "time")),
        ("HOSTED", "Merchant", ()),
        ("BOOKED", "Talent", ("booking_id", "start", "end", "campaign")),
    ],
)

#: A merchant's own live room (FACT's Field): its followers and its sessions' sales and costs.
FIELD_READ = _spec(
    {"Merchant": ("room_followers",), "LiveSession": None},
    [("HOSTED", "Merchant", ())],
)

#: What the FACT split reads besides the features: the live rooms, the campaigns, and sales by
#: day (the campaign lift is measured on them: kolmatch/matching/fact.py).
FACT_READ = (
    FIELD_READ
    | CAMPAIGNS_READ
    | _spec({"User": (), "Product": ()}, [("PURCHASED", "User", ("amount", "time"))])
)

#: Service providers and what they did for merchants, with the merchants' categories (what
#: a provider's track record is read in: kolmatch/matching/providers.py).
PROVIDERS_READ = _spec(
    {"ServiceProvider": None, "Merchant": ("name",), "Product": (), "Category": ("name",)},
    [
        ("ENGAGED", "Merchant", None),
        ("SERVED_BY", "Merchant", ()),
        ("SELLS", "Merchant", ()),
        ("IN_CATEGORY", "Product", ()),
    ],
)

#: Everything any part of kolmatch reads: one pass serves features and the API alike.
FULL_READ = FEATURES_READ | CATALOG_READ | COMPLIANCE_READ

#: How often a read is retried when a write lands while it runs.
READ_ATTEMPTS = 3


def read_market(
    store: GraphStore, spec: ReadSpec = FULL_READ, *, base: MarketGraph | None = None
) -> MarketGraph:
    """Read what ``spec`` asks for from ``store``, all of it from one graph version.

    The reads run in the store's :meth:`~kolmatch.graph.store.GraphStore.reading` context
    (SQLite: one snapshot while writers go on). The store's identity is read before and after;
    if a write landed in between (Neo4j), the read is done again (up to :data:`READ_ATTEMPTS`
    times), so a market graph never mixes two versions.

    Parameters
    ----------
    store
        Any :class:`~kolmatch.graph.store.GraphStore`.
    spec
        What to read; default everything (:data:`FULL_READ`).
    base
        A graph of an earlier version whose other tables the caller vouches are unchanged
        since (a serving process after a write of violations alone reads
        :data:`VIOLATIONS_READ` on the :data:`COMPLIANCE_READ` tables it kept: ~30 ms at m,
        not ~0.4 s). Labels ``spec`` lists without fields (``()``: only an edge's endpoints)
        are taken from it rather than read, and the result holds ``base``'s tables with the
        ones read in their place, at the identity read. A label read anew must bring every
        edge of ``base`` that ends at it (else :class:`StoreError`: they would index the old
        table).

    Returns
    -------
    MarketGraph

    Raises
    ------
    StoreError
        If the graph changed during every attempt, or ``base`` would keep edges into a table
        read anew.
    IncompleteLoad
        If an unfinished load is recorded (from the store's ``identity``).
    """
    kept = dict(base.nodes) if base is not None else {}
    if base is not None:
        _refuse_stale_edges(spec, base)

    def read() -> tuple[dict[str, NodeTable], dict[str, NodeTable], dict[EdgeKey, EdgeList]]:
        nodes = {
            label: node_table(store, label, node_spec(label).field_names if f is None else f)
            for label, f in spec.nodes.items()
            if not (f == () and label in kept)
        }
        ends = {**kept, **nodes}
        edges = {
            (rel, src): edge_list(store, rel, ends[src], ends[rel_spec(rel).dst], f)
            for (rel, src), f in spec.edges.items()
        }
        return nodes, ends, edges

    identity, (nodes, ends, edges) = _at_one_version(store, read)
    if base is None:
        return MarketGraph(identity, nodes, edges)
    return MarketGraph(identity, ends, {**base.edges, **edges})


def _at_one_version(store: GraphStore, read: Callable[[], T]) -> tuple[Identity, T]:
    """``read()`` in the store's reading context, with the identity it saw: done again while
    the store's identity moved during it (a write landed: Neo4j), up to :data:`READ_ATTEMPTS`
    times, so a read never mixes two versions.

    Raises
    ------
    StoreError
        If the graph changed during every attempt.
    """
    for _ in range(READ_ATTEMPTS):
        with store.reading():  # SQLite: one snapshot, writers going on meanwhile
            before = store.identity()
            got = read()
            after = store.identity()
        if after == before:
            return after, got
    raise StoreError(
        f"{store.uri}: the graph changed during each of {READ_ATTEMPTS} reads; try again later"
    )


#: The edges of users a feature build's per-user stage reads (FEATURES_READ's, with their
#: fields): what a delta's users are read again for.
USER_EDGES_READ: Mapping[EdgeKey, Fields] = {
    key: f for key, f in FEATURES_READ.edges.items() if key[1] == "User"
}


def read_edges_from(
    store: GraphStore,
    base: MarketGraph,
    src_label: str,
    ids: Sequence[str],
    edges: Mapping[EdgeKey, Fields] = USER_EDGES_READ,
) -> MarketGraph:
    """The relationships from the ``src_label`` nodes ``ids``, all from one graph version,
    mapped to the rows of ``base``'s node tables.

    A delta's read: after a load of some users' follows and purchases, their edges alone (at
    m, 105,255 users' of 1M), not the whole market's. The result holds ``base``'s node tables
    and, of each edge type in ``edges``, only the rows from these nodes (as
    :func:`read_market` would list them); retried as :func:`read_market` is when a write
    lands meanwhile.

    Parameters
    ----------
    store
        Any :class:`~kolmatch.graph.store.GraphStore`.
    base
        A graph read earlier, holding the node tables at both ends of ``edges``.
    src_label
        The label every type in ``edges`` starts at.
    ids
        Ids of ``src_label`` nodes of ``base`` (one named twice is read once).
    edges
        The types to read, with their fields; default the per-user stage's.

    Returns
    -------
    MarketGraph
        At the identity read.

    Raises
    ------
    StoreError
        If a type does not start at ``src_label``, ``base`` lacks a table, an id or the end
        of a relationship is not in ``base``'s tables (written since: a delta with new nodes
        needs a read of the whole market), or the graph changed during every attempt.
    """
    other = sorted(rel for rel, src in edges if src != src_label or src not in rel_spec(rel).src)
    if other:
        raise StoreError(f"{other} do not start at {src_label}: read them by their own sources")
    ids = list(ids)  # (a repeat is read once: edge_list's sources)
    unknown = base.node(src_label).indices_of(np.asarray(ids, dtype=str)) < 0
    if unknown.any():
        first = ids[int(np.flatnonzero(unknown)[0])]
        raise StoreError(
            f"{int(unknown.sum())} of the {src_label} ids are not in the tables read before "
            f"(first {first!r}): a delta of new nodes needs the whole market read again"
        )
    ends = {label: base.node(label) for label in {src_label, *(rel_spec(r).dst for r, _ in edges)}}
    after, read = _at_one_version(
        store,
        lambda: {
            key: edge_list(
                store, key[0], ends[src_label], ends[rel_spec(key[0]).dst], f, sources=ids
            )
            for key, f in edges.items()
        },
    )
    for (rel, src), e in read.items():
        lost = (e.src < 0) | (e.dst < 0)
        if lost.any():
            raise StoreError(
                f"{rel} from {src}: {int(lost.sum())} relationships end at nodes written "
                f"after the tables were read: read the whole market again"
            )
    return MarketGraph(after, base.nodes, read)


def read_nodes_into(
    store: GraphStore, table: NodeTable, ids: Sequence[str]
) -> tuple[Identity, NodeTable, NDArray[np.int64]]:
    """``table`` (read earlier) with its label's nodes ``ids`` read again, all at one graph
    version: the new ones (a load's sign-ups) go in by id, the others take the columns read
    (a corrected gender). At l the User table is 10M rows; a day's sign-ups are thousands.

    Parameters
    ----------
    store
        Any :class:`~kolmatch.graph.store.GraphStore`.
    table
        A table of the store read earlier (its columns are the ones read again).
    ids
        Ids of nodes of the label (one named twice is read once).

    Returns
    -------
    tuple of (graph id, version), NodeTable and numpy.ndarray
        The identity read, the table, and the rows in it of ``table``'s nodes (increasing).

    Raises
    ------
    StoreError
        If an id is no node of the store, or the graph changed during every attempt.

    Examples
    --------
    >>> from kolmatch.graph.sqlite_store import SQLiteStore
    >>> from kolmatch.graph.store import NodeBatch
    >>> import tempfile
    >>> store = SQLiteStore(f"{tempfile.mkdtemp()}/s.db")
    >>> store.ensure_schema()
    >>> store.write([NodeBatch.of("User", [{"id": "a"}, {"id": "c", "gender": "f"}])])
    >>> users = read_market(store, ReadSpec({"User": ("gender",)})).node("User")
    >>> store.write([NodeBatch.of("User", [{"id": i, "gender": "m"} for i in "bc"])])
    >>> _, now, rows = read_nodes_into(store, users, ["b", "c"])
    >>> now.ids.tolist(), now.columns["gender"].tolist(), rows.tolist()
    (['a', 'b', 'c'], [None, 'm', 'm'], [0, 2])
    >>> store.close()
    """
    label, fields = table.label, tuple(table.columns)
    after, read = _at_one_version(
        store, lambda: nodes_of(store.node_rows_of(label, ids, fields), label, store.uri)
    )
    missing = set(ids) - set(read.ids.tolist())
    if missing:
        raise StoreError(f"{len(missing)} {label} ids are no nodes of the store: {min(missing)!r}")
    at = table.indices_of(read.ids)
    fresh = read.ids[at < 0]
    pos = np.searchsorted(table.ids, fresh)
    ids_now = np.insert(table.ids.astype(np.result_type(table.ids, fresh), copy=False), pos, fresh)
    rows = np.arange(len(table), dtype=np.int64) + np.searchsorted(
        pos, np.arange(len(table)), side="right"
    )
    read_rows = np.searchsorted(ids_now, read.ids)
    columns = {}
    for name, column in table.columns.items():
        merged = np.empty(len(ids_now), dtype=np.result_type(column, read.columns[name]))
        merged[rows] = column
        merged[read_rows] = read.columns[name]
        columns[name] = merged
    key_rows, key_store = None, None
    if table.key_rows is not None and read.key_rows is not None and table.key_store == store.uri:
        key_rows = np.full(max(len(table.key_rows), len(read.key_rows)), -1, dtype=np.int64)
        known = table.key_rows >= 0
        key_rows[: len(known)][known] = rows[table.key_rows[known]]
        keyed = read.key_rows >= 0
        key_rows[: len(keyed)][keyed] = read_rows[read.key_rows[keyed]]
        key_store = store.uri
    return after, NodeTable(label, ids_now, columns, key_rows, key_store), rows


def _refuse_stale_edges(spec: ReadSpec, base: MarketGraph) -> None:
    """Refuse a read on ``base`` that would keep edges indexed into a table it reads anew.

    A label ``spec`` reads with fields replaces ``base``'s table, whose rows may be ordered
    differently: every edge of ``base`` that ends at such a label must be read again too.
    """
    fresh = {label for label, f in spec.nodes.items() if not (f == () and label in base.nodes)}
    stale = sorted(
        f"{rel} from {src}"
        for rel, src in base.edges
        if (rel, src) not in spec.edges and {src, rel_spec(rel).dst} & fresh
    )
    if stale:
        raise StoreError(
            f"a read on kept tables reads {sorted(fresh)} anew but keeps the edges "
            f"{stale} indexed into the old tables: read those edges too"
        )
