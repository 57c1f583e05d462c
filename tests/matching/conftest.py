"""A tiny market loaded into the embedded store, and its features, shared by the matching tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import MarketFeatures, build_features


@pytest.fixture(scope="session")
def tiny_features(tiny_market: Path, tmp_path_factory: pytest.TempPathFactory) -> MarketFeatures:
    store = SQLiteStore(tmp_path_factory.mktemp("db") / "tiny.db")
    load_folder(tiny_market, store)
    f = build_features(store)
    store.close()
    return f


@pytest.fixture(scope="session")
def s_features(s_market: Path, tmp_path_factory: pytest.TempPathFactory) -> MarketFeatures:
    store = SQLiteStore(tmp_path_factory.mktemp("db") / "s.db")
    load_folder(s_market, store)
    f = build_features(store)
    store.close()
    return f
