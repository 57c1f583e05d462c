"""Neo4j stopped while the API serves, then started again: clear errors, no restart needed.

A second Neo4j server of its own (the ``own_neo4j`` fixture) so that stopping
it leaves the session's server to the other tests.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kolmatch.api.app import create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.api.limits import Limits
from kolmatch.cli import API_NEO4J_RETRY_SECONDS
from kolmatch.engine.service import EngineService
from kolmatch.graph.neo4j_store import Neo4jStore
from kolmatch.loaders.load import load_folder
from tests.api.conftest import serve
from tests.conftest import Neo4jServer

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


def test_neo4j_stopped_under_the_api_then_back(
    own_neo4j: Neo4jServer, tiny_market: Path, tmp_path: Path, ledger: Any
) -> None:
    case = ledger.case("Faults", "Neo4j stopped (SIGTERM) while the API serves, then started again")
    server = own_neo4j
    store = Neo4jStore(
        f"bolt://127.0.0.1:{server.port}",
        ("neo4j", server.password),
        retry_seconds=API_NEO4J_RETRY_SECONDS,  # as `kolmatch serve` opens it
    )
    load_folder(tiny_market, store)
    service = EngineService(store, tmp_path / "cache")
    # a write refreshes the snapshot: right after Neo4j restarts (cold plans and caches) that
    # has taken over the default 10 s request budget, so this test allows a minute
    app = create_app(service, KeyRing({"k": Principal("internal")}), limits=Limits(timeout_s=60))
    url, uv, thread = serve(app)
    client = httpx.Client(timeout=60, headers={"Authorization": "Bearer k"})
    read = {"query": '{ merchant(id: "m1") { matches(first: 3) { edges { node { rank } } } } }'}

    def resolve(vid: str) -> httpx.Response:
        return client.post(
            f"{url}/graphql",
            json={"query": f'mutation {{ resolveViolation(id: "{vid}") {{ version }} }}'},
        )

    vid = sorted(service.snapshot.violation_ids)[0]
    try:
        answer = client.post(f"{url}/graphql", json=read).json()
        assert "errors" not in answer
        assert client.get(f"{url}/healthz").status_code == 200

        server.stop()
        t0 = time.monotonic()
        h = client.get(f"{url}/healthz")
        assert h.status_code == 503 and "unavailable" in h.json()["error"]
        r = resolve(vid)  # a write needs the store
        took = time.monotonic() - t0
        assert r.status_code == 503, r.text
        err = r.json()["errors"][0]
        assert err["extensions"]["code"] == "STORE_UNAVAILABLE"
        assert f"127.0.0.1:{server.port}" in err["message"] and "Traceback" not in r.text
        r = client.post(
            f"{url}/graphql", json={"query": "mutation { refreshFeatures { version } }"}
        )
        assert r.status_code == 503
        # reads keep answering from the last snapshot: the same answer as before the outage
        assert client.post(f"{url}/graphql", json=read).json() == answer
        case.note(f"health and a write answered 503 within {took:.1f} s of the stop")

        server.start()  # same data folder; the API server was never restarted
        deadline = time.monotonic() + 60
        while client.get(f"{url}/healthz").status_code != 200:
            assert time.monotonic() < deadline, "the API did not see Neo4j come back"
            time.sleep(0.5)
        t1 = time.monotonic()
        r = resolve(vid)
        assert r.status_code == 200 and "errors" not in r.json(), (time.monotonic() - t1, r.text)
        assert r.json()["data"]["resolveViolation"]["version"] == service.snapshot.version
        case.note(
            "first write after the restart (with its snapshot rebuild): "
            f"{time.monotonic() - t1:.1f} s"
        )
        assert client.post(f"{url}/graphql", json=read).json()["data"] is not None
        case.tried()
    finally:
        client.close()
        uv.should_exit = True
        thread.join(timeout=10)
        store.close()
