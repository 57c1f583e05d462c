"""A bulk load into a served store (issue 18): what readers and writers see while it lands.

Starts ``kolmatch serve --workers N`` on a store, then ``--clients`` paced readers (as
bench/consistency.py) and one writer recording a collaboration every ``--write-interval``
seconds. After ``--warmup`` seconds it writes a delta folder beside the cache: ``--share`` of
the store's follows and of its purchases again as new rows (users, talents and products drawn
at random, seeded), and runs ``kolmatch load`` of it into the served store, as a day's new
follows and purchases arrive. The serving processes keep serving the version before while
one of them rebuilds the features in a child process (the others load what it cached), and
refuse writes meanwhile with ``REBUILDING``.

Prints the load's time, how long after it ended the last answer of an older version came
(every worker then serves the load), the reads' latency before and during that window, and
the writes answered and refused; ``--json`` also prints them as one JSON line. Usage::

    python -m bench.bulk_load --store sqlite:////tmp/m.db --cache /tmp/m-cache --share 0.01
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from bench.consistency import (
    KEY,
    RECORD,
    Log,
    _pairs,
    _reader,
    _serve,
    _stats,
    serving_arguments,
)
from kolmatch.graph.market import ReadSpec, read_market
from kolmatch.graph.open import open_store


def write_delta(store_uri: str, folder: Path, share: float, seed: int = 11) -> dict[str, int]:
    """Write ``share`` of the store's follows and purchases as new rows into ``folder``
    (``follows.csv``, ``purchased.csv``, the import format); the rows written per file."""
    store = open_store(store_uri)
    try:
        g = read_market(
            store,
            ReadSpec(
                {"User": (), "Talent": (), "Product": ("price",)},
                {("FOLLOWS", "User"): (), ("PURCHASED", "User"): ()},
            ),
        )
    finally:
        store.close()
    users, talents = g.node("User").ids, g.node("Talent").ids
    products, price = g.node("Product").ids, g.node("Product").columns["price"]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_follows = max(1, round(share * len(g.edge("FOLLOWS", "User"))))
    held = set(
        zip(
            g.edge("FOLLOWS", "User").src.tolist(),
            g.edge("FOLLOWS", "User").dst.tolist(),
            strict=True,
        )
    )
    rows: set[tuple[int, int]] = set()
    while len(rows) < n_follows:
        u = rng.integers(0, len(users), n_follows)
        t = rng.integers(0, len(talents), n_follows)
        rows.update(p for p in zip(u.tolist(), t.tolist(), strict=True) if p not in held)
    with (folder / "follows.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["src", "dst", "since"])
        for u, t in sorted(rows)[:n_follows]:
            w.writerow([users[u], talents[t], "2026-12-01"])
    n_buys = max(1, round(share * len(g.edge("PURCHASED", "User"))))
    tag = f"bulk-{int(time.time())}"
    with (folder / "purchased.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["src", "dst", "order_id", "amount", "time"])
        for i, (u, p) in enumerate(
            zip(
                rng.integers(0, len(users), n_buys).tolist(),
                rng.integers(0, len(products), n_buys).tolist(),
                strict=True,
            )
        ):
            amount = price[p] if np.isfinite(price[p]) and price[p] > 0 else 99.0
            w.writerow([users[u], products[p], f"{tag}-{i}", f"{amount:.2f}", "2026-12-01"])
    return {"follows": n_follows, "purchased": n_buys}


async def _run(
    url: str, a: argparse.Namespace, merchants: list[str], pairs: list[tuple[str, str]], delta: Path
) -> tuple[Log, dict[str, float]]:
    log = Log()
    refused: list[float] = []  # when a write was refused REBUILDING
    done = asyncio.Event()
    out: dict[str, float] = {}
    end = [time.monotonic() + a.timeout]
    readers = [_reader(i, url, merchants, float("inf"), log, a.think) for i in range(a.clients)]

    async def writer() -> None:
        tag = f"bulk-w-{int(time.time())}"
        i = 0
        while not done.is_set():
            await asyncio.sleep(a.write_interval)
            talent, product = pairs[i % len(pairs)]
            c = {"id": f"{tag}-{i}", "talent": talent, "product": product, "gmv": 5000.0 + i}
            c |= {"orders": 20, "fee": 100.0, "time": "2026-11-01"}
            async with httpx.AsyncClient(timeout=120) as client:  # a new connection each
                t0 = time.monotonic()
                r = await client.post(
                    url,
                    json={"query": RECORD, "variables": {"i": c}},
                    headers={"Authorization": f"Bearer {KEY}"},
                )
            body = r.json()
            codes = [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
            if r.status_code == 200 and not codes:
                version = int(body["data"]["recordCollaboration"]["version"])
                log.writes.append(("recordCollaboration", t0, time.monotonic(), version))
            elif codes == ["REBUILDING"]:
                refused.append(time.monotonic())
            else:
                log.errors.append(f"write {r.status_code}: {r.text[:300]}")
            i += 1

    async def load() -> None:
        await asyncio.sleep(a.warmup)
        out["load_start"] = time.monotonic()
        cmd = [sys.executable, "-m", "kolmatch.cli", "load", str(delta), "--store", a.store]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, err = await proc.communicate()
        out["load_end"] = time.monotonic()
        if proc.returncode != 0:
            raise SystemExit(f"kolmatch load failed: {err.decode()[-2000:]}")
        store = open_store(a.store)
        try:
            out["bulk_version"] = store.version()
        finally:
            store.close()
        # every worker serves it once a run of answers are all of it or later
        while time.monotonic() < end[0]:
            await asyncio.sleep(1.0)
            after = [v for _, t1, v in log.reads if t1 > out["load_end"]]
            if len(after) >= 100 and min(after[-100:]) >= out["bulk_version"]:
                break
        await asyncio.sleep(a.tail)
        done.set()

    async def readers_until_done() -> None:
        tasks = [asyncio.create_task(r) for r in readers]
        await done.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    await asyncio.gather(readers_until_done(), writer(), load())
    out["refused"] = float(len(refused))
    return log, out


def measure(a: argparse.Namespace) -> dict[str, object]:
    """Run the bench as ``a`` says (:func:`main`'s arguments); its figures."""
    delta = a.cache.parent / f"{a.cache.name}-delta"
    t0 = time.perf_counter()
    rows = write_delta(a.store, delta, a.share)
    print(f"delta: {rows} in {delta} ({time.perf_counter() - t0:.1f} s)", flush=True)
    merchants, pairs = _pairs(a.store, 1000)
    t0 = time.perf_counter()
    server, url, server_log = _serve(a)
    print(f"{a.workers} workers started in {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        log, at = asyncio.run(_run(url, a, merchants, pairs, delta))
    finally:
        server.terminate()
        server.wait(timeout=60)
    end, v = at["load_end"], at["bulk_version"]
    old = [t1 for _, t1, ver in log.reads if t1 > end and ver < v]
    served_after = (max(old) - end) if old else 0.0
    return {
        "rows": rows,
        "load_s": end - at["load_start"],
        "bulk_version": v,
        "served_after_s": served_after,
        "served": any(t1 > end and ver >= v for _, t1, ver in log.reads),
        "reads_before_ms": [(t1 - t0) * 1000 for t0, t1, _ in log.reads if t1 < at["load_start"]],
        "reads_during_ms": [
            (t1 - t0) * 1000
            for t0, t1, _ in log.reads
            if at["load_start"] <= t0 <= end + served_after
        ],
        "writes_answered": len(log.writes),
        "writes_refused_rebuilding": int(at["refused"]),
        "errors": log.errors,
        "server": _trouble(server_log),
        "rebuilt": [x for x in server_log if "rebuilt" in x],
    }


def _trouble(lines: list[str]) -> list[str]:
    """The server's ERROR lines and each traceback whole (to its exception's line): a
    traceback's first line alone said nothing of what went wrong."""
    out: list[str] = []
    block: list[str] | None = None
    for x in lines:
        if block is not None:
            block.append(x)
            if not x.startswith((" ", "\t", "Traceback", "During handling", "The above")) and x:
                out.append("\n".join(block))
                block = None
        elif "Traceback" in x:
            block = [x]
        elif "ERROR" in x:
            out.append(x)
    if block is not None:
        out.append("\n".join(block))
    return out


def main() -> None:
    p = serving_arguments(__doc__.splitlines()[0], ".kolmatch/bench-bulk", 10.0)
    p.add_argument("--share", type=float, default=0.01, help="new rows per existing row")
    p.add_argument("--tail", type=float, default=10.0, help="seconds measured after")
    p.add_argument("--timeout", type=float, default=1800.0)
    a = p.parse_args()
    r = measure(a)
    rows = r["rows"]
    assert isinstance(rows, dict)
    print(
        f"{a.clients} clients (think {a.think:g} s), a write every {a.write_interval:g} s, "
        f"{a.workers} workers, {os.cpu_count()} cores"
    )
    print(
        f"load: {sum(rows.values()):,} rows in {r['load_s']:.1f} s -> version {r['bulk_version']}"
    )
    print(f"every worker serves it {r['served_after_s']:.1f} s after the load ended")
    print(f"reads before: {_stats(r['reads_before_ms'], 'ms')}")  # type: ignore[arg-type]
    print(f"reads during: {_stats(r['reads_during_ms'], 'ms')}")  # type: ignore[arg-type]
    errors = r["errors"]
    assert isinstance(errors, list)
    print(
        f"writes answered: {r['writes_answered']}; refused REBUILDING: "
        f"{r['writes_refused_rebuilding']}; other errors: {len(errors)}"
    )
    for e in errors[:5]:
        print(f"  {e}")
    for line in [*r["server"][:10], *r["rebuilt"][:4]]:  # type: ignore[misc]
        print(f"  server: {line}")
    if a.json:
        during = r["reads_during_ms"]
        assert isinstance(during, list)
        summary = {k: v for k, v in r.items() if not k.startswith("reads_")}
        summary["reads_during"] = len(during)
        summary["read_p99_during_ms"] = float(np.percentile(during, 99)) if during else None
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
