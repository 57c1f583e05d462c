"""Every Cypher statement kolmatch sends, as builder functions over the domain model's allow-list.

Values are always ``$parameters``; labels, relationship types and property
names are interpolated only after :func:`_label` / :func:`_rel` / :func:`_props`
have checked them against :mod:`kolmatch.graph.model`.
"""

from __future__ import annotations

from collections.abc import Sequence

from kolmatch.graph.model import NODES, RELATIONSHIPS, node_spec, rel_spec

__all__ = [
    "ADVANCE_VERSION",
    "BATCH_DONE",
    "BOOKINGS_BY_ID",
    "BOOKINGS_OF_TALENTS",
    "BUMP_VERSION",
    "COLLABORATION_BY_ID",
    "DELETE_ALL",
    "DROP_LOADS",
    "LOAD_PROGRESS",
    "LOCK_META",
    "MARK_PENDING",
    "READ_VERSION",
    "RELEASE_BOOKINGS",
    "RIVALS",
    "SAVE_PLAN",
    "TALENT_CAPACITY",
    "constraint_statements",
    "count_nodes",
    "count_rels",
    "create_nodes",
    "create_rels",
    "edge_rows",
    "edge_rows_from",
    "missing_ids",
    "node_by_id",
    "node_rows",
    "upsert_nodes",
    "upsert_rels",
]


def _label(label: str) -> str:
    return node_spec(label).label  # KeyError for anything not in the model


def _rel(rel_type: str) -> str:
    return rel_spec(rel_type).type


def _props(allowed: Sequence[str], wanted: Sequence[str]) -> list[str]:
    bad = [p for p in wanted if p not in allowed]
    if bad:
        raise KeyError(f"properties not in the domain model: {bad}")
    return list(wanted)


#: Delete every relationship, then every node, in batches (auto-commit transactions only).
#: Relationships first: DETACH DELETE of 10,000 nodes at once took a popular talent's hundreds of
#: thousands of relationships into one transaction and broke the transaction memory limit at m.
DELETE_ALL = (
    "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 50000 ROWS",
    "MATCH (n) CALL (n) { DELETE n } IN TRANSACTIONS OF 50000 ROWS",
)


#: The graph's version and its unfinished loads live on one node outside the domain model.
#: A load of many transactions first locks it and reads which loads are unfinished ...
LOCK_META = (
    "MERGE (v:KolmatchMeta {id: 'graph'}) SET v.pending = coalesce(v.pending, []) "
    "RETURN v.pending AS pending"
)
#: ... adds its ``$key`` to ``pending`` (dropping the keys in ``$drop``) ...
MARK_PENDING = (
    "MERGE (v:KolmatchMeta {id: 'graph'}) "
    "SET v.pending = [x IN coalesce(v.pending, []) WHERE x <> $key AND NOT x IN $drop] + [$key]"
)
#: ... and its last transaction raises the version and removes the key (``$key`` may be '').
#: The node also names the graph (``uid``, made by its first write; see GraphStore.graph_id)
#: and records the store format of the kolmatch that wrote it (``$format``; Neo4j is
#: schemaless, so a property the model gained reads as null in an older graph: no migration).
#: It returns the version it made: the SET reads ``v.version`` under the node's write lock
#: (Cypher takes it before reading a property the SET depends on), so no other transaction
#: raises it in between.
BUMP_VERSION = (
    "MERGE (v:KolmatchMeta {id: 'graph'}) SET v.version = coalesce(v.version, 0) + 1, "
    "v.pending = [x IN coalesce(v.pending, []) WHERE x <> $key], "
    "v.uid = coalesce(v.uid, randomUUID()), v.format = $format RETURN v.version AS version"
)
#: Raise the version if it is ``$expected`` and no load is unfinished (LOCK_META's write lock
#: first, so no other transaction raises it between the check and the raise).
ADVANCE_VERSION = (
    "MERGE (v:KolmatchMeta {id: 'graph'}) SET v.pending = coalesce(v.pending, []) "
    "WITH v WHERE coalesce(v.version, 0) = $expected AND size(v.pending) = 0 "
    "SET v.version = coalesce(v.version, 0) + 1, v.uid = coalesce(v.uid, randomUUID()) "
    "RETURN v.version AS version"
)
READ_VERSION = (
    "MATCH (v:KolmatchMeta {id: 'graph'}) "
    "RETURN v.version AS version, coalesce(v.pending, []) AS pending, v.uid AS uid"
)
#: An unfinished load's plan (lane -1: the labels and types it CREATEs rather than MERGEs) and
#: progress (one node per writer lane: the indexes of its committed batches).
SAVE_PLAN = "CREATE (:KolmatchLoad {key: $key, lane: -1, create: $create, done: []})"
LOAD_PROGRESS = "MATCH (p:KolmatchLoad {key: $key}) RETURN p.create AS create, p.done AS done"
#: Run in each batch's own transaction: the batch and its record commit together.
BATCH_DONE = (
    "MERGE (p:KolmatchLoad {key: $key, lane: $lane}) SET p.done = coalesce(p.done, []) + [$batch]"
)
DROP_LOADS = "MATCH (p:KolmatchLoad) WHERE p.key IN $keys DETACH DELETE p"


