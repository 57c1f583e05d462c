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
from kolmatch.engine.audit import AuditLog
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


#: The keys of :func:`tiny_api`'s server, by the role they hold there.
WRITE_KEYS = {
    "internal": "w-internal-5c1d",
    "m_own": "w-merchant-8e2f",
    "m_other": "w-merchant-3a9b",
}


@dataclass
class Writable:
    """A server on a store of its own (the tiny market) that a test may write to."""

    url: str
    service: EngineService
    store: SQLiteStore
    audit: AuditLog
    seller: str  # the merchant selling `product`
    other: str  # a merchant that does not
    product: str
    talent: str
    client: httpx.Client

    def post(self, query: str, who: str = "internal", **body: Any) -> dict[str, Any]:
        r = self.client.post(
            f"{self.url}/graphql",
            json={"query": query, **body},
            headers={"Authorization": f"Bearer {WRITE_KEYS[who]}"},
        )
        assert r.status_code in (200, 503), r.text
        out: dict[str, Any] = r.json()
        return out


@pytest.fixture
def tiny_api(tiny_market: Path, tmp_path: Path) -> Iterator[Writable]:
    """A server on a fresh store of the tiny market, with an audit log of its own; keys
    :data:`WRITE_KEYS`: internal, ``m_own`` (the seller of ``product``), ``m_other``."""
    store = SQLiteStore(tmp_path / "tiny.db")
    load_folder(tiny_market, store)
    audit = AuditLog(tmp_path / "audit" / "audit.jsonl")
    service = EngineService(store, tmp_path / "cache", audit=audit)
    snap = service.snapshot
    product, seller = next((p, m) for p, m in sorted(snap.product_merchant.items()) if m)
    other = next(str(m) for m in snap.features.merchant_ids if str(m) != seller)
    ring = KeyRing(
        {
            WRITE_KEYS["internal"]: Principal("internal"),
            WRITE_KEYS["m_own"]: Principal("merchant", seller),
            WRITE_KEYS["m_other"]: Principal("merchant", other),
        }
    )
    url, server, thread = serve(create_app(service, ring, production=False))
    client = httpx.Client(timeout=120)
    talent = str(snap.features.talent_ids[0])
    yield Writable(url, service, store, audit, seller, other, product, talent, client)
    client.close()
    server.should_exit = True
    thread.join(timeout=10)
    store.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A real headless Chromium with the network cut off (tests/api/browser.py)."""
    from tests.api.browser import chromium

    yield from chromium()
