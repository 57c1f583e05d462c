"""A delta of follows and purchases applied to the features (issue 18), against a build.

Reads a store's market once and builds its features and per-user stage (in this process).
Then it adds ``--share`` new follows and purchases per existing one (random existing users,
talents and products, seeded) to the graph in memory and times the delta two ways: the
per-user stage alone by difference (``user_stage_changed``: the changed users' rows before
and after, their terms out of the talents' sums and in again), and the features after it
(``features_after_delta``: that stage, then the rest of the build with the calibration, walks
and date of the features before). With ``--check`` it also builds the features after the delta
from scratch with the same calibration, walks and date, and reports the largest relative
difference of any float field (the target: within 1e-9). It also times a read of the changed
users' edges alone from the store (``read_edges_from``, what a delta load reads; here their
rows before the delta). Prints one JSON line. Usage::

    python -m bench.delta --store sqlite:////tmp/m.db --share 0.01 --check
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from kolmatch.graph.market import FEATURES_READ, MarketGraph, read_edges_from, read_market
from kolmatch.graph.open import open_store
from kolmatch.graph.projection import EdgeList
from kolmatch.matching.features import build_features, features_after_delta, user_shared
from kolmatch.matching.partition import in_process
from kolmatch.matching.user_partition import (
    user_parts,
    user_parts_of,
    user_stage,
    user_stage_changed,
)

T = TypeVar("T")


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


def largest_difference(got: Any, want: Any) -> float:
    """The largest relative difference of any float of any field of two dataclasses of one
    kind, entry by entry (relative to the larger of the two; inf where NaNs, shapes or other
    values differ)."""
    worst = 0.0
    for field in dataclasses.fields(want):
        a, b = getattr(got, field.name), getattr(want, field.name)
        if sp.issparse(b):
            a, b = sp.csr_matrix(a), sp.csr_matrix(b)
            if a.shape != b.shape:
                return float("inf")
            d = sp.coo_matrix(a - b)
            at = d.data != 0
            if at.any():  # entry by entry, relative to the larger of the two
                r, c = d.row[at], d.col[at]
                ref = np.maximum(
                    np.abs(np.asarray(a[r, c]).ravel()), np.abs(np.asarray(b[r, c]).ravel())
                )
                worst = max(worst, float((np.abs(d.data[at]) / ref).max()))
        elif isinstance(b, np.ndarray) and b.dtype.kind == "f":
            if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
                return float("inf")
            both = np.isfinite(b)
            if both.any():
                den = np.maximum(np.abs(b[both]), 1e-300)
                worst = max(worst, float((np.abs(a[both] - b[both]) / den).max()))
        elif isinstance(b, np.ndarray):
            if not np.array_equal(a, b):
                return float("inf")
        elif isinstance(b, float):
            if a != b and abs(a - b) > 0:
                worst = max(worst, abs(a - b) / max(abs(b), 1e-300))
        elif isinstance(b, list) and b and isinstance(b[0], np.ndarray):
            if len(a) != len(b) or not all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)):
                return float("inf")
        elif a != b:
            return float("inf")
    return worst


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    t = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t, 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", required=True, help="a store URI (sqlite:///path, bolt://...)")
    p.add_argument("--share", type=float, default=0.01, help="new rows per existing row")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--check", action="store_true", help="also build from scratch and compare")
    a = p.parse_args()
    store = open_store(a.store)
    try:
        g, read_s = _timed(lambda: read_market(store, FEATURES_READ))
        after, changed = delta_graph(g, a.share, a.seed)
        ids = g.node("User").ids[changed].tolist()
        # the changed users' rows as a delta load would read them (here, before the delta)
        by_user, by_user_s = _timed(lambda: read_edges_from(store, g, "User", ids))
    finally:
        store.close()
    before, build_s = _timed(lambda: build_features(g))
    shared = user_shared(g, before.today, before.calibration)
    stage, stage_s = _timed(lambda: user_stage(user_parts(g), shared, in_process))
    (old, new), parts_s = _timed(lambda: (user_parts_of(g, changed), user_parts_of(after, changed)))
    changed_stage, changed_stage_s = _timed(lambda: user_stage_changed(stage, old, new, shared))
    (f, _), delta_s = _timed(lambda: features_after_delta(after, before, stage, old, new))
    out: dict[str, object] = {
        "users": len(g.node("User")),
        "changed_users": len(changed),
        "new_follows": len(after.edge("FOLLOWS", "User")) - len(g.edge("FOLLOWS", "User")),
        "new_purchases": len(after.edge("PURCHASED", "User")) - len(g.edge("PURCHASED", "User")),
        "share": a.share,
        "cores": os.cpu_count(),
        "read_s": read_s,
        "build_s": build_s,
        "whole_stage_s": stage_s,
        "changed_users_read_s": by_user_s,
        "changed_users_rows": sum(len(e) for e in by_user.edges.values()),
        "changed_parts_s": parts_s,
        "changed_stage_s": changed_stage_s,
        "features_after_delta_s": delta_s,
    }
    if a.check:
        del stage
        want_stage = user_stage(user_parts(after), shared, in_process)
        out["stage_largest_relative_difference"] = largest_difference(changed_stage, want_stage)
        del want_stage, changed_stage
        want, rebuild_s = _timed(
            lambda: build_features(
                after, today=before.today, calibration=before.calibration, walks=before.walks
            )
        )
        out["build_with_frozen_walks_s"] = rebuild_s
        out["features_largest_relative_difference"] = largest_difference(f, want)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
