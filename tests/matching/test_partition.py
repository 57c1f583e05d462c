"""Partitioned work: ranges cover the rows once, edges split by source row keep their order."""

from __future__ import annotations

import numpy as np
import pytest

from kolmatch.errors import BadArgument
from kolmatch.matching.partition import drained, in_process, row_ranges, split_rows


@pytest.mark.parametrize(("n", "per"), [(0, 3), (1, 3), (9, 3), (10, 3), (10, 100)])
def test_row_ranges_cover_every_row_once_in_order(n: int, per: int) -> None:
    ranges = row_ranges(n, per)
    rows = [r for lo, hi in ranges for r in range(lo, hi)]
    assert rows == list(range(n))
    assert all(0 < hi - lo <= per for lo, hi in ranges if n)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_a_part_size_that_is_no_positive_whole_number_is_refused_by_its_name(bad: object) -> None:
    with pytest.raises(BadArgument) as err:
        row_ranges(10, bad, argument="rows")  # type: ignore[arg-type]
    assert err.value.argument == "rows"


def test_split_rows_gives_each_range_its_edges_in_edge_order() -> None:
    rng = np.random.default_rng(3)
    src = rng.integers(0, 50, size=1_000)
    ranges = row_ranges(50, 7)
    parts = split_rows(src, ranges)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(src)))
    for (lo, hi), pos in zip(ranges, parts, strict=True):
        assert np.all(np.diff(pos) > 0)
        assert np.array_equal(pos, np.nonzero((src >= lo) & (src < hi))[0])


def test_in_process_keeps_the_order_of_the_parts() -> None:
    assert list(in_process(lambda part, shared: (part, shared), [3, 1, 2], "s")) == [
        (3, "s"),
        (1, "s"),
        (2, "s"),
    ]


def test_a_drained_list_frees_each_part_as_the_map_takes_the_next() -> None:
    """Mapped in process, a part handed out by ``drained`` is held by nothing once its result
    is made: the list no longer has it (the user stage frees each part's rows so)."""
    import weakref

    class Part:
        pass

    parts = [Part() for _ in range(3)]
    refs = [weakref.ref(p) for p in parts]
    alive = []
    for _ in in_process(lambda part, shared: None, drained(parts), None):
        alive.append(sum(r() is not None for r in refs))
    assert alive == [3, 2, 1] and parts == []
    assert all(r() is None for r in refs)


def test_split_rows_of_sorted_sources_are_slices_that_give_views() -> None:
    src = np.sort(np.random.default_rng(4).integers(-1, 50, size=1_000))  # -1: unknown rows
    ranges = row_ranges(50, 7)
    parts = split_rows(src, ranges)
    assert all(isinstance(p, slice) for p in parts)
    for (lo, hi), pos in zip(ranges, parts, strict=True):
        assert np.array_equal(np.arange(len(src))[pos], np.nonzero((src >= lo) & (src < hi))[0])
        assert np.shares_memory(src[pos], src) or not len(src[pos])
    assert split_rows(src, ranges)[0] == split_rows(src[::-1][::-1].copy(), ranges)[0]
