"""The per-user stage: parts that own the rows they free, and blocks stacked one at a time."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch.errors import BadArgument
from kolmatch.graph.market import FULL_READ, MarketGraph, read_market
from kolmatch.graph.projection import EdgeList, NodeTable
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import user_shared
from kolmatch.matching.partition import in_process
from kolmatch.matching.user_partition import (
    UserPart,
    UserShared,
    UserStage,
    day_numbers,
    leave_one_out_audience,
    rows_normalised,
    rows_replaced,
    rows_with_entries_in,
    stack_rows,
    stage_with_users,
    user_interest,
    user_interest_in_rows,
    user_part_with,
    user_parts,
    user_parts_of,
    user_stage,
    user_stage_changed,
)
from tests.conftest import write_user_delta


def test_stack_rows_gives_vstack_s_matrix_and_empties_the_blocks() -> None:
    rng = np.random.default_rng(7)
    blocks = [
        sp.random(n, 9, density=0.3, format="csr", random_state=rng) for n in (5, 0, 1, 12, 3)
    ]
    blocks[3] = blocks[3][2:]  # a row slice: its own arrays, rows from the middle
    want = sp.vstack(blocks, format="csr")
    given = list(blocks)
    got = stack_rows(given)
    assert given == []
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.indices, want.indices) and np.array_equal(got.data, want.data)


def test_stack_rows_refuses_blocks_of_other_widths_and_none() -> None:
    with pytest.raises(ValueError, match="no block"):
        stack_rows([])
    with pytest.raises(ValueError, match="3 columns among blocks of 2"):
        stack_rows([sp.csr_matrix((1, 2)), sp.csr_matrix((1, 3))])


def test_owned_parts_copy_the_follows_and_days_and_view_the_rest(
    tiny_market: Path, tmp_path: Path
) -> None:
    """``own``: a part's follows and engagement days are its own (freed with it once the
    graph's table is released); its engagement endpoints and purchases stay views (the rest
    of the build reads them); either way the parts hold the same rows."""
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    g = read_market(store, FULL_READ)
    follows, engaged = g.edge("FOLLOWS", "User"), g.edge("ENGAGED_WITH", "User")
    viewed, owned = user_parts(g, 7), user_parts(g, 7, own=True)
    assert len(owned) > 3
    for v, o in zip(viewed, owned, strict=True):
        for name in ("engaged_src", "counts", "last_day", "follows_src", "follows_dst", "amount"):
            assert np.array_equal(getattr(v, name), getattr(o, name), equal_nan=True), name
        assert not np.shares_memory(o.follows_src, follows.src)
        assert not np.shares_memory(o.follows_dst, follows.dst)
        assert np.shares_memory(v.follows_src, follows.src) or not len(v.follows_src)
        assert np.shares_memory(o.engaged_src, engaged.src) or not len(o.engaged_src)


def test_parts_parse_their_own_engagement_days_and_never_the_whole_column(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Without the caller's days, each part parses its own engagements' days into an array of
    its own: the market's days, part after part, with no array of the whole column's days
    behind them (at l that array, 8 bytes an engagement, sat at the feature build's peak)."""
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    g = read_market(store, FULL_READ)
    engaged = g.edge("ENGAGED_WITH", "User")
    every_day = day_numbers(engaged.columns["last"])
    assert np.isfinite(every_day).any() and len(every_day) > 100
    for own in (False, True):
        parts = user_parts(g, 7, own=own)
        got = np.concatenate([p.last_day for p in parts])
        assert np.array_equal(got, every_day, equal_nan=True), own
        for p in parts:
            assert p.last_day.base is None and len(p.last_day) == len(p.engaged_src)
    given = user_parts(g, 7, every_day)  # the caller's days: views of them, as before
    assert all(np.shares_memory(p.last_day, every_day) for p in given if len(p.last_day))


