"""The feature build's per-user stage, one contiguous range of users at a time, and its reduce.

Everything a user's rows alone decide (engagement strength with recency, its interest mix, its
spend per category, its price level, its audience weights) is computed per partition from the
partition's own engagement, follow and purchase rows and a few small broadcast arrays
(:class:`UserShared`); what the talents gather from their users (the leave-one-out audience
sums, the price-level sums) is summed per partition. :func:`reduce_user_blocks` stacks the
per-user blocks in row order and adds the sums in partition order, so the result does not
depend on where, or in which order, the partitions ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch.graph.market import MarketGraph
from kolmatch.graph.model import AGE_BANDS, GENDERS
from kolmatch.graph.projection import EdgeList, to_csr
from kolmatch.matching.audience import FOLLOW_WEIGHT, audience_weights
from kolmatch.matching.partition import PartitionMap, row_ranges, run_positions, split_rows
from kolmatch.memory import release_freed_memory

__all__ = [
    "ENGAGEMENT_HALF_LIFE_DAYS",
    "INTEREST_BLOCK_ROWS",
    "USER_PARTITION_ROWS",
    "UserBlock",
    "UserPart",
    "UserShared",
    "UserStage",
    "audience_sums",
    "choice_index",
    "columns_spread",
    "demographic_counts",
    "edges_from_rows",
    "leave_one_out_audience",
    "reduce_user_blocks",
    "rows_normalised",
    "rows_replaced",
    "rows_spread",
    "rows_with_entries_in",
    "stack_rows",
    "stage_with_users",
    "summed_anew",
    "user_block",
    "user_interest",
    "user_interest_in_rows",
    "user_part_with",
    "user_parts",
    "user_parts_of",
    "user_stage",
    "user_stage_changed",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
ArrayT = TypeVar("ArrayT", bound=np.generic)

#: Users per partition. A function of the market alone (never of the cluster), so a build on
#: Dask and one in process partition alike and give the same features. 25,000: the s market
#: (50,000 users) is two partitions, m (1M) forty; a partition's blocks are a few MB.
USER_PARTITION_ROWS = 25_000

#: Bytes of blocks freed by :func:`stack_rows` between two hand-backs of freed memory (each
#: a walk of the C heap: ~tens of ms at l).
STACK_RELEASE_BYTES = 256 << 20

#: Half-life of an engagement's weight, in days since it was last seen.
ENGAGEMENT_HALF_LIFE_DAYS = 180.0


@dataclass(frozen=True)
class UserPart:
    """One partition's input: the users ``[lo, hi)`` and their edge rows (sources are market
    rows, ``lo`` and above; in process, views of whole-market arrays where the build keeps
    those arrays anyway: :func:`user_parts`).

    ``engaged_*``: ENGAGED_WITH rows (user -> content) with their weighted counts and last day;
    ``follows_*``: FOLLOWS (user -> talent); ``purchased_*``: PURCHASED (user -> product).

    ``rows``: the users' market rows where they are not the range ``[lo, hi)`` (the users a
    delta touches, :func:`user_parts_of`): sorted, unique; the part's ``lo`` and ``hi`` are
    then 0 and their count, and its edges' sources are market rows among them.
    """

    lo: int
    hi: int
    engaged_src: I64
    engaged_dst: I64
    counts: F64  # views + 2 likes + 3 comments + 4 shares (missing counts as 0)
    last_day: F64  # day number (days since 1970-01-01) it was last seen, NaN if unknown
    follows_src: I64
    follows_dst: I64
    purchased_src: I64
    purchased_dst: I64
    amount: F64
    gender: NDArray[np.int8]  # (users,) index into GENDERS, -1 if unknown
    age_band: NDArray[np.int8]  # (users,) index into AGE_BANDS, -1 if unknown
    rows: I64 | None = None

    def local(self, src: I64) -> I64:
        """The part's own rows (0 to its user count) of edge sources given as market rows.

        Parameters
        ----------
        src
            Market rows of users (edge sources).

        Returns
        -------
        numpy.ndarray
            Their rows in this part, in the same order.

        Raises
        ------
        ValueError
            If a source is not one of the part's users (an edge read with the wrong users).
        """
        if self.rows is None:
            at = src - self.lo
            outside = (at < 0) | (at >= self.hi - self.lo)
        else:
            at = np.searchsorted(self.rows, src)
            outside = at >= len(self.rows)
            outside[~outside] = self.rows[at[~outside]] != src[~outside]
        if outside.any():
            raise ValueError(f"an edge from user row {int(src[outside][0])}, not of this part")
        return at


@dataclass(frozen=True)
class UserShared:
    """What every partition reads: the market's small arrays, broadcast once."""

    today: date  # reference date for recency
    content_cat: sp.csr_matrix  # (K, C) a content item's categories, rows sum to 1
    content_talent: sp.csr_matrix  # (K, T) 1 where the talent published the content
    talent_cat: sp.csr_matrix  # (T, C) a talent's own categories, rows sum to 1
    pcat: sp.csr_matrix  # (P, C) product category weights
    log_price: F64  # (P,)
    product_merchant: sp.csr_matrix  # (P, M) 1 where the merchant sells the product
    promoted_cat: sp.csr_matrix  # (T, C) promotions' part of talent_cat (a calibration's)
    #: (K, P) 1 where the content features the product: what the content skill joins an
    #: engagement with (a delta keeps the chances of users it does not change)
    content_product: sp.csr_matrix


@dataclass(frozen=True)
class UserBlock:
    """One partition's result: per-user rows (its users, in order) and per-talent sums.

    What only sums reach the features (engagement per talent, spend per product) comes back
    summed, not as (users x talents) rows: at m that is 8M engagement entries a build does not
    ship back from the workers or hold in the client.
    """

    engaged_cat: sp.csr_matrix  # (n, C) engagement strength per content category
    follows: sp.csr_matrix  # (n, T) 1 where the user follows the talent
    buyers: sp.csr_matrix  # (n, M) 1 where the user bought one of the merchant's products
    bought: sp.csr_matrix  # (n, C) spend per category
    interest: sp.csr_matrix  # (n, C) interest from the talents' own categories
    by_user: sp.csr_matrix  # (n, T) audience weights
    n_orders: F64  # (n,)
    order_logp: F64  # (n,) sum of the log prices of its orders
    engaged_entries: int  # stored (user, talent) engagement entries
    engaged_sum: F64  # (T,) engagement strength
    engaged_users: F64  # (T,) users with positive engagement strength
    active: F64  # (T,) followers who engaged
    sales: F64  # (P,) amount spent
    others_sum: F64  # (T, C) sum over audience users of their other talents' mix / (s - 1)
    inv_sum: F64  # (T,) sum over audience users of 1 / (s - 1)
    bought_sum: F64  # (T, C) sum over audience users of their normalised spend mix
    price_sum: F64  # (T,) sum over audience users who bought of their price level
    price_n: F64  # (T,) audience users who bought
    gender_counts: F64  # (T, len(GENDERS)) audience users of each known gender
    age_counts: F64  # (T, len(AGE_BANDS)) audience users of each known age band


