"""A load of users' rows applied to the cached features as a delta."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kolmatch.engine.cache import _cache_path, _store, latest_features
from kolmatch.engine.delta import delta_base, features_after_load, keep_for_delta
from kolmatch.graph.market import FEATURES_READ, USER_EDGES_READ, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import NodeBatch, RelBatch
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import build_features, user_shared
from kolmatch.matching.partition import in_process
from kolmatch.matching.user_partition import user_parts, user_stage
from tests.conftest import write_user_delta
from tests.matching.test_features import assert_features_close


def test_loads_of_users_rows_are_applied_to_the_cached_features(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Two loads of follows, purchases and engagements, each applied to the cached features of
    the version before (and its kept graph and stage): the features cached for each new
    version equal a build of it read whole, with the first build's calibration, walks and
    date; the base kept moves on with them. A load the base cannot take (a new user, a
    version skipped, no base) gives None and caches nothing."""
    cache = tmp_path / "cache"
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    g = read_market(store, FEATURES_READ)
    first = build_features(g)
    stage = user_stage(user_parts(g), user_shared(g, first.today, first.calibration), in_process)
    _store(_cache_path(store.uri, cache, "features", g.identity), "features", first)
    keep_for_delta(store.uri, cache, g, stage)
    assert delta_base(store.uri, cache, first, g.identity) is not None
    was = first
    for seed in (5, 6):
        v = store.version()
        rows = write_user_delta(tmp_path / f"delta-{seed}", g, seed=seed)
        (tmp_path / f"delta-{seed}" / "user.csv").unlink()  # (users' own rows: a build)
        load_folder(tmp_path / f"delta-{seed}", store)
        users = [str(u) for u in g.node("User").ids[rows]]
        f = features_after_load(store, cache, v, users, USER_EDGES_READ)
        assert f is not None
        g = read_market(store, FEATURES_READ)
        want = build_features(
            g, today=first.today, calibration=first.calibration, walks=first.walks
        )
        assert_features_close(f, want)
        assert (f.talent_audience_size != was.talent_audience_size).any()  # (the delta is seen)
        cached = latest_features(store.uri, g.identity[0], cache)
        assert cached is not None and cached[1] == v + 1
        assert_features_close(cached[0], want)
        assert delta_base(store.uri, cache, f, g.identity) is not None
        assert delta_base(store.uri, cache, f, (g.identity[0], v)) is None  # (gone)
        was = f
    # a new user: no delta of the base (nothing cached for the version)
    v = store.version()
    talent = str(g.node("Talent").ids[0])
    store.write(
        [
            NodeBatch.of("User", [{"id": "u-new"}]),
            RelBatch.of("FOLLOWS", "User", [{"src": "u-new", "dst": talent}]),
        ]
    )
    assert features_after_load(store, cache, v, ["u-new"], [("FOLLOWS", "User")]) is None
    assert latest_features(store.uri, g.identity[0], cache)[1] == v  # type: ignore[index]
    # a version skipped (another write came between), or no base for the version named
    user = str(g.node("User").ids[3])
    store.write([RelBatch.of("FOLLOWS", "User", [{"src": user, "dst": talent}])])
    assert features_after_load(store, cache, v, [user], [("FOLLOWS", "User")]) is None
    assert features_after_load(store, cache, v + 1, [user], [("FOLLOWS", "User")]) is None
    assert not np.isnan(f.talent_audience_size).any()
    store.close()
