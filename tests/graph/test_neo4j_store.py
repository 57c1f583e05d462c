"""The Neo4j store against the real server `make test` starts: schema, loads, resume, parity."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kolmatch.errors import IncompleteLoad
from kolmatch.graph.model import NODES, RELATIONSHIPS
from kolmatch.graph.projection import edge_list, node_table
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import GraphStore, NodeBatch
from kolmatch.loaders.load import (
    _Validation,  # the write path's batches, to cut a load short
    load_folder,
    load_key,
)

pytestmark = pytest.mark.neo4j


def test_schema_has_a_uniqueness_constraint_per_label(neo4j_store: Any) -> None:
    recs = neo4j_store._query("SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type")
    have = {
        (r["labelsOrTypes"][0], tuple(r["properties"])) for r in recs if r["type"] == "UNIQUENESS"
    }
    assert {(n.label, ("id",)) for n in NODES} <= have


def test_tiny_load_counts_and_idempotent_reload(
    tiny_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore
) -> None:
    load_folder(tiny_market, neo4j_store)
    load_folder(tiny_market, sqlite_store)
    first = neo4j_store.counts()
    assert first == sqlite_store.counts()
    version = neo4j_store.version()
    assert version >= 1
    load_folder(tiny_market, neo4j_store)
    assert neo4j_store.counts() == first
    assert neo4j_store.version() == version + 1


def test_failed_then_resumed_load_has_no_duplicates(
    tiny_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore
) -> None:
    # a load that dies after some batches (as a killed process would)
    v = _Validation(tiny_market, neo4j_store)
    key = load_key(tiny_market, [f.path for f in v.files])
    with pytest.raises(RuntimeError):
        neo4j_store.write(itertools.chain(itertools.islice(v.batches(), 12), _boom()), key=key)
    partial = neo4j_store.counts()
    assert sum(partial.values()) > 0
    with pytest.raises(IncompleteLoad, match="tiny"):  # written, but never read
        neo4j_store.version()
    load_folder(tiny_market, neo4j_store)  # the same load again completes it
    load_folder(tiny_market, sqlite_store)
    assert neo4j_store.counts() == sqlite_store.counts()
    assert neo4j_store.version() >= 1


def test_a_small_write_is_one_transaction(tiny_market: Path, neo4j_store: Any) -> None:
    load_folder(tiny_market, neo4j_store)
    before, version = neo4j_store.counts(), neo4j_store.version()
    rows = [{"id": f"new-{i}", "name": "x"} for i in range(3)]
    with pytest.raises(RuntimeError):
        neo4j_store.write(itertools.chain([NodeBatch("Institution", rows)], _boom()))
    assert neo4j_store.counts() == before and neo4j_store.version() == version
    neo4j_store.write([NodeBatch("Institution", rows)])
    assert neo4j_store.counts()["Institution"] == before["Institution"] + 3
    assert neo4j_store.version() == version + 1


def _boom():  # type: ignore[no-untyped-def]
    raise RuntimeError("killed part-way")
    yield


def _assert_same_columns(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    assert a.keys() == b.keys(), what
    for f, ca in a.items():
        if ca.dtype == object:
            assert list(ca) == list(b[f]), (what, f)
        else:
            np.testing.assert_array_equal(ca, b[f], err_msg=f"{what}.{f}")


def _assert_same_projections(a: GraphStore, b: GraphStore) -> None:
    tables = {}
    for n in NODES:
        ta, tb = node_table(a, n.label), node_table(b, n.label)
        assert np.array_equal(ta.ids, tb.ids), n.label
        _assert_same_columns(ta.columns, tb.columns, n.label)
        tables[n.label] = (ta, tb)
    for r in RELATIONSHIPS:
        for src in r.src:
            ea = edge_list(a, r.type, tables[src][0], tables[r.dst][0])
            eb = edge_list(b, r.type, tables[src][1], tables[r.dst][1])
            assert np.array_equal(ea.src, eb.src) and np.array_equal(ea.dst, eb.dst), r.type
            _assert_same_columns(ea.columns, eb.columns, r.type)


def test_parity_tiny(tiny_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore) -> None:
    load_folder(tiny_market, neo4j_store)
    load_folder(tiny_market, sqlite_store)
    _assert_same_projections(sqlite_store, neo4j_store)


@pytest.mark.slow
def test_parity_s_market(s_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore) -> None:
    load_folder(s_market, neo4j_store)
    load_folder(s_market, sqlite_store)
    assert neo4j_store.counts() == sqlite_store.counts()
    assert sqlite_store.counts()["FOLLOWS"] > 300_000
    _assert_same_projections(sqlite_store, neo4j_store)


def test_cypher_in_ids_is_plain_data(neo4j_store: Any, tmp_path: Path) -> None:
    d = tmp_path / "evil"
    d.mkdir()
    evil = "x'}) DETACH DELETE n //`"
    (d / "category.csv").write_text(f'id,name\n"{evil}",Evil\nc2,Fine\n')
    load_folder(d, neo4j_store)
    assert sorted(neo4j_store.node_rows("Category", ("name",)).ids) == sorted([evil, "c2"])