@dataclass(frozen=True)
class UserStage:
    """The per-user stage of the whole market: blocks stacked, sums added, audience mixed."""

    engaged_cat: sp.csr_matrix  # (U, C)
    follows: sp.csr_matrix  # (U, T)
    merchant_buyers: sp.csr_matrix  # (M, U) 1 where u bought one of m's products
    bought: sp.csr_matrix  # (U, C)
    interest: sp.csr_matrix  # (U, C)
    by_user: sp.csr_matrix  # (U, T)
    n_orders: F64  # (U,)
    user_logp: F64  # (U,) mean log price of its orders, NaN if none
    engaged_entries: int
    engaged_sum: F64  # (T,)
    engaged_users: F64  # (T,)
    active: F64  # (T,)
    sales: F64  # (P,)
    talent_audience: F64  # (T, C) leave-one-out interest mix of the audience
    talent_price_sum: F64  # (T,)
    talent_price_n: F64  # (T,)
    # the sums ``talent_audience`` is made of (UserBlock's), kept for a delta to change
    others_sum: F64  # (T, C)
    inv_sum: F64  # (T,)
    bought_sum: F64  # (T, C)
    gender_counts: F64  # (T, len(GENDERS))
    age_counts: F64  # (T, len(AGE_BANDS))
    shared: UserShared | None = None  # what it was made with (user_stage sets it)


def rows_normalised(m: sp.spmatrix) -> sp.csr_matrix:
    """Each row divided by its sum (all-zero rows stay zero).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> rows_normalised(sp.csr_matrix([[1.0, 3.0], [0.0, 0.0]])).toarray().tolist()
    [[0.25, 0.75], [0.0, 0.0]]
    """
    s = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
    return sp.csr_matrix(sp.diags(inv) @ m)


def user_interest(
    engaged: sp.spmatrix, followed: sp.spmatrix, bought: sp.csr_matrix
) -> sp.csr_matrix:
    """A user's interest mix: what it engages with, whom it follows (at FOLLOW_WEIGHT) and, at
    half weight, what it buys; each part a (users x categories) matrix, rows normalised.

    Row by row: a partition's rows are those of the whole market.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> e, f, b = (sp.csr_matrix([[1.0, 0.0]]), sp.csr_matrix([[0.0, 1.0]]),
    ...            sp.csr_matrix([[0.0, 0.0]]))
    >>> [round(x, 4) for x in user_interest(e, f, b).toarray()[0].tolist()]
    [0.6667, 0.3333]
    """
    return rows_normalised(
        rows_normalised(
            sp.csr_matrix(engaged) + FOLLOW_WEIGHT * rows_normalised(sp.csr_matrix(followed))
        )
        + 0.5 * rows_normalised(bought)
    )


#: Users per block of :func:`user_interest_in_rows` (each block's temporaries are a few
#: times its rows' share of the result; at l, 250,000 of ~10M users).
INTEREST_BLOCK_ROWS = 250_000


def user_interest_in_rows(
    engaged: sp.csr_matrix,
    follows: sp.csr_matrix,
    talent_category: sp.spmatrix,
    bought: sp.csr_matrix,
    *,
    rows: int = INTEREST_BLOCK_ROWS,
) -> sp.csr_matrix:
    """:func:`user_interest` of ``engaged``, ``follows @ talent_category`` and ``bought``,
    ``rows`` users at a time.

    The same matrix (row by row it is the same arithmetic), but the whole-market temporaries
    (the followed categories and three normalised sums, each the size of the result) exist for
    one block at a time: at l they raised the build's memory by ~3.6 GiB.

    Parameters
    ----------
    engaged, bought : scipy.sparse.csr_matrix
        (users x categories).
    follows : scipy.sparse.csr_matrix
        (users x talents) follow weights.
    talent_category : scipy.sparse.spmatrix
        (talents x categories).
    rows : int
        Users per block, a positive whole number.

    Raises
    ------
    BadArgument
        If ``rows`` is not a positive whole number.
    ValueError
        If the matrices do not have the same users.

    Returns
    -------
    scipy.sparse.csr_matrix
        (users x categories), rows normalised.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> e = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]))
    >>> f = sp.csr_matrix(np.array([[0.0], [1.0], [0.0]]))
    >>> tc = sp.csr_matrix(np.array([[0.0, 1.0]]))
    >>> b = sp.csr_matrix((3, 2))
    >>> whole = user_interest(e, f @ tc, b).toarray()
    >>> bool((user_interest_in_rows(e, f, tc, b, rows=2).toarray() == whole).all())
    True
    """
    n = engaged.shape[0]
    if follows.shape[0] != n or bought.shape[0] != n:
        raise ValueError(
            f"engaged, follows and bought must have the same users: "
            f"{n}, {follows.shape[0]} and {bought.shape[0]} rows"
        )
    tc = sp.csr_matrix(talent_category)
    return stack_rows(
        [
            user_interest(engaged[a:b], follows[a:b] @ tc, bought[a:b])
            for a, b in row_ranges(n, rows, argument="rows")
        ]
    )


_EPOCH = date(1970, 1, 1)


def day_numbers(dates: NDArray[np.object_]) -> F64:
    """Days since 1970-01-01 of ISO dates (their first ten characters), NaN where empty.

    Parsed by numpy in one pass (the m market's 8M dates: 2.3 s; a Python loop, 4.7 s), and
    numbers, not strings, go to the partitions (pickling the s market's 409,314 date strings
    took 0.74 s and 34 MB; their numbers, 3 MB).

    Examples
    --------
    >>> import numpy as np
    >>> dates = np.array(["1970-01-02", "", None, "2000-01-01T12:00:00"], dtype=object)
    >>> day_numbers(dates).tolist()
    [1.0, nan, nan, 10957.0]
    """
    dates = np.asarray(dates)
    out = np.empty(len(dates), dtype=np.float64)
    # in chunks: the text of all 8M at once was a 330 MB temporary at the build's peak
    for lo in range(0, len(dates), _DATE_CHUNK):
        text = dates[lo : lo + _DATE_CHUNK].astype("U10")  # the date; None becomes "None"
        text[text == "None"] = ""
        days = text.astype("datetime64[D]")
        part = out[lo : lo + _DATE_CHUNK]
        part[:] = days.astype(np.int64)
        part[np.isnat(days)] = np.nan
    return out


