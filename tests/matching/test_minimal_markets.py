"""Markets with less than the generator writes: follows only, engagements only, no users at all.

Each is written here as a user would write it (the import format, by hand), loaded, and asked
for match lists, lookalikes and overlaps: the answers must use what the market holds and say
what it lacks, never fall back to id order or call a follows-only audience inflated.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from kolmatch.engine.cache import features_of
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.audience import overlap, similar_talents
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import match_merchant

CATS = ("beauty", "games", "food")


def _write(folder: Path, name: str, header: list[str], rows: list[list[object]]) -> None:
    with (folder / f"{name}.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _market(folder: Path, *, users: bool, follows: bool, engagement: bool) -> Path:
    """Three categories, four talents in each (t<c><i>, more followers for higher i), a merchant
    per category (m-<c>) selling one product; users keep to one category, follow or engage with
    its talents, and its merchant's customers are half of them."""
    folder.mkdir()
    rng = np.random.default_rng(7)
    _write(folder, "category", ["id", "name"], [[c, c.title()] for c in CATS])
    talents = [f"t{c[0]}{i}" for c in CATS for i in range(4)]
    _write(
        folder,
        "talent",
        ["id", "name", "followers"],
        [[t, t.upper(), 1000 * (int(t[-1]) + 1) + k] for k, t in enumerate(talents)],
    )
    _write(folder, "merchant", ["id", "name"], [[f"m-{c}", c] for c in CATS])
    _write(folder, "product", ["id", "name", "price"], [[f"p-{c}", c, 100.0] for c in CATS])
    _write(folder, "sells", ["src", "dst"], [[f"m-{c}", f"p-{c}"] for c in CATS])
    _write(folder, "in_category", ["src", "dst"], [[f"p-{c}", c] for c in CATS])
    if not users:
        # no audience graph: categories and history from past collaborations only
        _write(
            folder,
            "promoted",
            ["src", "dst", "collab_id", "time"],
            [[t, f"p-{c}", f"k-{t}", "2025-01-01"] for t in talents for c in CATS if t[1] == c[0]],
        )
        return folder
    user_rows, follow_rows, content_rows, pub_rows, eng_rows, buy_rows = [], [], [], [], [], []
    for c in CATS:
        for t in (x for x in talents if x[1] == c[0]):
            content_rows.append([f"v-{t}", "video", "2025-01-01"])
            pub_rows.append([t, f"v-{t}"])
    for u in range(60):
        c = CATS[u % 3]
        uid = f"u{u:02d}"
        user_rows.append([uid])
        mine = [t for t in talents if t[1] == c[0]]
        for t in rng.choice(mine, size=2 + u % 2, replace=False):
            if follows:
                follow_rows.append([uid, t])
            if engagement:
                eng_rows.append([uid, f"v-{t}", 3, "2025-02-01"])
        if rng.random() < 0.1:  # a stray interest in another category
            other = talents[(u * 5) % len(talents)]
            if follows:
                follow_rows.append([uid, other])
            if engagement:
                eng_rows.append([uid, f"v-{other}", 1, "2025-02-01"])
        if u % 2 == 0:
            buy_rows.append([uid, f"p-{c}", f"o-{u}", 100.0, "2025-03-01"])
    _write(folder, "user", ["id"], user_rows)
    _write(folder, "purchased", ["src", "dst", "order_id", "amount", "time"], buy_rows)
    if follows:
        _write(folder, "follows", ["src", "dst"], follow_rows)
    if engagement:
        _write(folder, "content", ["id", "kind", "published"], content_rows)
        _write(folder, "published", ["src", "dst"], pub_rows)
        _write(folder, "engaged_with", ["src", "dst", "views", "last"], eng_rows)
    return folder


def _features(tmp_path: Path, **kinds: bool) -> MarketFeatures:
    folder = _market(tmp_path / "market", **kinds)
    store = SQLiteStore(tmp_path / "g.db")
    load_folder(folder, store)
    f = features_of(store)
    store.close()
    return f


@pytest.mark.parametrize(
    "kinds",
    [
        pytest.param({"users": True, "follows": True, "engagement": False}, id="follows-only"),
        pytest.param({"users": True, "follows": False, "engagement": True}, id="engagement-only"),
    ],
)
def test_an_audience_graph_of_either_kind_ranks_explains_and_finds_lookalikes(
    tmp_path: Path, kinds: dict[str, bool]
) -> None:
    f = _features(tmp_path, **kinds)
    assert f.audience.nnz > 0 and f.talent_audience_size.min() > 0
    for c in CATS:
        ranked = match_merchant(f, f"m-{c}", top=12)
        scores = [m.score for m in ranked]
        assert len(set(scores)) > 1 and all(np.isfinite(scores))
        # the merchant's own category's talents lead: from its customers and the audience, not
        # id order (a stray follower can lift one other talent among them)
        top = ranked[:3]
        assert all(m.talent[1] == c[0] for m in top), [m.talent for m in top]
        text = " | ".join(top[0].evidence)
        assert "inflated" not in text
        assert "of this merchant's 10 customers follow or engage with this talent" in text
        breakdown = top[0].breakdown
        assert breakdown["customer_reach"] > 0 and breakdown["customer_affinity"] > 0
    if not kinds["engagement"]:
        assert "no engagement recorded in this market" in text
        assert (f.talent_category_source == 2).all()  # categories read from audiences
    # lookalikes and overlap read the same audience
    t = f.talent_row("tb0")
    rows, sims = similar_talents(f.audience, t, top=3)
    assert len(rows) == 3 and sims[0] > 0
    assert all(f.talent_ids[r][1] == "b" for r in rows)
    shared = overlap(f.audience, t, f.talent_row("tb1")).shared
    members = f.audience.toarray() > 0
    assert shared == int((members[t] & members[f.talent_row("tb1")]).sum()) > 0


def test_a_market_without_users_ranks_by_category_and_followers_and_says_so(
    tmp_path: Path,
) -> None:
    f = _features(tmp_path, users=False, follows=False, engagement=False)
    assert f.users == 0 and f.audience.nnz == 0
    top = match_merchant(f, "m-games", top=5)
    # category fit first (the games talents), then the follower count among them
    assert [m.talent for m in top[:4]] == ["tg3", "tg2", "tg1", "tg0"]
    text = " | ".join(top[0].evidence)
    assert "no followers or engaged users in the graph" in text
    assert "expected GMV is not estimated" in text


def test_leads_without_gmv_go_where_the_talent_reaches_customers(tmp_path: Path) -> None:
    from kolmatch.matching.talent_side import recommend_merchants

    f = _features(tmp_path, users=True, follows=True, engagement=False)
    leads = recommend_merchants(f, ["tg1"], top=3)
    assert leads[0].merchant == "m-games"  # its own audience's merchant, not alphabetical
    assert leads[0].customers_reached > leads[1].customers_reached
    assert all(x.roi is None for x in leads)  # no fee, no GMV: not infinite
    twice = recommend_merchants(f, ["tg1", "tg1"], top=3)
    assert [x.customers_reached for x in twice] == [x.customers_reached for x in leads]
