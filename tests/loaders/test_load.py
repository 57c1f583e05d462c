"""Loading: counts, idempotent re-load, upsert semantics, all-or-nothing writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kolmatch.errors import InputError
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import GraphStore
from kolmatch.loaders.load import load_folder, validate_folder
from tests.conftest import snapshot


def _rows(folder: Path, name: str) -> int:
    return len((folder / f"{name}.csv").read_text().splitlines()) - 1


def test_counts_match_the_files(tiny_market: Path, sqlite_store: SQLiteStore) -> None:
    report = load_folder(tiny_market, sqlite_store)
    counts = sqlite_store.counts()
    assert counts["User"] == _rows(tiny_market, "user") == 2000
    assert counts["Talent"] == 100 and counts["Merchant"] == 20
    assert counts["FOLLOWS"] == _rows(tiny_market, "follows")
    assert counts["PURCHASED"] == _rows(tiny_market, "purchased")
    assert counts["HAS_VIOLATION"] == _rows(tiny_market, "has_violation")
    assert report.total == sum(_rows(tiny_market, p.stem) for p in tiny_market.glob("*.csv"))
    assert list(report.seconds) == ["write"] and report.seconds["write"] > 0


def test_loading_twice_is_idempotent(tiny_market: Path, sqlite_store: SQLiteStore) -> None:
    load_folder(tiny_market, sqlite_store)
    first = snapshot(sqlite_store)
    load_folder(tiny_market, sqlite_store)
    assert snapshot(sqlite_store) == first


def test_a_second_folder_may_refer_to_stored_nodes(
    tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    load_folder(tiny_market, sqlite_store)
    d = tmp_path / "more"
    d.mkdir()
    (d / "follows.csv").write_text("src,dst,since\nu1,t1,2026-01-01\n")
    (d / "talent.csv").write_text("id,name,fee\nt1,Renamed,123\n")
    with (tiny_market / "follows.csv").open() as fh:
        already = any(line.startswith("u1,t1,") for line in fh)
    before = sqlite_store.counts()
    load_folder(d, sqlite_store)
    after = sqlite_store.counts()
    assert after["Talent"] == before["Talent"]
    assert after["FOLLOWS"] == before["FOLLOWS"] + (0 if already else 1)
    rows = sqlite_store.node_rows("Talent", ("name", "fee", "followers"))
    i = rows.ids.index("t1")
    # given values overwrite; values the row leaves empty keep what was stored
    assert rows.columns["name"][i] == "Renamed" and rows.columns["fee"][i] == 123.0
    assert rows.columns["followers"][i] is not None


def test_validate_writes_nothing(tiny_market: Path, sqlite_store: SQLiteStore) -> None:
    report = validate_folder(tiny_market, sqlite_store)
    assert report.rows["user.csv"] == 2000
    assert sqlite_store.counts()["User"] == 0


def test_failure_inside_the_write_rolls_back(
    tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    d = tmp_path / "half"
    shutil.copytree(tiny_market, d)
    # the last file read (has_violation) is bad: everything before it was already written
    # inside the transaction and must be rolled back
    with (d / "has_violation.csv").open("a") as fh:
        fh.write("Talent,t0,x_missing\n")
    with pytest.raises(InputError):
        load_folder(d, sqlite_store)
    assert set(sqlite_store.counts().values()) == {0}


@pytest.mark.parametrize("enabled", [True, False])
def test_paused_gc_restores_the_collector_as_it_was(enabled: bool) -> None:
    import gc

    from kolmatch.loaders.load import paused_gc

    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(RuntimeError), paused_gc():
            assert not gc.isenabled()
            raise RuntimeError("a failed pass")
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_the_report_says_what_it_did_with_several_categories(
    tmp_path: Path, sqlite_store: SQLiteStore
) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "category.csv").write_text("id,name\nc1,Beauty\nc2,Food\n")
    (d / "product.csv").write_text("id,name,price\np1,Tea,10\np2,Soap,5\n")
    (d / "in_category.csv").write_text("src,dst\np1,c1\np1,c2\np2,c1\n")
    report = load_folder(d, sqlite_store)
    assert report.notes == [
        "in_category.csv: 1 product is in several categories; each weighs 1/k in each of its "
        "k categories (docs/scoring.md)"
    ]


@pytest.fixture(params=["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def any_store(request: pytest.FixtureRequest, sqlite_store: SQLiteStore) -> GraphStore:
    """An empty store of each kind."""
    if request.param == "sqlite":
        return sqlite_store
    store: GraphStore = request.getfixturevalue("neo4j_store")
    return store


def test_a_folder_of_header_only_files_writes_nothing_and_makes_no_version(
    tiny_market: Path, any_store: GraphStore, tmp_path: Path
) -> None:
    """A day's folder with nothing in it (the export ran on an empty day) leaves the store,
    its version and so the features cached for it as they were: a new version of nothing
    made the next reader build the whole market again (a minute at m). Its headers are still
    checked."""
    load_folder(tiny_market, any_store)
    v, before = any_store.version(), snapshot(any_store)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "follows.csv").write_text("src,dst,since\n")
    (empty / "user.csv").write_text("id,gender,age_band\n")
    report = load_folder(empty, any_store)
    assert report.total == 0 and report.rel_users == set() and report.node_users == set()
    assert any_store.version() == v and any_store.written_version() is None
    assert snapshot(any_store) == before
    (empty / "follows.csv").write_text("src,dst,sinse\n")  # a misspelt column: refused
    with pytest.raises(InputError, match="sinse"):
        load_folder(empty, any_store)
    assert any_store.version() == v
    # one row: a version
    (empty / "follows.csv").write_text("src,dst,since\nu0,t0,2026-12-01\n")
    load_folder(empty, any_store)
    assert any_store.version() == v + 1


def test_a_load_notes_each_type_s_pairs_from_users_until_too_many_users(
    tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a delta takes follows from: the (source, target) ids of every relationship a load
    wrote from a user, by type, in the order written; none from other labels; past
    DELTA_USERS_MAX users neither the users nor the pairs (a build follows). A row written
    twice in a file is refused by line, its ends in the store as in the folder."""
    import kolmatch.loaders.load as load

    load_folder(tiny_market, sqlite_store)
    day = tmp_path / "day"
    day.mkdir()
    (day / "follows.csv").write_text("src,dst,since\nu1,t2,2025-12-30\nu0,t1,\nu1,t2,\n")
    with pytest.raises(
        InputError, match=r"follows.csv:4: field 'dst': duplicate relationship .*line 2"
    ):
        load_folder(day, sqlite_store)  # (the users and talents are the store's)
    (day / "follows.csv").write_text("src,dst,since\nu1,t2,2025-12-30\nu0,t1,\n")
    (day / "purchased.csv").write_text(
        "src,dst,order_id,amount,time,talent\nu3,p1,d-1,9.5,2025-12-30,\n"
    )
    (day / "sells.csv").write_text("src,dst\nm0,p1\n")
    report = load_folder(day, sqlite_store)
    follows = report.pairs("FOLLOWS", "User")
    assert follows.column("src").to_pylist() == ["u1", "u0"]
    assert follows.column("dst").to_pylist() == ["t2", "t1"]
    assert report.pairs("PURCHASED", "User").to_pydict() == {"src": ["u3"], "dst": ["p1"]}
    assert report.rel_pairs is not None and set(report.rel_pairs) == {
        ("FOLLOWS", "User"),
        ("PURCHASED", "User"),
    }  # (SELLS starts at a merchant)
    assert report.pairs("ENGAGED_WITH", "User").num_rows == 0
    monkeypatch.setattr(load, "DELTA_USERS_MAX", 2)
    report = load_folder(day, sqlite_store)
    assert report.rel_users is None and report.rel_pairs is None
    with pytest.raises(ValueError, match="too many users"):
        report.pairs("FOLLOWS", "User")
