"""Categories as sets: weights per product, a primary one, talents' categories from audiences."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from kolmatch.graph.projection import EdgeList
from kolmatch.matching.categories import (
    primary_category,
    product_category_weights,
    talent_categories,
)


def test_a_product_in_several_categories_weighs_one_over_k_in_each() -> None:
    e = EdgeList("IN_CATEGORY", "Product", np.array([0, 0, 0, 1, 1]), np.array([2, 0, 1, 1, 1]), {})
    w = product_category_weights(e, 3, 3)
    assert w.toarray().tolist() == [[1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert primary_category(w).tolist() == [0, 1, -1]  # equals: the first by id


def test_a_talent_without_content_takes_its_audience_s_categories() -> None:
    own = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    audience = np.array([[0.2, 0.8], [0.3, 0.7], [0.0, 0.0]])
    mix, source = talent_categories(own, audience)
    assert mix.tolist() == [[1.0, 0.0], [0.3, 0.7], [0.0, 0.0]]
    assert source.tolist() == [1, 2, 0]
