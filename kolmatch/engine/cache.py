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
import fcntl
import hashlib
import json
import logging
import math
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from kolmatch import progress
from kolmatch.engine.arrays import UnreadableArrays, read_arrays, write_arrays
from kolmatch.engine.distributed import dask_address, dask_argument, partitions_on
from kolmatch.errors import BadArgument, Cancel, Cancelled, KolmatchError, StoreError
from kolmatch.graph.market import (
    BOOKINGS_READ,
    CAMPAIGNS_READ,
    COMPLIANCE_READ,
    FULL_READ,
    VIOLATIONS_READ,
    Identity,
    MarketGraph,
    ReadSpec,
    read_market,
)
from kolmatch.graph.store import GraphStore
from kolmatch.jsonio import dumps
from kolmatch.matching.features import (
    Calibration,
    MarketFeatures,
    Walks,
    build_features,
    refresh_risk,
)
from kolmatch.matching.incremental import (
    CollaborationWrite,
    apply_bookings,
    apply_campaigns,
    apply_collaboration,
)
from kolmatch.matching.ranking_partition import partitioned_rankings
from kolmatch.matching.score import (
    MerchantRankings,
    rank_merchants,
    rankings_after_collaboration,
    rankings_worn,
)
from kolmatch.matching.user_partition import UserStage
from kolmatch.memory import release_freed_memory

__all__ = [
    "CACHE_FORMAT",
    "CACHE_STORES",
    "FEED_KEEP_BYTES",
    "FEED_OPEN_SECONDS",
    "FEED_TRIM_BYTES",
    "ChangeFeed",
    "Identity",
    "KeptWalks",
    "Measured",
    "StagedRecalibration",
    "api_writes_alone",
    "cache_folder",
    "cached_features",
    "cached_rankings",
    "calibration_drift",
    "caught_up",
    "change_after",
    "features_of",
    "feed_pending",
    "keep_walks",
    "latest_features",
    "load_features",
    "made",
    "measure_calibration",
    "read_measured",
    "rebuilding",
    "rebuilding_now",
    "recalibrate_share",
    "recalibrating",
    "record_change",
    "store_features",
    "stored_rankings",
    "updated_features",
    "walks_in_effect",
    "write_measured",
]

T = TypeVar("T")
log = logging.getLogger("kolmatch.engine")

#: Bumped whenever MarketFeatures or MerchantRankings or their computation changes: old cache
#: files are ignored (18: talents' price levels on a grid, features.PRICE_LEVEL_GRID; 19: the
#: content skill's chances kept, ``talent_content_priced`` and ``talent_content_unpriced``;
#: 20: scores measured against the calibration's skills, track records and collaborations, and
#: the rankings' standardisation moments, ``MerchantRankings.moments``).
CACHE_FORMAT = 20

#: Stores whose entries are kept, per kind (features, rankings, calibration, stage): the most
#: recently used; a store's older versions are dropped when a newer one is cached. An entry is
#: 23 MB of features and 7.5 MB of rankings at s (measured), ~0.5 GB and ~0.1 GB at m; a delta
#: base (kolmatch/engine/delta.py: the graph, 0.8 GB at m, and the stage, 0.5 GB) adds ~1.3 GB
#: per store, so the folder holds at most ~2 GB per m market: ~8 GB for four.
CACHE_STORES = 4

#: A serving process recalibrates (:func:`measure_calibration`, then a version of its own:
#: ``EngineService``) once the collaborations on record have changed by more than this share
#: since the calibration in effect was measured. Builds never measure one while a stored one
#: fits the graph's talents, categories and products: every process serving a version, whether
#: it updated its features or rebuilt them, uses the calibration in effect at that version.
RECALIBRATE_SHARE = 0.01
#: Calibrations kept per store: the one in effect and the one before it (a build reading the
#: version just before a recalibration took effect still finds its own).
CALIBRATIONS_KEPT = 2
#: Kept walks per store (:class:`KeptWalks`): those of the last delta and the one before it.
WALKS_KEPT = 2
#: Change-feed kinds of the writes applied by re-reading their own tables.
REREAD_KINDS = ("violations", "bookings", "campaigns")
#: Change-feed kinds of the API's writes (a collaboration, applied as its row, and those
#: re-read): none of them writes a user's row.
WRITE_KINDS = ("collaboration", *REREAD_KINDS)
#: A write ``pending`` in the change feed for longer than this (seconds) is taken for one
#: whose process died before it ended: versions past it are no longer held open for it.
FEED_OPEN_SECONDS = 60.0
#: The edge lists a full build drops from its graph once read (``release_user_edges``).
_ENGAGED, _FOLLOWS = ("ENGAGED_WITH", "User"), ("FOLLOWS", "User")
#: Sets the share in place of :data:`RECALIBRATE_SHARE` (a number > 0; ``inf``: never).
RECALIBRATE_SHARE_ENV = "KOLMATCH_RECALIBRATE_SHARE"

#: An append that leaves a graph's change feed (:class:`ChangeFeed`) larger than this trims it
#: to about its last :data:`FEED_KEEP_BYTES`. An entry is 0.2-0.4 KB (two per write: pending,
#: then its outcome), so trimming reads at most ~2 MB, once per ~1.5 MB of appends.
FEED_TRIM_BYTES = 2 * 1024 * 1024
#: What a trim keeps: ~1,500-2,500 entries, the last ~1,000 writes. A follower further behind
#: finds its version gone from the feed and rebuilds from the store (at m a rebuild takes
#: minutes, during which a busy market may write a few hundred times: those it applies).
FEED_KEEP_BYTES = 512 * 1024
#: A temporary file in the cache folder older than this is a killed process's (an entry being
#: written takes seconds; a measured calibration's, 0.5 GB at m, is read as soon as it is
#: written): the next entry stored removes it.
STALE_TMP_SECONDS = 3600.0
#: The first bytes of a feed a reader checks before reading on from its offset.
_FEED_HEAD_BYTES = 128


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
    skill: NDArray[np.float64]  # Calibration.skill
    track: NDArray[np.float64]  # Calibration.track
    partner_promotions: sp.csr_matrix  # Calibration.promotions
    product_ids: NDArray[np.str_]  # the rows of partner_promotions

    def fits(self, g: MarketGraph) -> bool:
        """Whether this calibration is of ``g``'s talents, categories and products."""
        cats = np.asarray(g.node("Category").ids).astype(str)
        return (
            np.array_equal(self.talent_ids, g.node("Talent").ids)
            and np.array_equal(self.category_ids.astype(str), cats)
            and np.array_equal(self.product_ids, g.node("Product").ids)
        )

    @property
    def calibration(self) -> Calibration:
        """As the features carry it."""
        return Calibration(
            self.gmv_rate,
            self.cat_mean,
            self.promoted_categories,
            self.skill,
            self.track,
            self.partner_promotions,
        )


