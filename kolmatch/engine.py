"""The matching service: market features built once per graph version, cached on disk."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from kolmatch.graph.store import GraphStore
from kolmatch.matching.features import MarketFeatures, build_features, refresh_risk
from kolmatch.matching.score import MerchantRankings, rank_merchants

__all__ = ["CACHE_FORMAT", "cached_features", "cached_rankings"]

T = TypeVar("T")
log = logging.getLogger("kolmatch.engine")

#: Bumped whenever MarketFeatures or its computation changes: old cache files are ignored.
CACHE_FORMAT = 7


def _cache_path(store: GraphStore, cache_dir: Path, kind: str, identity: tuple[str, int]) -> Path:
    graph_id, version = identity
    ident = f"{CACHE_FORMAT}|{store.uri}|{graph_id}|{version}"
    key = hashlib.sha256(ident.encode()).hexdigest()
    return cache_dir / f"{kind}-{key[:24]}.pkl"


def cached_features(
    store: GraphStore,
    cache_dir: str | Path | None = None,
    *,
    risk_update_of: tuple[MarketFeatures, int] | None = None,
) -> MarketFeatures:
    """The store's market features, from the cache if the graph has not changed since.

    The cache file is keyed by the store URI, its :meth:`~GraphStore.graph_id` (new when a
    graph is deleted and written anew), its :meth:`~GraphStore.version` (raised by
    every write) and :data:`CACHE_FORMAT`; it is written atomically (temporary file, then
    rename), so a crash never leaves a half-written cache behind.

    Parameters
    ----------
    store
        Any GraphStore.
    cache_dir
        Where cache files live; default ``KOLMATCH_CACHE`` or ``./.kolmatch/cache``.
    risk_update_of
        ``(features, v)``: this graph's features at version ``v``, where the one write after
        ``v`` touched only violations. If the graph is at ``v + 1`` and stays there while it is
        read, a cache miss re-reads compliance alone
        (:func:`~kolmatch.matching.features.refresh_risk`); otherwise (another write came in)
        the whole graph is read.
    """
    ident = store.identity()
    if risk_update_of is not None and ident[1] == risk_update_of[1] + 1:
        prev = risk_update_of[0]

        def update() -> MarketFeatures:
            f = refresh_risk(store, prev)
            if store.identity() != ident:  # written meanwhile: f may mix two versions
                raise _Moved
            return f

        try:
            return _cached(store, cache_dir, "features", MarketFeatures, update, ident)
        except _Moved:
            ident = store.identity()
    return _cached(
        store, cache_dir, "features", MarketFeatures, lambda: build_features(store), ident
    )


def cached_rankings(
    store: GraphStore, f: MarketFeatures, cache_dir: str | Path | None = None
) -> MerchantRankings:
    """Every merchant's default ranking (:func:`rank_merchants`), cached like the features.

    Parameters
    ----------
    store
        The store ``f`` was built from (its URI and version key the cache).
    f
        Its market features.
    cache_dir
        As :func:`cached_features`.
    """
    return _cached(store, cache_dir, "rankings", MerchantRankings, lambda: rank_merchants(f))


class _Moved(Exception):
    """The graph changed while data derived from it were computed."""


def _cached(
    store: GraphStore,
    cache_dir: str | Path | None,
    kind: str,
    cls: type[T],
    build: Callable[[], T],
    ident: tuple[str, int] | None = None,
) -> T:
    d = Path(cache_dir or os.environ.get("KOLMATCH_CACHE") or ".kolmatch/cache")
    path = _cache_path(store, d, kind, ident or store.identity())
    if path.exists():
        try:
            with path.open("rb") as fh:
                # only kolmatch writes this folder (the user's own); never point it at shared space
                value = pickle.load(fh)
            if isinstance(value, cls):
                return value
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            pass  # unreadable: rebuild below
    value = build()
    tmp: str | None = None
    try:
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob(f"{kind}-*.pkl"):
            old.unlink(missing_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, delete=False, suffix=".tmp") as out:
            tmp = out.name
            pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError as exc:
        # a read-only or full cache folder costs speed, not correctness: say so, leave no debris
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        log.warning("kolmatch: cannot write the %s cache in %s (%s); not cached", kind, d, exc)
    return value
