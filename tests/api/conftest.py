"""A real server: uvicorn on a free loopback port, serving the s market, queried over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from kolmatch.api.app import create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.api.limits import Limits
from kolmatch.engine.service import EngineService
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from tests.conftest import free_port


class CountingStore:
    """The real store, counting every call the service makes through it."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if callable(attr):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls += 1
                return attr(*args, **kwargs)

            return counted
        return attr


@dataclass
class Api:
    url: str
    keys: dict[str, str]  # principal -> key
    store: CountingStore
    service: EngineService
    # one client for the session: a new one per request costs ~50 ms of TLS context set-up
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=120))

    def post(self, query: str, who: str | None = "internal", **body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return self.client.post(
            f"{self.url}/graphql", json={"query": query, **body}, headers=headers
        )

    def data(self, query: str, who: str = "internal", **body: Any) -> dict[str, Any]:
        r = self.post(query, who, **body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert "errors" not in out, out["errors"]
        return out["data"]  # type: ignore[no-any-return]

    def errors(self, query: str, who: str = "internal", **body: Any) -> list[dict[str, Any]]:
        r = self.post(query, who, **body)
        assert r.status_code in (200, 503), r.text
        return r.json()["errors"]  # type: ignore[no-any-return]


def serve(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture(scope="session")
def api(s_market: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    d = tmp_path_factory.mktemp("api")
    raw = SQLiteStore(d / "s.db")
    load_folder(s_market, raw)
    store = CountingStore(raw)
    service = EngineService(store, d / "cache")  # type: ignore[arg-type]
    snap = service.snapshot
    agency = max(snap.agency_roster, key=lambda a: (len(snap.agency_roster[a]), a))
    other = min(
        snap.agency_roster,
        key=lambda a: (-len(snap.agency_roster[a]), a) if a != agency else (1, a),
    )
    keys = {
        "internal": "k-internal",
        "merchant:m0": "k-m0",
        "merchant:m1": "k-m1",
        f"agency:{agency}": "k-agency",
        f"agency:{other}": "k-agency2",
    }
    ring = KeyRing({k: Principal.parse(p) for p, k in keys.items()})
    # no rate limit here: the sweeps send thousands of requests a key (tests/api/test_limits.py)
    limits = Limits(timeout_s=60, rate_per_s=0, internal_rate_per_s=0)
    app = create_app(service, ring, production=False, limits=limits)
    url, server, thread = serve(app)
    by_name = {
        "internal": "k-internal",
        "m0": "k-m0",
        "m1": "k-m1",
        "agency": "k-agency",
        "agency2": "k-agency2",
    }
    a = Api(url, by_name, store, service)
    a.agency = agency  # type: ignore[attr-defined]
    a.other_agency = other  # type: ignore[attr-defined]
    yield a
    a.client.close()
    server.should_exit = True
    thread.join(timeout=10)
    raw.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A real headless Chromium with the network cut off (tests/api/browser.py)."""
    from tests.api.browser import chromium

    yield from chromium()
