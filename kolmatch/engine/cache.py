"""Market features per graph version: read the graph once, build, cache on disk.

This is the one place that decides what to read from a store: the whole market
(:data:`~kolmatch.graph.market.FULL_READ`) when the features must be built, only compliance
when the one write since the cached version touched violations alone, and nothing but what the
caller adds (``also``) when the features are cached.

Entries are kept per store (its URI and graph id), the latest version of each, for the
:data:`CACHE_STORES` stores used last: switching between a few stores rebuilds nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch import progress
from kolmatch.engine.arrays import UnreadableArrays, read_arrays, write_arrays
from kolmatch.engine.distributed import DASK_ENVIRONMENT_VARIABLE, dask_address, partitions_on
from kolmatch.errors import StoreError
from kolmatch.graph.market import (
    BOOKINGS_READ,
    CAMPAIGNS_READ,
    COMPLIANCE_READ,
    FULL_READ,
    MarketGraph,
    ReadSpec,
    read_market,
)
from kolmatch.graph.store import GraphStore
from kolmatch.jsonio import dumps
from kolmatch.matching.features import Calibration, MarketFeatures, build_features, refresh_risk
from kolmatch.matching.incremental import (
    CollaborationWrite,
    apply_bookings,
    apply_campaigns,
    apply_collaboration,
)
from kolmatch.matching.ranking_partition import partitioned_rankings
from kolmatch.matching.score import MerchantRankings, rank_merchants

__all__ = [
    "CACHE_FORMAT",
    "CACHE_STORES",
    "Identity",
    "cached_features",
    "cached_rankings",
    "change_after",
    "features_of",
    "load_features",
    "record_change",
    "store_features",
    "stored_rankings",
    "updated_features",
]

T = TypeVar("T")
Identity = tuple[str, int]  # (graph id, version): what a cache entry is keyed on
log = logging.getLogger("kolmatch.engine")

#: Bumped whenever MarketFeatures or its computation changes: old cache files are ignored.
CACHE_FORMAT = 16

#: Stores whose entries are kept, per kind (features, rankings, calibration): the most
#: recently used; a store's older versions are dropped when a newer one is cached. An entry is
#: 23 MB of features and 7.5 MB of rankings at s (measured), ~0.5 GB and ~0.1 GB at m, so the
#: folder holds at most four times that: ~2.5 GB for four m markets.
CACHE_STORES = 4

#: A full build measures the calibration afresh once the collaborations on record have changed
#: by more than this share since it was measured (or the talents or categories changed, or a
#: refresh asks for it); until then every process builds with the one stored calibration, so a
#: worker that rebuilds and a writer that updated incrementally serve the same features.
RECALIBRATE_SHARE = 0.01


@dataclass(frozen=True)
class _StoredCalibration:
    """The market's frozen calibration, one per store: what every full build uses."""

    gmv_rate: float
    cat_mean: NDArray[np.float64]
    promoted_categories: sp.csr_matrix
    talent_ids: NDArray[np.str_]
    category_ids: NDArray[np.object_]
    promotions: int  # collaborations on record when it was measured
    version: int


def _cache_dir(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir or os.environ.get("KOLMATCH_CACHE") or ".kolmatch/cache")


def _cache_path(uri: str, cache_dir: Path, kind: str, identity: Identity) -> Path:
    """``<kind>-<format>-<store>-v<version>.npz``, the store named by a digest of its URI and
    graph id: :func:`_store` replaces a store's entry when a newer version is cached."""
    graph_id, version = identity
    store = hashlib.sha256(f"{uri}|{graph_id}".encode()).hexdigest()
    return cache_dir / f"{kind}-{CACHE_FORMAT}-{store[:24]}-v{version}.npz"