#: Bookings (kolmatch/graph/booking.py) are checked and written in one transaction that
#: first takes LOCK_META's write lock: booking transactions run one at a time, so two
#: clients after a talent's last slot cannot both read it free. Each is a few rows.
_BOOKING_COLUMNS = (
    "RETURN r.booking_id AS booking_id, t.id AS talent, m.id AS merchant, "
    "r.start AS start, r.end AS end, r.campaign AS campaign"
)
#: The bookings held under the ids in ``$ids`` (the idempotency check) ...
BOOKINGS_BY_ID = (
    "UNWIND $ids AS bid MATCH (t:Talent)-[r:BOOKED {booking_id: bid}]->(m:Merchant) "
    + _BOOKING_COLUMNS
)
#: ... every booking of the talents in ``$ids`` ...
BOOKINGS_OF_TALENTS = (
    "UNWIND $ids AS id MATCH (t:Talent {id: id})-[r:BOOKED]->(m:Merchant) " + _BOOKING_COLUMNS
)
#: ... the talents' capacities (a missing talent returns no row) ...
TALENT_CAPACITY = (
    "UNWIND $ids AS id MATCH (t:Talent {id: id}) RETURN t.id AS id, t.capacity AS capacity"
)
#: ... and the competitors of the merchants in ``$ids``, either direction.
RIVALS = (
    "UNWIND $ids AS id MATCH (m:Merchant {id: id})-[:COMPETES_WITH]-(o:Merchant) "
    "RETURN DISTINCT m.id AS merchant, o.id AS rival"
)
#: Delete the bookings named in ``$ids`` (only ``$merchant``'s unless it is null).
RELEASE_BOOKINGS = (
    "UNWIND $ids AS bid MATCH (:Talent)-[r:BOOKED {booking_id: bid}]->(m:Merchant) "
    "WHERE $merchant IS NULL OR m.id = $merchant DELETE r RETURN DISTINCT bid"
)

#: The collaboration held under ``$id`` (at most one row; the key's range index finds it),
#: read after LOCK_META in the transaction that writes it if none is: a collaboration id is
#: written once, however many servers send it at once.
COLLABORATION_BY_ID = (
    "MATCH (t:Talent)-[r:PROMOTED {collab_id: $id}]->(p:Product) "
    "RETURN t.id AS talent, p.id AS product, r.gmv AS gmv, r.orders AS orders, "
    "r.fee AS fee, r.time AS time, r.campaign AS campaign LIMIT 1"
)


def constraint_statements() -> list[str]:
    """Schema, created before any load.

    Steps: a uniqueness constraint on ``id`` for every label (it also serves
    the id lookups of MERGE and MATCH), and a range index on the key property
    of keyed relationship types (order ids, collaboration ids).
    """
    out = [
        f"CREATE CONSTRAINT {n.file}_id IF NOT EXISTS FOR (n:{n.label}) REQUIRE n.id IS UNIQUE"
        for n in NODES
    ]
    out += [
        f"CREATE INDEX {r.file}_{r.key} IF NOT EXISTS FOR ()-[r:{r.type}]-() ON (r.{r.key})"
        for r in RELATIONSHIPS
        if r.key
    ]
    return out


def _set_clause(var: str, values: Sequence[tuple[str, str]]) -> str:
    # One SET per (property, value expression) rather than `SET n += row.props`: a map write
    # makes the planner add an Eager operator (all rows materialised before any write);
    # coalesce keeps stored values for the properties a row leaves empty.
    sets = ", ".join(f"{var}.{p} = coalesce({value}, {var}.{p})" for p, value in values)
    return f" SET {sets}" if sets else ""