@dataclass(frozen=True)
class KeptWalks:
    """The walks and reference date a delta kept from the last full build, recorded for the
    version it made (``walks-...-v<version>.npz``): what a build of that version, or of one
    the API's writes alone made from it, takes rather than walks the follow graph again
    (:func:`walks_in_effect`), so it gives the delta's features; and the users changed by
    deltas since that build, which the build's kept base carries on counting."""

    influence: NDArray[np.float64]  # (T,) Walks.influence
    category_ppr_tail: NDArray[np.float64]  # (C, T) Walks.category_ppr_tail
    today: date
    talent_ids: NDArray[np.str_]
    category_ids: NDArray[np.str_]
    changed_users: int
    version: int

    @property
    def walks(self) -> Walks:
        """As :attr:`MarketFeatures.walks`."""
        return Walks(self.influence, self.category_ppr_tail)


def keep_walks(
    uri: str,
    cache_dir: str | Path | None,
    g: MarketGraph,
    f: MarketFeatures,
    changed_users: int,
) -> None:
    """Record ``f``'s walks and date as those of the version ``g`` a delta made
    (:class:`KeptWalks`); a failure to write is said in the log (a build of that version then
    walks again, as before the record). What :func:`walks_in_effect` finds.

    Parameters
    ----------
    uri
        The store's URI.
    cache_dir
        The cache folder (as :func:`load_features`).
    g
        The graph after the delta (its version, its categories).
    f
        The delta's features (their walks and date are the last full build's).
    changed_users
        Users changed by deltas since that build, this one's included.
    """
    d = _cache_dir(cache_dir)
    kept = KeptWalks(
        f.talent_influence,
        f.category_ppr_tail,
        f.today,
        f.talent_ids,
        np.asarray(g.node("Category").ids).astype(str),
        int(changed_users),
        int(g.identity[1]),
    )
    _store(_cache_path(uri, d, "walks", g.identity), "walks", kept, keep=WALKS_KEPT)


def walks_in_effect(uri: str, cache_dir: str | Path | None, identity: Identity) -> KeptWalks | None:
    """The walks a full build of ``identity``'s version takes as given: those a delta kept
    (:func:`keep_walks`) for the latest version at or before it, where that is the version
    itself or the change feed shows every write since made by the API
    (:data:`WRITE_KINDS`: none moves a follow, a purchase or an engagement).

    Parameters
    ----------
    uri, cache_dir
        As :func:`keep_walks`.
    identity
        The graph id and version to build.

    Returns
    -------
    KeptWalks or None
        None where a bulk load, a recalibration or an unrecorded write came between, or no
        delta was kept (or its record is unreadable): the build walks the graph.

    Examples
    --------
    >>> import tempfile
    >>> walks_in_effect("sqlite:///k.db", tempfile.mkdtemp(), ("g1", 3)) is None  # none kept
    True
    """
    d = _cache_dir(cache_dir)
    graph_id, version = identity
    at = next((v for v in _cached_versions(uri, d, "walks", graph_id) if v <= version), None)
    if at is None:
        return None
    if not api_writes_alone(uri, graph_id, d, at, version):
        return None
    return _load(_cache_path(uri, d, "walks", (graph_id, at)), KeptWalks)


def api_writes_alone(
    uri: str, graph_id: str, cache_dir: str | Path | None, start: int, version: int
) -> bool:
    """Whether the change feed shows the API's writes alone (:data:`WRITE_KINDS`: none writes
    a user's row) made every version after ``start`` up to ``version``, each recorded as
    written. Nothing is read but the feed.

    Parameters
    ----------
    uri, graph_id
        The store's URI and graph id.
    cache_dir
        As :func:`load_features`.
    start, version
        The versions the writes lie between.

    Returns
    -------
    bool
        True when they are one version; False at a write the feed lacks, one still pending
        or failed, or one of another kind (a recalibration, anything else).

    Examples
    --------
    >>> import tempfile
    >>> d, uri = tempfile.mkdtemp(), "sqlite:///k.db"
    >>> api_writes_alone(uri, "g1", d, 4, 4), api_writes_alone(uri, "g1", d, 4, 5)
    (True, False)
    >>> record_change(uri, "g1", d, {"before": 4, "kind": "collaboration", "state": "written",
    ...                              "after": 5})
    >>> api_writes_alone(uri, "g1", d, 4, 5)
    True
    """
    for before in range(start, version):
        change = change_after(uri, graph_id, cache_dir, before)
        if not made(change, before) or change.get("kind") not in WRITE_KINDS:
            return False
    return True


def _cache_dir(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir or os.environ.get("KOLMATCH_CACHE") or ".kolmatch/cache")


