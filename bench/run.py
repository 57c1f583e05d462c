"""kolmatch benchmarks: generation and loading, SQLite and Neo4j, batched against naive.

Each heavy step runs in its own process so its wall time and peak memory
(``ru_maxrss`` from ``os.wait4``) are its own. Results go to
``bench/results/<date>-<scale>.md`` and ``.json`` with the machine's facts.
Benchmarks report; they never fail on a number.

Usage: ``make bench SCALE=s`` (every step, then Neo4j started for its own step), or
``python bench/run.py --scale tiny --no-neo4j``. ``make bench SCALE=l`` takes the Neo4j route
(``--from-neo4j``): generate, the offline import, then features, plan and assign reading the
imported store, with no SQLite.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    """Run a command to completion; return its standard output."""
    proc = subprocess.run(
        argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:2])} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return proc.stdout


def _measured(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run Python code (which fills a dict ``out``) in a fresh process, so that its wall time
    and peak resident memory are its own; return ``out`` with ``seconds`` and ``peak_mib``."""
    wrapper = (
        "import json, resource, time\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "out['seconds'] = time.perf_counter() - t0\n"
        "out['peak_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps(out))\n"
    )
    out = _run([sys.executable, "-c", wrapper], env)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_dir_port(run_dir: Path) -> int:
    """The Bolt port of the server in ``run_dir``: the same at every step, since the feature
    cache names its entries by the store's URI, port included (a new port would make the plan
    and assign steps build the features again); a free one is chosen, and kept in
    ``run_dir/bench-port``, the first time or where the kept one is taken."""
    kept = run_dir / "bench-port"
    if kept.is_file():
        port = int(kept.read_text())
        with socket.socket() as sock:
            # as the server binds it (Java's listening sockets reuse addresses): a port whose
            # last server's connections are in TIME-WAIT is free for it, not taken
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                print(f"port {port} is taken: the server moves, the cache misses", flush=True)
    port = _free_port()
    run_dir.mkdir(parents=True, exist_ok=True)
    kept.write_text(f"{port}\n")
    return port


def _rows(folder: Path) -> dict[str, int]:
    return {p.stem: sum(1 for _ in p.open("rb")) - 1 for p in sorted(folder.glob("*.csv"))}


def bench_generate(scale: str, out: Path) -> dict[str, Any]:
    r = _measured(
        "from kolmatch.loaders.synthetic import generate_market\n"
        f"generate_market({scale!r}, 1, {str(out)!r})\n"
        "out = {}"
    )
    rows = _rows(out)
    r["rows"] = sum(rows.values())
    r["rows_per_s"] = r["rows"] / r["seconds"]
    r["bytes"] = sum(p.stat().st_size for p in out.glob("*.csv"))
    return r


def bench_sqlite(folder: Path, db: Path) -> dict[str, Any]:
    db.unlink(missing_ok=True)
    code = (
        "from kolmatch.graph.sqlite_store import SQLiteStore\n"
        "from kolmatch.loaders.load import load_folder\n"
        f"s = SQLiteStore({str(db)!r})\n"
        f"rep = load_folder({str(folder)!r}, s)\n"
        "c = s.counts()\n"
        "out = {'rows': rep.total, 'relationships': sum(v for k, v in c.items() if k.isupper())}"
    )
    first = _measured(code)
    again = _measured(code)
    first["rows_per_s"] = first["rows"] / first["seconds"]
    first["reload_seconds"] = again["seconds"]
    first["reload_same_counts"] = again["relationships"] == first["relationships"]
    return first