def test_interest_in_row_blocks_is_the_whole_market_s_interest_row_for_row() -> None:
    """Block by block: the same numbers in the same places, whatever the block size, users
    with no row of any kind (all-zero rows) and a last block shorter than the rest included."""
    rng = np.random.default_rng(11)
    n_users, n_talents, n_cats = 23, 6, 4
    engaged, follows, bought = (
        rng.random((n_users, n)) * (rng.random((n_users, n)) < density)
        for n, density in ((n_cats, 0.3), (n_talents, 0.3), (n_cats, 0.2))
    )
    engaged[4], follows[4], bought[4] = 0, 0, 0  # a user with nothing at all
    engaged, follows, bought = (sp.csr_matrix(m) for m in (engaged, follows, bought))
    talent_category = rng.random((n_talents, n_cats))
    want = user_interest(engaged, follows @ sp.csr_matrix(talent_category), bought)
    want.sort_indices()
    for rows in (1, 5, 23, 100):
        got = user_interest_in_rows(engaged, follows, talent_category, bought, rows=rows)
        got.sort_indices()
        assert got.shape == want.shape
        assert np.array_equal(got.indptr, want.indptr), rows
        assert np.array_equal(got.indices, want.indices), rows
        assert np.array_equal(got.data, want.data), rows
    assert got[4].nnz == 0


def test_interest_in_row_blocks_refuses_mismatched_users_and_a_bad_block_size() -> None:
    one = sp.csr_matrix(np.ones((3, 2)))
    with pytest.raises(ValueError, match="3, 2 and 3 rows"):
        user_interest_in_rows(one, sp.csr_matrix(np.ones((2, 1))), np.ones((1, 2)), one)
    with pytest.raises(BadArgument, match="rows"):
        user_interest_in_rows(one, sp.csr_matrix(np.ones((3, 1))), np.ones((1, 2)), one, rows=0)


# -- a delta: the changed users' stage recomputed, the rest kept --------------------------------

TODAY = date(2026, 1, 1)


def _stage(g: MarketGraph, shared: UserShared) -> UserStage:
    return user_stage(user_parts(g, 300), shared, in_process)


def _same_sparse(a: sp.spmatrix, b: sp.spmatrix, name: str) -> None:
    a, b = sp.csr_matrix(a, copy=True), sp.csr_matrix(b, copy=True)
    for m in (a, b):
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
    assert a.shape == b.shape, name
    assert np.array_equal(a.indptr, b.indptr), name
    assert np.array_equal(a.indices, b.indices), name
    np.testing.assert_allclose(a.data, b.data, rtol=1e-9, atol=0, err_msg=name)


def assert_same_stage(got: UserStage, want: UserStage) -> None:
    """Field by field: the same entries, values within 1e-9 relative (none absolute)."""
    for field in dataclasses.fields(UserStage):
        if field.name == "shared":  # (what it was made with, not what it holds)
            continue
        a, b = getattr(got, field.name), getattr(want, field.name)
        if sp.issparse(b):
            _same_sparse(a, b, field.name)
        elif isinstance(b, np.ndarray):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=0, err_msg=field.name)
        else:
            assert a == b, field.name


