"""A load of users' rows applied to the cached features as a delta."""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kolmatch.engine import delta
from kolmatch.engine.cache import (
    _cache_path,
    _store,
    cached_features,
    latest_features,
    rebuilding_now,
)
from kolmatch.engine.delta import (
    delta_base,
    features_after_load,
    keep_for_delta,
    load_as_delta,
)
from kolmatch.errors import InputError
from kolmatch.graph.market import FEATURES_READ, USER_EDGES_READ, MarketGraph, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import NodeBatch, RelBatch
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import MarketFeatures, build_features, user_shared
from kolmatch.matching.partition import in_process
from kolmatch.matching.user_partition import UserStage, user_parts, user_stage
from tests.conftest import write_user_delta
from tests.matching.test_features import assert_features_close


def _assert_kept_is_the_whole_read(
    uri: str, cache: Path, f: MarketFeatures, after: MarketGraph
) -> None:
    """The base a delta kept for the next is the new version's whole read, edge for edge:
    its follows added from the load's pairs, its purchases and engagements read back."""
    kept = delta_base(uri, cache, f, after.identity)
    assert kept is not None
    for key in USER_EDGES_READ:
        e, want = kept[0].edge(*key), after.edge(*key)
        assert np.array_equal(e.src, want.src) and np.array_equal(e.dst, want.dst), key
        for name, column in want.columns.items():
            np.testing.assert_array_equal(e.columns[name], column, err_msg=f"{key} {name}")


def _built_and_kept(
    market: Path, tmp_path: Path, cache: Path
) -> tuple[SQLiteStore, MarketGraph, MarketFeatures, UserStage]:
    """``market`` loaded into a new store, its graph read and built, and its base (graph and
    per-user stage) kept in ``cache`` (the features are not cached)."""
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(market, store)
    g = read_market(store, FEATURES_READ)
    f = build_features(g)
    stage = user_stage(user_parts(g), user_shared(g, f.today, f.calibration), in_process)
    keep_for_delta(store.uri, cache, g, stage)
    return store, g, f, stage


