"""Load held: a soak of concurrent clients, and floods of abusive requests, against a real server.

The server is ``kolmatch serve`` in its own process on a loopback port, serving
the s market from the embedded store; its resident memory is read from /proc.
``KOLMATCH_SOAK_SECONDS`` sets the soak's length (default 120 s).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from tests.conftest import free_port

pytestmark = pytest.mark.slow
KOLMATCH = [sys.executable, "-m", "kolmatch.cli"]
SOAK_SECONDS = float(os.environ.get("KOLMATCH_SOAK_SECONDS", "120"))
SOAK_CLIENTS = 16
#: Memory a long run may add once warm (allocator arenas, caches of parsed queries).
SOAK_GROWTH_MIB = 64
ABUSE_GROWTH_MIB = 32


@dataclass
class Served:
    url: str
    pid: int
    keys: dict[str, str]  # name -> key
    log: Path
    merchants: list[str]
    agency: str


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture(scope="module")
def served(s_market: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    d = tmp_path_factory.mktemp("soak")
    store = SQLiteStore(d / "s.db")
    load_folder(s_market, store)
    agency = store.node_rows("Institution", ()).ids[0]
    merchants = sorted(store.node_rows("Merchant", ()).ids)[:20]
    store.close()
    keys = {"internal": "soak-internal-7f3a9c", "agency": "soak-agency-1b2e4d"}
    keys.update({m: f"soak-{m}-9e8d7c" for m in merchants})
    principals = {"internal": "internal", "agency": f"agency:{agency}"}
    principals.update({m: f"merchant:{m}" for m in merchants})
    port = free_port()
    env = {
        **os.environ,
        "KOLMATCH_API_KEYS": ",".join(f"{keys[n]}={principals[n]}" for n in keys),
        "KOLMATCH_CACHE": str(d / "cache"),
    }
    log = d / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*KOLMATCH, "serve", "--port", str(port), "--store", f"sqlite:///{d / 's.db'}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "kolmatch serve did not start"
        time.sleep(0.5)
    yield Served(url, proc.pid, keys, log, merchants, agency)
    proc.terminate()
    proc.wait(timeout=60)  # uvicorn re-raises SIGTERM after its graceful shutdown: status -15
    text = log.read_text()
    assert "Finished server process" in text, "the server did not shut down gracefully"
    assert not any(k in text for k in keys.values()), "an API key was written to the log"


def _queries(s: Served) -> list[tuple[str, str, dict[str, Any]]]:
    """The mix a day brings: merchants' match lists, lookups, agencies, internal batches."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for m in s.merchants:
        out.append(
            (
                m,
                "query($m: ID!) { merchant(id: $m) { matches(first: 20) { edges { node { rank "
                "score evidence talent { id name tier } } } } } }",
                {"m": m},
            )
        )
    out.append(
        (
            "agency",
            "query($a: ID!) { agency(id: $a) { roster(first: 20) { edges { node { id fee "
            "similar(first: 3) { similarity } } } } rosterReach } }",
            {"a": s.agency},
        )
    )
    out.append(
        (
            "internal",
            "query($ms: [ID!]!) { matchLists(merchantIds: $ms, first: 10) { merchant "
            "matches { rank talent { id } } } }",
            {"ms": s.merchants[:5]},
        )
    )
    out.append(
        (
            "internal",
            "{ talents(first: 20, orderBy: CENTRALITY_DESC) { edges { node { id centrality "
            "audience { size } } } } }",
            {},
        )
    )
    return out


