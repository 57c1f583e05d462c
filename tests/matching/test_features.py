"""Features: the price level and the conversion skill the expected GMV rests on."""

from __future__ import annotations

import csv
import dataclasses
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest
import scipy.sparse as sp

import kolmatch.matching.features as features_module
from kolmatch.errors import BadArgument, StoreError
from kolmatch.graph.market import FULL_READ, MarketGraph, read_market
from kolmatch.graph.projection import EdgeList
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import NodeBatch, RelBatch
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import (
    CONTENT_SKILL_PRIOR,
    PRICE_LEVEL_GRID,
    PRICE_SD,
    ContentJoin,
    MarketFeatures,
    _content_chances_after_delta,
    _Delta,
    _grouped,
    _hidden_need_after_delta,
    _lean_unbought,
    build_features,
    content_chances,
    content_skill_of,
    features_after_delta,
    user_shared,
)
from kolmatch.matching.partition import in_process
from kolmatch.matching.user_partition import pattern_of, user_parts, user_parts_of, user_stage
from tests.conftest import write_user_delta


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_price_level_is_the_plain_mean_over_the_audience_s_buyers(
    tiny_market: Path, tiny_features: MarketFeatures
) -> None:
    # written out from the files: a user's level is the mean log price of its orders (each
    # order one vote, whatever it cost); a talent's the plain mean over its audience (followers
    # and engaged users) who bought anything; a talent with none takes the mean over all buyers;
    # rounded to the grid of PRICE_LEVEL_GRID (within half a step: 1/2048)
    price = {r["id"]: float(r["price"]) for r in _rows(tiny_market / "product.csv")}
    orders: dict[str, list[float]] = defaultdict(list)
    for r in _rows(tiny_market / "purchased.csv"):
        orders[r["src"]].append(np.log(price[r["dst"]]))
    user_level = {u: float(np.mean(v)) for u, v in orders.items()}
    owner = {r["dst"]: r["src"] for r in _rows(tiny_market / "published.csv")}
    engaged: dict[str, set[str]] = defaultdict(set)
    for r in _rows(tiny_market / "engaged_with.csv"):
        engaged[owner[r["dst"]]].add(r["src"])
    for r in _rows(tiny_market / "follows.csv"):
        engaged[r["dst"]].add(r["src"])
    fill = float(np.mean(list(user_level.values())))
    f = tiny_features
    want = []
    for t in f.talent_ids:
        levels = [user_level[u] for u in engaged[str(t)] if u in user_level]
        want.append(float(np.mean(levels)) if levels else fill)
    got = f.talent_price_level
    assert np.array_equal(got * PRICE_LEVEL_GRID, np.round(got * PRICE_LEVEL_GRID))
    np.testing.assert_allclose(got, want, rtol=0, atol=0.5 / PRICE_LEVEL_GRID + 1e-12)
    assert len(np.unique(got)) > len(got) // 2  # not all one level: the grid is fine


def _edges(src: list[int], dst: list[int]) -> EdgeList:
    return EdgeList("", "", np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64), {})