def upsert_nodes(label: str) -> str:
    """Upsert a batch of nodes: ``$rows`` is a list of maps with ``id`` and the label's properties.

    Steps: unwind the rows; MERGE on the unique id; set each property the row
    gives (an empty one keeps its stored value).
    """
    spec = node_spec(label)
    return f"UNWIND $rows AS row MERGE (n:{_label(label)} {{id: row.id}})" + _set_clause(
        "n", [(p, f"row.{p}") for p in spec.field_names]
    )


def create_nodes(label: str) -> str:
    """Create a batch of new nodes (``$rows`` as for :func:`upsert_nodes`).

    For a label that held no node when the load began: CREATE skips MERGE's
    lookup and lock (about 3x faster); an id that exists after all breaks the
    uniqueness constraint and fails the batch rather than doubling the node.
    """
    spec = node_spec(label)
    sets = ", ".join(f"n.{p} = row.{p}" for p in ("id", *spec.field_names))
    return f"UNWIND $rows AS row CREATE (n:{_label(label)}) SET {sets}"


def _grouped_endpoints(rel_type: str, src_label: str) -> str:
    # $dst: the batch's distinct target ids; $groups: [source id, [[target index, *properties]]]
    # for each run of rows with one source. Each distinct endpoint is looked up once per batch
    # rather than once per row; a target that is missing makes CREATE / MERGE fail loudly.
    spec = rel_spec(rel_type)
    if src_label not in spec.src:
        raise KeyError(f"{rel_type} does not start at {src_label}")
    return (
        f"UNWIND $dst AS id OPTIONAL MATCH (d:{_label(spec.dst)} {{id: id}}) "
        f"WITH collect([d]) AS ds "
        f"UNWIND $groups AS g MATCH (s:{_label(src_label)} {{id: g[0]}}) "
        f"UNWIND g[1] AS e WITH s, ds[e[0]][0] AS d, e "
    )


def upsert_rels(rel_type: str, src_label: str) -> str:
    """Upsert a batch of relationships given as ``$dst`` and ``$groups`` (see ``rel_params``).

    Steps: look up each distinct target and each run's source by their unique
    ids; MERGE the relationship on (source, target) or, for keyed types, on
    (source, target, key property); set the other properties (an empty one
    keeps its stored value).
    """
    spec = rel_spec(rel_type)
    at = {f: i + 1 for i, f in enumerate(spec.field_names)}
    key = f" {{{spec.key}: e[{at[spec.key]}]}}" if spec.key else ""
    return (
        _grouped_endpoints(rel_type, src_label)
        + f"MERGE (s)-[r:{_rel(rel_type)}{key}]->(d)"
        + _set_clause("r", [(p, f"e[{i}]") for p, i in at.items() if p != spec.key])
    )


def create_rels(rel_type: str, src_label: str) -> str:
    """Create a batch of new relationships (parameters as for :func:`upsert_rels`).

    For a type that held no relationship when the load began (the loader has
    rejected duplicate rows): no MERGE, so no search of the source's
    relationships and no node locks taken while the query runs, which lets two
    writers run side by side without deadlocking on the dense target nodes.
    """
    spec = rel_spec(rel_type)
    sets = ", ".join(f"r.{p} = e[{i + 1}]" for i, p in enumerate(spec.field_names))
    return (
        _grouped_endpoints(rel_type, src_label)
        + f"CREATE (s)-[r:{_rel(rel_type)}]->(d)"
        + (f" SET {sets}" if sets else "")
    )


def missing_ids(label: str) -> str:
    """Those of ``$ids`` that no node of the label has."""
    return (
        f"UNWIND $ids AS id OPTIONAL MATCH (n:{_label(label)} {{id: id}}) "
        f"WITH id, n WHERE n IS NULL RETURN id"
    )


def node_by_id(label: str) -> str:
    """The properties of the node of the label whose id is ``$id`` (no row if none): what a
    write of a new node reads first (``GraphStore.add_node``)."""
    spec = node_spec(label)
    fields = ", ".join(f"n.{p} AS {p}" for p in spec.field_names or ("id",))
    return f"MATCH (n:{_label(label)} {{id: $id}}) RETURN {fields}"


def count_nodes(label: str) -> str:
    """Nodes of a label (answered from the count store)."""
    return f"MATCH (n:{_label(label)}) RETURN count(n) AS n"


def count_rels(rel_type: str) -> str:
    """Relationships of a type (answered from the count store)."""
    return f"MATCH ()-[r:{_rel(rel_type)}]->() RETURN count(r) AS n"


# Reads return their rows collected, one list per row in one record per page: the Bolt record
# and the driver's per-record handling cost 8-13x the rows' own transfer (the s market's
# 399k follows: 7.0 s as records, 0.54 s as pages of 20,000 users; docs/scale.md).


