"""Shared fixtures: generated markets, an embedded store, and the real Neo4j server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kolmatch.graph.model import NODES
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import GraphStore
from kolmatch.loaders.synthetic import generate_market

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("markets") / "tiny"
    generate_market("tiny", 11, out)
    return out


@pytest.fixture(scope="session")
def s_market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("markets") / "s"
    generate_market("s", 5, out)
    return out


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "graph.db")
    store.ensure_schema()
    yield store
    store.close()


def snapshot(store: GraphStore) -> dict[str, Any]:
    """Counts plus every node's properties: equal snapshots mean an unchanged store."""
    out: dict[str, Any] = {"counts": store.counts()}
    for n in NODES:
        rows = store.node_rows(n.label, n.field_names)
        out[n.label] = sorted(zip(rows.ids, *rows.columns.values(), strict=True), key=str)
    return out


def _neo4j_settings() -> tuple[str, str, str] | None:
    uri = os.environ.get("KOLMATCH_NEO4J_URI")
    password = os.environ.get("NEO4J_PASSWORD")
    if not uri or password is None:
        return None
    return uri, os.environ.get("NEO4J_USER", "neo4j"), password


@pytest.fixture(scope="session")
def neo4j_store_session() -> Iterator[GraphStore]:
    """The real Neo4j server that `make test` starts (scripts/neo4j); never a fake.

    Under CI (CI=true) an unreachable server fails the test; elsewhere it skips
    with the reason.
    """
    from kolmatch.errors import KolmatchError
    from kolmatch.graph.neo4j_store import Neo4jStore

    settings = _neo4j_settings()
    in_ci = os.environ.get("CI", "").lower() == "true"
    if settings is None:
        msg = (
            "Neo4j tests need a server: run them through `make test` (it starts one with "
            "scripts/neo4j) or set KOLMATCH_NEO4J_URI and NEO4J_PASSWORD"
        )
        if in_ci:
            pytest.fail(msg)
        pytest.skip(msg)
    uri, user, password = settings
    store = Neo4jStore(uri, (user, password))
    try:
        store.counts()
    except KolmatchError as exc:
        if in_ci:
            pytest.fail(f"Neo4j at {uri} is unreachable under CI: {exc}")
        pytest.skip(f"Neo4j at {uri} is unreachable: {exc}")
    yield store
    store.close()


@pytest.fixture
def neo4j_store(neo4j_store_session: Any) -> Any:
    """The Neo4j store, emptied before the test."""
    neo4j_store_session.clear()
    neo4j_store_session.ensure_schema()
    return neo4j_store_session


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Any:
    """Record what a reliability test tries (tests/reliability/ledger.py)."""
    from tests.reliability.ledger import TestLedger

    return TestLedger(request.node.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    from tests.reliability.ledger import LEDGER

    if report.when == "call" or report.outcome != "passed":
        prev = LEDGER.outcomes.get(report.nodeid)
        if prev != "failed":  # a failed setup or teardown outranks a passed call
            LEDGER.outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests.reliability.ledger import LEDGER

    LEDGER.write(Path(session.config.rootpath))