def test_content_skill_is_sales_against_chances_shrunk_to_one() -> None:
    # two talents with one content each; four users engage with both contents. Content 0
    # features product 0 (category 0); content 1 features products 0 and 1 (category 1), so
    # each of its engagements is half a chance per product. Users lean wholly to category 0
    # and pay product 0's price: a chance is worth 1 for product 0 and 0 for product 1 (users
    # 2 and 3 bought nothing: they take the market's level, here that price too).
    # Talent 0 made 8 sales, talent 1 none. Expected: 4 and 2 chances; rate 8 / 6.
    engaged = _edges([0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 0, 1, 0, 1, 0, 1])
    log_price = np.log(np.array([50.0, 50.0]))
    join = ContentJoin.of(
        _edges([0, 1], [0, 1]), _edges([0, 1, 1], [0, 0, 1]), np.array([0, 1]), log_price, 2
    )
    interest = sp.csr_matrix(np.array([[1.0, 0.0]] * 4))
    logp = np.array([np.log(50.0), np.log(50.0), np.nan, np.nan])
    priced, unpriced = content_chances(engaged.src, engaged.dst, join, interest, logp, (3, 2))
    # users 0 and 1 priced: 2 chances each for talent 0, 1 each (half of two) for talent 1;
    # users 2 and 3 by product: talent 0 product 0 twice, talent 1 product 0 twice a half
    # (product 1's category draws no interest: no entry)
    assert priced.tolist() == [2.0, 1.0, 0.0]
    assert unpriced.toarray().tolist() == [[2.0, 0.0], [1.0, 0.0], [0.0, 0.0]]
    sold = np.bincount(np.array([0] * 8), minlength=3).astype(np.float64)
    skill = content_skill_of(sold, priced, unpriced, float(np.log(50.0)), log_price)
    k, rate = CONTENT_SKILL_PRIOR, 8 / 6
    assert skill == pytest.approx([(8 + k) / (4 * rate + k), k / (2 * rate + k), 1.0])
    # the users without a level are priced at the market's: away from the product, fewer
    far = content_skill_of(sold, priced, unpriced, float(np.log(5000.0)), log_price)
    fit = float(np.exp(-0.5 * (np.log(100.0) / PRICE_SD) ** 2))
    rate = 8 / (2 + 2 * fit + 1 + fit)
    assert far == pytest.approx(
        [(8 + k) / ((2 + 2 * fit) * rate + k), k / ((1 + fit) * rate + k), 1]
    )


def test_content_skill_of_a_market_without_sales_is_one() -> None:
    join = ContentJoin.of(_edges([0], [0]), _edges([0], [0]), np.array([0]), np.zeros(1), 1)
    chances = content_chances(
        np.array([0]), np.array([0]), join, sp.csr_matrix(np.ones((1, 1))), np.zeros(1), (1, 1)
    )
    skill = content_skill_of(np.zeros(1), *chances, 0.0, np.zeros(1))
    assert skill.tolist() == [1.0]


def test_content_chances_after_a_delta_are_those_of_the_market_after_it() -> None:
    # three talents' contents (content k by talent k, featuring product k, category k);
    # before: user 0 (a buyer) engaged with contents 0 and 1, user 1 (no purchase) with 1
    # and 2, user 2 (no purchase) with 2. The delta: user 1 buys (a level of its own) and
    # engages with content 0 only; user 2's interest moved (a followed talent's mix did)
    # though its rows did not. Talent 1's chances from users without a level all go: no
    # entry is left of them, as in a build of the market after.
    log_price = np.log(np.array([20.0, 80.0, 300.0]))
    cats = np.array([0, 1, 2])
    join = ContentJoin.of(
        _edges([0, 1, 2], [0, 1, 2]), _edges([0, 1, 2], [0, 1, 2]), cats, log_price, 3
    )
    was_interest = sp.csr_matrix(np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.0, 0.1, 0.9]]))
    now_interest = sp.csr_matrix(np.array([[0.5, 0.5, 0.0], [0.6, 0.4, 0.0], [0.3, 0.3, 0.4]]))
    was_logp = np.array([np.log(30.0), np.nan, np.nan])
    now_logp = np.array([np.log(30.0), np.log(60.0), np.nan])
    was = _edges([0, 0, 1, 1, 2], [0, 1, 1, 2, 2])
    now = _edges([0, 0, 1, 2], [0, 1, 0, 2])
    shape = (3, 3)
    priced, unpriced = content_chances(was.src, was.dst, join, was_interest, was_logp, shape)
    before = cast(
        MarketFeatures,
        SimpleNamespace(
            talent_content_priced=priced,
            talent_content_unpriced=unpriced,
            user_interest=was_interest,
        ),
    )
    delta = _Delta(before, np.array([1]), was_logp, was.src[2:4], was.dst[2:4])
    got = _content_chances_after_delta(delta, np.array([1, 2]), now, join, now_interest, now_logp)
    want = content_chances(now.src, now.dst, join, now_interest, now_logp, shape)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=0)
    assert got[1].nnz == want[1].nnz
    np.testing.assert_array_equal(got[1].indices, want[1].indices)
    np.testing.assert_allclose(got[1].toarray(), want[1].toarray(), rtol=1e-12, atol=0)
    assert unpriced[1].nnz and not want[1][1].nnz  # talent 1's unpriced went with user 1's


