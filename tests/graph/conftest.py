"""Fixtures of the store tests: every store, and a second client of the same graph."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import GraphStore
from tests.conftest import _neo4j_settings


@pytest.fixture(params=["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def empty_store_and_opener(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[GraphStore, Callable[[], Any]]:
    """An empty store of each kind (its schema made), and a way to open another client of the
    same graph (as another worker would)."""
    if request.param == "sqlite":
        path = tmp_path / "b.db"
        store: GraphStore = SQLiteStore(path)
        store.ensure_schema()
        request.addfinalizer(store.close)
        opener: Callable[[], Any] = lambda: SQLiteStore(path)  # noqa: E731
    else:
        from kolmatch.graph.neo4j_store import Neo4jStore

        store = request.getfixturevalue("neo4j_store")
        settings = _neo4j_settings()
        assert settings is not None
        uri, user, password = settings
        opener = lambda: Neo4jStore(uri, (user, password))  # noqa: E731
    return store, opener
