"""Match lists ranked in ranges of merchants are rank_merchants' rankings, row for row."""

from __future__ import annotations

import numpy as np
import pytest

from kolmatch.errors import BadArgument
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.partition import in_process
from kolmatch.matching.ranking_partition import partitioned_rankings
from kolmatch.matching.score import MerchantRankings, rank_merchants


def assert_same_rankings(a: MerchantRankings, b: MerchantRankings) -> None:
    assert a.depth == b.depth
    for name in ("rows", "scores", "signals", "eligible"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("per_part", [1, 7, 10_000])
def test_ranges_of_merchants_rank_as_rank_merchants(
    tiny_features: MarketFeatures, per_part: int
) -> None:
    want = rank_merchants(tiny_features, depth=20)
    got = partitioned_rankings(tiny_features, in_process, depth=20, merchants_per_part=per_part)
    assert (want.eligible > 0).any()  # a list with talents in it, not only the empty ones
    assert_same_rankings(want, got)


def test_a_range_size_that_is_no_positive_whole_number_is_refused(
    tiny_features: MarketFeatures,
) -> None:
    with pytest.raises(BadArgument) as err:
        partitioned_rankings(tiny_features, in_process, merchants_per_part=0)
    assert err.value.argument == "merchants_per_part"
