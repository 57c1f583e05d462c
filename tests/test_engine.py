"""Features are built once per graph version and served from the cache until the graph changes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kolmatch.engine import cache as engine
from kolmatch.graph.market import read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import NodeBatch, RelBatch
from kolmatch.loaders.load import load_folder
from tests.conftest import WritesWhileRead


def test_cache_hit_until_a_write(
    tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_folder(tiny_market, sqlite_store)
    builds = []
    real = engine.build_features
    monkeypatch.setattr(engine, "build_features", lambda *a, **k: builds.append(1) or real(*a, **k))
    cache = tmp_path / "cache"
    a = engine.cached_features(sqlite_store, cache)
    b = engine.cached_features(sqlite_store, cache)
    assert len(builds) == 1
    np.testing.assert_array_equal(a.talent_audience, b.talent_audience)
    v = sqlite_store.version()
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "category.csv").write_text("id,name\ncat99,New\n")
    load_folder(tmp_path / "more", sqlite_store)
    assert sqlite_store.version() == v + 1
    engine.cached_features(sqlite_store, cache)
    assert len(builds) == 2
    assert len(list(cache.glob("features-*.npz"))) == 1


def test_a_corrupt_cache_file_is_rebuilt(
    tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    load_folder(tiny_market, sqlite_store)
    cache = tmp_path / "cache"
    engine.cached_features(sqlite_store, cache)
    (f,) = cache.glob("features-*.npz")
    f.write_bytes(b"garbage")
    again = engine.cached_features(sqlite_store, cache)
    assert len(again.talent_ids) == 100


def test_rejected_load_keeps_the_version(
    tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    load_folder(tiny_market, sqlite_store)
    v = sqlite_store.version()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "talent.csv").write_text("id,name,followers\nt1,A,many\n")
    with pytest.raises(Exception, match="expected a whole number"):
        load_folder(tmp_path / "bad", sqlite_store)
    assert sqlite_store.version() == v


def test_a_graph_written_anew_at_the_same_uri_is_not_served_from_the_cache(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Same URI, same version number, another graph: the cache must not answer for it."""
    path, cache = tmp_path / "g.db", tmp_path / "cache"
    store = SQLiteStore(path)
    assert store.graph_id() == "" and store.identity() == ("", 0)
    load_folder(tiny_market, store)
    first_id = store.graph_id()
    assert len(first_id) == 32 and store.version() == 1
    assert store.identity() == (first_id, 1)
    assert len(engine.cached_features(store, cache).talent_ids) == 100
    load_folder(tiny_market, store)
    assert store.graph_id() == first_id  # later writes keep the graph's id
    store.close()
    path.unlink()

    other = tmp_path / "other"
    other.mkdir()
    for name in ("talent", "merchant", "user", "category"):
        lines = (tiny_market / f"{name}.csv").read_text().splitlines()
        (other / f"{name}.csv").write_text("\n".join(lines[:11]) + "\n")  # header + 10 rows
    store = SQLiteStore(path)
    load_folder(other, store)
    assert store.version() == 1 and store.graph_id() not in ("", first_id)
    assert len(engine.cached_features(store, cache).talent_ids) == 10
    store.close()


def test_a_compliance_update_falls_back_when_the_graph_moves(
    tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_folder(tiny_market, sqlite_store)
    cache = tmp_path / "cache"
    before = engine.cached_features(sqlite_store, cache)
    v = sqlite_store.version()
    talent = str(before.talent_ids[0])
    flag = NodeBatch.of("Violation", [{"id": "x-1", "severity": "minor", "resolved": False}])
    sqlite_store.write(
        [flag, RelBatch.of("HAS_VIOLATION", "Talent", [{"src": talent, "dst": "x-1"}])]
    )
    builds: list[int] = []
    real = engine.build_features
    monkeypatch.setattr(engine, "build_features", lambda *a, **k: builds.append(1) or real(*a, **k))

    # nobody else wrote: compliance alone is re-read, and equals a full build
    updated = engine.load_features(sqlite_store, cache, risk_update_of=(before, v))[0]
    assert builds == [] and updated.talent_risk[0] == 1.0
    np.testing.assert_array_equal(updated.talent_risk, real(read_market(sqlite_store)).talent_risk)

    # two writes past the features: the whole graph is read
    sqlite_store.write([NodeBatch.of("Violation", [{"id": "x-1", "resolved": True}])])
    engine.load_features(sqlite_store, cache, risk_update_of=(updated, v + 1))[0]
    assert builds == []  # v + 2 == (v + 1) + 1: still one write past
    engine.load_features(sqlite_store, tmp_path / "c2", risk_update_of=(before, v))[0]
    assert builds == [1]

    # a write lands while compliance is read: what was read is dropped; the whole graph is
    # read at the version it reached, and cached under that one
    resolved = engine.cached_features(sqlite_store, cache)
    w = sqlite_store.version()
    sqlite_store.write([NodeBatch.of("Violation", [{"id": "x-1", "resolved": False}])])
    other = NodeBatch.of("Category", [{"id": "cat-new", "name": "New"}])
    moving = WritesWhileRead(sqlite_store, "Violation", [other])
    fresh = tmp_path / "c3"
    got = engine.load_features(moving, fresh, risk_update_of=(resolved, w))[0]  # type: ignore[arg-type]
    assert builds == [1, 1] and sqlite_store.version() == w + 2
    assert "New" in list(got.category_names) and got.talent_risk[0] == 1.0
    assert engine.cached_features(sqlite_store, fresh).category_names.tolist() == (
        got.category_names.tolist()
    )
    assert builds == [1, 1]  # served from the cache at w + 2


class _Planted:
    """Pickled, this runs code when loaded: what a hostile cache file would do."""

    def __reduce__(self) -> tuple[Any, ...]:
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))  # type: ignore[attr-defined]


