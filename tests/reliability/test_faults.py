"""Faults survived: a killed load leaves nothing half-written; a failed refresh keeps serving."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kolmatch.api.app import create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.engine.service import EngineService
from kolmatch.errors import IncompleteLoad, StoreUnavailable
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.loaders.synthetic import MarketScale, generate_market
from tests.api.conftest import serve


@pytest.fixture(scope="module")
def small_market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Between tiny and s: a Neo4j load long enough (~20 s) to be killed in the middle."""
    out = tmp_path_factory.mktemp("markets") / "small"
    generate_market(MarketScale(10_000, 400, 60), 3, out)
    return out


@pytest.mark.neo4j
def test_a_neo4j_load_killed_part_way_is_never_read_and_reruns_clean(
    small_market: Path, neo4j_store: Any, sqlite_store: SQLiteStore, tmp_path: Path, ledger: Any
) -> None:
    case = ledger.case("Faults", "Neo4j load killed with SIGKILL while writing relationships")
    load_folder(small_market, sqlite_store)
    expected = sqlite_store.counts()
    cmd = [sys.executable, "-m", "kolmatch.cli", "load", str(small_market)]
    cmd += ["--store", neo4j_store.uri]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while neo4j_store.counts()["FOLLOWS"] == 0:  # nodes done, relationships under way
        assert proc.poll() is None, "the load finished before it could be killed"
        assert time.monotonic() < deadline, "the load never started writing"
        time.sleep(0.2)
    assert proc.poll() is None, "the load finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    partial = neo4j_store.counts()
    assert 0 < sum(partial.values()) < sum(expected.values())
    case.note(
        f"killed with {sum(partial.values()):,} of {sum(expected.values()):,} rows committed; "
        "kolmatch refused to read them (IncompleteLoad) until the re-run completed"
    )

    # committed batches are in the database, but kolmatch refuses to read any of it
    with pytest.raises(IncompleteLoad, match=str(small_market.name)):
        neo4j_store.version()
    with pytest.raises(IncompleteLoad):
        EngineService(neo4j_store, tmp_path / "cache")
    r = subprocess.run(
        [sys.executable, "-m", "kolmatch.cli", "match", "m0", "--store", neo4j_store.uri],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "unfinished load" in r.stderr and "Traceback" not in r.stderr

    # the same load again completes it: a clean load's counts, no duplicates, readable
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert neo4j_store.counts() == expected
    assert neo4j_store.version() >= 1
    EngineService(neo4j_store, tmp_path / "cache")
    case.tried()


def test_a_load_killed_part_way_leaves_nothing_and_reruns_clean(
    s_market: Path, tmp_path: Path, ledger: Any
) -> None:
    case = ledger.case("Faults", "SQLite load killed with SIGKILL inside its transaction")
    clean = SQLiteStore(tmp_path / "clean.db")
    load_folder(s_market, clean)
    expected = clean.counts()
    clean.close()

    db = tmp_path / "killed.db"
    empty = SQLiteStore(db)
    empty.ensure_schema()
    before = empty.counts()
    empty.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kolmatch.cli", "load", str(s_market), "--store", f"sqlite:///{db}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journal = Path(f"{db}-wal")  # the write-ahead log
    deadline = time.monotonic() + 60
    # the load has opened the store and committed its schema (the WAL's first frames); its
    # one transaction then runs for seconds, holding its pages in its cache until the commit
    while not (journal.exists() and journal.stat().st_size > 0):
        assert proc.poll() is None, "the load finished before it could be killed"
        assert time.monotonic() < deadline, "the load never started writing"
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the transaction: users, follows and engagement are large
    assert proc.poll() is None, "the load finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL

    with sqlite3.connect(db) as con:  # the next open ignores the WAL's uncommitted frames
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = SQLiteStore(db)
    assert store.counts() == before, "a killed load left rows behind"
    load_folder(s_market, store)
    assert store.counts() == expected
    store.close()
    case.tried()


class FlakyStore:
    """The real store, which can be made to fail as a stopped server would."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.down = False
        self.unfinished_load = False  # as Neo4j reports a load killed part-way

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if callable(attr):

            def call(*args: Any, **kwargs: Any) -> Any:
                if self.down:
                    raise StoreUnavailable("the store is down (test)")
                if self.unfinished_load and name == "version":
                    raise IncompleteLoad(self._store.uri, ["/markets/s (0123abcd)"])
                return attr(*args, **kwargs)

            return call
        return attr


def test_a_failed_refresh_keeps_the_previous_snapshot_serving(
    tiny_market: Path, tmp_path: Path, ledger: Any
) -> None:
    case = ledger.case("Faults", "store failing under the API: refresh fails, writes refused")
    raw = SQLiteStore(tmp_path / "tiny.db")
    load_folder(tiny_market, raw)
    store = FlakyStore(raw)
    service = EngineService(store, tmp_path / "cache")  # type: ignore[arg-type]
    url, server, thread = serve(create_app(service, KeyRing({"k": Principal("internal")})))
    auth = {"Authorization": "Bearer k"}
    query = {"query": '{ merchant(id: "m1") { matches(first: 3) { totalCount } } }'}

    def resolve() -> httpx.Response:  # a write: needs the store
        mutation = 'mutation { resolveViolation(id: "x0") { version } }'
        return httpx.post(f"{url}/graphql", json={"query": mutation}, headers=auth)

    try:
        first = httpx.post(f"{url}/graphql", json=query, headers=auth).json()
        snap = service.snapshot
        store.down = True
        with pytest.raises(StoreUnavailable):
            service.refresh()
        assert service.snapshot is snap
        # health says the store is down; queries keep answering from the snapshot
        assert httpx.get(f"{url}/healthz").status_code == 503
        assert httpx.post(f"{url}/graphql", json=query, headers=auth).json() == first
        # a write needs the store: a typed error and HTTP 503, the server stays up
        r = resolve()
        assert r.status_code == 503
        assert r.json()["errors"][0]["extensions"]["code"] == "STORE_UNAVAILABLE"
        store.down = False  # back: no restart needed
        assert httpx.get(f"{url}/healthz").status_code == 200
        r = resolve()
        assert r.status_code == 200 and r.json()["data"]["resolveViolation"]["version"] > 0
        case.tried()

        # an unfinished load: still healthy and serving the last snapshot; writes refused
        before = httpx.post(f"{url}/graphql", json=query, headers=auth).json()
        store.unfinished_load = True
        served = service.snapshot
        h = httpx.get(f"{url}/healthz")
        assert h.status_code == 200 and "unfinished load" in h.json()["incomplete_load"]
        r = resolve()
        assert r.status_code == 503
        assert r.json()["errors"][0]["extensions"]["code"] == "INCOMPLETE_LOAD"
        assert httpx.post(f"{url}/graphql", json=query, headers=auth).json() == before
        assert service.snapshot is served and raw.version() == served.version  # nothing written
        ledger.case(
            "Faults", "a Neo4j load unfinished under the API: serving, writes refused"
        ).tried()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        raw.close()