#: Dates parsed at a time by :func:`day_numbers` (a 40 MB temporary).
_DATE_CHUNK = 1 << 20


def _recency(last_day: F64, today: date, half_life_days: float) -> F64:
    """0.5 per ``half_life_days`` since the day last seen; unknown days count one half-life."""
    days = np.where(np.isnan(last_day), half_life_days, (today - _EPOCH).days - last_day)
    return np.power(0.5, np.maximum(days, 0) / half_life_days)


def user_parts(
    g: MarketGraph,
    user_partition_rows: int = USER_PARTITION_ROWS,
    last_day: F64 | None = None,
    *,
    own: bool = False,
) -> list[UserPart]:
    """The market's users in contiguous ranges of ``user_partition_rows``, with their edge rows.

    ``last_day``: :func:`day_numbers` of the engagements' ``last`` dates, if the caller has
    them already; else each part parses its own. A part's weighted counts (and days parsed
    for it) are its own arrays; its other rows are views of the graph's arrays, except with
    ``own``: then its follows and (given ``last_day``) engagement days are copies, so that a
    caller who releases the graph's FOLLOWS table and ENGAGED_WITH's columns, and hands
    the parts out one at a time (:func:`~kolmatch.matching.partition.drained`), frees each
    part's rows once its block is made (the l market's follows and days: ~2 GiB freed by the
    end of the user stage, while its blocks grow). The engagements' endpoints and the
    purchases stay views: the rest of the build reads them.

    Raises
    ------
    BadArgument
        If ``user_partition_rows`` is not a positive whole number.
    """
    ranges = row_ranges(len(g.node("User")), user_partition_rows, argument="user_partition_rows")
    engaged, follows = g.edge("ENGAGED_WITH", "User"), g.edge("FOLLOWS", "User")
    purchased = g.edge("PURCHASED", "User")
    e_pos, f_pos, p_pos = (split_rows(x.src, ranges) for x in (engaged, follows, purchased))
    gender, age_band = _demographics(g)

    def cut(a: NDArray[ArrayT], at: slice | I64) -> NDArray[ArrayT]:
        rows = a[at]
        return rows.copy() if own and isinstance(at, slice) else rows  # (an index array copies)

    def days(at: slice | I64) -> F64:
        if last_day is None:  # the part's own, parsed for it (never the whole column's)
            return day_numbers(engaged.columns["last"][at])
        return cut(last_day, at)

    return [
        UserPart(
            lo,
            hi,
            engaged.src[e],
            engaged.dst[e],
            _counts(engaged, e),
            days(e),
            cut(follows.src, f),
            cut(follows.dst, f),
            purchased.src[p],
            purchased.dst[p],
            purchased.columns["amount"][p],
            gender[lo:hi],
            age_band[lo:hi],
        )
        for (lo, hi), e, f, p in zip(ranges, e_pos, f_pos, p_pos, strict=True)
    ]


def _demographics(
    g: MarketGraph, rows: I64 | None = None
) -> tuple[NDArray[np.int8], NDArray[np.int8]]:
    """Each user's (of ``rows``, default all) gender and age band as indices into GENDERS and
    AGE_BANDS (-1 unknown; int8: at l, 10M users' two int64 arrays were 160 MB)."""
    c = g.node("User").columns
    gender, age = (
        (c["gender"], c["age_band"]) if rows is None else (c["gender"][rows], c["age_band"][rows])
    )
    return (
        choice_index(gender, GENDERS).astype(np.int8),
        choice_index(age, AGE_BANDS).astype(np.int8),
    )


def choice_index(values: NDArray[np.object_], choices: tuple[str, ...]) -> I64:
    """Each value's index in ``choices``; -1 where it is none of them (or empty).

    Parameters
    ----------
    values
        Text values (None where unknown).
    choices
        The allowed values, in index order.

    Returns
    -------
    numpy.ndarray
        int64, one index per value.

    Examples
    --------
    >>> import numpy as np
    >>> choice_index(np.array(["m", None, "x", "f"], dtype=object), ("f", "m")).tolist()
    [1, -1, -1, 0]
    """
    pos = {c: i for i, c in enumerate(choices)}
    return np.array([pos.get(v, -1) if v else -1 for v in values], dtype=np.int64)


def demographic_counts(by_user: sp.csr_matrix, index: NDArray[np.integer], choices: int) -> F64:
    """Per talent, its audience users of each choice (a gender, an age band).

    Parameters
    ----------
    by_user
        (n, T) the users' audience weights (a talent's audience: its nonzeros).
    index
        (n,) each user's index into the choices; -1 unknown (not counted).
    choices
        How many choices there are.

    Returns
    -------
    numpy.ndarray
        (T, choices) counts.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> by_user = sp.csr_matrix(np.array([[1.0, 0.25], [0.0, 1.0], [1.0, 0.0]]))
    >>> demographic_counts(by_user, np.array([0, 1, -1]), 2).tolist()
    [[1.0, 0.0], [1.0, 1.0]]
    """
    known = np.nonzero(index >= 0)[0]
    onehot = sp.csr_matrix(
        (np.ones(len(known)), (known, index[known])), shape=(by_user.shape[0], choices)
    )
    in_audience = sp.csr_matrix(by_user.astype(bool).astype(np.float64).T)  # (T, n)
    return np.asarray((in_audience @ onehot).todense()).reshape(by_user.shape[1], choices)


def _counts(engaged: EdgeList, at: slice | I64) -> F64:
    """Weighted counts of the engagements at ``at``: views + 2 likes + 3 comments + 4 shares."""
    ec = engaged.columns
    return (  # type: ignore[no-any-return]
        np.nan_to_num(ec["views"][at])
        + 2 * np.nan_to_num(ec["likes"][at])
        + 3 * np.nan_to_num(ec["comments"][at])
        + 4 * np.nan_to_num(ec["shares"][at])
    )


