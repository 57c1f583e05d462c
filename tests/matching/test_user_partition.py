"""The per-user stage: parts that own the rows they free, and blocks stacked one at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.errors import BadArgument
from kolmatch.graph.market import FULL_READ, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.user_partition import (
    stack_rows,
    user_interest,
    user_interest_in_rows,
    user_parts,
)


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
