"""A delta's per-user stage (issue 18): the changed users' stage against the whole market's.

Reads a store's market once, builds the per-user stage of every user (``user_stage``, in this
process), then adds ``--share`` new follows and purchases per existing one (random existing
users, talents and products, seeded) to the graph in memory and takes the stage after them two
ways: by difference (``user_stage_changed``: the changed users' rows before and after, their
terms out of the talents' sums and in again) and, with ``--check``, from scratch. It also
times a read of the changed users' edges alone from the store (``read_edges_from``, what a
delta load reads; here their rows before the delta). Prints the times, the changed users
and, with ``--check``, the largest relative difference of any field (the target: within
1e-9), as one JSON line. Usage::

    python -m bench.delta_stage --store sqlite:////tmp/m.db --share 0.01 --check
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from datetime import date

import numpy as np
import scipy.sparse as sp

from kolmatch.graph.market import FEATURES_READ, MarketGraph, read_edges_from, read_market
from kolmatch.graph.open import open_store
from kolmatch.graph.projection import EdgeList
from kolmatch.matching.features import user_shared
from kolmatch.matching.partition import in_process
from kolmatch.matching.user_partition import (
    UserStage,
    user_parts,
    user_parts_of,
    user_stage,
    user_stage_changed,
)


def with_rows(e: EdgeList, src: np.ndarray, dst: np.ndarray, **columns: np.ndarray) -> EdgeList:
    """``e`` with new rows (columns it holds and they lack: NaN or None), in (source, target)
    order as a read gives them."""
    s, d = np.concatenate([e.src, src]), np.concatenate([e.dst, dst])
    order = np.lexsort((d, s))
    cols = {}
    for name, old in e.columns.items():
        new = columns.get(name)
        if new is None:
            new = np.full(len(src), np.nan if old.dtype.kind == "f" else None, dtype=old.dtype)
        cols[name] = np.concatenate([old, new.astype(old.dtype)])[order]
    return EdgeList(e.rel_type, e.src_label, s[order], d[order], cols)


def delta_graph(g: MarketGraph, share: float, seed: int) -> tuple[MarketGraph, np.ndarray]:
    """``g`` with ``share`` new follows and purchases per existing one; the changed users."""
    rng = np.random.default_rng(seed)
    n_users, n_talents = len(g.node("User")), len(g.node("Talent"))
    price = g.node("Product").columns["price"]
    follows, bought = g.edge("FOLLOWS", "User"), g.edge("PURCHASED", "User")
    nf, np_ = max(1, round(share * len(follows))), max(1, round(share * len(bought)))
    f_src, f_dst = rng.integers(0, n_users, nf), rng.integers(0, n_talents, nf)
    p_src, p_dst = rng.integers(0, n_users, np_), rng.integers(0, len(price), np_)
    amount = np.where(np.isfinite(price[p_dst]), price[p_dst], 99.0)
    edges = dict(g.edges)
    edges[("FOLLOWS", "User")] = with_rows(follows, f_src, f_dst)
    edges[("PURCHASED", "User")] = with_rows(bought, p_src, p_dst, amount=amount)
    return MarketGraph(g.identity, g.nodes, edges), np.unique(np.concatenate([f_src, p_src]))


def largest_difference(got: UserStage, want: UserStage) -> float:
    """The largest relative difference of any value of any field (sparse: same entries)."""
    worst = 0.0
    for field in dataclasses.fields(UserStage):
        a, b = getattr(got, field.name), getattr(want, field.name)
        if sp.issparse(b):
            a, b = sp.csr_matrix(a), sp.csr_matrix(b)
            if (a != b).nnz == 0:
                continue
            a, b = (a - b).tocsr(), b.tocsr()
            diff = abs(a).max()
            scale = abs(b).max() or 1.0
            worst = max(worst, float(diff / scale))
        elif isinstance(b, np.ndarray):
            both = np.isfinite(a) & np.isfinite(b)
            if not np.array_equal(np.isnan(a), np.isnan(b)):
                return float("inf")
            den = np.maximum(np.abs(b[both]), 1e-300)
            if both.any():
                worst = max(worst, float((np.abs(a[both] - b[both]) / den).max()))
        elif a != b:
            return float("inf")
    return worst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", required=True, help="a store URI (sqlite:///path, bolt://...)")
    p.add_argument("--share", type=float, default=0.01, help="new rows per existing row")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--check", action="store_true", help="also build the stage from scratch")
    a = p.parse_args()
    store = open_store(a.store)
    try:
        t = time.perf_counter()
        g = read_market(store, FEATURES_READ)
        read_s = time.perf_counter() - t
        after, changed = delta_graph(g, a.share, a.seed)
        # the changed users' rows as a delta load would read them (here, before the delta)
        t = time.perf_counter()
        by_user = read_edges_from(store, g, "User", g.node("User").ids[changed].tolist())
        by_user_s = time.perf_counter() - t
    finally:
        store.close()
    today = date(2026, 12, 1)
    shared = user_shared(g, today)
    t = time.perf_counter()
    stage = user_stage(user_parts(g), shared, in_process)
    full_s = time.perf_counter() - t
    t = time.perf_counter()
    before_part, after_part = user_parts_of(g, changed), user_parts_of(after, changed)
    parts_s = time.perf_counter() - t
    t = time.perf_counter()
    got = user_stage_changed(stage, before_part, after_part, shared)
    delta_s = time.perf_counter() - t
    out: dict[str, object] = {
        "users": len(g.node("User")),
        "changed_users": len(changed),
        "new_follows": len(after.edge("FOLLOWS", "User")) - len(g.edge("FOLLOWS", "User")),
        "new_purchases": len(after.edge("PURCHASED", "User")) - len(g.edge("PURCHASED", "User")),
        "share": a.share,
        "cores": os.cpu_count(),
        "read_s": round(read_s, 2),
        "full_stage_s": round(full_s, 2),
        "changed_users_read_s": round(by_user_s, 2),
        "changed_users_rows": sum(len(e) for e in by_user.edges.values()),
        "changed_parts_s": round(parts_s, 3),
        "changed_stage_s": round(delta_s, 3),
    }
    if a.check:
        del stage
        want = user_stage(user_parts(after), shared, in_process)
        out["largest_relative_difference"] = largest_difference(got, want)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
