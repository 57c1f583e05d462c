"""The Neo4j store: the GraphStore protocol over the official driver; batched, idempotent writes."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from queue import Empty, Queue
from typing import Any, TypeVar

import neo4j
from neo4j.exceptions import AuthError, Neo4jError, ServiceUnavailable, SessionExpired

from kolmatch.errors import IncompleteLoad, StoreError, StoreUnavailable
from kolmatch.graph import cypher
from kolmatch.graph.model import NODES, RELATIONSHIPS, FieldType, node_spec, rel_spec
from kolmatch.graph.store import EdgeRows, NodeBatch, NodeRows, WriteBatch

__all__ = ["ATOMIC_MAX_BATCHES", "ATOMIC_MAX_ROWS", "DEFAULT_RETRY_SECONDS", "Neo4jStore"]

_READ_CHUNK = 200_000
#: Default time the driver keeps retrying a transiently failed transaction.
DEFAULT_RETRY_SECONDS = 15.0
#: Writes up to this size run as one transaction (the API's mutations are a few rows).
ATOMIC_MAX_BATCHES = 8
ATOMIC_MAX_ROWS = 10_000
T = TypeVar("T")


class Neo4jStore:
    """A graph in Neo4j, reached through one driver for the process.

    Writes are batched ``UNWIND ... MERGE`` statements in managed transactions
    (retried by the driver on transient errors, so each is idempotent); nodes
    go before relationships and relationship batches run one after another to
    avoid lock contention. A write that fails part-way leaves complete batches
    behind and can be run again to completion with no duplicates.

    Parameters
    ----------
    uri
        ``neo4j://``, ``neo4j+s://`` or ``bolt://`` URI.
    auth
        (user, password).
    database
        The database every query names.
    retry_seconds
        How long the driver retries a transaction that failed transiently (a
        server restarting, a leader changing) before the error reaches the
        caller as :class:`~kolmatch.errors.StoreUnavailable`; also bounds the
        connection timeout. Loads want patience; an API answering within its
        request budget wants a short one (``kolmatch serve`` uses 3 s).
    """

    #: Loads are batched transactions, not one: the loader validates first.
    atomic_writes = False

    def __init__(
        self,
        uri: str,
        auth: tuple[str, str],
        database: str = "neo4j",
        *,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
    ) -> None:
        self.uri = uri
        self.database = database
        try:
            self._driver = neo4j.GraphDatabase.driver(
                uri,
                auth=auth,
                notifications_min_severity="OFF",
                max_transaction_retry_time=retry_seconds,
                connection_timeout=min(30.0, max(1.0, retry_seconds)),
            )
        except (ValueError, neo4j.exceptions.ConfigurationError) as exc:
            raise StoreError(f"bad Neo4j URI {uri!r}: {exc}") from exc

    @classmethod
    def from_env(cls, uri: str) -> Neo4jStore:
        """Open with ``NEO4J_USER``, ``NEO4J_PASSWORD``, ``NEO4J_DATABASE`` and
        ``KOLMATCH_NEO4J_RETRY_SECONDS`` from the environment."""
        password = os.environ.get("NEO4J_PASSWORD")
        if password is None:
            raise StoreError("NEO4J_PASSWORD is not set (and NEO4J_USER, default 'neo4j')")
        text = os.environ.get("KOLMATCH_NEO4J_RETRY_SECONDS", str(DEFAULT_RETRY_SECONDS))
        try:
            retry = float(text)
        except ValueError:
            retry = -1.0
        if not 0 <= retry <= 3600:
            raise StoreError(
                f"KOLMATCH_NEO4J_RETRY_SECONDS: expected seconds between 0 and 3600, got {text!r}"
            )
        return cls(
            uri,
            (os.environ.get("NEO4J_USER", "neo4j"), password),
            os.environ.get("NEO4J_DATABASE", "neo4j"),
            retry_seconds=retry,
        )

    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (ServiceUnavailable, SessionExpired, OSError) as exc:
            raise StoreUnavailable(f"Neo4j at {self.uri} is unavailable: {exc}") from exc
        except AuthError as exc:
            raise StoreUnavailable(
                f"Neo4j at {self.uri} refused the credentials (check NEO4J_USER / NEO4J_PASSWORD)"
            ) from exc
        except Neo4jError as exc:
            raise StoreError(f"Neo4j at {self.uri}: {exc.code}: {exc.message}") from exc

    def _query(self, query: str, routing: str = "r", **params: Any) -> list[neo4j.Record]:
        route = neo4j.RoutingControl.READ if routing == "r" else neo4j.RoutingControl.WRITE
        return self._guard(
            lambda: (
                self._driver.execute_query(
                    query, parameters_=params, database_=self.database, routing_=route
                ).records
            )
        )

    def ensure_schema(self) -> None:
        for stmt in cypher.constraint_statements():
            self._query(stmt, routing="w")
        self._query("CALL db.awaitIndexes(300)", routing="w")

    def missing_ids(self, label: str, ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        q = cypher.missing_ids(label)
        for i in range(0, len(ids), 10_000):
            out.update(r["id"] for r in self._query(q, ids=list(ids[i : i + 10_000])))
        return out

    def write(self, batches: Iterable[WriteBatch], *, key: str = "") -> None:
        """Send the batches, one transaction each, in order; small writes in one transaction.

        A write of at most :data:`ATOMIC_MAX_BATCHES` batches and
        :data:`ATOMIC_MAX_ROWS` rows (the API's mutations) runs as a single
        transaction with the version bump: all of it or nothing. A larger one (a
        load) first records ``key`` among the graph's unfinished loads; its last
        transaction raises the version and removes the key. Until then
        :meth:`version` raises :class:`~kolmatch.errors.IncompleteLoad`, so a
        load killed part-way is never read; running it again with the same key
        completes it (the batches are idempotent MERGEs).

        While the batches run, a producer thread reads and shapes the next ones
        (bounded queue of two): the client's parsing overlaps the server's work,
        and transactions still run one at a time.

        Parameters
        ----------
        batches
            Node batches before relationship batches.
        key
            Names the load among unfinished ones (``load_folder`` passes the
            folder and a digest of its files); a random one if empty.
        """
        it = iter(batches)
        head: list[WriteBatch] = []
        rows = 0
        small = True
        for b in it:
            head.append(b)
            rows += len(b.rows)
            if len(head) > ATOMIC_MAX_BATCHES or rows > ATOMIC_MAX_ROWS:
                small = False
                break
        if small:
            self._guard(lambda: self._session_write(_all_in_one([_shape(b) for b in head])))
            return
        key = key or f"write {uuid.uuid4().hex[:12]}"
        self._guard(
            lambda: self._session_write(lambda tx: tx.run(cypher.MARK_PENDING, key=key).consume())
        )
        self._write_batches(itertools.chain(head, it), key)

    def _session_write(self, fn: Callable[[neo4j.ManagedTransaction], object]) -> None:
        with self._driver.session(database=self.database) as session:
            session.execute_write(fn)

    def _write_batches(self, batches: Iterable[WriteBatch], key: str) -> None:
        queue: Queue[tuple[str, list[dict[str, Any]]] | BaseException | None] = Queue(maxsize=2)
        stop = threading.Event()

        def produce() -> None:
            try:
                for b in batches:
                    if stop.is_set():
                        return
                    queue.put(_shape(b))
                queue.put(None)
            except BaseException as exc:  # handed to the sending thread to raise
                queue.put(exc)

        def run(tx: neo4j.ManagedTransaction, query: str, rows: list[dict[str, Any]]) -> None:
            tx.run(query, rows=rows).consume()

        def go() -> None:
            with self._driver.session(database=self.database) as session:
                while (item := queue.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    session.execute_write(run, *item)
                session.execute_write(lambda tx: tx.run(cypher.BUMP_VERSION, key=key).consume())

        producer = threading.Thread(target=produce, name="kolmatch-neo4j-batches", daemon=True)
        producer.start()
        try:
            self._guard(go)
        finally:
            stop.set()
            while producer.is_alive():  # unblock a producer waiting on a full queue
                with contextlib.suppress(Empty):
                    queue.get(timeout=0.1)
            producer.join()

    def version(self) -> int:
        """The graph's version.

        Raises
        ------
        IncompleteLoad
            If a load of many transactions has started and not finished.
        StoreUnavailable
            If the server cannot be reached.
        """
        recs = self._query(cypher.READ_VERSION)
        if not recs:
            return 0
        if recs[0]["pending"]:
            raise IncompleteLoad(self.uri, list(recs[0]["pending"]))
        return int(recs[0]["version"])

    def counts(self) -> dict[str, int]:
        out = {n.label: self._query(cypher.count_nodes(n.label))[0]["n"] for n in NODES}
        out.update({r.type: self._query(cypher.count_rels(r.type))[0]["n"] for r in RELATIONSHIPS})
        return out

    def node_rows(self, label: str, fields: Sequence[str]) -> NodeRows:
        bools = {f.name for f in node_spec(label).fields if f.type is FieldType.BOOL}
        recs = self._query(cypher.node_rows(label, fields))
        return NodeRows(
            [r["id"] for r in recs], {f: [_plain(r[f], f in bools) for r in recs] for f in fields}
        )

    def edge_rows(self, rel_type: str, src_label: str, fields: Sequence[str]) -> Iterator[EdgeRows]:
        q = cypher.edge_rows(rel_type, src_label, fields)
        bools = {f.name for f in rel_spec(rel_type).fields if f.type is FieldType.BOOL}

        def chunks() -> Iterator[EdgeRows]:
            with self._driver.session(
                database=self.database, default_access_mode=neo4j.READ_ACCESS
            ) as session:
                result = session.run(q)
                src: list[str] = []
                dst: list[str] = []
                cols: dict[str, list[Any]] = {f: [] for f in fields}
                for rec in result:
                    src.append(rec["src"])
                    dst.append(rec["dst"])
                    for f in fields:
                        cols[f].append(_plain(rec[f], f in bools))
                    if len(src) >= _READ_CHUNK:
                        yield EdgeRows(src, dst, cols)
                        src, dst, cols = [], [], {f: [] for f in fields}
                if src:
                    yield EdgeRows(src, dst, cols)

        it = chunks()
        while True:
            chunk = self._guard(lambda: next(it, None))
            if chunk is None:
                return
            yield chunk

    def clear(self) -> None:
        """Delete every node and relationship (tests and benchmarks), in batches."""

        def go() -> None:
            with self._driver.session(database=self.database) as session:
                # CALL ... IN TRANSACTIONS needs an auto-commit transaction
                session.run(cypher.DELETE_ALL).consume()

        self._guard(go)

    def close(self) -> None:
        self._driver.close()


def _all_in_one(
    shaped: list[tuple[str, list[dict[str, Any]]]],
) -> Callable[[neo4j.ManagedTransaction], None]:
    """A transaction function running every batch and the version bump: one commit."""

    def run(tx: neo4j.ManagedTransaction) -> None:
        for query, rows in shaped:
            tx.run(query, rows=rows).consume()
        tx.run(cypher.BUMP_VERSION, key="").consume()

    return run


def _shape(b: WriteBatch) -> tuple[str, list[dict[str, Any]]]:
    """The query and parameter rows of one batch (every property present, None where empty)."""
    if isinstance(b, NodeBatch):
        cols = ("id", *node_spec(b.label).field_names)
        query = cypher.upsert_nodes(b.label)
    else:
        cols = ("src", "dst", *rel_spec(b.rel_type).field_names)
        query = cypher.upsert_rels(b.rel_type, b.src_label)
    return query, [{c: r.get(c) for c in cols} for r in b.rows]


def _plain(v: Any, as_int_bool: bool) -> Any:
    """Booleans as 0/1 like SQLite, so projections are identical whichever store holds the graph."""
    if as_int_bool and isinstance(v, bool):
        return int(v)
    return v
