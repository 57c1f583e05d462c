"""The engine service: a violation's refresh re-reads compliance only, and equals a full one."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.api.app import create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.engine import cache as engine
from kolmatch.engine.cache import RECALIBRATE_SHARE
from kolmatch.engine.service import EngineService
from kolmatch.errors import BadArgument, Conflict, StoreError
from kolmatch.graph import market
from kolmatch.graph.booking import Booking
from kolmatch.graph.market import COMPLIANCE_READ, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import RelBatch
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import MarketFeatures, build_features, refresh_risk
from kolmatch.matching.score import match_merchant, rank_merchants
from tests.api.conftest import serve
from tests.conftest import at_once


def _assert_same(a: Any, b: Any) -> None:
    """Two MarketFeatures (or MerchantRankings) hold equal values in every field."""
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, sp.spmatrix | sp.sparray):
            assert x.shape == y.shape and (x != y).nnz == 0, field.name
        elif isinstance(x, np.ndarray):
            if x.dtype.kind in "fc":
                assert np.array_equal(x, y, equal_nan=True), field.name
            else:
                assert np.array_equal(x, y), field.name
        elif field.name == "merchant_products":
            assert len(x) == len(y) and all(np.array_equal(p, q) for p, q in zip(x, y, strict=True))
        else:
            assert x == y, field.name


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at every full feature build the engine runs from now on."""
    builds: list[int] = []
    real = engine.build_features

    def counted(g: Any, **kw: Any) -> MarketFeatures:
        builds.append(1)
        return real(g, **kw)

    monkeypatch.setattr(engine, "build_features", counted)
    return builds


def _count_service_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at every snapshot an engine service reads the store anew for
    (:meth:`EngineService._build`: a cache hit, the feed from the latest cached version, or a
    full build), rather than updating the one it serves."""
    calls: list[int] = []
    real = EngineService._build

    def counted(self: EngineService, *a: Any, **kw: Any) -> Any:
        calls.append(1)
        return real(self, *a, **kw)

    monkeypatch.setattr(EngineService, "_build", counted)
    return calls


@pytest.fixture
def service(tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    store = SQLiteStore(tmp_path / "g.db")
    load_folder(tiny_market, store)
    calls = _count_builds(monkeypatch)
    svc = EngineService(store, tmp_path / "cache")
    svc.full_builds = calls  # type: ignore[attr-defined]
    yield svc
    svc.close()


def _full(store: Any) -> MarketFeatures:
    """Features from a full read, not through the (patched, counted) engine."""
    return build_features(read_market(store))


def _top_talent(svc: EngineService) -> str:
    """The talent at the top of the first merchant's list."""
    f = svc.snapshot.features
    return match_merchant(f, str(f.merchant_ids[0]), top=1)[0].talent


def _flag(svc: EngineService, violation_id: str, talent: str, kind: str, sev: str, day: str) -> Any:
    """Flag an unresolved violation against ``talent``; the new snapshot."""
    return svc.flag_violation(
        violation_id=violation_id, label="Talent", target=talent, kind=kind, severity=sev, time=day
    )


def _flag_minor(svc: EngineService, violation_id: str, talent: str) -> Any:
    """Flag an unresolved minor violation against ``talent``; the new snapshot."""
    return _flag(svc, violation_id, talent, "fake reviews", "minor", "2026-06-01")


def _flag_fraud(svc: EngineService, violation_id: str, talent: str, day: str) -> Any:
    """Flag a severe fraud against ``talent`` on ``day`` (excludes it); the new snapshot."""
    return _flag(svc, violation_id, talent, "fraud", "severe", day)


def _three_workers(market_dir: Path, tmp_path: Path) -> tuple[Any, Any, Any, Any, Any]:
    """Workers a, b and c (each its own store connection, one cache folder) on a store loaded
    from ``market_dir``; and b's and c's stores."""
    path, cache = tmp_path / "g.db", tmp_path / "cache"
    load_folder(market_dir, SQLiteStore(path))
    stores = [SQLiteStore(path) for _ in range(3)]
    a, b, c = (EngineService(x, cache) for x in stores)
    return a, b, c, stores[1], stores[2]


def _facts(svc: EngineService) -> tuple[Any, int, str, int, float, list[str]]:
    """What a test of writes reads of a worker's snapshot first: the frozen calibration, the
    version, the top talent, its row and collaborations on record, and products with a
    seller."""
    f = svc.snapshot.features
    talent = _top_talent(svc)
    t = f.talent_row(talent)
    products = [p for p, m in svc.snapshot.product_merchant.items() if m]
    return (
        f.calibration,
        svc.snapshot.version,
        talent,
        t,
        float(f.talent_track_n[t].sum()),
        products,
    )


def _assert_top_of(patched: Any, fresh: Any) -> None:
    """Rankings patched after a flag hold, for each merchant, the exact top of a fresh one."""
    assert np.array_equal(patched.eligible, fresh.eligible)
    for m, v in enumerate(patched.valid.tolist()):
        for name in ("rows", "scores", "bases", "signals"):
            assert np.array_equal(getattr(patched, name)[m, :v], getattr(fresh, name)[m, :v])


def test_a_restart_brings_the_latest_cached_features_up_by_the_feed(
    service: Any, tmp_path: Path
) -> None:
    """A process starting where the features of the store's version were never cached (its
    writer died before writes paused): the latest cached version's, with the feed's writes
    since applied, no full build; equal to the writer's, and cached for the next start."""
    import shutil

    from tests.matching.test_incremental import differences

    cache = tmp_path / "cache"
    service.wait_ranked()
    v0 = service.snapshot.version
    (old,) = cache.glob(f"features-*-v{v0}.npz")
    shutil.copy(old, tmp_path / old.name)
    talent = _top_talent(service)
    _flag_minor(service, "x-r", talent)
    write = _a_collaboration(service)
    snap = service.record_collaboration(collab_id="k-r", time="2026-06-11", **write)
    assert snap.version == v0 + 2
    service.wait_ranked()  # its features cached, the older evicted
    assert not old.exists()
    for f in cache.glob("features-*.npz"):
        f.unlink()
    shutil.copy(tmp_path / old.name, old)  # as if v0 were the last version cached
    builds = len(service.full_builds)
    restarted = EngineService(SQLiteStore(tmp_path / "g.db"), cache)
    try:
        assert len(service.full_builds) == builds  # no full build
        assert restarted.snapshot.version == v0 + 2
        assert differences(restarted.snapshot.features, snap.features) == []
        assert list(cache.glob(f"features-*-v{v0 + 2}.npz"))
    finally:
        restarted.close()


def test_flag_and_resolve_refresh_compliance_only_and_equal_a_full_build(service: Any) -> None:
    assert len(service.full_builds) == 1  # the first snapshot
    service.wait_ranked()
    talent = _top_talent(service)
    t = service.snapshot.features.talent_row(talent)
    snap = _flag_minor(service, "x-1", talent)
    assert len(service.full_builds) == 1  # no second read of the whole graph
    assert snap.features.talent_risk[t] == 1.0  # unresolved: excluded
    assert "x-1" in snap.violation_ids
    full = _full(service.store)
    _assert_same(snap.features, full)
    assert snap.rankings is not None  # patched at once: a flag only raises risk
    _assert_top_of(snap.rankings, rank_merchants(full))

    snap = service.resolve_violation("x-1")
    assert len(service.full_builds) == 1
    assert 0.0 < snap.features.talent_risk[t] < 1.0  # minor and resolved: a fading penalty
    full = _full(service.store)
    _assert_same(snap.features, full)
    # a fall in risk moves the talent's own scores alone: its lists patched behind, to the bit
    _assert_same(service.wait_ranked().rankings, rank_merchants(full))
    assert service.rankings_patched == 1


def _served(svc: EngineService, version: int, timeout: float = 60.0) -> Any:
    """The snapshot once ``svc`` serves ``version``."""
    deadline = time.monotonic() + timeout
    while svc.snapshot.version < version:
        assert time.monotonic() < deadline, f"version {version} not served in {timeout} s"
        time.sleep(0.02)
    return svc.snapshot


