"""Open a store from its URI: ``sqlite:///path`` (default) or ``neo4j://``, ``bolt://``, ``neo4j+s://``."""

from __future__ import annotations

import os

from kolmatch.errors import StoreError
from kolmatch.graph.store import GraphStore

__all__ = ["DEFAULT_STORE", "open_store", "store_uri"]

DEFAULT_STORE = "sqlite:///./kolmatch.db"
_NEO4J_SCHEMES = ("neo4j://", "neo4j+s://", "neo4j+ssc://", "bolt://", "bolt+s://", "bolt+ssc://")


def store_uri(explicit: str | None = None) -> str:
    """The store URI: the explicit one, else ``KOLMATCH_STORE``, else the embedded default."""
    return explicit or os.environ.get("KOLMATCH_STORE") or DEFAULT_STORE


def open_store(uri: str) -> GraphStore:
    """Open the store a URI names.

    Neo4j credentials come from ``NEO4J_USER`` (default ``neo4j``) and
    ``NEO4J_PASSWORD``; the database from ``NEO4J_DATABASE`` (default ``neo4j``).

    Raises
    ------
    StoreError
        If the scheme is not supported.
    """
    if uri.startswith("sqlite:///"):
        from kolmatch.graph.sqlite_store import SQLiteStore

        return SQLiteStore(uri.removeprefix("sqlite:///"))
    if uri.startswith(_NEO4J_SCHEMES):
        from kolmatch.graph.neo4j_store import Neo4jStore

        return Neo4jStore.from_env(uri)
    raise StoreError(f"unsupported store URI {uri!r}: use sqlite:///PATH or neo4j://HOST:PORT")
