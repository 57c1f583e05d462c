"""The Neo4j store: the GraphStore protocol over the official driver; batched, idempotent writes."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from queue import Empty, Queue
from typing import Any, TypeVar

import neo4j
import numpy as np
from neo4j.exceptions import AuthError, Neo4jError, ServiceUnavailable, SessionExpired
from numpy.typing import NDArray

from kolmatch.errors import (
    BookingRefused,
    IncompleteLoad,
    StoreError,
    StoreUnavailable,
    UnknownId,
)
from kolmatch.graph import cypher
from kolmatch.graph.booking import (
    Booking,
    HeldBooking,
    booking_problems,
    check_window,
    not_yet_held,
    relationship_row,
)
from kolmatch.graph.model import NODES, RELATIONSHIPS, FieldType, node_spec, rel_spec
from kolmatch.graph.store import (
    STORE_FORMAT,
    EdgeRows,
    NodeBatch,
    NodeRows,
    RelBatch,
    WriteBatch,
    rel_ends,
)

__all__ = [
    "ATOMIC_MAX_BATCHES",
    "ATOMIC_MAX_ROWS",
    "DEFAULT_RETRY_SECONDS",
    "DEFAULT_WRITERS",
    "Neo4jStore",
    "rel_params",
]

#: Ids per query of the reads by ids (``node_rows_of``, ``edge_rows_from``): their rows come
#: back as one list (:mod:`kolmatch.graph.cypher`), ~160k engagements at this size.
_READ_CHUNK = 20_000
#: Nodes per page of a whole read, at first: a page whose rows are far from
#: :data:`_PAGE_ROWS` halves or doubles the next (popular talents, users who follow few),
#: within :data:`_PAGE_NODES_MIN` and :data:`_PAGE_NODES_MAX`.
_PAGE_NODES = 20_000
_PAGE_NODES_MIN, _PAGE_NODES_MAX = 500, 200_000
#: Rows a page of a whole read aims at: a list the server builds within its transaction
#: memory (1 GiB here) and the client decodes at once (~30 MB of Python objects).
_PAGE_ROWS = 200_000
#: Default time the driver keeps retrying a transiently failed transaction.
DEFAULT_RETRY_SECONDS = 15.0
#: Sessions writing a load's CREATE batches at once. Measured at m (ENGAGED_WITH, 2 shared
#: cores): two sessions 40-44k relationships/s, three 28-30k/s, and two on transactions of
#: 30,000 rows rather than 10,000 22k/s (server CPU per relationship 26-35, 32-35, 44-48 us).
DEFAULT_WRITERS = 2
#: Writes up to this size run as one transaction (the API's mutations are a few rows).
ATOMIC_MAX_BATCHES = 8
ATOMIC_MAX_ROWS = 10_000
T = TypeVar("T")


class Neo4jStore:
    """A graph in Neo4j, reached through one driver for the process.

    Writes are batched ``UNWIND`` statements in managed transactions (retried
    by the driver on transient errors); nodes go before relationships. A load
    CREATEs what the graph did not hold yet, on several sessions at once, and
    MERGEs the rest one batch at a time; each batch commits with a record of
    itself, so a load that fails part-way can be run again to completion with
    no duplicates (see :meth:`write`).

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
    writers
        Sessions that write a load's CREATE batches side by side (MERGE
        batches always go one at a time). Two measured best on a 2-core machine
        running both kolmatch and the server.
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
        writers: int = DEFAULT_WRITERS,
    ) -> None:
        if writers < 1:
            raise StoreError(f"writers: expected at least 1, got {writers}")
        self.uri = uri
        self.database = database
        self.writers = writers
        self._made = threading.local()  # the version a thread's last write made
        self._scoped: bool | None = None  # the server takes CALL (x) {...} (_scoped_calls)
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

    def write(
        self,
        batches: Iterable[WriteBatch],
        *,
        key: str = "",
        replace_unfinished: bool = False,
    ) -> None:
        """Send the batches in order; small writes in one transaction, loads in many.

        A write of at most :data:`ATOMIC_MAX_BATCHES` batches and
        :data:`ATOMIC_MAX_ROWS` rows (the API's mutations) runs as a single
        transaction with the version bump: all of it or nothing. No batch, no new
        version (the graph's features hold).

        A larger one (a load) first records ``key`` among the graph's unfinished
        loads, with a plan: the labels and relationship types that hold nothing
        yet are written with CREATE, the others with MERGE. Each batch commits
        with a record of its index, so running the same load again skips what
        committed and completes the rest with no duplicates, CREATE or not. The
        last transaction raises the version and removes the key; until then
        :meth:`version` raises :class:`~kolmatch.errors.IncompleteLoad`.

        CREATE batches run on ``writers`` sessions side by side (all node
        batches commit before the first relationship batch starts); MERGE
        batches run one at a time, since concurrent MERGEs deadlock on shared
        nodes. A producer thread reads and shapes the next batches meanwhile.

        Parameters
        ----------
        batches
            Node batches before relationship batches; the same load must yield
            the same batches in the same order (``load_folder`` does).
        key
            Names the load among unfinished ones (``load_folder`` passes the
            folder and a digest of its files); a random one if empty.
        replace_unfinished
            Start even though another load is unfinished, forgetting it (what
            it committed stays; this load merges over it). Without it such a
            write is refused: two loads at once could double what both CREATE.

        Raises
        ------
        StoreError
            If another load is unfinished (and ``replace_unfinished`` is off),
            or the server rejects a batch.
        StoreUnavailable
            If the server cannot be reached.
        """
        it = iter(batches)
        head: list[WriteBatch] = []
        rows = 0
        small = True
        for b in it:
            head.append(b)
            rows += len(b)
            if len(head) > ATOMIC_MAX_BATCHES or rows > ATOMIC_MAX_ROWS:
                small = False
                break
        if small:
            self._made.version = None
            if not head:  # (no batch, no new version: a folder of header-only files)
                return
            self._made.version = self._guard(
                lambda: self._session_write(_all_in_one([_shape(b, create=False) for b in head]))
            )
            return
        key = key or f"write {uuid.uuid4().hex[:12]}"
        self._made.version = None
        plan = self._guard(lambda: self._begin_load(key, replace_unfinished))
        self._write_batches(itertools.chain(head, it), key, plan)

    def book(self, bookings: Sequence[Booking]) -> list[str]:
        """Record ``bookings`` all or nothing, checked in the writing transaction.

        The transaction first write-locks the graph's metadata node (``LOCK_META``), so
        booking transactions on any number of servers run one at a time: of two clients
        after a talent's last slot, the second reads the first's booking and is refused.
        Raises as :meth:`kolmatch.graph.sqlite_store.SQLiteStore.book` does.
        """
        for b in bookings:
            check_window(b)
        talents = sorted({b.talent for b in bookings})
        merchants = sorted({b.merchant for b in bookings})

        made: list[int] = []  # the version the (last, committed) try of ``run`` made
        self._made.version = None

        def run(tx: neo4j.ManagedTransaction) -> list[str]:
            made.clear()
            tx.run(cypher.LOCK_META).consume()
            cap = {r["id"]: r["capacity"] for r in tx.run(cypher.TALENT_CAPACITY, ids=talents)}
            for t in talents:
                if t not in cap:
                    raise UnknownId("Talent", t)
            missing = sorted(r["id"] for r in tx.run(cypher.missing_ids("Merchant"), ids=merchants))
            if missing:
                raise UnknownId("Merchant", missing[0])
            ids = [b.booking_id for b in bookings]
            same = {
                r["booking_id"]: Booking(*r.values())
                for r in tx.run(cypher.BOOKINGS_BY_ID, ids=ids)
            }
            new = not_yet_held(bookings, same)
            held = [
                HeldBooking(*r.values()[:5])
                for r in tx.run(cypher.BOOKINGS_OF_TALENTS, ids=talents)
            ]
            rivals: dict[str, set[str]] = {m: set() for m in merchants}
            for r in tx.run(cypher.RIVALS, ids=merchants):
                rivals[r["merchant"]].add(r["rival"])
            problems = booking_problems(new, held, cap, rivals)
            if problems:
                raise BookingRefused(problems)
            if new:
                rows = [relationship_row(b) for b in new]
                query, params = _shape(RelBatch.of("BOOKED", "Talent", rows), create=False)
                tx.run(query, params).consume()
                made[:] = [_bump(tx, "")]
            return [b.booking_id for b in new]

        return self._written(made, self._guard(lambda: self._session_write(run)))

    def add_collaboration(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write one collaboration unless its id is held, read after ``LOCK_META`` in the
        transaction that writes it: such transactions on any number of servers run one at a
        time. Returns and raises as the SQLite store's
        (:meth:`kolmatch.graph.sqlite_store.SQLiteStore.add_collaboration`)."""
        promoted = RelBatch.of("PROMOTED", "Talent", [dict(row)])
        return self._write_unless_held(
            cypher.COLLABORATION_BY_ID,
            row["collab_id"],
            rel_ends([promoted]),
            [promoted],
        )

    def add_node(
        self, label: str, row: Mapping[str, Any], rels: Sequence[RelBatch] = ()
    ) -> dict[str, Any] | None:
        """Write one new node and its relationships unless a node of ``label`` holds its id
        (as :meth:`add_collaboration`)."""
        return self._write_unless_held(
            cypher.node_by_id(label),
            row["id"],
            rel_ends(rels, new=(label, row["id"])),
            [NodeBatch.of(label, [dict(row)]), *rels],
        )

    def _write_unless_held(
        self,
        held_query: str,
        key: Any,
        ends: list[tuple[str, list[str]]],
        batches: list[WriteBatch],
    ) -> dict[str, Any] | None:
        """One transaction, after ``LOCK_META``: the row ``held_query`` finds for ``$id`` =
        ``key``, or, if none, ``batches`` written after checking the nodes ``ends`` ((label,
        ids)) exist, and the version raised."""
        made: list[int] = []
        self._made.version = None

        def run(tx: neo4j.ManagedTransaction) -> dict[str, Any] | None:
            made.clear()
            tx.run(cypher.LOCK_META).consume()
            held = tx.run(held_query, id=key).single()
            if held is not None:
                return dict(held)
            for label, ids in ends:
                missing = sorted(r["id"] for r in tx.run(cypher.missing_ids(label), ids=ids))
                if missing:
                    raise UnknownId(label, missing[0])
            for b in batches:
                query, params = _shape(b, create=False)
                tx.run(query, params).consume()
            made[:] = [_bump(tx, "")]
            return None

        return self._written(made, self._guard(lambda: self._session_write(run)))

    def release(self, booking_ids: Sequence[str], *, merchant: str | None = None) -> list[str]:
        """Delete the named bookings (``merchant``'s only, if given); returns the ids deleted."""
        ids = list(dict.fromkeys(booking_ids))
        made: list[int] = []
        self._made.version = None

        def run(tx: neo4j.ManagedTransaction) -> list[str]:
            made.clear()
            tx.run(cypher.LOCK_META).consume()
            gone = {r["bid"] for r in tx.run(cypher.RELEASE_BOOKINGS, ids=ids, merchant=merchant)}
            if gone:
                made.append(_bump(tx, ""))
            return [i for i in ids if i in gone]

        return self._written(made, self._guard(lambda: self._session_write(run)))

    def _written(self, made: list[int], result: T) -> T:
        """``result``, noting the version its transaction made (:meth:`written_version`)."""
        self._made.version = made[-1] if made else None
        return result

    def written_version(self) -> int | None:
        """The version this thread's latest write transaction made (returned by its
        ``BUMP_VERSION``, which held the metadata node's write lock)."""
        return getattr(self._made, "version", None)

    def _session_write(self, fn: Callable[[neo4j.ManagedTransaction], T]) -> T:
        with self._driver.session(database=self.database) as session:
            return session.execute_write(fn)

    def _begin_load(self, key: str, replace_unfinished: bool) -> _Plan:
        """Record the load as unfinished, or read back its plan and progress if it is."""

        def begin(tx: neo4j.ManagedTransaction) -> _Plan:
            # LOCK_META write-locks the metadata node first: loads begin one at a time
            pending = list(tx.run(cypher.LOCK_META).single(strict=True)["pending"])
            others = [k for k in pending if k != key]
            if others and not replace_unfinished:
                raise _Refused(others)
            if key in pending:
                create: set[str] = set()
                done: set[int] = set()
                for rec in tx.run(cypher.LOAD_PROGRESS, key=key):
                    create.update(rec["create"] or ())
                    done.update(rec["done"] or ())
                tx.run(cypher.MARK_PENDING, key=key, drop=others).consume()
                tx.run(cypher.DROP_LOADS, keys=others).consume()
                return _Plan(frozenset(create), frozenset(done))
            empty = [
                n.label
                for n in NODES
                if tx.run(cypher.count_nodes(n.label)).single(strict=True)["n"] == 0
            ] + [
                r.type
                for r in RELATIONSHIPS
                if tx.run(cypher.count_rels(r.type)).single(strict=True)["n"] == 0
            ]
            tx.run(cypher.DROP_LOADS, keys=[*others, key]).consume()
            tx.run(cypher.SAVE_PLAN, key=key, create=empty).consume()
            tx.run(cypher.MARK_PENDING, key=key, drop=others).consume()
            return _Plan(frozenset(empty), frozenset())

        try:
            return self._session_write(begin)
        except _Refused as exc:
            listed = "; ".join(exc.loads)
            raise StoreError(
                f"Neo4j at {self.uri} holds another unfinished load ({listed}): run that load "
                "again to complete it, or start this one with --replace-unfinished "
                "(replace_unfinished=True) if it is dead and will not be run again"
            ) from None

    def _write_batches(self, batches: Iterable[WriteBatch], key: str, plan: _Plan) -> None:
        queue: Queue[_Shaped | BaseException | None] = Queue(maxsize=2 * self.writers)
        stop = threading.Event()

        def produce() -> None:
            try:
                for i, b in enumerate(batches):
                    if stop.is_set():
                        return
                    if i in plan.done:  # committed by an earlier run of this load
                        continue
                    create = (b.label if isinstance(b, NodeBatch) else b.rel_type) in plan.create
                    query, params = _shape(b, create=create)
                    phase = ("node" if isinstance(b, NodeBatch) else "rel", create)
                    queue.put(_Shaped(i, phase, query, params))
                queue.put(None)
            except BaseException as exc:  # handed to the sending thread to raise
                queue.put(exc)

        local = threading.local()
        sessions: list[neo4j.Session] = []
        lanes = itertools.count()
        lock = threading.Lock()

        def send(item: _Shaped) -> None:
            if not hasattr(local, "session"):
                with lock:
                    local.session = self._driver.session(database=self.database)
                    local.lane = next(lanes)
                    sessions.append(local.session)

            def run(tx: neo4j.ManagedTransaction) -> None:
                tx.run(item.query, item.params).consume()
                tx.run(cypher.BATCH_DONE, key=key, lane=local.lane, batch=item.index).consume()

            local.session.execute_write(run)

        def go() -> None:
            inflight: deque[Future[None]] = deque()
            last: tuple[str, bool] | None = None
            with ThreadPoolExecutor(self.writers, thread_name_prefix="kolmatch-neo4j") as pool:
                try:
                    while (item := queue.get()) is not None:
                        if isinstance(item, BaseException):
                            raise item
                        # CREATE batches of one phase overlap; a MERGE batch, and the first
                        # batch of a new phase, wait for everything before them to commit
                        parallel = item.phase[1]
                        while inflight and (
                            not parallel or item.phase != last or len(inflight) >= self.writers
                        ):
                            inflight.popleft().result()
                        inflight.append(pool.submit(send, item))
                        last = item.phase
                    while inflight:
                        inflight.popleft().result()
                finally:
                    for f in inflight:
                        f.cancel()
                    wait(inflight)
                    for s in sessions:
                        s.close()

            def finish(tx: neo4j.ManagedTransaction) -> int:
                made = _bump(tx, key)
                tx.run(cypher.DROP_LOADS, keys=[key]).consume()
                return made

            self._made.version = self._session_write(finish)

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
        """The graph's version: :meth:`identity`'s second half (it raises as that does)."""
        return self.identity()[1]

    def graph_id(self) -> str:
        recs = self._query(cypher.READ_VERSION)
        return str(recs[0]["uid"] or "") if recs else ""

    def identity(self) -> tuple[str, int]:
        """The graph's id and version, read in one query (one round trip, one snapshot).

        Raises
        ------
        IncompleteLoad
            If a load of many transactions has started and not finished.
        StoreUnavailable
            If the server cannot be reached.
        """
        recs = self._query(cypher.READ_VERSION)
        if not recs:
            return "", 0
        if recs[0]["pending"]:
            raise IncompleteLoad(self.uri, list(recs[0]["pending"]))
        return str(recs[0]["uid"] or ""), int(recs[0]["version"])

    def advance(self, expected: int) -> bool:
        """Raise the version if it is ``expected`` (:data:`~kolmatch.graph.cypher.ADVANCE_VERSION`,
        one transaction holding the metadata node's write lock)."""

        def run(tx: neo4j.ManagedTransaction) -> int | None:
            rec = tx.run(cypher.ADVANCE_VERSION, expected=expected).single()
            return None if rec is None else int(rec["version"])

        self._made.version = None
        self._made.version = made = self._guard(lambda: self._session_write(run))
        return made is not None

    def reading(self) -> contextlib.AbstractContextManager[None]:
        """No snapshot across statements here (each reads committed data): a no-op, and
        :func:`~kolmatch.graph.market.read_market` reads again if a write landed meanwhile."""
        return contextlib.nullcontext()

    def counts(self) -> dict[str, int]:
        out = {n.label: self._query(cypher.count_nodes(n.label))[0]["n"] for n in NODES}
        out.update({r.type: self._query(cypher.count_rels(r.type))[0]["n"] for r in RELATIONSHIPS})
        return out

    def node_rows(self, label: str, fields: Sequence[str]) -> NodeRows:
        """Every node of the label, read in pages of :data:`_PAGE_ROWS` nodes in id order
        (each page one list: :func:`~kolmatch.graph.cypher.node_rows`)."""
        q = cypher.node_rows(label, fields)
        rows = [row for page in self._pages(q, _PAGE_ROWS, by_source=False) for row in page]
        return _node_rows(label, rows, fields)

    def node_rows_of(self, label: str, ids: Sequence[str], fields: Sequence[str]) -> NodeRows:
        unique = list(dict.fromkeys(ids))
        q = cypher.node_rows_of(label, fields)
        rows = [
            row
            for lo in range(0, len(unique), _READ_CHUNK)
            for row in self._query(q, ids=unique[lo : lo + _READ_CHUNK])[0]["rows"]
        ]
        return _node_rows(label, rows, fields)

    def edge_rows(self, rel_type: str, src_label: str, fields: Sequence[str]) -> Iterator[EdgeRows]:
        """Every relationship of the type from the label, in pages of source nodes in id
        order (:func:`~kolmatch.graph.cypher.edge_rows`), one chunk a page; a page's size
        follows its rows (:data:`_PAGE_ROWS`)."""
        q = cypher.edge_rows(rel_type, src_label, fields, scoped=self._scoped_calls())
        for rows in self._pages(q, _PAGE_NODES, by_source=True):
            yield _edge_rows(rel_type, rows, fields)

    def _scoped_calls(self) -> bool:
        """Whether the server takes ``CALL (x) {...}`` (Neo4j 5.23 and later): asked once."""
        if self._scoped is None:
            rec = self._query("CALL dbms.components() YIELD name, versions RETURN versions")
            version = str(rec[0]["versions"][0]) if rec else "0"
            numbers = [int(x) if x.isdigit() else 0 for x in version.split(".")[:2]]
            self._scoped = tuple(numbers) >= (5, 23)
        return self._scoped

    def _pages(self, q: str, n: int, *, by_source: bool) -> Iterator[list[list[Any]]]:
        """The rows of a paged read (:func:`~kolmatch.graph.cypher.node_rows`,
        :func:`~kolmatch.graph.cypher.edge_rows`), a page at a time; none where a page has
        none. ``by_source``: a page of ``n`` sources far from :data:`_PAGE_ROWS` rows halves or
        doubles the next.

        The next page is asked for as soon as a page's last id is known, on a thread of its
        own: the server makes it while this one is made into columns (at m the client waited
        on the server for 35% of the read). A page past the server's transaction memory is
        asked for again in halves, down to :data:`_PAGE_NODES_MIN` sources."""
        after = ""
        with ThreadPoolExecutor(1, thread_name_prefix="kolmatch-neo4j-page") as ahead:
            asked = ahead.submit(self._query, q, after=after, n=n)
            while True:
                try:
                    rec = asked.result()[0]
                except StoreError as exc:
                    if "MemoryPoolOutOfMemoryError" not in str(exc) or n <= _PAGE_NODES_MIN:
                        raise
                    n = max(n // 2, _PAGE_NODES_MIN)
                    asked = ahead.submit(self._query, q, after=after, n=n)
                    continue
                rows = rec["rows"]
                done = rec["n"] < n
                if not done:
                    after = rec["last"]
                    if by_source and len(rows) > 2 * _PAGE_ROWS:
                        n = max(n // 2, _PAGE_NODES_MIN)
                    elif by_source and len(rows) < _PAGE_ROWS // 4:
                        n = min(n * 2, _PAGE_NODES_MAX)
                    asked = ahead.submit(self._query, q, after=after, n=n)
                if rows:
                    yield rows
                if done:
                    return

    def edge_rows_from(
        self, rel_type: str, src_label: str, ids: Sequence[str], fields: Sequence[str]
    ) -> Iterator[EdgeRows]:
        q = cypher.edge_rows_from(rel_type, src_label, fields)
        ids = list(ids)
        for lo in range(0, len(ids), _READ_CHUNK):
            rows = self._query(q, ids=ids[lo : lo + _READ_CHUNK])[0]["rows"]
            if rows:
                yield _edge_rows(rel_type, rows, fields)

    def edge_keys(self, rel_type: str, src_label: str, fields: Sequence[str]) -> Iterator[EdgeRows]:
        # node_rows gives no keys here: Neo4j's internal ids are deprecated and not stable
        # across a store's life, so endpoints travel as ids (edge_rows)
        raise StoreError(f"{self.uri}: Neo4j nodes have no integer keys: read edge_rows")

    def edge_keys_from(
        self, rel_type: str, src_label: str, keys: NDArray[np.int64], fields: Sequence[str]
    ) -> Iterator[EdgeRows]:
        raise StoreError(f"{self.uri}: Neo4j nodes have no integer keys: read edge_rows_from")

    def clear(self) -> None:
        """Delete every node and relationship (tests and benchmarks), in batches."""

        def go() -> None:
            with self._driver.session(database=self.database) as session:
                # CALL ... IN TRANSACTIONS needs an auto-commit transaction
                for stmt in cypher.DELETE_ALL:
                    session.run(stmt).consume()

        self._guard(go)

    def close(self) -> None:
        self._driver.close()


@dataclass(frozen=True)
class _Plan:
    """An unfinished load's plan: what it CREATEs, and the batches that committed."""

    create: frozenset[str]
    done: frozenset[int]


@dataclass(frozen=True)
class _Shaped:
    index: int
    phase: tuple[str, bool]  # (node or rel, CREATE)
    query: str
    params: dict[str, Any]


class _Refused(Exception):
    def __init__(self, loads: list[str]) -> None:
        self.loads = loads


def _all_in_one(
    shaped: list[tuple[str, dict[str, Any]]],
) -> Callable[[neo4j.ManagedTransaction], int]:
    """A transaction function running every batch and the version bump: one commit; it
    returns the version it made."""

    def run(tx: neo4j.ManagedTransaction) -> int:
        for query, params in shaped:
            tx.run(query, params).consume()
        return _bump(tx, "")

    return run


def _bump(tx: neo4j.ManagedTransaction, key: str) -> int:
    """Raise the graph's version in ``tx`` (ending the load ``key``, if any); the version made."""
    return int(tx.run(cypher.BUMP_VERSION, key=key, format=STORE_FORMAT).single(strict=True)[0])


def _shape(b: WriteBatch, *, create: bool) -> tuple[str, dict[str, Any]]:
    """The query and parameters of one batch (every property present, None where empty)."""
    if isinstance(b, NodeBatch):
        cols = ("id", *node_spec(b.label).field_names)
        query = (cypher.create_nodes if create else cypher.upsert_nodes)(b.label)
        values = [b.column(c) for c in cols]
        return query, {"rows": [dict(zip(cols, r, strict=True)) for r in zip(*values, strict=True)]}
    query = (cypher.create_rels if create else cypher.upsert_rels)(b.rel_type, b.src_label)
    fields = rel_spec(b.rel_type).field_names
    return query, rel_params(b.column("src"), b.column("dst"), [b.column(f) for f in fields])


def rel_params(
    src: Sequence[str], dst: Sequence[str], fields: Sequence[Sequence[Any]]
) -> dict[str, Any]:
    """Relationship columns as the parameters of :func:`cypher.upsert_rels` / ``create_rels``.

    ``dst`` lists the distinct target ids; ``groups`` holds one
    ``[source id, [[target index, *fields], ...]]`` per run of consecutive rows
    with the same source (import files list a user's rows together, so a
    source is looked up once per run rather than once per row).

    Examples
    --------
    >>> rel_params(["u1", "u1", "u2"], ["t1", "t2", "t1"], [["2026-01-01", None, None]])
    {'dst': ['t1', 't2'], 'groups': [['u1', [[0, '2026-01-01'], [1, None]]], ['u2', [[0, None]]]]}
    """
    index: dict[str, int] = {}
    groups: list[list[Any]] = []
    last: object = None
    run: list[list[Any]] = []
    for s, d, *props in zip(src, dst, *fields, strict=True):
        if s != last or not groups:
            last = s
            run = []
            groups.append([s, run])
        run.append([index.setdefault(d, len(index)), *props])
    return {"dst": list(index), "groups": groups}


def _plain(column: list[Any], as_int_bool: bool) -> list[Any]:
    """A column as read, booleans as 0/1 like SQLite (a bool field's), so projections are
    identical whichever store holds the graph."""
    if not as_int_bool:
        return column
    return [int(v) if isinstance(v, bool) else v for v in column]


def _columns(rows: list[list[Any]], width: int) -> list[list[Any]]:
    """``rows`` (lists of ``width`` values) as ``width`` columns (a comprehension per column:
    4x faster than ``zip(*rows)`` on a page of 200,000 rows)."""
    return [[r[i] for r in rows] for i in range(width)]


def _node_rows(label: str, rows: list[list[Any]], fields: Sequence[str]) -> NodeRows:
    """:class:`NodeRows` of collected ``[id, property...]`` rows."""
    bools = {f.name for f in node_spec(label).fields if f.type is FieldType.BOOL}
    ids, *cols = _columns(rows, 1 + len(fields))
    return NodeRows(ids, {f: _plain(c, f in bools) for f, c in zip(fields, cols, strict=True)})


def _edge_rows(rel_type: str, rows: list[list[Any]], fields: Sequence[str]) -> EdgeRows:
    """:class:`EdgeRows` of collected ``[source id, target id, property...]`` rows."""
    bools = {f.name for f in rel_spec(rel_type).fields if f.type is FieldType.BOOL}
    src, dst, *cols = _columns(rows, 2 + len(fields))
    return EdgeRows(src, dst, {f: _plain(c, f in bools) for f, c in zip(fields, cols, strict=True)})
