"""Evaluation on a synthetic market: the latent truth scores the rankings, it never makes them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from kolmatch.errors import BadArgument
from kolmatch.loaders.synthetic import oracle_orders
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import combine, merchant_signals

__all__ = ["Evaluation", "Truth", "evaluate", "load_truth", "oracle_gmv"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class Truth:
    """The generator's latent truth, aligned with the features' id order."""

    audience: F64
    interest: F64  # (T, C)
    log_price: F64
    skill: F64
    product_category: NDArray[np.int64]
    product_price: F64
    product_merchant: NDArray[np.int64]
    user_interest: NDArray[np.float32]  # (U, C)


def _index(ids: NDArray[np.str_], prefix: str) -> NDArray[np.int64]:
    return np.array([int(str(i)[len(prefix) :]) for i in ids], dtype=np.int64)


def _checked_index(ids: NDArray[np.str_], prefix: str, size: int, what: str, d: Path) -> I64:
    """Rows of ``ids`` (``<prefix><n>``) in a truth of ``size`` of them; BadArgument if any is
    not a generated id or is out of range."""
    out = np.empty(len(ids), dtype=np.int64)
    for j, i in enumerate(ids):
        text = str(i)
        n = text[len(prefix) :]
        if not (text.startswith(prefix) and n.isdigit() and int(n) < size):
            raise BadArgument(
                "truth_dir",
                f"{d} is not this market's truth: the store's {what} id {text!r} is not one of "
                f"its {size:,} {what}s ({prefix}0..{prefix}{size - 1})",
            )
        out[j] = int(n)
    return out


def load_truth(truth_dir: str | Path, f: MarketFeatures) -> Truth:
    """Read ``<market>-truth`` and reorder it to the features' talent order.

    The truth must be the loaded market's: every talent, user and merchant id in range, and
    (truths written since the talents' follower counts are kept) the same follower counts as
    the store's. Another market's truth would otherwise score the engine on garbage.

    Raises
    ------
    BadArgument
        If ``truth_dir`` lacks a truth's files or is another market's truth.
    """
    d = Path(truth_dir)
    for name in ("talents.npz", "products.npz", "user_interest.npy"):
        if not (d / name).is_file():
            raise BadArgument("truth_dir", f"{d} has no {name}: is it a market's -truth folder?")
    t = np.load(d / "talents.npz")
    p = np.load(d / "products.npz")
    interest = np.load(d / "user_interest.npy", mmap_mode="r")
    n_merchants = int(p["merchant"].max()) + 1 if len(p["merchant"]) else 0
    ti = _checked_index(f.talent_ids, "t", len(t["skill"]), "talent", d)
    ui = _checked_index(f.user_ids, "u", interest.shape[0], "user", d)
    _checked_index(f.merchant_ids, "m", n_merchants, "merchant", d)
    if "followers" in t.files:
        ours = np.nan_to_num(f.talent_followers, nan=-1.0)
        differ = int((t["followers"][ti] != ours).sum())
        if differ:
            raise BadArgument(
                "truth_dir",
                f"{d} is not this market's truth: {differ:,} of {len(ti):,} talents' follower "
                f"counts differ from the store's (another seed or scale?)",
            )
    elif len(ti) != len(t["skill"]) or len(ui) != interest.shape[0]:
        raise BadArgument(
            "truth_dir",
            f"{d} is not this market's truth: it has {len(t['skill']):,} talents and "
            f"{interest.shape[0]:,} users, the store {len(ti):,} and {len(ui):,}",
        )
    return Truth(
        audience=t["audience"][ti],
        interest=t["interest"][ti],
        log_price=t["log_price"][ti],
        skill=t["skill"][ti],
        product_category=p["category"],
        product_price=p["price"],
        product_merchant=p["merchant"],
        user_interest=interest[ui],
    )


def oracle_gmv(truth: Truth, merchant_index: int) -> F64:
    """Expected GMV of one collaboration of every talent with the merchant (its products' mean)."""
    prods = np.nonzero(truth.product_merchant == merchant_index)[0]
    total = np.zeros(len(truth.skill))
    for p in prods:
        c = truth.product_category[p]
        price = float(truth.product_price[p])
        total += price * oracle_orders(
            truth.audience, truth.interest[:, c], truth.skill, truth.log_price, price
        )
    return total / max(len(prods), 1)


@dataclass(frozen=True)
class Evaluation:
    """Share of the oracle-best top-k GMV each ranking captures, averaged over merchants."""

    merchants: int
    k: int
    capture: dict[str, float]  # ranker -> mean capture ratio
    vs_followers: float  # engine GMV / follower-count baseline GMV (ratio of sums)
    oracle_vs_followers: float  # the oracle-best top-k's GMV / the baseline's: the most reachable
    hidden_need_auc: float


def _baselines(f: MarketFeatures, m: int) -> dict[str, Callable[[], F64]]:
    mix = f.merchant_mix[m]
    cat_match = (f.talent_category @ mix) >= 0.2
    followers = np.nan_to_num(f.talent_followers)
    return {
        "followers": lambda: followers,
        "engagement_rate": lambda: f.talent_engagement_rate,
        "category+followers": lambda: cat_match * 1e12 + followers,
    }


def _top(score: F64, eligible: NDArray[np.bool_], k: int) -> NDArray[np.int64]:
    s = np.where(eligible, score, -np.inf)
    return np.argsort(-s, kind="stable")[:k]


def _auc(score: F64, label: NDArray[np.bool_]) -> float:
    pos, neg = int(label.sum()), int((~label).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = np.empty(len(score))
    ranks[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    return float((ranks[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


def evaluate(
    f: MarketFeatures,
    truth: Truth,
    *,
    k: int = 20,
    merchants: int = 100,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
) -> Evaluation:
    """Compare the engine's top-k with the oracle's and with the anchor tools' baselines.

    Parameters
    ----------
    f
        Features built from the store (observable data only).
    truth
        The latent truth, used only to score the rankings.
    k
        List length.
    merchants
        How many merchants to sample (all if fewer).
    seed
        Sampling seed.
    weights
        Overrides of the engine's signal weights (:data:`kolmatch.matching.score.DEFAULT_WEIGHTS`).
    """
    rng = np.random.default_rng(seed)
    mi = _index(f.merchant_ids, "m")
    rows = np.arange(len(f.merchant_ids))
    sample = np.sort(rng.choice(rows, size=min(merchants, len(rows)), replace=False))
    names = ["engine", "followers", "engagement_rate", "category+followers"]
    capture: dict[str, list[float]] = {n: [] for n in names}
    sums = {n: 0.0 for n in names}
    best_sum = 0.0
    aucs: list[float] = []
    for m in sample:
        oracle = oracle_gmv(truth, int(mi[m]))
        sig = merchant_signals(f, int(m))
        eligible = ~sig.excluded
        best = oracle[_top(oracle, eligible, k)].sum()
        if best <= 0:
            continue
        best_sum += best
        rankings = {"engine": combine(sig, weights)} | {
            n: fn() for n, fn in _baselines(f, int(m)).items()
        }
        for n, score in rankings.items():
            got = oracle[_top(score, eligible, k)].sum()
            capture[n].append(got / best)
            sums[n] += got
        # hidden needs: does the observed lean find users whose latent interest is high?
        mix = f.merchant_mix[m]
        latent = np.asarray(truth.user_interest @ mix)
        lean = f.user_interest @ mix
        label = latent >= np.quantile(latent, 0.8)
        aucs.append(_auc(lean, label))
    return Evaluation(
        merchants=len(capture["engine"]),
        k=k,
        capture={n: float(np.mean(v)) for n, v in capture.items()},
        vs_followers=sums["engine"] / sums["followers"] if sums["followers"] else float("inf"),
        oracle_vs_followers=best_sum / sums["followers"] if sums["followers"] else float("inf"),
        hidden_need_auc=float(np.nanmean(aucs)),
    )