def test_builds_keep_the_calibration_in_effect_and_a_recalibration_is_a_version_of_its_own(
    service: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A build never measures a calibration while one in effect fits; past
    :data:`RECALIBRATE_SHARE` the service measures one off the write path, and it takes
    effect from a version of its own that every process builds alike."""
    monkeypatch.setenv(engine.RECALIBRATE_SHARE_ENV, str(RECALIBRATE_SHARE))
    talent = _top_talent(service)
    product = next(p for p, m in service.snapshot.product_merchant.items() if m)
    frozen = service.snapshot.features.calibration
    n = int(service.snapshot.features.promotions.sum())
    assert 1 / n <= RECALIBRATE_SHARE < 3 / n  # tiny: 113 collaborations
    service.record_collaboration(
        collab_id="k-new",
        talent=talent,
        product=product,
        gmv=1000.0,
        orders=10,
        fee=100.0,
        time="2026-06-02",
    )
    assert len(service.full_builds) == 1  # one talent's rows
    # a write the service did not make, then a violation through it: the snapshot is no longer
    # one write behind, so compliance alone would miss that write; the whole graph is read,
    # with the stored calibration
    store = service.store
    assert store.advance(store.version())  # a version of its own, as any write makes
    _flag_minor(service, "x-2", talent)
    assert len(service.full_builds) == 2
    _assert_same(service.snapshot.features, build_features(read_market(store), calibration=frozen))
    assert service.snapshot.features.gmv_rate != _full(store).gmv_rate  # frozen, not measured
    # two more collaborations written elsewhere (3 of 113 changed): the build still uses the
    # calibration in effect, as a process that applied them one by one would
    rows = [
        {
            "src": talent,
            "dst": product,
            "collab_id": f"k-else-{i}",
            "gmv": 5000.0,
            "orders": 50,
            "fee": 1.0,
            "time": "2026-06-03",
            "campaign": None,
        }
        for i in range(2)
    ]
    store.write([RelBatch.of("PROMOTED", "Talent", rows)])
    v = store.version()
    built = service.refresh()
    assert built.version == v
    _assert_same(built.features, build_features(read_market(store), calibration=frozen))
    # past the share: measured in the background, in effect from a version of its own
    snap = _served(service, v + 1)
    assert service.recalibrations == 1 and store.version() == v + 1
    assert len(service.full_builds) == 3  # the build at v (the measuring one: a child process)
    _assert_same(snap.features, _full(store))  # the graph at v: the new version wrote nothing
    assert snap.features.gmv_rate != frozen.gmv_rate
    assert snap.history == built.history and snap.violation_ids == built.violation_ids
    # a process started now, with no cached features, builds v + 1 with it
    for old in (tmp_path / "cache").glob("features-*.npz"):
        old.unlink()
    other = EngineService(SQLiteStore(store.path), tmp_path / "cache")
    _assert_same(other.snapshot.features, snap.features)
    assert other.recalibrations == 0 and store.version() == v + 1
    other.close()


def test_writes_while_a_calibration_is_measured_are_caught_up_and_followers_agree(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The measuring read holds one snapshot; collaborations and a flag written meanwhile are
    applied to the new features from the change feed, which then equal a full build of the
    final graph with the new calibration (1e-9 relative). A following worker loads them."""
    from kolmatch.engine import service as engine_service
    from tests.matching.test_incremental import differences

    monkeypatch.setenv(engine.RECALIBRATE_SHARE_ENV, str(RECALIBRATE_SHARE))
    path = tmp_path / "g.db"
    load_folder(tiny_market, SQLiteStore(path))
    a = EngineService(SQLiteStore(path), tmp_path / "cache")
    b = EngineService(SQLiteStore(path), tmp_path / "cache")
    talent = _top_talent(a)
    products = [p for p, m in a.snapshot.product_merchant.items() if m]
    measured: list[Any] = []
    real = engine_service.measure_calibration_apart

    def record(i: int) -> Any:
        return a.record_collaboration(
            collab_id=f"k-{i}",
            talent=talent,
            product=products[i % len(products)],
            gmv=900.0 + i,
            orders=9 + i,
            fee=1.0,
            time="2026-06-04",
        )

    def measure_while_writing(*args: Any) -> Any:
        m = real(*args)  # the child process, at the lowest priority
        measured.append((m.features.calibration, m.identity[1]))
        for i in range(2, 5):  # written after the read, before the new features are served
            record(i)
        _flag_minor(a, "x-meanwhile", talent)
        with b._write_lock:  # the other worker follows them, as its follower thread does
            b._catch_up()
        return m

    monkeypatch.setattr(engine_service, "measure_calibration_apart", measure_while_writing)
    real_staged, staged_at = engine_service.StagedRecalibration, []

    def staging(*args: Any) -> Any:
        staged = real_staged(*args)
        staged_at.append(staged.version)
        if len(staged_at) == 1:  # one more write before the lock: caught up under it
            record(5)
        return staged

    monkeypatch.setattr(engine_service, "StagedRecalibration", staging)
    measured_before = [a.snapshot.features.gmv_rate]
    record(0)
    v = record(1).version  # 2 of 113: past the share
    # 3 collaborations and a flag while measured, one more once staged, then its own version
    final = _served(a, v + 6)
    assert staged_at == [v + 4, v + 5]
    assert a.recalibrations == 1 and measured and measured[0][1] == v
    store = a.store
    assert store.version() == v + 6
    expected = build_features(read_market(store), calibration=measured[0][0])
    assert differences(final.features, expected) == []
    assert final.features.gmv_rate != measured_before[0]
    # the other worker: each write from the feed, then the recalibrating worker's features
    builds = _count_builds(monkeypatch)
    loaded: list[Any] = []
    real_updated = engine_service.updated_features

    def spied(*args: Any, **kw: Any) -> Any:
        loaded.append(kw.get("calibrated_of"))
        return real_updated(*args, **kw)

    monkeypatch.setattr(engine_service, "updated_features", spied)
    # 3 of 116 collaborations since it was measured: past the share again (tiny), which b
    # would measure next; not here
    monkeypatch.setenv(engine.RECALIBRATE_SHARE_ENV, "inf")
    assert b.snapshot.version == v + 4
    with b._write_lock:  # as its follower does
        b._catch_up()
    assert b.snapshot.version == v + 6 and builds == [] and loaded == [None, v + 5]
    assert differences(b.snapshot.features, final.features) == []
    assert b.recalibrations == 0
    a.close()
    b.close()


def test_a_recalibration_the_store_moved_past_at_the_last_moment_takes_no_effect(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process writes between the last catch-up and the version of the calibration:
    the compare-and-set refuses it, and no file of it is left to take effect later."""
    monkeypatch.setenv(engine.RECALIBRATE_SHARE_ENV, str(RECALIBRATE_SHARE))
    path, cache = tmp_path / "g.db", tmp_path / "cache"
    load_folder(tiny_market, SQLiteStore(path))
    a = EngineService(SQLiteStore(path), cache)
    other = SQLiteStore(path)
    calibrations = sorted(p.name for p in cache.glob("calibration-*"))
    real_advance = a.store.advance

    def raced(expected: int) -> bool:
        assert other.advance(other.version())  # another process's write, at the last moment
        return real_advance(expected)

    monkeypatch.setattr(a.store, "advance", raced)
    talent = _top_talent(a)
    product = next(p for p, m in a.snapshot.product_merchant.items() if m)
    for i in range(2):  # 2 of 113: past the share
        v = a.record_collaboration(
            collab_id=f"k-{i}",
            talent=talent,
            product=product,
            gmv=9.0,
            orders=1,
            fee=1.0,
            time="2026-06-04",
        ).version
    assert a._recalibrator is not None
    a._recalibrator.join(60)
    assert a.recalibrations == 0 and a.snapshot.version == v and other.version() == v + 1
    assert sorted(p.name for p in cache.glob("calibration-*")) == calibrations
    assert list(cache.glob("*.tmp")) == [] and list(cache.glob(f"features-*-v{v + 1}.npz")) == []
    feed = [
        json.loads(x) for f in cache.glob("changes-*.jsonl") for x in f.read_text().splitlines()
    ]
    assert [e["state"] for e in feed if e.get("kind") == "calibration"] == ["pending", "failed"]
    assert a._retry_at > time.monotonic()  # not measured again at once
    a.close()
    other.close()


def test_a_write_on_a_worker_behind_applies_the_feed_rather_than_rebuilding(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that reaches a worker before its follower caught up with another's write
    catches up from the change feed (a rebuild at m is minutes under the write lock: every
    write behind it timed out)."""
    from tests.matching.test_incremental import differences

    path, cache = tmp_path / "g.db", tmp_path / "cache"
    load_folder(tiny_market, SQLiteStore(path))
    a, b = EngineService(SQLiteStore(path), cache), EngineService(SQLiteStore(path), cache)
    frozen = a.snapshot.features.calibration
    builds = _count_builds(monkeypatch)
    talent = _top_talent(a)
    product = next(p for p, m in a.snapshot.product_merchant.items() if m)
    write = {"talent": talent, "product": product, "gmv": 9.0, "orders": 1, "fee": 1.0}
    v = a.record_collaboration(collab_id="k-a", time="2026-06-04", **write).version
    snap = b.record_collaboration(collab_id="k-b", time="2026-06-05", **write)  # b: behind
    assert snap.version == v + 1 and builds == []
    monkeypatch.undo()
    assert (
        differences(snap.features, build_features(read_market(b.store), calibration=frozen)) == []
    )
    a.close()
    b.close()


def test_two_workers_writing_at_once_apply_both_writes_from_the_feed(
    s_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#18, two writes at once on two workers: a's write lands after b read the version and
    before b's transaction. b's write is recorded in the change feed on the version it was
    made on (a's), so b applies a's write and then its own, and a follower c both, from the
    feed: no full build in any of them (at m one is ~100 s of refused writes), and each
    equals a full build with the frozen calibration. Then b's severe flag raced by a's second
    collaboration: the same. (Before, b rebuilt under its write lock and c rebuilt too.)"""
    from tests.matching.test_incremental import differences

    a, b, c, b_store, _ = _three_workers(s_market, tmp_path)
    cache = tmp_path / "cache"
    for svc in (a, b, c):
        svc.follow(poll_seconds=0.05)  # as `serve --workers` does
    frozen, v0, talent, t, collabs, products = _facts(a)
    write = {"talent": talent, "gmv": 700.0, "orders": 7, "fee": 1.0, "time": "2026-06-06"}
    raced: list[int] = []

    def racing(real: Callable[..., Any]) -> Callable[..., Any]:  # a lands first, b read before
        def run(*args: Any, **kw: Any) -> Any:
            cid = f"k-a{len(raced)}"
            raced.append(
                a.record_collaboration(collab_id=cid, product=products[0], **write).version
            )
            return real(*args, **kw)

        return run

    # b's collaboration, then its flag
    monkeypatch.setattr(b_store, "add_collaboration", racing(b_store.add_collaboration))
    monkeypatch.setattr(b_store, "add_node", racing(b_store.add_node))
    builds, reads = _count_builds(monkeypatch), _count_service_builds(monkeypatch)
    snap = b.record_collaboration(collab_id="k-b", product=products[1], **write)
    assert raced == [v0 + 1] and snap.version == v0 + 2
    entry = engine.change_after(b_store.uri, b_store.graph_id(), cache, v0 + 1)
    assert entry is not None and entry["collab_id"] == "k-b"
    assert entry["kind"] == "collaboration" and entry["after"] == v0 + 2
    flagged = _flag_fraud(b, "v-race", talent, "2026-06-07")
    assert raced == [v0 + 1, v0 + 3] and flagged.version == v0 + 4
    deadline = time.monotonic() + 60
    while {a.snapshot.version, c.snapshot.version} != {v0 + 4}:
        assert time.monotonic() < deadline, "the followers did not catch up"
        time.sleep(0.02)
    assert builds == [] and reads == [] and a.rebuilds == b.rebuilds == c.rebuilds == 0
    monkeypatch.undo()
    full = build_features(read_market(b_store), calibration=frozen)
    for svc in (a, b, c):
        f = svc.snapshot.features
        assert differences(f, full) == []
        assert f.talent_track_n[t].sum() == collabs + 3
        assert f.talent_risk[t] == 1.0
    for svc in (a, b, c):
        svc.close()


def test_a_flag_followed_at_once_by_another_worker_s_write_is_applied_from_the_feed(
    s_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b's flag lands first and a's collaboration lands right after it, before b refreshes:
    b's violations re-read would see a's write too, so b brings itself through its flag and
    a's collaboration from the change feed (review of 4feb215: it built the market under its
    write lock). Nothing is built or read anew, and b equals a full build."""
    from tests.matching.test_incremental import differences

    path, cache = tmp_path / "g.db", tmp_path / "cache"
    load_folder(s_market, SQLiteStore(path))
    a = EngineService(SQLiteStore(path), cache)
    b_store = SQLiteStore(path)
    b = EngineService(b_store, cache)
    frozen, v0 = a.snapshot.features.calibration, a.snapshot.version
    talent = _top_talent(a)
    product = next(p for p, m in a.snapshot.product_merchant.items() if m)
    real_write, real_version = b_store.add_node, b_store.version
    armed: list[bool] = []

    def write_then_arm(*args: Any) -> Any:
        out = real_write(*args)
        armed.append(True)
        return out

    def version_after_a() -> int:  # b's first look at the store after its write (and its
        if armed:  # feed entry): a's write has landed just before it
            armed.clear()
            write = {"talent": talent, "product": product, "gmv": 9.0, "orders": 1, "fee": 1.0}
            a.record_collaboration(collab_id="k-after", time="2026-06-09", **write)
        return real_version()

    monkeypatch.setattr(b_store, "add_node", write_then_arm)
    monkeypatch.setattr(b_store, "version", version_after_a)
    builds, reads = _count_builds(monkeypatch), _count_service_builds(monkeypatch)
    snap = _flag_fraud(b, "v-first", talent, "2026-06-08")
    assert snap.version == v0 + 2 and a.snapshot.version == v0 + 2
    assert builds == [] and reads == [] and b.rebuilds == 0
    monkeypatch.undo()
    full = build_features(read_market(b_store), calibration=frozen)
    assert differences(snap.features, full) == []
    assert snap.features.talent_risk[snap.features.talent_row(talent)] == 1.0
    a.close()
    b.close()


def test_a_follower_applies_a_run_of_flags_and_collaborations_without_a_build(
    s_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between two polls of worker c, a flags a talent, b records a collaboration, a resolves
    the flag, b records another: c applies the four from the change feed (each flag's
    violations re-read at the store's version, labelled as its own, the collaborations on
    top), builds nothing, and ends where a full build with the frozen calibration is.
    Before, a violations write anywhere but last in such a run was a rebuild (~100 s at m)."""
    from tests.matching.test_incremental import differences, graph_differences

    a, b, c, _, c_store = _three_workers(s_market, tmp_path)
    assert c.snapshot.compliance is not None
    frozen, v0, talent, t, collabs, products = _facts(a)
    write = {"talent": talent, "gmv": 300.0, "orders": 3, "fee": 1.0, "time": "2026-06-08"}
    builds, reads = _count_builds(monkeypatch), _count_service_builds(monkeypatch)
    _flag_fraud(a, "v-run", talent, "2026-06-07")
    b.record_collaboration(collab_id="k-run-1", product=products[0], **write)
    a.resolve_violation("v-run")
    last = b.record_collaboration(collab_id="k-run-2", product=products[1], **write)
    assert last.version == v0 + 4
    c.follow(poll_seconds=0.05)
    deadline = time.monotonic() + 60
    while c.snapshot.version != v0 + 4:
        assert time.monotonic() < deadline, "the follower did not catch up"
        time.sleep(0.02)
    # nothing built in process, read anew, or rebuilt behind (in a child)
    assert builds == [] and reads == [] and c.rebuilds == 0
    monkeypatch.undo()
    f = c.snapshot.features
    assert differences(f, build_features(read_market(c_store), calibration=frozen)) == []
    assert f.talent_track_n[t].sum() == collabs + 2
    assert c.snapshot.compliance is not None
    fresh = read_market(c_store, COMPLIANCE_READ)
    assert graph_differences(c.snapshot.compliance, fresh) == []
    assert c.snapshot.compliance.identity == fresh.identity
    for name in ("history", "collaborations", "violation_ids"):
        assert getattr(c.snapshot, name) == getattr(b.snapshot, name), name
    for svc in (a, b, c):
        svc.close()


def test_a_run_the_store_outgrows_while_it_is_applied_is_still_applied_from_the_feed(
    s_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower applies a run (a flag, a collaboration); as it re-reads the flag's violations
    another collaboration lands. The re-read is past the run's end, but the feed shows the
    write between is one it applies next: taken (labelled as the flag's version), the run
    completed, the new write applied at the next poll. Nothing built or read anew. (Under two
    writers a second at m, failing such a re-read and trying again cost seconds per write.)"""
    from kolmatch.graph.market import VIOLATIONS_READ
    from tests.matching.test_incremental import differences

    a, b, c, _, c_store = _three_workers(s_market, tmp_path)
    frozen, v0 = a.snapshot.features.calibration, a.snapshot.version
    talent = _top_talent(a)
    products = [p for p, m in a.snapshot.product_merchant.items() if m]
    write = {"talent": talent, "gmv": 40.0, "orders": 2, "fee": 1.0, "time": "2026-06-10"}
    builds, reads = _count_builds(monkeypatch), _count_service_builds(monkeypatch)
    _flag_fraud(a, "v-outgrown", talent, "2026-06-09")
    b.record_collaboration(collab_id="k-og-1", product=products[0], **write)
    real_read = engine.read_market
    landed: list[int] = []
    rereads: list[int] = []

    def read_after_a_write(store: Any, spec: Any = market.FULL_READ, **kw: Any) -> Any:
        if store is c_store and spec is VIOLATIONS_READ:
            rereads.append(1)
        if store is c_store and spec is VIOLATIONS_READ and not landed:
            landed.append(
                a.record_collaboration(collab_id="k-og-2", product=products[1], **write).version
            )
        return real_read(store, spec, **kw)

    monkeypatch.setattr(engine, "read_market", read_after_a_write)
    c.follow(poll_seconds=0.05)
    deadline = time.monotonic() + 60
    while c.snapshot.version != v0 + 3:
        assert time.monotonic() < deadline, "the follower did not catch up"
        time.sleep(0.02)
    assert landed == [v0 + 3]
    assert len(rereads) == 1  # taken, not read again at the next poll
    assert builds == [] and reads == [] and c.rebuilds == 0
    monkeypatch.undo()
    assert (
        differences(c.snapshot.features, build_features(read_market(c_store), calibration=frozen))
        == []
    )
    for svc in (a, b, c):
        svc.close()


def test_a_collaboration_updates_one_talent_and_every_worker_agrees(
    s_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#18 step 2 through the engine: a recorded collaboration is applied incrementally
    (no full build), equals a full build with the frozen calibration, and a second process
    that rebuilds that version from the store (no cached features) serves the same."""
    from tests.matching.test_incremental import differences, graph_differences

    store = SQLiteStore(tmp_path / "s.db")
    load_folder(s_market, store)
    writer = EngineService(store, tmp_path / "cache")
    before = writer.snapshot.features
    talent = _top_talent(writer)
    product = next(p for p, m in writer.snapshot.product_merchant.items() if m)
    builds = _count_builds(monkeypatch)

    def record(cid: str, gmv: float, orders: int, day: str) -> Any:
        return writer.record_collaboration(
            collab_id=cid, talent=talent, product=product, gmv=gmv, orders=orders, fee=9.0, time=day
        )

    snap = record("k-inc", 12_345.0, 40, "2026-06-02")
    monkeypatch.undo()
    assert builds == []  # one talent's rows, not a build
    f = snap.features
    # until its rankings are in, lists read the last ones patched for the talent: as live
    assert snap.rankings is None and snap.lists is snap.patched is not None
    for m in ("m0", "m3"):
        assert match_merchant(f, m, top=20, rankings=snap.lists) == match_merchant(f, m, top=20)
    t = f.talent_row(talent)
    assert f.talent_track_n[t].sum() == before.talent_track_n[t].sum() + 1
    frozen = build_features(read_market(store), calibration=before.calibration)
    assert differences(f, frozen) == []
    # another worker: no cached features for this version, so it builds, from the store's
    # stored calibration, the same features (and so the same rankings)
    for old in (tmp_path / "cache").glob("features-*.npz"):
        old.unlink()
    other_store = SQLiteStore(tmp_path / "s.db")
    other = EngineService(other_store, tmp_path / "cache")
    assert other.snapshot.version == snap.version
    assert differences(other.snapshot.features, f) == []
    theirs, ours = other.snapshot.rankings, writer.wait_ranked().rankings
    assert theirs is not None and ours is not None  # the first snapshot ranks before serving
    # ours patched (the talent's entries moved), theirs ranked anew: the same exact tops
    assert writer.rankings_patched == 1
    for m, v in enumerate(ours.valid.tolist()):
        assert theirs.rows[m, :v].tolist() == ours.rows[m, :v].tolist(), m
    # the writer's snapshot was updated in memory (no catalog read): the same as a read
    for name in ("history", "collaborations", "violation_ids", "product_merchant", "version"):
        assert getattr(other.snapshot, name) == getattr(writer.snapshot, name), name

    # a following worker applies the next write from the change feed: no build, same features
    other.follow(poll_seconds=0.05)
    builds = _count_builds(monkeypatch)
    tables: list[str] = []
    real_table = market.node_table

    def read_table(s: Any, label: str, fields: Any = None) -> Any:
        tables.append(label)
        return real_table(s, label, fields)

    monkeypatch.setattr(market, "node_table", read_table)
    after = record("k-inc-2", 777.0, 3, "2026-06-03")
    writer.flag_violation(
        violation_id="v-inc",
        label="Talent",
        target=talent,
        kind="fraud",
        severity="severe",
        time="2026-06-04",
    )
    deadline = time.monotonic() + 60
    while other.snapshot.version != after.version + 1:
        assert time.monotonic() < deadline, "the follower did not catch up"
        time.sleep(0.02)
    monkeypatch.undo()
    assert builds == []  # neither the writer nor the follower built
    # the flag read the violations alone, on the compliance tables each kept (the
    # collaboration's PROMOTED row added to them): those equal a fresh read
    assert tables == ["Violation", "Violation"]
    fresh = read_market(store, COMPLIANCE_READ)
    for svc in (writer, other):
        assert svc.snapshot.compliance is not None
        assert graph_differences(svc.snapshot.compliance, fresh) == []
    assert (
        differences(
            writer.snapshot.features,
            build_features(read_market(store), calibration=before.calibration),
        )
        == []
    )
    assert differences(other.snapshot.features, writer.snapshot.features) == []
    assert other.snapshot.features.talent_risk[t] >= 1.0  # the severe flag is in force there
    for name in ("history", "collaborations", "violation_ids"):
        assert getattr(other.snapshot, name) == getattr(writer.snapshot, name), name
    other.close()
    writer.close()


def test_refresh_risk_refuses_features_of_other_talents(
    service: Any, tiny_market: Path, tmp_path: Path
) -> None:
    other = SQLiteStore(tmp_path / "other.db")
    load_folder(tiny_market, other)
    f = service.snapshot.features
    shrunk = dataclasses.replace(f, talent_ids=f.talent_ids[:-1])
    with pytest.raises(StoreError, match="talents changed"):
        refresh_risk(read_market(other, COMPLIANCE_READ), shrunk)
    other.close()


def test_a_second_process_s_write_shows_in_a_following_service(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Two servers on one store (``serve --workers 2``): a write through one reaches the other."""
    import time

    store_a, store_b = SQLiteStore(tmp_path / "g.db"), None
    load_folder(tiny_market, store_a)
    store_b = SQLiteStore(tmp_path / "g.db")
    a = EngineService(store_a, tmp_path / "cache")
    b = EngineService(store_b, tmp_path / "cache")
    b.follow(poll_seconds=0.05)
    talent = _top_talent(a)
    t = a.snapshot.features.talent_row(talent)
    written = a.flag_violation(
        violation_id="x-w",
        label="Talent",
        target=talent,
        kind="counterfeit",
        severity="severe",
        time="2026-06-01",
    )
    deadline = time.monotonic() + 30
    while b.snapshot.version != written.version and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.snapshot.version == written.version
    assert b.snapshot.features.talent_risk[t] == 1.0  # the other worker excludes it too
    assert _top_talent(b) != talent
    assert b.health()["serving_version"] == b.health()["version"]
    a.close()
    b.close()


def _first(monkeypatch: pytest.MonkeyPatch, store: Any, name: str, then: Callable[[], Any]) -> None:
    """``store``'s method ``name`` runs ``then()`` first (another server's write landing
    between a worker's check on its snapshot and its store's transaction)."""
    real = getattr(store, name)

    def run(*args: Any) -> Any:
        then()
        return real(*args)

    monkeypatch.setattr(store, name, run)


def _racing_b(
    s_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **change: Any
) -> tuple[EngineService, EngineService, EngineService, SQLiteStore, dict[str, Any], list[int]]:
    """Workers a, b and c (c follows) on the s market, and b's store: b checks a collaboration
    id on its snapshot, then a records the same id (its ``write``, with ``change`` applied
    for b's) before b's store is asked to add it. The s market: the tiny one's few
    collaborations recalibrate (a build) at every write, hiding a repeat."""
    a, b, c, b_store, _ = _three_workers(s_market, tmp_path)
    c.follow(poll_seconds=0.05)
    product = next(p for p, m in a.snapshot.product_merchant.items() if m)
    write = {"talent": _top_talent(a), "product": product, "gmv": 500.0, "orders": 5}
    write |= {"fee": 1.0, "time": "2026-06-05", "collab_id": "k-twice"}
    raced: list[int] = []
    _first(
        monkeypatch,
        b_store,
        "add_collaboration",
        lambda: raced.append(a.record_collaboration(**write).version),
    )
    return a, b, c, b_store, write | change, raced


def test_the_same_collaboration_recorded_by_two_workers_at_once_is_written_once(
    s_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker b checks a collaboration id on its snapshot, then worker a records the same id
    before b writes: the store finds the id held in b's transaction and writes nothing (one
    version, a's), b answers it as a repeat, and nobody rebuilds: the follower adds the row
    once, from a's entry in the change feed. (Before, b's upsert made a version of its own,
    the feed marked it ``other``, and every follower rebuilt the market.)"""
    from tests.matching.test_incremental import differences, graph_differences

    a, b, c, b_store, write, raced = _racing_b(s_market, tmp_path, monkeypatch)
    frozen, v0, _, t, collabs, _ = _facts(a)
    builds = _count_builds(monkeypatch)
    snap_b = b.record_collaboration(**write)
    assert raced == [v0 + 1], "the race did not run between b's check and its write"
    assert b_store.version() == v0 + 1  # nothing of b's written
    assert snap_b.version == v0 + 1 and "k-twice" in snap_b.collaborations  # answered with a's
    cache, graph_id = tmp_path / "cache", b_store.graph_id()
    entry = engine.change_after(b_store.uri, graph_id, cache, v0)
    assert entry is not None and entry["kind"] == "collaboration" and entry["after"] == v0 + 1
    feed = [
        json.loads(x) for f in cache.glob("changes-*.jsonl") for x in f.read_text().splitlines()
    ]
    assert [e["state"] for e in feed if e.get("collab_id") == "k-twice"][-1] == "noop"
    assert b.audit.entries()[-1] | {"time": None} == {
        "id": b.audit.entries()[-1]["id"],
        "time": None,
        "actor": "local",
        "action": "recordCollaboration",
        "target": "k-twice",
        "outcome": "unchanged",
        "version": v0 + 1,
    }
    for svc in (b, c):
        f = _served(svc, v0 + 1).features
        assert f.talent_track_n[t].sum() == collabs + 1  # once, not twice
    assert builds == [] and a.rebuilds == b.rebuilds == c.rebuilds == 0
    monkeypatch.undo()
    fresh = read_market(b_store, COMPLIANCE_READ)
    full = build_features(read_market(b_store), calibration=frozen)
    for svc in (b, c):
        snap = svc.snapshot
        assert differences(snap.features, full) == []
        assert snap.compliance is not None
        assert graph_differences(snap.compliance, fresh) == []
    for svc in (a, b, c):
        svc.close()


def test_a_collaboration_id_raced_with_other_values_is_refused_not_overwritten(
    s_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race with b sending other values under a's id: b's check on its snapshot
    passes (the id is not there yet), the store's finds a's row: b gets Conflict naming the
    field, and a's values stand. (Before, b's upsert overwrote a's GMV silently: a's caller
    had been told its collaboration was recorded.)"""
    a, b, c, b_store, write, raced = _racing_b(s_market, tmp_path, monkeypatch, gmv=9_999.0)
    v = a.snapshot.version
    with pytest.raises(Conflict, match="different gmv") as refused:
        b.record_collaboration(**write)
    assert refused.value.fields == ["gmv"] and raced == [v + 1]
    assert b_store.version() == v + 1
    (chunk,) = b_store.edge_rows("PROMOTED", "Talent", ["collab_id", "gmv"])
    gmv = dict(zip(chunk.columns["collab_id"], chunk.columns["gmv"], strict=True))
    assert gmv["k-twice"] == 500.0
    ending = b.audit.entries()[-1]
    assert ending["outcome"] == "refused" and ending["error"]["type"] == "Conflict"
    for svc in (a, b, c):
        svc.close()


def _followed_workers(market_dir: Path, tmp_path: Path, n: int) -> list[EngineService]:
    """``n`` workers on one store loaded from ``market_dir``, each following it."""
    path, cache = tmp_path / "g.db", tmp_path / "cache"
    load_folder(market_dir, SQLiteStore(path))
    workers = [EngineService(SQLiteStore(path), cache) for _ in range(n)]
    for svc in workers:
        svc.follow(poll_seconds=0.05)
    return workers


def test_workers_sending_one_collaboration_at_the_same_moment_write_it_once(
    s_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four workers, each its own connection, send the same collaboration at the same moment
    (a client retrying on another worker): one version is made, every worker answers with it,
    and none rebuilds."""
    workers = _followed_workers(s_market, tmp_path, 4)
    _, v0, talent, t, collabs, products = _facts(workers[0])
    write = {"talent": talent, "product": products[0], "gmv": 80.0, "orders": 2, "fee": 1.0}
    write |= {"time": "2026-06-05", "collab_id": "k-once"}
    builds = _count_builds(monkeypatch)
    answers = at_once(4, lambda i: workers[i].record_collaboration(**write).version)
    assert answers == [v0 + 1] * 4  # each answered with the one write
    assert workers[0].store.version() == v0 + 1
    for svc in workers:
        f = _served(svc, v0 + 1).features
        assert f.talent_track_n[t].sum() == collabs + 1
        assert "k-once" in svc.snapshot.collaborations
    assert builds == [] and sum(svc.rebuilds for svc in workers) == 0
    for svc in workers:
        svc.close()


def _one_won(answers: list[Any], refusal: str) -> int:
    """The one of ``answers`` that succeeded; every other is the BadArgument ``refusal``."""
    won = [i for i, x in enumerate(answers) if not isinstance(x, Exception)]
    assert len(won) == 1, answers
    others = [x for i, x in enumerate(answers) if i != won[0]]
    assert all(isinstance(x, BadArgument) and refusal in str(x) for x in others), answers
    return won[0]


def test_workers_flagging_one_violation_id_at_once_attach_it_to_one_target(
    s_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four workers flag one violation id at the same moment, each against its own talent: one
    writes (one version, one target), the others are refused as for an id on record, and none
    rebuilds. (Before, each upsert attached the violation to its own talent: three or four
    talents excluded by one violation, every caller told it was flagged.)"""
    workers = _followed_workers(s_market, tmp_path, 4)
    v0 = workers[0].snapshot.version
    talents = [str(x) for x in workers[0].snapshot.features.talent_ids[:4]]
    builds = _count_builds(monkeypatch)
    answers = at_once(4, lambda i: _flag_fraud(workers[i], "v-once", talents[i], "2026-06-05"))
    won = _one_won(answers, "exists; resolve it instead")
    store = workers[0].store
    assert store.version() == v0 + 1
    (chunk,) = store.edge_rows("HAS_VIOLATION", "Talent", [])
    assert [str(s) for s, d in zip(chunk.src, chunk.dst, strict=True) if d == "v-once"] == [
        talents[won]
    ]
    for svc in workers:
        f = _served(svc, v0 + 1).features
        assert [f.talent_risk[f.talent_row(x)] == 1.0 for x in talents] == [
            i == won for i in range(4)
        ]
    assert builds == [] and sum(svc.rebuilds for svc in workers) == 0
    for svc in workers:
        svc.close()


def test_a_violation_or_campaign_id_another_worker_took_meanwhile_is_refused_in_the_store(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b checks a violation id (then a campaign id) and finds it free; a takes it before b's
    store transaction: the store refuses b's (as for an id on record), writes nothing, and the
    audit log's pending line for b ends ``refused``."""
    a, b = _followed_workers(tiny_market, tmp_path, 2)
    store = b.store
    f, v0 = a.snapshot.features, a.snapshot.version
    t1, t2 = (str(x) for x in f.talent_ids[:2])
    _first(monkeypatch, store, "add_node", lambda: _flag_fraud(a, "v-x", t1, "2026-06-05"))
    with pytest.raises(BadArgument, match="exists; resolve it instead"):
        _flag_fraud(b, "v-x", t2, "2026-06-05")
    (chunk,) = store.edge_rows("HAS_VIOLATION", "Talent", [])
    assert [str(x) for x, v in zip(chunk.src, chunk.dst, strict=True) if v == "v-x"] == [t1]
    monkeypatch.undo()
    start, end = (f.today + timedelta(days=10)).isoformat(), (f.today + timedelta(20)).isoformat()
    brief = {"campaign_id": "cp-x", "start": start, "end": end}
    _first(monkeypatch, store, "add_node", lambda: a.create_campaign(name="A's", **brief))
    with pytest.raises(BadArgument, match="exists"):
        b.create_campaign(name="B's", **brief)
    rows = store.node_rows("Campaign", ["name"])
    assert dict(zip(rows.ids, rows.columns["name"], strict=True))["cp-x"] == "A's"
    assert store.version() == v0 + 2  # a's two writes, none of b's
    endings = [e for e in b.audit.entries() if e["actor"] == "local" and "error" in e]
    assert [(e["target"], e["outcome"], e["error"]["type"]) for e in endings[-2:]] == [
        ("v-x", "refused", "BadArgument"),
        ("cp-x", "refused", "BadArgument"),
    ]
    for svc in (a, b):
        svc.close()


def test_workers_creating_one_campaign_id_at_once_create_it_once(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Four workers create one campaign id at the same moment, each with its own name and
    category: one creates it (one version, one brief), the others are refused as for an id
    taken. (Before, the id was checked outside the writing transaction: each upsert could
    land, the last name and the union of the categories standing.)"""
    workers = _followed_workers(tiny_market, tmp_path, 4)
    f, v0 = workers[0].snapshot.features, workers[0].snapshot.version
    start, end = (f.today + timedelta(days=10)).isoformat(), (f.today + timedelta(20)).isoformat()
    cats = sorted(workers[0].store.node_rows("Category", ()).ids)[:4]

    def create(i: int) -> int:
        brief = {"name": f"Sale {i}", "start": start, "end": end, "categories": [cats[i]]}
        return workers[i].create_campaign(campaign_id="cp-once", **brief).version

    answers = at_once(4, create)
    won = _one_won(answers, "exists")
    assert workers[0].store.version() == v0 + 1
    for svc in workers:
        brief = _served(svc, v0 + 1).campaigns["cp-once"]
        assert (brief.name, brief.categories) == (f"Sale {won}", [cats[won]])
    for svc in workers:
        svc.close()


def test_a_write_serves_at_once_and_ranks_in_the_background(service: Any) -> None:
    """The write's snapshot is served before every merchant is ranked: its match lists are
    computed live, and equal the ranked ones once the background ranking joins. A flag
    patches the lists at once; a resolve (risk falls: other talents may climb) ranks again."""
    service.wait_ranked()
    talent = _top_talent(service)
    flagged = _flag_minor(service, "x-bg", talent)
    assert flagged.rankings is not None and service.health()["ranked"] is True
    first = str(flagged.features.merchant_ids[0])
    patched = match_merchant(flagged.features, first, top=30, rankings=flagged.rankings)
    assert patched == match_merchant(flagged.features, first, top=30)
    assert talent not in {x.talent for x in patched}  # the flag is in force at once
    snap = service.resolve_violation("x-bg")
    assert snap.rankings is None  # served before any process ranked this version
    m = str(snap.features.merchant_ids[0])
    live = match_merchant(snap.features, m, top=30, rankings=snap.rankings)
    ranked = service.wait_ranked()
    assert ranked.version == snap.version and ranked.rankings is not None
    assert service.health()["ranked"] is True
    looked_up = match_merchant(ranked.features, m, top=30, rankings=ranked.rankings)
    assert [(x.talent, x.score) for x in live] == [(x.talent, x.score) for x in looked_up]


def test_worn_patched_lists_are_ranked_again_behind(
    service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once patched lists hold too few exact entries, a full ranking follows in the background
    and replaces them; the patched ones serve meanwhile."""
    import kolmatch.engine.service as service_module

    service.wait_ranked()
    monkeypatch.setattr(service_module, "rankings_worn", lambda r: True)
    snap = _flag_minor(service, "x-worn", _top_talent(service))
    assert snap.rankings is not None  # patched, served at once
    deadline = time.monotonic() + 120
    while service.snapshot.rankings is snap.rankings and time.monotonic() < deadline:
        time.sleep(0.05)
    fresh = service.snapshot.rankings
    assert fresh is not snap.rankings and service.snapshot.version == snap.version
    _assert_same(fresh, rank_merchants(_full(service.store)))


def test_a_ranking_waits_for_a_quiet_moment_and_stops_for_a_newer_version(
    service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a stream of writes the background ranking of a version no longer served is
    stopped, and writes within the quiet time start none: only the last version is ranked,
    and its rankings are a fresh ranking's (bench/consistency.py: rankings redone after each
    write took the cores that live match lists needed)."""
    import kolmatch.engine.service as service_module
    from kolmatch.errors import Cancel

    service.wait_ranked()
    # writes one after another land well within it, however loaded the machine
    monkeypatch.setattr(service_module, "RANK_QUIET_SECONDS", 3.0)
    real = service_module.cached_rankings
    started: list[int] = []
    holding = {"v": -1}

    started_at: dict[int, float] = {}

    def ranking(
        uri: str, identity: Any, f: Any, cache_dir: Any, *, cancel: Cancel, **patch: Any
    ) -> Any:
        started.append(identity[1])
        started_at[identity[1]] = time.monotonic()
        if identity[1] == holding["v"]:  # held until a newer version stops it
            assert cancel.wait(60), "the ranking was not stopped"
        # when rankings run, not how: a resolve's lists would be patched (``patch``, the
        # lists before it); not given here, each is a ranking of every merchant
        assert set(patch) <= {"patch_from", "patched"}
        return real(uri, identity, f, cache_dir, cancel=cancel)

    monkeypatch.setattr(service_module, "cached_rankings", ranking)
    talent = _top_talent(service)
    first = _flag_minor(service, "x-q1", talent).version  # patched lists: no ranking
    a = service.resolve_violation("x-q1").version  # risk falls: ranked behind
    b = _flag_minor(service, "x-q2", talent).version  # within the quiet time of a
    c = service.resolve_violation("x-q2").version
    assert (first, a, b, c) == (first, first + 1, first + 2, first + 3)
    assert service.wait_ranked().version == c
    assert started == [c] and service.rankings_stopped == 0  # a was never started
    holding["v"] = c + 2  # e's ranking is held until a newer version stops it
    d = _flag_minor(service, "x-q3", talent)
    e = service.resolve_violation("x-q3").version  # d's patched lists: d is not ranked
    assert d.version == c + 1 and e == c + 2
    deadline = time.monotonic() + 60
    while started[-1] != e:
        assert time.monotonic() < deadline, "the ranking did not start"
        time.sleep(0.02)
    g = _flag_minor(service, "x-q4", talent)
    h_at = time.monotonic()  # (its quiet time starts within the write)
    h = service.resolve_violation("x-q4").version
    assert service.wait_ranked().version == h
    assert service.rankings_stopped == 1 and started[-1] == h
    # one ranking stopped: the next waited twice the quiet time, and a completed one resets it
    assert started_at[h] - h_at >= 2 * 3.0 - 0.1
    assert service._rankings_stopped_in_a_row == 0
    # and a stop long past no longer doubles it: a trickle of writes after a burst is ranked
    service._rankings_stopped_in_a_row, service._ranking_stopped_at = 6, time.monotonic()
    assert service._rank_quiet() == service_module.RANK_QUIET_MAX_SECONDS  # (3 s x 2^6 > 60)
    service._ranking_stopped_at -= service_module.RANK_QUIET_MAX_SECONDS + 1
    assert service._rank_quiet() == 3.0 and service._rankings_stopped_in_a_row == 0
    _assert_same(service.snapshot.rankings, rank_merchants(_full(service.store)))
    assert g.version == e + 1
    # a write that changes no list (a booking) on a version still to be ranked: its own
    # version is ranked instead (before, the ranking of the one before it was thrown away)
    from tests.api.test_bookings import _eligible_merchant, _free_talent, _window

    f = service.snapshot.features
    start, end, w = _window(f)
    m = _eligible_merchant(f)
    t, _ = _free_talent(f, m, w)
    j = _flag_minor(service, "x-q5", talent)
    k = service.resolve_violation("x-q5").version
    snap, _ = service.book(
        [Booking("bk-q", str(f.talent_ids[t]), str(f.merchant_ids[m]), start, end)]
    )
    assert snap.version == k + 1 == j.version + 2
    assert service.wait_ranked().version == snap.version and started[-1] == snap.version


def _on_one_store(
    tiny_market: Path, tmp_path: Path, workers: int
) -> tuple[SQLiteStore, Path, list[EngineService]]:
    """The tiny market loaded (the loader's own connection: another process's), the cache
    folder, and ``workers`` services on the store, as ``serve --workers N`` runs them."""
    path, cache = tmp_path / "g.db", tmp_path / "cache"
    loader = SQLiteStore(path)
    load_folder(tiny_market, loader)
    return loader, cache, [EngineService(SQLiteStore(path), cache) for _ in range(workers)]


def _a_collaboration(svc: EngineService) -> dict[str, Any]:
    """A collaboration's fields: the first merchant's top talent, a product that is sold."""
    product = next(p for p, m in svc.snapshot.product_merchant.items() if m)
    return {"talent": _top_talent(svc), "product": product, "gmv": 9.0, "orders": 1, "fee": 1.0}


def _new_follows(store: SQLiteStore, n: int) -> list[dict[str, Any]]:
    """``n`` follows the graph does not hold yet (a day's new follows, as a load brings)."""
    g = read_market(store, market.FEATURES_READ)
    users, talents = g.node("User").ids, g.node("Talent").ids
    e = g.edge("FOLLOWS", "User")
    held = set(zip(e.src.tolist(), e.dst.tolist(), strict=True))
    rows: list[dict[str, Any]] = []
    for u in range(len(users)):
        for t in range(len(talents)):
            if (u, t) not in held and len(rows) < n and (u + t) % 7 == 0:
                rows.append({"src": str(users[u]), "dst": str(talents[t]), "since": "2026-06-10"})
    assert len(rows) == n
    return rows


def test_a_load_of_users_rows_reaches_the_workers_as_a_delta_not_a_build(
    tiny_market: Path, tmp_path: Path
) -> None:
    """A day's follows loaded as `kolmatch load` loads (load_as_delta) into a store two
    workers serve: the load caches the new version's features by a delta under the rebuild
    lock, and both workers serve that version from them, neither building; the features are
    a build of that version with the calibration, walks and date of the version before."""
    from kolmatch.engine.delta import load_as_delta
    from tests.matching.test_features import assert_features_close

    loader, cache, (a, b) = _on_one_store(tiny_market, tmp_path, 2)
    first, v = a.snapshot.features, a.snapshot.version
    a.follow(poll_seconds=0.05)
    b.follow(poll_seconds=0.05)
    (tmp_path / "day").mkdir()
    rows = _new_follows(loader, 40)
    lines = ["src,dst,since", *(f"{r['src']},{r['dst']},{r['since']}" for r in rows)]
    (tmp_path / "day" / "follows.csv").write_text("\n".join(lines) + "\n")
    _, got = load_as_delta(tmp_path / "day", loader, cache)
    assert got is not None and got[1] == v + 1
    f = got[0]
    want = build_features(
        read_market(loader, market.FEATURES_READ),
        today=first.today,
        calibration=first.calibration,
        walks=first.walks,
    )
    assert_features_close(f, want)
    for svc in (a, b):
        assert_features_close(_served(svc, v + 1).features, want)
    assert a.rebuilds_built == b.rebuilds_built == 0
    for svc in (a, b):
        svc.close()
    loader.close()


def test_a_load_after_a_day_of_api_writes_is_still_a_delta_and_one_unrecorded_is_a_build(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Writes through the API after the build (a collaboration, a flag and its resolve, a
    booking, a campaign) do not make the next load a build: the base kept before them stands
    for the users' tables, the tables they write are read again at the load's version, and
    the features cached for it equal a build of it with the first build's calibration, walks
    and date; both workers serve them, neither building. A write the change feed does not
    record (another tool's, straight to the store) leaves the next load to a build."""
    from kolmatch.engine.cache import _cached_versions
    from kolmatch.engine.delta import load_as_delta
    from tests.api.test_bookings import _eligible_merchant, _free_talent, _window
    from tests.matching.test_features import assert_features_close

    loader, cache, (a, b) = _on_one_store(tiny_market, tmp_path, 2)
    first, v = a.snapshot.features, a.snapshot.version
    a.follow(poll_seconds=0.05)
    b.follow(poll_seconds=0.05)
    talent = _top_talent(a)
    a.record_collaboration(collab_id="k-day", time="2026-06-11", **_a_collaboration(a))
    _flag_minor(b, "x-day", talent)
    a.resolve_violation("x-day")
    f = a.snapshot.features
    start, end, w = _window(f)
    m = _eligible_merchant(f)
    t, _ = _free_talent(f, m, w)
    b.book([Booking("bk-day", str(f.talent_ids[t]), str(f.merchant_ids[m]), start, end)])
    written = a.create_campaign(campaign_id="cp-day", name="Day", start=start, end=end)
    assert written.version == v + 5
    for svc in (a, b):
        _served(svc, v + 5)
    # (the one base kept is the build's, five writes back)
    assert _cached_versions(loader.uri, cache, "stage", loader.graph_id()) == [v]
    (tmp_path / "day").mkdir()
    rows = _new_follows(loader, 40)
    lines = ["src,dst,since", *(f"{r['src']},{r['dst']},{r['since']}" for r in rows)]
    (tmp_path / "day" / "follows.csv").write_text("\n".join(lines[:21]) + "\n")
    _, got = load_as_delta(tmp_path / "day", loader, cache)
    assert got is not None and got[1] == v + 6
    want = build_features(
        read_market(loader, market.FEATURES_READ),
        today=first.today,
        calibration=first.calibration,
        walks=first.walks,
    )
    assert_features_close(got[0], want)
    assert want.promotions.sum() == first.promotions.sum() + 1  # (the API's writes are in)
    for svc in (a, b):
        assert_features_close(_served(svc, v + 6).features, want)
    assert a.rebuilds_built == b.rebuilds_built == 0
    # a write the feed does not record: the base no longer stands for the store
    loader.write([RelBatch.of("FOLLOWS", "User", rows[20:21])])
    (tmp_path / "day2").mkdir()
    (tmp_path / "day2" / "follows.csv").write_text("\n".join([lines[0], *lines[22:]]) + "\n")
    _, got = load_as_delta(tmp_path / "day2", loader, cache)
    assert got is None
    for svc in (a, b):
        svc.close()
    loader.close()


def test_a_bulk_load_is_rebuilt_off_the_write_lock_while_the_version_before_serves(
    tiny_market: Path, tmp_path: Path
) -> None:
    """A load into a served store: every worker keeps serving the version before and answers
    its write lock at once (writes are refused with REBUILDING, saying why); one process builds
    the new version's features in a child, the other loads them; both then serve equal
    features, equal to a full build under the calibration in effect."""
    from kolmatch.errors import Rebuilding
    from tests.matching.test_incremental import differences

    loader, cache, (a, b) = _on_one_store(tiny_market, tmp_path, 2)
    frozen, v = a.snapshot.features.calibration, a.snapshot.version
    a.follow(poll_seconds=0.05)
    b.follow(poll_seconds=0.05)
    write = _a_collaboration(a)
    held = threading.Event()
    with engine.rebuilding(loader.uri, loader.graph_id(), cache, held):  # another's build
        loader.write([RelBatch.of("FOLLOWS", "User", _new_follows(loader, 40))])  # a load
        deadline = time.monotonic() + 30
        while not (a.health()["rebuilding"] and b.health()["rebuilding"]):
            assert time.monotonic() < deadline, "no rebuild started"
            time.sleep(0.02)
        for svc in (a, b):
            assert svc.snapshot.version == v  # the version before serves meanwhile
            assert svc._write_lock.acquire(timeout=1.0)  # nothing builds under it
            svc._write_lock.release()
            with pytest.raises(Rebuilding, match=rf"version {v} -> {v + 1}.*retry in 15 s"):
                svc.record_collaboration(collab_id="k-bulk", time="2026-06-11", **write)
        # over HTTP: the typed error, when to send it again (header and extensions), and the
        # version the refusal was answered from
        url, server, thread = serve(create_app(a, KeyRing({"k": Principal("internal")})))
        try:
            r = httpx.post(
                f"{url}/graphql",
                json={
                    "query": "mutation($i: CollaborationInput!) { recordCollaboration(input: $i)"
                    " { version } }",
                    "variables": {"i": {"id": "k-bulk", "time": "2026-06-11", **write}},
                },
                headers={"Authorization": "Bearer k"},
            )
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        (err,) = r.json()["errors"]
        assert err["extensions"] == {"code": "REBUILDING", "retryAfter": 15}, err
        assert r.status_code == 200 and r.headers["Retry-After"] == "15"
        assert r.headers["Kolmatch-Graph-Version"] == str(v)
    for svc in (a, b):
        _served(svc, v + 1)
    assert a.rebuilds_built + b.rebuilds_built == 1  # one child build, the other loaded it
    assert a.rebuilds == b.rebuilds == 1
    full = build_features(read_market(loader), calibration=frozen)
    assert differences(a.snapshot.features, full) == []
    assert differences(b.snapshot.features, full) == []
    assert a.snapshot.history == b.snapshot.history
    # writes are taken again, and the other worker follows them from the feed
    snap = b.record_collaboration(collab_id="k-bulk", time="2026-06-11", **write)
    assert _served(a, snap.version).version == snap.version and not a.health()["rebuilding"]
    assert differences(a.snapshot.features, snap.features) == []
    a.close()
    b.close()
    loader.close()


def _behind_a_load(
    loader: SQLiteStore,
    real_write: Callable[..., Any],
    *,
    before: Callable[[], bool] | None = None,
    then: threading.Event | None = None,
) -> Callable[..., Any]:
    """A store's write (``write``, ``add_collaboration``) queued behind a load: once
    ``before()`` (if given) holds, a load of 40 new follows lands first (a version not in the
    change feed), then the real write (then ``then.set()``, if given)."""

    def write(*args: Any, **kw: Any) -> Any:
        if before is not None:
            assert before()
        loader.write([RelBatch.of("FOLLOWS", "User", _new_follows(loader, 40))])
        out = real_write(*args, **kw)
        if then is not None:
            then.set()
        return out

    return write


def test_a_write_that_lands_past_a_load_answers_without_waiting_for_itself(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b's collaboration read version v, then waited for a load's lock: the load made v + 1
    (not in the change feed) and b's write v + 2. b answers at once, and both workers rebuild
    past the load. (Before, b's id check waited FEED_WAIT_SECONDS for b's own entry, still
    open, and its catch-up as long again for the pending entry it left on v: the bulk-load
    bench's TIMEOUT, a write over 10 s.)"""
    from kolmatch.engine.service import FEED_WAIT_SECONDS

    loader, cache, (a, b) = _on_one_store(tiny_market, tmp_path, 2)
    v = a.snapshot.version
    for svc in (a, b):
        svc.follow(poll_seconds=0.05)
    write = _a_collaboration(b)
    monkeypatch.setattr(
        b.store, "add_collaboration", _behind_a_load(loader, b.store.add_collaboration)
    )
    began = time.monotonic()
    snap = b.record_collaboration(collab_id="k-past", time="2026-06-11", **write)
    took = time.monotonic() - began
    assert took < FEED_WAIT_SECONDS / 2, f"the write took {took:.1f} s"
    assert snap.version in (v, v + 2)  # the version before while rebuilt behind, or after
    graph_id = loader.graph_id()
    assert engine.change_after(loader.uri, graph_id, cache, v) is None  # the load
    entry = engine.change_after(loader.uri, graph_id, cache, v + 1)
    assert entry is not None and entry["collab_id"] == "k-past" and entry["after"] == v + 2
    for svc in (a, b):
        f = _served(svc, v + 2).features
        assert svc.rebuilds == 1
        assert f.talent_track_n[f.talent_row(write["talent"])].sum() > 0
    monkeypatch.undo()
    for svc in (a, b):
        svc.close()
    loader.close()


def test_two_writes_queued_behind_a_load_do_not_wait_for_each_other(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a's and b's collaborations both read version v and queue behind a load (v + 1); a
    makes v + 2 and b v + 3. Each checks its id over the versions it did not read while the
    other's write is still open: each is recorded pending on the version it was made on at
    once (placed), so neither waits for the other (before, each waited FEED_WAIT_SECONDS for
    the other's entry, which came only after the other's own wait). Neither process follows:
    each answers with its write in the snapshot."""
    from kolmatch.engine.service import FEED_WAIT_SECONDS

    loader, cache, (a, b) = _on_one_store(tiny_market, tmp_path, 2)
    v = a.snapshot.version
    write = _a_collaboration(a)
    b_open, a_made = threading.Event(), threading.Event()
    real_b = b.store.add_collaboration

    def b_write(*args: Any) -> Any:
        b_open.set()
        assert a_made.wait(30)
        return real_b(*args)

    # a waits until b read v and is pending there
    a_write = _behind_a_load(
        loader, a.store.add_collaboration, before=lambda: b_open.wait(30), then=a_made
    )
    monkeypatch.setattr(a.store, "add_collaboration", a_write)
    monkeypatch.setattr(b.store, "add_collaboration", b_write)
    took: dict[str, float] = {}
    snaps: dict[str, Any] = {}

    def send(name: str, svc: EngineService) -> None:
        began = time.monotonic()
        snaps[name] = svc.record_collaboration(collab_id=f"k-{name}", time="2026-06-11", **write)
        took[name] = time.monotonic() - began

    threads = [threading.Thread(target=send, args=x) for x in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(took) == {"a", "b"}, "a write did not answer"
    # b's time includes a's load and transaction; neither includes a wait for the other
    assert max(took.values()) < FEED_WAIT_SECONDS / 2, took
    graph_id = loader.graph_id()
    assert engine.change_after(loader.uri, graph_id, cache, v) is None  # the load
    for name, made_on in (("a", v + 1), ("b", v + 2)):
        entry = engine.change_after(loader.uri, graph_id, cache, made_on)
        assert entry is not None and entry["collab_id"] == f"k-{name}"
        assert entry["state"] == "written" and entry["after"] == made_on + 1
        assert snaps[name].version >= made_on + 1 and f"k-{name}" in snaps[name].collaborations
    monkeypatch.undo()
    for svc in (a, b):
        svc.close()
    loader.close()


def test_a_write_in_a_process_that_does_not_follow_answers_with_itself_past_its_wait(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI write (its service never follows the store) lands past a load while another
    server's write stays pending in the feed past the write's wait: it answers with a snapshot
    refreshed at once, its own write in it, not the one before (nothing would bring that up)."""
    from kolmatch.engine import service as service_module

    monkeypatch.setattr(service_module, "FEED_WAIT_SECONDS", 0.3)
    loader, cache, (a,) = _on_one_store(tiny_market, tmp_path, 1)
    v = a.snapshot.version
    write = _a_collaboration(a)
    graph_id = loader.graph_id()
    ghost = {"before": v, "state": "pending", "kind": "bookings", "id": "g", "at": time.time()}
    engine.record_change(loader.uri, graph_id, cache, ghost)  # another server, still writing
    monkeypatch.setattr(
        a.store, "add_collaboration", _behind_a_load(loader, a.store.add_collaboration)
    )
    snap = a.record_collaboration(collab_id="k-cli", time="2026-06-11", **write)
    assert snap.version == v + 2 and "k-cli" in snap.collaborations
    monkeypatch.undo()
    a.close()
    loader.close()


def test_a_bulk_load_stops_the_calibration_being_measured(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load landing while a calibration is measured (a child's full build on the version
    before, which the feed could not bring past the load): the child is stopped rather than
    run beside the rebuild's, nothing takes effect, and the rebuild serves the load."""
    monkeypatch.setenv(engine.RECALIBRATE_SHARE_ENV, str(RECALIBRATE_SHARE))
    loader, _cache, (a,) = _on_one_store(tiny_market, tmp_path, 1)
    rate = a.snapshot.features.calibration.gmv_rate
    a.follow(poll_seconds=0.05)
    write = _a_collaboration(a)
    for i in range(2):  # 2 of 113: past the share, a measurement starts
        v = a.record_collaboration(collab_id=f"k-{i}", time="2026-06-04", **write).version
    assert a._recalibrator is not None and a._recalibrator.is_alive()
    loader.write([RelBatch.of("FOLLOWS", "User", _new_follows(loader, 40))])  # a load
    a._recalibrator.join(60)
    assert a.recalibrations_stopped == 1 and a.recalibrations == 0  # stopped, not given up
    snap = _served(a, v + 1)
    assert snap.features.calibration.gmv_rate == rate and a.rebuilds == 1
    a.close()
    loader.close()


def test_a_worker_behind_a_bulk_load_takes_the_cached_build_and_the_writes_since(
    tiny_market: Path, tmp_path: Path
) -> None:
    """A worker that finds the new version built (and written to since) builds nothing: the
    cached features are brought to its catalog read by the change feed."""
    from tests.matching.test_incremental import differences

    loader, _cache, (a, b) = _on_one_store(tiny_market, tmp_path, 2)
    frozen, v = a.snapshot.features.calibration, a.snapshot.version
    a.follow(poll_seconds=0.05)
    loader.write([RelBatch.of("FOLLOWS", "User", _new_follows(loader, 40))])
    _served(a, v + 1)
    write = _a_collaboration(a)
    for i in range(2):
        a.record_collaboration(collab_id=f"k-after-{i}", time="2026-06-12", **write)
    b.follow(poll_seconds=0.05)  # behind the load and both writes
    snap = _served(b, v + 3)
    assert (a.rebuilds_built, b.rebuilds_built, b.rebuilds) == (1, 0, 1)
    full = build_features(read_market(loader), calibration=frozen)
    assert differences(snap.features, full) == []
    assert differences(a.snapshot.features, full) == []
    assert set(snap.collaborations) >= {"k-after-0", "k-after-1"}
    assert snap.history == a.snapshot.history
    a.close()
    b.close()
    loader.close()


def test_a_rebuild_the_child_could_not_cache_is_done_in_process(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache folder the child cannot write (it says so and exits 0): the process rebuilds
    in process, as before, rather than building in a child again and again."""
    from kolmatch.engine import service as service_module
    from tests.matching.test_incremental import differences

    loader, _cache, (a,) = _on_one_store(tiny_market, tmp_path, 1)
    frozen, v = a.snapshot.features.calibration, a.snapshot.version
    children: list[str] = []

    def uncached(uri: str, cache_dir: Any, stop: Any) -> Any:
        children.append(uri)
        return loader.identity()  # built, but nothing cached

    monkeypatch.setattr(service_module, "build_features_apart", uncached)
    a.follow(poll_seconds=0.05)
    loader.write([RelBatch.of("FOLLOWS", "User", _new_follows(loader, 40))])
    snap = _served(a, v + 1)
    assert len(children) == 1 and a.rebuilds_built == 1
    assert differences(snap.features, build_features(read_market(loader), calibration=frozen)) == []
    assert not a.health()["rebuilding"]
    a.close()
    loader.close()


def test_writes_that_check_the_store_alone_are_refused_while_rebuilding_too(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Creating a campaign and releasing bookings check the store, not the snapshot: behind a
    bulk change they are refused (and audited) like the others, not written and rebuilt
    under the write lock; two workers with no features cached build once between them."""
    from kolmatch.errors import Rebuilding

    loader, cache, (a, b) = _on_one_store(tiny_market, tmp_path, 2)
    v = a.snapshot.version
    for entry in cache.glob("features-*.npz"):  # none cached: neither has a base
        entry.unlink()
    a.follow(poll_seconds=0.05)
    b.follow(poll_seconds=0.05)
    with engine.rebuilding(loader.uri, loader.graph_id(), cache, threading.Event()):
        loader.write([RelBatch.of("FOLLOWS", "User", _new_follows(loader, 40))])
        deadline = time.monotonic() + 30
        while not (a.health()["rebuilding"] and b.health()["rebuilding"]):
            assert time.monotonic() < deadline, "no rebuild started"
            time.sleep(0.02)
        with pytest.raises(Rebuilding):
            a.create_campaign(campaign_id="c-bulk", name="x", start="2026-07-01", end="2026-07-09")
        with pytest.raises(Rebuilding):
            a.release(["b-nothing"])
        assert loader.missing_ids("Campaign", ["c-bulk"]) == {"c-bulk"}  # nothing written
    for svc in (a, b):
        _served(svc, v + 1)
    assert a.rebuilds_built + b.rebuilds_built == 1
    refused = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    refused = [e for e in refused if e.get("outcome") == "refused"]
    assert [e["error"]["type"] for e in refused] == ["Rebuilding", "Rebuilding"]
    a.close()
    b.close()
    loader.close()


def test_a_child_build_that_keeps_failing_is_retried_then_done_in_process(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child that cannot build (its memory, its environment): tried again after a growing
    wait, the error in /healthz, then built in process so that the load is served."""
    from kolmatch.engine import service as service_module

    loader, _cache, (a,) = _on_one_store(tiny_market, tmp_path, 1)
    v = a.snapshot.version
    tries: list[float] = []

    def failing(uri: str, cache_dir: Any, stop: Any) -> Any:
        tries.append(time.monotonic())
        raise StoreError("rebuilding the features of g.db failed (killed by signal 9): ")

    monkeypatch.setattr(service_module, "build_features_apart", failing)
    monkeypatch.setattr(service_module, "REBUILD_RETRY_SECONDS", 0.3)
    a.follow(poll_seconds=0.05)
    loader.write([RelBatch.of("FOLLOWS", "User", _new_follows(loader, 40))])
    deadline = time.monotonic() + 30
    while "rebuild_error" not in a.health():
        assert time.monotonic() < deadline, "no failure reported"
        time.sleep(0.02)
    assert "killed by signal 9" in a.health()["rebuild_error"] and a.health()["rebuilding"]
    _served(a, v + 1)
    assert len(tries) == service_module.REBUILD_CHILD_FAILURES
    assert tries[1] - tries[0] >= 0.3  # waited before trying again
    health = a.health()
    assert not health["rebuilding"] and "rebuild_error" not in health
    a.close()
    loader.close()