def load_features(
    store: GraphStore,
    cache_dir: str | Path | None = None,
    *,
    also: ReadSpec | None = None,
    risk_update_of: tuple[MarketFeatures, int] | None = None,
    collaboration_of: tuple[MarketFeatures, int, CollaborationWrite] | None = None,
    dask: str | None = None,
) -> tuple[MarketFeatures, MarketGraph]:
    """The store's market features and a market graph of the same version, in one read.

    The features come from the cache when the graph has not changed since they were built
    (keyed by the store URI, its graph id, its version and :data:`CACHE_FORMAT`); otherwise
    the graph is read once (:func:`~kolmatch.graph.market.read_market`) and the features are
    built from that read and cached (written atomically: a crash never leaves half a file).

    Parameters
    ----------
    store
        Any GraphStore.
    cache_dir
        Where cache files live; default ``KOLMATCH_CACHE`` or ``./.kolmatch/cache``.
    also
        What else the caller needs from the same graph version (the API's names and history):
        read with whatever the features need, or alone on a cache hit.
    risk_update_of
        ``(features, v)``: this graph's features at version ``v``, where the one write after
        ``v`` touched only violations. If the graph is at ``v + 1`` when read, only compliance
        is read (:func:`~kolmatch.matching.features.refresh_risk`); otherwise the whole graph.
    collaboration_of
        ``(features, v, write)``: this graph's features at version ``v``, where the one write
        after ``v`` recorded the collaboration ``write``. If the graph is at ``v + 1``, the
        features are updated in place of a build
        (:func:`~kolmatch.matching.incremental.apply_collaboration`: one talent's rows, under
        the features' frozen calibration) and only ``also`` is read, unless the write takes
        the collaborations on record past :data:`RECALIBRATE_SHARE` of change: then a full
        build measures the calibration afresh.
    dask
        The Dask scheduler a full build's partitions run on (``tcp://host:8786``); default
        ``KOLMATCH_DASK``, else in process; ``""`` builds in process whatever the environment
        says (:mod:`kolmatch.engine.distributed`, docs/scale.md). Cache hits and updates never
        connect.

    A full build uses the store's stored calibration (one per graph, in the cache folder)
    while the talents and categories are the same and the collaborations on record changed by
    at most :data:`RECALIBRATE_SHARE`; otherwise it measures one and stores it. The decision
    depends only on the graph and the stored calibration, so every process serving a version
    builds the same features, whether it updated them or rebuilt them.

    Returns
    -------
    (MarketFeatures, MarketGraph)
        Both of the graph version ``graph.identity``; the graph holds at least ``also``.
    """
    extra = also or ReadSpec({})
    d = _cache_dir(cache_dir)
    for _ in range(3):
        ident = store.identity()
        hit = _load(_cache_path(store.uri, d, "features", ident), MarketFeatures)
        if hit is not None:
            g = read_market(store, extra)
            if g.identity == ident:
                return hit, g
            continue  # written since: look again
        if risk_update_of is not None and ident[1] == risk_update_of[1] + 1:
            g = read_market(store, COMPLIANCE_READ | extra)
            if g.identity[1] == risk_update_of[1] + 1:
                f = refresh_risk(g, risk_update_of[0])
                _store(_cache_path(store.uri, d, "features", g.identity), "features", f)
                return f, g
        if collaboration_of is not None and ident[1] == collaboration_of[1] + 1:
            g = read_market(store, extra)  # the catalog; the update itself reads nothing
            up = (
                updated_features(store, d, collaboration_of=collaboration_of)
                if g.identity[1] == collaboration_of[1] + 1
                else None
            )
            if up is not None:
                f = up[0]
                _store(_cache_path(store.uri, d, "features", g.identity), "features", f)
                return f, g
        break
    with progress.task("reading the market"):  # the store's time, which it does not report
        g = read_market(store, FULL_READ | extra)
    f = _build_calibrated(store.uri, d, g, dask)
    _store(_cache_path(store.uri, d, "features", g.identity), "features", f)
    return f, g


