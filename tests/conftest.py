"""Shared fixtures: generated markets, an embedded store, and the real Neo4j server."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from kolmatch.engine.cache import features_of
from kolmatch.graph.market import MarketGraph
from kolmatch.graph.model import NODES, RELATIONSHIPS
from kolmatch.graph.projection import edge_list, node_table
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import GraphStore, NodeBatch
from kolmatch.loaders.load import load_folder
from kolmatch.loaders.synthetic import generate_market
from kolmatch.matching.features import MarketFeatures

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: Tests of the real Twitch follows skip, saying why, where ../shared is not beside the clone.
NEEDS_TWITCH = pytest.mark.skipif(
    not (SHARED_DATA / "twitch-follows").is_dir(),
    reason="../shared/data/twitch-follows is not beside this clone",
)
NEO4J_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "neo4j"


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


def _loaded_features(market: Path, db: Path) -> MarketFeatures:
    store = SQLiteStore(db)
    load_folder(market, store)
    f = features_of(store)
    store.close()
    return f


@pytest.fixture(scope="session")
def tiny_features(tiny_market: Path, tmp_path_factory: pytest.TempPathFactory) -> MarketFeatures:
    """The tiny market's features, shared by the matching and evaluation tests."""
    return _loaded_features(tiny_market, tmp_path_factory.mktemp("db") / "tiny.db")


@pytest.fixture(scope="session")
def s_features(s_market: Path, tmp_path_factory: pytest.TempPathFactory) -> MarketFeatures:
    """The s market's features (seed 5)."""
    return _loaded_features(s_market, tmp_path_factory.mktemp("db") / "s.db")


class WritesWhileRead:
    """A store, plus a write by someone else each time ``label``'s nodes are read, while
    ``then`` holds batches (the first one each time): a graph that moves during a read.

    Its ``reading`` holds no snapshot (as Neo4j's read-committed statements): a read sees
    the writes, and ``read_market`` must read again."""

    def __init__(self, store: SQLiteStore, label: str, then: list[NodeBatch]) -> None:
        self._store, self._label, self.then = store, label, then

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def reading(self) -> AbstractContextManager[None]:
        return nullcontext()

    def node_rows(self, label: str, fields: Any) -> Any:
        rows = self._store.node_rows(label, fields)
        if label == self._label and self.then:
            self._store.write([self.then.pop(0)])
        return rows


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