def test_soak_no_errors_and_flat_memory(served: Served, ledger: Any) -> None:
    case = ledger.case(
        "Load",
        f"soak: {SOAK_CLIENTS} concurrent clients for {SOAK_SECONDS:g} s on loopback, s market",
    )
    mix = _queries(served)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + SOAK_SECONDS

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=30) as c:
            while time.monotonic() < stop:
                who, q, v = rng.choice(mix)
                t0 = time.perf_counter()
                try:
                    r = c.post(
                        f"{served.url}/graphql",
                        json={"query": q, "variables": v},
                        headers={"Authorization": f"Bearer {served.keys[who]}"},
                    )
                    ok = r.status_code == 200 and "errors" not in r.json()
                    why = "" if ok else f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if not ok:
                        errors.append(why)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(SOAK_CLIENTS)]
    rss = [_rss_mib(served.pid)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(min(5.0, SOAK_SECONDS / 10))
        rss.append(_rss_mib(served.pid))
    for t in threads:
        t.join()
    case.tried(len(latencies))
    lat = np.asarray(latencies) * 1000
    warm = rss[max(1, len(rss) // 4)]
    growth = max(rss) - warm
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    case.note(
        f"{len(lat):,} requests ({len(lat) / SOAK_SECONDS:.0f}/s), {len(errors)} errors; "
        f"latency p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms; server memory "
        f"{rss[0]:.0f} MiB at start, {warm:.0f} MiB warm, {max(rss):.0f} MiB peak "
        f"(growth {growth:+.0f} MiB after warm-up, bound {SOAK_GROWTH_MIB} MiB); "
        f"{os.cpu_count()} cores, clients on the same cores"
    )
    assert not errors, errors[:5]
    assert growth < SOAK_GROWTH_MIB, rss


#: Abusive requests and the code each must get (HTTP status, GraphQL error code).
ABUSE: list[tuple[str, Any, int, str]] = [
    (
        "deep nesting (40 levels)",
        {
            "query": '{ talent(id: "t1") { '
            + "similar { talent { " * 20
            + "id"
            + " } }" * 20
            + " } }"
        },
        200,
        "LIMIT_EXCEEDED",
    ),
    (
        "alias flood (2,000 aliases)",
        {"query": "{ " + " ".join(f"a{i}: me {{ kind }}" for i in range(2000)) + " }"},
        200,
        "GRAPHQL_PARSE_FAILED",
    ),
    (
        "huge first",
        {"query": "{ talents(first: 100000000) { totalCount } }"},
        200,
        "LIMIT_EXCEEDED",
    ),
    (
        "fragment cycle",
        {
            "query": "fragment A on Talent { ...B } fragment B on Talent { ...A } "
            '{ talent(id: "t1") { ...A } }'
        },
        200,
        "GRAPHQL_VALIDATION_FAILED",
    ),
    (
        "list fan-out (100 x 100 x 100)",
        {
            "query": "{ talents(first: 100) { edges { node { similar(first: 100) { talent { "
            "history(first: 100) { id } } } } } } }"
        },
        200,
        "LIMIT_EXCEEDED",
    ),
    ("oversized body (1 MiB)", {"query": "{ me { kind } }", "pad": "x" * (1 << 20)}, 413, ""),
    ("batch of 50", [{"query": "{ me { kind } }"}] * 50, 400, "BAD_REQUEST"),
    ("not JSON", b"{" * 5000, 400, "BAD_REQUEST"),
]


def test_abusive_requests_are_rejected_fast_with_flat_memory(served: Served, ledger: Any) -> None:
    rounds = 40
    auth = {"Authorization": f"Bearer {served.keys['internal']}"}
    with httpx.Client(timeout=30) as c:
        c.post(f"{served.url}/graphql", json={"query": "{ me { kind } }"}, headers=auth)
        before = _rss_mib(served.pid)
        slowest: dict[str, float] = {}
        for _ in range(rounds):
            for what, body, status, code in ABUSE:
                t0 = time.perf_counter()
                if isinstance(body, bytes):
                    r = c.post(f"{served.url}/graphql", content=body, headers=auth)
                else:
                    r = c.post(f"{served.url}/graphql", json=body, headers=auth)
                dt = time.perf_counter() - t0
                slowest[what] = max(slowest.get(what, 0.0), dt)
                assert r.status_code == status, (what, r.status_code, r.text[:300])
                if code:
                    got = r.json()["errors"][0]["extensions"]["code"]
                    assert got == code, (what, r.text[:300])
        after = _rss_mib(served.pid)
    for what, *_ in ABUSE:
        case = ledger.case("Bad input: GraphQL requests", f"{what}: rejected with a typed error")
        case.tried(rounds)
        case.note(f"slowest rejection {slowest[what] * 1000:.0f} ms")
    ledger.case("Bad input: GraphQL requests", "server memory across all floods").note(
        f"{before:.0f} MiB before, {after:.0f} MiB after {rounds * len(ABUSE)} abusive requests"
    )
    assert max(slowest.values()) < 2.0, slowest
    assert after - before < ABUSE_GROWTH_MIB, (before, after)
    # and the server still answers normally
    r = httpx.post(f"{served.url}/graphql", json={"query": "{ me { kind } }"}, headers=auth)
    assert r.json() == {"data": {"me": {"kind": "internal"}}}
    assert json.loads(httpx.get(f"{served.url}/healthz").text)["ok"] is True