def edges_from_rows(src: I64, rows: I64) -> I64:
    """Positions, in edge order, of the edges (sources sorted) whose source is in ``rows``."""
    starts = np.searchsorted(src, rows, side="left")
    return run_positions(starts, np.searchsorted(src, rows, side="right") - starts)


def user_parts_of(g: MarketGraph, rows: I64) -> UserPart:
    """One part of the users at market rows ``rows`` (any of them), with all their edge rows.

    The part a delta recomputes (:func:`user_stage_changed`): its users are scattered over the
    market, so the part names them (:attr:`UserPart.rows`). ``g`` may hold only these users'
    edges (a read by user) or the whole market's.

    Parameters
    ----------
    g
        A market graph with the User edges :func:`user_parts` reads.
    rows
        Market rows of users, sorted and unique.

    Returns
    -------
    UserPart
        Its arrays its own (copies), ``lo`` 0 and ``hi`` the number of users.

    Raises
    ------
    ValueError
        If ``rows`` is not sorted and unique, or outside the graph's users.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and ((np.diff(rows) <= 0).any() or rows[0] < 0 or rows[-1] >= len(g.node("User"))):
        raise ValueError(f"rows must be sorted, unique user rows below {len(g.node('User'))}")
    engaged, follows = g.edge("ENGAGED_WITH", "User"), g.edge("FOLLOWS", "User")
    purchased = g.edge("PURCHASED", "User")
    e, f, p = (edges_from_rows(x.src, rows) for x in (engaged, follows, purchased))
    gender, age_band = _demographics(g, rows)
    return UserPart(
        0,
        len(rows),
        engaged.src[e],
        engaged.dst[e],
        _counts(engaged, e),
        day_numbers(engaged.columns["last"][e]),
        follows.src[f],
        follows.dst[f],
        purchased.src[p],
        purchased.dst[p],
        purchased.columns["amount"][p],
        gender,
        age_band,
        rows=rows,
    )


#: A user part's fields of each per-user edge type (:class:`UserPart`).
_PART_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ENGAGED_WITH", "User"): ("engaged_src", "engaged_dst", "counts", "last_day"),
    ("FOLLOWS", "User"): ("follows_src", "follows_dst"),
    ("PURCHASED", "User"): ("purchased_src", "purchased_dst", "amount"),
}


def user_part_with(part: UserPart, g: MarketGraph, types: Iterable[tuple[str, str]]) -> UserPart:
    """``part`` (:func:`user_parts_of`) with its users' rows of ``types`` taken from ``g``:
    the part after a delta that wrote only those types (a day's follows and purchases), as
    :func:`user_parts_of` of the graph after it gives, without making the others again (at m,
    the engagements' dates of 105,255 users took ~0.25 s to parse).

    Parameters
    ----------
    part
        The users' part before, naming them (``rows``).
    g
        The market after, holding those users' rows of ``types`` (e.g.
        :meth:`~kolmatch.graph.market.MarketGraph.with_rows_from`, or a read of those users,
        :func:`~kolmatch.graph.market.read_edges_from`) and the User table (the users'
        gender and age band are taken from it).
    types
        Edge types from User (of ``ENGAGED_WITH``, ``FOLLOWS``, ``PURCHASED``).

    Returns
    -------
    UserPart

    Raises
    ------
    ValueError
        If ``part`` does not name its users, or a type is not one a part holds.
    StoreError
        If ``g`` lacks a type of ``types``.
    """
    if part.rows is None:
        raise ValueError("the part does not name its users: make it by user_parts_of")
    types = tuple(dict.fromkeys(types))  # (read more than once below)
    for key in types:
        if key not in _PART_FIELDS:
            raise ValueError(f"{key[0]} from {key[1]} is not a type a user part holds")
    edges = {k: g.edge(*k) if k in types else _no_rows(k) for k in _PART_FIELDS}
    whole = user_parts_of(MarketGraph(g.identity, g.nodes, edges), part.rows)
    changes = {name: getattr(whole, name) for key in types for name in _PART_FIELDS[key]}
    return replace(part, **changes, gender=whole.gender, age_band=whole.age_band)


def _no_rows(key: tuple[str, str]) -> EdgeList:
    """An edge list of ``key`` without rows, with the columns :func:`user_parts_of` reads."""
    empty = np.zeros(0, dtype=np.int64)
    f, text = np.zeros(0), np.zeros(0, dtype=object)
    columns = {
        ("ENGAGED_WITH", "User"): {
            "views": f,
            "likes": f,
            "comments": f,
            "shares": f,
            "last": text,
        },
        ("PURCHASED", "User"): {"amount": f},
    }.get(key, {})
    return EdgeList(key[0], key[1], empty, empty, columns)


def pattern_of(m: sp.csr_matrix) -> sp.csr_matrix:
    """1.0 where ``m`` holds a non-zero entry, its index arrays shared rather than copied
    (~1.2 GiB less at l for the audience).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> pattern_of(sp.csr_matrix(np.array([[0.5, 0.0], [0.0, 2.0]]))).toarray().tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    return sp.csr_matrix(
        ((m.data != 0).astype(np.float64), m.indices, m.indptr), shape=m.shape, copy=False
    )


def rows_with_entries_in(m: sp.csr_matrix, columns: NDArray[np.bool_]) -> I64:
    """The rows of ``m`` (sorted) holding an entry in a column where ``columns`` is true:
    e.g. the users following any of some talents, from (users x talents) follows.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> m = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]))
    >>> rows_with_entries_in(m, np.array([False, True])).tolist()
    [1, 2]
    """
    # the entries hit, then their rows (no row number made for every entry: 87 MB at m)
    at = np.flatnonzero(columns[m.indices[: m.indptr[-1]]])
    return np.unique(np.searchsorted(m.indptr, at, side="right") - 1)


def rows_replaced(m: sp.csr_matrix, rows: I64, block: sp.csr_matrix) -> sp.csr_matrix:
    """``m`` with its rows ``rows`` (sorted, unique) replaced by ``block``'s, in order.

    One pass over ``m``'s entries: the kept rows' entries are copied by a mask, the block's
    go where the replaced rows were (at m, 100,000 of 1M users' rows in ~0.15 s per matrix,
    where assigning rows of a CSR matrix in scipy rebuilds it row by row).

    Parameters
    ----------
    m
        The matrix.
    rows
        Rows of ``m``, sorted and unique (integers).
    block
        One row for each of ``rows``, as many columns as ``m``.

    Returns
    -------
    scipy.sparse.csr_matrix
        A new matrix (``m`` is not changed).

    Raises
    ------
    ValueError
        If ``rows`` are not sorted, unique integer rows of ``m``, or ``block`` is of another
        shape.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> m = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]))
    >>> new = sp.csr_matrix(np.array([[0.0, 5.0], [0.0, 0.0]]))
    >>> rows_replaced(m, np.array([0, 2]), new).toarray().tolist()
    [[0.0, 5.0], [0.0, 2.0], [0.0, 0.0]]
    """
    n = m.shape[0]
    rows = np.asarray(rows)
    if len(rows) and (
        rows.dtype.kind not in "iu" or (np.diff(rows) <= 0).any() or rows[0] < 0 or rows[-1] >= n
    ):
        raise ValueError(f"rows must be sorted, unique integer rows below {n}")
    rows = rows.astype(np.int64, copy=False)
    if block.shape != (len(rows), m.shape[1]):
        raise ValueError(f"a block of shape {block.shape} for {len(rows)} rows of {m.shape}")
    old_len = np.diff(m.indptr)
    new_len = old_len.copy()
    new_len[rows] = np.diff(block.indptr)
    kept = np.ones(n, dtype=bool)
    kept[rows] = False
    nnz = int(new_len.sum())
    index = np.int32 if max(nnz, n, m.shape[1]) <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=index)
    np.cumsum(new_len, out=indptr[1:])
    from_old = np.repeat(kept, old_len)
    to_kept = np.repeat(kept, new_len)
    data = np.empty(nnz, dtype=np.result_type(m.dtype, block.dtype))
    indices = np.empty(nnz, dtype=index)
    m_nnz, b_nnz = int(m.indptr[-1]), int(block.indptr[-1])
    data[to_kept] = m.data[:m_nnz][from_old]
    indices[to_kept] = m.indices[:m_nnz][from_old]
    data[~to_kept] = block.data[:b_nnz]
    indices[~to_kept] = block.indices[:b_nnz]
    return sp.csr_matrix((data, indices, indptr), shape=m.shape, copy=False)