def _assert_same_columns(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    assert a.keys() == b.keys(), what
    for f, ca in a.items():
        if ca.dtype == object:
            assert list(ca) == list(b[f]), (what, f)
        else:
            np.testing.assert_array_equal(ca, b[f], err_msg=f"{what}.{f}")


def assert_same_projections(a: GraphStore, b: GraphStore) -> None:
    """Same ids, edge sets and property columns in every projection of the two stores."""
    tables = {}
    for n in NODES:
        ta, tb = node_table(a, n.label), node_table(b, n.label)
        assert np.array_equal(ta.ids, tb.ids), n.label
        _assert_same_columns(ta.columns, tb.columns, n.label)
        tables[n.label] = (ta, tb)
    for r in RELATIONSHIPS:
        for src in r.src:
            ea = edge_list(a, r.type, tables[src][0], tables[r.dst][0])
            eb = edge_list(b, r.type, tables[src][1], tables[r.dst][1])
            assert np.array_equal(ea.src, eb.src) and np.array_equal(ea.dst, eb.dst), r.type
            _assert_same_columns(ea.columns, eb.columns, r.type)


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


_NEO4J_FIXTURES = {"neo4j_store", "neo4j_store_session", "own_neo4j"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses a Neo4j server is marked ``neo4j`` (select with ``-m neo4j``)."""
    for item in items:
        if _NEO4J_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.neo4j)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    from tests.reliability.ledger import LEDGER

    if report.when == "call" or report.outcome != "passed":
        prev = LEDGER.outcomes.get(report.nodeid)
        if prev != "failed":  # a failed setup or teardown outranks a passed call
            LEDGER.outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests.reliability.ledger import LEDGER

    LEDGER.write(Path(session.config.rootpath))


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Neo4jServer:
    """A Neo4j server under a folder of its own, driven by scripts/neo4j (NEO4J_RUN_DIR and a
    free port), for tests that stop it or replace its database."""

    def __init__(self, run_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "NEO4J_RUN_DIR": str(run_dir),
            "NEO4J_BOLT_PORT": str(self.port),
            "NEO4J_HEAP": "512m",
            "NEO4J_PAGECACHE": "256m",
            "NEO4J_IMPORT_HEAP": "512m",
            "NEO4J_IMPORT_MEMORY": "512m",
        }
        self.run_dir = run_dir
        self.uri = f"bolt://127.0.0.1:{self.port}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """scripts/neo4j with these arguments; its exit code and output are the caller's."""
        return subprocess.run(
            [str(NEO4J_SCRIPT), *args], env=self.env, capture_output=True, text=True
        )

    def _do(self, what: str) -> None:
        r = self.run(what)
        assert r.returncode == 0, r.stderr

    def start(self) -> None:
        self._do("start")

    def stop(self) -> None:
        self._do("stop")

    @property
    def password(self) -> str:
        return (self.run_dir / "password").read_text().strip()


@pytest.fixture
def own_neo4j(tmp_path: Path) -> Iterator[Neo4jServer]:
    """A second, independent Neo4j server, started for the test and stopped after it."""
    if shutil.which("java") is None or shutil.which("mvn") is None:
        msg = "this test starts a Neo4j server of its own: it needs Java 17+ and Maven"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    s = Neo4jServer(tmp_path / "neo4j")
    s.start()
    yield s
    s.stop()


def at_once(n: int, send: Callable[[int], Any]) -> list[Any]:
    """``send(i)`` for i < n from n threads released together (as n clients or workers at the
    same moment): what each returned, or the exception it raised."""
    start = threading.Barrier(n)
    answers: list[Any] = [None] * n

    def run(i: int) -> None:
        start.wait()
        try:
            answers[i] = send(i)
        except Exception as exc:  # the caller's assertions show it
            answers[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    return answers


def write_user_delta(folder: Path, g: MarketGraph, seed: int) -> NDArray[np.int64]:
    """New follows (one already held), purchases (some attributed to a talent) and
    engagements of existing users, and one of them with another gender and age band, in the
    import format; the rows of the users they name."""
    rng = np.random.default_rng(seed)
    users, talents = g.node("User").ids, g.node("Talent").ids
    products, contents = g.node("Product").ids, g.node("Content").ids
    folder.mkdir()
    held = g.edge("FOLLOWS", "User")
    follows = [
        (users[u], talents[t])
        for u, t in zip(rng.integers(0, 400, 40), rng.integers(0, len(talents), 40), strict=True)
    ]
    follows.append((users[held.src[0]], talents[held.dst[0]]))
    named = {u for u, _ in follows}
    with (folder / "follows.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["src", "dst", "since"])
        w.writerows((u, t, "2025-12-30") for u, t in follows)
    with (folder / "purchased.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["src", "dst", "order_id", "amount", "time", "talent"])
        for i in range(30):
            u, p = users[rng.integers(0, 600)], products[rng.integers(0, len(products))]
            talent = talents[rng.integers(0, len(talents))] if i % 3 == 0 else ""
            amount = f"{rng.uniform(5, 500):.2f}"
            w.writerow([u, p, f"delta-{seed}-{i}", amount, "2025-12-30", talent])
            named.add(u)
    with (folder / "engaged_with.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["src", "dst", "views", "likes", "comments", "shares", "watch_s", "last"])
        for _ in range(20):
            u, c = users[rng.integers(0, 800)], contents[rng.integers(0, len(contents))]
            w.writerow([u, c, 3, 1, 0, 0, 12.0, "2025-12-29"])
            named.add(u)
    # and one named user's own gender and age band, corrected
    corrected = sorted(named)[0]
    with (folder / "user.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "gender", "age_band"])
        w.writerow([corrected, "u", "50+"])
    return np.searchsorted(users, sorted(named))  # type: ignore[no-any-return]
