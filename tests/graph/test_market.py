"""The market graph: one consistent read of a store, the same on every store."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kolmatch.errors import StoreError
from kolmatch.graph.market import (
    CATALOG_READ,
    COMPLIANCE_READ,
    FEATURES_READ,
    FULL_READ,
    READ_ATTEMPTS,
    USER_EDGES_READ,
    VIOLATIONS_READ,
    MarketGraph,
    ReadSpec,
    read_edges_from,
    read_market,
    read_nodes_into,
)
from kolmatch.graph.model import NODES, rel_spec
from kolmatch.graph.projection import EdgeList, edge_list, node_table
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import EdgeRows, NodeBatch, RelBatch
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import build_features
from tests.conftest import WritesWhileRead, write_user_delta


def test_specs_add_their_endpoints_and_unite_fields() -> None:
    spec = ReadSpec({}, {("PROMOTED", "Talent"): ("gmv",)})
    assert spec.nodes == {"Talent": (), "Product": ()}  # ids to map both ends
    both = spec | ReadSpec({"Talent": None}, {("PROMOTED", "Talent"): ("fee", "gmv")})
    assert both.nodes["Talent"] is None  # None (every field) wins
    assert both.edges[("PROMOTED", "Talent")] == ("gmv", "fee")
    assert set(COMPLIANCE_READ.edges) <= set(FULL_READ.edges)
    assert set(CATALOG_READ.nodes) <= set(FULL_READ.nodes)


def test_read_equals_the_projections_and_names_what_it_lacks(
    tiny_market: Path, sqlite_store: SQLiteStore
) -> None:
    load_folder(tiny_market, sqlite_store)
    g = read_market(sqlite_store)
    assert g.identity == sqlite_store.identity()
    for label in ("Talent", "User", "Product"):
        t = node_table(sqlite_store, label)
        assert np.array_equal(g.node(label).ids, t.ids)
    e = edge_list(sqlite_store, "FOLLOWS", g.node("User"), g.node("Talent"), ())
    assert np.array_equal(g.edge("FOLLOWS", "User").src, e.src)
    assert np.array_equal(g.edge("FOLLOWS", "User").dst, e.dst)
    small = read_market(sqlite_store, COMPLIANCE_READ)
    assert small.has(COMPLIANCE_READ) and not small.has(FULL_READ)
    with pytest.raises(StoreError, match="without ENGAGED_WITH from User"):
        small.edge("ENGAGED_WITH", "User")
    with pytest.raises(StoreError, match="without Content nodes"):
        small.node("Content")


class _Reversed:
    """A store that yields its relationships in the reverse of SQLite's order."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def edge_keys(self, rel_type: str, src_label: str, fields: Any) -> Any:
        chunks = list(self.store.edge_keys(rel_type, src_label, fields))[::-1]
        for c in chunks:
            cols = {f: v[::-1] for f, v in c.columns.items()}
            yield EdgeRows(c.src[::-1], c.dst[::-1], cols)


def test_reading_by_store_keys_equals_reading_by_ids(
    tiny_market: Path, sqlite_store: SQLiteStore
) -> None:
    """SQLite's edges read by row ids (no join, no text ids) give the graph the ids give."""
    load_folder(tiny_market, sqlite_store)
    user, product = "u1", node_table(sqlite_store, "Product").ids[3]
    bought = [  # one pair bought twice, written against its keys' order
        {"src": user, "dst": product, "order_id": k, "amount": 1.0, "time": t}
        for k, t in (("o-zz", "2026-01-09"), ("o-aa", "2026-01-01"))
    ]
    sqlite_store.write([RelBatch.of("PURCHASED", "User", bought)])
    keyed = read_market(_Reversed(sqlite_store), FULL_READ)  # type: ignore[arg-type]
    assert all(t.key_rows is not None for t in keyed.nodes.values())
    by_ids = {label: dataclasses.replace(t, key_rows=None) for label, t in keyed.nodes.items()}
    for (rel, src), fields in FULL_READ.edges.items():
        b = edge_list(sqlite_store, rel, by_ids[src], by_ids[rel_spec(rel).dst], fields)
        a = keyed.edge(rel, src)
        assert np.array_equal(a.src, b.src) and np.array_equal(a.dst, b.dst), rel
        asked = rel_spec(rel).field_names if fields is None else fields
        assert set(a.columns) == set(b.columns) == set(asked)
        for col, va in a.columns.items():
            assert [str(x) for x in va] == [str(x) for x in b.columns[col]], (rel, col)
    p = keyed.edge("PURCHASED", "User")
    pair = (p.src == keyed.node("User").index_of(user)) & (
        p.dst == keyed.node("Product").index_of(product)
    )
    assert p.columns["time"][pair].tolist() == ["2026-01-01", "2026-01-09"]  # by key: o-aa first
    last = keyed.edge("ENGAGED_WITH", "User").columns["last"]
    assert len({id(v) for v in last}) == len(set(last)) < len(last)  # one object per date