def cache_folder(cache_dir: str | Path | None) -> Path:
    """The cache folder: ``cache_dir``, else ``KOLMATCH_CACHE``, else ``./.kolmatch/cache``."""
    return _cache_dir(cache_dir)


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
    (keyed by the store URI, its graph id, its version and :data:`CACHE_FORMAT`), or from the
    latest version cached and the change feed's writes since (:func:`caught_up`); otherwise
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
        the features' frozen calibration) and only ``also`` is read.
    dask
        The Dask scheduler a full build's partitions run on (``tcp://host:8786``); default
        ``KOLMATCH_DASK``, else in process; ``""`` builds in process whatever the environment
        says (:mod:`kolmatch.engine.distributed`, docs/scale.md). Cache hits and updates never
        connect.

    A full build of version ``x`` uses the calibration in effect at ``x`` (stored in the cache
    folder, each with the version it takes effect from: the latest at or before ``x``) while
    it fits the graph's talents, categories and products; otherwise (none stored, a bulk load
    changed them) it measures one and stores it, in effect from ``x``. The choice depends only on
    the graph and the stored calibrations, so every process serving a version builds the same
    features, whether it updated them or rebuilt them. A new calibration comes from a serving
    process (:func:`measure_calibration`), as a version of its own.

    Returns
    -------
    (MarketFeatures, MarketGraph)
        Both of the graph version ``graph.identity``; the graph holds at least ``also``
        (after a full build, users' engagements and follows only if ``also`` reads them).
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
    brought = _from_latest(store, d, extra)
    if brought is not None:
        return brought
    with progress.task("reading the market"):  # the store's time, which it does not report
        g = read_market(store, FULL_READ | extra)
    # the graph returned holds ``also`` and the catalog: a user's engagements and follows,
    # the build's largest tables, go as soon as it has read them, unless asked for
    release = not {_ENGAGED, _FOLLOWS} & set(extra.edges)
    walks = _fitting(walks_in_effect(store.uri, d, g.identity), g)
    keep = _delta_keeper(store.uri, d, g, 0 if walks is None else walks.changed_users)
    path = _cache_path(store.uri, d, "features", g.identity)
    try:
        f = _build_calibrated(store.uri, d, g, dask, release=release, keep_stage=keep, walks=walks)
    except BaseException:
        if keep is not None and not path.exists():  # (another process's build may have kept it)
            from kolmatch.engine.delta import drop_base

            drop_base(store.uri, d, g.identity)
        raise
    _store(path, "features", f)
    return f, g


def _delta_keeper(
    uri: str, d: Path, g: MarketGraph, changed_users: int = 0
) -> Callable[[UserStage], None] | None:
    """Keep ``g`` as the base of a delta from its version (:mod:`kolmatch.engine.delta`: the
    graph now, before a build lets its user edges go; the stage by the callback returned,
    which the build calls with it), with the users changed by deltas since the last build
    that walked (``changed_users``: those of the walks it takes, else none). None if the graph
    cannot be written (said in the log: a later load is then a build)."""
    from kolmatch.engine.delta import keep_graph, keep_stage  # (it builds on this module)

    try:
        keep_graph(uri, d, g)
    except (OSError, TypeError) as exc:
        log.warning("kolmatch: cannot keep the graph for a delta in %s (%s)", d, exc)
        return None

    def keep(stage: UserStage) -> None:
        try:
            keep_stage(uri, d, g.identity, stage, changed_users)
        except OSError as exc:
            log.warning("kolmatch: cannot keep the stage for a delta in %s (%s)", d, exc)

    return keep


def updated_features(
    store: GraphStore,
    cache_dir: str | Path | None = None,
    *,
    risk_update_of: tuple[MarketFeatures, int] | None = None,
    collaboration_of: tuple[MarketFeatures, int, CollaborationWrite] | None = None,
    bookings_of: tuple[MarketFeatures, int] | None = None,
    campaigns_of: tuple[MarketFeatures, int] | None = None,
    compliance: MarketGraph | None = None,
    calibrated_of: int | None = None,
    through: int | Callable[[int], bool] | None = None,
) -> tuple[MarketFeatures, MarketGraph] | None:
    """The features one write after ``v``, updated from those at ``v``; None if they cannot be.

    The write path of a serving process: nothing is read for a collaboration (the caller
    vouches that the write made version ``v + 1``), the compliance tables for violations (the
    graph must be at ``v + 1``), and nothing is written (the caller
    caches the features in the background: 0.5 GB at m). None when the graph is not exactly one
    write past ``v`` or another calibration is in effect at ``v + 1`` (then
    :func:`load_features` builds).

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
    compliance
        With ``risk_update_of``: the :data:`~kolmatch.graph.market.COMPLIANCE_READ` tables at
        ``v``, kept by the caller. Only violations are then read
        (:data:`~kolmatch.graph.market.VIOLATIONS_READ`; a violations write changes nothing
        else), and the graph returned holds every compliance table at ``v + 1``.
    calibrated_of
        ``v`` before a recalibration's version (the change feed's kind ``calibration``): its
        features as the recalibrating process cached them; None if they are not cached.
    through
        For a write whose tables are re-read (violations on kept compliance tables, bookings,
        campaigns): the latest version the re-read may see, default ``v + 1``. A process
        applying a run of writes from the change feed passes the run's last version, the
        feed having shown that every write after ``v + 1`` up to it leaves these tables as
        the run ends them (collaborations, recalibrations, or writes of the same tables,
        applied after this one): the tables read are then labelled ``v + 1``, and the
        later writes applied on top. Or a test of the version the re-read saw (past
        ``v + 1``): whether the writes up to it are such writes (the caller applies them
        next; a run the store outgrew while it was applied). A full compliance read (no kept
        tables) must be at ``v + 1``: it would hold a later collaboration's row, which that
        write adds again.
    """
    if collaboration_of is not None:
        # nothing to read: the caller knows its write made version v + 1 (its own write, or
        # the change feed's); the graph carries only that identity
        prev, v, write = collaboration_of
        g = MarketGraph((store.graph_id(), v + 1), {}, {})
        cal = _calibration_at(store.uri, _cache_dir(cache_dir), g.identity)
        if (
            cal is None
            or cal.gmv_rate != prev.gmv_rate
            or not np.array_equal(cal.cat_mean, prev.category_gmv_mean)
            or not np.array_equal(cal.skill, prev.calibration_skill)
        ):
            return None  # another calibration is in effect at v + 1: a build
        return apply_collaboration(prev, write), g
    if calibrated_of is not None:
        # a recalibration's version: its features are the recalibrating process's, cached
        # before it announced the version (else a build, with the calibration in effect)
        g = MarketGraph((store.graph_id(), calibrated_of + 1), {}, {})
        path = _cache_path(store.uri, _cache_dir(cache_dir), "features", g.identity)
        f = _load(path, MarketFeatures)
        return None if f is None else (f, g)
    # a write that changed a few tables: they are re-read, and applied if the graph is exactly
    # that write past v (else the caller builds)
    for of, spec, apply in (
        (risk_update_of, COMPLIANCE_READ, lambda f, g: refresh_risk(g, f)),
        (bookings_of, BOOKINGS_READ, apply_bookings),
        (campaigns_of, CAMPAIGNS_READ, apply_campaigns),
    ):
        if of is not None:
            prev, v = of
            base = None
            if (
                of is risk_update_of
                and compliance is not None
                and compliance.identity == (store.graph_id(), v)
            ):
                spec, base = VIOLATIONS_READ, compliance
            g = read_market(store, spec, base=base)
            seen = g.identity[1]
            if through is None or (of is risk_update_of and base is None):
                fits = seen == v + 1
            elif callable(through):
                fits = seen == v + 1 or (seen > v + 1 and through(seen))
            else:
                fits = v + 1 <= seen <= through
            if not fits or (base is not None and g.identity[0] != base.identity[0]):
                return None  # (a reload meanwhile: the kept tables are of another graph)
            if g.identity[1] != v + 1:  # the run's later writes leave these tables as read
                g = replace(g, identity=(g.identity[0], v + 1))
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
    rebuilding. Best effort: a feed that cannot be written costs them a rebuild. The feed is
    trimmed as it grows (:class:`ChangeFeed`).
    """
    path = _feed_path(uri, graph_id, _cache_dir(cache_dir))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _feed(path).append(entry)
    except OSError as exc:
        log.warning("kolmatch: cannot write the change feed %s (%s)", path, exc)


def made(change: dict[str, Any] | None, before: int) -> TypeGuard[dict[str, Any]]:
    """Whether a change-feed entry (:func:`change_after`'s answer for ``before``) is a write
    that made version ``before + 1``.

    Examples
    --------
    >>> made({"before": 3, "state": "written", "after": 4}, 3), made(None, 3)
    (True, False)
    >>> made({"before": 3, "state": "pending", "kind": "unplaced"}, 3)
    False
    """
    return (
        change is not None
        and change.get("state") == "written"
        and change.get("after") == before + 1
    )


def change_after(
    uri: str, graph_id: str, cache_dir: str | Path | None, before: int
) -> dict[str, Any] | None:
    """The latest state of the write made on version ``before``, if the feed has it.

    Two processes may both write on ``before``; one makes ``before + 1`` and the other
    fails, finds nothing to write (``noop``) or writes later: the one ``written`` with
    ``after == before + 1`` is the answer, else the latest state of any of them. A write is
    recorded ``pending`` on the version its writer read, and ``written`` on the version its
    transaction was made on (:meth:`~kolmatch.graph.store.GraphStore.written_version`),
    later when another server wrote in between: while a write started on ``before`` or
    earlier has not ended (begun within :data:`FEED_OPEN_SECONDS`, its ``at``), a version no
    write is recorded to have made answers ``pending`` (``kind`` ``unplaced``), to be
    waited for as a pending write is. A write made on a later version than it read is
    recorded ``pending`` again there once its transaction returns (placed), and leaves no
    state on the version it read. None when the feed holds no state on ``before`` (missing,
    trimmed past it, or only a write placed later began there) and no write is open: the
    caller rebuilds from the store. Reads only what was appended since this process last
    read the feed.
    """
    feed = _feed(_feed_path(uri, graph_id, _cache_dir(cache_dir)))
    return feed.change_after(before)


class ChangeFeed:
    """One graph's change feed: a JSON-lines file appended by every process serving it.

    Appends (one ``os.write`` of a whole line) and trims take an exclusive lock on a
    sibling ``.lock`` file, never on the feed itself, which a trim replaces. Readers take no
    lock: each instance remembers where it stopped (:attr:`offset`) and the latest state of
    every write it has read, and a read parses only the bytes appended since. A feed that
    was replaced (another inode or first line: a trim, or a deleted cache) or shortened is
    read again from its start.

    An append that leaves the file over :data:`FEED_TRIM_BYTES` rewrites it (a temporary
    file, then ``os.replace``) with about its last :data:`FEED_KEEP_BYTES` of entries, every
    state of a version kept or none, after a header line naming the first version kept
    (``below``; entries on older versions appended later are ignored). A version's answer is
    the untrimmed one, or None, and a follower that fell behind the trimmed part rebuilds, as
    on a missing feed.

    Parameters
    ----------
    path
        The feed file (``changes-<store>.jsonl``); its folder must exist to append.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     feed = ChangeFeed(Path(d) / "changes.jsonl")
    ...     missing = feed.change_after(3)
    ...     feed.append({"before": 3, "state": "pending", "kind": "violations"})
    ...     feed.append({"before": 3, "state": "written", "kind": "violations", "after": 4})
    ...     print(missing, feed.change_after(3)["after"], feed.offset == feed.path.stat().st_size)
    None 4 True
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        #: Bytes read from feed files since this instance was made (what polls cost).
        self.bytes_read = 0
        self._lock = threading.Lock()  # one reader at a time per instance (its index)
        self._reset(None)

    def _reset(self, file: tuple[int, int] | None) -> None:
        self._file = file  # (device, inode) of the file read so far
        self.offset = 0  # bytes of complete lines read so far
        self._head = b""  # its first bytes: another file at a reused inode differs there
        # their lines, not parsed entries: 100k dicts kept alive cost more in garbage
        # collection (a cold read of 100k entries: 0.86 s against 0.6 s) than parsing again
        self._latest: dict[int, str] = {}  # before -> latest state
        self._made: dict[int, str] = {}  # before -> written, after == before + 1
        self._below = 0  # versions under it were trimmed (the feed's header)
        # id -> (before, started at: epoch seconds) of the writes seen pending and not ended
        # yet: one of them may land on a later version than it was started on (another server
        # wrote in between)
        self._open: dict[str, tuple[int, float]] = {}
        # id -> (before, line) of every write seen pending and not ended yet: a write that
        # ends on a later version than it began on leaves no pending line behind it
        self._pending: dict[str, tuple[int, str]] = {}

    def change_after(self, before: int) -> dict[str, Any] | None:
        """The latest state of the write made on version ``before`` (:func:`change_after`).

        Parameters
        ----------
        before
            The version the write was made on.

        Returns
        -------
        dict or None
            The entry written with ``after == before + 1`` if there is one, else the latest
            entry on ``before`` once no write started on ``before`` or earlier is still open
            (else a ``pending`` one of kind ``unplaced``); None if the feed has none
            (missing, trimmed past it, or only a write placed on a later version began
            there).
        """
        with self._lock:
            if not self._read_new():
                return None
            line = self._made.get(before)
            if line is None:
                # a write started on this version or an older one has not ended: it may be
                # the one that made ``before + 1`` (its entry says so once it ends), whatever
                # else ended on ``before`` (a repeat's noop, a failure)
                recent = time.time() - FEED_OPEN_SECONDS
                if any(b <= before and at > recent for b, at in self._open.values()):
                    return {"before": before, "state": "pending", "kind": "unplaced"}
                line = self._latest.get(before)
        return None if line is None else dict(json.loads(line))

    def _read_new(self) -> bool:
        """Index the lines appended since the last read; False if there is no feed."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            self._reset(None)
            return False
        try:
            # the descriptor holds this inode: a trim replacing the path meanwhile is seen
            # at the next read, and this one reads a whole (older) file
            st = os.fstat(fd)
            file = (st.st_dev, st.st_ino)
            if (
                file != self._file
                or st.st_size < self.offset
                or os.pread(fd, len(self._head), 0) != self._head
            ):
                self._reset(file)
            if st.st_size <= self.offset:
                return True
            data = os.pread(fd, st.st_size - self.offset, self.offset)
        finally:
            os.close(fd)
        self.bytes_read += len(data)
        end = data.rfind(b"\n") + 1  # a line still being appended is read next time
        # decoded at once (json.loads of bytes detects their encoding line by line: 2x slower)
        for line in data[:end].decode("utf-8", "replace").split("\n")[:-1]:
            self._index(line)
        if self.offset == 0 and end:
            self._head = data[: min(data.index(b"\n") + 1, _FEED_HEAD_BYTES)]
        self.offset += end
        return True

    def _index(self, line: str) -> None:
        e = _entry(line)
        if e is None:
            return
        if "before" not in e:  # a trim's header: the versions below it are gone
            self._below = e["below"]
            self._open = {k: o for k, o in self._open.items() if o[0] >= self._below}
            self._pending = {k: o for k, o in self._pending.items() if o[0] >= self._below}
            return
        before = e["before"]
        if before < self._below:  # appended after the trim that dropped its version
            return
        if "id" in e:
            began, pending = self._pending.pop(e["id"], (before, ""))
            if began != before and self._latest.get(began) == pending:
                # placed on, or ended on, a later version (another server wrote in between):
                # its version of beginning has no state of it, not a pending one for ever
                del self._latest[began]
            if e.get("state") == "pending":
                self._pending[e["id"]] = (before, line)
                if isinstance(e.get("at"), int | float):  # (a writer that says when it began)
                    self._open[e["id"]] = (before, float(e["at"]))
            else:
                self._open.pop(e["id"], None)
        self._latest[before] = line
        if made(e, before):
            self._made[before] = line

    def append(self, entry: dict[str, object]) -> None:
        """Append ``entry`` as one line, and trim the feed if it grew past its bound.

        Parameters
        ----------
        entry
            A write's state (:func:`record_change`).

        Raises
        ------
        OSError
            If the feed or its lock cannot be written.
        """
        line = (dumps(entry) + "\n").encode()
        with self._exclusive():
            # opened under the lock: a trim that replaced the file is done, this is the new one
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # ends a line a crashed writer left unfinished
                view = memoryview(line)
                while view:  # one write for a line, in practice; a short one is continued
                    view = view[os.write(fd, view) :]
                size += len(line)
            finally:
                os.close(fd)
            if size > FEED_TRIM_BYTES:
                self._trim()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """The feed's lock, held by appends and trims of every process (and thread)."""
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _trim(self) -> None:
        """Keep the entries of the versions written in about the last :data:`FEED_KEEP_BYTES`.

        Under the lock. Every entry of a version is kept, or none: the cut is at a line
        :data:`FEED_KEEP_BYTES` from the end, entries after it on a version that also has one
        before it are dropped too, and the new feed's first line says which versions are gone
        (``below``), so that readers ignore any entry of theirs appended later.
        """
        data = self.path.read_bytes()
        start = len(data) - FEED_KEEP_BYTES  # the first whole line from there on is kept
        cut = 0 if start <= 0 else data.find(b"\n", start - 1) + 1
        dropped = [_entry(line) for line in data[:cut].decode("utf-8", "replace").split("\n")]
        tail = [(line, _entry(line.decode("utf-8", "replace"))) for line in data[cut:].split(b"\n")]
        # the versions of dropped entries, and those an earlier trim's header says are gone
        gone = [e for e in dropped if e is not None]
        gone += [e for _, e in tail if e is not None and "before" not in e]  # cut at 0
        below = max((e["before"] + 1 if "before" in e else e["below"] for e in gone), default=0)
        kept = [line + b"\n" for line, e in tail if e is not None and e.get("before", -1) >= below]
        # a first line no earlier feed had: a reader that kept an offset into one (even at a
        # reused inode number) sees another file and reads this one from its start
        header = json.dumps({"trimmed": os.urandom(8).hex(), "below": below}).encode() + b"\n"
        mode = stat.S_IMODE(os.stat(self.path).st_mode)  # shared as the feed was
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), mode)
                out.write(header + b"".join(kept))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _entry(line: str) -> dict[str, Any] | None:
    """A feed line's entry (an int ``before``) or a trim's header (an int ``below``); None
    for an unfinished line or one not ours."""
    try:
        e = json.loads(line)
    except ValueError:
        return None
    if not isinstance(e, dict):
        return None
    if type(e.get("before")) is int or ("before" not in e and type(e.get("below")) is int):
        return e
    return None