def test_content_chances_a_delta_leaves_as_round_off_are_none() -> None:
    # talent 0's content (product 0, category 0, at the users' own price level: a fit of 1)
    # drew chances 0.1, 0.2 and 0.7 from three users with a level and three without; the
    # delta moves all six to talent 1's content. Taken out in another order than they were
    # summed ((0.7 + 0.2) + 0.1 against (0.1 + 0.2) + 0.7), the sums keep ~1e-16: that is
    # nothing, as in a build of the market after (priced 0, no unpriced entry).
    log_price = np.zeros(2)
    join = ContentJoin.of(
        _edges([0, 1], [0, 1]), _edges([0, 1], [0, 1]), np.zeros(2, dtype=np.int64), log_price, 2
    )
    shares = [0.1, 0.2, 0.7] * 2
    interest = sp.csr_matrix(np.array([[x] for x in shares]))
    logp = np.array([0.0, 0.0, 0.0, np.nan, np.nan, np.nan])
    users = np.arange(6)
    was = _edges(users.tolist(), [0] * 6)
    now = _edges(users.tolist(), [1] * 6)
    priced, unpriced = content_chances(was.src, was.dst, join, interest, logp, (2, 2))
    before = cast(
        MarketFeatures,
        SimpleNamespace(
            talent_content_priced=priced,
            talent_content_unpriced=unpriced,
            user_interest=interest,
        ),
    )
    backwards = users[::-1].copy()
    delta = _Delta(before, users, logp, backwards, np.zeros(6, dtype=np.int64))
    got = _content_chances_after_delta(delta, users, now, join, interest, logp)
    want = content_chances(now.src, now.dst, join, interest, logp, (2, 2))
    assert got[0].tolist() == want[0].tolist() == [0.0, 1.0]
    assert got[1].nnz == want[1].nnz == 1 and got[1][1, 1] == pytest.approx(1.0, rel=1e-15)


def test_skill_tracks_the_latent_skill_better_than_collaborations_alone(
    s_features: MarketFeatures, s_market: Path
) -> None:
    # the latent skill is for scoring only; this checks the estimate against it
    from kolmatch.evaluation.synthetic import load_truth

    truth = load_truth(s_market.with_name(s_market.name + "-truth"), s_features)
    corr = np.corrcoef(np.log(s_features.talent_skill), np.log(truth.skill))[0, 1]
    assert corr > 0.45  # measured on s seed 5: 0.59 (collaborations alone, before: 0.32)
    level = np.corrcoef(s_features.talent_price_level, truth.log_price)[0, 1]
    assert level > 0.95  # measured: 0.97 (weighted by engagement strength and spend: 0.88)


def _canonical(m: sp.spmatrix) -> sp.csr_matrix:
    c = sp.csr_matrix(m, copy=True)
    c.sum_duplicates()
    c.eliminate_zeros()
    c.sort_indices()
    return c


def assert_features_close(a: MarketFeatures, b: MarketFeatures, rtol: float = 1e-9) -> None:
    """Every field of ``a`` equal to ``b``'s: floats within ``rtol`` relative (sparse ones: the
    same nonzeros, their values within ``rtol``), everything else (ids, ints, notes, dates)
    exactly. Sparse matrices are not densified: (talents x users) is 800 MB at s."""
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if sp.issparse(x):
            assert sp.issparse(y) and x.shape == y.shape, field.name
            x, y = _canonical(x), _canonical(y)
            np.testing.assert_array_equal(x.indptr, y.indptr, err_msg=field.name)
            np.testing.assert_array_equal(x.indices, y.indices, err_msg=field.name)
            x, y = x.data, y.data
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=rtol, atol=0, err_msg=field.name)
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=field.name)
        elif isinstance(x, float):
            assert x == pytest.approx(y, rel=rtol, abs=0), field.name
        elif isinstance(x, list) and x and isinstance(x[0], np.ndarray):
            assert len(x) == len(y), field.name
            for u, v in zip(x, y, strict=True):
                np.testing.assert_array_equal(u, v, err_msg=field.name)
        else:
            assert x == y, field.name