#: A page's greatest id, where the next page starts (taken by the server: its order of text
#: is the index's, which Python's need not be for every character).
_LAST = "reduce(last = '', x IN page | CASE WHEN x.id > last THEN x.id ELSE last END) AS last"


def node_rows(label: str, fields: Sequence[str]) -> str:
    """A page of the nodes of a label: ``$n`` nodes of ids after ``$after``, in id order (the
    uniqueness constraint's index gives the order), as ``rows``, a list of ``[id,
    property...]`` lists, with ``last``, the page's greatest id (where the next page starts),
    and ``n``, how many nodes it has (fewer than ``$n``: the last page)."""
    spec = node_spec(label)
    cols = "".join(f", n.{f}" for f in _props(spec.field_names, fields))
    return (
        f"MATCH (n:{_label(label)}) WHERE n.id > $after WITH n ORDER BY n.id LIMIT $n "
        f"WITH collect(n) AS page RETURN [n IN page | [n.id{cols}]] AS rows, {_LAST}, "
        "size(page) AS n"
    )


def node_rows_of(label: str, fields: Sequence[str]) -> str:
    """:func:`node_rows` of the nodes whose ids are ``$ids`` (all of them, one list).

    Steps: unwind the ids; find each node by id (the label's uniqueness constraint); collect
    its id and the named properties.
    """
    spec = node_spec(label)
    cols = "".join(f", n.{f}" for f in _props(spec.field_names, fields))
    return (
        f"UNWIND $ids AS id MATCH (n:{_label(label)} {{id: id}}) "
        f"RETURN collect([n.id{cols}]) AS rows"
    )


def edge_rows(rel_type: str, src_label: str, fields: Sequence[str], *, scoped: bool) -> str:
    """A page of the relationships of a type from a source label: those of ``$n`` source
    nodes of ids after ``$after``, in id order, as ``rows`` (``[source id, target id,
    property...]`` lists), with ``last`` and ``n`` as in :func:`node_rows`.

    Steps: the page's sources by the label's id index, in order; their relationships of the
    type, collected in a subquery; the greatest source id. ``scoped``: the subquery imports
    the page by a variable scope clause, ``CALL (page) {...}`` (Neo4j 5.23 and later, where
    the older ``CALL { WITH page ...}`` is deprecated and warns at every page); else the older
    form. A pattern comprehension per source instead of the subquery read m 44% slower.

    Examples
    --------
    >>> edge_rows("FOLLOWS", "User", (), scoped=True).split("CALL")[1][:12]
    ' (page) { UN'
    >>> edge_rows("FOLLOWS", "User", (), scoped=False).split("CALL")[1][:17]
    ' { WITH page UNWI'
    """
    call = "CALL (page) { " if scoped else "CALL { WITH page "
    return (
        f"MATCH (s:{_label(src_label)}) WHERE s.id > $after WITH s ORDER BY s.id LIMIT $n "
        f"WITH collect(s) AS page {call}UNWIND page AS s "
        f"MATCH {_rel_pattern(rel_type, src_label, '')} {_rel_collect(rel_type, fields)} }} "
        f"RETURN rows, {_LAST}, size(page) AS n"
    )


def _rel_pattern(rel_type: str, src_label: str, source: str) -> str:
    """``(s)-[r]->(d)`` of the type from the label, the source node's pattern ending ``source``."""
    spec = rel_spec(rel_type)
    if src_label not in spec.src:
        raise KeyError(f"{rel_type} does not start at {src_label}")
    return f"(s:{_label(src_label)}{source})-[r:{_rel(rel_type)}]->(d:{_label(spec.dst)})"


def _rel_collect(rel_type: str, fields: Sequence[str]) -> str:
    cols = "".join(f", r.{f}" for f in _props(rel_spec(rel_type).field_names, fields))
    return f"RETURN collect([s.id, d.id{cols}]) AS rows"


def edge_rows_from(rel_type: str, src_label: str, fields: Sequence[str]) -> str:
    """The rows of :func:`edge_rows` of the source nodes whose ids are ``$ids`` (all of them,
    one list).

    Steps: unwind the ids; find each source node by id (the label's uniqueness constraint);
    match its relationships of the type; collect endpoint ids and properties.
    """
    pattern = _rel_pattern(rel_type, src_label, " {id: id}")
    return f"UNWIND $ids AS id MATCH {pattern} {_rel_collect(rel_type, fields)}"