def updated_features(
    store: GraphStore,
    cache_dir: str | Path | None = None,
    *,
    risk_update_of: tuple[MarketFeatures, int] | None = None,
    collaboration_of: tuple[MarketFeatures, int, CollaborationWrite] | None = None,
    bookings_of: tuple[MarketFeatures, int] | None = None,
    campaigns_of: tuple[MarketFeatures, int] | None = None,
) -> tuple[MarketFeatures, MarketGraph] | None:
    """The features one write after ``v``, updated from those at ``v``; None if they cannot be.

    The write path of a serving process: nothing is read for a collaboration (the caller
    vouches that the write made version ``v + 1``), the compliance tables for violations (the
    graph must be at ``v + 1``), and nothing is written (the caller
    caches the features in the background: 0.5 GB at m). None when the graph is not exactly one
    write past ``v`` or the write takes the collaborations past :data:`RECALIBRATE_SHARE`
    (then :func:`load_features` builds).

    Parameters
    ----------
    store, cache_dir
        As :func:`load_features`.
    risk_update_of, collaboration_of
        As :func:`load_features`; one of them, or
    bookings_of
        ``(features, v)`` before a write that made or released bookings: the booking table is
        re-read (the graph must be at ``v + 1``).
    campaigns_of
        The same for a write that created or joined campaigns (their tables re-read).
    """
    if collaboration_of is not None:
        # nothing to read: the caller knows its write made version v + 1 (its own write, or
        # the change feed's); the graph carries only that identity
        prev, v, write = collaboration_of
        g = MarketGraph((store.graph_id(), v + 1), {}, {})
        cal = _load(
            _calibration_path(store.uri, _cache_dir(cache_dir), g.identity[0]), _StoredCalibration
        )
        if (
            cal is None
            or cal.gmv_rate != prev.gmv_rate
            or not np.array_equal(cal.cat_mean, prev.category_gmv_mean)
            or _drift(cal, int(prev.promotions.sum()) + 1) > RECALIBRATE_SHARE
        ):
            return None
        return apply_collaboration(prev, write), g
    # a write that changed a few tables: they are re-read, and applied if the graph is exactly
    # that write past v (else the caller builds)
    for of, spec, apply in (
        (risk_update_of, COMPLIANCE_READ, lambda f, g: refresh_risk(g, f)),
        (bookings_of, BOOKINGS_READ, apply_bookings),
        (campaigns_of, CAMPAIGNS_READ, apply_campaigns),
    ):
        if of is not None:
            prev, v = of
            g = read_market(store, spec)
            if g.identity[1] != v + 1:
                return None
            try:
                return apply(prev, g), g
            except StoreError:  # its talents or merchants changed meanwhile: a build
                return None
    return None


def store_features(
    uri: str, identity: Identity, f: MarketFeatures, cache_dir: str | Path | None = None
) -> None:
    """Cache features of a graph version (what :func:`load_features` would have written)."""
    _store(_cache_path(uri, _cache_dir(cache_dir), "features", identity), "features", f)


def record_change(
    uri: str, graph_id: str, cache_dir: str | Path | None, entry: dict[str, object]
) -> None:
    """Append one write's description to the graph's change feed (in the cache folder).

    ``entry``: ``before`` (the version it was written on), ``state`` (``pending`` before the
    store is written, then ``written`` with ``after``, or ``failed``), ``kind``
    (``collaboration`` with its ``write``, or ``violations``). Other processes serving the
    store read it (:func:`change_after`) to apply the write as the writer did, instead of
    rebuilding. Best effort: a feed that cannot be written costs them a rebuild.
    """
    path = _feed_path(uri, graph_id, _cache_dir(cache_dir))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(dumps(entry) + "\n")
    except OSError as exc:
        log.warning("kolmatch: cannot write the change feed %s (%s)", path, exc)