def test_a_cache_file_is_data_only_and_never_runs_code(
    tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    import pickle

    load_folder(tiny_market, sqlite_store)
    cache = tmp_path / "cache"
    first = engine.cached_features(sqlite_store, cache)
    (entry,) = cache.glob("features-*.npz")
    marker = tmp_path / "ran"
    planted = _Planted()
    planted.marker = str(marker)  # type: ignore[attr-defined]
    entry.write_bytes(pickle.dumps(planted))  # someone swaps the entry for a pickle
    again = engine.cached_features(sqlite_store, cache)
    assert not marker.exists()  # read as data: refused, rebuilt
    np.testing.assert_array_equal(again.talent_audience, first.talent_audience)
    # every field survives the round trip, sparse matrices, lists and dates included
    from kolmatch.engine.arrays import read_arrays

    (entry,) = cache.glob("features-*.npz")
    back = read_arrays(entry, type(first), version=engine.CACHE_FORMAT)
    for name in first.__dataclass_fields__:
        a, b = getattr(first, name), getattr(back, name)
        if hasattr(a, "toarray"):
            np.testing.assert_array_equal(a.toarray(), b.toarray())
        elif isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        elif isinstance(a, list) and a and isinstance(a[0], np.ndarray):
            assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        else:
            assert a == b, name


def _counting_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    builds: list[int] = []
    real = engine.build_features
    monkeypatch.setattr(engine, "build_features", lambda *a, **k: builds.append(1) or real(*a, **k))
    return builds


def test_alternating_two_stores_rebuilds_neither_the_second_time(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    stores = [SQLiteStore(tmp_path / f"{name}.db") for name in ("a", "b")]
    for s in stores:
        load_folder(tiny_market, s)
    builds = _counting_builds(monkeypatch)
    first = [engine.cached_features(s, cache) for s in stores]
    assert len(builds) == 2
    again = [engine.cached_features(s, cache) for s in (*stores, *stores)]
    assert len(builds) == 2  # a, b, a, b, a, b: two builds
    for before, after in zip(first * 2, again, strict=True):
        np.testing.assert_array_equal(before.talent_audience, after.talent_audience)
    assert len(list(cache.glob("features-*.npz"))) == 2
    assert len(list(cache.glob("calibration-*.npz"))) == 2  # each store keeps its own
    for s in stores:
        s.close()


def test_the_cache_keeps_the_most_recently_used_stores(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most CACHE_STORES stores' entries: a store not used for longest is dropped."""
    monkeypatch.setattr(engine, "CACHE_STORES", 2)
    cache = tmp_path / "cache"
    a, b, c = (SQLiteStore(tmp_path / f"{name}.db") for name in ("a", "b", "c"))
    for s in (a, b, c):
        load_folder(tiny_market, s)
    builds = _counting_builds(monkeypatch)
    for s in (a, b, a, c):  # c pushes out the least recently used: b, not a
        engine.cached_features(s, cache)
        time.sleep(0.01)  # distinct modification times
    assert len(builds) == 3
    assert len(list(cache.glob("features-*.npz"))) == 2
    engine.cached_features(a, cache)
    assert len(builds) == 3
    engine.cached_features(b, cache)
    assert len(builds) == 4
    for s in (a, b, c):
        s.close()