def test_loads_of_users_rows_are_applied_to_the_cached_features(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Two loads of follows, purchases and engagements, each applied to the cached features of
    the version before (and its kept graph and stage): the features cached for each new
    version equal a build of it read whole, with the first build's calibration, walks and
    date; the base kept moves on with them. A load the base cannot take (a user it does not
    name among the nodes it wrote, a version skipped, no base) gives None and caches
    nothing."""
    cache = tmp_path / "cache"
    store, g, first, _ = _built_and_kept(tiny_market, tmp_path, cache)
    _store(_cache_path(store.uri, cache, "features", g.identity), "features", first)
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
    # a new user not named among the nodes written: no delta of the base (nothing cached)
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


def test_a_build_keeps_its_base_and_a_load_of_users_rows_follows_it_by_a_delta(
    tiny_market: Path, tmp_path: Path
) -> None:
    """The engine's build keeps its graph and stage; a load of follows and purchases through
    load_as_delta (what `kolmatch load` does) caches the next version's features by a delta,
    equal to a build of it with the first build's calibration, walks and date, and readers
    load them rather than build. A load that writes a node other than a user's, or one made
    while another process holds the rebuild lock (it is building), is no delta: nothing
    cached for its version."""
    cache = tmp_path / "cache"
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    first = cached_features(store, cache)  # a build
    g = read_market(store, FEATURES_READ)
    assert delta_base(store.uri, cache, first, g.identity) is not None
    rows = write_user_delta(tmp_path / "day", g, seed=7)
    (tmp_path / "day" / "user.csv").unlink()
    report, got = load_as_delta(tmp_path / "day", store, cache)
    assert got is not None and report.rel_users == {str(u) for u in g.node("User").ids[rows]}
    assert report.rel_types == set(USER_EDGES_READ) and not report.node_labels
    after = read_market(store, FEATURES_READ)
    assert got[1] == after.identity[1] == g.identity[1] + 1
    _assert_kept_is_the_whole_read(store.uri, cache, got[0], after)
    want = build_features(
        after, today=first.today, calibration=first.calibration, walks=first.walks
    )
    assert_features_close(got[0], want)
    assert_features_close(cached_features(store, cache), want)  # read from the cache
    # a load with a talent's row: a build's (nothing cached for its version)
    (tmp_path / "day2").mkdir()
    (tmp_path / "day2" / "talent.csv").write_text("id,name\nt-new,New Talent\n")
    report, got = load_as_delta(tmp_path / "day2", store, cache)
    assert got is None and report.node_labels == {"Talent"}
    assert latest_features(store.uri, after.identity[0], cache)[1] == after.identity[1]  # type: ignore[index]
    # another process building (it holds the rebuild lock): the load is made, no delta
    cached_features(store, cache)  # (built, base kept)
    v = store.version()
    (tmp_path / "day3").mkdir()
    user, talent = str(g.node("User").ids[9]), str(g.node("Talent").ids[2])
    (tmp_path / "day3" / "follows.csv").write_text(f"src,dst\n{user},{talent}\n")
    with rebuilding_now(store.uri, after.identity[0], cache) as held:
        assert held
        report, got = load_as_delta(tmp_path / "day3", store, cache)
    assert got is None and store.version() == v + 1 and report.rel_users == {user}
    store.close()


def test_a_day_loaded_into_neo4j_is_a_delta_equal_to_a_build(
    tiny_market: Path, tmp_path: Path, neo4j_store: Any
) -> None:
    """On the real Neo4j server: a day of follows (one already held), purchases and
    engagements loaded through load_as_delta is a delta whose features equal a build of the
    new version with the first build's calibration, walks and date, and whose kept base is
    the new version's whole read (the follows from the load's pairs; the rest read back from
    their writers by id)."""
    cache = tmp_path / "cache"
    store = neo4j_store
    load_folder(tiny_market, store)
    first = cached_features(store, cache)  # a build, its base kept
    g = read_market(store, FEATURES_READ)
    write_user_delta(tmp_path / "day", g, seed=3)
    (tmp_path / "day" / "user.csv").unlink()
    report, got = load_as_delta(tmp_path / "day", store, cache)
    assert got is not None and report.rel_pairs is not None
    assert report.pairs("FOLLOWS", "User").num_rows == 41  # (40 new, one already held)
    after = read_market(store, FEATURES_READ)
    assert got[1] == after.identity[1] == g.identity[1] + 1
    want = build_features(
        after, today=first.today, calibration=first.calibration, walks=first.walks
    )
    assert_features_close(got[0], want)
    _assert_kept_is_the_whole_read(store.uri, cache, got[0], after)


def test_a_day_with_sign_ups_is_a_delta_equal_to_a_build(tiny_market: Path, tmp_path: Path) -> None:
    """A day's load with new users (sign-ups: some with follows, purchases and engagements,
    one with its own row alone, ids that sort among the users held and after them) and an
    existing user's corrected gender and age band is applied by a delta: the features cached
    for the new version equal a build of it (the first build's calibration, walks and date),
    field by field, and the base kept moves on so that the next day's load, on the users now,
    is a delta too."""
    cache = tmp_path / "cache"
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    first = cached_features(store, cache)  # a build
    g = read_market(store, FEATURES_READ)
    users, talents = g.node("User").ids, g.node("Talent").ids
    products, contents = g.node("Product").ids, g.node("Content").ids
    day = tmp_path / "day"
    write_user_delta(day, g, seed=8)  # (its user.csv corrects an existing user)
    new = [f"{users[10]}-a", f"{users[200]}-b", "zz-late", "zz-quiet"]  # (among and after)
    assert set(new).isdisjoint(users)
    with (day / "user.csv").open("a") as fh:
        fh.writelines(f"{u},{'f' if i % 2 else 'm'},18-23\n" for i, u in enumerate(new))
    with (day / "follows.csv").open("a") as fh:
        fh.writelines(f"{u},{talents[3 * i]},2025-12-30\n" for i, u in enumerate(new[:3]))
    with (day / "purchased.csv").open("a") as fh:
        fh.write(f"{new[0]},{products[1]},signup-1,88.0,2025-12-30,{talents[0]}\n")
        fh.write(f"{new[2]},{products[2]},signup-2,12.5,2025-12-30,\n")
    with (day / "engaged_with.csv").open("a") as fh:
        fh.write(f"{new[1]},{contents[0]},4,1,0,1,30.0,2025-12-29\n")
    report, got = load_as_delta(day, store, cache)
    assert report.node_labels == {"User"} and set(new) <= (report.node_users or set())
    assert got is not None
    after = read_market(store, FEATURES_READ)
    assert got[1] == after.identity[1] and len(after.node("User")) == len(users) + len(new)
    want = build_features(
        after, today=first.today, calibration=first.calibration, walks=first.walks
    )
    assert_features_close(got[0], want)
    assert_features_close(cached_features(store, cache), want)  # read from the cache
    signed = after.node("User").indices_of(new[:3])
    assert (got[0].user_interest[signed].sum(axis=1) > 0).all()  # (their rows are in)
    # the next day, on the users now: a delta again
    (tmp_path / "day2").mkdir()
    (tmp_path / "day2" / "follows.csv").write_text(
        f"src,dst\n{new[3]},{talents[1]}\n{users[5]},{talents[2]}\n"
    )
    report, got = load_as_delta(tmp_path / "day2", store, cache)
    assert got is not None and not report.node_labels
    later = read_market(store, FEATURES_READ)
    want = build_features(
        later, today=first.today, calibration=first.calibration, walks=first.walks
    )
    assert_features_close(got[0], want)
    was = got[0]
    # users' own rows alone: a sign-up with no other row, a follower's corrected gender
    (tmp_path / "day3").mkdir()
    (tmp_path / "day3" / "user.csv").write_text(f"id,gender\nzzz-idle,f\n{new[0]},f\n")
    report, got = load_as_delta(tmp_path / "day3", store, cache)
    assert got is not None and not report.rel_types
    last = read_market(store, FEATURES_READ)
    want = build_features(last, today=first.today, calibration=first.calibration, walks=first.walks)
    assert_features_close(got[0], want)
    assert (got[0].talent_gender != was.talent_gender).any()  # (the correction is seen)
    # a correction alone (no new user: nothing renumbered)
    (tmp_path / "day4").mkdir()
    (tmp_path / "day4" / "user.csv").write_text(f"id,age_band\n{new[0]},50+\n")
    report, got = load_as_delta(tmp_path / "day4", store, cache)
    assert got is not None
    want = build_features(
        read_market(store, FEATURES_READ),
        today=first.today,
        calibration=first.calibration,
        walks=first.walks,
    )
    assert_features_close(got[0], want)
    store.close()


def test_deltas_give_way_to_a_build_once_enough_users_changed_since_it(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users changed by deltas add up from the last build; a load that would take them past
    DELTA_SHARE_MAX of all users is a build's (its walks and date measured again), and the
    build starts the count again."""
    cache = tmp_path / "cache"
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    cached_features(store, cache)
    g = read_market(store, FEATURES_READ)
    n = len(g.node("User"))
    days = []
    for seed in (8, 9):
        rows = write_user_delta(tmp_path / f"day-{seed}", g, seed=seed)
        (tmp_path / f"day-{seed}" / "user.csv").unlink()
        days.append(len(rows))
    monkeypatch.setattr(delta, "DELTA_SHARE_MAX", (days[0] + days[1] - 1) / n)
    assert load_as_delta(tmp_path / "day-8", store, cache)[1] is not None
    assert load_as_delta(tmp_path / "day-9", store, cache)[1] is None  # (over the share)
    cached_features(store, cache)  # the build: the count starts again
    assert load_as_delta(tmp_path / "day-8", store, cache)[1] is not None
    # a build of a version a delta kept (its graph folder there already) starts it again too
    v = store.version()
    folder = next(cache.glob(f"graph-*-v{v}"))
    assert (folder / "since-build.json").exists()
    g = read_market(store, FEATURES_READ)
    f = build_features(g)
    keep_for_delta(
        store.uri,
        cache,
        g,
        user_stage(user_parts(g), user_shared(g, f.today, f.calibration), in_process),
    )
    assert not (folder / "since-build.json").exists()
    # the store's newer base is never dropped by an older one kept after it
    older = read_market(store, FEATURES_READ)
    keep_for_delta(
        store.uri,
        cache,
        dataclasses.replace(older, identity=(older.identity[0], v - 1)),
        user_stage(user_parts(g), user_shared(g, f.today, f.calibration), in_process),
    )
    assert folder.exists() and next(cache.glob(f"graph-*-v{v - 1}")).exists()
    store.close()


def test_a_load_dated_after_the_features_or_failing_after_it_is_in_is_left_to_a_build(
    tiny_market: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Engagements dated after the features' reference date move the date a build would take:
    no delta. A delta that fails once the load is in (here made to: there is no real fault to
    provoke) says so in the log and leaves the load in and the version to a build."""
    cache = tmp_path / "cache"
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    first = cached_features(store, cache)
    g = read_market(store, FEATURES_READ)
    user, content = str(g.node("User").ids[4]), str(g.node("Content").ids[4])
    later = (first.today + timedelta(days=3)).isoformat()
    (tmp_path / "day").mkdir()
    (tmp_path / "day" / "engaged_with.csv").write_text(
        f"src,dst,views,likes,comments,shares,watch_s,last\n{user},{content},2,0,0,0,5.0,{later}\n"
    )
    v = store.version()
    caplog.set_level(logging.INFO, logger="kolmatch.engine.delta")
    assert load_as_delta(tmp_path / "day", store, cache)[1] is None
    assert store.version() == v + 1
    assert f"engagements dated after the features' reference date {first.today}" in caplog.text
    cached_features(store, cache)  # (a build of that version, its base kept)

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(delta, "features_after_delta", broken)
    user = str(g.node("User").ids[5])
    (tmp_path / "day2").mkdir()
    (tmp_path / "day2" / "follows.csv").write_text(f"src,dst\n{user},{g.node('Talent').ids[1]}\n")
    report, got = load_as_delta(tmp_path / "day2", store, cache)
    assert got is None and report.rel_users == {user} and store.version() == v + 2
    assert "applying the load as a delta failed" in caplog.text and "out of memory" in caplog.text
    store.close()


def test_a_bad_day_read_beside_its_base_writes_nothing_and_the_next_day_is_a_delta(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delta base is read on a thread while the load writes. A day the load refuses (a
    follow without its talent) says where, writes nothing and leaves the base as it was:
    the next day is a delta from it, equal to a build; the base read waits for its load. A
    folder with a file of another label than User's is not read ahead."""
    cache = tmp_path / "cache"
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    first = cached_features(store, cache)
    g = read_market(store, FEATURES_READ)
    v = store.version()
    user = str(g.node("User").ids[4])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "follows.csv").write_text(f"src,dst\n{user},\n")
    with pytest.raises(InputError, match=r"follows\.csv:2"):
        load_as_delta(tmp_path / "bad", store, cache)
    assert store.version() == v
    # the base read is the delta's, read once: made to start only once the load is in, it
    # still serves
    loaded = threading.Event()
    base_of, kept = delta._base_of, delta.delta_base
    calls: list[str] = []

    def after_the_load(*args: Any) -> Any:
        calls.append("waited" if loaded.wait(5) else "not waited")
        return base_of(*args)

    def read_kept(*args: Any, **kwargs: Any) -> Any:
        calls.append("base read")
        return kept(*args, **kwargs)

    write = delta.load_folder

    def load(*args: Any, **kwargs: Any) -> Any:
        try:
            return write(*args, **kwargs)
        finally:
            loaded.set()

    monkeypatch.setattr(delta, "_base_of", after_the_load)
    monkeypatch.setattr(delta, "delta_base", read_kept)
    monkeypatch.setattr(delta, "load_folder", load)
    rows = write_user_delta(tmp_path / "day", g, seed=3)
    (tmp_path / "day" / "user.csv").unlink()
    report, got = load_as_delta(tmp_path / "day", store, cache)
    assert got is not None and got[1] == v + 1 and calls == ["waited", "base read"]
    assert report.rel_users == {str(u) for u in g.node("User").ids[rows]}
    after = read_market(store, FEATURES_READ)
    want = build_features(
        after, today=first.today, calibration=first.calibration, walks=first.walks
    )
    assert_features_close(got[0], want)
    calls.clear()
    (tmp_path / "talent").mkdir()
    (tmp_path / "talent" / "talent.csv").write_text("id,name\nt-new,New Talent\n")
    (tmp_path / "talent" / "follows.csv").write_text(f"src,dst\n{user},t-new\n")
    assert load_as_delta(tmp_path / "talent", store, cache)[1] is None and calls == []
    assert store.version() == v + 2
    store.close()


def test_a_base_older_than_the_load_serves_only_across_the_api_s_recorded_writes(
    tiny_market: Path, tmp_path: Path
) -> None:
    """The base kept at a version serves a load made later only where the change feed shows
    every version since written by the API's kinds of write (collaborations, violations,
    bookings, campaigns); a recalibration, another kind, a write still pending, failed or
    missing from the feed leaves the load to a build."""
    from kolmatch.engine.cache import record_change
    from kolmatch.engine.delta import _base_version

    cache = tmp_path / "cache"
    store, g, _, stage = _built_and_kept(tiny_market, tmp_path, cache)
    graph_id, v = g.identity
    assert _base_version(store.uri, cache, g.identity) == v  # (its own version)
    assert _base_version(store.uri, cache, (graph_id, v - 1)) is None  # (none before)

    def written(before: int, kind: str, state: str = "written") -> None:
        entry = {"before": before, "kind": kind, "state": state, "id": f"w{before}"}
        record_change(store.uri, graph_id, cache, {**entry, "after": before + 1})

    for i, kind in enumerate(("collaboration", "violations", "bookings", "campaigns")):
        written(v + i, kind)
        assert _base_version(store.uri, cache, (graph_id, v + i + 1)) == v, kind
    assert _base_version(store.uri, cache, (graph_id, v + 5)) is None  # (v + 4: not in the feed)
    written(v + 4, "calibration")
    assert _base_version(store.uri, cache, (graph_id, v + 5)) is None
    for kind, state in (("other", "written"), ("collaboration", "pending"), ("bookings", "failed")):
        other = tmp_path / f"cache-{kind}-{state}"
        keep_for_delta(store.uri, other, g, stage)
        entry = {"before": v, "kind": kind, "state": state, "after": v + 1}
        record_change(store.uri, graph_id, other, entry)
        assert _base_version(store.uri, other, (graph_id, v + 1)) is None, (kind, state)
    store.close()


def test_a_build_of_a_version_a_delta_made_takes_the_walks_and_date_the_delta_kept(
    tiny_market: Path, tmp_path: Path
) -> None:
    """A delta keeps the last build's walks and date; a build of the version it made (its
    features no longer cached: evicted, a cache folder cleared) takes them too and gives the
    delta's features, where walking the new follow graph would not, and its kept base goes on
    counting the users changed since the last build that walked. So does a build of a version
    the API's writes alone made since (the change feed says so); past a bulk load the build
    walks again."""
    from kolmatch.engine.cache import record_change, walks_in_effect
    from kolmatch.engine.delta import _graph_folder, _since_build

    cache = tmp_path / "cache"
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    first = cached_features(store, cache)  # a build (walks measured), its base kept
    g = read_market(store, FEATURES_READ)
    rows = write_user_delta(tmp_path / "day", g, seed=7)
    (tmp_path / "day" / "user.csv").unlink()
    _, got = load_as_delta(tmp_path / "day", store, cache)
    assert got is not None
    made = read_market(store, FEATURES_READ)
    walked = build_features(made, calibration=first.calibration)  # the new follows walked
    assert not np.allclose(walked.talent_influence, got[0].talent_influence, rtol=1e-9, atol=0)
    assert walks_in_effect(store.uri, cache, (made.identity[0], made.identity[1] - 1)) is None

    def uncached() -> None:
        for entry in cache.glob("features-*.npz"):
            entry.unlink()

    uncached()
    assert_features_close(cached_features(store, cache), got[0])
    assert _since_build(_graph_folder(store.uri, cache, made.identity)) == len(rows)
    # a collaboration written and recorded in the feed as the API does: still the kept walks
    talent, product = str(g.node("Talent").ids[1]), str(g.node("Product").ids[2])
    v = store.version()
    store.write(
        [
            RelBatch.of(
                "PROMOTED",
                "Talent",
                [{"src": talent, "dst": product, "collab_id": "c-walks", "gmv": 900.0}],
            )
        ]
    )
    entry = {"before": v, "kind": "collaboration", "state": "written", "after": v + 1}
    record_change(store.uri, made.identity[0], cache, entry)
    uncached()
    after = read_market(store, FEATURES_READ)
    assert_features_close(
        cached_features(store, cache),
        build_features(after, today=first.today, calibration=first.calibration, walks=first.walks),
    )
    assert _since_build(_graph_folder(store.uri, cache, after.identity)) == len(rows)
    # a bulk load (not in the feed): the build walks the graph and measures the date again
    (tmp_path / "bulk").mkdir()
    user = str(g.node("User").ids[11])
    (tmp_path / "bulk" / "follows.csv").write_text(
        "src,dst\n" + "".join(f"{user},{t}\n" for t in g.node("Talent").ids[:5])
    )
    load_folder(tmp_path / "bulk", store)
    uncached()
    assert_features_close(
        cached_features(store, cache),
        build_features(read_market(store, FEATURES_READ), calibration=first.calibration),
    )
    store.close()
