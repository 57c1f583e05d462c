"""Every worker consistent (issue 18): how stale an answer can be after a write, under load.

Starts ``kolmatch serve --workers N`` on a store and waits until every worker has started.
Then ``--clients`` clients each ask for a merchant's top-20 matches and wait an exponential
think time of 1 s on average (about ``--clients`` requests a second), while one writer sends
``--writes`` writes, one every ``--write-interval`` seconds, each on a new connection (so the
kernel hands them to either worker): recorded collaborations, and every ``--flag-every``-th
write a severe flag of the top talent of a merchant the clients read, resolved by the next.
``--writers W`` runs W such writers side by side, each sending its writes at the same
moments as the others (writes at once, to either worker: two servers' writes landing
together), ``--writes`` in all.

Every answer names the graph version it reflects (``Kolmatch-Graph-Version``). A read is
stale by ``s`` seconds if, when its answer arrived, a write making a newer version had been
answered ``s`` seconds before (the strict reading: a read sent before the write but answered
after counts). Prints the reads stale by more than ``--bound`` seconds (the target: none),
the staleness of the reads behind a write (p50 / p99 / max), the reads' latency, and each
write kind's latency; ``--json`` also prints them as one JSON line. Usage::

    python -m bench.consistency --store sqlite:////tmp/m.db --cache /tmp/m-cache --writes 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.run import _free_port
from kolmatch.api.app import GRAPH_VERSION_HEADER
from kolmatch.graph.market import ReadSpec, read_market
from kolmatch.graph.open import open_store

KEY = "bench-consistency"
READ = (
    "query($m: ID!) { merchant(id: $m) { matches(first: 20) { edges { node { rank score "
    "talent { id } } } } } }"
)
RECORD = "mutation($i: CollaborationInput!) { recordCollaboration(input: $i) { version } }"
FLAG = "mutation($i: ViolationInput!) { flagViolation(input: $i) { version } }"
RESOLVE = "mutation($v: ID!) { resolveViolation(id: $v) { version } }"


@dataclass
class Log:
    """What the clients saw: reads (sent at, answered at, version) and writes."""

    reads: list[tuple[float, float, int]] = field(default_factory=list)
    writes: list[tuple[str, float, float, int]] = field(default_factory=list)  # kind, t0, t1, v
    errors: list[str] = field(default_factory=list)
    not_eligible: int = 0


def _stats(xs: list[float], unit: str = "s", scale: float = 1.0) -> str:
    if not xs:
        return "none"
    a = np.asarray(xs) * scale
    return (
        f"p50 {np.percentile(a, 50):.3f} {unit}, p99 {np.percentile(a, 99):.3f} {unit}, "
        f"max {a.max():.3f} {unit} (n={len(a)})"
    )


def staleness(log: Log) -> list[float]:
    """Per read: how long before its answer a newer version's write had been answered (0 if
    none had).

    Examples
    --------
    >>> log = Log(writes=[("w", 0.0, 1.0, 5), ("w", 1.5, 2.0, 6)])
    >>> log.reads = [(0.0, 0.5, 4), (1.2, 1.4, 4), (1.9, 2.6, 5), (2.9, 3.0, 6)]
    >>> [round(s, 2) for s in staleness(log)]
    [0.0, 0.4, 0.6, 0.0]
    """
    done = sorted((t1, v) for _, _, t1, v in log.writes)
    times = np.array([t for t, _ in done])
    newest = np.maximum.accumulate(np.array([v for _, v in done])) if done else np.array([])
    out = []
    for _, answered, version in log.reads:
        # the first write answered before the read's answer with a version newer than it
        k = int(np.searchsorted(times, answered, side="right"))
        if k == 0 or newest[k - 1] <= version:
            out.append(0.0)
            continue
        first = int(np.argmax(newest[:k] > version))
        out.append(answered - float(times[first]))
    return out


async def _reader(
    i: int, url: str, merchants: list[str], stop: float, log: Log, think: float
) -> None:
    rnd = random.Random(i)
    await asyncio.sleep(rnd.uniform(0, think))
    head = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(timeout=60, headers=head) as c:
        while time.monotonic() < stop:
            m = rnd.choice(merchants)
            t0 = time.monotonic()
            try:
                r = await c.post(url, json={"query": READ, "variables": {"m": m}})
            except httpx.HTTPError as exc:
                log.errors.append(f"read: {exc!r}")
            else:
                # a merchant excluded for compliance is an answer too (NOT_ELIGIBLE), of a
                # version like any other
                codes = {e["extensions"]["code"] for e in r.json().get("errors", [])}
                if r.status_code != 200 or codes - {"NOT_ELIGIBLE"}:
                    log.errors.append(f"read {r.status_code}: {r.text[:200]}")
                else:
                    log.reads.append((t0, time.monotonic(), int(r.headers[GRAPH_VERSION_HEADER])))
                    log.not_eligible += bool(codes)
            await asyncio.sleep(rnd.expovariate(1 / think))


async def _write(url: str, kind: str, query: str, variables: dict[str, object], log: Log) -> None:
    """One write on a new connection, logged with its version (or its error)."""
    head = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(timeout=120, headers=head) as c:
        t0 = time.monotonic()
        r = await c.post(url, json={"query": query, "variables": variables})
        t1 = time.monotonic()
    body = r.json()
    if r.status_code != 200 or "errors" in body:
        log.errors.append(f"{kind} {r.status_code}: {r.text[:300]}")
        return
    version = next(iter(body["data"].values()))["version"]
    log.writes.append((kind, t0, t1, int(version)))


async def _top_talent(url: str, merchants: list[str], start: int) -> str:
    """The top talent of the first merchant from ``start`` on that has a match list."""
    head = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(timeout=60, headers=head) as c:
        for k in range(len(merchants)):
            m = merchants[(start + k) % len(merchants)]
            r = await c.post(url, json={"query": READ, "variables": {"m": m}})
            found = (r.json().get("data") or {}).get("merchant") or {}
            edges = (found.get("matches") or {}).get("edges")
            if edges:
                return str(edges[0]["node"]["talent"]["id"])
    raise SystemExit("no merchant has a match list")


async def _writer(
    url: str,
    a: argparse.Namespace,
    merchants: list[str],
    pairs: list[tuple[str, str]],
    log: Log,
    w: int = 0,
) -> None:
    """Writer ``w`` of ``--writers``: its share of ``--writes``, at the others' moments."""
    tag = f"cons-{int(time.time())}-w{w}"
    flagged = ""
    n = len(range(w, a.writes, a.writers))
    start = time.monotonic()
    for i in range(n):
        # on fixed ticks (not an interval after the last answer), so that the writers send
        # together however long each write took
        await asyncio.sleep(max(0.0, start + (i + 1) * a.write_interval - time.monotonic()))
        if a.flag_every and i % a.flag_every == 0 and i + 1 < n:
            talent = await _top_talent(url, merchants, i + 17 * w)
            flagged = f"{tag}-v{i}"
            v = {"id": flagged, "label": "Talent", "target": talent, "kind": "fraud"}
            v |= {"severity": "severe", "time": "2026-11-01"}
            await _write(url, "flagViolation", FLAG, {"i": v}, log)
        elif flagged:
            await _write(url, "resolveViolation", RESOLVE, {"v": flagged}, log)
            flagged = ""
        else:
            talent, product = pairs[(i * a.writers + w) % len(pairs)]
            c = {"id": f"{tag}-{i}", "talent": talent, "product": product, "gmv": 5000.0 + i}
            c |= {"orders": 20, "fee": 100.0, "time": "2026-11-01"}
            await _write(url, "recordCollaboration", RECORD, {"i": c}, log)


