"""Features are built once per graph version and served from the cache until the graph changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kolmatch.engine as engine
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder


def test_cache_hit_until_a_write(
    tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_folder(tiny_market, sqlite_store)
    builds = []
    real = engine.build_features
    monkeypatch.setattr(engine, "build_features", lambda s: builds.append(1) or real(s))
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
    assert len(list(cache.glob("features-*.pkl"))) == 1


def test_a_corrupt_cache_file_is_rebuilt(
    tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    load_folder(tiny_market, sqlite_store)
    cache = tmp_path / "cache"
    engine.cached_features(sqlite_store, cache)
    (f,) = cache.glob("features-*.pkl")
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