def market_graph(market: Path, db: Path) -> MarketGraph:
    """A generated market loaded into a SQLite store, read whole."""
    store = SQLiteStore(db)
    try:
        load_folder(market, store)
        return read_market(store, FULL_READ)
    finally:
        store.close()


@pytest.fixture(scope="module")
def tiny_graph(tiny_market: Path, tmp_path_factory: pytest.TempPathFactory) -> MarketGraph:
    return market_graph(tiny_market, tmp_path_factory.mktemp("db") / "tiny.db")


def test_several_user_partitions_build_the_features_of_one(tiny_graph: MarketGraph) -> None:
    users = len(tiny_graph.node("User"))
    one = build_features(tiny_graph, user_partition_rows=users)
    several = build_features(tiny_graph, user_partition_rows=7)
    assert users > 7 * 3  # several indeed, and a last one shorter than the rest
    assert_features_close(one, several)


def test_a_partition_size_that_is_no_whole_positive_number_is_refused(
    tiny_graph: MarketGraph,
) -> None:
    for bad in (0, -5, 2.5, True):
        with pytest.raises(BadArgument, match="user_partition_rows") as err:
            build_features(tiny_graph, user_partition_rows=bad)  # type: ignore[arg-type]
        assert err.value.argument == "user_partition_rows"


