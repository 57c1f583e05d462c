"""Every Cypher statement kolmatch sends, as builder functions over the domain model's allow-list.

Values are always ``$parameters``; labels, relationship types and property
names are interpolated only after :func:`_label` / :func:`_rel` / :func:`_props`
have checked them against :mod:`kolmatch.graph.model`.
"""

from __future__ import annotations

from collections.abc import Sequence

from kolmatch.graph.model import NODES, RELATIONSHIPS, node_spec, rel_spec

__all__ = [
    "BUMP_VERSION",
    "DELETE_ALL",
    "MARK_PENDING",
    "READ_VERSION",
    "constraint_statements",
    "count_nodes",
    "count_rels",
    "edge_rows",
    "missing_ids",
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


#: Delete every node and relationship in batches (auto-commit transaction only).
DELETE_ALL = "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"


#: The graph's version and its unfinished loads live on one node outside the domain model.
#: A load of many transactions first adds its ``$key`` to ``pending`` ...
MARK_PENDING = (
    "MERGE (v:KolmatchMeta {id: 'graph'}) "
    "SET v.pending = [x IN coalesce(v.pending, []) WHERE x <> $key] + [$key]"
)
#: ... and its last transaction raises the version and removes the key (``$key`` may be '').
BUMP_VERSION = (
    "MERGE (v:KolmatchMeta {id: 'graph'}) SET v.version = coalesce(v.version, 0) + 1, "
    "v.pending = [x IN coalesce(v.pending, []) WHERE x <> $key]"
)
READ_VERSION = (
    "MATCH (v:KolmatchMeta {id: 'graph'}) "
    "RETURN v.version AS version, coalesce(v.pending, []) AS pending"
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


def _set_clause(var: str, props: Sequence[str]) -> str:
    # One SET per property rather than `SET n += row.props`: a map write makes the planner add
    # an Eager operator (all rows materialised before any write); coalesce keeps stored values
    # for the properties a row leaves empty.
    sets = ", ".join(f"{var}.{p} = coalesce(row.{p}, {var}.{p})" for p in props)
    return f" SET {sets}" if sets else ""


def upsert_nodes(label: str) -> str:
    """Upsert a batch of nodes: ``$rows`` is a list of maps with ``id`` and the label's properties.

    Steps: unwind the rows; MERGE on the unique id; set each property the row
    gives (an empty one keeps its stored value).
    """
    spec = node_spec(label)
    return f"UNWIND $rows AS row MERGE (n:{_label(label)} {{id: row.id}})" + _set_clause(
        "n", spec.field_names
    )


def upsert_rels(rel_type: str, src_label: str) -> str:
    """Upsert a batch of relationships: ``$rows`` holds ``src``, ``dst`` and the type's properties.

    Steps: unwind the rows; find both endpoints by their unique ids (the loader
    has checked they exist); MERGE the relationship on (source, target) or, for
    keyed types, on (source, target, key property); set the other properties.
    """
    spec = rel_spec(rel_type)
    if src_label not in spec.src:
        raise KeyError(f"{rel_type} does not start at {src_label}")
    key = f" {{{spec.key}: row.{spec.key}}}" if spec.key else ""
    props = [p for p in spec.field_names if p != spec.key]
    return (
        f"UNWIND $rows AS row "
        f"MATCH (s:{_label(src_label)} {{id: row.src}}) "
        f"MATCH (d:{_label(spec.dst)} {{id: row.dst}}) "
        f"MERGE (s)-[r:{_rel(rel_type)}{key}]->(d)" + _set_clause("r", props)
    )


def missing_ids(label: str) -> str:
    """Those of ``$ids`` that no node of the label has."""
    return (
        f"UNWIND $ids AS id OPTIONAL MATCH (n:{_label(label)} {{id: id}}) "
        f"WITH id, n WHERE n IS NULL RETURN id"
    )


def count_nodes(label: str) -> str:
    """Nodes of a label (answered from the count store)."""
    return f"MATCH (n:{_label(label)}) RETURN count(n) AS n"


def count_rels(rel_type: str) -> str:
    """Relationships of a type (answered from the count store)."""
    return f"MATCH ()-[r:{_rel(rel_type)}]->() RETURN count(r) AS n"


def node_rows(label: str, fields: Sequence[str]) -> str:
    """Every node of a label with its id and the named properties."""
    spec = node_spec(label)
    cols = "".join(f", n.{f} AS {f}" for f in _props(spec.field_names, fields))
    return f"MATCH (n:{_label(label)}) RETURN n.id AS id{cols}"


def edge_rows(rel_type: str, src_label: str, fields: Sequence[str]) -> str:
    """Every relationship of a type from a source label, with endpoint ids and properties."""
    spec = rel_spec(rel_type)
    if src_label not in spec.src:
        raise KeyError(f"{rel_type} does not start at {src_label}")
    cols = "".join(f", r.{f} AS {f}" for f in _props(spec.field_names, fields))
    return (
        f"MATCH (s:{_label(src_label)})-[r:{_rel(rel_type)}]->(d:{_label(spec.dst)}) "
        f"RETURN s.id AS src, d.id AS dst{cols}"
    )