def test_a_delta_s_stage_is_the_stage_of_a_build_from_scratch(
    tiny_market: Path, tmp_path: Path
) -> None:
    """New follows, purchases and engagements loaded into the store: the stage of the users
    they touch, recomputed from those users' rows before and after and folded into the old
    stage, equals the stage of the whole market read again."""
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    before = read_market(store, FULL_READ)
    shared = user_shared(before, TODAY)
    stage = _stage(before, shared)
    changed = write_user_delta(tmp_path / "delta", before, seed=3)
    load_folder(tmp_path / "delta", store)
    after = read_market(store, FULL_READ)
    store.close()
    assert np.array_equal(after.node("User").ids, before.node("User").ids)
    assert 50 < len(changed) < 100
    got = user_stage_changed(
        stage, user_parts_of(before, changed), user_parts_of(after, changed), shared
    )
    assert_same_stage(got, _stage(after, user_shared(after, TODAY)))
    assert got.follows.nnz > stage.follows.nnz and got.n_orders.sum() == stage.n_orders.sum() + 30
    # the part after, made from the part before and the types the delta wrote
    old = user_parts_of(before, changed)
    types = [("ENGAGED_WITH", "User"), ("FOLLOWS", "User"), ("PURCHASED", "User")]
    _same_part(user_part_with(old, after, types), user_parts_of(after, changed))
    follows = ("FOLLOWS", "User")
    edges = {**before.edges, follows: after.edge(*follows)}
    only = MarketGraph(after.identity, before.nodes, edges)
    with_follows = user_part_with(old, only, [follows])
    _same_part(with_follows, user_parts_of(only, changed))
    assert len(with_follows.follows_src) > len(old.follows_src)
    assert with_follows.engaged_src is old.engaged_src  # (not made again)
    # the types as a generator, from a graph holding only them (as a read of those users)
    read = MarketGraph(after.identity, before.nodes, {follows: after.edge(*follows)})
    _same_part(user_part_with(old, read, (k for k in [follows])), user_parts_of(only, changed))
    # a delta of follows alone: the rows of engagements it did not move are kept as they were
    follows_stage = user_stage_changed(stage, old, with_follows, shared)
    assert follows_stage.engaged_cat is stage.engaged_cat
    assert_same_stage(follows_stage, _stage(only, user_shared(only, TODAY)))
    with pytest.raises(ValueError, match="PROMOTED from Talent is not a type a user part holds"):
        user_part_with(old, after, [("PROMOTED", "Talent")])
    with pytest.raises(ValueError, match="does not name its users"):
        user_part_with(dataclasses.replace(old, rows=None), after, [follows])


def _same_part(a: UserPart, b: UserPart) -> None:
    for field in dataclasses.fields(b):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(y, np.ndarray):
            assert x.dtype == y.dtype, field.name
            np.testing.assert_array_equal(x, y, err_msg=field.name)
        else:
            assert x == y, field.name


def _tiny_stage(market: Path, tmp_path: Path) -> tuple[MarketGraph, UserShared, UserStage]:
    """The tiny market read from a store, what its stage shares, and its stage."""
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(market, store)
    g = read_market(store, FULL_READ)
    store.close()
    shared = user_shared(g, TODAY)
    return g, shared, _stage(g, shared)


