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
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch.engine import cached_features
from kolmatch.errors import BadArgument, InputError, InputProblem
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.loaders.reader import ProblemLog
from kolmatch.loaders.twitch import SNAPSHOT_DATE, parse_count
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
I64 = NDArray[np.int64]

#: Unit price of every product: the data sets have none and the format requires one.
PRICE = 100.0
#: A merchant is evaluated only with at least this many customers (twitch-follows, musae).
MIN_CUSTOMERS = 20
#: A viewer "bought" a game if it follows at least this many of the game's streamers.
MIN_GAME_FOLLOWS = 2
#: Held-out shares: of each viewer's follows, of each publisher's streamers, of all edges.
FOLLOW_HOLDOUT, LINK_HOLDOUT, EDGE_HOLDOUT = 0.2, 0.3, 0.2
#: Publishers with fewer distinct streamers keep them all (and are not evaluated).
MIN_LINKS = 5
#: musae: how many streamers are sampled as merchants.
MUSAE_MERCHANTS = 200
#: Item-kNN neighbourhood sizes tried on the validation split.
K_GRID = (5, 10, 20, 50, 100, 200)
#: Category + followers: a talent is "in the merchant's categories" from this share of its mix.
CATEGORY_SHARE = 0.2
NDCG_K, RECALL_K = 20, 50
DATASETS = ("twitch-follows", "twitch-it", "musae-twitch-de")
SPLITS = ("test", "validation")

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


@dataclass(frozen=True)
class Task:
    """One held-out ranking task: what rankers may read, and the held-out truth they are scored on.

    Shapes: T talents (candidates, in ``talent_ids`` order), M evaluated merchants, U users,
    C categories. Rankers read only the training side: ``followers``, the category mixes,
    ``follows`` and ``customers``; ``relevance`` is the held-out truth.
    """

    dataset: str
    split: str
    folder: Path | None  # the converted import folder (training side only); None if not written
    talent_ids: NDArray[np.str_]
    merchant_ids: NDArray[np.str_]  # the evaluated merchants (those with held-out truth)
    followers: F64  # (T,)
    talent_categories: F64  # (T, C) rows sum to 1 (0 for a talent with no category)
    merchant_categories: F64  # (M, C) rows sum to 1
    follows: sp.csr_matrix  # (U, T) training follows, 1 per pair; U = 0 without users
    customers: sp.csr_matrix  # (M, U) 1 where the user bought from the merchant in training
    relevance: sp.csr_matrix  # (M, T) held-out gain of each talent for each merchant
    excluded: sp.csr_matrix  # (M, T) 1 where a talent is not a candidate for the merchant
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def has_users(self) -> bool:
        return bool(self.follows.shape[0] > 0)


# -- metrics --------------------------------------------------------------------------------


def top_k(score: F64, k: int) -> I64:
    """The ``k`` best finite scores' positions, best first; ties go to the lower position.

    Examples
    --------
    >>> top_k(np.array([0.5, 2.0, -np.inf, 2.0, np.nan]), 3).tolist()
    [1, 3, 0]
    """
    s = np.where(np.isnan(score), -np.inf, score)
    order = np.lexsort((np.arange(len(s)), -s))
    return order[np.isfinite(s[order])][:k].astype(np.int64)


def ndcg_at(score: F64, relevance: F64, k: int) -> float:
    """NDCG@k with linear gains: DCG of the top k by ``score`` over the best possible DCG.

    Discount ``1 / log2(rank + 1)``; talents with a non-finite score are not ranked. NaN if
    nothing is relevant.

    Examples
    --------
    >>> round(ndcg_at(np.array([3.0, 2.0, 1.0]), np.array([0.0, 2.0, 1.0]), 2), 4)
    0.4796
    """
    top = top_k(score, k)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.sort(relevance)[::-1][:k]
    idcg = float(ideal @ disc[: len(ideal)])
    if idcg <= 0:
        return float("nan")
    return float(relevance[top] @ disc[: len(top)]) / idcg


def recall_at(score: F64, relevance: F64, k: int) -> float:
    """Share of the held-out gain that the top k by ``score`` hold (plain recall if 0/1).

    Examples
    --------
    >>> recall_at(np.array([3.0, 2.0, 1.0]), np.array([0.0, 2.0, 1.0]), 2)
    0.6666666666666666
    """
    total = float(relevance.sum())
    if total <= 0:
        return float("nan")
    return float(relevance[top_k(score, k)].sum()) / total