_FEEDS: dict[str, ChangeFeed] = {}  # path -> the instance this process reads it with
_FEEDS_LOCK = threading.Lock()


def _feed(path: Path) -> ChangeFeed:
    """This process's :class:`ChangeFeed` of ``path`` (its read position kept between polls)."""
    key = os.path.abspath(path)
    with _FEEDS_LOCK:
        feed = _FEEDS.pop(key, None) or ChangeFeed(path)
        _FEEDS[key] = feed  # the most recently used last
        while len(_FEEDS) > CACHE_STORES:
            del _FEEDS[next(iter(_FEEDS))]
        return feed


def _feed_path(uri: str, graph_id: str, d: Path) -> Path:
    key = hashlib.sha256(f"{uri}|{graph_id}".encode()).hexdigest()
    return d / f"changes-{key[:24]}.jsonl"


def _calibration_at(uri: str, d: Path, identity: Identity) -> _StoredCalibration | None:
    """The calibration in effect at ``identity``'s version: the stored one taking effect
    latest, at or before it (files ``calibration-...-v<from>.npz``; a store's first was kept
    as ``-v0``)."""
    for since in _calibration_versions(uri, d, identity):
        cal = _load(_cache_path(uri, d, "calibration", (identity[0], since)), _StoredCalibration)
        if cal is not None:
            return cal
    return None