def change_after(
    uri: str, graph_id: str, cache_dir: str | Path | None, before: int
) -> dict[str, Any] | None:
    """The latest state of the write made on version ``before``, if the feed has it.

    Two processes may both write on ``before``; one makes ``before + 1`` and the other
    fails, finds nothing to write (``noop``) or writes later: the one ``written`` with
    ``after == before + 1`` is the answer, else the latest state of any of them.
    """
    path = _feed_path(uri, graph_id, _cache_dir(cache_dir))
    found: dict[str, Any] | None = None
    made: dict[str, Any] | None = None
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue  # a line being appended
                if e.get("before") == before:
                    found = e
                    if e.get("state") == "written" and e.get("after") == before + 1:
                        made = e
    except OSError:
        return None
    return made or found


def _feed_path(uri: str, graph_id: str, d: Path) -> Path:
    key = hashlib.sha256(f"{uri}|{graph_id}".encode()).hexdigest()
    return d / f"changes-{key[:24]}.jsonl"


def _calibration_path(uri: str, d: Path, graph_id: str) -> Path:
    return _cache_path(uri, d, "calibration", (graph_id, 0))


def _drift(cal: _StoredCalibration, promotions: int) -> float:
    """Change in the collaborations on record since ``cal`` was measured, as a share."""
    return abs(promotions - cal.promotions) / max(cal.promotions, 1)


def _build(
    g: MarketGraph, dask: str | None, calibration: Calibration | None = None
) -> MarketFeatures:
    """:func:`build_features`, its partitions on the Dask cluster ``dask`` names, if any."""
    address = dask_address(dask)
    if address is None:  # in process: build_features' own default
        return (
            build_features(g) if calibration is None else build_features(g, calibration=calibration)
        )
    argument = "dask" if dask else DASK_ENVIRONMENT_VARIABLE
    with partitions_on(address, argument=argument) as partitions:
        return build_features(g, calibration=calibration, partitions=partitions)


def _build_calibrated(uri: str, d: Path, g: MarketGraph, dask: str | None) -> MarketFeatures:
    """A full build with the store's stored calibration, or a fresh one (then stored)."""
    path = _calibration_path(uri, d, g.identity[0])
    promotions = len(g.edge("PROMOTED", "Talent").src)
    talents, cats = g.node("Talent").ids, np.asarray(g.node("Category").ids).astype(object)
    cal = _load(path, _StoredCalibration)
    if (
        cal is not None
        and _drift(cal, promotions) <= RECALIBRATE_SHARE
        and np.array_equal(cal.talent_ids, talents)
        and np.array_equal(cal.category_ids.astype(str), cats.astype(str))
    ):
        frozen = Calibration(cal.gmv_rate, cal.cat_mean, cal.promoted_categories)
        return _build(g, dask, frozen)
    f = _build(g, dask)
    c = f.calibration
    entry = _StoredCalibration(
        c.gmv_rate, c.cat_mean, c.promoted_categories, f.talent_ids, cats, promotions, g.identity[1]
    )
    _store(path, "calibration", entry)
    return f


def cached_features(
    store: GraphStore, cache_dir: str | Path | None = None, *, dask: str | None = None
) -> MarketFeatures:
    """The store's market features (:func:`load_features` without a graph for the caller).

    Parameters
    ----------
    store
        Any GraphStore.
    cache_dir, dask
        As :func:`load_features`.
    """
    return load_features(store, cache_dir, dask=dask)[0]


def features_of(store: GraphStore, *, dask: str | None = None) -> MarketFeatures:
    """The store's market features built now from one full read, bypassing the cache.

    Parameters
    ----------
    store
        Any GraphStore.
    dask
        As :func:`load_features`.
    """
    return _build(read_market(store, FULL_READ), dask)


