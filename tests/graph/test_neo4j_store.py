"""The Neo4j store against the real server `make test` starts: schema, loads, resume, parity."""

from __future__ import annotations

import csv
import io
import itertools
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kolmatch.errors import IncompleteLoad, StoreError
from kolmatch.graph.model import NODES, RELATIONSHIPS
from kolmatch.graph.neo4j_store import rel_params
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import NodeBatch, RelBatch
from kolmatch.loaders import load as loaders_load
from kolmatch.loaders.load import (
    Validation,  # the write path's batches, to cut a load short
    load_folder,
    load_key,
)
from tests.conftest import assert_same_projections
from tests.loaders.test_reader_properties import NASTY


def test_schema_has_a_uniqueness_constraint_per_label(neo4j_store: Any) -> None:
    recs = neo4j_store._query("SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type")
    have = {
        (r["labelsOrTypes"][0], tuple(r["properties"])) for r in recs if r["type"] == "UNIQUENESS"
    }
    assert {(n.label, ("id",)) for n in NODES} <= have


def test_tiny_load_counts_and_idempotent_reload(
    tiny_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore
) -> None:
    report = load_folder(tiny_market, neo4j_store)
    load_folder(tiny_market, sqlite_store)
    # the phases follow each other: validation, then node batches, then relationship batches
    assert list(report.seconds) == ["validate", "nodes", "relationships"]
    assert all(t > 0 for t in report.seconds.values())
    first = neo4j_store.counts()
    assert first == sqlite_store.counts()
    version, graph_id = neo4j_store.version(), neo4j_store.graph_id()
    assert version >= 1 and len(graph_id) == 36  # randomUUID()
    load_folder(tiny_market, neo4j_store)
    assert neo4j_store.counts() == first
    assert neo4j_store.version() == version + 1
    assert neo4j_store.graph_id() == graph_id
    assert neo4j_store.identity() == (graph_id, version + 1)
    # deleted and written anew: a new graph, whatever its version number
    neo4j_store.clear()
    assert neo4j_store.graph_id() == "" and neo4j_store.identity() == ("", 0)
    load_folder(tiny_market, neo4j_store)
    assert neo4j_store.graph_id() not in ("", graph_id)


def test_failed_then_resumed_load_has_no_duplicates(
    tiny_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore
) -> None:
    # a load that dies after some batches (as a killed process would)
    v = Validation(tiny_market, neo4j_store)
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


def test_a_load_killed_mid_create_resumes_without_doubling(
    tiny_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore, monkeypatch: Any
) -> None:
    """Into an empty graph a load CREATEs on two sessions at once; killed after some of its
    relationship batches, run again it skips what committed and doubles nothing."""
    monkeypatch.setattr(loaders_load, "BATCH_ROWS", 40)  # many batches even at tiny
    v = Validation(tiny_market, neo4j_store)
    batches = list(v.batches())
    first_rel = next(i for i, b in enumerate(batches) if isinstance(b, RelBatch))
    cut = first_rel + (len(batches) - first_rel) // 2
    key = load_key(tiny_market, [f.path for f in v.files])
    assert neo4j_store.writers == 2
    with pytest.raises(RuntimeError):
        neo4j_store.write(itertools.chain(batches[:cut], _boom()), key=key)
    plan = neo4j_store._query("MATCH (p:KolmatchLoad {lane: -1}) RETURN p.create AS c")
    assert {n.label for n in NODES} | {r.type for r in RELATIONSHIPS} == set(plan[0]["c"])
    done = {
        i for r in neo4j_store._query("MATCH (p:KolmatchLoad) RETURN p.done AS d") for i in r["d"]
    }
    # what committed is recorded (a batch still queued when the load died may not have run)
    assert set(range(cut - 2 * neo4j_store.writers)) <= done <= set(range(cut))
    partial = neo4j_store.counts()
    assert sum(v for k, v in partial.items() if k.isupper()) > 0

    load_folder(tiny_market, neo4j_store)  # the same load: CREATEs only what is left
    load_folder(tiny_market, sqlite_store)
    assert neo4j_store.counts() == sqlite_store.counts()
    assert_same_projections(sqlite_store, neo4j_store)
    assert neo4j_store._query("MATCH (p:KolmatchLoad) RETURN count(p) AS n")[0]["n"] == 0


def test_another_load_waits_for_an_unfinished_one(
    tiny_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore, monkeypatch: Any
) -> None:
    monkeypatch.setattr(loaders_load, "BATCH_ROWS", 40)
    v = Validation(tiny_market, neo4j_store)
    with pytest.raises(RuntimeError):
        neo4j_store.write(itertools.chain(itertools.islice(v.batches(), 30), _boom()), key="dead")
    before = neo4j_store.counts()
    with pytest.raises(StoreError, match=r"another unfinished load \(dead\).*replace-unfinished"):
        load_folder(tiny_market, neo4j_store)
    assert neo4j_store.counts() == before  # refused before writing anything

    load_folder(tiny_market, neo4j_store, replace_unfinished=True)  # merges over what 'dead' left
    load_folder(tiny_market, sqlite_store)
    assert neo4j_store.counts() == sqlite_store.counts()
    assert neo4j_store.version() >= 1  # 'dead' is forgotten: the graph reads again
    assert_same_projections(sqlite_store, neo4j_store)


