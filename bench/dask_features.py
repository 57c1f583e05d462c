"""The feature build in process against the same build on a local Dask cluster.

Reads the store's market once, then times :func:`~kolmatch.matching.features.build_features`
in this process and with its partitions on a ``LocalCluster`` of ``--workers`` worker
processes (one thread each), best of ``--repeat`` runs each, the cluster started beforehand
(its start-up is reported apart: a real cluster runs before and after the build). Checks the
two builds' features agree (largest relative difference over every array field) and reports
the peak memory of this process and of each worker, and the machine's (its memory in use,
``MemTotal - MemAvailable``, sampled twice a second: the workers map one copy of the shared
arrays, which each worker's peak counts again).

    python bench/dask_features.py                       # generates and loads the s market
    python bench/dask_features.py --store sqlite:////tmp/m.db --repeat 1

At l, two feature sets do not fit in memory beside the graph, nor does the Neo4j server beside
the cluster: ``--neo4j-run-dir`` reads the store ``bench/run.py --from-neo4j`` imported (its
server started for the read and stopped before the builds), ``--spill`` keeps the in-process
features on disk while the cluster builds (compared memory-mapped after)::

    python bench/dask_features.py --neo4j-run-dir WORK/neo4j-import --spill /tmp/spill \
        --repeat 1 --json bench/results/DATE-l-dask.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from kolmatch.engine.arrays import read_arrays, write_arrays
from kolmatch.engine.distributed import DaskPartitions
from kolmatch.graph.market import FULL_READ, MarketGraph, read_market
from kolmatch.graph.neo4j_store import Neo4jStore
from kolmatch.graph.open import open_store
from kolmatch.graph.store import GraphStore
from kolmatch.loaders.load import load_folder
from kolmatch.loaders.synthetic import generate_market
from kolmatch.matching.features import MarketFeatures, build_features
from kolmatch.matching.partition import PartitionMap, in_process

if not __package__:  # run as bench/dask_features.py: the repository's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.run import imported_server


def largest_relative_difference(a: MarketFeatures, b: MarketFeatures) -> float:
    """max |a - b| / max(|a|, |b|) over every float array; sparse ones compared on their
    nonzeros (densified, the m market's (talents x users) would be 149 GiB), inf where their
    nonzeros differ."""
    worst = 0.0
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if sp.issparse(x):
            x, y = sp.csr_matrix(x), sp.csr_matrix(y)
            for m in (x, y):
                m.sum_duplicates()
                m.eliminate_zeros()
                m.sort_indices()
            if not (np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices)):
                return float("inf")
            x, y = x.data, y.data
        if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.size:
            diff = np.abs(x - y)
            scale = np.maximum(np.abs(x), np.abs(y))
            rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
            worst = max(worst, float(np.nanmax(rel)))
    return worst


def _meminfo_mib() -> dict[str, float]:
    """/proc/meminfo's figures, in MiB."""
    return {
        line.split(":")[0]: int(line.split()[1]) / 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
    }


def reset_peak_rss() -> None:
    """Start this process's peak resident size afresh (Linux: /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """This process's peak resident size since start or :func:`reset_peak_rss`, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _used_mib() -> float:
    """The machine's memory in use: MemTotal - MemAvailable (page cache that can be dropped,
    a mapped file's included, does not count), in MiB."""
    info = _meminfo_mib()
    return info["MemTotal"] - info["MemAvailable"]


@contextmanager
def machine_peak() -> Iterator[dict[str, float]]:
    """Samples the machine's memory in use twice a second while the block runs; the dict
    holds ``peak_mib`` (and ``before_mib``, at the start) after it."""
    out = {"before_mib": _used_mib(), "peak_mib": 0.0}
    done = threading.Event()

    def sample() -> None:
        while True:
            out["peak_mib"] = max(out["peak_mib"], _used_mib())
            if done.wait(0.5):
                return

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        done.set()
        t.join()


def best_build(
    g: MarketGraph, partitions: PartitionMap, repeat: int
) -> tuple[float, Any, dict[str, float]]:
    times, f = [], None
    with machine_peak() as machine:
        for _ in range(repeat):
            f = None  # the last build's features go before the next is made
            t = time.perf_counter()
            f = build_features(g, partitions=partitions)
            times.append(time.perf_counter() - t)
    return min(times), f, machine


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", help="a loaded store (default: generate and load --scale)")
    ap.add_argument("--scale", default="s", help="market to generate without --store")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument(
        "--neo4j-run-dir",
        type=Path,
        help="read the Neo4j store of this run folder (bench/run.py's WORK/neo4j-import), its "
        "server started for the read and stopped before the builds",
    )
    ap.add_argument(
        "--spill",
        type=Path,
        help="a folder for the in-process features while the cluster builds (written, dropped "
        "from memory, compared memory-mapped after: l)",
    )
    a = ap.parse_args(argv)
    if a.store and a.neo4j_run_dir:
        ap.error("--store and --neo4j-run-dir name two stores: give one")

    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.ExitStack() as server:  # the Neo4j server lives for the read only
            uri = a.store
            if a.neo4j_run_dir is not None:
                env = server.enter_context(imported_server(a.neo4j_run_dir.resolve()))
                uri = env["KOLMATCH_STORE"]
                store: GraphStore = Neo4jStore(uri, auth=("neo4j", env["NEO4J_PASSWORD"]))
            elif uri is None:
                folder = Path(tmp) / a.scale
                generate_market(a.scale, a.seed, folder)
                uri = f"sqlite:///{Path(tmp) / 'market.db'}"
                store = open_store(uri)
                load_folder(folder, store)
            else:
                store = open_store(uri)
            t = time.perf_counter()
            g = read_market(store, FULL_READ)
            read_s = time.perf_counter() - t
            store.close()
        users = len(g.node("User"))
        print(f"read {users:,} users: {read_s:.1f} s", file=sys.stderr, flush=True)
        rss_read_mb = peak_rss_mb()

        reset_peak_rss()
        local_s, f_local, machine_local = best_build(g, in_process, a.repeat)
        print(f"in process: {local_s:.2f} s", file=sys.stderr, flush=True)
        rss_local_mb = peak_rss_mb()
        spilled = None
        if a.spill is not None:
            a.spill.mkdir(parents=True, exist_ok=True)
            spilled = a.spill / "in-process-features.npz"
            write_arrays(spilled, f_local, version=0)
            f_local = None

        t = time.perf_counter()
        with (
            LocalCluster(
                n_workers=a.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                memory_limit=0,  # the bench measures memory; it does not cap it
            ) as cluster,
            Client(cluster, set_as_default=False) as client,
        ):
            start_s = time.perf_counter() - t
            client.run(reset_peak_rss)  # a forked worker inherits its parent's peak
            reset_peak_rss()
            partitions = DaskPartitions(client)
            dask_s, f_dask, machine_dask = best_build(g, partitions, a.repeat)
            print(f"on {a.workers} workers: {dask_s:.2f} s", file=sys.stderr, flush=True)
            worker_peak_mb = client.run(peak_rss_mb)
            rss_dask_mb = peak_rss_mb()
        del g  # the graph is not needed to compare (at l, ~10 GiB the comparison needs)
        if spilled is not None:
            f_local = read_arrays(spilled, MarketFeatures, version=0)
        difference = largest_relative_difference(f_local, f_dask)
        if spilled is not None:
            del f_local
            spilled.unlink()

    out = {
        "store": uri,
        "users": users,
        "cores": os.cpu_count(),
        "workers": a.workers,
        "repeat": a.repeat,
        "read_s": round(read_s, 2),
        "in_process_s": round(local_s, 2),
        "dask_s": round(dask_s, 2),
        "cluster_start_s": round(start_s, 2),
        "largest_relative_difference": difference,
        "peak_rss_mb_read": round(rss_read_mb),
        # the build's peak, the graph read included (reset after the read: before 2026-12-06
        # the read's peak was this figure's when larger; it is peak_rss_mb_read now)
        "peak_rss_mb_client": round(rss_local_mb),
        "peak_rss_mb_client_dask": round(rss_dask_mb),
        "peak_rss_mb_workers": sorted(round(v) for v in worker_peak_mb.values()),
        "shared_arrays": "mapped from one file" if partitions.mapped else "sent to each worker",
        "machine_used_mib_before": round(machine_local["before_mib"]),
        "machine_used_peak_mib_in_process": round(machine_local["peak_mib"]),
        "machine_used_peak_mib_dask": round(machine_dask["peak_mib"]),
        "machine_total_mib": round(_meminfo_mib()["MemTotal"]),
    }
    json.dump(out, sys.stdout, indent=2)
    print()
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
