"""Real data: do graph signals recover held-out Twitch follows better than popularity?

Adapts ``shared/data/twitch-follows`` to the import format (kolmatch.loaders.twitch), loads it
into the embedded store, projects it, and compares rankers on the held-out 20% of each
viewer's follows. Prints a table; ``--json`` for machines.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from kolmatch import jsonio
from kolmatch.evaluation.holdout import HoldoutRecovery, holdout_recovery
from kolmatch.graph.projection import edge_list, node_table, to_csr
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.loaders.twitch import twitch_follows_market

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "twitch-follows"


def run(src: Path, work: Path, *, k: int = 10, seed: int = 0) -> HoldoutRecovery:
    """Adapt, load, project and evaluate; return the recovery figures."""
    held = twitch_follows_market(src, work / "market", seed=seed)
    store = SQLiteStore(work / "twitch.db")
    try:
        load_folder(work / "market", store)
        users = node_table(store, "User", ())
        talents = node_table(store, "Talent", ("followers",))
        cats = node_table(store, "Category", ())
        contents = node_table(store, "Content", ())
        products = node_table(store, "Product", ())
        train = to_csr(edge_list(store, "FOLLOWS", users, talents, ()), (len(users), len(talents)))
        pub = edge_list(store, "PUBLISHED", talents, contents)
        feat = edge_list(store, "FEATURES", contents, products)
        inc = edge_list(store, "IN_CATEGORY", products, cats)
    finally:
        store.close()
    prod_cat = np.full(len(products), -1)
    prod_cat[inc.src] = inc.dst
    content_cat = np.full(len(contents), -1)
    content_cat[feat.src] = prod_cat[feat.dst]
    tc = np.zeros((len(talents), len(cats)))
    ok = content_cat[pub.dst] >= 0
    np.add.at(tc, (pub.src[ok], content_cat[pub.dst][ok]), 1.0)
    tc /= np.maximum(tc.sum(axis=1, keepdims=True), 1.0)
    with (held / "follows.csv").open() as fh:
        pairs = [line.rstrip("\n").split(",", 1) for line in list(fh)[1:]]
    tu = users.indices_of([p[0] for p in pairs])
    tt = talents.indices_of([p[1] for p in pairs])
    return holdout_recovery(train, tu, tt, talents.columns["followers"], tc, k=k, seed=seed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--src", type=Path, default=SHARED)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run(a.src, Path(tmp), k=a.k)
    if a.json:
        print(jsonio.dumps(r.__dict__, indent=2))
        return
    print(f"held-out Twitch follows, {r.users} viewers, top-{r.k}:")
    print(f"  {'ranker':<34} {'hit rate':>9} {'recall':>8}")
    for name in r.hit_rate:
        print(f"  {name:<34} {r.hit_rate[name]:>9.1%} {r.recall[name]:>8.1%}")


if __name__ == "__main__":
    main()