def rows_spread(m: sp.csr_matrix, rows: I64, n: int) -> sp.csr_matrix:
    """``m``'s rows moved to ``rows`` (increasing) of an ``n``-row matrix, the other rows
    empty: a per-user matrix after users were added between the rows it had
    (:func:`~kolmatch.graph.market.read_nodes_into`). Its entries are ``m``'s (shared).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> m = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))
    >>> rows_spread(m, np.array([0, 2]), 3).toarray().tolist()
    [[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]
    """
    rows = _spread_to(rows, m.shape[0], n)
    length = np.zeros(n, dtype=m.indptr.dtype)
    length[rows] = np.diff(m.indptr)
    indptr = np.zeros(n + 1, dtype=m.indptr.dtype)
    np.cumsum(length, out=indptr[1:])
    nnz = int(m.indptr[-1])
    return sp.csr_matrix((m.data[:nnz], m.indices[:nnz], indptr), shape=(n, m.shape[1]), copy=False)


def columns_spread(m: sp.csr_matrix, columns: I64, n: int) -> sp.csr_matrix:
    """``m``'s columns moved to ``columns`` (increasing) of ``n``, the others empty (a
    (talents x users) matrix after users were added: :func:`rows_spread` of its transpose).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> m = sp.csr_matrix(np.array([[1.0, 2.0]]))
    >>> columns_spread(m, np.array([1, 2]), 3).toarray().tolist()
    [[0.0, 1.0, 2.0]]
    """
    columns = _spread_to(columns, m.shape[1], n)
    indices = columns[m.indices[: m.indptr[-1]]].astype(m.indices.dtype)
    return sp.csr_matrix(
        (m.data[: m.indptr[-1]], indices, m.indptr), shape=(m.shape[0], n), copy=False
    )


def _spread_to(at: I64, had: int, n: int) -> I64:
    """``at`` checked as ``had`` increasing places below ``n`` (rows_spread)."""
    at = np.asarray(at, dtype=np.int64)
    if len(at) != had or (len(at) and (at[0] < 0 or at[-1] >= n or (np.diff(at) <= 0).any())):
        raise ValueError(f"{had} increasing places below {n} were wanted, not {len(at)}")
    if n > np.iinfo(np.int32).max:
        raise ValueError(f"{n:,} rows: past what a matrix's int32 indices hold")
    return at


def stage_with_users(stage: UserStage, rows: I64, n: int) -> UserStage:
    """``stage`` after users were added to the market (a load's sign-ups): its users at
    ``rows`` of ``n``, the new ones without rows (no follow, engagement or order), as they
    are before their first rows are applied (:func:`user_stage_changed`: a delta names them
    among its changed users). The talents', products' and market's sums are unchanged:
    a user without rows adds nothing to them.

    Parameters
    ----------
    stage
        The stage before (:func:`user_stage`).
    rows
        The rows, among the ``n`` users now, of the stage's users (increasing).
    n
        The users now.

    Returns
    -------
    UserStage

    Raises
    ------
    ValueError
        If ``rows`` are not one increasing place below ``n`` for each user of ``stage``.
    """

    def per_user(v: F64, empty: float) -> F64:
        out = np.full(n, empty)
        out[rows] = v
        return out

    rows = _spread_to(rows, stage.follows.shape[0], n)
    return replace(
        stage,
        engaged_cat=rows_spread(stage.engaged_cat, rows, n),
        follows=rows_spread(stage.follows, rows, n),
        merchant_buyers=columns_spread(stage.merchant_buyers, rows, n),
        bought=rows_spread(stage.bought, rows, n),
        interest=rows_spread(stage.interest, rows, n),
        by_user=rows_spread(stage.by_user, rows, n),
        n_orders=per_user(stage.n_orders, 0.0),
        user_logp=per_user(stage.user_logp, np.nan),
    )


def _same_csr(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    """Whether two CSR matrices hold the same entries in the same layout, bit for bit."""
    return (
        a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices[: a.indptr[-1]], b.indices[: b.indptr[-1]])
        and np.array_equal(a.data[: a.indptr[-1]], b.data[: b.indptr[-1]])
    )


#: UserStage's names of the UserBlock sums where they differ.
_STAGE_SUM = {"price_sum": "talent_price_sum", "price_n": "talent_price_n"}

