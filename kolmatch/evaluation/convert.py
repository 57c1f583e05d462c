"""Public data sets converted to the import format, part of their links held out as truth."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch.errors import BadArgument, InputError, InputProblem
from kolmatch.evaluation.task import Task
from kolmatch.loaders.reader import ProblemLog
from kolmatch.loaders.twitch import SNAPSHOT_DATE, parse_count

__all__ = [
    "CONVERTERS",
    "SPLITS",
    "convert_musae",
    "convert_twitch_follows",
    "convert_twitch_it",
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
#: Held-out splits: validation is held out again from what test trains on (seed + 1).
SPLITS = ("test", "validation")


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