def test_the_content_skill_joined_in_chunks_equals_one_join(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The join of engagements with products runs in chunks (the m market's memory); chunks
    of 7 engagements, many of them cut mid-content, sum to what one chunk gives."""
    g = market_graph(tiny_market, tmp_path / "t.db")
    assert len(g.edge("ENGAGED_WITH", "User")) > 7 * 50
    whole = build_features(g).talent_content_skill
    monkeypatch.setattr(features_module, "CONTENT_SKILL_CHUNK", 7)
    chunked = build_features(g).talent_content_skill
    assert not np.allclose(whole, 1.0)  # a skill that moves: the test can see a lost chunk
    np.testing.assert_allclose(chunked, whole, rtol=1e-12)


def test_a_build_that_releases_the_user_edges_gives_the_same_features(
    s_market: Path, tmp_path: Path
) -> None:
    """``release_user_edges``: the engagements and follows leave the graph once read (the
    build's peak at m: docs/scale.md) and the features are the same, to the bit; the engine's
    full build releases them unless the caller asked for them (``also``)."""
    from kolmatch.engine.cache import load_features
    from kolmatch.graph.market import ReadSpec
    from tests.matching.test_incremental import differences

    store = SQLiteStore(tmp_path / "s.db")
    load_folder(s_market, store)
    g = read_market(store, FULL_READ)
    kept = build_features(g)
    released = build_features(g, release_user_edges=True)
    for field in dataclasses.fields(MarketFeatures):
        a, b = getattr(kept, field.name), getattr(released, field.name)
        if isinstance(a, sp.sparray | sp.spmatrix):
            assert (a != b).nnz == 0, field.name
        elif isinstance(a, np.ndarray):
            assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), field.name
    for key in (("ENGAGED_WITH", "User"), ("FOLLOWS", "User")):
        assert key not in g.edges
    assert ("PURCHASED", "User") in g.edges  # the rest of the graph stays
    with pytest.raises(StoreError, match="without FOLLOWS from User"):
        g.edge("FOLLOWS", "User")
    f, catalog = load_features(store, tmp_path / "cache")
    assert ("FOLLOWS", "User") not in catalog.edges and ("SELLS", "Merchant") in catalog.edges
    asked = ReadSpec({}, {("FOLLOWS", "User"): ()})
    for old in (tmp_path / "cache").glob("features-*"):
        old.unlink()
    again, full = load_features(store, tmp_path / "cache", also=asked)
    assert len(full.edge("FOLLOWS", "User")) == len(
        read_market(store, asked).edge("FOLLOWS", "User")
    )
    assert differences(f, again) == []


def test_features_after_a_delta_are_a_build_with_its_calibration_walks_and_date(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Two deltas of follows, purchases and engagements loaded one after the other: each time
    the features from the stage by difference equal a build from scratch of the market read
    again, given the first build's calibration, walks (PageRank, PPR tails) and date."""
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    g = read_market(store, FULL_READ)
    first = f = build_features(g)
    stage = user_stage(user_parts(g), user_shared(g, f.today, f.calibration), in_process)
    for seed in (5, 6):
        changed = write_user_delta(tmp_path / f"delta-{seed}", g, seed=seed)
        if seed == 6:  # and a collaboration: its categories stay the calibration's
            talent, product = g.node("Talent").ids[3], g.node("Product").ids[7]
            collab = {"src": talent, "dst": product, "collab_id": "k-delta", "gmv": 5000.0}
            store.write([RelBatch.of("PROMOTED", "Talent", [{**collab, "orders": 40.0}])])
        load_folder(tmp_path / f"delta-{seed}", store)
        after = read_market(store, FULL_READ)
        was = f
        f, stage = features_after_delta(
            after, f, stage, user_parts_of(g, changed), user_parts_of(after, changed)
        )
        want = build_features(
            after, today=first.today, calibration=first.calibration, walks=first.walks
        )
        assert_features_close(f, want)
        # the delta is seen (else the test could not tell)
        assert (f.talent_audience_size > was.talent_audience_size).any()
        assert f.merchant_buyers.nnz > was.merchant_buyers.nnz
        g = after
    assert f.category_ppr_tail is first.category_ppr_tail and f.today == first.today
    none = user_parts_of(g, np.zeros(0, dtype=np.int64))
    # a content of a one-category talent featuring one more product of that category: no
    # category moves, but its engagements' chances do (the content skill keeps the others')
    shared = user_shared(g, f.today, f.calibration)
    feats = g.edge("FEATURES", "Content")
    single = [
        (k, p)
        for k, p in zip(feats.src.tolist(), feats.dst.tolist(), strict=True)
        if shared.talent_cat[shared.content_talent[k].indices].nnz == 1 and shared.pcat[p].nnz == 1
    ]
    k, p = single[0]
    featured = set(feats.dst[feats.src == k].tolist())
    like = shared.pcat[:, shared.pcat[p].indices[0]].toarray().ravel() == 1.0
    q = next(x for x in np.flatnonzero(like).tolist() if x not in featured)
    feature = {"src": str(g.node("Content").ids[k]), "dst": str(g.node("Product").ids[q])}
    store.write([RelBatch.of("FEATURES", "Content", [feature])])
    refeatured = read_market(store, FULL_READ)
    with pytest.raises(StoreError, match="changes the products the content features, which"):
        features_after_delta(refeatured, f, stage, none, none)
    # a delta of what every user's stage reads is refused: a build makes it
    product = str(g.node("Product").ids[0])
    store.write([NodeBatch.of("Product", [{"id": product, "price": 1234.5}])])
    repriced = read_market(store, FULL_READ)
    with pytest.raises(StoreError, match="changes the products' prices, which every user's"):
        features_after_delta(repriced, f, stage, none, none)
    with pytest.raises(ValueError, match="make it by user_stage"):
        features_after_delta(g, f, dataclasses.replace(stage, shared=None), none, none)
    # and a delta of new nodes: a build places them
    store.write([NodeBatch.of("User", [{"id": "u-000-new"}])])
    grown = read_market(store, FULL_READ)
    with pytest.raises(StoreError, match="changes the User nodes: build the features anew"):
        features_after_delta(grown, f, stage, none, none)
    store.close()


@pytest.mark.parametrize("n", [0, 1, 7, 300])
def test_values_grouped_by_key_are_each_key_s_in_their_order(n: int) -> None:
    """A merchant's products (SELLS grouped by merchant): each key's values in their order, a
    key without values empty, as a mask per key gives them."""
    rng = np.random.default_rng(n)
    keys = rng.integers(0, max(n, 1), 2_000 if n else 0)
    values = rng.integers(0, 10_000, len(keys))
    got = _grouped(keys, values, n)
    assert len(got) == n
    for k, part in enumerate(got):
        assert part.dtype == values.dtype and part.tolist() == values[keys == k].tolist()


def test_a_delta_where_every_talent_has_categories_of_its_own_is_a_build(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Where no talent takes its audience's categories, the users' interest is the stage's and
    a delta moves only its own users' rows (interest, purchases, audience): the hidden needs
    by difference over those alone, and every feature, equal a build with the calibration,
    walks and date before."""
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    g = read_market(store, FULL_READ)
    bare = np.flatnonzero(build_features(g).talent_category_source == 2)
    assert len(bare)  # (the tiny market has some: give each a promotion of its own)
    talents, product = g.node("Talent").ids, g.node("Product").ids[7]
    promoted = [
        {"src": talents[t], "dst": product, "collab_id": f"own-{t}", "gmv": 100.0, "orders": 1.0}
        for t in bare
    ]
    store.write([RelBatch.of("PROMOTED", "Talent", promoted)])
    g = read_market(store, FULL_READ)
    first = build_features(g)
    assert not (first.talent_category_source == 2).any()
    stage = user_stage(user_parts(g), user_shared(g, first.today, first.calibration), in_process)
    changed = write_user_delta(tmp_path / "delta", g, seed=8)
    load_folder(tmp_path / "delta", store)
    after = read_market(store, FULL_READ)
    f, _ = features_after_delta(
        after, first, stage, user_parts_of(g, changed), user_parts_of(after, changed)
    )
    want = build_features(
        after, today=first.today, calibration=first.calibration, walks=first.walks
    )
    assert not (f.talent_category_source == 2).any()
    assert_features_close(f, want)
    assert np.array_equal(f.talent_hidden_need, want.talent_hidden_need)  # (counts: exact)
    assert not np.array_equal(f.talent_hidden_need, first.talent_hidden_need)  # (it moved)


def test_the_hidden_needs_after_a_delta_are_the_builds_to_the_bit(
    tiny_features: MarketFeatures,
) -> None:
    """A delta makes the hidden needs by taking its users' terms out and their new ones in:
    the same counts, bit for bit, as the build's product over every user (users who follow
    more, fewer or no talents, lean elsewhere, or bought in their leaning category)."""
    import scipy.sparse as sp

    from kolmatch.matching.user_partition import rows_replaced

    f = tiny_features
    U, T = f.audience_by_user.shape
    C = f.user_interest.shape[1]
    rng = np.random.default_rng(4)
    rows = np.sort(rng.choice(U, 60, replace=False))
    n = len(rows)
    weights = sp.random(n, T, density=0.03, format="csr", random_state=5)
    weights.data = np.where(weights.data > 0.5, 1.0, 0.5)
    keep = np.ones(n)
    keep[:5] = 0.0  # (five users who follow nobody now)
    weights = sp.csr_matrix(sp.diags(keep) @ weights)
    weights.eliminate_zeros()
    interest = sp.random(n, C, density=0.3, format="csr", random_state=6)
    bought = sp.random(n, C, density=0.1, format="csr", random_state=7)
    by_user = rows_replaced(f.audience_by_user, rows, weights)
    user_interest = rows_replaced(f.user_interest, rows, interest)
    user_bought = rows_replaced(f.user_bought, rows, bought)
    want = pattern_of(by_user).T.tocsr()
    need = np.asarray((want @ _lean_unbought(user_interest, user_bought)).todense())
    assert not np.array_equal(need, f.talent_hidden_need)  # (the delta moved some)
    got_need = _hidden_need_after_delta(f, rows, by_user, user_interest, user_bought)
    assert np.array_equal(got_need, need)