def _pairs(store_uri: str, n: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Merchants, and ``n`` (talent, product) pairs spread over the market."""
    store = open_store(store_uri)
    try:
        g = read_market(store, ReadSpec({"Talent": ()}, {("SELLS", "Merchant"): ()}))
    finally:
        store.close()
    merchants = [str(m) for m in g.node("Merchant").ids]
    talents = g.node("Talent").ids
    products = g.node("Product").ids[g.edge("SELLS", "Merchant").dst]
    rnd = random.Random(7)
    pairs = [(str(rnd.choice(talents)), str(rnd.choice(products))) for _ in range(n)]
    return merchants, pairs


def _serve(a: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str, list[str]]:
    """``kolmatch serve --workers N``, once each worker has said its startup is complete."""
    port = _free_port()
    env = {**os.environ, "KOLMATCH_API_KEYS": f"{KEY}=internal", "KOLMATCH_CACHE": str(a.cache)}
    cmd = [sys.executable, "-m", "kolmatch.cli", "serve", "--port", str(port)]
    cmd += ["--workers", str(a.workers), "--store", a.store]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = threading.Event()
    lines: list[str] = []

    def watch() -> None:  # uvicorn logs each worker's startup; keep draining the pipe after
        assert server.stderr is not None
        for raw in server.stderr:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            if sum("Application startup complete" in x for x in lines) >= a.workers:
                started.set()

    threading.Thread(target=watch, daemon=True).start()
    deadline = time.monotonic() + a.start_timeout
    while not started.wait(1.0):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            tail = "\n".join(lines[-20:])
            raise SystemExit(f"kolmatch serve did not start its {a.workers} workers:\n{tail}")
    return server, f"http://127.0.0.1:{port}/graphql", lines


async def _run(
    url: str, a: argparse.Namespace, merchants: list[str], pairs: list[tuple[str, str]]
) -> Log:
    log = Log()
    rounds = -(-a.writes // a.writers)
    stop = time.monotonic() + a.warmup + rounds * a.write_interval + 5.0
    readers = [_reader(i, url, merchants, stop, log, a.think) for i in range(a.clients)]

    async def writes(w: int) -> None:
        await asyncio.sleep(a.warmup)
        await _writer(url, a, merchants, pairs, log, w)

    await asyncio.gather(*readers, *(writes(w) for w in range(a.writers)))
    return log


def serving_arguments(description: str, cache: str, warmup: float) -> argparse.ArgumentParser:
    """The arguments of a bench that serves a store (:func:`_serve`) to paced readers
    (:func:`_reader`) and one writer; ``cache`` and ``warmup`` are its defaults."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--store", required=True, help="store URI (sqlite:////abs/path.db, neo4j)")
    p.add_argument("--cache", type=Path, default=Path(cache))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--think", type=float, default=1.0, help="mean think time, seconds")
    p.add_argument("--write-interval", type=float, default=1.0)
    p.add_argument("--warmup", type=float, default=warmup)
    p.add_argument("--start-timeout", type=float, default=1800.0)
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    return p


