"""Real public data held out: which talents will reach a merchant's customers, engine vs baselines.

Three data sets in ``shared/data`` (see its README) are converted to the import format
(``docs/data-format.md``) with part of their links held out; the engine ranks talents for each
merchant from the converted folder, and so do the tools a merchant would otherwise use. Every
ranking is scored on the held-out links with NDCG@20 and recall@50, averaged over merchants with
a bootstrap interval. :data:`PROTOCOLS` states each protocol exactly.

Splits: ``test`` holds out a share of the data with ``seed``; ``validation`` holds out the same
share again from what ``test`` trains on (``seed + 1``), so anything chosen on ``validation``
(the item-kNN's ``k`` always; engine weights by whoever passes them) is reported on ``test``
without having seen it.

This module runs the evaluation; its parts live beside it, one topic each: ``task`` (the
:class:`Task` rankers read), ``convert`` (the data sets to the import format), ``metrics``
(NDCG, recall, bootstrap) and ``baselines`` (the other rankers). Their public names are
re-exported here.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kolmatch.engine import cached_features
from kolmatch.errors import BadArgument
from kolmatch.evaluation.baselines import (
    audience_cosine,
    category_followers,
    customers_following,
    follower_count,
    item_knn,
    tune_knn,
)
from kolmatch.evaluation.convert import (
    CONVERTERS,
    MIN_GAME_FOLLOWS,
    SPLITS,
    convert_musae,
    convert_twitch_follows,
    convert_twitch_it,
)
from kolmatch.evaluation.metrics import (
    NDCG_K,
    RECALL_K,
    _mean_metric,
    bootstrap_mean,
    ndcg_at,
    recall_at,
    top_k,
)
from kolmatch.evaluation.task import Task
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.score import combine, merchant_signals, ranking_order

__all__ = [
    "DATASETS",
    "PROTOCOLS",
    "Task",
    "audience_cosine",
    "bootstrap_mean",
    "category_followers",
    "convert_musae",
    "convert_twitch_follows",
    "convert_twitch_it",
    "customers_following",
    "engine_scores",
    "evaluate_real",
    "follower_count",
    "item_knn",
    "ndcg_at",
    "recall_at",
    "results_table",
    "top_k",
    "tune_knn",
]

F64 = NDArray[np.float64]

#: The data sets evaluated, each a folder of ``shared/data`` with a converter.
DATASETS = ("twitch-follows", "twitch-it", "musae-twitch-de")

PROTOCOLS = {
    "twitch-follows": (
        "Users = viewers, talents = streamers (followers = appdata total_followers), each game "
        "(appdata game1/game2, 'Unknown' dropped) = one product, one category and one merchant "
        "selling it (price 100). Each viewer with >= 3 follows has round(20%) of them held out "
        f"(seed). A viewer bought game g (PURCHASED) if it follows >= {MIN_GAME_FOLLOWS} "
        "streamers of g in training. Merchants with >= 20 customers are evaluated; relevance of "
        "talent t = number of the merchant's customers who follow t in the held-out set (new "
        "follows only, so nothing is excluded); all talents are candidates."
    ),
    "twitch-it": (
        "No users. Talents = streamers (followers = viewerMean), merchants = publishers (else "
        "developer), products = their games (price 100), categories = Steam genres (several "
        "IN_CATEGORY rows per game). A streamer streaming a game = PROMOTED (gmv, orders, fee 0: "
        "unknown). For each publisher with >= 5 distinct streamers round(30%) of them are held "
        "out (seed): all their rows with its games removed. Relevance = 1 for a held-out "
        "streamer; streamers linked to the publisher in training are not candidates."
    ),
    "musae-twitch-de": (
        "Mutual follows between streamers: each streamer is user u<id> and talent t<id> "
        "(followers = views); each training edge a-b gives u<a>->t<b> and u<b>->t<a>. 20% of "
        "edges are held out (seed). 200 streamers with >= 20 training neighbours are sampled as "
        "merchants (one product, one category); their customers are their training "
        "neighbours. Relevance of t = number of customers with a held-out edge to t; the "
        "merchant's own talent is not a candidate."
    ),
}


# -- the engine ------------------------------------------------------------------------------


def engine_scores(
    task: Task, work: str | Path, *, weights: Mapping[str, float] | None = None
) -> tuple[F64, dict[str, Any]]:
    """The engine's (M, T) scores for the task's merchants, in the task's talent order.

    Loads ``task.folder`` into a fresh SQLite store under ``work``, builds (or reads cached)
    market features with :func:`kolmatch.engine.cached_features`, and scores each merchant with
    ``combine(merchant_signals(f, m), weights)``; -inf (excluded) stays -inf, NaN becomes -inf.

    Returns
    -------
    (ndarray, dict)
        The scores, and diagnostics: seconds per phase, NaN scores, merchants whose finite
        scores are all equal, the mean share of talents excluded, the signals that are
        constant over talents for every merchant, and the mean NDCG@20 of ranking by each
        signal alone (what each would contribute; talents the engine excludes left out).

    Raises
    ------
    ValueError
        If the task has no folder, or a weight names no signal.
    """
    if task.folder is None:
        raise ValueError("the task was converted without a folder; the engine needs one")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("store.db*"):
        old.unlink()
    t0 = time.perf_counter()
    store = SQLiteStore(work / "store.db")
    try:
        load_folder(task.folder, store)
        t1 = time.perf_counter()
        f = cached_features(store, work / "cache")
    finally:
        store.close()
    t2 = time.perf_counter()
    ids = np.asarray(f.talent_ids, dtype=str)
    at = np.minimum(np.searchsorted(ids, task.talent_ids), max(len(ids) - 1, 0))
    found = ids[at] == task.talent_ids if len(ids) else np.zeros(len(task.talent_ids), bool)
    M, T = len(task.merchant_ids), len(task.talent_ids)
    rel = task.relevance.toarray()
    mask = task.excluded.toarray() > 0
    out = np.full((M, T), -np.inf)
    nan = constant = 0
    excluded = 0.0
    spread: dict[str, bool] = {}
    alone: dict[str, list[float]] = defaultdict(list)
    for i, mid in enumerate(task.merchant_ids):
        sig = merchant_signals(f, f.merchant_row(str(mid)))
        # the engine's own order (equal scores by follower count), as scores: -rank
        order = ranking_order(f, np.asarray(combine(sig, weights), dtype=np.float64))
        s = np.full(f.n_talents, -np.inf)
        s[order] = -np.arange(len(order), dtype=np.float64)
        nan += int(np.isnan(s).sum())
        row = np.where(found, s[at], -np.inf) if len(s) else out[i]
        row = np.where(np.isnan(row), -np.inf, row)
        out[i] = row
        fin = row[np.isfinite(row)]
        constant += int(fin.size == 0 or np.ptp(fin) == 0)
        excluded += 1.0 - fin.size / max(T, 1)
        as_dict = getattr(sig, "as_dict", None)
        values: dict[str, Any] = as_dict() if callable(as_dict) else {}
        for k, v in values.items():
            a = np.where(found, np.asarray(v, dtype=np.float64)[at], -np.inf) if len(s) else out[i]
            a = np.where(mask[i] | ~np.isfinite(row), -np.inf, a)
            good = a[np.isfinite(a)]
            spread[k] = spread.get(k, False) or bool(good.size and np.ptp(good) > 0)
            if k == "risk":  # a penalty: low first, as combine subtracts it
                a = np.where(np.isfinite(a), -a, -np.inf)
            alone[k].append(ndcg_at(a, rel[i], NDCG_K))
    return out, {
        "seconds": {
            "load": round(t1 - t0, 2),
            "features": round(t2 - t1, 2),
            "score": round(time.perf_counter() - t2, 2),
        },
        "nan_scores": nan,
        "constant_rankings": constant,
        "excluded_share": round(excluded / max(M, 1), 4),
        "constant_signals": sorted(k for k, v in spread.items() if not v),
        "signal_ndcg20": {k: round(float(np.nanmean(v)), 4) for k, v in alone.items()},
        "talents_missing": int((~found).sum()),
    }


# -- the evaluation --------------------------------------------------------------------------


def _baselines(task: Task, knn: tuple[int, bool] | None) -> dict[str, F64]:
    M = len(task.merchant_ids)
    out = {"followers": follower_count(task.followers, M)}
    if task.talent_categories.shape[1] > 1:  # one category for all: the same as followers
        out["category+followers"] = category_followers(
            task.talent_categories, task.merchant_categories, task.followers
        )
    if task.has_users:
        out["customers-following"] = customers_following(task.customers, task.follows)
        out["audience-cosine"] = audience_cosine(task.customers, task.follows)
        if knn is not None:
            k, new_only = knn
            out[f"item-kNN (k={k}, {'new' if new_only else 'all'})"] = item_knn(
                task.customers, task.follows, k, new_only=new_only
            )
    return out


def _summary(scores: F64, task: Task, seed: int, resamples: int) -> dict[str, list[float]]:
    res: dict[str, list[float]] = {}
    for key, k, metric in (("ndcg20", NDCG_K, ndcg_at), ("recall50", RECALL_K, recall_at)):
        values = _mean_metric(scores, task, k, metric)
        res[key] = [round(x, 4) for x in bootstrap_mean(values, seed=seed, resamples=resamples)]
    return res


def evaluate_real(
    data_dir: str | Path,
    work: str | Path,
    *,
    datasets: Sequence[str] = DATASETS,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
    split: str = "test",
    resamples: int = 1000,
) -> dict[str, Any]:
    """Held-out evaluation of the engine and the baselines on the real data sets.

    For each data set: convert it (the ``split`` side only is written and loaded), tune the
    item-kNN's ``k`` on the validation split, score every ranker for every evaluated merchant
    and average NDCG@20 and recall@50 over merchants with a 95% bootstrap interval (paired:
    the same resamples for every ranker). Choose engine ``weights`` with
    ``split="validation"``; report them with ``split="test"``.

    Parameters
    ----------
    data_dir
        The ``shared/data`` folder.
    work
        Scratch folder: converted folders, stores and feature caches (reused runs overwrite).
    datasets
        Any of :data:`DATASETS`.
    seed
        Fixes every split, the musae merchants and the bootstrap.
    weights
        Engine signal weights (overrides of the defaults), passed to ``combine``.
    split
        ``test`` (report) or ``validation`` (tune).
    resamples
        Bootstrap resamples.

    Returns
    -------
    dict
        Per data set: ``protocol``, ``split``, ``merchants`` (evaluated), ``stats`` (sizes),
        ``knn`` (k chosen and the validation NDCG@20 of each k tried), ``rankers``
        (``{name: {"ndcg20": [mean, lo, hi], "recall50": [...]}}``, the engine as ``engine``),
        ``engine`` (diagnostics) and ``seconds``.

    Raises
    ------
    BadArgument
        If a data set or the split is unknown.
    InputError
        If a source file is missing or unreadable.
    """
    if split not in SPLITS:
        raise BadArgument("split", f"must be one of {', '.join(SPLITS)}, got {split!r}")
    unknown = [d for d in datasets if d not in CONVERTERS]
    if unknown:
        raise BadArgument("datasets", f"unknown {unknown}; known: {', '.join(DATASETS)}")
    data_dir, work = Path(data_dir), Path(work)
    results: dict[str, Any] = {}
    for name in datasets:
        t0 = time.perf_counter()
        convert = CONVERTERS[name]
        task = convert(data_dir / name, work / name / split, split=split, seed=seed)
        t1 = time.perf_counter()
        best: tuple[int, bool] | None = None
        knn: dict[str, Any] = {}
        if task.has_users:
            tune = (
                task
                if split == "validation"
                else convert(data_dir / name, None, seed=seed, split="validation")
            )
            best, tried = tune_knn(tune)
            knn = {
                "k": best[0],
                "new_only": best[1],
                "validation_ndcg20": {a: round(b, 4) for a, b in tried.items()},
            }
        t2 = time.perf_counter()
        rankers = {r: _summary(s, task, seed, resamples) for r, s in _baselines(task, best).items()}
        t3 = time.perf_counter()
        scores, diag = engine_scores(task, work / name / f"{split}-engine", weights=weights)
        rankers["engine"] = _summary(scores, task, seed, resamples)
        t4 = time.perf_counter()
        results[name] = {
            "protocol": PROTOCOLS[name],
            "split": split,
            "seed": seed,
            "merchants": len(task.merchant_ids),
            "stats": task.stats,
            "knn": knn,
            "rankers": rankers,
            "engine": diag,
            "seconds": {
                "convert": round(t1 - t0, 2),
                "tune_knn": round(t2 - t1, 2),
                "baselines": round(t3 - t2, 2),
                "engine": round(t4 - t3, 2),
                "total": round(t4 - t0, 2),
            },
        }
    return results


def _cell(v: list[float]) -> str:
    return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"


def results_table(results: Mapping[str, Any]) -> str:
    """:func:`evaluate_real`'s results as a markdown table: data set x ranker x metric."""
    lines = [
        "| data set | merchants | ranker | NDCG@20 [95% CI] | recall@50 [95% CI] |",
        "|---|---:|---|---|---|",
    ]
    for name, r in results.items():
        for ranker, m in r["rankers"].items():
            lines.append(
                f"| {name} | {r['merchants']} | {ranker} | {_cell(m['ndcg20'])} "
                f"| {_cell(m['recall50'])} |"
            )
    lines.append("")
    for name, r in results.items():
        e = r["engine"]
        lines.append(
            f"- {name}: {r['seconds']['total']:.1f} s ({r['seconds']}); engine constant rankings "
            f"{e['constant_rankings']}/{r['merchants']}, signals constant over talents: "
            f"{', '.join(e['constant_signals']) or 'none'}"
        )
    return "\n".join(lines)