def cached_rankings(
    uri: str,
    identity: Identity,
    f: MarketFeatures,
    cache_dir: str | Path | None = None,
    *,
    dask: str | None = None,
) -> MerchantRankings:
    """Every merchant's default ranking (:func:`rank_merchants`), cached like the features.

    Parameters
    ----------
    uri
        The store's URI.
    identity
        The graph version ``f`` was built from (:attr:`MarketGraph.identity`): the cache key.
    f
        Its market features.
    cache_dir
        As :func:`load_features`.
    dask
        As :func:`load_features`: with a scheduler, ranges of merchants are ranked on its
        workers (:func:`~kolmatch.matching.ranking_partition.partitioned_rankings`, the same
        rankings); without, threads in this process.
    """

    def rank() -> MerchantRankings:
        address = dask_address(dask)
        if address is None:
            return rank_merchants(f)
        argument = "dask" if dask else DASK_ENVIRONMENT_VARIABLE
        with partitions_on(address, argument=argument) as partitions:
            return partitioned_rankings(f, partitions)

    return _cached(uri, identity, cache_dir, "rankings", MerchantRankings, rank)


def stored_rankings(
    uri: str, identity: Identity, cache_dir: str | Path | None = None
) -> MerchantRankings | None:
    """The cached rankings of this graph version, if some process computed them; else None.

    Parameters
    ----------
    uri, identity, cache_dir
        As :func:`cached_rankings`.
    """
    return _load(_cache_path(uri, _cache_dir(cache_dir), "rankings", identity), MerchantRankings)


def _cached(
    uri: str,
    identity: Identity,
    cache_dir: str | Path | None,
    kind: str,
    cls: type[T],
    build: Callable[[], T],
) -> T:
    path = _cache_path(uri, _cache_dir(cache_dir), kind, identity)
    value = _load(path, cls)
    if value is None:
        value = build()
        _store(path, kind, value)
    return value


def _load(path: Path, cls: type[T]) -> T | None:
    if not path.exists():
        return None
    try:
        # data only (numpy arrays, JSON): a cache file never runs code, whoever wrote it
        value = read_arrays(path, cls, version=CACHE_FORMAT)
    except UnreadableArrays as exc:
        log.info("kolmatch: rebuilding %s (%s)", path.name, exc)
        return None  # unreadable, or of another format: rebuilt by the caller
    with contextlib.suppress(OSError):
        os.utime(path)  # used now: the last store to be evicted (_store keeps the recent)
    return value


def _evict(d: Path, kind: str, keep: Path) -> None:
    """Drop the ``kind`` entries of ``keep``'s store (older versions), those of another format
    or naming (never read again), and those of all but the :data:`CACHE_STORES` most recently
    used stores, ``keep``'s counted."""
    prefix = f"{kind}-{CACHE_FORMAT}-"
    mine = keep.name.rsplit("-v", 1)[0] + "-v"
    others: dict[Path, float] = {}
    for old in [*d.glob(f"{kind}-*.npz"), *d.glob(f"{kind}-*.pkl")]:
        if old == keep:
            continue
        if not old.name.startswith(prefix) or old.suffix != ".npz" or old.name.startswith(mine):
            old.unlink(missing_ok=True)
            continue
        with contextlib.suppress(OSError):
            others[old] = old.stat().st_mtime
    for old in sorted(others, key=others.__getitem__, reverse=True)[CACHE_STORES - 1 :]:
        old.unlink(missing_ok=True)


def _store(path: Path, kind: str, value: object) -> None:
    d = path.parent
    tmp: str | None = None
    try:
        d.mkdir(parents=True, exist_ok=True)
        _evict(d, kind, path)  # before writing: the disk is freed before it is taken
        with tempfile.NamedTemporaryFile(dir=d, delete=False, suffix=".tmp") as out:
            tmp = out.name
        write_arrays(Path(tmp), value, version=CACHE_FORMAT)
        os.replace(tmp, path)
    except OSError as exc:
        # a read-only or full cache folder costs speed, not correctness: say so, leave no debris
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        log.warning("kolmatch: cannot write the %s cache in %s (%s); not cached", kind, d, exc)
