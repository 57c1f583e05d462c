"""A delta load of follows and purchases applied to the features (issue 18), against a build.

Copies a SQLite store (beside it), reads its market once and builds its features and per-user
stage, as a serving engine holds them. Then it writes ``--share`` new follows and purchases per
existing one (random existing users, talents and products, seeded) as import files and loads
them into the copy with ``load_folder``, as ``kolmatch load`` of a day's folder would. Then it
times the delta as an engine would apply it: the buyers' purchases read back from the store at
its new version (``read_edges_from``) and spliced into the graph held
(``MarketGraph.with_rows_from``), the follows the load wrote added from its pairs
(``MarketGraph.with_pairs``), the changed users' parts before (``user_parts_of``) and after
(``user_part_with``: the types written taken anew), and
the features after it (``features_after_delta``: the per-user stage by difference, then the rest
of the build with the calibration, walks and date of the features before). Against: a full read
and build (what a bulk load costs without a delta). With ``--check`` it also reads the new
version whole and checks the spliced graph's edges equal it, and builds the features from it
with the same calibration, walks and date, reporting the largest relative difference of any
float field (the target: within 1e-9). Prints one JSON line. Usage::

    python -m bench.delta --store sqlite:////tmp/m.db --share 0.01 --check
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from kolmatch.graph.market import (
    FEATURES_READ,
    USER_EDGES_READ,
    MarketGraph,
    read_edges_from,
    read_market,
)
from kolmatch.graph.open import open_store
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import build_features, features_after_delta, user_shared
from kolmatch.matching.partition import in_process
from kolmatch.matching.user_partition import (
    user_part_with,
    user_parts,
    user_parts_of,
    user_stage,
)

T = TypeVar("T")

#: The types the bench's delta writes: follows (taken from the load's pairs) and purchases
#: (read back from their buyers).
FOLLOWS, PURCHASES = ("FOLLOWS", "User"), ("PURCHASED", "User")
WRITTEN = (FOLLOWS, PURCHASES)


def _with_follows(g: MarketGraph, pairs: pa.Table) -> MarketGraph:
    """``g`` with the follows a load wrote (its ``pairs``: ids) added."""
    return g.with_pairs(FOLLOWS, *g.rows_of_pairs(FOLLOWS, pairs))


def write_delta(
    g: MarketGraph, share: float, seed: int, folder: Path, sign_ups: int = 0
) -> list[str]:
    """Import files of ``share`` new follows and purchases per existing one, in ``folder``;
    the ids of the users they name, sorted. ``sign_ups`` new users besides (``user.csv``,
    ids that sort among the others) follow 3 talents each, and one in 4 buys once."""
    rng = np.random.default_rng(seed)
    users, talents = g.node("User").ids, g.node("Talent").ids
    products = g.node("Product")
    price = products.columns["price"]
    nf = max(1, round(share * len(g.edge("FOLLOWS", "User"))))
    np_ = max(1, round(share * len(g.edge("PURCHASED", "User"))))
    f_src, f_dst = rng.integers(0, len(users), nf), rng.integers(0, len(talents), nf)
    p_src, p_dst = rng.integers(0, len(users), np_), rng.integers(0, len(products), np_)
    if sign_ups:
        new = np.array([f"{u}-new{seed}" for u in rng.choice(users, sign_ups, replace=False)])
        with (folder / "user.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "gender", "age_band"])
            w.writerows((u, "fm"[i % 2], "24-30") for i, u in enumerate(new))
        rows = np.arange(len(users), len(users) + sign_ups)
        users = np.concatenate([users, new])
        f_src = np.concatenate([f_src, np.repeat(rows, 3)])
        f_dst = np.concatenate([f_dst, rng.integers(0, len(talents), 3 * sign_ups)])
        p_src = np.concatenate([p_src, rows[::4]])
        p_dst = np.concatenate([p_dst, rng.integers(0, len(products), len(rows[::4]))])
    amount = np.where(np.isfinite(price[p_dst]), price[p_dst], 99.0)
    with (folder / "follows.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["src", "dst", "since"])
        w.writerows((users[u], talents[t], "2026-12-01") for u, t in zip(f_src, f_dst, strict=True))
    with (folder / "purchased.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["src", "dst", "order_id", "amount", "time"])
        w.writerows(
            (users[u], products.ids[p], f"delta-{seed}-{i}", f"{a:.2f}", "2026-12-01")
            for i, (u, p, a) in enumerate(zip(p_src, p_dst, amount, strict=True))
        )
    return sorted({str(users[u]) for u in np.concatenate([f_src, p_src])})


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
        elif dataclasses.is_dataclass(b) and not isinstance(b, type):
            worst = max(worst, largest_difference(a, b))
        elif a != b:
            return float("inf")
    return worst


def same_edges(a: Any, b: Any) -> bool:
    """Whether two edge lists hold the same rows in the same order, every column equal."""
    return (
        np.array_equal(a.src, b.src)
        and np.array_equal(a.dst, b.dst)
        and a.columns.keys() == b.columns.keys()
        and all(
            np.array_equal(x, b.columns[k], equal_nan=x.dtype.kind == "f")
            for k, x in a.columns.items()
        )
    )


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    t = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t, 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", required=True, help="a SQLite store's URI (sqlite:///path)")
    p.add_argument("--share", type=float, default=0.01, help="new rows per existing row")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--check", action="store_true", help="also read and build anew and compare")
    a = p.parse_args()
    if not a.store.startswith("sqlite:///"):
        p.error(f"--store {a.store!r}: the bench loads its delta into a copy of a SQLite store")
    source = Path(a.store.removeprefix("sqlite://"))
    if not source.is_file():
        p.error(f"--store {a.store!r}: no such file")
    work = Path(tempfile.mkdtemp(prefix="delta-", dir=source.parent))
    try:
        shutil.copyfile(source, work / "store.db")
        (work / "delta").mkdir()
        print(json.dumps(run(f"sqlite:///{work / 'store.db'}", work / "delta", a)))
    finally:
        shutil.rmtree(work)


def run(uri: str, folder: Path, a: argparse.Namespace) -> dict[str, object]:
    """The bench on the store at ``uri`` (a copy: the delta is loaded into it)."""
    store = open_store(uri)
    try:
        g, read_s = _timed(lambda: read_market(store, FEATURES_READ))
        before, build_s = _timed(lambda: build_features(g))
        shared = user_shared(g, before.today, before.calibration)
        stage, stage_s = _timed(lambda: user_stage(user_parts(g), shared, in_process))
        ids = write_delta(g, a.share, a.seed, folder)
        report, load_s = _timed(lambda: load_folder(folder, store))
        rows = np.sort(g.node("User").indices_of(ids))
        # as the engine: the follows from the pairs the load wrote, the purchases read back
        # from their buyers (engine/delta.py)
        bought = report.pairs(*PURCHASES)
        buyers = sorted(set(bought.column("src").to_pylist()))
        read, read_by_user_s = _timed(
            lambda: read_edges_from(
                store, g, "User", buyers, {PURCHASES: USER_EDGES_READ[PURCHASES]}
            )
        )
        after, splice_s = _timed(
            lambda: _with_follows(
                g.with_rows_from(read, "User", np.sort(g.node("User").indices_of(buyers))),
                report.pairs(*FOLLOWS),
            )
        )
        old, old_s = _timed(lambda: user_parts_of(g, rows))
        new, new_s = _timed(lambda: user_part_with(old, after, WRITTEN))
        parts_s = round(old_s + new_s, 3)
        (f, changed_stage), delta_s = _timed(
            lambda: features_after_delta(after, before, stage, old, new)
        )
        whole = read_s + build_s
        applied = read_by_user_s + splice_s + parts_s + delta_s
        out: dict[str, object] = {
            "users": len(g.node("User")),
            "changed_users": len(ids),
            "new_follows": len(after.edge("FOLLOWS", "User")) - len(g.edge("FOLLOWS", "User")),
            "new_purchases": len(after.edge("PURCHASED", "User"))
            - len(g.edge("PURCHASED", "User")),
            "share": a.share,
            "cores": os.cpu_count(),
            "read_s": read_s,
            "build_s": build_s,
            "whole_stage_s": stage_s,
            "load_s": load_s,
            "buyers_read_s": read_by_user_s,
            "buyers_rows": sum(len(e) for e in read.edges.values()),
            "splice_s": splice_s,
            "changed_parts_s": parts_s,
            "features_after_delta_s": delta_s,
            "delta_s": round(applied, 3),
            "delta_share_of_full": round(applied / whole, 4),
        }
        if a.check:
            del stage, g, read
            fresh = read_market(store, FEATURES_READ)
            out["spliced_equals_read"] = all(
                same_edges(after.edge(*k), fresh.edge(*k)) for k in USER_EDGES_READ
            )
            del after
            want_stage = user_stage(user_parts(fresh), shared, in_process)
            out["stage_largest_relative_difference"] = largest_difference(changed_stage, want_stage)
            del want_stage, changed_stage
            want, rebuild_s = _timed(
                lambda: build_features(
                    fresh, today=before.today, calibration=before.calibration, walks=before.walks
                )
            )
            out["build_with_frozen_walks_s"] = rebuild_s
            out["features_largest_relative_difference"] = largest_difference(f, want)
        return out
    finally:
        store.close()


if __name__ == "__main__":
    main()
