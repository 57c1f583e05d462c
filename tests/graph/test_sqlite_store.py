"""The embedded store: schema, atomic writes, projections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kolmatch.errors import StoreError, StoreUnavailable
from kolmatch.graph.projection import edge_list, node_table, to_csr
from kolmatch.graph.sqlite_store import _READ_CACHE_KIB, _WRITE_CACHE_KIB, SQLiteStore
from kolmatch.graph.store import NodeBatch, RelBatch
from kolmatch.loaders.load import load_folder


def test_write_is_atomic(sqlite_store: SQLiteStore) -> None:
    def batches():  # type: ignore[no-untyped-def]
        yield NodeBatch.of("Category", [{"id": "c1", "name": "A"}])
        raise RuntimeError("killed part-way")

    with pytest.raises(RuntimeError):
        sqlite_store.write(batches())
    assert sqlite_store.counts()["Category"] == 0


def test_relationships_key_on_their_key_property(sqlite_store: SQLiteStore) -> None:
    sqlite_store.write(
        [
            NodeBatch.of("User", [{"id": "u1"}]),
            NodeBatch.of("Product", [{"id": "p1", "name": "P", "price": 3.0}]),
            RelBatch.of(
                "PURCHASED",
                "User",
                [
                    {
                        "src": "u1",
                        "dst": "p1",
                        "order_id": "o1",
                        "amount": 3.0,
                        "time": "2025-01-01",
                    },
                    {
                        "src": "u1",
                        "dst": "p1",
                        "order_id": "o2",
                        "amount": 6.0,
                        "time": "2025-01-02",
                    },
                ],
            ),
        ]
    )
    assert sqlite_store.counts()["PURCHASED"] == 2
    u, p = node_table(sqlite_store, "User"), node_table(sqlite_store, "Product")
    e = edge_list(sqlite_store, "PURCHASED", u, p)
    assert to_csr(e, (1, 1), "amount").toarray().tolist() == [[9.0]]


def test_projection_is_id_ordered(tiny_market: Path, sqlite_store: SQLiteStore) -> None:
    load_folder(tiny_market, sqlite_store)
    t = node_table(sqlite_store, "Talent")
    assert list(t.ids) == sorted(t.ids)
    assert t.index_of("t10") == list(t.ids).index("t10") and t.index_of("zz") == -1
    u = node_table(sqlite_store, "User")
    e = edge_list(sqlite_store, "FOLLOWS", u, t)
    assert len(e) == sqlite_store.counts()["FOLLOWS"]
    pairs = list(zip(e.src.tolist(), e.dst.tolist(), strict=True))
    assert pairs == sorted(pairs)
    assert np.isnan(t.columns["followers"]).sum() == 0


def test_unknown_property_is_refused(sqlite_store: SQLiteStore) -> None:
    with pytest.raises(StoreError):
        sqlite_store.node_rows("Talent", ("password",))


def test_counts_on_a_file_without_schema(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "empty.db")
    with pytest.raises(StoreError, match="no kolmatch schema"):
        store.counts()
    store.close()


def _indexes(store: SQLiteStore) -> set[str]:
    rows = store._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    return {r[0] for r in rows if not r[0].startswith("sqlite_autoindex")}


def test_target_indexes_survive_a_large_load_and_a_rollback(
    tiny_market: Path, sqlite_store: SQLiteStore
) -> None:
    before = _indexes(sqlite_store)
    # only a type read by its target has a target index (a merchant's bookings)
    assert "r_booked_dst" in before and "r_follows_dst" not in before
    load_folder(tiny_market, sqlite_store)
    assert _indexes(sqlite_store) == before
    talent = (tiny_market / "talent.csv").read_text().split("\n")[1].split(",")[0]
    merchant = (tiny_market / "merchant.csv").read_text().split("\n")[1].split(",")[0]
    window = {"start": "2027-01-01", "end": "2027-01-02"}
    rows = [{"src": talent, "dst": merchant, "booking_id": f"b{i}", **window} for i in range(2000)]

    def batches(fail: bool):  # type: ignore[no-untyped-def]
        for i in range(0, 2000, 500):  # several batches: the index is dropped, then rebuilt
            yield RelBatch.of("BOOKED", "Talent", rows[i : i + 500])
        if fail:
            raise RuntimeError("killed after the index was dropped")

    with pytest.raises(RuntimeError):
        sqlite_store.write(batches(True))
    assert _indexes(sqlite_store) == before
    sqlite_store.write(batches(False))
    assert _indexes(sqlite_store) == before
    plan = sqlite_store._db.execute(
        "EXPLAIN QUERY PLAN SELECT src FROM r_booked WHERE dst = 5"
    ).fetchall()
    assert "r_booked_dst" in str(plan)


def test_a_store_in_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match=r"folder .*nowhere does not exist"):
        SQLiteStore(tmp_path / "nowhere" / "graph.db")


def test_a_write_frees_its_page_cache(sqlite_store: SQLiteStore) -> None:
    """A load's 1 GiB of page cache is not kept by a process that goes on reading or serving."""
    cache = "PRAGMA cache_size"
    sqlite_store.write([NodeBatch.of("Category", [{"id": "c1", "name": "A"}])])
    assert sqlite_store._db.execute(cache).fetchone()[0] == _READ_CACHE_KIB

    def failing():  # type: ignore[no-untyped-def]
        yield NodeBatch.of("Category", [{"id": "c2", "name": "B"}])
        assert sqlite_store._db.execute(cache).fetchone()[0] == _WRITE_CACHE_KIB
        raise RuntimeError("killed part-way")

    with pytest.raises(RuntimeError):
        sqlite_store.write(failing())
    assert sqlite_store._db.execute(cache).fetchone()[0] == _READ_CACHE_KIB