def _calibration_versions(uri: str, d: Path, identity: Identity) -> list[int]:
    """The versions the store's stored calibrations take effect from, at or before
    ``identity``'s, latest first."""
    return [v for v in _cached_versions(uri, d, "calibration", identity[0]) if v <= identity[1]]


def _cached_versions(uri: str, d: Path, kind: str, graph_id: str) -> list[int]:
    """The versions of the graph's ``kind`` entries in the cache folder ``d``, latest first."""
    stem = _cache_path(uri, d, kind, (graph_id, 0)).name.rsplit("-v", 1)[0]
    found: list[int] = []
    for path in d.glob(f"{stem}-v*.npz"):
        with contextlib.suppress(ValueError):
            found.append(int(path.name[len(stem) + 2 : -len(".npz")]))
    return sorted(found, reverse=True)


def _drift(cal: _StoredCalibration, promotions: int) -> float:
    """Change in the collaborations on record since ``cal`` was measured, as a share."""
    return abs(promotions - cal.promotions) / max(cal.promotions, 1)


def recalibrate_share() -> float:
    """The share of change past which a serving process recalibrates:
    :data:`RECALIBRATE_SHARE_ENV` if set, else :data:`RECALIBRATE_SHARE`.

    Returns
    -------
    float
        Above 0; ``inf`` never recalibrates.

    Raises
    ------
    BadArgument
        If the variable is not a number above 0.
    """
    text = os.environ.get(RECALIBRATE_SHARE_ENV)
    if text is None or not text.strip():
        return RECALIBRATE_SHARE
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not share > 0:
        raise BadArgument(RECALIBRATE_SHARE_ENV, f"must be a number above 0 (or inf), got {text!r}")
    return share


def calibration_drift(
    uri: str, identity: Identity, cache_dir: str | Path | None, promotions: int
) -> float | None:
    """How far the collaborations on record (``promotions``) have moved since the calibration
    in effect at ``identity`` was measured, as a share; None if none is stored.

    A serving process recalibrates past :func:`recalibrate_share`.

    Parameters
    ----------
    uri, identity
        The store's URI and the graph version asked about.
    cache_dir
        As :func:`load_features`.
    promotions
        The collaborations on record at that version.

    Returns
    -------
    float or None
    """
    d = _cache_dir(cache_dir)
    for since in _calibration_versions(uri, d, identity):
        path = _cache_path(uri, d, "calibration", (identity[0], since))
        with contextlib.suppress(OSError):
            st = path.stat()  # not its mtime: every _load of it touches that
            key = (str(path), st.st_ino, st.st_size)
            measured = _MEASURED_AT.get(key)
            if measured is None:
                cal = _load(path, _StoredCalibration)
                if cal is None:
                    continue
                measured = _MEASURED_AT[key] = cal.promotions
            return abs(promotions - measured) / max(measured, 1)
    return None


#: (calibration file, inode, size) -> the collaborations on record when it was measured: what
#: :func:`calibration_drift` asks at every refresh, without loading the file each time.
_MEASURED_AT: dict[tuple[str, int, int], int] = {}


