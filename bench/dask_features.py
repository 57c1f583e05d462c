"""The feature build in process against the same build on a local Dask cluster.

Reads the store's market once, then times :func:`~kolmatch.matching.features.build_features`
in this process and with its partitions on a ``LocalCluster`` of ``--workers`` worker
processes (one thread each), best of ``--repeat`` runs each, the cluster started beforehand
(its start-up is reported apart: a real cluster runs before and after the build). Checks the
two builds' features agree (largest relative difference over every array field) and reports
the peak memory of this process and of each worker.

    python bench/dask_features.py                       # generates and loads the s market
    python bench/dask_features.py --store sqlite:////tmp/m.db --repeat 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from kolmatch.engine.distributed import DaskPartitions
from kolmatch.graph.market import FULL_READ, MarketGraph, read_market
from kolmatch.graph.open import open_store
from kolmatch.loaders.load import load_folder
from kolmatch.loaders.synthetic import generate_market
from kolmatch.matching.features import MarketFeatures, build_features
from kolmatch.matching.partition import PartitionMap, in_process


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


def reset_peak_rss() -> None:
    """Start this process's peak resident size afresh (Linux: /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """This process's peak resident size since start or :func:`reset_peak_rss`, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def best_build(g: MarketGraph, partitions: PartitionMap, repeat: int) -> tuple[float, Any]:
    times, f = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        f = build_features(g, partitions=partitions)
        times.append(time.perf_counter() - t)
    return min(times), f


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", help="a loaded store (default: generate and load --scale)")
    ap.add_argument("--scale", default="s", help="market to generate without --store")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args(argv)

    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        uri = a.store
        if uri is None:
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

        local_s, f_local = best_build(g, in_process, a.repeat)
        print(f"in process: {local_s:.2f} s", file=sys.stderr)
        rss_local_mb = peak_rss_mb()

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
            dask_s, f_dask = best_build(g, DaskPartitions(client), a.repeat)
            print(f"on {a.workers} workers: {dask_s:.2f} s", file=sys.stderr)
            worker_peak_mb = client.run(peak_rss_mb)

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
        "largest_relative_difference": largest_relative_difference(f_local, f_dask),
        "peak_rss_mb_client": round(rss_local_mb),
        "peak_rss_mb_workers": sorted(round(v) for v in worker_peak_mb.values()),
    }
    json.dump(out, sys.stdout, indent=2)
    print()
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