def main() -> None:
    p = serving_arguments(__doc__.splitlines()[0], ".kolmatch/bench-consistency", 5.0)
    p.add_argument("--writes", type=int, default=100)
    p.add_argument("--writers", type=int, default=1, help="writers sending at the same moments")
    p.add_argument("--flag-every", type=int, default=10, help="0: collaborations only")
    p.add_argument("--bound", type=float, default=1.0, help="staleness target, seconds")
    a = p.parse_args()
    merchants, pairs = _pairs(a.store, a.writes)
    t0 = time.perf_counter()
    server, url, server_log = _serve(a)
    print(f"{a.workers} workers started in {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        log = asyncio.run(_run(url, a, merchants, pairs))
    finally:
        server.terminate()
        server.wait(timeout=60)
    stale = staleness(log)
    late = [s for s in stale if s > a.bound]
    versions = sorted({v for _, _, v in log.reads})
    print(
        f"{a.clients} clients (think {a.think:g} s), {len(log.writes)} writes every "
        f"{a.write_interval:g} s by {a.writers} writer(s) at once, {a.workers} workers, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"reads: {len(log.reads)} over {len(versions)} versions ({log.not_eligible} answered "
        f"NOT_ELIGIBLE); errors: {len(log.errors)}"
    )
    for e in log.errors[:5]:
        print(f"  {e}")
    trouble = [x for x in server_log if any(w in x for w in ("ERROR", "WARNING", "Traceback"))]
    for line in trouble[:10]:
        print(f"  server: {line}")
    print(f"reads stale by more than {a.bound:g} s: {len(late)}")
    print(f"staleness of reads behind a write: {_stats([s for s in stale if s > 0])}")
    print(f"read latency: {_stats([t1 - t0 for t0, t1, _ in log.reads], 'ms', 1000)}")
    writes: dict[str, list[float]] = {}
    for kind, w0, w1, _ in log.writes:
        writes.setdefault(kind, []).append(w1 - w0)
    for kind, lat in sorted(writes.items()):
        print(f"{kind}: {_stats(lat)}")
    if a.json:
        behind = [s for s in stale if s > 0]
        out = {
            "reads": len(log.reads),
            "versions_read": len(versions),
            "errors": log.errors,
            "stale_beyond_bound": len(late),
            "bound_s": a.bound,
            "max_staleness_s": max(stale, default=0.0),
            "reads_behind_a_write": len(behind),
            "writes": {k: len(v) for k, v in writes.items()},
            "write_versions": [v for *_, v in log.writes],
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