def _stored_calibration(f: MarketFeatures, g: MarketGraph) -> _StoredCalibration:
    c = f.calibration
    cats = np.asarray(g.node("Category").ids).astype(object)
    promotions = len(g.edge("PROMOTED", "Talent").src)
    return _StoredCalibration(
        c.gmv_rate,
        c.cat_mean,
        c.promoted_categories,
        f.talent_ids,
        cats,
        promotions,
        g.identity[1],
        c.skill,
        c.track,
        c.promotions,
        f.product_ids,
    )


@dataclass(frozen=True)
class Measured:
    """A calibration measured on the graph at ``identity``, with the features built with it
    (:func:`measure_calibration`); the graph read is not kept (gigabytes at m)."""

    features: MarketFeatures
    identity: Identity
    record: _StoredCalibration


def measure_calibration(store: GraphStore, *, dask: str | None = None) -> Measured:
    """A full build of the store's current version with its calibration measured afresh.

    Nothing is stored: the caller (``EngineService``) brings the features up to the store's
    version (:func:`caught_up`) and makes the calibration take effect from a version of its
    own (:class:`StagedRecalibration`). The read holds one snapshot without blocking writers
    (SQLite's WAL), so writes go on meanwhile; at m this is a build's minutes of CPU.

    Parameters
    ----------
    store
        Any GraphStore.
    dask
        As :func:`load_features`.

    Returns
    -------
    Measured
    """
    g = read_market(store, FULL_READ)
    f = _build(g, dask)
    return Measured(f, g.identity, _stored_calibration(f, g))


def write_measured(m: Measured, folder: Path) -> dict[str, object]:
    """Write ``m`` into ``folder`` (data-only files); what :func:`read_measured` takes."""
    files: dict[str, object] = {"graph_id": m.identity[0], "version": m.identity[1]}
    for key, value in (("features", m.features), ("record", m.record)):
        with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".tmp") as out:
            files[key] = out.name
        write_arrays(Path(str(files[key])), value, version=CACHE_FORMAT)
    return files


def read_measured(files: dict[str, Any]) -> Measured:
    """What :func:`write_measured` wrote; its files are removed."""
    try:
        features = read_arrays(Path(files["features"]), MarketFeatures, version=CACHE_FORMAT)
        record = read_arrays(Path(files["record"]), _StoredCalibration, version=CACHE_FORMAT)
    finally:
        for key in ("features", "record"):
            Path(files[key]).unlink(missing_ok=True)
    return Measured(features, (str(files["graph_id"]), int(files["version"])), record)


def caught_up(
    store: GraphStore,
    cache_dir: str | Path | None,
    f: MarketFeatures,
    v: int,
    *,
    graph: MarketGraph | None = None,
) -> tuple[MarketFeatures, int] | None:
    """``f`` (features of version ``v``) brought to the store's version by the change feed.

    Recorded collaborations are applied in order under ``f``'s calibration
    (:func:`~kolmatch.matching.incremental.apply_collaboration`); after them, the compliance,
    booking and campaign tables are read once at the store's version if a write since ``v``
    changed them (each re-derivation equals a full build with the same calibration). None
    when the feed does not have every write since ``v`` as one applied so, or the tables read
    are of a later version (a write meanwhile): the caller tries again or builds.

    Parameters
    ----------
    store, cache_dir
        As :func:`load_features`.
    f, v
        Features and the version they are of.
    graph
        The tables the caller read at the version to bring ``f`` to (its identity; the
        compliance, booking and campaign tables, e.g. :data:`CATALOG_READ` |
        :data:`BOOKINGS_READ`): re-reads come from it, and writes after it are left out.
        None: to the store's version, re-reading what is needed.

    Returns
    -------
    (MarketFeatures, int) or None
        The features and the version they are of.
    """
    uri, graph_id = store.uri, store.graph_id()
    version = store.version() if graph is None else graph.identity[1]
    if graph is not None and (graph.identity[0] != graph_id or version < v):
        return None
    d = _cache_dir(cache_dir)
    rereads: set[str] = set()
    at = v
    while at < version:
        change = change_after(uri, graph_id, d, at)
        if not made(change, at):
            return None
        kind = change.get("kind")
        if kind == "collaboration":
            f = apply_collaboration(f, CollaborationWrite(**change["write"]))
        elif kind in REREAD_KINDS:
            rereads.add(str(kind))
        else:  # another recalibration, a bulk load: not this calibration's to apply
            return None
        at += 1
    steps: tuple[tuple[str, ReadSpec, Callable[[MarketFeatures, MarketGraph], Any]], ...] = (
        ("violations", COMPLIANCE_READ, lambda f, g: refresh_risk(g, f)),
        ("bookings", BOOKINGS_READ, apply_bookings),
        ("campaigns", CAMPAIGNS_READ, apply_campaigns),
    )
    for kind, spec, apply in steps:
        if kind in rereads:
            if graph is None:
                g = read_market(store, spec)
            else:
                try:
                    g = graph.restricted(spec)
                except StoreError:  # the caller's read lacks them
                    return None
            if g.identity != (graph_id, version):
                return None
            try:
                f = apply(f, g)
            except StoreError:
                return None
    return f, version


def feed_pending(uri: str, graph_id: str, cache_dir: str | Path | None, v: int, to: int) -> bool:
    """Whether the change feed would bring features of version ``v`` to ``to`` (as
    :func:`caught_up` does) but for a write its process has not finished recording: one
    ``pending`` entry, every entry before it a written write of a kind it applies. False when
    a bulk change, a recalibration or a gap is on the way (a build is needed, not a wait).
    """
    d = _cache_dir(cache_dir)
    at = v
    while at < to:
        change = change_after(uri, graph_id, d, at)
        if change is None:
            return False
        if change.get("state") == "pending":
            return change.get("kind") in (*WRITE_KINDS, "unplaced")
        if not made(change, at):
            return False
        if change.get("kind") not in WRITE_KINDS:
            return False
        at += 1
    return False


@contextlib.contextmanager
def recalibrating(uri: str, graph_id: str, cache_dir: str | Path | None) -> Iterator[bool]:
    """Whether this process may recalibrate the graph now.

    Parameters
    ----------
    uri, graph_id
        The store's URI and graph id.
    cache_dir
        As :func:`load_features`.

    Yields
    ------
    bool
        True while it holds the graph's recalibration lock (a file lock beside the cache,
        released when the process dies), False if another process holds it (it is measuring
        one; a second would be thrown away).
    """
    with _locked_now("recalibrating", uri, graph_id, cache_dir) as held:
        yield held


@contextlib.contextmanager
def rebuilding_now(uri: str, graph_id: str, cache_dir: str | Path | None) -> Iterator[bool]:
    """Whether this process holds the graph's rebuild lock (:func:`rebuilding`), taken now if
    no other holds it: a load that will bring the cached features to its version by a delta
    holds it across its write, so that followers wait for those features rather than build.

    Parameters
    ----------
    uri, graph_id, cache_dir
        As :func:`recalibrating`.

    Yields
    ------
    bool
        True while it holds the lock, False if another process holds it (it is building).
    """
    with _locked_now("rebuilding", uri, graph_id, cache_dir) as held:
        yield held


