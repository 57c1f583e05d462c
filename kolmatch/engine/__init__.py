"""The engine: market features per graph version (cached), the snapshot every request reads,
and the writes that refresh it -- one service for the CLI and the API alike.

``cache`` decides what to read from a store and caches what is built from it; ``service``
owns a store and the current snapshot.
"""

from kolmatch.engine.cache import (
    CACHE_FORMAT,
    cached_features,
    cached_rankings,
    features_of,
    load_features,
)
from kolmatch.engine.jobs import Job, JobBoard, RequestWork, SolverPool
from kolmatch.engine.service import Collaboration, EngineService, Snapshot

__all__ = [
    "CACHE_FORMAT",
    "Collaboration",
    "EngineService",
    "Job",
    "JobBoard",
    "RequestWork",
    "Snapshot",
    "SolverPool",
    "cached_features",
    "cached_rankings",
    "features_of",
    "load_features",
]