def bench_match(
    store: str,
    queries: int,
    cache: Path,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Feature build time (into the cache the later steps read: a cold build, the calibration
    measured too), then warm match latency over merchants drawn among the eligible ones (a
    merchant excluded for compliance is refused, not listed).

    ``store`` is a store URI (``open_store``: a SQLite file, or a Neo4j server whose
    credentials are in ``env``)."""
    for old in [*cache.glob("features-*"), *cache.glob("calibration-*")]:
        old.unlink()
    code = (
        "import numpy as np, time\n"
        "from kolmatch.graph.open import open_store\n"
        "from kolmatch.engine import cached_features\n"
        "from kolmatch.matching.eligibility import merchant_eligibility\n"
        "from kolmatch.matching.score import match_merchant\n"
        f"s = open_store({store!r})\n"
        "t = time.perf_counter(); f = cached_features(s, "
        f"{str(cache)!r}); build = time.perf_counter() - t\n"
        "rng = np.random.default_rng(0)\n"
        f"ids = rng.choice(f.merchant_ids[merchant_eligibility(f).ok], size={queries})\n"
        "match_merchant(f, str(ids[0]), top=20)\n"
        "lat = []\n"
        "for m in ids:\n"
        "    t = time.perf_counter(); match_merchant(f, str(m), top=20)\n"
        "    lat.append((time.perf_counter() - t) * 1000)\n"
        "p = np.percentile(lat, [50, 95, 99])\n"
        "out = {'feature_build_s': build, 'queries': len(lat), 'p50_ms': p[0], 'p95_ms': p[1],"
        " 'p99_ms': p[2]}"
    )
    return _measured(code, env)


@contextlib.contextmanager
def imported_server(run_dir: Path) -> Iterator[dict[str, str]]:
    """The server of the store the ``neo4j-import`` step made, started in ``run_dir`` on the
    folder's port (:func:`run_dir_port`) and stopped after; yields the environment that points
    kolmatch at it (``KOLMATCH_STORE``, ``NEO4J_PASSWORD``).

    Raises
    ------
    RuntimeError
        If ``run_dir`` holds no imported store.
    """
    if not (run_dir / "data" / "databases" / "neo4j").is_dir():
        raise RuntimeError(
            f"{run_dir}: no Neo4j store: run `bench/run.py --scale SCALE --from-neo4j` (generate "
            "and import), or `--only neo4j-import` where the market's files exist"
        )
    port = run_dir_port(run_dir)
    env = {**os.environ, "NEO4J_RUN_DIR": str(run_dir), "NEO4J_BOLT_PORT": str(port)}
    script = str(ROOT / "scripts" / "neo4j")
    try:
        _run([script, "start"], env=env)
        env |= {
            "KOLMATCH_STORE": f"bolt://127.0.0.1:{port}",
            "NEO4J_PASSWORD": (run_dir / "password").read_text().strip(),
        }
        yield env
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, check=False)


@contextlib.contextmanager
def _imported_server(run_dir: Path, rows: int) -> Iterator[dict[str, str]]:
    """:func:`imported_server`, its store checked to hold ``rows`` rows.

    Raises
    ------
    RuntimeError
        If ``run_dir`` holds no imported store, or the store does not hold ``rows`` rows (the
        import's count, or the market files' where the import ran earlier).
    """
    with imported_server(run_dir) as env:
        counts = json.loads(_run([sys.executable, "-m", "kolmatch.cli", "stats", "--json"], env))
        if sum(counts.values()) != rows:
            raise RuntimeError(
                f"{run_dir}: the store holds {sum(counts.values()):,} rows, the import wrote "
                f"{rows:,}: import it again"
            )
        yield env


def _server_apart(run_dir: Path) -> dict[str, Any]:
    """The server's memory, reported apart from kolmatch's: its configured heap and page cache
    and the Java process's peak resident memory since it started (read before it stops).

    Raises
    ------
    RuntimeError
        If the server is no longer running (it exits on running out of memory): its peak is
        gone with it.
    """
    pid = int((run_dir / "neo4j.pid").read_text())
    if not Path(f"/proc/{pid}").is_dir():
        raise RuntimeError(f"the Neo4j server of {run_dir} (pid {pid}) exited during the step")
    return {
        "server_peak_mib": _tree_peak_mib(pid),
        "server_heap": os.environ.get("NEO4J_HEAP", "2g"),
        "server_pagecache": os.environ.get("NEO4J_PAGECACHE", "2g"),
    }


def bench_neo4j_features(run_dir: Path, rows: int, queries: int, cache: Path) -> dict[str, Any]:
    """:func:`bench_match` from the Neo4j store the ``neo4j-import`` step made (every table
    read over Bolt), the server started for the step (:func:`_imported_server`); the server's
    memory reported apart (:func:`_server_apart`).

    Raises
    ------
    RuntimeError
        As :func:`_imported_server` and :func:`_server_apart`.
    """
    with _imported_server(run_dir, rows) as env:
        out = bench_match(env["KOLMATCH_STORE"], queries, cache, env)
        out |= _server_apart(run_dir)
    return out


#: The largest follow graph the PageRank step also hands to networkx and igraph: their graphs
#: are Python objects (networkx's took 4.9 GiB of peak at m's 8.8M edges, ~0.55 KiB an edge:
#: ~48 GiB at l's ~88M, over this machine's memory). Above it kolmatch's solver runs alone
#: and the report says so; the comparison is the one measured at m.
BASELINE_EDGES = 20_000_000


def bench_centrality(db: Path, baseline_edges: int = BASELINE_EDGES) -> dict[str, Any]:
    """PageRank on the user-talent follow graph: kolmatch's scipy power iteration against
    networkx's own ``pagerank`` and igraph's (PRPACK), same graph, same damping; times and
    the largest difference in values. Over ``baseline_edges`` edges, kolmatch's alone
    (``baselines`` false in the result)."""
    code = (
        "import time, numpy as np, scipy.sparse as sp, networkx as nx, igraph as ig\n"
        "from kolmatch.graph.sqlite_store import SQLiteStore\n"
        "from kolmatch.graph.projection import edge_list, node_table\n"
        "from kolmatch.matching.centrality import bipartite_pagerank\n"
        f"s = SQLiteStore({str(db)!r})\n"
        "u, t = node_table(s, 'User', ()), node_table(s, 'Talent', ())\n"
        "e = edge_list(s, 'FOLLOWS', u, t, ())\n"
        "U, T = len(u), len(t)\n"
        "m = sp.csr_matrix((np.ones(len(e)), (e.src, e.dst)), shape=(U, T))\n"
        "m.data[:] = 1.0\n"
        "t0 = time.perf_counter(); xu, xt = bipartite_pagerank(m)\n"
        "ours = np.concatenate([xu, xt]); t_ours = time.perf_counter() - t0\n"
        "out = {'nodes': U + T, 'edges': len(e), 'kolmatch_s': t_ours, 'baselines': False,\n"
        f"  'baseline_edges': {int(baseline_edges)}}}\n"
    )
    baselines = (
        "c = m.tocoo(); src, dst = c.row, c.col + U\n"
        "t0 = time.perf_counter(); g = nx.Graph(); g.add_nodes_from(range(U + T))\n"
        "g.add_edges_from(zip(src.tolist(), dst.tolist()))\n"
        "t_nx_build = time.perf_counter() - t0\n"
        "t0 = time.perf_counter(); pr = nx.pagerank(g, alpha=0.85, tol=1e-6)\n"
        "t_nx = time.perf_counter() - t0\n"
        "theirs = np.array([pr[i] for i in range(U + T)])\n"
        "del g, pr\n"
        "t0 = time.perf_counter(); h = ig.Graph(n=U + T, edges=np.stack([src, dst], 1).tolist())\n"
        "t_ig_build = time.perf_counter() - t0\n"
        "t0 = time.perf_counter(); ip = np.array(h.pagerank(damping=0.85))\n"
        "t_ig = time.perf_counter() - t0\n"
        "out.update({'baselines': True,\n"
        "  'networkx_s': t_nx, 'networkx_build_s': t_nx_build,\n"
        "  'igraph_s': t_ig, 'igraph_build_s': t_ig_build,\n"
        "  'max_diff_networkx': float(np.abs(ours - theirs).max()),\n"
        "  'max_diff_igraph': float(np.abs(ours - ip).max())})\n"
    )
    guard = f"if len(e) <= {int(baseline_edges)}:\n"
    return _measured(code + guard + textwrap.indent(baselines, "    "))


def bench_plan(
    store: str,
    cache: Path,
    merchants: int,
    full_limit: float,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Talent matrix: kolmatch's solver against plain milp and against follower count.

    For ``merchants`` sampled merchants at their own budgets (at least five cheap talents'
    fees, for tiny markets whose budgets buy nobody): the default solver (greedy,
    column generation, reduced-cost fixing, milp), plain ``milp`` on every candidate with
    no greedy (stopped at ``full_limit`` seconds), and the follower-count baseline; medians
    of time, certified gap, objective and unique target reach. Warm: one plan runs untimed
    first, as the match step's first query does. ``store`` is a store URI (``open_store``; a
    Neo4j server's credentials in ``env``); the features come from ``cache`` where the match
    step put them.
    """
    code = (
        "import numpy as np, time\n"
        "from kolmatch.graph.open import open_store\n"
        "from kolmatch.engine import cached_features\n"
        "from kolmatch.matching.plan import (follower_count_plan, plan_talent_matrix,\n"
        "    unique_target_reach)\n"
        f"f = cached_features(open_store({store!r}), {str(cache)!r})\n"
        "rng = np.random.default_rng(0)\n"
        "from kolmatch.matching.eligibility import merchant_eligibility\n"
        "# merchants compliance refuses are not planned (NotEligible): not sampled\n"
        "ok = np.nonzero(np.isfinite(f.merchant_budget) & merchant_eligibility(f).ok)[0]\n"
        f"ms = [str(f.merchant_ids[i]) for i in np.sort(rng.choice(ok, min({merchants}, "
        "len(ok)), replace=False))]\n"
        "# the merchant's own budget, at least five cheap talents' worth (tiny markets)\n"
        "budget = lambda m: max(float(f.merchant_budget[f.merchant_row(m)]),\n"
        "    5 * float(np.nanpercentile(f.talent_fee, 10)))\n"
        "# warm, as the match step is: one plan untimed first (a process's first reads of the\n"
        "# memory-mapped cache page it in: 2.5 s of the first plan's 3.5 s at l)\n"
        "plan_talent_matrix(f, ms[0], budget=budget(ms[0]), min_roi=0.0)\n"
        "rows = []\n"
        "for m in ms:\n"
        "    b = budget(m)\n"
        "    # the solvers' speed at the merchant's budget: no return floor (min_roi=0), so a\n"
        "    # market whose talents all return under 1x still gives a plan to time\n"
        "    t = time.perf_counter(); pl = plan_talent_matrix(f, m, budget=b, min_roi=0.0)\n"
        "    dt = time.perf_counter() - t\n"
        "    t = time.perf_counter()\n"
        "    full = plan_talent_matrix(f, m, budget=b, method='full', min_roi=0.0, "
        f"time_limit={full_limit})\n"
        "    dt_full = time.perf_counter() - t\n"
        "    chosen = np.array([f.talent_row(x.talent) for x in pl.talents])\n"
        "    naive = follower_count_plan(f, m, budget=b)\n"
        "    rows.append(dict(merchant=m, seconds=dt, solve_s=pl.seconds, gap=pl.gap,\n"
        "        objective=pl.objective, method=pl.method, candidates=pl.candidates,\n"
        "        users=pl.sampled_users, full_seconds=dt_full, full_gap=full.gap,\n"
        "        full_objective=full.objective,\n"
        "        reach=unique_target_reach(f, m, chosen),\n"
        "        follower_reach=unique_target_reach(f, m, naive)))\n"
        "med = lambda k: float(np.median([r[k] for r in rows]))\n"
        "out = {'merchants': len(rows), 'rows': rows,\n"
        "  'median_seconds': med('seconds'), 'median_solve_s': med('solve_s'),\n"
        "  'max_gap': max(r['gap'] for r in rows),\n"
        "  'median_full_seconds': med('full_seconds'),\n"
        "  'max_full_gap': max(r['full_gap'] for r in rows),\n"
        "  'objective_vs_full': float(np.median([r['objective'] / r['full_objective']\n"
        "      for r in rows if r['full_objective'] > 0])),\n"
        "  'reach_vs_followers': sum(r['reach'] for r in rows) /\n"
        "      max(sum(r['follower_reach'] for r in rows), 1),\n"
        "  'candidates': med('candidates'), 'users': med('users')}"
    )
    return _measured(code, env)


def bench_assign(store: str, cache: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Market-wide assignment: the default method and the stable option (``store`` and
    ``env`` as for :func:`bench_plan`)."""
    code = (
        "from kolmatch.graph.open import open_store\n"
        "from kolmatch.engine import cached_features\n"
        "from kolmatch.matching.market import assign_market\n"
        f"f = cached_features(open_store({store!r}), {str(cache)!r})\n"
        "out = {}\n"
        "for method in ('auto', 'stable'):\n"
        "    a = assign_market(f, method=method)\n"
        "    out[method] = dict(method=a.method, build_s=a.build_seconds, solve_s=a.seconds,\n"
        "        gap=a.gap, objective=a.objective, bound=a.bound, pairs=len(a.pairs),\n"
        "        candidates=a.candidates, merchants_served=a.merchants_served,\n"
        "        merchants=len(f.merchant_ids), blocking_pairs=a.blocking_pairs)"
    )
    return _measured(code, env)


#: Seconds of load before measuring: each worker's first requests touch cold memory.
API_WARMUP_S = 5.0
API_LOAD = """
import asyncio, json, os, random, statistics, sys, time
import httpx

url, key = sys.argv[1], sys.argv[2]
seconds, clients, think = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
merchants = json.loads(sys.argv[6])
warmup = float(sys.argv[7])
Q = ('query($m: ID!) { merchant(id: $m) { matches(first: 20) { edges { node { rank score '
     'talent { id name tier } } } } } }')

async def client(i, lat, server, when, errors, stop, start):
    rnd = random.Random(i)
    if think:  # arrivals spread out, not 50 requests in the same millisecond
        await asyncio.sleep(rnd.uniform(0, think))
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": "Bearer " + key}) as c:
        while time.perf_counter() < stop:
            m = rnd.choice(merchants)
            t = time.perf_counter()
            try:
                r = await c.post(url, json={"query": Q, "variables": {"m": m}})
                ok = r.status_code == 200 and "errors" not in r.json()
                timing = r.headers.get("server-timing", "")
            except httpx.HTTPError:
                ok, timing = False, ""
            errors[0] += not ok
            if t - start >= warmup:  # the warm-up's requests are not measured
                lat.append((time.perf_counter() - t) * 1000)
                when.append((round(lat[-1]), round(t - start, 1)))
                if "dur=" in timing:
                    server.append(float(timing.split("dur=")[1]))
            if think:
                await asyncio.sleep(rnd.expovariate(1 / think))

async def main():
    lat, server, when, errors = [], [], [], [0]
    start = time.perf_counter()
    stop = start + warmup + seconds
    await asyncio.gather(
        *(client(i, lat, server, when, errors, stop, start) for i in range(clients)))
    lat.sort()
    server.sort()
    q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else None
    print(json.dumps({"requests": len(lat), "errors": errors[0], "rps": len(lat) / seconds,
                      "p50_ms": q(lat, 0.5), "p95_ms": q(lat, 0.95), "p99_ms": q(lat, 0.99),
                      "server_p50_ms": q(server, 0.5), "server_p99_ms": q(server, 0.99),
                      "slowest_ms_at_s": sorted(when, reverse=True)[:10]}))

asyncio.run(main())
"""


def _tree(pid: int) -> set[int]:
    """A process and all its descendants."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {pid}, True
    while grew:
        kids = {c for c, pp in parent.items() if pp in tree} - tree
        tree |= kids
        grew = bool(kids)
    return tree


def _peak_mib(pid: int) -> float:
    """A live process's peak resident memory so far (VmHWM), 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    hwm = [ln for ln in status.splitlines() if ln.startswith("VmHWM")]
    return int(hwm[0].split()[1]) / 1024 if hwm else 0.0


def _tree_peak_mib(pid: int) -> float:
    """Peak resident memory of a process and all its descendants (uvicorn's workers), summed."""
    return sum(_peak_mib(p) for p in _tree(pid))


def _run_watched(
    argv: list[str], env: dict[str, str], folder: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, float]]:
    """Run a command to completion, polling its processes' peak memory twice a second and the
    size of ``folder`` every 5 s.

    Returns
    -------
    (result, peaks)
        The command's result (its output captured) and, in MiB, the largest peak of one
        process among Neo4j's (``neo4j``: Java, the importer and the server) and among
        kolmatch's (``kolmatch``: its CLI, Python), and the most ``folder`` held on disk
        (``disk_mib``: at the import, its CSVs and the store at once).
    """
    peaks = {"kolmatch": 0.0, "neo4j": 0.0, "disk_mib": 0.0}
    polls = 0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True)
        while True:
            for p in _tree(proc.pid):
                try:
                    comm = Path(f"/proc/{p}/comm").read_text().strip()
                except OSError:
                    continue
                kolmatch = comm.startswith(("python", "kolmatch"))  # the CLI's script, or -m
                group = "neo4j" if comm == "java" else "kolmatch" if kolmatch else None
                if group:
                    peaks[group] = max(peaks[group], _peak_mib(p))
            if polls % 10 == 0:
                peaks["disk_mib"] = max(peaks["disk_mib"], _size(folder) / 2**20)
            polls += 1
            if proc.poll() is not None:
                break
            time.sleep(0.5)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(argv, proc.returncode, out.read(), err.read())
    return done, peaks


def _merchant_ids(db: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute("SELECT id FROM n_merchant ORDER BY id")]


def bench_api(db: Path, cache: Path, clients: int, seconds: float, workers: int) -> dict[str, Any]:
    """Concurrent clients against ``kolmatch serve`` over HTTP (loopback), two ways.

    ``paced``: each client asks for a merchant's top-20 matches, then waits an exponential
    think time of 1 s on average (an open load of about ``clients`` requests per second).
    ``saturated``: the same clients with no think time (closed loop): the server's throughput,
    where latency is mostly queueing. Also the server's peak resident memory.
    """
    import urllib.request

    port = _free_port()
    env = {
        **os.environ,
        "KOLMATCH_API_KEYS": "bench-key=internal",
        "KOLMATCH_CACHE": str(cache),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kolmatch.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--store",
            f"sqlite:///{db}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("kolmatch serve did not start") from None
                time.sleep(1)
        merchants = json.dumps(_merchant_ids(db))
        out: dict[str, Any] = {"clients": clients, "seconds": seconds, "workers": workers}
        for name, think in (("paced", 1.0), ("saturated", 0.0)):
            got = _run(
                [
                    sys.executable,
                    "-c",
                    API_LOAD,
                    f"http://127.0.0.1:{port}/graphql",
                    "bench-key",
                    str(seconds),
                    str(clients),
                    str(think),
                    merchants,
                    str(API_WARMUP_S),
                ]
            )
            out[name] = json.loads(got.strip().splitlines()[-1])
        out["server_peak_mib"] = _tree_peak_mib(server.pid)
        return out
    finally:
        server.terminate()
        server.wait(timeout=30)


NEO4J_OPEN = (
    "import os\n"
    "from kolmatch.graph.neo4j_store import Neo4jStore\n"
    "s = Neo4jStore(os.environ['KOLMATCH_NEO4J_URI'], "
    "(os.environ.get('NEO4J_USER', 'neo4j'), os.environ['NEO4J_PASSWORD']))\n"
)


def bench_neo4j(folder: Path, reload: bool) -> dict[str, Any]:
    """Load the market into an emptied Neo4j with ``load_folder``, timing its phases; optionally
    load it again.

    Phases (``LoadReport.seconds``): validation (the whole folder, before anything is written),
    node batches, relationship batches; "sustained" is the relationships written over the last.
    """
    _measured(NEO4J_OPEN + "s.clear()\nout = {}")
    code = (
        NEO4J_OPEN + "from kolmatch.loaders.load import load_folder\n"
        f"rep = load_folder({str(folder)!r}, s)\n"
        "c = s.counts()\n"
        "rels = sum(v for k, v in c.items() if k.isupper())\n"
        "t = rep.seconds\n"
        "out = {'rows': rep.total, 'relationships': rels, 'nodes': rep.total - rels,"
        " 'counts': c, 'validate_seconds': t['validate'], 'node_seconds': t['nodes'],"
        " 'rel_seconds': t['relationships'], 'rel_per_s_sustained': rels / t['relationships'],"
        " 'node_per_s': (rep.total - rels) / t['nodes'], 'version': s.version()}"
    )
    first = _measured(code)
    first["rows_per_s"] = first["rows"] / first["seconds"]
    first["relationships_per_s"] = first["relationships"] / first["seconds"]
    if reload:  # everything MERGEs now, one batch at a time
        again = _measured(code)
        first["reload_seconds"] = again["seconds"]
        first["reload_same_counts"] = again["counts"] == first["counts"]
    return first


def bench_neo4j_import(folder: Path, run_dir: Path) -> dict[str, Any]:
    """First load with the offline importer (``scripts/neo4j import``) into a server of its own.

    The server lives in ``run_dir`` on a free port (the benchmark's other Neo4j step is left
    alone); its database is replaced. Times come from the script's own ``timings:`` line and
    the importer's log; "sustained" is the relationships over the importer's run.
    """
    port = _free_port()
    env = {
        **os.environ,
        "NEO4J_RUN_DIR": str(run_dir),
        "NEO4J_BOLT_PORT": str(port),
        "NEO4J_IMPORT_MEMORY": os.environ.get("NEO4J_IMPORT_MEMORY", "4g"),
    }
    script = str(ROOT / "scripts" / "neo4j")
    try:
        out, peaks = _run_watched([script, "import", str(folder), "--replace"], env, run_dir)
        if out.returncode != 0:
            raise RuntimeError(f"scripts/neo4j import failed:\n{out.stderr[-3000:]}")
        password = (run_dir / "password").read_text().strip()
        counts = json.loads(
            _run(
                [sys.executable, "-m", "kolmatch.cli", "stats", "--json"],
                env={
                    **env,
                    "KOLMATCH_STORE": f"bolt://127.0.0.1:{port}",
                    "NEO4J_PASSWORD": password,
                },
            )
        )
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, check=False)
    times = re.search(
        r"import-files and stop ([\d.]+)s, importer ([\d.]+)s, start ([\d.]+)s, "
        r"schema ([\d.]+)s, total ([\d.]+)s",
        out.stderr,
    )
    assert times is not None, out.stderr
    files_s, importer_s, start_s, schema_s, total_s = map(float, times.groups())
    log = (run_dir / "logs" / "import.log").read_text()
    done = re.search(r"IMPORT DONE in (?:(\d+)m )?(\d+)s (\d+)ms", log)
    own = (
        (int(done.group(1) or 0) * 60 + int(done.group(2)) + int(done.group(3)) / 1000)
        if done
        else None
    )
    rels = sum(v for k, v in counts.items() if k.isupper())
    return {
        "rows": sum(counts.values()),
        "relationships": rels,
        "counts": counts,
        "files_and_stop_seconds": files_s,
        "importer_seconds": importer_s,
        "importer_own_seconds": own,
        "start_seconds": start_s,
        "schema_seconds": schema_s,
        "total_seconds": total_s,
        "rel_per_s_sustained": rels / importer_s,
        "relationships_per_s": rels / total_s,
        "kolmatch_peak_mib": peaks["kolmatch"],
        "neo4j_peak_mib": peaks["neo4j"],
        "disk_peak_mib": peaks["disk_mib"],
    }


def bench_naive(folder: Path, n: int) -> dict[str, Any]:
    """The same n FOLLOWS rows, created by one-row-per-transaction MERGE and by batched UNWIND."""
    with (folder / "follows.csv").open() as fh:
        sample = [r for _, r in zip(range(n), csv.DictReader(fh), strict=False)]
    rows = [{"src": r["src"], "dst": r["dst"], "since": r["since"] or None} for r in sample]
    Path("/tmp/kolmatch-naive.json").write_text(json.dumps(rows))
    code = (
        NEO4J_OPEN + "import json, time\n"
        "rows = json.load(open('/tmp/kolmatch-naive.json'))\n"
        "drop = 'UNWIND $rows AS row MATCH (:User {id: row.src})-[r:FOLLOWS]->"
        "(:Talent {id: row.dst}) DELETE r'\n"
        "single = ('MATCH (s:User {id: $src}) MATCH (d:Talent {id: $dst}) '\n"
        "          'MERGE (s)-[r:FOLLOWS]->(d) SET r.since = coalesce($since, r.since)')\n"
        "d = s._driver\n"
        "d.execute_query(drop, rows=rows, database_=s.database)\n"
        "t = time.perf_counter()\n"
        "for r in rows:\n"
        "    d.execute_query(single, r, database_=s.database)\n"
        "naive = time.perf_counter() - t\n"
        "d.execute_query(drop, rows=rows, database_=s.database)\n"
        "t = time.perf_counter()\n"
        "from kolmatch.graph.store import RelBatch\n"
        "from kolmatch.loaders.load import BATCH_ROWS\n"
        "s.write(RelBatch.of('FOLLOWS', 'User', rows[i:i + BATCH_ROWS])\n"
        "        for i in range(0, len(rows), BATCH_ROWS))\n"
        "batched = time.perf_counter() - t\n"
        "out = {'rows': len(rows), 'naive_rows_per_s': len(rows) / naive,"
        " 'batched_rows_per_s': len(rows) / batched, 'speedup': naive / batched}"
    )
    return _measured(code)


def machine() -> dict[str, Any]:
    import importlib.metadata as md

    mem = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    vers = {p: md.version(p) for p in ("numpy", "scipy", "networkx", "neo4j", "neo4j-rust-ext")}
    return {
        "cores": os.cpu_count(),
        "memory_mib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": vers,
    }


#: The steps in the order a run takes them (the on-disk table's rows follow it).
STEP_ORDER = (
    "generate",
    "sqlite",
    "match",
    "centrality",
    "neo4j-import",
    "neo4j-features",
    "plan",
    "assign",
    "api",
    "neo4j",
)


def _md(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        f"# kolmatch benchmark: scale {res['scale']}, {res['date']}",
        "",
        f"{m['cores']} cores, {m['memory_mib'] // 1024} GiB, Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        "",
    ]
    if res.get("route") == "neo4j":
        lines += [
            "Route: Neo4j (`bench/run.py --from-neo4j`, what `make bench SCALE=l` runs): every "
            "step after generate reads the store Neo4j's offline importer made; no SQLite.",
            "",
        ]
    if res.get("models"):
        steps = ", ".join(f"{k} {v}" for k, v in sorted(res["models"].items()))
        lines += [
            f"Generative model of the market each step ran on: {steps}; any step not listed ran "
            "on model 1 (before the version was recorded).",
            "",
        ]
    lines += [
        "| step | rows | seconds | rows/s | peak MiB | notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    if "generate" in res:
        g = res["generate"]
        lines.append(
            f"| generate | {g['rows']:,} | {g['seconds']:.1f} | {g['rows_per_s']:,.0f} | "
            f"{g['peak_mib']:,.0f} | {g['bytes'] / 2**20:,.0f} MiB of CSV |"
        )
    if "sqlite" in res:
        s = res["sqlite"]
        lines.append(
            f"| load SQLite | {s['rows']:,} | {s['seconds']:.1f} | {s['rows_per_s']:,.0f} | "
            f"{s['peak_mib']:,.0f} | re-load {s['reload_seconds']:.1f}s, same counts: "
            f"{s['reload_same_counts']} |"
        )
    if "neo4j_import" in res:
        n = res["neo4j_import"]
        own = (
            f" (its own report: {n['importer_own_seconds']:.0f}s)"
            if n.get("importer_own_seconds")
            else ""
        )
        lines.append(
            f"| first load into Neo4j, offline importer (scripts/neo4j import) | {n['rows']:,} | "
            f"{n['total_seconds']:.1f} | {n['rows'] / n['total_seconds']:,.0f} | "
            f"{format(n['kolmatch_peak_mib'], ',.0f') if 'kolmatch_peak_mib' in n else ''} | "
            f"validate and write importer CSVs (and stop) {n['files_and_stop_seconds']:.0f}s, "
            f"importer {n['importer_seconds']:.0f}s{own} "
            f"({n['rel_per_s_sustained']:,.0f} relationships/s sustained), start "
            f"{n['start_seconds']:.0f}s, constraints {n['schema_seconds']:.0f}s; "
            f"{n['relationships_per_s']:,.0f} relationships/s overall"
            + (
                f"; peak of kolmatch's import-files {n['kolmatch_peak_mib']:,.0f} MiB, the larger "
                f"of Neo4j's importer's and server's {n['neo4j_peak_mib']:,.0f} MiB; the run "
                f"folder held at most {n['disk_peak_mib'] / 1024:,.1f} GiB on disk (the "
                "importer's CSVs and the store at once) |"
                if "kolmatch_peak_mib" in n
                else " |"
            )
        )
    if "match" in res:
        q = res["match"]
        lines.append(
            f"| features + match queries | {q['queries']:,} queries | "
            f"{q['feature_build_s']:.1f} (build) | | {q['peak_mib']:,.0f} | warm match "
            f"p50 {q['p50_ms']:.1f} ms, p95 {q['p95_ms']:.1f} ms, p99 {q['p99_ms']:.1f} ms |"
        )
    if "neo4j_features" in res:
        q = res["neo4j_features"]
        lines.append(
            f"| features + match queries, read from Neo4j (imported store) | "
            f"{q['queries']:,} queries | {q['feature_build_s']:.1f} (build) | | "
            f"{q['peak_mib']:,.0f} | warm match p50 {q['p50_ms']:.1f} ms, p95 "
            f"{q['p95_ms']:.1f} ms, p99 {q['p99_ms']:.1f} ms{_server_note(q)} |"
        )
    if "centrality" in res:
        c = res["centrality"]
        if c.get("baselines", True):
            notes = (
                f"networkx {c['networkx_s']:.2f}s "
                f"(+{c['networkx_build_s']:.1f}s to build its graph, "
                f"{c['networkx_s'] / c['kolmatch_s']:.1f}x), igraph "
                f"{c['igraph_s']:.2f}s (+{c['igraph_build_s']:.1f}s); largest difference "
                f"{c['max_diff_networkx']:.1e} vs networkx, {c['max_diff_igraph']:.1e} vs igraph"
            )
        else:
            notes = (
                f"kolmatch alone: networkx and igraph are not run over "
                f"{c['baseline_edges']:,} edges (their Python graphs would not fit in memory; "
                "see the m report for the comparison)"
            )
        lines.append(
            f"| PageRank, follow graph | {c['edges']:,} edges | {c['kolmatch_s']:.2f} | | "
            f"{c['peak_mib']:,.0f} | {notes} |"
        )
    if "plan" in res:
        q = res["plan"]
        lines.append(
            f"| talent matrix ({q['merchants']} merchants){_read_from(q)} | "
            f"{q['candidates']:,.0f} candidates x "
            f"{q['users']:,.0f} users | {q['median_seconds']:.2f} (median) | | "
            f"{q['peak_mib']:,.0f} | solver {q['median_solve_s']:.2f}s, gap at most "
            f"{q['max_gap']:.2%}; plain milp {q['median_full_seconds']:.1f}s (gap at most "
            f"{q['max_full_gap']:.2%}), objective {q['objective_vs_full']:.3f}x plain milp's; "
            f"unique reach {q['reach_vs_followers']:.2f}x follower count's{_server_note(q)} |"
        )
    if "assign" in res:
        for name, q in res["assign"].items():
            if not isinstance(q, dict):
                continue
            gap = "n/a" if q["gap"] != q["gap"] else f"{q['gap']:.2%}"
            lines.append(
                f"| assign ({name}: {q['method']}){_read_from(res['assign'])} | "
                f"{q['candidates']:,} candidate pairs | "
                f"{q['build_s'] + q['solve_s']:.1f} | | {res['assign']['peak_mib']:,.0f} | "
                f"build {q['build_s']:.1f}s, solve {q['solve_s']:.1f}s, gap {gap}, "
                f"{q['pairs']:,} pairs to {q['merchants_served']:,} of {q['merchants']:,} "
                f"merchants, {q['blocking_pairs']:,} blocking pairs{_server_note(res['assign'])} |"
            )
    if "api" in res:
        q = res["api"]
        for name in ("paced", "saturated"):
            r = q[name]
            lines.append(
                f"| API {name}: {q['clients']} clients, {q['workers']} workers, "
                f"{q['seconds']:.0f}s | "
                f"{r['requests']:,} requests | | {r['rps']:,.0f} req/s | "
                f"{q['server_peak_mib']:,.0f} (server) | match lists p50 {r['p50_ms']:.0f} ms, "
                f"p95 {r['p95_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, {r['errors']} errors"
                + (
                    f"; server's own time p50 {r['server_p50_ms']:.1f} ms, "
                    f"p99 {r['server_p99_ms']:.1f} ms |"
                    if r.get("server_p50_ms") is not None
                    else " |"
                )
            )
    if "neo4j" in res:
        n = res["neo4j"]
        again = (
            f"; re-load (all MERGE) {n['reload_seconds']:.1f}s, same counts: "
            f"{n['reload_same_counts']}"
            if "reload_seconds" in n
            else "; re-load not run at this scale"
        )
        phases = (
            f"validate {n['validate_seconds']:.0f}s, nodes {n['node_seconds']:.0f}s "
            f"({n['node_per_s']:,.0f}/s), relationships {n['rel_seconds']:.0f}s "
            f"({n['rel_per_s_sustained']:,.0f}/s sustained); "
            if "validate_seconds" in n
            else ""
        )
        lines.append(
            f"| load Neo4j (batched) | {n['rows']:,} | {n['seconds']:.1f} | "
            f"{n['rows_per_s']:,.0f} | {n['peak_mib']:,.0f} | {phases}"
            f"{n['relationships_per_s']:,.0f} relationships/s overall{again} |"
        )
    if "naive" in res:
        v = res["naive"]
        lines.append(
            f"| FOLLOWS sample: naive vs batched | {v['rows']:,} | | "
            f"{v['naive_rows_per_s']:,.0f} vs {v['batched_rows_per_s']:,.0f} | | "
            f"batched is {v['speedup']:.1f}x faster |"
        )
    if res.get("disk"):
        parts = sorted({k for d in res["disk"].values() for k in d})
        lines += [
            "",
            "On disk after each step (GiB allocated; the market's files stay: they are the "
            "input"
            + (
                "; `scripts/neo4j import` deletes the importer's CSVs once imported, and its row "
                "says the most the import held at once):"
                if "neo4j-import" in res["disk"]
                else "):"
            ),
            "",
            "| after | " + " | ".join(f"`{k}`" for k in parts) + " | total |",
            "|---|" + "---:|" * (len(parts) + 1),
        ]
        # in the order the steps run (a step measured again alone was added last)
        at = {step: i for i, step in enumerate(STEP_ORDER)}
        for step, d in sorted(res["disk"].items(), key=lambda kv: at.get(kv[0], len(at))):
            cells = [f"{d[k] / 2**30:,.2f}" if k in d else "" for k in parts]
            lines.append(
                f"| {step} | " + " | ".join(cells) + f" | {sum(d.values()) / 2**30:,.2f} |"
            )
    return "\n".join(lines) + "\n"


def _read_from(q: dict[str, Any]) -> str:
    """How a step's row names the store it read, where that is not SQLite."""
    return ", read from Neo4j (imported store)" if q.get("store") == "neo4j" else ""


def _server_note(q: dict[str, Any]) -> str:
    """The Neo4j server's memory, reported apart from the step's own (empty without one)."""
    if "server_peak_mib" not in q:
        return ""
    return (
        f"; the Neo4j server, measured separately: heap {q['server_heap']}, page cache "
        f"{q['server_pagecache']}, peak {q['server_peak_mib']:,.0f} MiB"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--scale", default="s", choices=["tiny", "s", "m", "l"], help="the market's size"
    )
    p.add_argument(
        "--work",
        type=Path,
        default=ROOT / ".kolmatch" / "bench",
        help="where the market, the stores and the caches go (kept between runs)",
    )
    p.add_argument(
        "--results", type=Path, default=ROOT / "bench" / "results", help="where reports go"
    )
    p.add_argument("--no-neo4j", action="store_true", help="skip the Neo4j steps")
    p.add_argument("--naive-rows", type=int, default=5_000)
    p.add_argument("--queries", type=int, default=200, help="match queries to time")
    p.add_argument("--plans", type=int, default=5, help="merchants to plan for")
    p.add_argument("--full-limit", type=float, default=30.0, help="plain milp seconds")
    p.add_argument("--clients", type=int, default=50, help="concurrent API clients")
    p.add_argument("--api-seconds", type=float, default=20.0, help="seconds per API load run")
    p.add_argument("--api-workers", type=int, default=os.cpu_count() or 1, help="server processes")
    p.add_argument(
        "--only",
        choices=[
            "generate",
            "match",
            "centrality",
            "plan",
            "assign",
            "api",
            "neo4j",
            "neo4j-import",
            "neo4j-features",
        ],
        action="append",
        help="measure only this step (repeatable) and update today's report of this scale "
        "in place (implies --reuse). generate: the market's files again (seed 1, replaced); "
        "neo4j: the transactional load (a server from "
        "KOLMATCH_NEO4J_URI, as `make bench` starts); neo4j-import: the first load with the "
        "offline importer into WORK/neo4j-import; neo4j-features: features and match read "
        "from that store (with --from-neo4j, match means this). The servers the bench starts "
        "take NEO4J_HEAP, NEO4J_PAGECACHE, NEO4J_IMPORT_HEAP and NEO4J_IMPORT_MEMORY",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="skip generate (and the SQLite load): WORK/market-SCALE (and WORK/SCALE.db) "
        "exist from a run; today's report keeps the steps this run does not take",
    )
    p.add_argument(
        "--from-neo4j",
        action="store_true",
        help="the Neo4j route (what `make bench SCALE=l` runs): generate, first load with the "
        "offline importer, then features and match, plan and assign reading that store; no "
        "SQLite, no transactional load, no centrality or API step (they read SQLite). With "
        "--reuse the market is not generated again, but it is imported again",
    )
    a = p.parse_args()
    if a.from_neo4j and a.only:  # the match step of the Neo4j route reads the imported store
        a.only = ["neo4j-features" if step == "match" else step for step in a.only]
        sqlite_only = sorted({"centrality", "api", "neo4j"} & set(a.only))
        if sqlite_only:
            steps = ", ".join(sqlite_only)
            p.error(f"--only {steps}: reads SQLite or loads Neo4j; run it without --from-neo4j")
    market = a.work / f"market-{a.scale}"
    a.work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"scale": a.scale, "date": date.today().isoformat(), "machine": machine()}
    stem = a.results / f"{res['date']}-{a.scale}"
    kept = a.only or (a.reuse and a.from_neo4j)  # today's report updated, not started again
    if kept and stem.with_suffix(".json").exists():
        res = {**json.loads(stem.with_suffix(".json").read_text()), "machine": machine()}
    if a.only:
        _run_steps(a, res, set(a.only))
        _write(res, stem)
        return
    if not a.reuse:
        _run_steps(a, res, {"generate"})
    if a.from_neo4j:
        res["route"] = "neo4j"
        _write(res, stem)  # each step's figures kept as soon as it ends: l takes hours
        for step in ("neo4j-import", "neo4j-features", "plan", "assign"):
            _run_steps(a, res, {step})
            _write(res, stem)
        return
    if not a.reuse:
        print("load SQLite ...", flush=True)
        res["sqlite"] = bench_sqlite(market, a.work / f"{a.scale}.db")
        res["models"]["sqlite"] = res["models"]["generate"]
    _run_steps(a, res, {"match", "centrality", "plan", "assign", "api"})
    if not a.no_neo4j:
        _run_steps(a, res, {"neo4j"})
    _write(res, stem)


def _market_model(market: Path) -> int | None:
    """The generative model version of a generated market (truth.json), 1 before it was kept."""
    meta = market.with_name(market.name + "-truth") / "truth.json"
    if not meta.is_file():
        return None
    return int(json.loads(meta.read_text()).get("model_version", 1))


def _run_steps(a: argparse.Namespace, res: dict[str, Any], steps: set[str]) -> None:
    """Generate and the steps after it (the SQLite load apart), in order; each result goes
    into ``res``, and the footprint on disk after it into ``res["disk"]``.

    With ``a.from_neo4j`` the plan and assign steps read the store the ``neo4j-import`` step
    made (a server started for each step, its memory reported apart), from the features the
    ``neo4j-features`` step cached; otherwise they read the SQLite file of the ``sqlite`` step.
    """
    market = a.work / f"market-{a.scale}"
    if "generate" in steps:
        print(f"generate {a.scale} ...", flush=True)
        res["generate"] = bench_generate(a.scale, market)
        res.setdefault("disk", {})["generate"] = _footprint(a.work, a.scale)
    model = _market_model(market)
    if model is not None:
        res.setdefault("models", {}).update(dict.fromkeys(steps, model))
    db = a.work / f"{a.scale}.db"
    imported = a.work / "neo4j-import"
    cache = a.work / "cache"
    if not a.from_neo4j:
        cache.mkdir(parents=True, exist_ok=True)

    def done(step: str) -> None:
        res.setdefault("disk", {})[step] = _footprint(a.work, a.scale)

    def imported_rows() -> int:
        """What the imported store must hold: the import's count, or (imported by an earlier
        run) the market's files'."""
        rows = res.get("neo4j_import", {}).get("rows")
        return int(rows) if rows is not None else sum(_rows(market).values())

    def read_by(bench: Callable[[str, Path, dict[str, str] | None], Any]) -> Any:
        if not a.from_neo4j:
            return bench("sqlite:///" + str(db), cache, None)
        with _imported_server(imported, imported_rows()) as env:
            out = bench(env["KOLMATCH_STORE"], a.work / "cache-neo4j", env)
            return {**out, **_server_apart(imported), "store": "neo4j"}

    if "match" in steps:
        print("features and match latency ...", flush=True)
        res["match"] = bench_match("sqlite:///" + str(db), a.queries, cache)
        done("match")
    if "centrality" in steps:
        print("centrality ...", flush=True)
        res["centrality"] = bench_centrality(db)
        done("centrality")
    if "neo4j-import" in steps:
        print("first load with Neo4j's offline importer ...", flush=True)
        res["neo4j_import"] = bench_neo4j_import(market, imported)
        done("neo4j-import")
    if "neo4j-features" in steps:
        print("features read from the imported Neo4j store ...", flush=True)
        res["neo4j_features"] = bench_neo4j_features(
            imported, imported_rows(), a.queries, a.work / "cache-neo4j"
        )
        done("neo4j-features")
    if "plan" in steps:
        print("talent matrix plans ...", flush=True)
        res["plan"] = read_by(lambda st, c, env: bench_plan(st, c, a.plans, a.full_limit, env))
        done("plan")
    if "assign" in steps:
        print("market assignment ...", flush=True)
        res["assign"] = read_by(bench_assign)
        done("assign")
    if "api" in steps:
        print("API under concurrent clients ...", flush=True)
        res["api"] = bench_api(db, cache, a.clients, a.api_seconds, a.api_workers)
        done("api")
    if "neo4j" in steps:
        if "KOLMATCH_NEO4J_URI" not in os.environ:
            print("neo4j: skipped (no server: run through `make bench`)", flush=True)
            return
        print("load Neo4j ...", flush=True)
        res["neo4j"] = bench_neo4j(market, reload=a.scale in ("tiny", "s"))
        print("naive vs batched ...", flush=True)
        res["naive"] = bench_naive(market, a.naive_rows)


def _footprint(work: Path, scale: str) -> dict[str, int]:
    """Bytes on disk (allocated) of what the benchmark keeps in ``work``: the market's files
    and its truth, the SQLite file, the imported Neo4j store and its logs, the caches."""
    parts = [
        f"market-{scale}",  # the generated CSVs
        f"market-{scale}-truth",  # the generator's latent truth (the evaluation's)
        f"{scale}.db",
        "neo4j-import",  # the imported store, its logs (and the importer's CSVs meanwhile)
        "cache",  # the features of the SQLite route's steps
        "cache-neo4j",  # the features of the Neo4j route's
    ]
    return {name: _size(work / name) for name in parts if (work / name).exists()}


def _size(path: Path) -> int:
    """Bytes allocated on disk to a file, or to every file under a folder (0 if missing)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while walking
                total += (Path(root) / name).stat().st_blocks * 512
    return total


def _write(res: dict[str, Any], stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(_md(res))
    print(_md(res))


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as exc:  # a step that failed, or a store that is missing: no traceback
        sys.exit(f"bench/run.py: {exc}")
