"""Partitioned work: a pure function mapped over parts with one broadcast value, results in order.

The feature build's heavy stages are written as a function of one part (a range of users, a
chunk of categories) and a value every part shares (the small arrays, broadcast once), whose
results the caller reduces in part order. :func:`in_process` maps them in a loop; the engine
maps the same functions on a Dask cluster (:mod:`kolmatch.engine.distributed`). The partition
depends on the market alone, never on where it runs, so both give the same features.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from kolmatch.errors import BadArgument

__all__ = ["PartitionMap", "drained", "in_process", "row_ranges", "run_positions", "split_rows"]

PartT = TypeVar("PartT")
SharedT = TypeVar("SharedT")
ResultT = TypeVar("ResultT")


class PartitionMap(Protocol):
    """Maps ``fn(part, shared)`` over ``parts``: the results in the order of ``parts``.

    An implementation may run the calls anywhere (this process, a cluster's workers) and in
    any order, but yields them in part order, so that reducing them is deterministic. The
    results are an iterable to be read once: a reduce that folds them as they come holds one
    part's result at a time in this process (:func:`in_process`).
    """

    def __call__(
        self,
        fn: Callable[[PartT, SharedT], ResultT],
        parts: Iterable[PartT],
        shared: SharedT,
    ) -> Iterable[ResultT]: ...


def in_process(
    fn: Callable[[PartT, SharedT], ResultT], parts: Iterable[PartT], shared: SharedT
) -> Iterator[ResultT]:
    """The :class:`PartitionMap` of this process: one call after another, as they are read
    (a part and its result live only while the reduce takes it in).

    Examples
    --------
    >>> list(in_process(lambda part, shared: part * shared, [1, 2, 3], 10))
    [10, 20, 30]
    """
    return (fn(part, shared) for part in parts)


def drained(parts: list[PartT]) -> Iterator[PartT]:
    """The items of ``parts`` in order, each removed from the list as it is handed out.

    A map that reads it (:func:`in_process`) holds one part at a time: a part whose arrays
    are its own is freed once its result is made, rather than when the whole list goes.

    Examples
    --------
    >>> parts = [1, 2, 3]
    >>> it = drained(parts)
    >>> next(it), parts
    (1, [3, 2])
    >>> list(it), parts
    ([2, 3], [])
    """
    parts.reverse()
    while parts:
        yield parts.pop()


def row_ranges(
    n_rows: int, rows_per_part: int, *, argument: str = "rows_per_part"
) -> list[tuple[int, int]]:
    """Contiguous ``[lo, hi)`` ranges of at most ``rows_per_part`` rows covering ``n_rows``.

    At least one range (empty when there are no rows), so a reduce always has a part.

    ``argument`` names ``rows_per_part`` as the caller knows it, for the error.

    Raises
    ------
    BadArgument
        If ``rows_per_part`` is not a positive whole number.

    Examples
    --------
    >>> row_ranges(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    >>> row_ranges(0, 2)
    [(0, 0)]
    """
    if isinstance(rows_per_part, bool) or not isinstance(rows_per_part, int) or rows_per_part < 1:
        raise BadArgument(argument, f"must be a positive whole number, got {rows_per_part!r}")
    if n_rows <= 0:
        return [(0, 0)]
    return [(lo, min(lo + rows_per_part, n_rows)) for lo in range(0, n_rows, rows_per_part)]


def run_positions(start: NDArray[np.int64], size: NDArray[np.int64]) -> NDArray[np.int64]:
    """The positions ``start[i], start[i] + 1, ..., start[i] + size[i] - 1`` of each run, the
    runs one after another: which entries of an array a list of its slices covers, without a
    loop over the slices.

    Parameters
    ----------
    start, size
        (runs,) each run's first position and length (non-negative integers).

    Returns
    -------
    numpy.ndarray
        int64, ``size.sum()`` positions.

    Examples
    --------
    >>> import numpy as np
    >>> run_positions(np.array([5, 0, 9]), np.array([2, 3, 0])).tolist()
    [5, 6, 0, 1, 2]
    """
    start = np.asarray(start, dtype=np.int64)
    size = np.asarray(size, dtype=np.int64)
    first = np.cumsum(size) - size  # each run's place among the positions
    return np.arange(int(size.sum()), dtype=np.int64) - np.repeat(first - start, size)


def split_rows(
    src: NDArray[np.int64], ranges: Sequence[tuple[int, int]]
) -> list[NDArray[np.int64] | slice]:
    """For each range, the positions of the edges whose source row falls in it, in edge order.

    Where ``src`` is sorted (an :class:`~kolmatch.graph.projection.EdgeList`'s always is), a
    slice per range: indexing with it gives views, not copies (the m market's parts had
    copied ~460 MiB of edges); else one stable sort of ``src`` for all ranges (not a pass
    over every edge per range).

    Examples
    --------
    >>> import numpy as np
    >>> [p.tolist() for p in split_rows(np.array([3, 0, 2, 0]), [(0, 2), (2, 4)])]
    [[1, 3], [0, 2]]
    >>> split_rows(np.array([0, 0, 2, 3]), [(0, 2), (2, 4)])
    [slice(0, 2, None), slice(2, 4, None)]
    """
    edges = np.array([r[0] for r in ranges] + [ranges[-1][1]])
    if len(src) < 2 or bool(np.all(src[1:] >= src[:-1])):
        at = np.searchsorted(src, edges).tolist()
        return [slice(at[i], at[i + 1]) for i in range(len(ranges))]
    order = np.argsort(src, kind="stable")
    bounds = np.searchsorted(src[order], edges)
    return [np.sort(order[bounds[i] : bounds[i + 1]]) for i in range(len(ranges))]