def test_advance_raises_the_version_only_from_the_one_expected(sqlite_store: SQLiteStore) -> None:
    sqlite_store.write([NodeBatch.of("Category", [{"id": "c1", "name": "A"}])])
    v, counts = sqlite_store.version(), sqlite_store.counts()
    other = SQLiteStore(sqlite_store.path)  # another process's connection
    assert other.advance(v) and sqlite_store.version() == v + 1
    assert not sqlite_store.advance(v)  # it moved: a compare-and-set, not a blind raise
    assert sqlite_store.version() == v + 1 and sqlite_store.counts() == counts
    assert sqlite_store.advance(v + 1) and other.version() == v + 2
    other.close()


def test_each_of_writes_at_once_knows_the_version_it_made(sqlite_store: SQLiteStore) -> None:
    """Two connections (two servers) writing from threads at once: each write learns the
    version its own transaction made, though the other's may land before it reads the
    store's; the versions follow one another. A failed write, or one that changed nothing,
    made none."""
    from concurrent.futures import ThreadPoolExecutor

    sqlite_store.write([NodeBatch.of("Category", [{"id": "c0", "name": "A"}])])
    start = sqlite_store.version()
    other = SQLiteStore(sqlite_store.path)

    def writes(k: int) -> list[int]:  # a server writes one at a time (its write lock)
        store, made = (sqlite_store, other)[k], []
        for i in range(k, 40, 2):
            store.write([NodeBatch.of("Category", [{"id": f"c{i}", "name": "B"}])])
            made.append(store.written_version())
        return made

    with ThreadPoolExecutor(2) as pool:
        made = [v for vs in pool.map(writes, range(2)) for v in vs]
    assert sorted(made) == list(range(start + 1, start + 41))

    def failing():  # type: ignore[no-untyped-def]
        yield NodeBatch.of("Category", [{"id": "c-x", "name": "C"}])
        raise RuntimeError("killed part-way")

    with pytest.raises(RuntimeError):
        sqlite_store.write(failing())
    assert sqlite_store.written_version() is None
    assert sqlite_store.release(["no-such-booking"]) == []
    assert sqlite_store.written_version() is None
    assert other.advance(start + 40) and other.written_version() == start + 41
    other.close()


def test_a_write_behind_another_process_s_lock_says_so_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load holding SQLite's write lock past the busy timeout: the write waiting for it is
    refused saying what held it and what to do, and leaves the store as it was."""
    import sqlite3

    from kolmatch.graph import sqlite_store

    monkeypatch.setattr(sqlite_store, "_BUSY_MS", 200)
    store = SQLiteStore(tmp_path / "s.db")
    store.ensure_schema()
    store.write([NodeBatch.of("Category", [{"id": "c1", "name": "A"}])])
    version = store.version()
    other = sqlite3.connect(tmp_path / "s.db")  # a load in another process, mid-way
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(
            StoreUnavailable,
            match=r"database is locked \(another connection held .* over 0.2 s: a "
            r"load into this store, or another server's write; retry once it ends\); nothing "
            r"was written",
        ):
            store.write([NodeBatch.of("Category", [{"id": "c2", "name": "B"}])])
    finally:
        other.rollback()
        other.close()
    assert store.counts()["Category"] == 1 and store.version() == version
    store.write([NodeBatch.of("Category", [{"id": "c2", "name": "B"}])])  # once it ended
    assert store.counts()["Category"] == 2
    store.close()


def test_schema_is_made_while_another_connection_writes(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load's schema step beside a serving worker's writes (CI's bulk-load flake): a write
    committed by another connection between the step's first read and its first write must
    not fail the step. With a deferred BEGIN it did at once, "database is locked"."""
    import sqlite3

    db = tmp_path / "t.db"
    store = SQLiteStore(db)
    load_folder(tiny_market, store)
    store.close()
    store = SQLiteStore(db)
    real = SQLiteStore._add_missing_columns
    other: list[str] = []

    def read_then_other_writes(self: SQLiteStore, table: str, fields: object) -> None:
        real(self, table, fields)  # type: ignore[arg-type]
        if not other:  # the step has read the file (as its IF NOT EXISTS checks do)
            self._db.execute("SELECT count(*) FROM kolmatch_graph").fetchone()
            con = sqlite3.connect(db, timeout=0.2, isolation_level=None)
            try:
                con.execute("CREATE TABLE another_writer (a INTEGER)")
                other.append("committed")
            except sqlite3.OperationalError as exc:  # waits for the schema step's lock
                other.append(str(exc))
            finally:
                con.close()

    monkeypatch.setattr(SQLiteStore, "_add_missing_columns", read_then_other_writes)
    store.ensure_schema()
    assert other == ["database is locked"]  # the step held the write lock from its start
    assert store.format() is not None
    store.close()
