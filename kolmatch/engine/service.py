"""The engine: one snapshot of market features and catalogue, read by every request.

Queries never touch the store: they read an immutable :class:`Snapshot` (features plus the
names and collaboration history the schema shows), swapped atomically when the graph
changes. Mutations write through the store, then refresh; a refresh that fails leaves the
previous snapshot serving. Every write is recorded in the audit log
(:class:`kolmatch.engine.audit.AuditLog`): who, when, what, the state before and after.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kolmatch import progress
from kolmatch.engine.apart import build_features_apart, measure_calibration_apart
from kolmatch.engine.audit import AuditLog, audit_path
from kolmatch.engine.cache import (
    WRITE_KINDS,
    Identity,
    StagedRecalibration,
    cached_rankings,
    calibration_drift,
    caught_up,
    change_after,
    feed_pending,
    latest_features,
    load_features,
    made,
    rebuilding,
    recalibrate_share,
    recalibrating,
    record_change,
    store_features,
    stored_rankings,
    updated_features,
)
from kolmatch.engine.campaigns import CampaignBrief, briefs_of, checked_brief
from kolmatch.engine.write_rules import (
    checked_amount,
    checked_count,
    checked_id,
    checked_past_day,
    checked_text,
)
from kolmatch.errors import (
    BadArgument,
    Cancel,
    Cancelled,
    Conflict,
    IncompleteLoad,
    KolmatchError,
    NotEligible,
    Rebuilding,
    StoreError,
    UnknownId,
)
from kolmatch.graph.booking import Booking, check_window, iso_day
from kolmatch.graph.market import (
    BOOKINGS_READ,
    CATALOG_READ,
    COMPLIANCE_READ,
    FACT_READ,
    GROWTH_READ,
    MarketGraph,
    ReadSpec,
    read_market,
)
from kolmatch.graph.model import rel_spec
from kolmatch.graph.store import GraphStore, NodeBatch, RelBatch
from kolmatch.matching.eligibility import require_merchant, talent_eligibility
from kolmatch.matching.fact import FactInputs, FactSplit, fact_inputs, fact_split
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.growth import (
    GrowthReport,
    bookings,
    growth_report,
    monthly_gmv,
    slot_gmv,
)
from kolmatch.matching.incremental import CollaborationWrite
from kolmatch.matching.score import (
    MerchantRankings,
    PatchedRankings,
    rankings_after_risk,
    rankings_worn,
)
from kolmatch.memory import settle_objects

__all__ = [
    "FOLLOW_POLL_SECONDS",
    "Collaboration",
    "EngineService",
    "Snapshot",
    "dates_beside_campaign",
]

log = logging.getLogger("kolmatch.engine")

#: How often a serving process asks the store whether another process wrote (:meth:`follow`).
FOLLOW_POLL_SECONDS = 0.25
#: How long a follower waits for a write the change feed shows pending before rebuilding.
FEED_WAIT_SECONDS = 5.0
#: Every change-feed kind :meth:`EngineService._catch_up` applies without a rebuild.
_APPLIED = ("calibration", *WRITE_KINDS)
#: How long a version must stay the served one before every merchant is ranked for it in the
#: background (and a ranking is stopped once a newer version is to be ranked). Ranking m's 5,000
#: merchants takes ~30 s of both cores, and any write changes every merchant's scores (each
#: is standardised over all talents): under a stream of writes a ranking would never be
#: served, and took the cores the live match lists needed (bench/consistency.py).
RANK_QUIET_SECONDS = 1.0
#: Each ranking stopped in a row for a newer version doubles the quiet time the next one waits
#: for, up to this; a ranking that completes brings it back to :data:`RANK_QUIET_SECONDS`.
#: Under a write a second at m each quiet second started a ranking (and the writer's cache of
#: its features, 0.8 s of CPU) that the next write threw away: CPU the live lists needed.
RANK_QUIET_MAX_SECONDS = 60.0

#: How long a serving process waits before measuring a calibration again after one it gave up
#: (the feed could not bring it up, writes kept coming, an error): a measurement is a full build.
RECALIBRATE_RETRY_SECONDS = 60.0
#: How long a serving process waits before starting again a rebuild after a bulk change that
#: failed (a child that died, a store that did not answer); doubled at each failure in a row,
#: up to :data:`REBUILD_RETRY_MAX_SECONDS`.
REBUILD_RETRY_SECONDS = 10.0
REBUILD_RETRY_MAX_SECONDS = 300.0
#: Failed child builds in a row after which a serving process rebuilds in process, under its
#: write lock, as it did before builds moved to a child (a child that cannot run at all: its
#: memory, its environment): slower for writes, but the new version is served.
REBUILD_CHILD_FAILURES = 2
#: Reads of the catalog a rebuild tries before giving up for :data:`REBUILD_RETRY_SECONDS`
#: (a bulk load landing again meanwhile).
REBUILD_ATTEMPTS = 3
#: The fields of a collaboration a caller sends, compared when its id is sent again.
COLLABORATION_FIELDS = ("talent", "product", "gmv", "orders", "fee", "time", "campaign")
#: What a collaboration is written as: its amounts and counts are checked against these fields.
_PROMOTED = rel_spec("PROMOTED")


@dataclass(frozen=True)
class Collaboration:
    """One past collaboration of a talent."""

    collab_id: str
    talent: str
    product: str
    merchant: str | None
    gmv: float | None  # None: not known (a sponsored post, a converted dataset)
    orders: int | None
    fee: float | None
    time: str
    campaign: str | None


@dataclass(frozen=True)
class Snapshot:
    """Everything a query reads, consistent with one graph version."""

    version: int
    features: MarketFeatures
    # every merchant's default ranking, so match lists are lookups; None while it is being
    # computed after a write (match lists are then computed live: the same answers, tested)
    rankings: MerchantRankings | None
    talent_names: dict[str, str]
    talent_region: dict[str, str | None]
    merchant_names: dict[str, str]
    agency_names: dict[str, str]
    agency_roster: dict[str, list[str]]
    history: dict[str, list[Collaboration]]  # by talent, newest first
    product_merchant: dict[str, str | None]  # every product and the merchant selling it
    violation_ids: set[str]
    collaborations: dict[str, Collaboration] = field(default_factory=dict)  # by collab_id
    campaigns: dict[str, CampaignBrief] = field(default_factory=dict)  # by id, in date order
    # the compliance tables at this version (COMPLIANCE_READ, no columns but violations'):
    # a write of violations then reads the violations alone; None when not kept
    compliance: MarketGraph | None = None
    graph_id: str = ""  # the graph it is of (a graph loaded anew at the URI has another)
    # the last exact rankings before this version and the features they are of, where only
    # talents' own records (collaborations, violations) moved since: what a ranking of this
    # version patches (rankings_after_collaboration) rather than ranks every merchant anew
    ranked_before: tuple[MerchantRankings, MarketFeatures] | None = None
    # ranked_before's lists read as this version's, each patched when first asked for: what
    # match lists read until the rankings of this version are in
    patched: PatchedRankings | None = None

    @property
    def lists(self) -> MerchantRankings | PatchedRankings | None:
        """What a default match list reads: the rankings, else the patched ones, else None
        (ranked live)."""
        return self.rankings if self.rankings is not None else self.patched


@dataclass(frozen=True)
class TalentsBooked:
    """What :meth:`EngineService.book_talents` did."""

    snapshot: Snapshot
    booking_ids: list[str]  # one per talent, in order
    written: list[str]  # those this request wrote (none for a repeat)
    start: str
    end: str


class EngineService:
    """Owns the store and the current snapshot; thread-safe.

    Parameters
    ----------
    store
        The graph store (injected; closed by the caller).
    cache_dir
        Where feature caches live (:func:`kolmatch.engine.cache.load_features`).
    audit
        The audit log of writes; default :func:`kolmatch.engine.audit.audit_path` (the
        file ``KOLMATCH_AUDIT_LOG``, else ``audit.jsonl`` beside the cache folder).
    settle
        A serving process's choice: after each snapshot built anew (not after a write's
        update), exempt its objects from the
        garbage collector's walks (:func:`kolmatch.memory.settle_objects`; a flag at m
        spent ~0.1 s in them). Off by default: a library should not change its host
        process's collector (``gc.get_referrers`` no longer sees frozen objects).
    """

    def __init__(
        self,
        store: GraphStore,
        cache_dir: str | Path | None = None,
        *,
        audit: AuditLog | None = None,
        settle: bool = False,
    ) -> None:
        self._store = store
        self._cache_dir = cache_dir
        self._settle = settle
        self._audit = audit or AuditLog(audit_path(cache_dir))
        # held by every write and refresh; close() waits on it (re-entrant: a write refreshes)
        self._write_lock = threading.RLock()
        self._ranking_wanted: (
            tuple[
                int, Identity, MarketFeatures, bool, tuple[MerchantRankings, MarketFeatures] | None
            ]
            | None
        ) = None
        self._ranking_event = threading.Event()
        self._ranker: threading.Thread | None = None
        self._ranking: tuple[int, Cancel] | None = None  # the version being ranked
        self.rankings_stopped = 0  # background rankings stopped for a newer version
        self._rankings_stopped_in_a_row = 0  # (the quiet time's backoff)
        self._ranking_stopped_at = 0.0  # monotonic time the last one was stopped
        recalibrate_share()  # a bad KOLMATCH_RECALIBRATE_SHARE is refused at start
        self._recalibrator: threading.Thread | None = None
        self.recalibrations = 0  # versions this process made to bring in a new calibration
        self.rankings_patched = 0  # rankings made by patching the lists of the last ones
        # set to stop the calibration being measured: at close, and when a bulk change lands
        self._measuring_stop = threading.Event()
        self.recalibrations_stopped = 0  # measurements stopped by a bulk change
        self._retry_at = 0.0  # monotonic time before which no recalibration starts
        self._snapshot_lock = threading.Lock()  # swaps of the served snapshot
        self._rebuilder: threading.Thread | None = None  # after a bulk change (_rebuild)
        self._rebuild_since = 0.0  # monotonic time the running rebuild started
        self._rebuild_retry_at = 0.0
        self._rebuild_failures = 0  # in a row
        self._rebuild_error = ""  # the last failure's, for /healthz
        self.rebuilds = 0  # bulk changes this process caught up with off its write lock
        self.rebuilds_built = 0  # ... of which it built the features itself (in a child)
        # the read, the build with its calibration, the ranking: minutes at m on a cold cache
        with progress.task("starting the engine"):
            self._snapshot = self._build(later=False)
        if settle:
            settle_objects()
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self._feed_waits: dict[int, float] = {}  # version -> when a pending write was seen
        # the FACT split's live rooms and campaign lift, fitted once per graph version
        self._fact: tuple[int, FactInputs] | None = None

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def store(self) -> GraphStore:
        return self._store

    @property
    def audit(self) -> AuditLog:
        return self._audit

    def refresh(
        self,
        *,
        violations_only_since: int | None = None,
        collaboration_since: tuple[int, CollaborationWrite, str] | None = None,
        bookings_since: int | None = None,
        campaigns_since: int | None = None,
        calibrated_since: int | None = None,
        actor: str | None = None,
        persist: bool = True,
        through: int | Callable[[int], bool] | None = None,
        or_build: bool = True,
    ) -> Snapshot:
        """Rebuild the snapshot from the store; on failure the old one keeps serving.

        Parameters
        ----------
        violations_only_since
            The graph version before a write that touched only violations. If the serving
            snapshot is of that version and the graph is exactly one write past it (nobody else
            wrote in between, nor while it is read), the features keep everything but
            compliance: the violations alone are read, onto the compliance tables the
            snapshot keeps (:func:`kolmatch.engine.cache.updated_features`; ~0.3 s at m).
            Otherwise the whole graph is read.
        collaboration_since
            ``(v, write, collab_id)``: the graph version before a write that recorded one
            collaboration.
            If the serving snapshot is of ``v`` and the graph is exactly one write past it, the
            features are updated for that talent alone
            (:func:`kolmatch.matching.incremental.apply_collaboration`, frozen calibration):
            ~1 ms instead of a full build (:func:`kolmatch.engine.cache.load_features`).
        bookings_since
            The graph version before a write that made or released bookings: if the serving
            snapshot is of it and the graph is one write past it, only the booking table is
            re-read (:func:`kolmatch.matching.incremental.apply_bookings`).
        campaigns_since
            The same for a write that created or joined campaigns (their tables re-read:
            :func:`kolmatch.matching.incremental.apply_campaigns`).
        calibrated_since
            The version before another process's recalibration (:meth:`_recalibrate`): if the
            serving snapshot is of it, the features it cached for its version are loaded and
            the rest of the snapshot kept (that version changed nothing in the graph).
        actor
            Who asked for the refresh (``merchant:m3``, ``internal``): given, the refresh is
            recorded in the audit log with the versions before and after.
        persist
            Cache features updated by one write (in the background). The writing process
            does; a process applying another's write from the change feed does not.
        through
            With ``violations_only_since``, ``bookings_since`` or ``campaigns_since``: the
            store may be past the write, up to this version, by writes the change feed shows
            leave the re-read tables as they end up (:func:`~kolmatch.engine.cache.
            updated_features`), applied next by the caller (:meth:`_catch_up`).
        or_build
            False: where the write cannot be applied as an update, nothing is built and the
            snapshot stays as it was (the caller, :meth:`_catch_up`, decides: a poll later,
            or a rebuild off the write lock), rather than a full build under the write lock.

        Raises
        ------
        StoreError
            If the store cannot be read (the previous snapshot is still served).
        """
        with self._write_lock:
            prev, since = self._snapshot, violations_only_since
            reuse = (prev.features, since) if since is not None and prev.version == since else None
            collab, collab_id = None, ""
            if collaboration_since is not None and prev.version == collaboration_since[0]:
                v, write, collab_id = collaboration_since
                collab = (prev.features, v, write)
            booked = (
                (prev.features, bookings_since)
                if bookings_since is not None and prev.version == bookings_since
                else None
            )
            camps = (
                (prev.features, campaigns_since)
                if campaigns_since is not None and prev.version == campaigns_since
                else None
            )
            calibrated = calibrated_since if prev.version == calibrated_since else None
            entry: dict[str, Any] = {
                "actor": actor,
                "action": "refreshFeatures",
                "target": None,
                "input": {},
            }
            try:
                updated = self._updated(
                    reuse, collab, collab_id, persist, booked, camps, calibrated, through
                )
                if updated is None and not or_build:
                    return prev
                snap = updated or self._build(reuse, collab)
            except KolmatchError as exc:
                if actor is not None:
                    self.record_refusal(entry, exc)
                raise
            if updated is None:  # read as the store is: past any bulk change (said first)
                self._past_bulk_change()
            with self._snapshot_lock:  # against the ranker's swap of an older version
                self._snapshot = snap
            if updated is None and self._settle:  # the old snapshot's objects go, the new stay
                settle_objects()
            if actor is not None:
                self._audit.append(
                    {
                        **entry,
                        "outcome": "refreshed",
                        "before": {"version": prev.version},
                        "after": {"version": snap.version},
                    }
                )
            self._recalibrate_if_drifted(snap)
            return snap

    def _recalibrate_if_drifted(self, snap: Snapshot) -> None:
        """Measure a new calibration in the background (:meth:`_recalibrate`) once the
        collaborations on record moved past :func:`~kolmatch.engine.cache.recalibrate_share`
        since the one in effect was measured; one at a time in this process, and not again
        for :data:`RECALIBRATE_RETRY_SECONDS` after one that was given up. Never raises: the
        write that called it stands."""
        running = self._recalibrator
        if (running is not None and running.is_alive()) or time.monotonic() < self._retry_at:
            return
        if self._stop.is_set():
            return
        try:
            if not self._drifted(snap):
                return
        except Exception:  # a store that cannot say its id now: the next refresh asks again
            log.warning("kolmatch: cannot check the calibration's drift", exc_info=True)
            return
        self._recalibrator = threading.Thread(
            target=self._recalibrate, name="kolmatch-recalibrate", daemon=True
        )
        self._recalibrator.start()

    def _drifted(self, snap: Snapshot) -> bool:
        """Whether ``snap``'s collaborations moved past the share since its calibration."""
        drift = calibration_drift(
            self._store.uri,
            (self._store.graph_id(), snap.version),
            self._cache_dir,
            int(snap.features.promotions.sum()),
        )
        return drift is not None and drift > recalibrate_share()

    def _recalibrate(self) -> None:
        """Measure the calibration afresh and make it take effect from a version of its own.

        A write used to do this itself when it took the collaborations past the share: a full
        build under the write lock (minutes at m), its request timed out, every other write
        waited, and another worker's writes found the store locked by the build's read. Now:

        1. Off the write lock, in a child process at the lowest CPU priority
           (:mod:`kolmatch.engine.apart`), the graph is read at its version ``v``
           (one snapshot; writes go on) and built with a calibration measured on it; then
           brought to the store's version by the change feed (each write applied as its
           writer did, under the new calibration: :func:`~kolmatch.engine.cache.caught_up`);
           the calibration and those features are written aside
           (:class:`~kolmatch.engine.cache.StagedRecalibration`).
        2. Under the write lock, the writes made since step 1 are caught up too (a few, and
           the features written aside again: ~1-2 s at m), then the store's version is raised
           from ``w`` to ``w + 1`` if it is still ``w`` (:meth:`GraphStore.advance`, a
           compare-and-set; the change feed says kind ``calibration``), the files are put in
           place as ``w + 1``'s, and the snapshot swapped. Other processes load those
           features (:meth:`_catch_up`); one that rebuilds ``w + 1`` or later uses that
           calibration.

        One process measures at a time (:func:`~kolmatch.engine.cache.recalibrating`). Given
        up, nothing taking effect, when the feed cannot bring the features up (a bulk load
        meanwhile, another recalibration) or the store moved at the very last moment (another
        process's write between the catch-up and the compare-and-set); tried again
        after :data:`RECALIBRATE_RETRY_SECONDS`. A process killed at any step leaves either no
        new version, or one whose calibration every process agrees on (followers that find
        its files missing rebuild it with the calibration then in effect).
        """
        try:
            if not self._recalibrated():
                self._retry_at = time.monotonic() + RECALIBRATE_RETRY_SECONDS
        except Cancelled:
            if not self._stop.is_set():
                self.recalibrations_stopped += 1
                log.info("kolmatch: a calibration being measured was stopped by a bulk change")
        except Exception:
            self._retry_at = time.monotonic() + RECALIBRATE_RETRY_SECONDS
            if not self._stop.is_set():
                log.warning("kolmatch: recalibration failed; will retry", exc_info=True)

    def _recalibrated(self) -> bool:
        """:meth:`_recalibrate`'s steps; False if given up (with nothing taking effect)."""
        store, uri, cache = self._store, self._store.uri, self._cache_dir
        with self._write_lock:
            if self._stop.is_set():
                return False
            graph_id = store.graph_id()
        with recalibrating(uri, graph_id, cache) as mine:
            if not mine or self._stop.is_set():
                return mine
            with self._write_lock:  # a catch-up of several writes has ended
                if not self._drifted(self._snapshot):
                    return True  # another process's recalibration took effect meanwhile
                # set first, then checked: a bulk change (or close) seen after this sets it
                self._measuring_stop = stop = threading.Event()
                if self._rebuild_since or self._stop.is_set():
                    return False  # behind a bulk change: measured once it is served
            measured = measure_calibration_apart(uri, cache, stop)
            if stop.is_set() or measured.identity[0] != store.graph_id():
                return False
            up = caught_up(store, cache, measured.features, measured.identity[1])
            if up is None:
                log.info("kolmatch: recalibration of %s given up: the feed lacks a write", uri)
                return False
            staged = StagedRecalibration(uri, cache, measured, *up)
            try:
                with self._write_lock:
                    if self._stop.is_set():
                        return False
                    if self._snapshot.version != store.version():
                        self._catch_up()
                    w = store.version()
                    if self._snapshot.version != w:
                        return False  # another's write still pending in the feed
                    if w != staged.version:  # written meanwhile: those few, under the lock
                        staged.discard()
                        up = caught_up(store, cache, staged.features, staged.version)
                        if up is None or up[1] != w:
                            return False
                        staged = StagedRecalibration(uri, cache, measured, *up)
                    return self._take_effect(staged, measured.identity[1])
            finally:
                staged.discard()  # (nothing left once committed)

    def _take_effect(self, staged: StagedRecalibration, measured_at: int) -> bool:
        """Under the write lock, the snapshot at the store's version ``w`` (staged's): make
        ``w + 1`` and serve the staged features as its."""
        store, uri, cache = self._store, self._store.uri, self._cache_dir
        graph_id, w, snap = store.graph_id(), staged.version, self._snapshot
        change: dict[str, Any] = {"before": w, "kind": "calibration"}
        record_change(uri, graph_id, cache, {**change, "state": "pending"})
        try:
            made = store.advance(w)
        except BaseException:
            record_change(uri, graph_id, cache, {**change, "state": "failed"})
            raise
        if not made:  # another process wrote first
            record_change(uri, graph_id, cache, {**change, "state": "failed"})
            return False
        after = w + 1
        try:
            staged.commit(after)
        except OSError:
            # the version stands without its calibration: everyone rebuilds it with the old
            log.warning("kolmatch: cannot store the new calibration", exc_info=True)
            record_change(uri, graph_id, cache, {**change, "kind": "other", "state": "written"})
            self.refresh()
            return False
        record_change(uri, graph_id, cache, {**change, "state": "written", "after": after})
        with self._snapshot_lock:
            self._snapshot = _at_recalibration(snap, (graph_id, after), staged.features)
        self.recalibrations += 1
        self._audit.append(
            {
                "actor": "kolmatch",
                "action": "recalibrate",
                "target": None,
                "input": {"measured_at": measured_at},
                "outcome": "refreshed",
                "before": {"version": w},
                "after": {"version": after},
            }
        )
        log.info(
            "kolmatch: recalibrated %s on version %s, in effect from %s", uri, measured_at, after
        )
        self._rank_later((after, (graph_id, after), staged.features))
        return True

    def follow(self, poll_seconds: float = FOLLOW_POLL_SECONDS) -> None:
        """Keep the snapshot at the store's version: poll it and refresh when another writes.

        With several server processes (``kolmatch serve --workers N``) each holds its own
        snapshot; a write through one raised the store's version, and without this the others
        served the old graph until restarted (seen for over 50 s: a flagged talent kept ranking
        first on one worker). A daemon thread asks the store for its version every
        ``poll_seconds`` (one small query) and, when it moved and no write or refresh of this
        process is running, refreshes (from the feature cache when another process already
        built that version). Requests keep reading the previous snapshot meanwhile, so a worker
        lags a write by the poll interval plus its refresh; :meth:`health` shows both versions.
        Stopped by :meth:`close`.
        """
        if self._follower is not None:
            return

        def run() -> None:
            while not self._stop.wait(poll_seconds):
                if not self._write_lock.acquire(blocking=False):
                    continue  # a write or refresh of our own is running: it will catch up
                try:
                    if self._stop.is_set():
                        return  # closed while we waited: the store may be gone
                    if self._store.version() != self._snapshot.version:
                        self._catch_up()
                except KolmatchError as exc:  # store down, unfinished load: keep serving
                    log.debug("kolmatch: following the store: %s", exc)
                except Exception:  # a locked SQLite file, a driver error: never stop following
                    log.warning("kolmatch: following the store failed; will retry", exc_info=True)
                finally:
                    self._write_lock.release()

        self._follower = threading.Thread(target=_quietly(run), name="kolmatch-follow", daemon=True)
        self._follower.start()

    def _catch_up(self, own: str | None = None) -> None:
        """Refresh to the store's version, applying writes from the change feed if it can.

        Other processes' writes since our version, one version each as the feed records
        them, are applied as their writers did: recorded collaborations (one talent's rows
        each), recalibrations (the features their process cached), and violations, bookings
        and campaigns writes, which re-read their tables at the store's version: the feed
        shows that the run's later writes leave those tables as read (each kind changes only
        its own, re-read again by a later write of it), so the run ends where the writers
        did (``through``: :func:`~kolmatch.engine.cache.updated_features`; violations before
        the end of a run need the compliance tables kept). A write still ``pending`` in the feed is
        waited for (up to :data:`FEED_WAIT_SECONDS`, on later polls) rather than rebuilt
        around; anything else (a bulk load, a write the feed does not have) is a rebuild: in
        a following (serving) process, off the write lock (:meth:`_rebuild`: the version
        before keeps serving, writes are refused meanwhile), else at once.
        Called by the follower under the write lock, and by a write of ours that landed past
        another server's (``own``: its feed id, whose features this process caches).
        """
        snap = self._snapshot
        version = self._store.version()
        uri, graph_id = self._store.uri, self._store.graph_id()
        steps: list[dict[str, Any]] = []
        v = snap.version
        while v < version:
            change = change_after(uri, graph_id, self._cache_dir, v)
            if change is not None and change.get("state") == "pending":
                waited = self._feed_waits.setdefault(v, time.monotonic())
                if time.monotonic() - waited < FEED_WAIT_SECONDS:
                    return  # its writer is between the store and the feed: the next poll
            if not made(change, v):
                break
            steps.append(change)
            v += 1
        kinds = [c["kind"] for c in steps]
        applicable = (
            v == version
            and kinds
            and all(k in _APPLIED for k in kinds)
            and ("violations" not in kinds[:-1] or snap.compliance is not None)
        )
        if not applicable:
            if self._follower is None:
                self.refresh()
            else:
                self._rebuild_behind()
            return
        for change in steps:
            at = self._snapshot.version
            if at != change["before"]:  # a step rebuilt to the store's version instead
                return
            # each step an update, never a build under the write lock (kw)
            kw: dict[str, Any] = {"persist": own is not None and change.get("id") == own}
            kw["or_build"] = False
            if change["kind"] == "collaboration":
                write = CollaborationWrite(**change["write"])
                self.refresh(collaboration_since=(at, write, change["collab_id"]), **kw)
            elif change["kind"] == "calibration":
                self.refresh(calibrated_since=at, **kw)
            else:
                # a re-read at the run's end, or past it where the writes since are ones the
                # next walk applies (under a stream of writes the store moves during a run)
                kw["through"] = self._feed_applies(uri, graph_id, at + 1)
                if change["kind"] == "bookings":
                    self.refresh(bookings_since=at, **kw)
                elif change["kind"] == "campaigns":
                    self.refresh(campaigns_since=at, **kw)
                else:
                    self.refresh(violations_only_since=at, **kw)
            if self._snapshot.version == at:  # not applied: the store moved on, or it cannot be
                if self._store.version() != version:
                    return  # a write landed during the run: the next poll walks it again
                if self._follower is None:
                    self.refresh()
                else:
                    self._rebuild_behind()
                return

    def _feed_applies(self, uri: str, graph_id: str, start: int) -> Callable[[int], bool]:
        """Whether every write from version ``start`` up to a version seen is in the change
        feed, made, and of a kind :meth:`_catch_up` applies: a table one of them re-reads (or
        none touches) read at that version is then as the run ends it."""

        def applies(seen: int) -> bool:
            for x in range(start, seen):
                c = change_after(uri, graph_id, self._cache_dir, x)
                if not made(c, x) or c.get("kind") not in _APPLIED:
                    return False
            return True

        return applies

    def _rebuild_behind(self) -> None:
        """Start :meth:`_rebuild` unless it runs, or its retry after a failure is not due
        yet (:data:`REBUILD_RETRY_SECONDS`, doubling; writes are refused meanwhile:
        :meth:`_current`)."""
        if not self._rebuild_since:
            self._rebuild_since = time.monotonic()
            # a calibration being measured on the version before could not be brought past
            # the change (the feed lacks it): stopped, rather than a second full build in
            # memory beside the rebuild's (at m, two of them); measured again after it
            running = self._recalibrator
            if running is not None and running.is_alive():
                self._measuring_stop.set()
        if self._rebuilder is not None and self._rebuilder.is_alive():
            return
        if time.monotonic() < self._rebuild_retry_at or self._stop.is_set():
            return
        self._rebuilder = threading.Thread(
            target=_quietly(self._rebuild), name="kolmatch-rebuild", daemon=True
        )
        self._rebuilder.start()

    def _rebuild(self) -> None:
        """Serve the store's version after a bulk change, its features built off the write lock.

        A load into the served store changed more than the change feed can apply, and the
        follower used to rebuild under the write lock: at m every write to the process waited
        minutes (and timed out) while the other processes did the same build at the same time.
        Now the version before keeps serving while:

        1. the features of the store's version come from the cache if any process has built
           them (the latest cached version, brought to the catalog's version by the change
           feed: :func:`~kolmatch.engine.cache.caught_up`); else one process builds them in a
           child (:func:`~kolmatch.engine.apart.build_features_apart`; a file lock,
           :func:`~kolmatch.engine.cache.rebuilding`, makes the others wait and load its);
        2. the catalog is read (one snapshot) and the features brought to its version;
        3. the snapshot is swapped in under the write lock (a moment); writes since apply from
           the feed as usual.

        Writes to this process are refused with :class:`~kolmatch.errors.Rebuilding` until
        then (they check against the graph as it is). A failure is logged and tried again after
        :data:`REBUILD_RETRY_SECONDS`.
        """
        try:
            done = self._rebuilt()
            error = "" if done else "the store kept changing under the rebuild"
        except Exception as exc:
            if self._stop.is_set():
                return  # the service closed (the child was killed, the store closed)
            log.warning(
                "kolmatch: rebuilding after a bulk change failed; will retry", exc_info=True
            )
            done, error = False, str(exc) or type(exc).__name__
        if done:
            return
        self._rebuild_failures += 1
        self._rebuild_error = error
        wait = REBUILD_RETRY_SECONDS * 2 ** (self._rebuild_failures - 1)
        self._rebuild_retry_at = time.monotonic() + min(wait, REBUILD_RETRY_MAX_SECONDS)

    def _past_bulk_change(self) -> None:
        """The snapshot about to be served is past any bulk change: writes are taken again."""
        self._rebuild_since = 0.0
        self._rebuild_failures, self._rebuild_error = 0, ""

    def _rebuilt(self) -> bool:
        """:meth:`_rebuild`'s steps; False if given up."""
        store, uri, cache = self._store, self._store.uri, self._cache_dir
        with self._write_lock:
            if self._stop.is_set():
                raise Cancelled("the service is closing")
            graph_id = store.graph_id()
        if self._rebuild_failures >= REBUILD_CHILD_FAILURES:
            log.warning("kolmatch: rebuilding %s in process after failed child builds", uri)
            with self._write_lock:
                self.refresh()  # (clears _rebuild_since)
            return True
        attempts, held_since = 0, time.monotonic()
        while attempts < REBUILD_ATTEMPTS:
            base = latest_features(uri, graph_id, cache)
            g = read_market(store, CATALOG_READ | BOOKINGS_READ)
            up = None if base is None else caught_up(store, cache, *base, graph=g)
            if (
                up is None
                and base is not None
                and feed_pending(uri, graph_id, cache, base[1], g.identity[1])
                and time.monotonic() - held_since < FEED_WAIT_SECONDS
            ):  # a write its process is still recording, not a bulk change: wait for it
                if self._stop.wait(0.1):
                    return True
                continue
            attempts += 1
            if up is None:  # none cached since the bulk change: one process builds
                with rebuilding(uri, graph_id, cache, self._stop):
                    again = latest_features(uri, graph_id, cache)
                    if again is None or (base is not None and again[1] <= base[1]):
                        built = build_features_apart(uri, cache, self._stop)[1]
                        self.rebuilds_built += 1
                        cached = latest_features(uri, graph_id, cache)
                        if cached is None or cached[1] < built:
                            # the child could not cache them (a read-only or full folder: it
                            # said so): built here instead, under the write lock, as before
                            log.warning(
                                "kolmatch: rebuilding %s in process (version %s built, %s cached)",
                                uri,
                                built,
                                None if cached is None else cached[1],
                            )
                            with self._write_lock:
                                self.refresh()  # (past the bulk change: writes taken again)
                            return True
                continue  # (or another process's build landed while we waited)
            f, version = up
            snap = self._snapshot_of(f, g)
            with self._write_lock:
                if self._stop.is_set():
                    return True
                served = self._snapshot
                self._past_bulk_change()  # (said first: a reader sees it with the new snapshot)
                # a graph loaded anew at the URI starts its versions again: served all the same
                if served.graph_id != graph_id or served.version < version:
                    self.rebuilds += 1  # (counted first: a reader of the two sees them agree)
                    with self._snapshot_lock:
                        self._snapshot = snap
                    if self._settle:  # as refresh does after a snapshot built anew
                        settle_objects()
                    log.info("kolmatch: rebuilt %s at version %s after a bulk change", uri, version)
                self._recalibrate_if_drifted(self._snapshot)
            return True
        return False

    def close(self, timeout: float = 60.0) -> bool:
        """Close the store once no write or refresh is running (waiting up to ``timeout`` s).

        A mutation that outlived its request budget keeps running in a worker
        thread; closing the store under it would break it half-way (SQLite's
        connection is not safe to close mid-statement). Returns False if one was
        still running after ``timeout`` (the store is closed anyway: the
        process is ending).
        """
        self._stop.set()
        self._measuring_stop.set()
        with self._snapshot_lock:
            ranking = self._ranking
        if ranking is not None:
            ranking[1].cancel("the service is closing")
        # the background threads stop at their next check (a child build or measurement is
        # killed); waited for before the store is closed: some read it outside the write lock
        # (closing SQLite's connection under a statement of another thread crashed the process)
        deadline = time.monotonic() + timeout
        for thread in (self._recalibrator, self._rebuilder, self._ranker):
            # (one created but not started yet finds the stop under the write lock)
            if (
                thread is not None
                and thread.is_alive()
                and thread is not threading.current_thread()
            ):
                thread.join(max(0.0, deadline - time.monotonic()))
        done = self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        try:
            self._store.close()
        finally:
            if done:
                self._write_lock.release()
        return done

    def _updated(
        self,
        risk_update_of: tuple[MarketFeatures, int] | None,
        collaboration_of: tuple[MarketFeatures, int, CollaborationWrite] | None,
        collab_id: str,
        persist: bool,
        bookings_of: tuple[MarketFeatures, int] | None = None,
        campaigns_of: tuple[MarketFeatures, int] | None = None,
        calibrated_of: int | None = None,
        through: int | Callable[[int], bool] | None = None,
    ) -> Snapshot | None:
        """The serving snapshot one write later, without reading the catalog; None if not.

        A recorded collaboration adds one row to a talent's history and updates its features;
        violations change compliance and the violation ids: the rest of the snapshot is the
        previous one's (the graph is exactly one write past it, or this returns None and the
        caller builds). Features are cached and merchants ranked in the background. At m this
        is the difference between ~2.9 s (a catalog read, the history rebuilt, 0.5 GB written)
        and milliseconds.
        """
        prev = self._snapshot
        out = updated_features(
            self._store,
            self._cache_dir,
            risk_update_of=risk_update_of,
            collaboration_of=collaboration_of,
            bookings_of=bookings_of,
            campaigns_of=campaigns_of,
            compliance=prev.compliance,
            calibrated_of=calibrated_of,
            through=through,
        )
        if out is None:
            return None
        f, g = out
        version = g.identity[1]
        # the compliance tables one write later: a collaboration adds a PROMOTED row, a
        # violations write re-read them (g), other writes change none of them
        compliance = (
            replace(prev.compliance, identity=g.identity) if prev.compliance is not None else None
        )
        if collaboration_of is not None:
            w = collaboration_of[2]
            c = Collaboration(
                collab_id=collab_id,
                talent=w.talent,
                product=w.product,
                merchant=prev.product_merchant.get(w.product),
                gmv=None if w.gmv is None else float(w.gmv),
                orders=None if w.orders is None else int(w.orders),
                fee=None if w.fee is None else float(w.fee),
                time=str(w.time),
                campaign=w.campaign or None,
            )
            history = dict(prev.history)
            history[w.talent] = _newest_first([c, *history.get(w.talent, [])])
            if prev.compliance is not None:
                try:
                    compliance = prev.compliance.with_edge(
                        "PROMOTED", "Talent", w.talent, w.product, g.identity
                    )
                except StoreError:  # not of this graph after all: the next flag reads them
                    compliance = None
            snap = replace(
                prev,
                version=version,
                features=f,
                rankings=None,
                history=history,
                collaborations={**prev.collaborations, collab_id: c},
                compliance=compliance,
                **_patched(prev, f),
            )
        elif calibrated_of is not None:
            snap = _at_recalibration(prev, g.identity, f)
        elif bookings_of is not None or campaigns_of is not None:
            # default rankings read no bookings or campaigns (only a campaign's match list
            # does, live): they stay, and nothing is re-ranked, unless the previous version's
            # were still to come (its ranking is stopped by this wish)
            snap = replace(prev, version=version, features=f, compliance=compliance)
            if campaigns_of is not None:
                snap = replace(snap, campaigns=briefs_of(g))
            if prev.rankings is None:
                self._rank_later((version, g.identity, f), persist=persist, base=snap.ranked_before)
            return snap
        else:
            # a flag raises some talents' risk only: the lists are patched, not ranked again
            # (rankings_after_risk; None for anything else, e.g. a resolve)
            ranked = (
                rankings_after_risk(prev.rankings, prev.features, f)
                if prev.rankings is not None
                else None
            )
            snap = replace(
                prev,
                version=version,
                features=f,
                rankings=ranked,
                violation_ids={str(x) for x in g.node("Violation").ids},
                compliance=g,
                # a fall in risk too is a talent's own record: patched from before it
                **(
                    _patched(prev, f)
                    if ranked is None
                    else {"ranked_before": None, "patched": None}
                ),
            )
            if ranked is not None:
                if rankings_worn(ranked):  # served patched meanwhile, ranked again behind
                    self._rank_later((version, g.identity, f), persist=persist)
                return snap
        self._rank_later((version, g.identity, f), persist=persist, base=snap.ranked_before)
        return snap

    def _rank_later(
        self,
        wanted: tuple[int, Identity, MarketFeatures],
        *,
        persist: bool = False,
        base: tuple[MerchantRankings, MarketFeatures] | None = None,
    ) -> None:
        """Rank every merchant for ``(version, identity, features)`` in a background thread.

        A write used to wait for this (94% of a recorded collaboration's 2.5 s on s); now the
        write's snapshot serves at once with live match lists, and when the rankings are
        done they join the snapshot if it is still of that version. One thread, latest wish
        only: writes faster than a ranking skip the versions in between. A version is ranked
        once it has been served for :data:`RANK_QUIET_SECONDS`, and its ranking stops when
        another is wished for: ranking a version no longer served would be thrown away. The
        quiet time doubles with each ranking stopped in a row (up to
        :data:`RANK_QUIET_MAX_SECONDS`): under a steady stream of writes, lists are computed
        live rather than ranked again and again for versions nobody will read. With ``base``
        (the last exact rankings and their features, only talents' own records moved since:
        :attr:`Snapshot.ranked_before`) each list is patched for the talents that moved
        (:func:`~kolmatch.matching.score.rankings_after_collaboration`), a ranking of every
        merchant only if that declines.
        """
        with self._snapshot_lock:
            self._ranking_wanted = (*wanted, persist, base)
            self._ranking_event.set()
            running = self._ranking
            if running is not None and running[0] != wanted[0]:
                running[1].cancel(f"version {wanted[0]} is served")
            if self._ranker is not None:
                return

        def run() -> None:
            while not self._stop.is_set():
                if not self._ranking_event.wait(0.5):
                    continue
                quiet = False
                while not quiet:  # until no newer wish came for the quiet time
                    self._ranking_event.clear()
                    if self._stop.wait(self._rank_quiet()):
                        return
                    quiet = not self._ranking_event.is_set()
                with self._snapshot_lock:
                    job, self._ranking_wanted = self._ranking_wanted, None
                    if job is None:
                        continue
                    cancel = Cancel()
                    self._ranking = (job[0], cancel)
                version, identity, f, keep, base = job
                try:
                    if keep:  # the writer caches the features it updated (a restart loads them)
                        store_features(self._store.uri, identity, f, self._cache_dir)
                    r = cached_rankings(
                        self._store.uri,
                        identity,
                        f,
                        self._cache_dir,
                        cancel=cancel,
                        patch_from=base,
                        patched=self._count_patched,
                    )
                except Cancelled:
                    self.rankings_stopped += 1
                    self._rankings_stopped_in_a_row += 1
                    self._ranking_stopped_at = time.monotonic()
                    continue
                except Exception:  # a full disk costs speed: lists stay live
                    log.warning("kolmatch: ranking version %s failed", version, exc_info=True)
                    continue
                finally:
                    with self._snapshot_lock:
                        self._ranking = None
                self._rankings_stopped_in_a_row = 0
                with self._snapshot_lock:
                    snap = self._snapshot
                    if snap.version == version and (
                        snap.rankings is None or rankings_worn(snap.rankings)
                    ):
                        self._snapshot = replace(snap, rankings=r, ranked_before=None, patched=None)

        self._ranker = threading.Thread(target=_quietly(run), name="kolmatch-rank", daemon=True)
        self._ranker.start()

    def _count_patched(self) -> None:
        self.rankings_patched += 1

    def _rank_quiet(self) -> float:
        """How long a version must be served before it is ranked: :data:`RANK_QUIET_SECONDS`,
        doubled for each ranking stopped in a row, up to :data:`RANK_QUIET_MAX_SECONDS`; back
        to the first once none was stopped for that long (a trickle of writes after a burst is
        ranked again, each ranking having the time to complete)."""
        if time.monotonic() - self._ranking_stopped_at > RANK_QUIET_MAX_SECONDS:
            self._rankings_stopped_in_a_row = 0
        doubled = RANK_QUIET_SECONDS * 2.0**self._rankings_stopped_in_a_row
        return float(min(doubled, RANK_QUIET_MAX_SECONDS))

    def wait_ranked(self, timeout: float = 120.0) -> Snapshot:
        """The served snapshot once its rankings are in (tests, benchmarks).

        Raises
        ------
        TimeoutError
            If they are not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while self._snapshot.rankings is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"version {self._snapshot.version} not ranked in {timeout} s")
            time.sleep(0.02)
        return self._snapshot

    def health(self) -> dict[str, Any]:
        """Ask the store for its version: raises StoreUnavailable if it cannot answer.

        A store holding an unfinished load is healthy (the snapshot before it
        keeps serving); the answer says so under ``incomplete_load``.
        """
        snap = self._snapshot
        out: dict[str, Any] = {
            "store": self._store.uri,
            "serving_version": snap.version,
            "ranked": snap.rankings is not None,
            "recalibrating": self._recalibrator is not None and self._recalibrator.is_alive(),
            # behind a bulk change (writes refused), rebuilding or waiting to try again
            "rebuilding": bool(self._rebuild_since),
        }
        if self._rebuild_error:
            out["rebuild_error"] = self._rebuild_error
        try:
            out["version"] = self._store.version()
        except IncompleteLoad as exc:
            out["version"] = None
            out["incomplete_load"] = str(exc)
        return out

    def _build(
        self,
        risk_update_of: tuple[MarketFeatures, int] | None = None,
        collaboration_of: tuple[MarketFeatures, int, CollaborationWrite] | None = None,
        *,
        later: bool = True,
    ) -> Snapshot:
        """The snapshot of the store's current version.

        ``later``: if no process has ranked this version yet, serve it at once with
        ``rankings=None`` and rank every merchant in the background (:meth:`_rank_later`);
        otherwise (the first snapshot) rank now.
        """
        # the features and everything the schema shows come from one read of one graph version
        f, g = load_features(
            self._store,
            self._cache_dir,
            also=CATALOG_READ,
            risk_update_of=risk_update_of,
            collaboration_of=collaboration_of,
        )
        return self._snapshot_of(f, g, later=later)

    def _snapshot_of(self, f: MarketFeatures, g: MarketGraph, *, later: bool = True) -> Snapshot:
        """The snapshot of features ``f`` and the catalog ``g`` (:data:`CATALOG_READ`), both
        of version ``g.identity``; ``later`` as :meth:`_build`."""
        uri = self._store.uri
        version = g.identity[1]
        rankings = stored_rankings(uri, g.identity, self._cache_dir)
        if rankings is None and not later:
            rankings = cached_rankings(uri, g.identity, f, self._cache_dir)
        talents, merchants = g.node("Talent"), g.node("Merchant")
        agencies, products = g.node("Institution"), g.node("Product")
        violations, signed = g.node("Violation"), g.edge("SIGNED_WITH", "Talent")
        roster: dict[str, list[str]] = {str(a): [] for a in agencies.ids}
        for t, a in zip(signed.src, signed.dst, strict=True):
            roster[str(agencies.ids[a])].append(str(talents.ids[t]))
        sells = g.edge("SELLS", "Merchant")
        owner = np.full(len(products), -1, dtype=np.int64)
        owner[sells.dst] = sells.src
        promoted = g.edge("PROMOTED", "Talent")
        history: dict[str, list[Collaboration]] = {}
        c = promoted.columns
        for i, (t, p) in enumerate(zip(promoted.src, promoted.dst, strict=True)):
            tid = str(talents.ids[t])
            history.setdefault(tid, []).append(
                Collaboration(
                    collab_id=str(c["collab_id"][i]),
                    talent=tid,
                    product=str(products.ids[p]),
                    merchant=str(merchants.ids[owner[p]]) if owner[p] >= 0 else None,
                    gmv=_known(c["gmv"][i]),
                    orders=None if np.isnan(c["orders"][i]) else int(c["orders"][i]),
                    fee=_known(c["fee"][i]),
                    time=str(c["time"][i]),
                    campaign=c["campaign"][i] or None,
                )
            )
        history = {t: _newest_first(items) for t, items in history.items()}
        snap = Snapshot(
            version=version,
            features=f,
            rankings=rankings,
            talent_names=_names(talents.ids, talents.columns["name"]),
            talent_region={
                str(i): (r or None)
                for i, r in zip(talents.ids, talents.columns["region"], strict=True)
            },
            merchant_names=_names(merchants.ids, merchants.columns["name"]),
            agency_names=_names(agencies.ids, agencies.columns["name"]),
            agency_roster=roster,
            history=history,
            product_merchant={
                str(x): str(merchants.ids[owner[i]]) if owner[i] >= 0 else None
                for i, x in enumerate(products.ids)
            },
            violation_ids={str(x) for x in violations.ids},
            collaborations={c.collab_id: c for items in history.values() for c in items},
            campaigns=briefs_of(g),
            compliance=g.restricted(COMPLIANCE_READ),
            graph_id=g.identity[0],
        )
        if rankings is None:  # wished for once the snapshot exists: it stops the one before
            self._rank_later((version, g.identity, f))
        return snap

    # -- writes ---------------------------------------------------------------------------
    def record_collaboration(
        self,
        *,
        collab_id: str,
        talent: str,
        product: str,
        gmv: float,
        orders: int,
        fee: float,
        time: str,
        campaign: str | None = None,
        actor: str = "local",
    ) -> Snapshot:
        """Record a collaboration's outcome (a PROMOTED relationship), then refresh.

        A collaboration id is recorded once: sent again with the same values it is a no-op
        (nothing written; the answer is the snapshot of the version that holds it, another
        server's when that one wrote it a moment before); with any value different it is
        refused. Checked on the snapshot, then in the store's transaction that writes it
        (:meth:`GraphStore.add_collaboration`), so of servers sent one new id at once exactly
        one writes it. Bulk loads keep their idempotent upsert; this is the write path of the
        API, where a second write with the same id is a mistake, not a correction.

        Parameters
        ----------
        actor
            Who writes (``merchant:m3``, ``internal``; ``local`` for in-process callers), for
            the audit log.

        Raises
        ------
        UnknownId
            If the talent, product or campaign is not in the graph.
        BadArgument
            For a new id, naming the field: an id with white space at an end, an amount not
            finite, negative or over :data:`~kolmatch.graph.model.MAX_AMOUNT`, orders not a
            whole number >= 0 (the ranges of the PROMOTED fields, as a load checks them), a
            time not YYYY-MM-DD, before 2000 or after today, a campaign the product's merchant
            has not joined or whose window does not hold the time
            (:mod:`kolmatch.engine.write_rules`). An id already held is answered by its record
            alone (the no-op or the Conflict), whatever these rules say of its values.
        Conflict
            If the id is already recorded with a different value (``fields`` names which).
        """
        sent: dict[str, Any] = {
            "talent": talent,
            "product": product,
            "gmv": gmv,
            "orders": orders,
            "fee": fee,
            "time": time,
            "campaign": campaign or None,
        }
        entry = {"actor": actor, "action": "recordCollaboration", "target": collab_id}
        with self._write_lock:
            try:
                snap = self._current()
                snap.features.talent_row(talent)
                if product not in snap.product_merchant:
                    raise UnknownId("Product", product)
                old = snap.collaborations.get(collab_id)
                if old is not None:
                    # the held record answers first: a retry is the no-op docs/api.md promises
                    # even where the record breaks a rule for new ones (a load wrote it)
                    before = _repeated(old, sent)  # Conflict if any value differs
                    self._audit.append(
                        {
                            **entry,
                            "input": sent,
                            "outcome": "unchanged",
                            "before": before,
                            "after": before,
                            "version": snap.version,
                        }
                    )
                    return snap
                checked_id(collab_id, "id")
                sent.update(
                    gmv=checked_amount(gmv, "gmv", _PROMOTED.field_named("gmv")),
                    orders=checked_count(orders, "orders", _PROMOTED.field_named("orders")),
                    fee=checked_amount(fee, "fee", _PROMOTED.field_named("fee")),
                    time=checked_past_day(time, "time"),
                )
                if campaign:
                    _in_campaign(snap, campaign, snap.product_merchant[product], time)
                after = {"id": collab_id, "merchant": snap.product_merchant[product], **sent}
            except KolmatchError as exc:
                self.record_refusal({**entry, "input": sent}, exc)
                raise
            row = {"src": talent, "dst": product, "collab_id": collab_id, **sent}
            del row["talent"], row["product"]
            write = CollaborationWrite(
                talent, product, sent["gmv"], sent["orders"], sent["fee"], time, campaign
            )

            def add() -> int:
                """1 if written; 0 for the same collaboration another server wrote since
                our snapshot (a repeat); Conflict if it holds the id with other values."""
                held = self._store.add_collaboration(row)
                if held is None:
                    return 1
                product = str(held["product"])
                was = Collaboration(  # as the snapshot reads it (features.collaborations)
                    collab_id,
                    str(held["talent"]),
                    product,
                    snap.product_merchant.get(product),
                    held["gmv"],
                    held["orders"],
                    held["fee"],
                    str(held["time"]),
                    held["campaign"] or None,
                )
                _repeated(was, sent)
                return 0

            return self._write(
                [],
                audit={**entry, "input": sent, "before": None, "after": after},
                collaboration=write,
                perform=add,
            )

    def flag_violation(
        self,
        *,
        violation_id: str,
        label: str,
        target: str,
        kind: str,
        severity: str,
        time: str,
        actor: str = "local",
    ) -> Snapshot:
        """Record a violation against a talent, merchant or product, then refresh.

        Parameters
        ----------
        actor
            Who writes, for the audit log (see :meth:`record_collaboration`).

        Raises
        ------
        UnknownId
            If the target is not in the graph.
        BadArgument
            If the label, severity or date is not one the model allows (a time after today,
            :func:`~kolmatch.engine.write_rules.checked_past_day`), the kind is empty, or the
            id is taken or has white space at an end.
        """
        node = {
            "id": violation_id,
            "kind": kind,
            "severity": severity,
            "time": time,
            "resolved": False,
        }
        sent = {**node, "label": label, "target": target}
        entry = {"actor": actor, "action": "flagViolation", "target": violation_id, "input": sent}
        with self._write_lock:
            try:
                checked_id(violation_id, "id")
                checked_text(kind, "kind")
                if label not in ("Talent", "Merchant", "Product"):
                    raise BadArgument(
                        "label", f"must be Talent, Merchant or Product, got {label!r}"
                    )
                if severity not in ("minor", "major", "severe"):
                    raise BadArgument(
                        "severity", f"must be minor, major or severe, got {severity!r}"
                    )
                taken = BadArgument("id", f"violation {violation_id!r} exists; resolve it instead")
                if violation_id in self._current().violation_ids:
                    raise taken
                if self._store.missing_ids(label, [target]):
                    raise UnknownId(label, target)
                checked_past_day(time, "time")
            except KolmatchError as exc:
                self.record_refusal(entry, exc)
                raise

            def add() -> int:
                """Checked again in the store's transaction: another server's flag of the
                same id since our snapshot (it would attach one violation to two targets)."""
                rel = RelBatch.of("HAS_VIOLATION", label, [{"src": target, "dst": violation_id}])
                if self._store.add_node("Violation", node, [rel]) is not None:
                    raise taken
                return 1

            return self._write(
                [],
                violations_only=True,
                audit={**entry, "before": None, "after": sent},
                perform=add,
            )

    def resolve_violation(self, violation_id: str, *, actor: str = "local") -> Snapshot:
        """Mark a violation resolved, then refresh; one already resolved is left as it is.

        Parameters
        ----------
        actor
            Who writes, for the audit log (see :meth:`record_collaboration`).

        Raises
        ------
        UnknownId
            If there is no such violation.
        """
        entry = {
            "actor": actor,
            "action": "resolveViolation",
            "target": violation_id,
            "input": {"id": violation_id},
        }
        with self._write_lock:
            try:
                snap = self._current()
                if violation_id not in snap.violation_ids:
                    raise UnknownId("Violation", violation_id)
                before = self._violation(violation_id)
            except KolmatchError as exc:
                self.record_refusal(entry, exc)
                raise
            if before["resolved"]:  # resolved already: nothing to write, as a repeated record
                self._audit.append(
                    {
                        **entry,
                        "outcome": "unchanged",
                        "before": before,
                        "after": before,
                        "version": snap.version,
                    }
                )
                return snap
            return self._write(
                [NodeBatch.of("Violation", [{"id": violation_id, "resolved": True}])],
                violations_only=True,
                audit={**entry, "before": before, "after": {**before, "resolved": True}},
            )

    def book(
        self, bookings: Sequence[Booking], *, actor: str = "local"
    ) -> tuple[Snapshot, list[str]]:
        """Book talents' slots for merchants, all or nothing, then refresh.

        Compliance is checked here (an excluded merchant or talent is refused, as plans leave
        them out); capacity and competitors' bookings are checked by the store in the
        transaction that writes (:meth:`kolmatch.graph.store.GraphStore.book`), so two
        workers after the same last slot get one success. A booking id sent again with the
        same values is a no-op.

        Returns
        -------
        (Snapshot, list of str)
            The snapshot after the write and the ids written (repeats left out).

        Raises
        ------
        BadArgument
            If no booking is given, or a window is malformed.
        NotEligible
            If a merchant or talent is excluded for compliance.
        BookingRefused, Conflict, UnknownId
            As the store raises them (nothing written).
        """
        sent = [asdict(b) for b in bookings]
        entry = {"actor": actor, "action": "book", "target": None, "input": {"bookings": sent}}
        written: list[str] = []
        with self._write_lock:
            try:
                if not bookings:
                    raise BadArgument("bookings", "give at least one booking")
                f = self._current().features
                talents = talent_eligibility(f)
                for b in bookings:
                    if not b.booking_id.strip():
                        raise BadArgument("bookings", "a booking id must not be empty")
                    check_window(b)
                    require_merchant(f, b.merchant)
                    t = f.talent_row(b.talent)
                    if not talents.ok[t]:
                        raise NotEligible("Talent", b.talent, talents.reasons[t])
            except KolmatchError as exc:
                self.record_refusal(entry, exc)
                raise
            snap = self._write(
                [],
                audit={**entry, "before": None, "after": {"bookings": sent}},
                perform=lambda: _extended(written, self._store.book(bookings)),
                bookings=True,
            )
            return snap, written

    def book_talents(
        self,
        merchant: str,
        talents: Sequence[str],
        key: str,
        *,
        campaign: str | None = None,
        start: str | None = None,
        end: str | None = None,
        actor: str = "local",
    ) -> TalentsBooked:
        """Book ``talents`` for ``merchant`` in a campaign's window (one it joined) or from
        ``start`` to ``end``: the request of the API's ``bookTalents`` and ``kolmatch book``.

        ``key`` names the request: booking ids are ``<merchant>/<key>/<talent>``, so the same
        request sent again writes nothing, and one merchant's ids never meet another's.

        The window is the campaign's or ``start`` to ``end``, never both: dates sent with a
        campaign were ignored (the campaign's window booked) before; both are refused here,
        so the API and the command line refuse them alike.

        Raises
        ------
        BadArgument
            Naming ``key`` (empty, or white space at an end), ``talents``, ``campaign`` (with
            ``start`` or ``end`` too, not joined, over), ``start`` or ``end``.
        UnknownId, NotEligible, BookingRefused, Conflict
            As :meth:`book`.
        """
        sent: dict[str, Any] = {"merchant": merchant, "talents": list(talents), "key": key}
        sent |= {"campaign": campaign, "start": start, "end": end}
        entry = {"actor": actor, "action": "book", "target": None, "input": sent}
        with self._write_lock:
            try:
                current = self._current()  # one look at the store's version for the checks
                start, end = _booking_window(current, merchant, talents, key, campaign, start, end)
            except KolmatchError as exc:
                self.record_refusal(entry, exc)
                raise
            ids = [f"{merchant}/{key}/{t}" for t in talents]
            asked = [
                Booking(i, t, merchant, start, end, campaign)
                for i, t in zip(ids, talents, strict=True)
            ]
            snap, written = self.book(asked, actor=actor)
        return TalentsBooked(snap, ids, written, start, end)

    def release(
        self, booking_ids: Sequence[str], *, merchant: str | None = None, actor: str = "local"
    ) -> tuple[Snapshot, list[str]]:
        """Release bookings (only ``merchant``'s, if given), then refresh; returns the ids
        released (ids not held, or another merchant's, are left out: a repeat is a no-op)."""
        ids = list(dict.fromkeys(booking_ids))
        entry = {"actor": actor, "action": "release", "target": merchant, "input": {"ids": ids}}
        gone: list[str] = []
        with self._write_lock:
            try:
                if not ids:
                    raise BadArgument("ids", "give at least one booking id")
                if any(not i.strip() for i in ids):
                    raise BadArgument("ids", "a booking id is empty")
                snap = self._current()  # (REBUILDING while behind a bulk change)
                if merchant is not None and merchant not in snap.merchant_names:
                    raise UnknownId("Merchant", merchant)
            except KolmatchError as exc:
                self.record_refusal(entry, exc)
                raise
            snap = self._write(
                [],
                audit={**entry, "before": None, "after": {"released": ids}},
                perform=lambda: _extended(gone, self._store.release(ids, merchant=merchant)),
                bookings=True,
            )
            return snap, gone

    def create_campaign(
        self,
        *,
        campaign_id: str,
        name: str,
        start: str,
        end: str,
        goal: str | None = None,
        kpi_target: float | None = None,
        budget: float | None = None,
        categories: Sequence[str] = (),
        products: Sequence[str] = (),
        actor: str = "local",
    ) -> Snapshot:
        """Create a campaign with its brief (internal tools), then refresh.

        Raises
        ------
        BadArgument
            If a field is malformed, or the id is taken.
        UnknownId
            If a category or product is not in the graph.
        """
        entry = {"actor": actor, "action": "createCampaign", "target": campaign_id}
        with self._write_lock:
            try:
                self._current()  # a write checks against the graph as it is (or REBUILDING)
                row = checked_brief(
                    campaign_id=campaign_id,
                    name=name,
                    start=start,
                    end=end,
                    goal=goal,
                    kpi_target=kpi_target,
                    budget=budget,
                )
                # the store, not a snapshot, says whether another worker took the id (again in
                # the transaction that writes it, below)
                taken = BadArgument("id", f"campaign {campaign_id!r} exists")
                if not self._store.missing_ids("Campaign", [campaign_id]):
                    raise taken
                for label, ids in (("Category", categories), ("Product", products)):
                    missing = sorted(self._store.missing_ids(label, list(ids)))
                    if missing:
                        raise UnknownId(label, missing[0])
            except KolmatchError as exc:
                self.record_refusal({**entry, "input": {"name": name}}, exc)
                raise
            sent = {**row, "categories": list(categories), "products": list(products)}
            rels: list[RelBatch] = []
            if categories:
                rows = [{"src": campaign_id, "dst": c} for c in dict.fromkeys(categories)]
                rels.append(RelBatch.of("COVERS", "Campaign", rows))
            if products:
                rows = [{"src": p, "dst": campaign_id} for p in dict.fromkeys(products)]
                rels.append(RelBatch.of("IN_CAMPAIGN", "Product", rows))

            def add() -> int:
                if self._store.add_node("Campaign", row, rels) is not None:
                    raise taken  # another server's, since the check above
                return 1

            return self._write(
                [],
                audit={**entry, "input": sent, "before": None, "after": sent},
                campaigns=True,
                perform=add,
            )

    def join_campaign(
        self,
        merchant: str,
        campaign_id: str,
        *,
        products: Sequence[str] = (),
        actor: str = "local",
    ) -> Snapshot:
        """A merchant joins a campaign that is not over, putting up some of its products;
        then refresh. Joining again with nothing new is a no-op.

        Raises
        ------
        UnknownId
            If the merchant, campaign or a product is not in the graph.
        NotEligible
            If the merchant is excluded for compliance.
        BadArgument
            If the campaign is over, or a product is not the merchant's.
        """
        entry = {
            "actor": actor,
            "action": "joinCampaign",
            "target": campaign_id,
            "input": {"merchant": merchant, "products": list(products)},
        }
        with self._write_lock:
            try:
                snap = self._current()
                require_merchant(snap.features, merchant)
                brief = snap.campaigns.get(campaign_id)
                if brief is None:
                    raise UnknownId("Campaign", campaign_id)
                if brief.status(snap.features.today) == "over":
                    raise BadArgument(
                        "campaign", f"campaign {campaign_id} ended on {brief.end[:10]}"
                    )
                for p in products:
                    if p not in snap.product_merchant:
                        raise UnknownId("Product", p)
                    if snap.product_merchant[p] != merchant:
                        raise BadArgument("products", f"{p} is not {merchant}'s product")
                new = [p for p in dict.fromkeys(products) if p not in brief.products]
                if merchant in brief.merchants and not new:
                    return snap
            except KolmatchError as exc:
                self.record_refusal(entry, exc)
                raise
            batches: list[NodeBatch | RelBatch] = [
                RelBatch.of("JOINED", "Merchant", [{"src": merchant, "dst": campaign_id}])
            ]
            if new:
                rows = [{"src": p, "dst": campaign_id} for p in new]
                batches.append(RelBatch.of("IN_CAMPAIGN", "Product", rows))
            return self._write(
                batches, audit={**entry, "before": None, "after": entry["input"]}, campaigns=True
            )

    def read(self, spec: ReadSpec) -> MarketGraph:
        """Read ``spec`` from the store (:func:`read_market`) for an on-demand view: the growth
        report, the FACT split's inputs, the providers' track record.

        Under the write lock: the store's connection is shared, and no read may run inside a
        write's transaction.
        """
        with self._write_lock:
            return read_market(self._store, spec)

    def growth(self, *, merchants: int = 50, top: int = 20) -> GrowthReport:
        """The growth report (kolmatch/matching/growth.py): sales by month read from the store
        (``GROWTH_READ``), forecast, standing against the programme's goals, and the pairings
        that close the most gap, priced by the serving features; booked GMV: the booked slots,
        each priced at the serving features' expected GMV of its talent for its merchant."""
        g = self.read(GROWTH_READ)
        f, booked = self.snapshot.features, bookings(g)
        return growth_report(
            monthly_gmv(g), f, booked, slot_gmv(f, booked), merchants=merchants, top=top
        )

    def fact_split(
        self,
        merchant: str,
        *,
        budget: float,
        start: str | None = None,
        end: str | None = None,
        lang: str = "en",
    ) -> FactSplit:
        """The FACT split of ``budget`` for ``merchant`` (kolmatch/matching/fact.py) on the
        serving snapshot; the live rooms' fit and the campaign lift (``FACT_READ``) are read and
        fitted once per graph version. ``start``/``end``: ISO days of the window."""
        days = {
            name: date.fromisoformat(iso_day(text, name))
            for name, text in (("start", start), ("end", end))
            if text is not None
        }
        snap = self.snapshot
        cached = self._fact
        if cached is None or cached[0] != snap.version:
            g = self.read(FACT_READ)
            inputs = fact_inputs(g, snap.features)
            if g.identity[1] == snap.version:
                self._fact = (snap.version, inputs)
        else:
            inputs = cached[1]
        return fact_split(
            snap.features,
            merchant,
            budget=budget,
            field_model=inputs.field_model,
            lift=inputs.lift,
            campaign_products=inputs.campaign_products,
            event_days=inputs.event_days,
            start=days.get("start"),
            end=days.get("end"),
            lang=lang,
        )

    def _current(self) -> Snapshot:
        """The snapshot at the store's version: a write checks against what others wrote.

        The follower thread lags another process's write by up to its poll interval; a write
        catches up first so that its checks (an id taken, a violation already resolved) see it:
        from the change feed as the follower does (a write still pending there is waited for,
        up to :data:`FEED_WAIT_SECONDS`), a rebuild only where the feed cannot place a write.
        Called under the write lock.
        """
        while (version := self._store.version()) != self._snapshot.version:
            at = self._snapshot.version
            # as the follower would: the feed's writes, else a rebuild; a write pending in the
            # feed is waited for (_catch_up rebuilds once it has been pending too long)
            self._catch_up()
            if self._snapshot.version == at:
                if self._follower is not None and self._rebuild_since:
                    since = time.monotonic() - self._rebuild_since
                    raise Rebuilding(at, version, since)
                time.sleep(0.02)
        return self._snapshot

    def record_refusal(self, entry: dict[str, Any], exc: BaseException) -> None:
        """Log a write that was refused (``entry``: actor, action, target, input).

        Best effort: a refusal changes nothing, so a log that cannot be written is reported
        in the server's log rather than replacing the caller's error.
        """
        try:
            self._audit.append(
                {
                    **entry,
                    "outcome": "refused",
                    "error": _error_of(exc),
                    "before": None,
                    "after": None,
                }
            )
        except KolmatchError as fail:
            log.warning("refused write not audited: %s", fail)

    def _violation(self, violation_id: str) -> dict[str, Any]:
        """A violation's recorded state, read from the store (a write reads what it changes)."""
        fields = ("kind", "severity", "time", "resolved")
        rows = self._store.node_rows("Violation", fields)
        i = list(rows.ids).index(violation_id)
        out: dict[str, Any] = {"id": violation_id}
        for f in fields:
            v = rows.columns[f][i]
            out[f] = v.item() if isinstance(v, np.generic) else v
        out["resolved"] = bool(out["resolved"])
        return out

    def _write(
        self,
        batches: list[NodeBatch | RelBatch],
        *,
        audit: dict[str, Any],
        violations_only: bool = False,
        collaboration: CollaborationWrite | None = None,
        perform: Callable[[], int] | None = None,
        bookings: bool = False,
        campaigns: bool = False,
    ) -> Snapshot:
        """Write ``batches`` with the audit log's record around it, then refresh.

        The log's ``pending`` entry is on disk before the store is touched; its ending
        (``written`` with the new version, ``refused`` when the store's transaction refused
        it with a typed error, or ``failed``) follows the store's answer. ``perform``: a
        write of its own instead of ``batches`` (bookings, a collaboration, a violation, a
        campaign: checked in the store's transaction), returning how many records it wrote.
        One that wrote none (a repeat) ends as ``unchanged`` in the audit log and ``noop`` in
        the change feed: a version another process made meanwhile is not taken for its own.
        ``bookings``, ``campaigns``, ``violations_only``: what the write changes (the change
        feed's kind, and what a refresh re-reads).
        """
        with self._write_lock:
            try:
                # IncompleteLoad: refuse now rather than write unseen
                before = self._store.version()
            except KolmatchError as exc:
                self.record_refusal(audit, exc)
                raise
            ref = self._audit.append({**audit, "outcome": "pending", "version": before})
            ending = {k: audit[k] for k in ("actor", "action", "target")}
            # the change feed: other processes apply this write as we do, not by rebuilding
            # ``at``: a write pending for long is one whose process died (FEED_OPEN_SECONDS)
            change: dict[str, Any] = {"before": before, "id": ref, "at": round(time.time(), 3)}
            if collaboration is not None:
                # new when written: the store wrote it only if no row held its id, checked in
                # its own transaction (a repeat of another server's is a ``noop``), so every
                # process may add it as a row
                change |= {"kind": "collaboration", "write": asdict(collaboration)}
                change["collab_id"] = str(audit["target"])
            elif bookings:
                change["kind"] = "bookings"
            elif campaigns:
                change["kind"] = "campaigns"
            else:
                change["kind"] = "violations" if violations_only else "other"
            graph_id = self._store.graph_id()
            record_change(
                self._store.uri, graph_id, self._cache_dir, {**change, "state": "pending"}
            )
            wrote = True
            try:
                if perform is not None:
                    wrote = perform() > 0
                else:
                    self._store.write(batches)
            except BaseException as exc:
                # refused by the store's own checks in its transaction (an id another server
                # recorded first, a booking with no free slot, an end not in the graph):
                # nothing was written, as for a refusal before the store was touched
                refused = isinstance(exc, (Conflict, BadArgument, UnknownId))
                outcome = "refused" if refused else "failed"
                self._end(ref, {**ending, "outcome": outcome, "error": _error_of(exc)})
                record_change(
                    self._store.uri, graph_id, self._cache_dir, {**change, "state": "failed"}
                )
                raise
            if not wrote:  # a repeat: nothing of ours to refresh to
                try:
                    now: int | None = self._store.version()
                except KolmatchError:
                    now = None
                self._end(ref, {**ending, "outcome": "unchanged", "version": now})
                record_change(
                    self._store.uri, graph_id, self._cache_dir, {**change, "state": "noop"}
                )
                # of another server's write since our snapshot: answered with it, from the feed
                return self._caught_up(ref, time.monotonic() + FEED_WAIT_SECONDS)
            try:
                # the version this write made, as its own transaction raised it: the store's
                # version read now may already be another server's
                version = self._store.written_version()
                if version is None:
                    version = self._store.version()
            except KolmatchError:
                version = None  # written; the refresh below will say what is wrong
            self._end(ref, {**ending, "outcome": "written", "version": version})
            # the version it was made on: later than ``before`` when another server's write
            # landed between our read and our transaction (recorded as made, so that the
            # feed's versions follow one another and every process applies both)
            made_on = before if version is None else version - 1
            if made_on != before:
                # placed: pending on the version it was made on, no longer on the ones between
                # (another writer catching up there would wait for ours while ours waits for
                # theirs, each FEED_WAIT_SECONDS)
                record_change(
                    self._store.uri,
                    graph_id,
                    self._cache_dir,
                    {**change, "before": made_on, "state": "pending"},
                )
            # what this write waits for of other servers' writes still pending in the feed:
            # catching up through them
            wait_until = time.monotonic() + FEED_WAIT_SECONDS
            record_change(
                self._store.uri,
                graph_id,
                self._cache_dir,
                {**change, "before": made_on, "state": "written", "after": version},
            )
            alone = made_on == self._snapshot.version
            if version is not None:
                try:  # another server's write right after ours: theirs is in the feed too
                    moved = self._store.version() != version
                except KolmatchError:
                    moved = True
                if not alone or moved:
                    return self._caught_up(ref, wait_until)
            return self.refresh(
                bookings_since=made_on if bookings and alone else None,
                campaigns_since=made_on if campaigns and alone else None,
                violations_only_since=made_on if violations_only else None,
                collaboration_since=(
                    (made_on, collaboration, str(audit["target"]))
                    if collaboration and alone
                    else None
                ),
            )

    def _caught_up(self, own: str, deadline: float) -> Snapshot:
        """The snapshot after a write of ours (feed id ``own``) that landed past another
        server's, or found that server's write of the same record (a repeat): brought to the
        store's version from the change feed as a follower would
        (their write, then ours), without a full build unless the feed cannot place a write
        (then built behind, or at once in a process that does not follow: :meth:`_catch_up`).
        A write between still ``pending`` in the feed is waited for, until ``deadline``
        (monotonic seconds); past that, or while a rebuild runs, the answer is the snapshot
        as it stands (the follower brings it up; a process that does not follow refreshes at
        once, building if need be)."""
        try:
            while self._store.version() != self._snapshot.version:
                at = self._snapshot.version
                self._catch_up(own=own)
                if self._snapshot.version == at:
                    if self._rebuild_since:
                        break
                    if time.monotonic() > deadline:
                        if self._follower is None:  # nothing brings it up later: now
                            self.refresh()
                        break
                    time.sleep(0.02)
        except KolmatchError as exc:  # written: the follower brings the snapshot up later
            log.warning("kolmatch: after a write, catching up failed: %s", exc)
        return self._snapshot

    def _end(self, ref: str, entry: dict[str, Any]) -> None:
        """A write's second entry; a log that fails now is reported, the write stands."""
        try:
            self._audit.append({**entry, "id": ref})
        except KolmatchError as fail:
            log.error("audit entry %s has no ending (%s): %s", ref, entry["outcome"], fail)


def _patched(prev: Snapshot, f: MarketFeatures) -> dict[str, Any]:
    """``ranked_before`` and ``patched`` of a write's snapshot on ``prev`` whose features are
    ``f``: the rankings its own are patched from (``prev``'s, else those ``prev``'s were to be
    patched from), and those read as ``f``'s meanwhile (None where a patch declines)."""
    base = (prev.rankings, prev.features) if prev.rankings is not None else prev.ranked_before
    return {
        "ranked_before": base,
        "patched": None if base is None else PatchedRankings.of(*base, f),
    }


def _at_recalibration(prev: Snapshot, identity: Identity, f: MarketFeatures) -> Snapshot:
    """``prev`` at a recalibration's version: the graph as it was, the features of the new
    calibration, every merchant to be ranked again (every score moved)."""
    compliance = prev.compliance
    if compliance is not None:
        compliance = replace(compliance, identity=identity)
    return replace(
        prev,
        version=identity[1],
        features=f,
        rankings=None,
        compliance=compliance,
        ranked_before=None,
        patched=None,
    )


def _extended(into: list[str], ids: list[str]) -> int:
    """Append ``ids`` to ``into``; how many there were (what a write's ``perform`` answers)."""
    into.extend(ids)
    return len(ids)


def _quietly(run: Callable[[], None]) -> Callable[[], None]:
    """``run`` reporting no progress: a background thread's steps would break into the
    server's log lines, and nobody waits on them at the terminal."""

    def quiet() -> None:
        with progress.silenced():
            run()

    return quiet


def _newest_first(items: list[Collaboration]) -> list[Collaboration]:
    """A talent's collaborations as :attr:`Snapshot.history` keeps them: newest first, ties by
    collaboration id (descending), so a write and a rebuild give the same order."""
    return sorted(items, key=lambda x: (x.time, x.collab_id), reverse=True)


def _collaboration_record(c: Collaboration) -> dict[str, Any]:
    return {
        "id": c.collab_id,
        "merchant": c.merchant,
        "talent": c.talent,
        "product": c.product,
        "gmv": c.gmv,
        "orders": c.orders,
        "fee": c.fee,
        "time": c.time,
        "campaign": c.campaign,
    }


def _known(x: float) -> float | None:
    """An amount as recorded, None where it is not known (NaN in the graph)."""
    return None if np.isnan(x) else float(x)


def _repeated(old: Collaboration, sent: Mapping[str, Any]) -> dict[str, Any]:
    """``old``'s record when ``sent`` repeats it value for value.

    Raises
    ------
    Conflict
        Naming the fields that differ (and whose record it is).
    """
    before = _collaboration_record(old)
    differ = [k for k in COLLABORATION_FIELDS if not _same(k, before[k], sent[k])]
    if differ:
        raise Conflict("collaboration", old.collab_id, differ, owner=old.merchant)
    return before


def _same(name: str, recorded: Any, sent: Any) -> bool:
    """Whether a sent value equals the recorded one (dates compared as dates)."""
    if name == "time":
        try:
            return date.fromisoformat(str(recorded)) == date.fromisoformat(str(sent))
        except ValueError:
            return str(recorded) == str(sent)
    if name in ("gmv", "fee"):
        return recorded is not None and float(recorded) == float(sent)
    return bool(recorded == sent)


def _error_of(exc: BaseException) -> dict[str, str]:
    """What the audit log says of an error: its class, and its message if kolmatch raised it."""
    msg = str(exc) if isinstance(exc, KolmatchError) else "internal error"
    return {"type": type(exc).__name__, "message": msg}


def _names(ids: NDArray[np.str_], names: NDArray[np.object_]) -> dict[str, str]:
    return {str(i): str(n) if n else str(i) for i, n in zip(ids, names, strict=True)}


def dates_beside_campaign(
    campaign: str | None, start: str | None, end: str | None
) -> list[tuple[str, str]]:
    """The days a booking request gives beside a campaign, as ``(argument, value)``: a
    booking's window is a campaign's or a start and an end day, never both, so any is refused
    (:meth:`EngineService.book_talents`; the CLI asks before it opens the store). An empty day
    given is a day given.

    Parameters
    ----------
    campaign
        The campaign named, if any.
    start, end
        The days given, if any.

    Returns
    -------
    list of (str, str)
        ``("start", day)`` and ``("end", day)`` for each day given with a campaign; empty
        where there is no campaign or no day.

    Examples
    --------
    >>> dates_beside_campaign("cmp-1", None, "2026-07-30"), dates_beside_campaign(None, "x", "y")
    ([('end', '2026-07-30')], [])
    """
    if campaign is None:
        return []
    return [(name, v) for name, v in (("start", start), ("end", end)) if v is not None]


def _booking_window(
    snap: Snapshot,
    merchant: str,
    talents: Sequence[str],
    key: str,
    campaign: str | None,
    start: str | None,
    end: str | None,
) -> tuple[str, str]:
    """The checked window (first and last day) of a booking request: a campaign's the
    merchant joined, or ``start`` to ``end``; never both (see
    :meth:`EngineService.book_talents`).

    Raises
    ------
    BadArgument, UnknownId
        Naming the argument at fault.
    """
    checked_id(key, "key")
    if not talents:
        raise BadArgument("talents", "give at least one talent")
    if len(set(talents)) != len(talents):
        raise BadArgument("talents", "a talent is named twice")
    today = snap.features.today
    if campaign is not None:
        if clash := dates_beside_campaign(campaign, start, end):
            dates = ", ".join(f"{n} {v or repr(v)}" for n, v in clash)
            raise BadArgument(
                "campaign",
                f"give a campaign (its window is booked) or a start and an end day, not both: "
                f"got campaign {campaign} and {dates}",
            )
        brief = snap.campaigns.get(campaign)
        if brief is None:
            raise UnknownId("Campaign", campaign)
        if merchant not in brief.merchants:
            raise BadArgument("campaign", f"merchant {merchant} has not joined campaign {campaign}")
        start, end = brief.start[:10], brief.end[:10]
    elif start is None or end is None:
        raise BadArgument(
            "start" if start is None else "end", "give a campaign, or a start and an end day"
        )
    else:
        # a booking holds a coming slot: the history's days are done (a running
        # campaign's window may have begun; its end is checked below)
        day = date.fromisoformat(iso_day(start, "start"))
        if day <= today:
            raise BadArgument(
                "start", f"must be after the market's day {today.isoformat()}, got {start}"
            )
    if date.fromisoformat(iso_day(end, "end")) <= today:
        raise BadArgument(
            "end" if campaign is None else "campaign",
            f"the window ends by the market's day {today.isoformat()}: nothing to book",
        )
    return start, end


def _in_campaign(snap: Snapshot, campaign: str, merchant: str | None, day: str) -> None:
    """Check that a collaboration on ``day`` of ``merchant``'s product ran in ``campaign``:
    the merchant joined it and its window holds the day.

    Raises
    ------
    UnknownId
        If the campaign is not in the graph (never a dangling campaign).
    BadArgument
        Naming ``campaign``.
    """
    brief = snap.campaigns.get(campaign)
    if brief is None:
        raise UnknownId("Campaign", campaign)
    if merchant is None:
        raise BadArgument("campaign", f"the product has no merchant to have joined {campaign}")
    if merchant not in brief.merchants:
        raise BadArgument("campaign", f"merchant {merchant} has not joined campaign {campaign}")
    if not brief.start[:10] <= day[:10] <= brief.end[:10]:
        raise BadArgument(
            "campaign",
            f"campaign {campaign} ran {brief.start[:10]} to {brief.end[:10]}, not on {day}",
        )
