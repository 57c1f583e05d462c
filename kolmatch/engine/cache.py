"""Market features per graph version: read the graph once, build, cache on disk.

This is the one place that decides what to read from a store: the whole market
(:data:`~kolmatch.graph.market.FULL_READ`) when the features must be built, only compliance
when the one write since the cached version touched violations alone, and nothing but what the
caller adds (``also``) when the features are cached.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from kolmatch.engine.arrays import UnreadableArrays, read_arrays, write_arrays
from kolmatch.graph.market import COMPLIANCE_READ, FULL_READ, MarketGraph, ReadSpec, read_market
from kolmatch.graph.store import GraphStore
from kolmatch.matching.features import MarketFeatures, build_features, refresh_risk
from kolmatch.matching.score import MerchantRankings, rank_merchants

__all__ = [
    "CACHE_FORMAT",
    "Identity",
    "cached_features",
    "cached_rankings",
    "features_of",
    "load_features",
]

T = TypeVar("T")
Identity = tuple[str, int]  # (graph id, version): what a cache entry is keyed on
log = logging.getLogger("kolmatch.engine")

#: Bumped whenever MarketFeatures or its computation changes: old cache files are ignored.
CACHE_FORMAT = 15


def _cache_dir(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir or os.environ.get("KOLMATCH_CACHE") or ".kolmatch/cache")


def _cache_path(uri: str, cache_dir: Path, kind: str, identity: Identity) -> Path:
    graph_id, version = identity
    ident = f"{CACHE_FORMAT}|{uri}|{graph_id}|{version}"
    key = hashlib.sha256(ident.encode()).hexdigest()
    return cache_dir / f"{kind}-{key[:24]}.npz"


def load_features(
    store: GraphStore,
    cache_dir: str | Path | None = None,
    *,
    also: ReadSpec | None = None,
    risk_update_of: tuple[MarketFeatures, int] | None = None,
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
        break
    g = read_market(store, FULL_READ | extra)
    f = build_features(g)
    _store(_cache_path(store.uri, d, "features", g.identity), "features", f)
    return f, g


def cached_features(store: GraphStore, cache_dir: str | Path | None = None) -> MarketFeatures:
    """The store's market features (:func:`load_features` without a graph for the caller).

    Parameters
    ----------
    store
        Any GraphStore.
    cache_dir
        As :func:`load_features`.
    """
    return load_features(store, cache_dir)[0]


def features_of(store: GraphStore) -> MarketFeatures:
    """The store's market features built now from one full read, bypassing the cache.

    Parameters
    ----------
    store
        Any GraphStore.
    """
    return build_features(read_market(store, FULL_READ))


def cached_rankings(
    uri: str, identity: Identity, f: MarketFeatures, cache_dir: str | Path | None = None
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
    """
    return _cached(
        uri, identity, cache_dir, "rankings", MerchantRankings, lambda: rank_merchants(f)
    )


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
        return read_arrays(path, cls, version=CACHE_FORMAT)
    except UnreadableArrays as exc:
        log.info("kolmatch: rebuilding %s (%s)", path.name, exc)
        return None  # unreadable, or of another format: rebuilt by the caller


def _store(path: Path, kind: str, value: object) -> None:
    d = path.parent
    tmp: str | None = None
    try:
        d.mkdir(parents=True, exist_ok=True)
        for old in [*d.glob(f"{kind}-*.npz"), *d.glob(f"{kind}-*.pkl")]:
            old.unlink(missing_ok=True)  # one entry per kind; pickles of older versions go too
        with tempfile.NamedTemporaryFile(dir=d, delete=False, suffix=".tmp") as out:
            tmp = out.name
        write_arrays(Path(tmp), value, version=CACHE_FORMAT)
        os.replace(tmp, path)
    except OSError as exc:
        # a read-only or full cache folder costs speed, not correctness: say so, leave no debris
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        log.warning("kolmatch: cannot write the %s cache in %s (%s); not cached", kind, d, exc)
