"""Realism check: are a generated market's audiences as category-homophilous as real ones?

Measures the same quantity on real Twitch follows (``shared/data/twitch-follows``, a
streamer's main game as its category, 19 commonest games + "other") and on a generated market's
follows (a talent's category: the category its content's featured products are most often in),
with :func:`kolmatch.matching.audience.category_homophily`. The synthetic generator's
``INTEREST_CONCENTRATION`` was set from this comparison (docs/data-format.md).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from kolmatch.loaders.twitch import twitch_audience
from kolmatch.matching.audience import Homophily, category_homophily

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "twitch-follows"


def _pairs(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        r = csv.reader(fh)
        next(r)
        return [(row[0], row[1]) for row in r]


def market_audience(folder: Path) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """A market folder's follows as (talents x users), each talent's main category and followers.

    The category is observable: the commonest category among the products the talent's
    content features. Talents whose content features no product get category -1.
    """
    product_cat = dict(_pairs(folder / "in_category.csv"))
    content_product = dict(_pairs(folder / "features.csv"))
    counts: dict[str, Counter[str]] = {}
    for talent, content in _pairs(folder / "published.csv"):
        p = content_product.get(content)
        if p is not None and p in product_cat:
            counts.setdefault(talent, Counter())[product_cat[p]] += 1
    follows = _pairs(folder / "follows.csv")
    talents = sorted({t for _, t in follows} | set(counts))
    users = sorted({u for u, _ in follows})
    row = {t: i for i, t in enumerate(talents)}
    col = {u: i for i, u in enumerate(users)}
    cats = sorted({c for cnt in counts.values() for c in cnt})
    cat_index = {c: i for i, c in enumerate(cats)}
    category = np.array(
        [cat_index[counts[t].most_common(1)[0][0]] if t in counts else -1 for t in talents],
        dtype=np.int64,
    )
    aud = sp.csr_matrix(
        (np.ones(len(follows)), ([row[t] for _, t in follows], [col[u] for u, _ in follows])),
        shape=(len(talents), len(users)),
    )
    with (folder / "talent.csv").open(encoding="utf-8", newline="") as fh:
        reported = {r["id"]: float(r["followers"] or "nan") for r in csv.DictReader(fh)}
    followers = np.array([reported.get(t, np.nan) for t in talents])
    return aud, category, followers


def follower_capture(
    h: Homophily, audience: sp.csr_matrix, followers: np.ndarray, k: int = 20
) -> float:
    """Mean over measured categories: value of the top-k by followers / the best top-k's.

    A category's value of a talent is its audience size times its audience's interest in the
    category (``n_t x I[t, c]``), the observable core of the GMV model.
    """
    n = np.asarray((audience > 0).sum(axis=1)).ravel()
    by_followers = np.argsort(-np.nan_to_num(followers), kind="stable")[:k]
    shares = []
    for c in h.categories:
        value = n * h.interest[:, c]
        shares.append(value[by_followers].sum() / np.sort(value)[::-1][:k].sum())
    return float(np.mean(shares))


@dataclass(frozen=True)
class Comparison:
    """Each graph's homophily, and what follower count alone captures of audience x interest."""

    real: Homophily
    market: Homophily
    real_follower_capture: float
    market_follower_capture: float


def run(twitch: Path, market: Path, *, min_talents: int = 25) -> Comparison:
    """Measure both graphs the same way."""
    tw = twitch_audience(twitch, categories=20)
    tw_followers = np.array([tw.followers[s] for s in tw.streamers], dtype=np.float64)
    aud, cat, followers = market_audience(market)
    known = cat >= 0
    aud, cat, followers = aud[known], cat[known], followers[known]
    real = category_homophily(tw.audience, tw.category, min_talents=min_talents)
    synthetic = category_homophily(aud, cat, min_talents=min_talents)
    return Comparison(
        real,
        synthetic,
        follower_capture(real, tw.audience, tw_followers),
        follower_capture(synthetic, aud, followers),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("market", type=Path, help="a generated market folder")
    p.add_argument("--twitch", type=Path, default=SHARED)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    r = run(a.twitch, a.market)
    if a.json:
        print(
            json.dumps(
                {
                    "real_median_lift": r.real.median,
                    "market_median_lift": r.market.median,
                    "real_follower_capture": r.real_follower_capture,
                    "market_follower_capture": r.market_follower_capture,
                }
            )
        )
        return
    print("in-category audience interest lift (leave-one-out, follows), median over categories;")
    print("top-20 by followers: share of the best top-20 audience x interest, mean over categories")
    print(f"  {'graph':<24} {'lift':>7} {'followers':>10}")
    for name, h, cap in (
        ("real Twitch follows", r.real, r.real_follower_capture),
        (a.market.name, r.market, r.market_follower_capture),
    ):
        print(f"  {name:<24} {h.median:6.2f}x {cap:>10.1%}  ({len(h.lift)} categories)")


if __name__ == "__main__":
    main()
