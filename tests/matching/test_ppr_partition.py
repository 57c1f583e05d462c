"""The category PPR tails chunk by chunk are the same bits as category_ppr_tails."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.matching.partition import in_process
from kolmatch.matching.personalised import PPR_CHUNK, category_ppr_tails
from kolmatch.matching.ppr_partition import partitioned_ppr_tails, ppr_chunks


def _market(
    users: int, talents: int, categories: int, seed: int
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    w = sp.random(users, talents, density=0.05, random_state=seed, format="csr")
    w.data[:] = rng.choice([0.5, 1.0], size=w.nnz)
    in_none = np.arange(users) < users // 10  # users in no audience: their purchases left out
    w = sp.diags((~in_none).astype(np.float64)) @ w
    buyers = sp.csr_matrix(rng.random((users, categories)) < 0.1, dtype=np.float64)
    return sp.csr_matrix(w), buyers


@pytest.mark.parametrize("categories", [1, PPR_CHUNK, 2 * PPR_CHUNK + 3])
def test_chunked_tails_are_category_ppr_tails(categories: int) -> None:
    w, buyers = _market(400, 30, categories, seed=categories)
    chunks = ppr_chunks(w, buyers)
    assert [c.buyers.shape[1] for c in chunks] == [
        min(PPR_CHUNK, categories - lo) for lo in range(0, categories, PPR_CHUNK)
    ]
    got = partitioned_ppr_tails(w, buyers, in_process, alpha=0.6)
    assert np.array_equal(got, category_ppr_tails(w, buyers, alpha=0.6))


def test_a_market_without_categories_has_no_tails() -> None:
    w, buyers = _market(20, 5, 0, seed=1)
    assert partitioned_ppr_tails(w, buyers, in_process).shape == (0, 5)
