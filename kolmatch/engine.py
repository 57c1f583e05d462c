"""The matching service: market features built once per graph version, cached on disk."""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

from kolmatch.graph.store import GraphStore
from kolmatch.matching.features import MarketFeatures, build_features

__all__ = ["CACHE_FORMAT", "cached_features"]

#: Bumped whenever MarketFeatures or its computation changes: old cache files are ignored.
CACHE_FORMAT = 5


def _cache_path(store: GraphStore, cache_dir: Path) -> Path:
    key = hashlib.sha256(f"{CACHE_FORMAT}|{store.uri}|{store.version()}".encode()).hexdigest()
    return cache_dir / f"features-{key[:24]}.pkl"


def cached_features(store: GraphStore, cache_dir: str | Path | None = None) -> MarketFeatures:
    """The store's market features, from the cache if the graph has not changed since.

    The cache file is keyed by the store URI, its :meth:`~GraphStore.version` (raised by
    every write) and :data:`CACHE_FORMAT`; it is written atomically (temporary file, then
    rename), so a crash never leaves a half-written cache behind.

    Parameters
    ----------
    store
        Any GraphStore.
    cache_dir
        Where cache files live; default ``KOLMATCH_CACHE`` or ``./.kolmatch/cache``.
    """
    d = Path(cache_dir or os.environ.get("KOLMATCH_CACHE") or ".kolmatch/cache")
    path = _cache_path(store, d)
    if path.exists():
        try:
            with path.open("rb") as fh:
                # only kolmatch writes this folder (the user's own); never point it at shared space
                f = pickle.load(fh)
            if isinstance(f, MarketFeatures):
                return f
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            pass  # unreadable: rebuild below
    f = build_features(store)
    try:
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("features-*.pkl"):
            old.unlink(missing_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, delete=False, suffix=".tmp") as tmp:
            pickle.dump(f, tmp, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp.name, path)
    except OSError:
        pass  # a read-only cache folder costs speed, not correctness
    return f
