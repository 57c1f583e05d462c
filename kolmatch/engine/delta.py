"""A load of users' rows applied to the cached features as a delta, not a build.

A version's delta base is kept beside its cached features: the market graph the build read
(its :data:`~kolmatch.graph.market.FEATURES_READ` tables, :mod:`kolmatch.engine.graph_file`)
and its per-user stage (an ``.npz`` entry of kind ``stage``). After a load that wrote only
users' relationships (a day of follows and purchases), :func:`features_after_load` reads
those users' rows of the types written at the store's new version, splices them into the
graph kept, takes the stage by difference, caches the features of the new version and keeps
the new base (docs/scale.md, "Delta loads"). A base kept before a day of the API's writes (a
collaboration, a flag, a booking, a campaign: the change feed says which) still serves: those
writes touch no user's row, and the tables they write are read again at the new version.
At m, 1% of a day's follows and purchases: the new version's features cached 10.4 s after
the load's write, where a read and build took ~98 s that day (~77 s on a quieter one).
A load that writes User nodes (a day's sign-ups, a user's corrected gender or age band) is
a delta too: those User nodes are read again into the base's table, the base renumbered
onto it where some are new (a new user is one without rows before, among the changed
users). Anything it cannot apply (no base, a write the feed does not show as the API's,
nodes of another label, a delta that moves what every user's stage reads, engagements dated
after the features' date, a version that is not the next, too many users changed since the
last build) gives None: the caller builds.

The engine's builds keep the base (:func:`~kolmatch.engine.cache.load_features`: the graph
before the build, the stage as the build makes it), and ``kolmatch load`` loads through
:func:`load_as_delta`, which holds the rebuild lock across the write and the delta: serving
processes that see the new version wait for that lock and then load the features it cached,
as they do after another process's build.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from kolmatch.engine.arrays import UnreadableArrays
from kolmatch.engine.cache import (
    STALE_TMP_SECONDS,
    _cache_dir,
    _cache_path,
    _cached_versions,
    _load,
    _store,
    api_writes_alone,
    keep_walks,
    rebuilding_now,
)
from kolmatch.engine.graph_file import is_graph_folder, read_graph, write_graph
from kolmatch.errors import StoreError
from kolmatch.graph.market import (
    FEATURES_READ,
    USER_EDGES_READ,
    EdgeKey,
    Fields,
    Identity,
    MarketGraph,
    ReadSpec,
    read_edges_from,
    read_market,
    read_nodes_into,
)
from kolmatch.graph.model import NODE_BY_FILE, REL_BY_FILE, rel_spec
from kolmatch.graph.projection import EdgeList, NodeTable
from kolmatch.graph.store import GraphStore
from kolmatch.loaders.load import LoadReport, load_folder
from kolmatch.matching.features import (
    MarketFeatures,
    features_after_delta,
    features_with_users,
    user_shared,
)
from kolmatch.matching.user_partition import (
    I64,
    UserStage,
    day_numbers,
    stage_with_users,
    user_part_with,
    user_parts_of,
)

__all__ = [
    "DELTA_SHARE_MAX",
    "delta_base",
    "features_after_load",
    "keep_for_delta",
    "keep_graph",
    "keep_stage",
    "load_as_delta",
]

log = logging.getLogger(__name__)

#: Users changed by deltas since the last full build, as a share of all users, past which a
#: load is a build: a delta keeps the build's walks (PageRank, the category PPR tails), date
#: and calibration, which a quarter of the audience moved would leave behind.
DELTA_SHARE_MAX = 0.25

#: Engagements: the build's reference date is the latest day one was seen.
_ENGAGED = ("ENGAGED_WITH", "User")
_EPOCH = date(1970, 1, 1)

#: The file of a kept graph's folder that counts the users changed since the last build.
_SINCE_BUILD = "since-build.json"

#: The tables of :data:`FEATURES_READ` those writes change, read again at a delta's version
#: onto a base kept before them (small: at m the collaborations are 30k rows).
_API_TABLES = ReadSpec(
    {label: FEATURES_READ.nodes[label] for label in ("Violation", "Campaign")},
    {
        key: FEATURES_READ.edges[key]
        for key in (
            ("PROMOTED", "Talent"),
            ("HAS_VIOLATION", "Talent"),
            ("HAS_VIOLATION", "Merchant"),
            ("HAS_VIOLATION", "Product"),
            ("BOOKED", "Talent"),
            ("JOINED", "Merchant"),
        )
    },
)


def _graph_folder(uri: str, d: Path, identity: Identity) -> Path:
    """``graph-<format>-<store>-v<version>``: the folder beside the cache entries of that
    version (named as :func:`~kolmatch.engine.cache._cache_path` names them)."""
    return d / _cache_path(uri, d, "graph", identity).name.removesuffix(".npz")


def keep_for_delta(
    uri: str,
    cache_dir: str | Path | None,
    g: MarketGraph,
    stage: UserStage,
    changed_users: int = 0,
) -> None:
    """Keep ``g`` (its :data:`FEATURES_READ` tables) and its per-user stage beside the cache,
    as the base of a delta from ``g``'s version (:func:`keep_graph`, then
    :func:`keep_stage`).

    Parameters
    ----------
    uri
        The store's URI.
    cache_dir
        The cache folder (as :func:`~kolmatch.engine.cache.load_features`).
    g
        The graph the features of its version were built from.
    stage
        Its per-user stage (:func:`~kolmatch.matching.user_partition.user_stage`).
    changed_users
        Users changed by deltas since the last full build (0: a build's own base).

    Raises
    ------
    OSError
        If they cannot be written (nothing of them is left).
    """
    folder = keep_graph(uri, cache_dir, g)
    try:
        keep_stage(uri, cache_dir, g.identity, stage, changed_users)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def keep_graph(uri: str, cache_dir: str | Path | None, g: MarketGraph) -> Path:
    """Write ``g``'s :data:`FEATURES_READ` tables beside the cache as its version's (a build
    does so before it lets the user edges go; its stage follows: :func:`keep_stage`).

    Parameters
    ----------
    uri, cache_dir, g
        As :func:`keep_for_delta`.

    Returns
    -------
    pathlib.Path
        The graph's folder.

    Raises
    ------
    OSError
        If it cannot be written (nothing of it is left).
    """
    d = _cache_dir(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    folder = _graph_folder(uri, d, g.identity)
    if not folder.exists():
        write_graph(folder, g.restricted(FEATURES_READ))
    return folder


def drop_base(uri: str, cache_dir: str | Path | None, identity: Identity) -> None:
    """Remove the delta base kept for ``identity`` (its graph folder, its stage): what a build
    that failed leaves of the version it never cached.

    Parameters
    ----------
    uri, cache_dir
        As :func:`keep_for_delta`.
    identity
        The graph's id and version.
    """
    d = _cache_dir(cache_dir)
    shutil.rmtree(_graph_folder(uri, d, identity), ignore_errors=True)
    _cache_path(uri, d, "stage", identity).unlink(missing_ok=True)


def keep_stage(
    uri: str,
    cache_dir: str | Path | None,
    identity: Identity,
    stage: UserStage,
    changed_users: int = 0,
) -> None:
    """Write the per-user stage of the version ``identity`` beside its graph
    (:func:`keep_graph`) and the users changed since the last build (a build's: none, the
    count starts again); the store's bases of older versions go, and graph folders no stage
    goes with (another store's, evicted with its entries; one a killed writer left).

    Parameters
    ----------
    uri, cache_dir, stage, changed_users
        As :func:`keep_for_delta`.
    identity
        The graph's id and version.

    Raises
    ------
    OSError
        If it cannot be written.
    """
    d = _cache_dir(cache_dir)
    folder = _graph_folder(uri, d, identity)
    count = folder / _SINCE_BUILD
    if changed_users:
        count.write_text(json.dumps({"changed_users": changed_users}))
    else:
        count.unlink(missing_ok=True)
    # (what every user's stage reads is made again from the graph: user_shared)
    path = _cache_path(uri, d, "stage", identity)
    _store(path, "stage", replace(stage, shared=None), strict=True)
    _evict_graphs(d, folder)


def _evict_graphs(d: Path, kept: Path) -> None:
    """Drop the graph folders of ``kept``'s store older than it, and any other graph folder
    (or a writer's temporary one) that no stage goes with and that nobody wrote for an hour
    (a build in another process writes its graph before its stage)."""
    mine, version = kept.name.rsplit("-v", 1)
    for old in [*d.glob("graph-*"), *d.glob(".graph-*")]:
        if old == kept or not old.is_dir():
            continue
        name, _, at = old.name.rpartition("-v")
        if name == mine and at.isdigit():
            if int(at) < int(version):
                shutil.rmtree(old, ignore_errors=True)
            continue
        stage = d / f"stage{old.name.removeprefix('graph')}.npz"
        with contextlib.suppress(OSError):
            if not stage.exists() and time.time() - old.stat().st_mtime > STALE_TMP_SECONDS:
                shutil.rmtree(old, ignore_errors=True)


def delta_base(
    uri: str,
    cache_dir: str | Path | None,
    before: MarketFeatures,
    identity: Identity,
) -> tuple[MarketGraph, UserStage] | None:
    """The graph and per-user stage kept for ``identity`` (:func:`keep_for_delta`), the stage
    naming what it was made with (from the graph, ``before``'s date and calibration); None if
    none is kept or it is unreadable.

    Parameters
    ----------
    uri, cache_dir
        As :func:`keep_for_delta`.
    before
        The features of that version.
    identity
        The graph's id and version.

    Notes
    -----
    The graph's numeric arrays are read-only views of its files (``read_graph(mapped=True)``):
    a delta makes new arrays of what it changes, and what it keeps (the bookings' rows, say)
    stays a view, so a process holding such features holds the folder's disk space after
    the folder is evicted, until it drops them.
    """
    d = _cache_dir(cache_dir)
    stage = _load(_cache_path(uri, d, "stage", identity), UserStage)
    if stage is None:
        return None
    try:
        # (mapped: a delta reads the base and makes new arrays of what it changes)
        g = read_graph(_graph_folder(uri, d, identity), mapped=True)
    except UnreadableArrays as exc:
        log.info("kolmatch: no delta base for %s (%s)", identity, exc)
        return None
    if g.identity != identity:
        return None
    return g, replace(stage, shared=user_shared(g, before.today, before.calibration))


def features_after_load(
    store: GraphStore,
    cache_dir: str | Path | None,
    before_version: int,
    users: Sequence[str],
    types: Iterable[EdgeKey],
    node_users: Sequence[str] = (),
    written: Mapping[EdgeKey, pa.Table] | None = None,
) -> MarketFeatures | None:
    """The features of the store's version after a load of ``users``' rows of ``types``, by
    difference from the cached features and delta base of ``before_version``: cached as that
    version's, and the new base kept (:func:`keep_for_delta`). The base may be older, where
    the change feed shows that only the API's writes came since (a collaboration, a flag or a
    resolve, bookings, campaigns: :data:`~kolmatch.engine.cache.WRITE_KINDS`): their tables are
    read again.

    Parameters
    ----------
    store
        The store, one version past ``before_version`` by that load alone.
    cache_dir
        As :func:`keep_for_delta`.
    before_version
        The version before the load.
    users
        The ids of every user the load wrote a row from (of ``types``).
    types
        The relationship types from User the load wrote (of :data:`USER_EDGES_READ`).
    node_users
        The ids of the User nodes the load wrote: new users (sign-ups) and users whose own
        rows (gender, age band) it corrected: those nodes are read again.
    written
        The (``src``, ``dst``) ids of the relationships the load wrote, of each of ``types``
        (:meth:`~kolmatch.loaders.load.LoadReport.pairs`), if known: a type the features read
        without properties or key (a follow) is then taken from them, not read back, and the
        other types are read back from the users that wrote them alone (at m a day's follows
        are 1.0M of the changed users' 1.28M rows, the load's own 88k). None: every type is
        read back from every user of ``users``.

    Returns
    -------
    MarketFeatures or None
        None where the delta cannot be applied (no features or base of ``before_version`` or
        of a version before it that only the API's writes followed, a user the base lacks
        that the load did not write, an end the base lacks, another version than the next,
        a delta that moves what every user's stage reads, more users changed since the last
        build than :data:`DELTA_SHARE_MAX` of them): the caller builds.
    """
    d = _cache_dir(cache_dir)
    base = _base_of(store.uri, d, (store.graph_id(), before_version))
    if base is None:
        return None
    applied = _applied(store, d, before_version, [base], users, types, node_users, written)
    if applied is None:
        return None
    _keep(store.uri, d, *applied[1:])
    return applied[0]


def _keep(uri: str, d: Path, after: MarketGraph, changed: UserStage, users: int) -> None:
    """:func:`keep_for_delta`, a failure said in the log (the next load is then a build)."""
    try:
        keep_for_delta(uri, d, after, changed, users)
    except OSError as exc:
        log.warning("kolmatch: cannot keep the graph for a delta in %s (%s)", d, exc)


def _applied(
    store: GraphStore,
    d: Path,
    before_version: int,
    based: list[_Base],
    users: Sequence[str],
    types: Iterable[EdgeKey],
    node_users: Sequence[str] = (),
    written: Mapping[EdgeKey, pa.Table] | None = None,
) -> tuple[MarketFeatures, MarketGraph, UserStage, int] | None:
    """:func:`features_after_load` but for keeping the new base: the features (cached), the
    graph and the stage after the delta, and the users changed since the last build.

    ``based`` holds the base of ``before_version`` (:func:`_base_of`: ``kolmatch load`` reads
    it while it writes), taken out of the list so that the caller holds no reference to it.
    It may be of a version before ``before_version`` where only the API's writes came
    between (:func:`_base_version`): the tables they write are then read again at the new
    version. The users' rows are read from the store on a thread of their own while the
    users' parts before are made (at m ~0.5 s). Where the load wrote User nodes
    (``node_users``), those nodes are read into the base's User table first, on that thread:
    where some are new the base is renumbered onto it, a new user's rows before are none, and
    every user it names is among the changed ones. With ``written`` (the pairs of each type
    the load wrote), a type read without properties or key is added from its pairs
    (:meth:`~kolmatch.graph.market.MarketGraph.with_pairs`) and the others are read back from
    their writers alone."""
    base = based.pop()
    types = tuple(dict.fromkeys(types))
    if any(key not in USER_EDGES_READ for key in types):
        return None
    if written is not None and any(key not in written for key in types):
        raise ValueError("written must hold the pairs of every type written")
    paired = () if written is None else tuple(k for k in types if _pairs_alone(k))
    reread = tuple(k for k in types if k not in paired)
    graph_id = store.graph_id()
    if base.graph.identity[0] != graph_id:
        return None
    at, before = base.graph.identity[1], base.before
    identity = (graph_id, at)
    users = sorted(set(users) | set(node_users))
    changed_users = _since_build(_graph_folder(store.uri, d, identity)) + len(users)
    edges = {k: USER_EDGES_READ[k] for k in reread}
    # the users whose rows are read back: those that wrote a type read back (all, unknown)
    writers = (
        users
        if written is None
        else sorted({u for k in reread for u in written[k].column("src").to_pylist()})
    )
    reads: list[Future[tuple[MarketGraph, I64 | None]]] = []
    rows_early: list[Future[dict[EdgeKey, tuple[I64, I64]]]] = []  # (the pairs' rows)
    try:
        with (
            ThreadPoolExecutor(1, thread_name_prefix="kolmatch-delta-read") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="kolmatch-delta-parts") as side,
        ):
            g, stage = base.graph, base.stage
            del base  # (the graph and stage before renumbering go with their last use)
            if changed_users > DELTA_SHARE_MAX * len(g.node("User")):
                raise StoreError(
                    f"{changed_users:,} users changed since the last build, over "
                    f"{DELTA_SHARE_MAX:.0%} of them: a build measures the walks and date again"
                )
            # (a refusal once the read has started waits for it: the store is not closed under
            # a read running; at m ~3 s)
            reads.append(pool.submit(_users_rows, store, g, writers, edges, node_users))
            if not node_users:  # (the pairs' rows in the base's tables: they stay)
                rows_early.append(pool.submit(_pair_rows, g, paired, written or {}))
            if at < before_version:  # the API's writes since the base: their tables anew
                g = read_market(store, _API_TABLES, base=g)
            # no User nodes written: the users' rows are the base's, and their parts before are
            # made on a thread while the read runs and its rows are spliced in (at m ~0.5 s)
            known = None if node_users else _rows_of(g.node("User"), users)
            early = None if known is None else side.submit(user_parts_of, g, known)
            read, now = reads[0].result()
            table = read.node("User")
            if now is not None and len(table) > len(now):  # (new users: rows move)
                stage = stage_with_users(stage, now, len(table))
                before = features_with_users(before, table.ids, now)
                g = g.with_table(_with_columns_of(table, g.node("User"), now), now)
            rows = _rows_of(table, users) if known is None else known
            # (the users' own columns before: the base's)
            parts = early or side.submit(user_parts_of, g, rows)
            g = MarketGraph(g.identity, {**g.nodes, "User": table}, g.edges)
            # the pairs written added on the reader's thread (done with the store by now),
            # while the rows read back are spliced in here: the two touch other types
            pair_rows = (
                rows_early[0] if rows_early else pool.submit(_pair_rows, g, paired, written or {})
            ).result()
            pairs = pool.submit(_with_pairs, g, pair_rows)
            if g.identity[1] not in (at, read.identity[1]):
                raise StoreError(
                    f"a write came between the users' rows (version {read.identity[1]}) and "
                    f"the API's tables (version {g.identity[1]})"
                )
            if read.identity[1] != before_version + 1:
                raise StoreError(
                    f"version {read.identity[1]} is not the one after {before_version}"
                )
            if _ENGAGED in read.edges:
                last = day_numbers(read.edge(*_ENGAGED).columns["last"])
                if (last > (before.today - _EPOCH).days).any():  # (NaN: no date, never later)
                    raise StoreError(
                        f"engagements dated after the features' reference date {before.today}: "
                        "a build measures it again"
                    )
            after = g.with_rows_from(
                read, "User", rows if written is None else _rows_of(table, writers)
            )
            after = MarketGraph(after.identity, after.nodes, {**after.edges, **pairs.result()})
            old = parts.result()
        f, changed = features_after_delta(
            after, before, stage, old, user_part_with(old, after, types)
        )
    except StoreError as exc:
        log.info("kolmatch: the load is no delta of version %s (%s)", before_version, exc)
        return None
    _store(_cache_path(store.uri, d, "features", after.identity), "features", f)
    # (a build of this version, or of one the API's writes alone made from it, then takes the
    # walks and date kept here: the same features as this delta's)
    keep_walks(store.uri, d, after, f, changed_users)
    return f, after, changed, changed_users


def _rows_of(table: NodeTable, users: list[str]) -> I64:
    """The rows of ``users`` in ``table`` (the User table after the load), sorted."""
    rows = table.indices_of(users)
    if (rows < 0).any():
        raise StoreError("a user the base lacks")
    return np.unique(rows)


def _pairs_alone(key: EdgeKey) -> bool:
    """Whether the features read ``key``'s type as its pairs alone (no property, no key): a
    load's pairs of it are then the rows a read back would give."""
    return not USER_EDGES_READ[key] and not rel_spec(key[0]).key


def _pair_rows(
    g: MarketGraph, keys: Iterable[EdgeKey], written: Mapping[EdgeKey, pa.Table]
) -> dict[EdgeKey, tuple[I64, I64]]:
    """The rows in ``g``'s node tables (its edges are not read) of the ends of the pairs of
    ``keys``' types a load wrote (ids: ``src``, ``dst``)."""
    return {key: g.rows_of_pairs(key, written[key]) for key in keys}


def _with_pairs(g: MarketGraph, rows: Mapping[EdgeKey, tuple[I64, I64]]) -> dict[EdgeKey, EdgeList]:
    """The edges of each type of ``rows`` of ``g`` with those pairs (rows) added."""
    return {key: g.with_pairs(key, *ends).edge(*key) for key, ends in rows.items()}


def _users_rows(
    store: GraphStore,
    base: MarketGraph,
    users: Sequence[str],
    edges: Mapping[EdgeKey, Fields],
    node_users: Sequence[str],
) -> tuple[MarketGraph, I64 | None]:
    """The rows of ``edges`` from ``users`` at the store's version, on ``base``'s node tables
    or, where the load wrote the User nodes ``node_users``, on the User table with those read
    again first (:func:`~kolmatch.graph.market.read_nodes_into`); and then the rows of
    ``base``'s users in that table (else None)."""
    now = None
    if node_users:
        identity, table, now = read_nodes_into(store, base.node("User"), node_users)
        base = MarketGraph(identity, {**base.nodes, "User": table}, {})
    read = read_edges_from(store, base, "User", users, edges)
    if now is not None and read.identity != base.identity:
        raise StoreError(
            f"a write came between the User nodes (version {base.identity[1]}) and the "
            f"users' rows (version {read.identity[1]})"
        )
    return read, now


def _with_columns_of(table: NodeTable, was: NodeTable, rows: I64) -> NodeTable:
    """``table`` (a later read of the label) with ``was``'s columns for the nodes it had
    (at ``rows``): the users' parts before a load that corrected some of them."""
    columns = {}
    for name, now in table.columns.items():
        merged = now.copy()
        merged[rows] = was.columns[name]
        columns[name] = merged
    return replace(table, columns=columns)


def _since_build(folder: Path) -> int:
    """The users changed by deltas since the last build that a kept graph's folder counts (0
    for a build's own base; past any cap where the count is unreadable: a build)."""
    path = folder / _SINCE_BUILD
    if not path.exists():
        return 0
    try:
        return int(json.loads(path.read_text())["changed_users"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1 << 62


def load_as_delta(
    folder: str | Path,
    store: GraphStore,
    cache_dir: str | Path | None = None,
    *,
    progress: bool = False,
    replace_unfinished: bool = False,
) -> tuple[LoadReport, tuple[MarketFeatures, int] | None]:
    """:func:`~kolmatch.loaders.load.load_folder`, and the features of the version it makes
    by a delta where it can: a load that wrote only users' relationships (of the types the
    features read) and User nodes (sign-ups, corrected users) into a store whose features of
    the version before are cached with their base. The graph's rebuild lock is held across
    the write and the delta (if another process holds it, it is building: the load is made,
    the delta not). The delta base (the features, graph and stage kept) is read on a thread
    while the load writes: nothing the load writes is in it.

    Parameters
    ----------
    folder, store, progress, replace_unfinished
        As :func:`~kolmatch.loaders.load.load_folder`.
    cache_dir
        As :func:`keep_for_delta`.

    Returns
    -------
    tuple of LoadReport and (MarketFeatures, int) or None
        The load's report (its seconds also ``delta``, applying it, and ``keep``, keeping the
        new base, where a delta was tried), and the features cached for the new version with
        that version (None where the load was no delta of them, or its delta failed after the
        load was in: said in the log, and the next reader builds).

    Raises
    ------
    InputError
        As :func:`~kolmatch.loaders.load.load_folder` (nothing is written).
    """
    d = _cache_dir(cache_dir)

    def load() -> LoadReport:
        return load_folder(folder, store, progress=progress, replace_unfinished=replace_unfinished)

    try:
        v = store.version()
        identity = (store.graph_id(), v) if v else None
    except StoreError:
        identity = None
    if identity is None or _base_version(store.uri, d, identity) is None:
        return load(), None
    with (
        rebuilding_now(store.uri, identity[0], d) as held,
        ThreadPoolExecutor(1, thread_name_prefix="kolmatch-delta-base") as pre,
    ):
        # the base read while the load writes (the store's write leaves a core free: at m the
        # base's ~0.5 s came after it), where the folder's files are of users' rows alone;
        # waited for within the delta's time below
        early = (
            pre.submit(_base_of, store.uri, d, identity)
            if held and _users_rows_alone(Path(folder))
            else None
        )
        report = load()
        users, types, node_users = report.rel_users, report.rel_types, report.node_users
        # (a type the features do not read from User: _applied says no, before reading)
        if (
            early is None
            or report.node_labels - {"User"}
            or users is None
            or node_users is None
            or not (types or node_users)
        ):
            return report, None
        t0 = time.perf_counter()
        try:  # (the load is in: a failure of its delta leaves a build to the next reader)
            written = (
                None
                if report.rel_pairs is None
                else {k: report.pairs(*k) for k in types if k[1] == "User"}
            )
            # (handed over: the base before the delta goes with its last use in _applied)
            base = [b] if (b := early.result()) is not None else []
            del b, early
            applied = (
                _applied(
                    store,
                    d,
                    identity[1],
                    base,
                    sorted(users),
                    sorted(types),
                    sorted(node_users),
                    written,
                )
                if base
                else None
            )
        except Exception:
            log.warning("kolmatch: applying the load as a delta failed", exc_info=True)
            applied = None
        report.seconds["delta"] = time.perf_counter() - t0
    if applied is None:
        return report, None
    # the base after the lock: the workers waiting for it need the features alone (at m the
    # graph and stage take ~3.6 s to write)
    t0 = time.perf_counter()
    try:
        _keep(store.uri, d, *applied[1:])
    except Exception:
        log.warning("kolmatch: keeping the base after a delta failed", exc_info=True)
    report.seconds["keep"] = time.perf_counter() - t0
    return report, (applied[0], identity[1] + 1)


def _base_version(uri: str, d: Path, identity: Identity) -> int | None:
    """The version of the latest delta base kept for the graph, if it is ``identity``'s or
    the change feed shows only the API's writes (:data:`~kolmatch.engine.cache.WRITE_KINDS`:
    none writes a user's row) made the versions since it, each recorded as written; else None
    (nothing is read but the feed)."""
    graph_id, version = identity
    for at in _cached_versions(uri, d, "stage", graph_id):  # latest first
        if at > version or not is_graph_folder(_graph_folder(uri, d, (graph_id, at))):
            continue
        return at if api_writes_alone(uri, graph_id, d, at, version) else None
    return None


@dataclass(frozen=True)
class _Base:
    """A delta base read (:func:`_base_of`): the features its delta starts from (of its
    version or a later one only the API's writes made) and its graph and stage."""

    before: MarketFeatures
    graph: MarketGraph
    stage: UserStage


def _users_rows_alone(folder: Path) -> bool:
    """Whether every import file in ``folder`` (by name) is of users or of relationships the
    features read from users: a load that can be a delta (its report says for sure)."""
    try:
        stems = {p.stem for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    except OSError:
        return False
    return all(
        (stem in NODE_BY_FILE and NODE_BY_FILE[stem].label == "User")
        or (stem in REL_BY_FILE and (REL_BY_FILE[stem].type, "User") in USER_EDGES_READ)
        for stem in stems
    )


def _base_of(uri: str, d: Path, identity: Identity) -> _Base | None:
    """The delta base a load into the store at ``identity`` would start from, read before the
    load (its files are the cache's, untouched by the load): what :func:`_applied` reads
    first, read while the load writes. None where there is none (a build follows)."""
    at = _base_version(uri, d, identity)
    before = None if at is None else _features_since(uri, d, identity[0], at, identity[1])
    if at is None or before is None:
        return None
    kept = delta_base(uri, d, before, (identity[0], at))
    return None if kept is None else _Base(before, *kept)


def _features_since(
    uri: str, d: Path, graph_id: str, at: int, version: int
) -> MarketFeatures | None:
    """The latest features cached of a version from ``at`` to ``version`` (a delta takes their
    calibration, walks and date, which the API's writes between do not move)."""
    for v in _cached_versions(uri, d, "features", graph_id):
        if at <= v <= version:
            f = _load(_cache_path(uri, d, "features", (graph_id, v)), MarketFeatures)
            if f is not None:
                return f
    return None