def test_an_edge_to_a_node_written_after_its_table_maps_to_minus_one(
    tiny_market: Path, sqlite_store: SQLiteStore
) -> None:
    load_folder(tiny_market, sqlite_store)
    users, talents = node_table(sqlite_store, "User"), node_table(sqlite_store, "Talent")
    sqlite_store.write(
        [
            NodeBatch.of("User", [{"id": "u-new"}]),
            RelBatch.of("FOLLOWS", "User", [{"src": "u-new", "dst": talents.ids[0]}]),
        ]
    )
    e = edge_list(sqlite_store, "FOLLOWS", users, talents, ())
    assert (e.src == -1).sum() == 1 and e.src[0] == -1  # unknown first, as an unknown id
    assert (e.src >= 0).sum() == len(e) - 1


def _categories(n: int) -> list[NodeBatch]:
    return [NodeBatch.of("Category", [{"id": f"c-{i}", "name": "x"}]) for i in reversed(range(n))]


def test_a_read_that_a_write_overtakes_is_read_again(
    tiny_market: Path, sqlite_store: SQLiteStore
) -> None:
    load_folder(tiny_market, sqlite_store)
    v = sqlite_store.version()
    moving = WritesWhileRead(sqlite_store, "Talent", _categories(READ_ATTEMPTS - 1))
    g = read_market(moving, CATALOG_READ | ReadSpec({"Category": ("name",)}))  # type: ignore[arg-type]
    # the last attempt saw no write: its graph is the final version, every table included
    assert g.identity[1] == v + READ_ATTEMPTS - 1
    assert "c-0" in g.node("Category").ids.tolist()
    always = WritesWhileRead(sqlite_store, "Talent", _categories(READ_ATTEMPTS))
    with pytest.raises(StoreError, match="changed during each of 3 reads"):
        read_market(always, CATALOG_READ)  # type: ignore[arg-type]


def test_a_sqlite_read_keeps_its_snapshot_while_another_process_writes(
    tiny_market: Path, sqlite_store: SQLiteStore
) -> None:
    """WAL: the read is neither started again nor in the writer's way."""
    load_folder(tiny_market, sqlite_store)
    v = sqlite_store.version()
    other = SQLiteStore(sqlite_store.path)  # another connection, as another process has
    written: list[float] = []

    class WriteMidRead:
        def __getattr__(self, name: str) -> Any:
            return getattr(sqlite_store, name)

        def node_rows(self, label: str, fields: Any) -> Any:
            rows = sqlite_store.node_rows(label, fields)
            if label == "Talent" and not written:
                t0 = time.monotonic()
                other.write(_categories(1))  # commits while the read holds its snapshot
                written.append(time.monotonic() - t0)
            return rows

    spec = CATALOG_READ | ReadSpec({"Category": ("name",)})
    g = read_market(WriteMidRead(), spec)  # type: ignore[arg-type]
    other.close()
    assert written and written[0] < 1.0, "the write waited for the read"
    assert g.identity[1] == v, "the read started again, or saw the write"
    assert "c-0" not in g.node("Category").ids.tolist()
    assert sqlite_store.version() == v + 1
    assert "c-0" in read_market(sqlite_store, spec).node("Category").ids.tolist()


def _assert_same_graph(a: Any, b: Any) -> None:
    assert set(a.nodes) == set(b.nodes) and set(a.edges) == set(b.edges)
    for label in a.nodes:
        assert np.array_equal(a.node(label).ids, b.node(label).ids), label
    for key in a.edges:
        ea, eb = a.edges[key], b.edges[key]
        assert np.array_equal(ea.src, eb.src) and np.array_equal(ea.dst, eb.dst), key
        for col, va in ea.columns.items():
            vb = eb.columns[col]
            if va.dtype == object:
                assert list(va) == list(vb), (key, col)
            else:
                np.testing.assert_array_equal(va, vb, err_msg=f"{key}.{col}")