def test_rel_params_look_each_endpoint_up_once() -> None:
    rows = [
        {"src": "u1", "dst": "t1", "since": "2026-01-01"},
        {"src": "u1", "dst": "t2", "since": None},
        {"src": "u2", "dst": "t1", "since": "2026-02-01"},
        {"src": "u1", "dst": "t3", "since": None},  # a source seen again later: a new run
    ]
    cols = {c: [r[c] for r in rows] for c in ("src", "dst", "since")}
    assert rel_params(cols["src"], cols["dst"], [cols["since"]]) == {
        "dst": ["t1", "t2", "t3"],
        "groups": [
            ["u1", [[0, "2026-01-01"], [1, None]]],
            ["u2", [[0, "2026-02-01"]]],
            ["u1", [[2, None]]],
        ],
    }


def test_a_small_write_is_one_transaction(tiny_market: Path, neo4j_store: Any) -> None:
    load_folder(tiny_market, neo4j_store)
    before, version = neo4j_store.counts(), neo4j_store.version()
    rows = [{"id": f"new-{i}", "name": "x"} for i in range(3)]
    with pytest.raises(RuntimeError):
        neo4j_store.write(itertools.chain([NodeBatch.of("Institution", rows)], _boom()))
    assert neo4j_store.counts() == before and neo4j_store.version() == version
    neo4j_store.write([NodeBatch.of("Institution", rows)])
    assert neo4j_store.counts()["Institution"] == before["Institution"] + 3
    assert neo4j_store.version() == version + 1


def test_each_of_writes_at_once_knows_the_version_it_made(
    tiny_market: Path, neo4j_store: Any
) -> None:
    """Small writes from 4 threads at once (as servers' writes are): each learns the version
    its own transaction made, the versions are all distinct and follow one another, and
    nothing in between was another's (the change feed records a write on ``made - 1``)."""
    from concurrent.futures import ThreadPoolExecutor

    load_folder(tiny_market, neo4j_store)
    start = neo4j_store.version()

    def write(i: int) -> int:
        neo4j_store.write([NodeBatch.of("Institution", [{"id": f"par-{i}", "name": "x"}])])
        made = neo4j_store.written_version()
        assert made is not None
        return int(made)

    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(write, range(24)))
    assert sorted(made) == list(range(start + 1, start + 25))
    assert neo4j_store.version() == start + 24
    assert neo4j_store.release(["no-such-booking"]) == []
    assert neo4j_store.written_version() is None  # it changed nothing: no version of its own


def _boom():  # type: ignore[no-untyped-def]
    raise RuntimeError("killed part-way")
    yield


def test_parity_tiny(tiny_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore) -> None:
    load_folder(tiny_market, neo4j_store)
    load_folder(tiny_market, sqlite_store)
    assert_same_projections(sqlite_store, neo4j_store)


@pytest.mark.slow
def test_parity_s_market(s_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore) -> None:
    load_folder(s_market, neo4j_store)
    load_folder(s_market, sqlite_store)
    assert neo4j_store.counts() == sqlite_store.counts()
    assert sqlite_store.counts()["FOLLOWS"] > 300_000
    assert_same_projections(sqlite_store, neo4j_store)


def test_cypher_in_ids_is_plain_data(neo4j_store: Any, tmp_path: Path) -> None:
    d = tmp_path / "evil"
    d.mkdir()
    evil = "x'}) DETACH DELETE n //`"
    (d / "category.csv").write_text(f'id,name\n"{evil}",Evil\nc2,Fine\n')
    load_folder(d, neo4j_store)
    assert sorted(neo4j_store.node_rows("Category", ("name",)).ids) == sorted([evil, "c2"])