@contextlib.contextmanager
def _locked_now(name: str, uri: str, graph_id: str, cache_dir: str | Path | None) -> Iterator[bool]:
    """The graph's ``name`` lock taken without waiting: whether it is held."""
    fd = _graph_lock_file(name, uri, graph_id, cache_dir)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def rebuilding(
    uri: str, graph_id: str, cache_dir: str | Path | None, stop: threading.Event
) -> Iterator[None]:
    """Hold the graph's rebuild lock: one process rebuilds after a bulk load, the others wait
    for it and then load what it cached (two builds at once would halve each one's cores).

    Parameters
    ----------
    uri, graph_id, cache_dir
        As :func:`recalibrating`.
    stop
        Waiting ends with :class:`~kolmatch.errors.Cancelled` once it is set.

    Raises
    ------
    Cancelled
        If ``stop`` was set while another process held the lock.
    """
    fd = _graph_lock_file("rebuilding", uri, graph_id, cache_dir)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop.wait(0.2):
                    raise Cancelled("the service closed while another process rebuilt") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _graph_lock_file(name: str, uri: str, graph_id: str, cache_dir: str | Path | None) -> int:
    """An open descriptor of the graph's ``name`` lock file beside the cache (a lock taken on
    it is released when the process dies)."""
    d = _cache_dir(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{uri}|{graph_id}".encode()).hexdigest()
    return os.open(d / f"{name}-{key[:24]}.lock", os.O_RDWR | os.O_CREAT, 0o666)


def latest_features(
    uri: str, graph_id: str, cache_dir: str | Path | None = None
) -> tuple[MarketFeatures, int] | None:
    """The graph's cached features of the latest version the cache holds, and that version.

    The cache keeps one version per store (the latest written); the features of a later
    version follow from them by the change feed (:func:`caught_up`) unless a bulk load or
    another calibration came between. None if none is cached (or it is unreadable).
    """
    d = _cache_dir(cache_dir)
    for v in _cached_versions(uri, d, "features", graph_id):
        f = _load(_cache_path(uri, d, "features", (graph_id, v)), MarketFeatures)
        if f is not None:
            return f, v
    return None


class StagedRecalibration:
    """A recalibration's files, written beside the cache under names no reader looks for, then
    put in place at once (:meth:`commit`) once the version they take effect from exists.

    The features (0.5 GB at m) are written before the caller takes its write lock; a
    version's cache entry never holds features of another calibration, even for a moment.

    Parameters
    ----------
    uri, cache_dir
        The store's URI and the cache folder.
    measured
        The calibration (:func:`measure_calibration`).
    features, version
        Its features brought to ``version`` (:func:`caught_up`).

    Raises
    ------
    OSError
        If they cannot be written (nothing is left behind).
    """

    def __init__(
        self,
        uri: str,
        cache_dir: str | Path | None,
        measured: Measured,
        features: MarketFeatures,
        version: int,
    ) -> None:
        self.uri, self.version, self.features = uri, version, features
        self._graph_id = measured.identity[0]
        self._dir = _cache_dir(cache_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._files: list[Path] = []
        try:
            for value in (measured.record, features):
                with tempfile.NamedTemporaryFile(dir=self._dir, delete=False, suffix=".tmp") as t:
                    self._files.append(Path(t.name))
                write_arrays(self._files[-1], value, version=CACHE_FORMAT)
        except BaseException:
            self.discard()
            raise

    def commit(self, after: int) -> None:
        """Put the calibration in effect from ``after`` and the features in place as that
        version's (``after`` must be ``version + 1``, made by the caller).

        Raises
        ------
        OSError
            If the calibration cannot be put in place (then it is not in effect).
        """
        calibration, features = self._files
        d, ident = self._dir, (self._graph_id, after)
        _evict(d, "calibration", _cache_path(self.uri, d, "calibration", ident), CALIBRATIONS_KEPT)
        os.replace(calibration, _cache_path(self.uri, d, "calibration", ident))
        try:
            _evict(d, "features", _cache_path(self.uri, d, "features", ident))
            os.replace(features, _cache_path(self.uri, d, "features", ident))
        except OSError as exc:  # followers build that version instead, with the calibration
            log.warning("kolmatch: cannot cache the recalibrated features (%s)", exc)
        self._files = []

    def discard(self) -> None:
        """Remove the files: nothing takes effect."""
        for path in self._files:
            path.unlink(missing_ok=True)
        self._files = []


def _build(
    g: MarketGraph,
    dask: str | None,
    calibration: Calibration | None = None,
    *,
    release: bool = False,
    keep_stage: Callable[[UserStage], None] | None = None,
    walks: KeptWalks | None = None,
) -> MarketFeatures:
    """:func:`build_features`, its partitions on the Dask cluster ``dask`` names, if any; the
    build's freed temporaries are then handed back (:mod:`kolmatch.memory`).
    ``release``: ``g``'s engagement and follow edges are dropped once read (the caller
    needs them no more: ``release_user_edges``); ``keep_stage`` as :func:`build_features`;
    ``walks``: their walks and date taken as given (else walked and measured)."""
    address = dask_address(dask)
    given: dict[str, Any] = {} if walks is None else {"walks": walks.walks, "today": walks.today}
    try:
        if address is None:  # in process: build_features' own default
            return build_features(
                g,
                calibration=calibration,
                release_user_edges=release,
                keep_stage=keep_stage,
                **given,
            )
        with partitions_on(address, argument=dask_argument(dask)) as partitions:
            return build_features(
                g,
                calibration=calibration,
                partitions=partitions,
                release_user_edges=release,
                keep_stage=keep_stage,
                **given,
            )
    finally:
        release_freed_memory()


def _build_calibrated(
    uri: str,
    d: Path,
    g: MarketGraph,
    dask: str | None,
    *,
    release: bool = False,
    keep_stage: Callable[[UserStage], None] | None = None,
    walks: KeptWalks | None = None,
) -> MarketFeatures:
    """A full build with the calibration in effect at the graph's version if it fits its
    talents, categories and products, else with a fresh one (then stored, in effect from it);
    ``release`` and ``keep_stage`` as :func:`_build`; ``walks`` (:func:`walks_in_effect`,
    already of the graph's talents and categories: :func:`_fitting`) taken as given with
    their date."""
    cal = _calibration_at(uri, d, g.identity)
    if cal is not None and cal.fits(g):
        frozen = cal.calibration
        return _build(g, dask, frozen, release=release, keep_stage=keep_stage, walks=walks)
    f = _build(g, dask, release=release, keep_stage=keep_stage, walks=walks)
    path = _cache_path(uri, d, "calibration", g.identity)
    _store(path, "calibration", _stored_calibration(f, g), keep=CALIBRATIONS_KEPT)
    return f


def _fitting(walks: KeptWalks | None, g: MarketGraph) -> KeptWalks | None:
    """``walks`` where they are of ``g``'s talents and categories (a bulk load adding talents
    leaves them behind), else None."""
    if walks is None:
        return None
    talents, cats = g.node("Talent").ids, np.asarray(g.node("Category").ids).astype(str)
    fit = np.array_equal(walks.talent_ids, talents) and np.array_equal(walks.category_ids, cats)
    return walks if fit else None


def _from_latest(
    store: GraphStore, d: Path, extra: ReadSpec
) -> tuple[MarketFeatures, MarketGraph] | None:
    """:func:`load_features` on a miss: the latest cached version's features brought to the
    store's by the change feed (:func:`caught_up`, from one read of ``extra`` and the tables a
    write re-derives), cached as its; None where the feed cannot (then a full build). A
    serving process caches its features only once writes pause (kolmatch/engine/service.py),
    so a restart under a stream of writes finds an older version cached: at m this is
    seconds rather than a build of minutes. Read again while a write is still being recorded."""
    try:
        graph_id = store.graph_id()
    except StoreError:
        return None
    base = latest_features(store.uri, graph_id, d)
    if base is None:
        return None
    for _ in range(3):
        g = read_market(store, extra | COMPLIANCE_READ | BOOKINGS_READ | CAMPAIGNS_READ)
        try:
            up = caught_up(store, d, *base, graph=g)
        except (KolmatchError, TypeError, KeyError, ValueError) as exc:
            # a feed entry this version cannot apply (another kolmatch's, a talent unknown
            # to the cached features): built instead
            log.warning("kolmatch: cannot bring cached features up by the feed: %s", exc)
            return None
        if up is not None and up[1] == g.identity[1]:
            _store(_cache_path(store.uri, d, "features", g.identity), "features", up[0])
            return up[0], g
        if not feed_pending(store.uri, graph_id, d, base[1], store.version()):
            return None  # the feed lacks a write: a full build
        time.sleep(0.1)  # a write its process is still recording
    return None


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
    cancel: Cancel | None = None,
    patch_from: tuple[MerchantRankings, MarketFeatures] | None = None,
    patched: Callable[[], None] | None = None,
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
    cancel
        Stops a ranking in this process between merchants (:class:`~kolmatch.errors.Cancelled`;
        nothing is cached); a ranking on Dask runs to its end.
    patch_from
        Exact rankings of earlier features and those features, from which only talents' own
        records moved: the lists are patched for them
        (:func:`~kolmatch.matching.score.rankings_after_collaboration`; ``patched`` is called
        then), every merchant ranked if that declines, fails, or leaves a list worn.
    """

    def rank() -> MerchantRankings:
        if patch_from is not None:
            try:
                r = rankings_after_collaboration(*patch_from, f, cancel=cancel)
            except Cancelled:
                raise
            except Exception:  # a bug costs a ranking, not the version's lists
                log.warning("kolmatch: patching the rankings failed; ranking", exc_info=True)
                r = None
            if r is not None and not rankings_worn(r):
                if patched is not None:
                    patched()
                return r
        address = dask_address(dask)
        if address is None:
            return rank_merchants(f, cancel=cancel)
        with partitions_on(address, argument=dask_argument(dask)) as partitions:
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
        value = read_arrays(path, cls, version=CACHE_FORMAT, mapped=_mapped())
    except UnreadableArrays as exc:
        log.info("kolmatch: rebuilding %s (%s)", path.name, exc)
        return None  # unreadable, or of another format: rebuilt by the caller
    with contextlib.suppress(OSError):
        os.utime(path)  # used now: the last store to be evicted (_store keeps the recent)
    return value


def _mapped() -> bool:
    """Whether cache entries are read memory-mapped (:func:`~kolmatch.engine.arrays.read_arrays`):
    yes unless ``KOLMATCH_CACHE_MAP=0`` (a file system where mapping is slow or unsafe, e.g.
    NFS, which can pull a file from under a mapping)."""
    return os.environ.get("KOLMATCH_CACHE_MAP", "1").strip() != "0"


def _evict(d: Path, kind: str, keep: Path, versions: int = 1) -> None:
    """Drop the ``kind`` entries of ``keep``'s store but its ``versions`` latest (``keep``
    counted, and never dropped), those of another format or naming (never read again), and
    those of all but the :data:`CACHE_STORES` most recently used stores, ``keep``'s counted."""
    prefix = f"{kind}-{CACHE_FORMAT}-"
    mine = keep.name.rsplit("-v", 1)[0] + "-v"
    for tmp in d.glob("tmp*.tmp"):  # a killed process's half-written or unread entry
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                tmp.unlink()
    others: dict[Path, float] = {}
    own: list[tuple[int, Path]] = []
    for old in [*d.glob(f"{kind}-*.npz"), *d.glob(f"{kind}-*.pkl")]:
        if old == keep:
            continue
        if old.name.startswith(mine) and old.suffix == ".npz":
            with contextlib.suppress(ValueError):
                own.append((int(old.name[len(mine) : -len(".npz")]), old))
                continue
        if not old.name.startswith(prefix) or old.suffix != ".npz" or old.name.startswith(mine):
            old.unlink(missing_ok=True)
            continue
        with contextlib.suppress(OSError):
            others[old] = old.stat().st_mtime
    stores: dict[str, float] = {}  # another store's entries go together (calibrations: two)
    for old, used in others.items():
        key = old.name.rsplit("-v", 1)[0]
        stores[key] = max(stores.get(key, 0.0), used)
    kept = set(sorted(stores, key=stores.__getitem__, reverse=True)[: CACHE_STORES - 1])
    for old in others:
        if old.name.rsplit("-v", 1)[0] not in kept:
            old.unlink(missing_ok=True)
    # the store's newest ``versions``, ``keep`` never dropped: a process that cached an older
    # version after another cached a newer one (both serving) does not drop the newer
    with contextlib.suppress(ValueError):
        own.append((int(keep.name[len(mine) : -len(".npz")]), keep))
    for _, old in sorted(own, reverse=True)[versions:]:
        if old != keep:
            old.unlink(missing_ok=True)


def _store(path: Path, kind: str, value: object, *, keep: int = 1, strict: bool = False) -> None:
    """Write a cache entry atomically, the store's older ones dropped but the ``keep`` latest
    (this one counted). ``strict``: an OSError is raised, not logged."""
    d = path.parent
    tmp: str | None = None
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, delete=False, suffix=".tmp") as out:
            tmp = out.name
        write_arrays(Path(tmp), value, version=CACHE_FORMAT)
        os.replace(tmp, path)
        # after, not before: the store's last entry stays readable while this one is written
        # (0.5 GB at m: seconds in which another process found none, and built, and a process
        # killed meanwhile left none); files still mapped keep their disk space anyway
        _evict(d, kind, path, keep)
    except OSError as exc:
        # a read-only or full cache folder costs speed, not correctness: say so, leave no debris
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if strict:
            raise
        log.warning("kolmatch: cannot write the %s cache in %s (%s); not cached", kind, d, exc)
