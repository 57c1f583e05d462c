"""Service providers ranked by track record, on held-out engagements of generated markets.

For each seed: generate a market, load it into a fresh SQLite store and read it
(``PROVIDERS_READ``); hold out every merchant's last completed engagement (by end day), fit the
track record on the rest (kolmatch/matching/providers.py) and rank every provider for each
merchant with a held-out engagement. Scored against the generator's truth (``skill[provider,
merchant's main category]``, the log-lift it adds to GMV):

- the true skill of the top-ranked provider, against the most popular provider (most
  engagements in the training data) and a provider drawn at random (the mean over providers),
  and the best provider there is (the oracle);
- the Spearman correlation of expected and true lift across providers, per merchant, averaged;
- the correlation of the held-out engagement's realised lift with its provider's expected lift.

    python bench/providers.py --scale s --seeds 1 2 3
    python bench/providers.py --merchants 2000 --seeds 1   # more providers and engagements

The merchant's main category is not in the truth files: it is re-drawn from the generator's
stream (``_main_categories``) and checked against every product's category in the truth.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import spearmanr

from kolmatch.graph.market import PROVIDERS_READ, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.loaders.synthetic import SCALES, MarketScale, generate_market
from kolmatch.matching.providers import (
    SIMILARITY_FLOOR,
    ProviderMarket,
    expected_lift,
    fit_providers,
    provider_market,
)
from kolmatch.policy import MIN_EVIDENCE_ENGAGEMENTS


def _main_categories(seed: int, sc: MarketScale, truth: Path) -> NDArray[np.int64]:
    """Each merchant's main category, as the generator drew it (its streams 1 and 2)."""
    cat_pop = np.random.default_rng([seed, 1]).dirichlet(np.full(sc.categories, 3.0))
    rng = np.random.default_rng([seed, 2])
    n_cat = rng.integers(1, 4, sc.merchants)
    cats = [rng.choice(sc.categories, size=k, replace=False, p=cat_pop) for k in n_cat]
    products = np.load(truth / "products.npz")
    for m, c in zip(products["merchant"], products["category"], strict=True):
        if c not in cats[m]:
            raise SystemExit("the generator's merchant stream changed: update _main_categories")
    return np.array([c[0] for c in cats], dtype=np.int64)


def _generated(ids: NDArray[np.str_], prefix: str) -> NDArray[np.int64]:
    """The generator's index of each id (``sp12`` -> 12): rows are in id order, sp10 < sp2."""
    return np.array([int(str(x).removeprefix(prefix)) for x in ids], dtype=np.int64)


def holdout(market: ProviderMarket) -> NDArray[np.bool_]:
    """Every merchant's last completed engagement (latest end, then id)."""
    e = market.engagements
    out = np.zeros(len(e), dtype=bool)
    done = np.nonzero(e.completed)[0]
    order = done[np.lexsort((e.ids[done], e.end[done], e.merchant[done]))]
    last = np.r_[e.merchant[order][1:] != e.merchant[order][:-1], True]
    out[order[last]] = True
    return out


def evaluate(
    market: ProviderMarket,
    skill: NDArray[np.float64],
    main: NDArray[np.int64],
    *,
    floor: float,
    min_engagements: int,
) -> dict[str, Any]:
    e = market.engagements
    # the truth in the stores' row order
    skill = skill[_generated(market.provider_ids, "sp")]
    main = main[_generated(market.merchant_ids, "m")]
    held = holdout(market)
    model = fit_providers(
        e,
        market.shares,
        market.provider_kind,
        use=~held,
        floor=floor,
        min_engagements=min_engagements,
    )
    counts = np.bincount(e.provider[~held], minlength=len(market.provider_ids))
    popular = int(np.argmax(counts))
    ours, pop, rand, best, rho, pred, real = [], [], [], [], [], [], []
    from kolmatch.matching.providers import engagement_lift

    realised = engagement_lift(e)  # the held-out outcomes, the market fitted on all
    for i in np.nonzero(held)[0]:
        m = int(e.merchant[i])
        lift = expected_lift(model, m)
        truth = skill[:, main[m]]
        top = int(np.lexsort((market.provider_ids, -lift))[0])
        ours.append(truth[top])
        pop.append(truth[popular])
        rand.append(truth.mean())
        best.append(truth.max())
        rho.append(spearmanr(lift, truth).statistic)
        pred.append(lift[e.provider[i]])
        real.append(realised[i])
    return {
        "merchants": len(ours),
        "providers": len(market.provider_ids),
        "engagements_train": int((e.completed & ~held).sum()),
        "qualified": int(model.qualified.sum()),
        "kappa": round(model.kappa, 2),
        "top1_skill": float(np.mean(ours)),
        "popular_skill": float(np.mean(pop)),
        "random_skill": float(np.mean(rand)),
        "oracle_skill": float(np.mean(best)),
        "spearman": float(np.nanmean(rho)),
        "heldout_r": float(np.corrcoef(pred, real)[0, 1]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="s")
    p.add_argument("--merchants", type=int, help="the scale's merchants replaced by this many")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--floor", type=float, nargs="+", default=[SIMILARITY_FLOOR])
    p.add_argument("--min-engagements", type=int, default=MIN_EVIDENCE_ENGAGEMENTS)
    a = p.parse_args()
    sc = SCALES[a.scale]
    if a.merchants:
        sc = MarketScale(sc.users, sc.talents, a.merchants, sc.categories, sc.chunk)
    rows = []
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            truth = generate_market(sc, seed, Path(d) / "market", progress=False)
            store = SQLiteStore(Path(d) / "g.db")
            load_folder(Path(d) / "market", store)
            market = provider_market(read_market(store, PROVIDERS_READ))
            store.close()
            skill = np.load(truth / "providers.npz")["skill"]
            main = _main_categories(seed, sc, truth)
            prep = time.perf_counter() - t0
        for floor in a.floor:
            t0 = time.perf_counter()
            r = evaluate(market, skill, main, floor=floor, min_engagements=a.min_engagements)
            r |= {"scale": a.scale, "merchants_in_market": sc.merchants, "seed": seed}
            r |= {"floor": floor, "prepare_s": round(prep, 1)}
            r["fit_rank_s"] = round(time.perf_counter() - t0, 2)
            rows.append(r)
            print(
                f"{a.scale}/{sc.merchants} seed {seed} floor {floor}: {r['merchants']} merchants, "
                f"{r['providers']} providers ({r['qualified']} with >= {a.min_engagements}), "
                f"kappa {r['kappa']}; true skill of the top provider {r['top1_skill']:.3f} "
                f"(popular {r['popular_skill']:.3f}, random {r['random_skill']:.3f}, oracle "
                f"{r['oracle_skill']:.3f}); Spearman {r['spearman']:.3f}; held-out r "
                f"{r['heldout_r']:.3f}"
            )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