def bootstrap_mean(
    values: Sequence[float] | F64, *, seed: int, resamples: int = 1000, level: float = 0.95
) -> tuple[float, float, float]:
    """The mean and a percentile bootstrap interval of it (values resampled with replacement).

    The same ``seed`` resamples the same merchants for every ranker, so intervals are paired.

    Examples
    --------
    >>> bootstrap_mean([1.0, 1.0, 1.0], seed=0)
    (1.0, 1.0, 1.0)
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (float("nan"),) * 3
    idx = np.random.default_rng(seed).integers(0, v.size, size=(resamples, v.size))
    means = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(v.mean()), float(lo), float(hi)


# -- baselines: (M, T) scores, higher is better -----------------------------------------------


def follower_count(followers: F64, merchants: int) -> F64:
    """Every merchant ranks talents by their reported followers.

    Examples
    --------
    >>> follower_count(np.array([5.0, 7.0]), 2).tolist()
    [[5.0, 7.0], [5.0, 7.0]]
    """
    f = np.nan_to_num(np.asarray(followers, dtype=np.float64))
    return np.tile(f, (merchants, 1))


def category_followers(
    talent_categories: F64,
    merchant_categories: F64,
    followers: F64,
    *,
    share: float = CATEGORY_SHARE,
) -> F64:
    """Talents in the merchant's categories first (``share`` of their mix or more), by followers.

    Examples
    --------
    >>> tc = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    >>> s = category_followers(tc, np.array([[0.0, 1.0]]), np.array([9.0, 1.0, 5.0]))
    >>> top_k(s[0], 3).tolist()
    [2, 1, 0]
    """
    mass = (talent_categories @ (merchant_categories > 0).T.astype(np.float64)).T  # (M, T)
    inside = mass >= share
    f = np.nan_to_num(np.asarray(followers, dtype=np.float64))
    rank = np.empty(len(f))
    rank[np.argsort(f, kind="stable")] = np.arange(len(f))
    return inside.astype(np.float64) + rank[None, :] / (len(f) + 1.0)


def customers_following(customers: sp.csr_matrix, follows: sp.csr_matrix) -> F64:
    """How many of the merchant's customers follow each talent (training follows).

    Examples
    --------
    >>> c = sp.csr_matrix([[1.0, 1.0, 0.0]])
    >>> f = sp.csr_matrix([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    >>> customers_following(c, f).tolist()
    [[2.0, 1.0]]
    """
    return np.asarray(sp.csr_matrix(customers @ follows).toarray(), dtype=np.float64)


def audience_cosine(customers: sp.csr_matrix, follows: sp.csr_matrix) -> F64:
    """Cosine between each talent's audience (users following it) and the merchant's customers.

    Examples
    --------
    >>> c = sp.csr_matrix([[1.0, 1.0, 0.0]])
    >>> f = sp.csr_matrix([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    >>> np.round(audience_cosine(c, f), 4).tolist()
    [[1.0, 0.5]]
    """
    both = customers_following(customers, follows)
    aud = np.sqrt(np.asarray(follows.sum(axis=0)).ravel())
    cust = np.sqrt(np.asarray(customers.sum(axis=1)).ravel())
    norm = cust[:, None] * aud[None, :]
    out: F64 = np.divide(both, norm, out=np.zeros_like(both), where=norm > 0)
    return out


def _neighbours(follows: sp.csr_matrix, k: int, *, block: int = 512) -> tuple[I64, F64]:
    """Each talent's ``k`` most similar talents (audience cosine, self excluded), best first."""
    f = sp.csc_matrix(follows, dtype=np.float64)
    f.data[:] = 1.0
    T = f.shape[1]
    k = max(1, min(k, T - 1))
    norms = np.sqrt(np.asarray(f.sum(axis=0)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    ft = sp.csr_matrix(f.T)
    idx = np.zeros((T, k), dtype=np.int64)
    val = np.zeros((T, k))
    for a in range(0, T, block):
        b = min(a + block, T)
        sim = np.asarray(sp.csr_matrix(ft[a:b] @ f).toarray()) * inv[a:b, None] * inv[None, :]
        sim[np.arange(b - a), np.arange(a, b)] = -1.0  # never one's own neighbour
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        pv = np.take_along_axis(sim, part, axis=1)
        order = np.lexsort((part, -pv), axis=1)  # by similarity, ties by position
        idx[a:b] = np.take_along_axis(part, order, axis=1)
        val[a:b] = np.maximum(np.take_along_axis(pv, order, axis=1), 0.0)
    return idx, val


def _knn_parts(
    customers: sp.csr_matrix, follows: sp.csr_matrix, idx: I64, val: F64, k: int
) -> tuple[F64, F64]:
    """Item-kNN through each talent's first ``k`` neighbours: the (M, T) sum over all
    customers, and the part of it that comes from customers already following the talent.

    Per customer c, ``score_c(t) = sum over j followed by c of sim_k(j, t)``; the second part
    is read only at follow pairs, a block of users at a time.
    """
    T = idx.shape[0]
    k = min(k, idx.shape[1])
    rows = np.repeat(np.arange(T), k)
    sim = sp.csr_matrix((val[:, :k].ravel(), (rows, idx[:, :k].ravel())), shape=(T, T))
    f = sp.csr_matrix(follows, dtype=np.float64)
    total = np.asarray(sp.csr_matrix(sim.T) @ customers_following(customers, f).T).T
    parts = [
        sp.csr_matrix(sp.csr_matrix(f[a : a + 2048] @ sim).multiply(f[a : a + 2048]))
        for a in range(0, f.shape[0], 2048)
    ]
    own = sp.vstack(parts, format="csr") if parts else sp.csr_matrix(f.shape)
    return total, np.asarray(sp.csr_matrix(customers @ own).toarray(), dtype=np.float64)


def item_knn(
    customers: sp.csr_matrix, follows: sp.csr_matrix, k: int, *, new_only: bool = True
) -> F64:
    """Item-kNN for a merchant: summed over its customers, each one's item-kNN score.

    Talent-talent similarity is the cosine of their audiences (training follows), each talent
    keeping its ``k`` nearest; a customer scores a talent by the summed similarity of the
    talents it follows to it. With ``new_only`` only customers not yet following the talent
    count (they alone can follow it anew); otherwise all do.

    Examples
    --------
    >>> f = sp.csr_matrix([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    >>> c = sp.csr_matrix([[1.0, 0.0, 1.0]])
    >>> [np.round(item_knn(c, f, 1, new_only=n), 4).tolist() for n in (True, False)]
    [[[0.5, 0.0, 0.0]], [[1.5, 1.0, 0.0]]]
    """
    idx, val = _neighbours(follows, k)
    total, own = _knn_parts(customers, follows, idx, val, k)
    return total - own if new_only else total


def _mean_metric(scores: F64, task: Task, k: int, metric: Callable[[F64, F64, int], float]) -> F64:
    """The metric for every evaluated merchant, excluded pairs masked."""
    rel = task.relevance.toarray()
    mask = task.excluded.toarray() > 0
    s = np.where(mask, -np.inf, scores)
    return np.array([metric(s[m], rel[m], k) for m in range(len(task.merchant_ids))])


def tune_knn(task: Task, ks: Iterable[int] = K_GRID) -> tuple[tuple[int, bool], dict[str, float]]:
    """The item-kNN ``k`` and ``new_only`` with the best mean NDCG@20 on ``task`` (validation).

    Returns
    -------
    ((int, bool), dict)
        The best ``(k, new_only)`` (smaller ``k`` first among ties) and the mean NDCG@20 of
        each setting tried, keyed ``"k=50 new"`` / ``"k=50 all"``.
    """
    ks = sorted(set(ks))
    idx, val = _neighbours(task.follows, max(ks))
    means: dict[tuple[int, bool], float] = {}
    for k in ks:
        total, own = _knn_parts(task.customers, task.follows, idx, val, k)
        for new_only in (True, False):
            s = total - own if new_only else total
            means[k, new_only] = float(np.nanmean(_mean_metric(s, task, NDCG_K, ndcg_at)))
    best = max(means, key=lambda kn: (means[kn], -kn[0], kn[1]))
    return best, {f"k={k} {'new' if n else 'all'}": v for (k, n), v in means.items()}


# -- reading raw files, splitting, writing the import format ----------------------------------


def _missing(path: Path, line: int, fld: str, reason: str) -> InputError:
    return InputError([InputProblem(str(path), line, fld, reason)])


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """A raw CSV's rows (the named columns, stripped) with the line each ends on.

    Raises
    ------
    InputError
        If the file is missing or lacks one of ``columns``.
    """
    if not path.is_file():
        raise _missing(path, 0, "", "file not found")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        absent = [c for c in columns if c not in header]
        if absent:
            raise InputError([InputProblem(str(path), 1, c, "missing column") for c in absent])
        return [(reader.line_num, {c: (r.get(c) or "").strip() for c in columns}) for r in reader]


def _raise_if(log: ProblemLog) -> None:
    if log:
        raise InputError(log.problems, log.truncated)


def _count(text: str) -> int:
    """A non-negative whole count written as ``812`` or ``812.0``; ValueError otherwise."""
    x = float(text)
    if not np.isfinite(x) or x < 0:
        raise ValueError(text)
    return round(x)


def _check_split(split: str) -> None:
    # "all" writes every row (a market to try, nothing held out); converters accept it
    if split not in (*SPLITS, "all"):
        raise BadArgument("split", f"must be one of {', '.join(SPLITS)}, got {split!r}")


def _holdout(
    groups: Mapping[str, Iterable[str]], share: float, seed: int, min_size: int
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Hold out ``round(share x n)`` (at least 1) of each group of ``min_size`` or more items.

    Groups are visited in key order and items sorted, so a seed fixes the split.
    """
    rng = np.random.default_rng(seed)
    train: dict[str, list[str]] = {}
    held: dict[str, list[str]] = {}
    for key in sorted(groups):
        items = sorted(set(groups[key]))
        n = len(items)
        k = max(1, round(share * n)) if n >= min_size and share > 0 else 0
        out = set(rng.choice(n, size=k, replace=False).tolist()) if k else set()
        train[key] = [x for i, x in enumerate(items) if i not in out]
        if out:
            held[key] = [items[i] for i in sorted(out)]
    return train, held


def _matrix(pairs: Iterable[tuple[int, int]], shape: tuple[int, int]) -> sp.csr_matrix:
    """A 0/1 CSR matrix with a 1 at each (row, column) pair (duplicates count once)."""
    p = np.array(list(pairs), dtype=np.int64).reshape(-1, 2)
    m = sp.csr_matrix((np.ones(len(p)), (p[:, 0], p[:, 1])), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _row_normalised(m: sp.csr_matrix | F64) -> F64:
    d = np.asarray(sp.csr_matrix(m).toarray(), dtype=np.float64)
    s = d.sum(axis=1, keepdims=True)
    out: F64 = np.divide(d, s, out=np.zeros_like(d), where=s > 0)
    return out


def _write(folder: Path, name: str, header: list[str], rows: Iterable[Sequence[object]]) -> None:
    with (folder / name).open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _folder(out: str | Path | None) -> Path | None:
    if out is None:
        return None
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("*.csv"):
        old.unlink()  # a folder written before for another split or seed
    return d


def convert_twitch_follows(
    src: str | Path,
    out: str | Path | None,
    *,
    split: str = "test",
    seed: int = 0,
    min_customers: int = MIN_CUSTOMERS,
) -> Task:
    """Write ``twitch-follows`` as an import folder holding its training side; return the task.

    See ``PROTOCOLS["twitch-follows"]``: viewers are users, streamers talents, each game a
    product, a category and a merchant whose customers are the viewers following at least
    :data:`MIN_GAME_FOLLOWS` of its streamers in training.

    Parameters
    ----------
    src
        The ``twitch-follows`` folder (``follows.csv``, ``appdata.csv``).
    out
        Import folder to write (its CSV files are replaced); None to write nothing.
    split
        ``test``, ``validation`` (held out again from the test split's training side) or
        ``all`` (nothing held out: the whole data as a market to try).
    seed
        Which follows are held out.
    min_customers
        Games with fewer customers are not evaluated (they are still written).

    Raises
    ------
    InputError
        If a source file or column is missing, or a row is unreadable.
    BadArgument
        If ``split`` is unknown.
    """
    _check_split(split)
    src = Path(src)
    app_path, fol_path = src / "appdata.csv", src / "follows.csv"
    app = _read_csv(app_path, ("name", "total_followers", "game1", "game2"))
    fol = _read_csv(fol_path, ("user_id", "streamer"))
    log = ProblemLog()
    followers: dict[str, int] = {}
    games_of: dict[str, list[str]] = {}
    for line, r in app:
        name = r["name"]
        if not name or name in followers:
            log.add(str(app_path), line, "name", "empty" if not name else f"duplicate {name!r}")
            continue
        try:
            followers[name] = parse_count(r["total_followers"])
        except (ValueError, OverflowError):
            log.add(
                str(app_path),
                line,
                "total_followers",
                f"not a follower count: {r['total_followers']!r}",
            )
            continue
        games_of[name] = sorted({g for g in (r["game1"], r["game2"]) if g and g != "Unknown"})
    by_user: dict[str, set[str]] = defaultdict(set)
    for line, r in fol:
        for col in ("user_id", "streamer"):
            if not r[col]:
                log.add(str(fol_path), line, col, "empty")
        if r["user_id"] and r["streamer"] in followers:  # streamers without appdata are dropped
            by_user[r["user_id"]].add(r["streamer"])
    _raise_if(log)

    train, held = _holdout(by_user, 0.0 if split == "all" else FOLLOW_HOLDOUT, seed, 3)
    if split == "validation":
        train, held = _holdout(train, FOLLOW_HOLDOUT, seed + 1, 3)
    talents = sorted(followers)
    t_of = {t: i for i, t in enumerate(talents)}
    users = sorted(u for u, ts in train.items() if ts)
    u_of = {u: i for i, u in enumerate(users)}
    games = sorted({g for gs in games_of.values() for g in gs})
    g_of = {g: i for i, g in enumerate(games)}
    U, T, C = len(users), len(talents), len(games)
    follows = _matrix(((u_of[u], t_of[t]) for u in users for t in train[u]), (U, T))
    held_m = _matrix(
        ((u_of[u], t_of[t]) for u, ts in held.items() if u in u_of for t in ts), (U, T)
    )
    plays = _matrix(((t_of[t], g_of[g]) for t, gs in games_of.items() for g in gs), (T, C))
    bought = sp.csr_matrix(follows @ plays)  # (U, C) followed streamers of each game
    bought.data = (bought.data >= MIN_GAME_FOLLOWS).astype(np.float64)
    bought.eliminate_zeros()
    buyers = sp.csr_matrix(bought.T)  # (C, U)
    gain = sp.csr_matrix(buyers @ held_m)  # (C, T) customers' held-out follows of each talent
    n_buyers = np.asarray(buyers.sum(axis=1)).ravel()
    keep = np.nonzero((n_buyers >= min_customers) & (np.asarray(gain.sum(axis=1)).ravel() > 0))[0]

    d = _folder(out)
    if d is not None:
        channels = [(t, g) for t in talents for g in games_of[t]]
        _write(d, "user.csv", ["id"], ([u] for u in users))
        _write(
            d, "talent.csv", ["id", "name", "followers"], ([t, t, followers[t]] for t in talents)
        )
        _write(d, "category.csv", ["id", "name"], ([g, g] for g in games))
        _write(d, "product.csv", ["id", "name", "price"], ([g, g, PRICE] for g in games))
        _write(d, "in_category.csv", ["src", "dst"], ([g, g] for g in games))
        _write(d, "merchant.csv", ["id", "name"], ([g, g] for g in games))
        _write(d, "sells.csv", ["src", "dst"], ([g, g] for g in games))
        _write(
            d,
            "content.csv",
            ["id", "kind", "published"],
            ([f"{t}/{g}", "live", SNAPSHOT_DATE] for t, g in channels),
        )
        _write(d, "published.csv", ["src", "dst"], ([t, f"{t}/{g}"] for t, g in channels))
        _write(d, "features.csv", ["src", "dst"], ([f"{t}/{g}", g] for t, g in channels))
        _write(d, "follows.csv", ["src", "dst"], ([u, t] for u in users for t in train[u]))
        bu = bought.tocoo()
        _write(
            d,
            "purchased.csv",
            ["src", "dst", "order_id", "amount", "time"],
            (
                [users[u], games[g], f"{users[u]}/{games[g]}", PRICE, SNAPSHOT_DATE]
                for u, g in sorted(zip(bu.row.tolist(), bu.col.tolist(), strict=True))
            ),
        )
    return Task(
        dataset="twitch-follows",
        split=split,
        folder=d,
        talent_ids=np.array(talents, dtype=str),
        merchant_ids=np.array([games[i] for i in keep], dtype=str),
        followers=np.array([followers[t] for t in talents], dtype=np.float64),
        talent_categories=_row_normalised(plays),
        merchant_categories=np.eye(C)[keep],
        follows=follows,
        customers=sp.csr_matrix(buyers[keep]),
        relevance=sp.csr_matrix(gain[keep]),
        excluded=sp.csr_matrix((len(keep), T)),
        stats={
            "users": U,
            "talents": T,
            "merchants": C,
            "train_follows": int(follows.nnz),
            "held_out_follows": int(held_m.nnz),
            "purchases": int(bought.nnz),
        },
    )


def convert_twitch_it(
    src: str | Path,
    out: str | Path | None,
    *,
    split: str = "test",
    seed: int = 0,
    min_links: int = MIN_LINKS,
) -> Task:
    """Write ``twitch-it`` as an import folder holding its training side; return the task.

    See ``PROTOCOLS["twitch-it"]``: a market without users, where publishers (else the
    developer) are merchants, their games products with Steam genres as categories, and a
    streamer streaming a game a past collaboration (PROMOTED, GMV unknown and written as 0).

    Parameters
    ----------
    src
        The ``twitch-it`` folder (``Streamer_dataset.csv``, ``Games_dataset.csv``,
        ``Streamer-Games_dataset.csv``).
    out, split, seed
        As :func:`convert_twitch_follows`; here the seed picks each publisher's held-out
        streamers.
    min_links
        Publishers with fewer distinct streamers keep them all and are not evaluated.

    Raises
    ------
    InputError
        If a source file or column is missing, or a row is unreadable or names an unknown id.
    BadArgument
        If ``split`` is unknown.
    """
    _check_split(split)
    src = Path(src)
    s_path, g_path = src / "Streamer_dataset.csv", src / "Games_dataset.csv"
    l_path = src / "Streamer-Games_dataset.csv"
    streamers = _read_csv(s_path, ("idStreamer", "streamer", "viewerMean"))
    games = _read_csv(g_path, ("idGame", "gameName", "developer", "publisher", "categories"))
    links = _read_csv(l_path, ("ID_streamer", "ID_game"))
    log = ProblemLog()
    followers: dict[str, int] = {}
    name_of: dict[str, str] = {}
    for line, r in streamers:
        tid = f"s{r['idStreamer']}"
        if not r["idStreamer"] or tid in followers:
            log.add(str(s_path), line, "idStreamer", "empty or duplicate id")
            continue
        try:
            followers[tid] = _count(r["viewerMean"])
        except ValueError:
            log.add(str(s_path), line, "viewerMean", f"not a count: {r['viewerMean']!r}")
            continue
        name_of[tid] = r["streamer"] or tid
    known: set[str] = set()
    merchant_of: dict[str, str] = {}
    game_name: dict[str, str] = {}
    genres_of: dict[str, list[str]] = {}
    for line, r in games:
        pid = f"g{r['idGame']}"
        if not r["idGame"] or pid in known:
            log.add(str(g_path), line, "idGame", "empty or duplicate id")
            continue
        known.add(pid)
        merchant = r["publisher"] or r["developer"]
        if merchant:  # games nobody publishes or develops on Steam have no merchant: left out
            merchant_of[pid] = merchant
            game_name[pid] = r["gameName"] or pid
            genres_of[pid] = sorted({c.strip() for c in r["categories"].split(";") if c.strip()})
    rows: set[tuple[str, str]] = set()
    for line, r in links:
        tid, pid = f"s{r['ID_streamer']}", f"g{r['ID_game']}"
        if tid not in followers:
            log.add(str(l_path), line, "ID_streamer", f"unknown streamer {r['ID_streamer']!r}")
        elif pid not in known:
            log.add(str(l_path), line, "ID_game", f"unknown game {r['ID_game']!r}")
        elif pid in merchant_of:
            rows.add((tid, pid))
    _raise_if(log)

    by_merchant: dict[str, set[str]] = defaultdict(set)
    for t, p in rows:
        by_merchant[merchant_of[p]].add(t)
    train, held = _holdout(by_merchant, 0.0 if split == "all" else LINK_HOLDOUT, seed, min_links)
    if split == "validation":
        train, held = _holdout(train, LINK_HOLDOUT, seed + 1, min_links)
    linked = {(m, t) for m, ts in train.items() for t in ts}
    promoted = sorted((t, p) for t, p in rows if (merchant_of[p], t) in linked)

    talents = sorted(followers)
    t_of = {t: i for i, t in enumerate(talents)}
    products = sorted(merchant_of)
    p_of = {p: i for i, p in enumerate(products)}
    merchants = sorted(set(merchant_of.values()))
    m_of = {m: i for i, m in enumerate(merchants)}
    genres = sorted({g for gs in genres_of.values() for g in gs})
    c_of = {g: i for i, g in enumerate(genres)}
    T, P, C = len(talents), len(products), len(genres)
    genre_share = np.zeros((P, C))
    for p, gs in genres_of.items():
        for g in gs:
            genre_share[p_of[p], c_of[g]] = 1.0 / len(gs)
    did = np.zeros((T, P))
    for t, p in promoted:
        did[t_of[t], p_of[p]] += 1.0
    sells = _matrix(((m_of[merchant_of[p]], p_of[p]) for p in products), (len(merchants), P))
    evaluated = sorted(held)
    e_of = {m: i for i, m in enumerate(evaluated)}
    M = len(evaluated)

    d = _folder(out)
    if d is not None:
        _write(
            d,
            "talent.csv",
            ["id", "name", "followers"],
            ([t, name_of[t], followers[t]] for t in talents),
        )
        _write(d, "merchant.csv", ["id", "name"], ([m, m] for m in merchants))
        _write(
            d, "product.csv", ["id", "name", "price"], ([p, game_name[p], PRICE] for p in products)
        )
        _write(d, "category.csv", ["id", "name"], ([g, g] for g in genres))
        _write(
            d, "in_category.csv", ["src", "dst"], ([p, g] for p in products for g in genres_of[p])
        )
        _write(d, "sells.csv", ["src", "dst"], ([merchant_of[p], p] for p in products))
        _write(
            d,
            "promoted.csv",
            ["src", "dst", "collab_id", "gmv", "orders", "fee", "time"],
            ([t, p, f"{t}/{p}", 0.0, 0, 0.0, SNAPSHOT_DATE] for t, p in promoted),
        )
    return Task(
        dataset="twitch-it",
        split=split,
        folder=d,
        talent_ids=np.array(talents, dtype=str),
        merchant_ids=np.array(evaluated, dtype=str),
        followers=np.array([followers[t] for t in talents], dtype=np.float64),
        talent_categories=_row_normalised(did @ genre_share),
        merchant_categories=_row_normalised(
            np.asarray(sells[[m_of[m] for m in evaluated]] @ genre_share)
        ),
        follows=sp.csr_matrix((0, T)),
        customers=sp.csr_matrix((M, 0)),
        relevance=_matrix(((e_of[m], t_of[t]) for m, ts in held.items() for t in ts), (M, T)),
        excluded=_matrix(((e_of[m], t_of[t]) for m in evaluated for t in train[m]), (M, T)),
        stats={
            "talents": T,
            "merchants": len(merchants),
            "products": P,
            "categories": C,
            "train_links": len(linked),
            "held_out_links": sum(len(ts) for ts in held.values()),
            "promoted": len(promoted),
        },
    )


def _split_edges(edges: I64, share: float, seed: int) -> tuple[I64, I64]:
    """``round(share x E)`` edges drawn uniformly (seeded) are held out."""
    perm = np.random.default_rng(seed).permutation(len(edges))
    k = round(share * len(edges))
    return edges[np.sort(perm[k:])], edges[np.sort(perm[:k])]


def _symmetric(edges: I64, n: int) -> sp.csr_matrix:
    both = np.concatenate([edges, edges[:, ::-1]]) if len(edges) else edges
    return _matrix(map(tuple, both.tolist()), (n, n))


def convert_musae(
    src: str | Path,
    out: str | Path | None,
    *,
    split: str = "test",
    seed: int = 0,
    merchants: int = MUSAE_MERCHANTS,
    min_customers: int = MIN_CUSTOMERS,
) -> Task:
    """Write ``musae-twitch-de`` as an import folder holding its training side; return the task.

    See ``PROTOCOLS["musae-twitch-de"]``: every streamer is a user and a talent, a mutual
    follow two FOLLOWS; ``merchants`` sampled streamers sell one product each, bought by their
    training neighbours, and ask which talents their neighbours will link to next.

    Parameters
    ----------
    src
        The ``musae-twitch-de`` folder (``edges.csv``, ``target.csv``).
    out, split, seed
        As :func:`convert_twitch_follows`; here the seed picks the held-out edges and the
        merchants.
    merchants
        How many streamers with at least ``min_customers`` training neighbours are sampled.
    min_customers
        Fewest training neighbours (customers) of a merchant.

    Raises
    ------
    InputError
        If a source file or column is missing, or a row is unreadable or names an unknown node.
    BadArgument
        If ``split`` is unknown.
    """
    _check_split(split)
    src = Path(src)
    n_path, e_path = src / "target.csv", src / "edges.csv"
    target = _read_csv(n_path, ("new_id", "views"))
    edge_rows = _read_csv(e_path, ("from", "to"))
    log = ProblemLog()
    views: dict[int, int] = {}
    for line, r in target:
        try:
            node = int(r["new_id"])
        except ValueError:
            log.add(str(n_path), line, "new_id", f"not a node id: {r['new_id']!r}")
            continue
        try:
            views[node] = _count(r["views"])
        except ValueError:
            log.add(str(n_path), line, "views", f"not a count: {r['views']!r}")
    pairs: set[tuple[int, int]] = set()
    for line, r in edge_rows:
        ends: list[int] = []
        for col in ("from", "to"):
            try:
                ends.append(int(r[col]))
            except ValueError:
                log.add(str(e_path), line, col, f"not a node id: {r[col]!r}")
                continue
            if ends[-1] not in views:
                log.add(str(e_path), line, col, f"unknown node {r[col]!r}")
        if len(ends) == 2 and ends[0] != ends[1]:  # self-loops say nothing about reach
            pairs.add((min(ends), max(ends)))
    _raise_if(log)

    nodes = sorted(views)
    pos = {n: i for i, n in enumerate(nodes)}
    N = len(nodes)
    edges = np.array([(pos[a], pos[b]) for a, b in sorted(pairs)], dtype=np.int64).reshape(-1, 2)
    train_e, held_e = _split_edges(edges, 0.0 if split == "all" else EDGE_HOLDOUT, seed)
    if split == "validation":
        train_e, held_e = _split_edges(train_e, EDGE_HOLDOUT, seed + 1)
    adj, held = _symmetric(train_e, N), _symmetric(held_e, N)
    deg = np.diff(adj.indptr)
    eligible = np.nonzero(deg >= min_customers)[0]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, size=min(merchants, len(eligible)), replace=False))
    buyers = sp.csr_matrix(adj[chosen])
    gain = sp.lil_matrix(buyers @ held)
    for i, n in enumerate(chosen.tolist()):
        gain[i, n] = 0.0  # the merchant's own channel is not a candidate (and never relevant)
    gain_c = sp.csr_matrix(gain)
    gain_c.eliminate_zeros()
    keep = np.nonzero(np.asarray(gain_c.sum(axis=1)).ravel() > 0)[0]

    d = _folder(out)
    if d is not None:
        ids = [str(n) for n in nodes]
        both = np.concatenate([train_e, train_e[:, ::-1]])
        both = both[np.lexsort((both[:, 1], both[:, 0]))]
        _write(d, "user.csv", ["id"], ([f"u{n}"] for n in ids))
        _write(
            d,
            "talent.csv",
            ["id", "name", "followers"],
            ([f"t{n}", f"streamer {n}", views[int(n)]] for n in ids),
        )
        _write(d, "follows.csv", ["src", "dst"], ([f"u{ids[a]}", f"t{ids[b]}"] for a, b in both))
        _write(d, "category.csv", ["id", "name"], [["twitch-de", "Twitch DE"]])
        picked = [ids[i] for i in chosen]
        _write(
            d,
            "product.csv",
            ["id", "name", "price"],
            ([f"p{n}", f"channel of streamer {n}", PRICE] for n in picked),
        )
        _write(d, "in_category.csv", ["src", "dst"], ([f"p{n}", "twitch-de"] for n in picked))
        _write(d, "merchant.csv", ["id", "name"], ([f"m{n}", f"streamer {n}"] for n in picked))
        _write(d, "sells.csv", ["src", "dst"], ([f"m{n}", f"p{n}"] for n in picked))
        bc = buyers.tocoo()
        _write(
            d,
            "purchased.csv",
            ["src", "dst", "order_id", "amount", "time"],
            (
                [f"u{ids[c]}", f"p{picked[m]}", f"u{ids[c]}/p{picked[m]}", PRICE, SNAPSHOT_DATE]
                for m, c in sorted(zip(bc.row.tolist(), bc.col.tolist(), strict=True))
            ),
        )
    M = len(keep)
    return Task(
        dataset="musae-twitch-de",
        split=split,
        folder=d,
        talent_ids=np.array([f"t{n}" for n in nodes], dtype=str),
        merchant_ids=np.array([f"m{nodes[chosen[i]]}" for i in keep], dtype=str),
        followers=np.array([views[n] for n in nodes], dtype=np.float64),
        talent_categories=np.ones((N, 1)),
        merchant_categories=np.ones((M, 1)),
        follows=adj,
        customers=sp.csr_matrix(buyers[keep]),
        relevance=sp.csr_matrix(gain_c[keep]),
        excluded=_matrix(((i, int(chosen[k])) for i, k in enumerate(keep.tolist())), (M, N)),
        stats={
            "streamers": N,
            "train_edges": len(train_e),
            "held_out_edges": len(held_e),
            "merchants": len(chosen),
            "purchases": int(buyers.nnz),
        },
    )


CONVERTERS: dict[str, Callable[..., Task]] = {
    "twitch-follows": convert_twitch_follows,
    "twitch-it": convert_twitch_it,
    "musae-twitch-de": convert_musae,
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