#: A talent's audience sums are summed afresh over its audience (:func:`audience_sums`) where
#: a delta left less than this share of what was taken out: a difference keeps the round-off
#: of the terms taken out (~1e-16 of them), which is large against what is left (a talent
#: that kept 3 of 100,000 followers was 4e-8 off; one that kept none had a whole audience mix
#: made of round-off).
_LOST = 1e-2

#: What is left of the other sums (engagement strength, sales), relative to the terms they
#: were made of, that counts as nothing: 0, as in a build from scratch.
_CANCELLED = 1e-12


def summed_anew(was: Any, out: Any, back: Any) -> Any:
    """A sum over users after some users' terms changed: ``was - out + back`` (arrays, or
    sparse matrices of one shape), with what keeps no more than round-off of the terms it
    was made of (:data:`_CANCELLED` of them) made 0, as a sum made afresh would be (a sparse
    result stores no zero).

    Examples
    --------
    >>> summed_anew(np.array([1.0, 1.0]), np.array([0.7, 1.0 - 1e-17]), np.array([0.2, 0.0]))
    array([0.5, 0. ])
    """
    v = was - out + back
    if not sp.issparse(v):
        v[np.abs(v) <= _CANCELLED * (np.abs(was) + np.abs(out) + np.abs(back))] = 0.0
        return v
    c = sp.coo_matrix(v)
    held = abs(was) + abs(out) + abs(back)
    c.data[np.abs(c.data) <= _CANCELLED * np.asarray(held[c.row, c.col]).ravel()] = 0.0
    out_csr = c.tocsr()
    out_csr.eliminate_zeros()
    return out_csr


def user_stage_changed(
    stage: UserStage, before: UserPart, after: UserPart, shared: UserShared
) -> UserStage:
    """The per-user stage after some users' rows changed: theirs recomputed, the rest kept.

    Every field of a :class:`UserStage` is either per user (rows, replaced) or a sum over
    users (each user's term is its own: the talents' sums take the changed users' old terms
    out and their new ones in). Where that left a talent's audience sums less than 1% of what
    was taken out, they are summed afresh over its audience (a difference keeps the round-off
    of the terms taken out: a talent whose audience a delta empties has no audience mix, as
    in a build from scratch); the other sums (engagement strength, sales) are 0 where they
    keep no more than round-off (1e-12) of their terms. So the stage of a market after a
    delta (a day of new follows and purchases) is, within float round-off, the stage of a
    build from scratch, at the cost of the changed users alone (measured in docs/scale.md).

    Parameters
    ----------
    stage
        The stage before, of the whole market (:func:`user_stage`).
    before, after
        The changed users' rows before and after (:func:`user_parts_of`), the same users.
    shared
        What the stage was built with; a delta that changes it (content, a talent's own
        categories, the reference date) needs a build.

    Returns
    -------
    UserStage

    Raises
    ------
    ValueError
        If ``before`` and ``after`` are not of the same named users.
    """
    if before.rows is None or after.rows is None or not np.array_equal(before.rows, after.rows):
        raise ValueError("before and after must be parts of the same users (user_parts_of)")
    rows = after.rows
    # on threads (the sparse products and copies let go of the GIL): at m the two blocks took
    # 1.2 s one after the other and 0.8 s at once on 2 cores, the replaced rows 0.6 and 0.3
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        old, new = pool.map(lambda part: user_block(part, shared), (before, after))

        def row_replaced(name: str) -> sp.csr_matrix:
            if name == "buyers":  # (merchants x users): its columns
                return rows_replaced(sp.csr_matrix(stage.merchant_buyers.T), rows, new.buyers)
            if _same_csr(getattr(old, name), getattr(new, name)):
                return getattr(stage, name)  # rows a delta did not move: engagements, in follows
            return rows_replaced(getattr(stage, name), rows, getattr(new, name))

        names = ("engaged_cat", "follows", "bought", "interest", "by_user", "buyers")
        replaced = dict(zip(names, pool.map(row_replaced, names), strict=True))
    merchant_buyers = sp.csr_matrix(replaced.pop("buyers").T)
    merchant_buyers.data[:] = 1.0
    n_orders = stage.n_orders.copy()
    n_orders[rows] = new.n_orders
    user_logp = stage.user_logp.copy()
    user_logp[rows] = np.divide(
        new.order_logp, new.n_orders, out=np.full(len(rows), np.nan), where=new.n_orders > 0
    )
    sums = {}
    lost = np.zeros(stage.inv_sum.shape[0], dtype=bool)  # talents whose sums are made afresh
    for name in _SUMMED:
        was = getattr(stage, _STAGE_SUM.get(name, name))
        out, back = getattr(old, name), getattr(new, name)
        if name in _AUDIENCE_SUMS:
            v = was - out + back
            held = np.abs(was) + np.abs(out)
            little = (np.abs(v) < _LOST * held) & (held > 0)
            lost |= little.any(axis=1) if little.ndim == 2 else little
        else:
            v = summed_anew(was, out, back)
        sums[name] = v
    sums["engaged_sum"][sums["engaged_users"] == 0] = 0.0  # (counts: exact)
    by_user = replaced["by_user"]
    if lost.any():
        # every user in those talents' audiences, with its whole row (s_u counts its talents)
        users = rows_with_entries_in(by_user, lost)
        exact = audience_sums(
            by_user[users],
            replaced["bought"][users],
            n_orders[users],
            user_logp[users],
            shared.talent_cat,
        )
        for name in _AUDIENCE_SUMS:
            sums[name][lost] = exact[name][lost]
    return UserStage(
        **replaced,
        merchant_buyers=merchant_buyers,
        n_orders=n_orders,
        user_logp=user_logp,
        engaged_entries=stage.engaged_entries - old.engaged_entries + new.engaged_entries,
        **_talent_fields(sums, shared.talent_cat),
        shared=shared,
    )


def _talent_fields(sums: dict[str, F64], talent_cat: sp.csr_matrix) -> dict[str, Any]:
    """A stage's talent- and product-sized fields from the blocks' sums (:data:`_SUMMED`)."""
    return {
        **{_STAGE_SUM.get(name, name): sums[name] for name in _SUMMED},
        "talent_audience": leave_one_out_audience(
            sums["others_sum"], sums["inv_sum"], sums["bought_sum"], talent_cat
        ),
    }


