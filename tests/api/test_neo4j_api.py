"""The API on the real Neo4j server: the same answers as on the embedded store, and writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from kolmatch.api.app import create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.engine.service import EngineService
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from tests.api.conftest import serve

pytestmark = pytest.mark.neo4j

Q = '{ merchant(id: "m1") { matches(first: 5) { edges { node { rank score talent { id } } } } } }'


def _ask(url: str, query: str) -> dict[str, Any]:
    r = httpx.post(
        f"{url}/graphql", json={"query": query}, headers={"Authorization": "Bearer k"}, timeout=120
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "errors" not in body, body["errors"]
    return body["data"]  # type: ignore[no-any-return]


def test_same_matches_on_neo4j_and_a_write_through_it(
    tiny_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    load_folder(tiny_market, neo4j_store)
    load_folder(tiny_market, sqlite_store)
    ring = KeyRing({"k": Principal("internal")})
    answers = []
    for store, cache in ((neo4j_store, tmp_path / "c1"), (sqlite_store, tmp_path / "c2")):
        url, server, thread = serve(create_app(EngineService(store, cache), ring))
        try:
            answers.append(_ask(url, Q))
            if store is neo4j_store:
                out = _ask(
                    url,
                    'mutation { flagViolation(input: {id: "n4j-x1", label: "Talent", '
                    'target: "t1", kind: "fake-engagement", severity: "severe", '
                    'time: "2026-06-30"}) { version } }',
                )
                assert out["flagViolation"]["version"] > 0
                assert _ask(url, '{ talent(id: "t1") { excluded } }')["talent"]["excluded"]
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    assert answers[0] == answers[1]