@pytest.mark.parametrize("store_kind", ["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_every_store_gives_the_same_market_graph_and_features(
    store_kind: str, tiny_market: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The GraphStore contract, through the one read: SQLite and Neo4j hold the same market."""
    reference = SQLiteStore(tmp_path / "ref.db")
    load_folder(tiny_market, reference)
    if store_kind == "neo4j":
        store = request.getfixturevalue("neo4j_store")
    else:
        store = SQLiteStore(tmp_path / "other.db")
    load_folder(tiny_market, store)
    a, b = read_market(reference), read_market(store)
    _assert_same_graph(a, b)
    fa, fb = build_features(a), build_features(b)
    np.testing.assert_allclose(fa.talent_audience, fb.talent_audience, rtol=1e-12)
    np.testing.assert_allclose(fa.talent_skill, fb.talent_skill, rtol=1e-12)
    assert len(NODES) >= len(a.nodes)
    reference.close()
    if store_kind == "sqlite":
        store.close()


def test_tables_of_another_store_read_its_edges_by_ids(tiny_market: Path, tmp_path: Path) -> None:
    """Row ids are one store's: with another store's tables, edges are matched by id."""
    a, b = SQLiteStore(tmp_path / "a.db"), SQLiteStore(tmp_path / "b.db")
    b.ensure_schema()
    b.write([NodeBatch.of("User", [{"id": f"u-first-{i}"} for i in range(5)])])  # shifts b's
    load_folder(tiny_market, a)
    load_folder(tiny_market, b)
    ua, ta = node_table(a, "User"), node_table(a, "Talent")
    ub, tb = node_table(b, "User"), node_table(b, "Talent")
    own = edge_list(b, "FOLLOWS", ub, tb, ())
    other = edge_list(b, "FOLLOWS", ua, ta, ())  # a's tables, b's edges
    assert (own.src >= 0).all() and (other.src >= 0).all()
    assert np.array_equal(ua.ids[other.src], ub.ids[own.src])
    assert np.array_equal(ta.ids[other.dst], tb.ids[own.dst])
    a.close()
    b.close()


@pytest.mark.parametrize("store_kind", ["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_violations_read_on_kept_tables_equals_a_fresh_compliance_read(
    store_kind: str, tiny_market: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """What a serving process keeps across writes is what a fresh read would give it."""
    if store_kind == "neo4j":
        store = request.getfixturevalue("neo4j_store")
    else:
        store = SQLiteStore(tmp_path / "s.db")
    load_folder(tiny_market, store)
    kept = read_market(store, CATALOG_READ).restricted(COMPLIANCE_READ)
    _assert_same_graph(kept, read_market(store, COMPLIANCE_READ))
    assert kept.edge("PROMOTED", "Talent").columns == {}  # the catalog's columns are not kept
    g = read_market(store, COMPLIANCE_READ)
    talent, product = str(g.node("Talent").ids[-1]), str(g.node("Product").ids[0])
    pair = {"src": talent, "dst": product, "collab_id": "k-new", "time": "2026-02-01"}
    for _ in range(2):  # the second time, a pair related twice: after the first, as read
        pair = {**pair, "collab_id": pair["collab_id"] + "x"}
        store.write([RelBatch.of("PROMOTED", "Talent", [pair])])
        kept = kept.with_edge("PROMOTED", "Talent", talent, product, store.identity())
        fresh = read_market(store, COMPLIANCE_READ)
        _assert_same_graph(kept, fresh)
        assert kept.identity == fresh.identity
    vid = "v-new"
    node = {"id": vid, "kind": "fraud", "severity": "severe", "time": "2026-02-02"}
    store.write(
        [
            NodeBatch.of("Violation", [{**node, "resolved": False}]),
            RelBatch.of("HAS_VIOLATION", "Talent", [{"src": talent, "dst": vid}]),
        ]
    )
    kept = read_market(store, VIOLATIONS_READ, base=kept)
    fresh = read_market(store, COMPLIANCE_READ)
    _assert_same_graph(kept, fresh)
    assert kept.identity == fresh.identity
    assert list(kept.node("Violation").columns["severity"]) == list(
        fresh.node("Violation").columns["severity"]
    )
    if store_kind == "sqlite":
        store.close()


def test_a_kept_table_names_what_it_lacks(tiny_market: Path, sqlite_store: SQLiteStore) -> None:
    load_folder(tiny_market, sqlite_store)
    g = read_market(sqlite_store, COMPLIANCE_READ)
    with pytest.raises(StoreError, match=r"without Talent\.name"):
        g.restricted(ReadSpec({"Talent": ("name",)}))
    with pytest.raises(StoreError, match="'nobody' is not in the market graph"):
        g.with_edge("PROMOTED", "Talent", "nobody", str(g.node("Product").ids[0]), g.identity)
    # a table read anew (Violation) under kept edges into it: they would index the old rows
    with pytest.raises(StoreError, match=r"keeps the edges \['HAS_VIOLATION from Merchant'"):
        read_market(sqlite_store, ReadSpec({"Violation": ("kind",)}), base=g)
    catalog = read_market(sqlite_store, CATALOG_READ)
    with pytest.raises(StoreError, match="held with columns"):
        catalog.with_edge(
            "PROMOTED",
            "Talent",
            str(g.node("Talent").ids[0]),
            str(g.node("Product").ids[0]),
            g.identity,
        )


@pytest.mark.parametrize("store_kind", ["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_edges_read_from_some_users_are_the_whole_read_s_rows_from_them(
    store_kind: str, tiny_market: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A delta's read: the rows of the whole market's edge lists that start at the users
    named, in the same order with the same columns, once however often a user is named; a
    user or a relationship's end not in the tables read before is refused, on every store
    (SQLite by its row keys where the tables are its own, by ids where they are not)."""
    if store_kind == "neo4j":
        store = request.getfixturevalue("neo4j_store")
    else:
        store = SQLiteStore(tmp_path / "s.db")
    load_folder(tiny_market, store)
    whole = read_market(store, FEATURES_READ)
    users = whole.node("User").ids
    pick = np.array([0, 5, 6, 7, 500, 1999])
    named = [*users[pick], users[pick[2]], users[pick[0]]]  # two named twice
    unkeyed = {k: dataclasses.replace(t, key_rows=None) for k, t in whole.nodes.items()}
    for base in (whole, MarketGraph(whole.identity, unkeyed, whole.edges)):
        some = read_edges_from(store, base, "User", named)
        assert some.identity == whole.identity and some.nodes is base.nodes
        assert set(some.edges) == set(USER_EDGES_READ)
        assert set(USER_EDGES_READ) == {
            ("ENGAGED_WITH", "User"),
            ("FOLLOWS", "User"),
            ("PURCHASED", "User"),
        }
        for key in USER_EDGES_READ:
            e, part = whole.edge(*key), some.edge(*key)
            at = np.isin(e.src, pick)
            assert at.sum() > 0, key
            assert np.array_equal(part.src, e.src[at]), key
            assert np.array_equal(part.dst, e.dst[at]), key
            assert set(part.columns) == set(e.columns), key
            for name, column in e.columns.items():
                np.testing.assert_array_equal(part.columns[name], column[at], err_msg=name)
    assert not any(len(e) for e in read_edges_from(store, whole, "User", []).edges.values())
    for wrong in (("PROMOTED", "Talent"), ("PROMOTED", "User")):
        with pytest.raises(StoreError, match=r"\['PROMOTED'\] do not start at User"):
            read_edges_from(store, whole, "User", [users[0]], {wrong: None})
    with pytest.raises(StoreError, match="1 of the User ids are not in the tables read before"):
        read_edges_from(store, whole, "User", [users[0], "u-nobody"])
    # written after the tables were read: a user, and a talent a known user follows
    talent = str(whole.node("Talent").ids[0])
    store.write(
        [
            NodeBatch.of("User", [{"id": "u-new"}]),
            NodeBatch.of("Talent", [{"id": "t-new", "followers": 1}]),
            RelBatch.of("FOLLOWS", "User", [{"src": "u-new", "dst": talent}]),
            RelBatch.of("FOLLOWS", "User", [{"src": str(users[5]), "dst": "t-new"}]),
        ]
    )
    for base in (whole, MarketGraph(whole.identity, unkeyed, whole.edges)):
        with pytest.raises(StoreError, match="first 'u-new'"):
            read_edges_from(store, base, "User", [str(users[5]), "u-new"])
        with pytest.raises(StoreError, match="FOLLOWS from User: 1 relationships end at nodes"):
            read_edges_from(store, base, "User", [str(users[5])])
    if store_kind == "sqlite":
        store.close()


@pytest.mark.parametrize("store_kind", ["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_nodes_read_into_a_table_are_the_later_version_s_whole_table(
    store_kind: str, tiny_market: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """After a load of new users (ids among and after the others, one without a gender) and
    an existing user's corrected gender, the User table read before with those nodes read
    again (read_nodes_into) is a whole read's of the new version: ids, columns and store
    keys (edges read by key on it map as on the whole read); the rows of the users before
    are theirs in it, and the graph renumbered onto it (with_table) lists its edges as the
    whole read does. An id no node has is refused by name."""
    if store_kind == "neo4j":
        store = request.getfixturevalue("neo4j_store")
    else:
        store = SQLiteStore(tmp_path / "s.db")
    load_folder(tiny_market, store)
    before = read_market(store, FEATURES_READ)
    users = before.node("User").ids
    new = [f"{users[3]}-x", f"{users[3]}-y", "zzz-last", "a-first"]
    store.write(
        [
            NodeBatch.of(
                "User",
                [{"id": u, "gender": "f", "age_band": "24-30"} for u in new[:3]]
                + [{"id": new[3]}, {"id": str(users[7]), "gender": "u", "age_band": "50+"}],
            )
        ]
    )
    whole = read_market(store, FEATURES_READ)
    named = [*new, str(users[7]), new[0]]  # (one named twice)
    identity, table, rows = read_nodes_into(store, before.node("User"), named)
    want = whole.node("User")
    assert identity == whole.identity
    assert np.array_equal(table.ids, want.ids) and set(table.columns) == set(want.columns)
    for name, column in want.columns.items():
        np.testing.assert_array_equal(table.columns[name], column, err_msg=name)
    assert np.array_equal(table.ids[rows], users) and (np.diff(rows) > 0).all()
    if want.key_rows is None:
        assert table.key_rows is None
    else:
        assert table.key_store == want.key_store
        keys = np.flatnonzero(want.key_rows >= 0)
        assert np.array_equal(table.key_rows[keys], want.key_rows[keys])
    moved = before.with_table(table, rows)
    for key in USER_EDGES_READ:
        assert np.array_equal(moved.edge(*key).src, whole.edge(*key).src), key
        assert np.array_equal(moved.edge(*key).dst, whole.edge(*key).dst), key
    with pytest.raises(StoreError, match="1 User ids are no nodes of the store: 'u-nobody'"):
        read_nodes_into(store, before.node("User"), [new[0], "u-nobody"])
    with pytest.raises(ValueError, match="rows must be the rows in the new table"):
        before.with_table(table, rows[::-1])
    if store_kind == "sqlite":
        store.close()


def test_a_delta_s_rows_spliced_in_are_the_later_version_s_whole_read(
    tiny_market: Path, tmp_path: Path
) -> None:
    """After a load of some users' follows, purchases and engagements, the graph before with
    those users' rows read again spliced in (with_rows_from) lists every edge as a whole read
    of the new version does; a type not read again is kept as it was; rows from a user not
    named, a type from another label or with other columns are refused."""
    store = SQLiteStore(tmp_path / "s.db")
    load_folder(tiny_market, store)
    before = read_market(store, FEATURES_READ)
    rows = write_user_delta(tmp_path / "delta", before, seed=5)
    (tmp_path / "delta" / "user.csv").unlink()  # (edges only: the node tables are kept)
    load_folder(tmp_path / "delta", store)
    after = read_market(store, FEATURES_READ)
    ids = before.node("User").ids[rows].tolist()
    read = read_edges_from(store, before, "User", ids)
    spliced = before.with_rows_from(read, "User", rows)
    assert spliced.identity == after.identity
    for key in USER_EDGES_READ:
        got, want = spliced.edge(*key), after.edge(*key)
        assert len(want) > len(before.edge(*key)), key  # the delta wrote each type
        assert np.array_equal(got.src, want.src) and np.array_equal(got.dst, want.dst), key
        assert set(got.columns) == set(want.columns), key
        for name, column in want.columns.items():
            np.testing.assert_array_equal(got.columns[name], column, err_msg=f"{key} {name}")
    follows_only = read_edges_from(store, before, "User", ids, {("FOLLOWS", "User"): ()})
    some = before.with_rows_from(follows_only, "User", rows)
    assert np.array_equal(some.edge("FOLLOWS", "User").dst, after.edge("FOLLOWS", "User").dst)
    assert some.edge("PURCHASED", "User") is before.edge("PURCHASED", "User")
    with pytest.raises(StoreError, match="an edge from a User not among the rows"):
        before.with_rows_from(read, "User", rows[1:])
    with pytest.raises(ValueError, match="rows must be rows of the 2000 User nodes"):
        before.with_rows_from(read, "User", np.append(rows, -1))
    bare = read_edges_from(store, before, "User", ids, {("PURCHASED", "User"): ()})
    with pytest.raises(StoreError, match="PURCHASED was read with other columns"):
        before.with_rows_from(bare, "User", rows)  # before holds their amounts
    promoted = {("PROMOTED", "Talent"): before.edge("PROMOTED", "Talent")}
    with pytest.raises(StoreError, match="PROMOTED from Talent is not a type from User"):
        before.with_rows_from(MarketGraph(after.identity, before.nodes, promoted), "User", rows)
    store.close()


def test_the_follows_a_load_wrote_added_as_pairs_are_the_later_version_s_whole_read(
    tiny_market: Path, tmp_path: Path
) -> None:
    """A type read without properties or key (FOLLOWS) after a load is the graph before with
    the pairs the load wrote added (with_pairs): one already held and one named twice are
    there once, and the list equals a whole read of the new version, order included; a type
    with a key or columns, rows out of their tables and a list out of read order, or holding
    a pair twice, are refused."""
    store = SQLiteStore(tmp_path / "s.db")
    load_folder(tiny_market, store)
    before = read_market(store, FEATURES_READ)
    rows = write_user_delta(tmp_path / "delta", before, seed=5)
    (tmp_path / "delta" / "user.csv").unlink()
    lines = (tmp_path / "delta" / "follows.csv").read_text().splitlines()
    report = load_folder(tmp_path / "delta", store)
    after = read_market(store, FEATURES_READ)
    key = ("FOLLOWS", "User")
    pairs = report.pairs(*key)
    assert pairs.num_rows == len(lines) - 1  # (every row written)
    src = before.node("User").indices_of(pairs.column("src").to_numpy(zero_copy_only=False))
    dst = before.node("Talent").indices_of(pairs.column("dst").to_numpy(zero_copy_only=False))
    src, dst = np.append(src, src[0]), np.append(dst, dst[0])  # (a pair named twice)
    assert set(src) <= set(rows) and (dst >= 0).all()
    got, want = before.with_pairs(key, src, dst).edge(*key), after.edge(*key)
    assert len(before.edge(*key)) < len(want) < len(before.edge(*key)) + len(src)
    assert np.array_equal(got.src, want.src) and np.array_equal(got.dst, want.dst)
    assert got.columns == {} == want.columns
    assert before.with_pairs(key, [], []).edge(*key).src.tolist() == before.edge(*key).src.tolist()
    with pytest.raises(StoreError, match="PURCHASED from User has a key or properties"):
        before.with_pairs(("PURCHASED", "User"), src, dst)
    with pytest.raises(ValueError, match="rows must be rows of the 2000 User nodes"):
        before.with_pairs(key, [2000], [0])
    with pytest.raises(ValueError, match="equal length"):
        before.with_pairs(key, [0, 1], [0])
    e = before.edge(*key)
    backwards = EdgeList(e.rel_type, e.src_label, e.src[::-1].copy(), e.dst[::-1].copy(), {})
    shuffled = MarketGraph(before.identity, before.nodes, {**before.edges, key: backwards})
    with pytest.raises(StoreError, match="not in read order"):
        shuffled.with_pairs(key, src, dst)
    twice = EdgeList(e.rel_type, e.src_label, np.repeat(e.src, 2), np.repeat(e.dst, 2), {})
    with pytest.raises(StoreError, match="each pair once"):  # (a store holding a pair twice)
        MarketGraph(before.identity, before.nodes, {**before.edges, key: twice}).with_pairs(
            key, src, dst
        )
    store.close()