@given(
    ids=st.lists(
        st.one_of(
            st.text(min_size=1, max_size=20).map(lambda t: f"id{t}x"),
            st.sampled_from(NASTY).map(lambda t: f"id{t}x"),
        ),
        min_size=1,
        max_size=5,
        unique=True,
    )
)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_text_in_ids_round_trips_through_neo4j(
    ids: list[str], neo4j_store: Any, ledger: Any
) -> None:
    """Ids full of quotes, backticks, Cypher and NULs are stored and returned as plain data."""
    ledger.case(
        "Bad input: import files", "ids with quotes, backticks, Cypher fragments, into Neo4j"
    ).tried()
    neo4j_store.clear()
    with tempfile.TemporaryDirectory() as d:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
        w.writerow(["id", "name"])
        w.writerows([i, f"name of {i}"] for i in ids)
        (Path(d) / "talent.csv").write_text(buf.getvalue())
        (Path(d) / "institution.csv").write_text(buf.getvalue())
        rels = io.StringIO()
        csv.writer(rels, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(
            [["src", "dst"], *([i, ids[0]] for i in ids)]
        )
        (Path(d) / "signed_with.csv").write_text(rels.getvalue())
        load_folder(d, neo4j_store)
    rows = neo4j_store.node_rows("Talent", ("name",))
    assert dict(zip(rows.ids, rows.columns["name"], strict=True)) == {
        i: f"name of {i}" for i in ids
    }
    assert sorted(neo4j_store.node_rows("Institution", ()).ids) == sorted(ids)
    pairs = {
        (s, t)
        for chunk in neo4j_store.edge_rows("SIGNED_WITH", "Talent", ())
        for s, t in zip(chunk.src, chunk.dst, strict=True)
    }
    assert pairs == {(i, ids[0]) for i in ids}


def test_advance_raises_the_version_only_from_the_one_expected(
    tiny_market: Path, neo4j_store: Any, monkeypatch: Any
) -> None:
    load_folder(tiny_market, neo4j_store)
    v, counts = neo4j_store.version(), neo4j_store.counts()
    assert neo4j_store.advance(v) and neo4j_store.version() == v + 1
    assert not neo4j_store.advance(v)  # it moved: a compare-and-set, not a blind raise
    assert neo4j_store.version() == v + 1 and neo4j_store.counts() == counts
    monkeypatch.setattr(loaders_load, "BATCH_ROWS", 40)
    batches = Validation(tiny_market, neo4j_store).batches()
    with pytest.raises(RuntimeError):  # an unfinished load: no version is made past it
        neo4j_store.write(itertools.chain(itertools.islice(batches, 30), _boom()), key="dead")
    assert not neo4j_store.advance(v + 1)


def test_reads_in_many_pages_are_the_reads_in_one(
    tiny_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole read comes in pages of source nodes in id order, each page's rows one list,
    and reads by ids in chunks: with pages and chunks of a few nodes (so every table takes
    many, and the page size halves and doubles with its rows), the market read is the
    SQLite store's, table for table and edge for edge, and so are reads by ids."""
    from kolmatch.graph import neo4j_store as module
    from kolmatch.graph.market import read_market
    from tests.graph.test_market import _assert_same_graph

    load_folder(tiny_market, neo4j_store)
    load_folder(tiny_market, sqlite_store)
    one = read_market(neo4j_store)
    pages: list[int] = []
    query = neo4j_store._query

    def counted(q: str, routing: str = "r", **params: Any) -> Any:
        if "n" in params and "]->(d:" in q:  # (a page of relationships, by its sources)
            pages.append(params["n"])
        return query(q, routing, **params)

    monkeypatch.setattr(neo4j_store, "_query", counted)
    monkeypatch.setattr(module, "_PAGE_NODES", 16)
    monkeypatch.setattr(module, "_PAGE_NODES_MIN", 2)
    monkeypatch.setattr(module, "_PAGE_ROWS", 40)
    monkeypatch.setattr(module, "_READ_CHUNK", 7)
    many = read_market(neo4j_store)
    _assert_same_graph(read_market(sqlite_store), many)
    _assert_same_graph(one, many)
    assert len(pages) > 100 and min(pages) < 16 < max(pages), pages  # (halved and doubled)
    # a page past the server's transaction memory is asked for again in halves
    big: list[int] = []

    def short_of_memory(q: str, routing: str = "r", **params: Any) -> Any:
        if "]->(d:" in q and params["n"] > 4:
            big.append(params["n"])
            raise StoreError("Neo4j: Neo.TransientError.General.MemoryPoolOutOfMemoryError: ...")
        return query(q, routing, **params)

    monkeypatch.setattr(neo4j_store, "_query", short_of_memory)
    _assert_same_graph(one, read_market(neo4j_store))
    assert big[:2] == [16, 8], big  # (then pages of 4, and 8 again after a page of few rows)
    monkeypatch.setattr(module, "_PAGE_NODES_MIN", 8)
    with pytest.raises(StoreError, match="MemoryPoolOutOfMemoryError"):
        read_market(neo4j_store)  # (not below the smallest page: the server's error)
    monkeypatch.setattr(neo4j_store, "_query", counted)
    users = [str(u) for u in one.node("User").ids[:50]]
    by_ids = neo4j_store.node_rows_of("User", users, ("gender",))
    assert sorted(by_ids.ids) == sorted(users)
    follows = [
        (s, d)
        for chunk in neo4j_store.edge_rows_from("FOLLOWS", "User", users, ())
        for s, d in zip(chunk.src, chunk.dst, strict=True)
    ]
    want = [
        (s, d)
        for chunk in sqlite_store.edge_rows_from("FOLLOWS", "User", users, ())
        for s, d in zip(chunk.src, chunk.dst, strict=True)
    ]
    assert sorted(follows) == sorted(want) and len(want) > 7