def user_block(part: UserPart, shared: UserShared) -> UserBlock:
    """One partition's users: their rows of the per-user arrays and their talents' sums.

    A pure function of its arguments (it runs on a cluster's worker as well as here).
    """
    n = part.hi - part.lo
    n_t, n_k, n_p = shared.talent_cat.shape[0], shared.content_cat.shape[0], shared.pcat.shape[0]
    strength = part.counts * _recency(part.last_day, shared.today, ENGAGEMENT_HALF_LIFE_DAYS)
    e_src, f_src, p_src = (
        part.local(x) for x in (part.engaged_src, part.follows_src, part.purchased_src)
    )
    uc = to_csr(EdgeList("", "", e_src, part.engaged_dst, {"w": strength}), (n, n_k), "w")
    follows = to_csr(EdgeList("", "", f_src, part.follows_dst, {}), (n, n_t))
    follows.data[:] = 1.0
    spend = to_csr(EdgeList("", "", p_src, part.purchased_dst, {"a": part.amount}), (n, n_p), "a")
    bought = sp.csr_matrix(spend @ shared.pcat)
    engaged_cat = sp.csr_matrix(uc @ shared.content_cat)
    engaged = sp.csr_matrix(uc @ shared.content_talent)  # (n, T) engagement strength
    by_user = audience_weights(sp.csr_matrix(engaged.T), follows)
    # a user's price level: one order, one vote (weighting by amount would lean every buyer
    # toward its dearest purchases)
    n_orders = np.bincount(p_src, minlength=n).astype(np.float64)
    order_logp = np.bincount(
        p_src, weights=shared.log_price[part.purchased_dst], minlength=n
    ).astype(np.float64, copy=False)

    user_logp = np.divide(order_logp, n_orders, out=np.zeros(n), where=n_orders > 0)
    engaged_bin = sp.csr_matrix(engaged.astype(bool).astype(np.float64))
    return UserBlock(
        engaged_cat=engaged_cat,
        follows=follows,
        buyers=sp.csr_matrix(spend.astype(bool).astype(np.float64) @ shared.product_merchant),
        bought=bought,
        interest=user_interest(engaged_cat, follows @ shared.talent_cat, bought),
        by_user=by_user,
        n_orders=n_orders,
        order_logp=order_logp,
        engaged_entries=int(engaged.nnz),
        engaged_sum=np.asarray(engaged.sum(axis=0)).ravel(),
        engaged_users=np.asarray((engaged > 0).sum(axis=0), dtype=np.float64).ravel(),
        active=np.asarray(follows.multiply(engaged_bin).sum(axis=0)).ravel(),
        sales=np.asarray(spend.sum(axis=0)).ravel(),
        **audience_sums(by_user, bought, n_orders, user_logp, shared.talent_cat),
        gender_counts=demographic_counts(by_user, part.gender, len(GENDERS)),
        age_counts=demographic_counts(by_user, part.age_band, len(AGE_BANDS)),
    )


#: The sums :func:`audience_sums` gives: what the talents' audience mixes and price levels are
#: made of.
_AUDIENCE_SUMS = ("others_sum", "inv_sum", "bought_sum", "price_sum", "price_n")


def audience_sums(
    by_user: sp.csr_matrix,
    bought: sp.csr_matrix,
    n_orders: F64,
    user_logp: F64,
    talent_cat: sp.csr_matrix,
) -> dict[str, F64]:
    """Per talent, the sums over its audience users (of those given) that its leave-one-out
    audience mix and price level are made of (:func:`leave_one_out_audience`).

    Parameters
    ----------
    by_user
        (n, T) the users' audience weights (a talent's audience: its nonzeros).
    bought
        (n, C) the users' spend per category.
    n_orders, user_logp
        (n,) the users' orders and mean log price (read where they ordered).
    talent_cat
        (T, C) the talents' own category mixes.

    Returns
    -------
    dict
        ``others_sum`` (T, C) and ``inv_sum`` (T,): sums of R_u / (s_u - 1) and 1 / (s_u - 1);
        ``bought_sum`` (T, C): of the users' spend mixes; ``price_sum`` and ``price_n`` (T,):
        of the buyers' price levels, and the buyers.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> by_user = sp.csr_matrix(np.array([[1.0, 0.25]]))  # one user, in both audiences
    >>> cat = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> sums = audience_sums(by_user, sp.csr_matrix((1, 2)), np.ones(1), np.full(1, 2.0), cat)
    >>> sums["others_sum"].tolist(), sums["inv_sum"].tolist(), sums["price_sum"].tolist()
    ([[1.0, 1.0], [1.0, 1.0]], [1.0, 1.0], [2.0, 2.0])
    """
    n_t = talent_cat.shape[0]
    in_audience = sp.csr_matrix(by_user.astype(bool).astype(np.float64))  # (n, T)
    # leave-one-out: for each audience user, the mix of its *other* talents (docs of
    # leave_one_out_audience), summed per talent
    s_u = np.asarray(in_audience.sum(axis=1)).ravel()
    r = np.asarray((in_audience @ talent_cat).todense())  # (n, C)
    inv = np.divide(1.0, s_u - 1, out=np.zeros_like(s_u), where=s_u > 1)
    to_talents = sp.csr_matrix(in_audience.T)  # (T, n)
    has_p = np.nonzero(n_orders > 0)[0]
    buyers = to_talents[:, has_p]
    spend_mix = np.asarray(rows_normalised(bought).todense())
    return {
        "others_sum": np.asarray(to_talents @ (r * inv[:, None])).reshape(n_t, -1),
        "inv_sum": np.asarray(to_talents @ inv).ravel(),
        "bought_sum": np.asarray(to_talents @ spend_mix).reshape(n_t, -1),
        "price_sum": np.asarray(buyers @ user_logp[has_p]).ravel(),
        "price_n": np.asarray(buyers.sum(axis=1)).ravel(),
    }