def test_users_without_rows_added_leave_the_stage_as_a_build_makes_it(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Users added among and after the others with no rows (sign-ups before their first
    follow): the stage spread to them (stage_with_users) is the stage a build of that market
    makes, field by field; places that are not one increasing row per user are refused."""
    g, shared, stage = _tiny_stage(tiny_market, tmp_path)
    users = g.node("User")
    new = np.array([f"{users.ids[0]}-a", f"{users.ids[40]}-b", "zz"])
    ids = np.sort(np.concatenate([users.ids.astype(str), new]))
    rows = np.searchsorted(ids, users.ids.astype(str))
    gender = np.full(len(ids), None, dtype=object)
    gender[rows] = users.columns["gender"]
    age_band = np.full(len(ids), None, dtype=object)
    age_band[rows] = users.columns["age_band"]
    table = NodeTable("User", ids, {"gender": gender, "age_band": age_band})
    more = g.with_table(table, rows)
    assert_same_stage(stage_with_users(stage, rows, len(ids)), _stage(more, shared))
    with pytest.raises(ValueError, match="increasing places below"):
        stage_with_users(stage, rows[::-1], len(ids))
    with pytest.raises(ValueError, match="increasing places below"):
        stage_with_users(stage, rows[1:], len(ids))


def _without(e: EdgeList, drop: NDArray[np.bool_]) -> EdgeList:
    keep = ~drop
    return EdgeList(
        e.rel_type,
        e.src_label,
        e.src[keep],
        e.dst[keep],
        {k: v[keep] for k, v in e.columns.items()},
    )


def test_a_delta_that_empties_a_talent_s_audience_leaves_nothing_of_it(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Every follow of a talent and every engagement with its content gone: its audience
    sums are 0, not the round-off of taking each user's term out, which would normalise to
    a whole audience mix where a build from scratch has none."""
    before, shared, stage = _tiny_stage(tiny_market, tmp_path)
    audience = np.asarray((stage.by_user != 0).sum(axis=0)).ravel()
    t = int(np.argmax(audience))  # the widest audience: the most terms to take out
    follows, engaged = before.edge("FOLLOWS", "User"), before.edge("ENGAGED_WITH", "User")
    published = before.edge("PUBLISHED", "Talent")
    own = np.isin(engaged.dst, published.dst[published.src == t])
    gone_f, gone_e = follows.dst == t, own
    changed = np.unique(np.concatenate([follows.src[gone_f], engaged.src[gone_e]]))
    edges = dict(before.edges)
    edges[("FOLLOWS", "User")] = _without(follows, gone_f)
    edges[("ENGAGED_WITH", "User")] = _without(engaged, gone_e)
    after = MarketGraph(before.identity, before.nodes, edges)
    got = user_stage_changed(
        stage, user_parts_of(before, changed), user_parts_of(after, changed), shared
    )
    assert audience[t] > 100 and stage.others_sum[t].any()
    assert_same_stage(got, _stage(after, shared))
    assert not got.by_user[:, t].nnz
    for name in ("others_sum", "inv_sum", "bought_sum", "talent_audience"):
        assert not getattr(got, name)[t].any(), name


def test_a_delta_refuses_parts_of_other_users_and_rows_out_of_order(
    tiny_market: Path, tmp_path: Path
) -> None:
    g, shared, stage = _tiny_stage(tiny_market, tmp_path)
    with pytest.raises(ValueError, match="sorted, unique user rows below 2000"):
        user_parts_of(g, np.array([5, 3]))
    with pytest.raises(ValueError, match="sorted, unique user rows below 2000"):
        user_parts_of(g, np.array([1999, 2000]))
    a, b = user_parts_of(g, np.array([1, 2])), user_parts_of(g, np.array([1, 3]))
    with pytest.raises(ValueError, match="same users"):
        user_stage_changed(stage, a, b, shared)
    with pytest.raises(ValueError, match="same users"):
        user_stage_changed(stage, user_parts(g, 300)[0], a, shared)
    # an edge from a user the part does not name is refused, not added to another's row
    stray = dataclasses.replace(a, follows_src=a.follows_src + 7)
    with pytest.raises(ValueError, match="not of this part"):
        user_stage_changed(stage, a, stray, shared)


@pytest.mark.parametrize("replaced", [[], [0], [3, 4, 9], list(range(12))])
def test_rows_replaced_is_scipy_s_row_assignment(replaced: list[int]) -> None:
    rng = np.random.default_rng(len(replaced))
    m = sp.random(12, 7, density=0.3, format="csr", random_state=rng)
    block = sp.random(len(replaced), 7, density=0.5, format="csr", random_state=rng)
    want = m.tolil()
    if replaced:
        want[replaced] = block.toarray()
    got = rows_replaced(m, np.array(replaced, dtype=np.int64), block)
    assert np.array_equal(got.toarray(), want.toarray())
    with pytest.raises(ValueError, match="block of shape"):
        rows_replaced(m, np.array([1]), sp.csr_matrix((2, 7)))
    for bad in ([4, 1], [1, 1], [-1], [12], [0.0, 2.0]):
        with pytest.raises(ValueError, match="sorted, unique integer rows below 12"):
            rows_replaced(m, np.array(bad), sp.csr_matrix((len(bad), 7)))


def test_an_audience_mix_has_no_share_made_of_round_off() -> None:
    """A talent none of whose audience has its category elsewhere: the leave-one-out
    difference is 0 but for round-off, which must not become a share of the mix."""
    cat = sp.csr_matrix(np.array([[0.3, 0.7]]))
    inv_sum = np.array([3.0])
    others_sum = np.asarray(cat.todense()) * inv_sum[:, None]
    others_sum[0, 0] += 1e-16  # what summing in another order leaves
    mix = leave_one_out_audience(others_sum, inv_sum, np.zeros((1, 2)), cat)
    assert mix.tolist() == [[0.0, 0.0]]


def _follow_graph(users: int, src: NDArray[np.int64], dst: NDArray[np.int64]) -> MarketGraph:
    """A market of ``users`` users whose only rows are follows (``src`` -> ``dst``)."""
    order = np.lexsort((dst, src))
    none = np.zeros(0, dtype=np.int64)
    engaged = {k: np.zeros(0) for k in ("views", "likes", "comments", "shares")}
    edges = {
        ("ENGAGED_WITH", "User"): EdgeList(
            "ENGAGED_WITH", "User", none, none, {**engaged, "last": np.zeros(0, dtype=object)}
        ),
        ("FOLLOWS", "User"): EdgeList("FOLLOWS", "User", src[order], dst[order], {}),
        ("PURCHASED", "User"): EdgeList("PURCHASED", "User", none, none, {"amount": np.zeros(0)}),
    }
    ids = np.array([f"u{i:06d}" for i in range(users)])
    unknown = np.full(users, None, dtype=object)
    columns = {"gender": unknown, "age_band": unknown}
    return MarketGraph(("g", 1), {"User": NodeTable("User", ids, columns)}, edges)


def test_a_talent_that_keeps_few_of_a_large_audience_has_the_sums_of_a_build() -> None:
    """100,000 followers of talent 0, of whom a delta leaves 3 and the next none: taking their
    terms out leaves the round-off of 100,000 terms (it was 4e-8 relative off after the
    first, and a whole audience mix of round-off after the second); the sums of such a talent
    are made afresh over its audience, as a build makes them."""
    n, t, c = 100_000, 50, 8
    rng = np.random.default_rng(0)
    mixes = rng.random((t, c)) * (rng.random((t, c)) < 0.5)
    mixes[:, 0] += 0.01
    one = sp.csr_matrix(np.eye(1, c))
    shared = UserShared(
        TODAY,
        one,
        sp.csr_matrix(np.eye(1, t)),
        rows_normalised(sp.csr_matrix(mixes)),
        one,
        np.zeros(1),
        sp.csr_matrix(np.ones((1, 1))),
        sp.csr_matrix((t, c)),
        one[:, :1],
    )
    per_user = rng.integers(1, 6, n)  # each user also follows 1 to 5 other talents
    src, dst = np.repeat(np.arange(n), per_user), rng.integers(1, t, int(per_user.sum()))
    everyone, kept = np.arange(n), np.arange(n - 3, n)
    graphs = [
        _follow_graph(n, np.r_[everyone, src], np.r_[np.zeros(n, np.int64), dst]),
        _follow_graph(n, np.r_[kept, src], np.r_[np.zeros(3, np.int64), dst]),
        _follow_graph(n, src, dst),
    ]
    stage = user_stage(user_parts(graphs[0]), shared, in_process)
    for before, after, changed in (
        (graphs[0], graphs[1], np.arange(n - 3)),
        (graphs[1], graphs[2], kept),
    ):
        stage = user_stage_changed(
            stage, user_parts_of(before, changed), user_parts_of(after, changed), shared
        )
        assert_same_stage(stage, user_stage(user_parts(after), shared, in_process))
    assert not stage.by_user[:, 0].nnz
    for name in ("others_sum", "inv_sum", "talent_audience"):
        assert not getattr(stage, name)[0].any(), name


@pytest.mark.parametrize("density", [0.0, 0.01, 0.3])
def test_rows_with_an_entry_in_some_columns_are_found_with_empty_rows_around(
    density: float,
) -> None:
    """The users following any of some talents: every row with a stored entry in a column
    named, once, sorted, empty rows at either end and between skipped."""
    rng = np.random.default_rng(int(density * 100))
    m = sp.random(500, 80, density=density, format="csr", random_state=1)
    m = sp.csr_matrix(sp.vstack([sp.csr_matrix((3, 80)), m, sp.csr_matrix((4, 80))]))
    columns = rng.random(80) < 0.2
    dense = m.toarray() != 0
    want = np.flatnonzero(dense[:, columns].any(axis=1))
    got = rows_with_entries_in(m, columns)
    assert got.dtype == np.int64 and got.tolist() == want.tolist()