def leave_one_out_audience(
    others_sum: F64, inv_sum: F64, bought_sum: F64, talent_cat: sp.csr_matrix
) -> F64:
    """Each talent's audience interest mix, learnt from everything its users do elsewhere.

    A user who engaged with a Beauty talent looks Beauty-minded because of that very
    engagement; counting it would tell us only the talent's own category back. So for
    talent t and each of its audience users u, u's interest is the category mix of the
    *other* talents u is in the audience of: (R_u - cat_t) / (s_u - 1), where R_u sums the
    category mixes of u's talents and s_u counts them; users in t's audience alone add nothing.
    Purchases (what u bought, as a category mix) are added at half weight.

    Summed over u: sum_u (R_u - cat_t) / (s_u - 1) = ``others_sum``_t - cat_t ``inv_sum``_t,
    with ``others_sum`` = sum_u R_u / (s_u - 1) and ``inv_sum`` = sum_u 1 / (s_u - 1), each a sum
    over users that partitions add (:func:`user_block`).

    Parameters
    ----------
    others_sum
        (T, C) sum over each talent's audience of R_u / (s_u - 1) (0 where s_u is 1).
    inv_sum
        (T,) sum over each talent's audience of 1 / (s_u - 1) (0 where s_u is 1).
    bought_sum
        (T, C) sum over each talent's audience of its users' spend mixes.
    talent_cat
        (T, C) the talents' own category mixes.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> cat = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> # one user in both audiences: each talent learns the other's category
    >>> mix = leave_one_out_audience(np.ones((2, 2)), np.ones(2), np.zeros((2, 2)), cat)
    >>> mix.tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    own = np.asarray(talent_cat.todense()) * inv_sum[:, None]
    others = others_sum - own
    # where no audience user has the category elsewhere the difference is 0 but for round-off
    # (~1e-15), which a talent with no other signal would normalise into a share
    others[np.abs(others) <= 1e-12 * (np.abs(others_sum) + np.abs(own))] = 0.0
    mix = np.maximum(others, 0.0) + 0.5 * bought_sum
    total = mix.sum(axis=1, keepdims=True)
    return np.divide(mix, total, out=np.zeros_like(mix), where=total > 0)  # type: ignore[no-any-return]


#: UserBlock fields stacked by rows (users) and summed over parts (talent-sized).
_STACKED = ("engaged_cat", "follows", "buyers", "bought", "interest", "by_user")
_SUMMED = (
    "engaged_sum",
    "engaged_users",
    "active",
    "sales",
    "others_sum",
    "inv_sum",
    "bought_sum",
    "price_sum",
    "price_n",
    "gender_counts",
    "age_counts",
)


def reduce_user_blocks(blocks: Iterable[UserBlock], talent_cat: sp.csr_matrix) -> UserStage:
    """The whole market's per-user stage from its partitions' blocks, in partition order.

    Folded as the blocks come: the talent-sized sums are added in partition order (the same
    float result wherever the parts ran) and each block's dense arrays are dropped at once,
    so one block's (T, C) arrays are held at a time, not every block's (the m market: 40
    blocks of 6.4 MB).
    """
    rows: dict[str, list[sp.csr_matrix]] = {name: [] for name in _STACKED}
    sums: dict[str, F64] = {}
    n_orders: list[F64] = []
    order_logp: list[F64] = []
    engaged_entries = 0
    for b in blocks:
        for name in _STACKED:
            rows[name].append(getattr(b, name))
        for name in _SUMMED:
            v = getattr(b, name)
            if name in sums:
                sums[name] += v
            else:
                sums[name] = v.copy()
        n_orders.append(b.n_orders)
        order_logp.append(b.order_logp)
        engaged_entries += b.engaged_entries
    if not n_orders:
        raise ValueError("no user partition to reduce")  # row_ranges gives at least one

    def stack(name: str) -> sp.csr_matrix:
        # one field at a time, each of its blocks freed as it is copied in
        return stack_rows(rows.pop(name))

    n = np.concatenate(n_orders)
    logp = np.concatenate(order_logp)
    merchant_buyers = sp.csr_matrix(stack("buyers").T)
    merchant_buyers.data[:] = 1.0
    return UserStage(
        engaged_cat=stack("engaged_cat"),
        follows=stack("follows"),
        merchant_buyers=merchant_buyers,
        bought=stack("bought"),
        interest=stack("interest"),
        by_user=stack("by_user"),
        n_orders=n,
        user_logp=np.divide(logp, n, out=np.full(len(n), np.nan), where=n > 0),
        engaged_entries=engaged_entries,
        **_talent_fields(sums, talent_cat),
    )


def stack_rows(blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
    """``sp.vstack(blocks, format="csr")``, emptying ``blocks`` as each is copied in.

    The same matrix, but it holds the whole result and one block at a time, where
    ``vstack`` holds the result and every block; the freed blocks' memory is handed back to
    the machine every :data:`STACK_RELEASE_BYTES` (:func:`kolmatch.memory.release_freed_memory`:
    the heap's holes are of no use to the large result). The l market's user stage rose from
    13.2 to 18.0 GiB while ``vstack`` stacked its fields.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> blocks = [sp.csr_matrix(np.eye(2)), sp.csr_matrix(np.array([[0.0, 3.0]]))]
    >>> stack_rows(blocks).toarray().tolist(), blocks
    ([[1.0, 0.0], [0.0, 1.0], [0.0, 3.0]], [])
    """
    if not blocks:
        raise ValueError("no block to stack")
    n_cols = blocks[0].shape[1]
    n_rows = sum(b.shape[0] for b in blocks)
    nnz = sum(int(b.indptr[-1]) for b in blocks)
    index = np.int32 if max(nnz, n_cols, n_rows) <= np.iinfo(np.int32).max else np.int64
    data = np.empty(nnz, np.result_type(*(b.dtype for b in blocks)))
    indices = np.empty(nnz, index)
    indptr = np.empty(n_rows + 1, index)
    indptr[0] = 0
    if any(b.shape[1] != n_cols for b in blocks):
        wrong = next(b.shape[1] for b in blocks if b.shape[1] != n_cols)
        raise ValueError(f"a block of {wrong} columns among blocks of {n_cols}")
    at = row = freed = 0
    blocks.reverse()
    while blocks:
        b = blocks.pop()
        k, r = int(b.indptr[-1]), b.shape[0]
        data[at : at + k] = b.data[:k]
        indices[at : at + k] = b.indices[:k]
        indptr[row + 1 : row + r + 1] = b.indptr[1:] - b.indptr[0] + at
        at += k
        row += r
        freed += b.data.nbytes + b.indices.nbytes + b.indptr.nbytes
        del b
        if freed >= STACK_RELEASE_BYTES:
            release_freed_memory()
            freed = 0
    release_freed_memory()
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols), copy=False)


def user_stage(
    parts: Iterable[UserPart], shared: UserShared, partitions: PartitionMap
) -> UserStage:
    """Map :func:`user_block` over ``parts`` with ``partitions`` and reduce (in part order);
    the stage names the ``shared`` it was made with."""
    stage = reduce_user_blocks(partitions(user_block, parts, shared), shared.talent_cat)
    return replace(stage, shared=shared)
