"""The embedded store: a persistent, transactional graph on SQLite (standard library)."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kolmatch.errors import BookingRefused, StoreError, StoreUnavailable, UnknownId
from kolmatch.graph.booking import (
    Booking,
    HeldBooking,
    booking_problems,
    check_window,
    not_yet_held,
    relationship_row,
)
from kolmatch.graph.model import (
    NODES,
    NUMERIC_TYPES,
    RELATIONSHIPS,
    FieldType,
    NodeSpec,
    RelSpec,
    node_spec,
    rel_spec,
)
from kolmatch.graph.store import (
    STORE_FORMAT,
    EdgeRows,
    NodeBatch,
    NodeRows,
    RelBatch,
    WriteBatch,
    rel_ends,
)

__all__ = ["SQLiteStore"]


_SQL_TYPE = {
    FieldType.STR: "TEXT",
    FieldType.INT: "INTEGER",
    FieldType.FLOAT: "REAL",
    FieldType.BOOL: "INTEGER",
    FieldType.DATE: "TEXT",
}
_CHUNK = 200_000
#: SQLite's page cache (negative: KiB) while writing: a load's index updates need it (1 GiB).
_WRITE_CACHE_KIB = -1_048_576
#: ... and otherwise: reads scan tables once (the OS caches the file); a 1 GiB cache kept
#: ~400 MiB of the m market's pages in a process that had read the whole graph.
_READ_CACHE_KIB = -65_536
#: How long a statement waits for another connection's lock (Python's default, 5 s).
_BUSY_MS = 5000
#: What a WAL is cut back to once checkpointed (SQLite's automatic, passive checkpoints, which
#: never wait for a reader): a load writes its whole size through the WAL first.
_WAL_KEEP_BYTES = 64 * 1024 * 1024
#: Relationship batches of at least this many rows look their endpoints up in Python
#: (:meth:`SQLiteStore.write`).
RID_MAP_MIN_ROWS = 1_000


def _ntab(label: str) -> str:
    # Table names come only from the domain model's allow-list.
    return "n_" + node_spec(label).file


def _rtab(rel_type: str) -> str:
    return "r_" + rel_spec(rel_type).file


def _node_ddl(spec: NodeSpec) -> str:
    cols = "".join(f", {f.name} {_SQL_TYPE[f.type]}" for f in spec.fields)
    return (
        f"CREATE TABLE IF NOT EXISTS {_ntab(spec.label)} "
        f"(rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE{cols})"
    )


#: Relationship types read by their target (a merchant's bookings, when it releases them):
#: only these have an index on ``dst``. The others are read whole or by source (their primary
#: key), and an index no query uses cost a load of m ~30 s to build (FOLLOWS, ENGAGED_WITH).
DST_INDEXED = frozenset({"BOOKED"})
#: ... and by their key alone: a collaboration id is checked before it is written
#: (:meth:`SQLiteStore.add_collaboration`); ~6 per merchant, so the index costs a load little.
KEY_INDEXED = frozenset({"PROMOTED"})


def _id_rows(rows: list[Any], fields: Sequence[str]) -> EdgeRows:
    """Rows of (source id, target id, *fields) as :meth:`SQLiteStore.edge_rows` gives them."""
    return EdgeRows(
        [r[0] for r in rows],
        [r[1] for r in rows],
        {f: [r[i + 2] for r in rows] for i, f in enumerate(fields)},
    )


def _keyed_rows(rows: list[Any], spec: RelSpec, fields: Sequence[str]) -> EdgeRows:
    """Rows of (source key, target key, *fields) as :meth:`SQLiteStore.edge_keys` gives them."""
    numeric = {f.name for f in spec.fields if f.type in NUMERIC_TYPES}
    # a list per column (faster here than zip(*rows) or a 2-D object array)
    cols = {f: [r[i + 2] for r in rows] for i, f in enumerate(fields)}
    return EdgeRows(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        {f: np.array(c, dtype=np.float64) if f in numeric else c for f, c in cols.items()},
    )


def _rel_ddl(spec: RelSpec) -> list[str]:
    cols = "".join(f", {f.name} {_SQL_TYPE[f.type]}" for f in spec.fields)
    key = ["src_label", "src", "dst"] + ([spec.key] if spec.key else [])
    t = _rtab(spec.type)
    table = (
        f"CREATE TABLE IF NOT EXISTS {t} (src_label TEXT NOT NULL, src INTEGER NOT NULL, "
        f"dst INTEGER NOT NULL{cols}, PRIMARY KEY ({', '.join(key)})) WITHOUT ROWID"
    )
    out = [table]
    if spec.type in DST_INDEXED:
        out.append(f"CREATE INDEX IF NOT EXISTS {t}_dst ON {t} (dst)")
    if spec.type in KEY_INDEXED and spec.key:
        out.append(f"CREATE INDEX IF NOT EXISTS {t}_{spec.key} ON {t} ({spec.key})")
    return out


class SQLiteStore:
    """A graph in one SQLite file: a table per label and per relationship type.

    Nodes are keyed by ``id`` (unique per label); relationships hold the
    integer row ids of their endpoints and are keyed by (source label, source,
    target, key property). :meth:`write` runs in one transaction: a failure or
    a kill part-way leaves the file as it was.

    Parameters
    ----------
    path
        The database file; created if absent.
    """

    #: :meth:`write` is one transaction: the loader may validate while it writes.
    atomic_writes = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.uri = f"sqlite:///{self.path}"
        if not self.path.parent.is_dir():
            raise StoreUnavailable(
                f"cannot open SQLite store {self.path}: folder {self.path.parent} does not exist"
            )
        try:
            self._db = self._connect()
            if self._target == self.path:
                # WAL: a reader keeps its snapshot while writers commit (:meth:`reading`), so a
                # full read of the graph (minutes at m) never blocks a serving process's
                # writes, and a write never makes that read start again. Loads stay one
                # transaction, atomic across a kill (WAL frames past the last commit are
                # ignored).
                self._use_wal()
                # a load's WAL is cut back to this once checkpointed (not kept load-sized)
                self._db.execute(f"PRAGMA journal_size_limit={_WAL_KEEP_BYTES}")
            # FULL: a commit is on disk when it returns (WAL with NORMAL may lose the last
            # ones to a power cut, while the audit log already says "written"); one fsync
            # per commit, and a load is one commit
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=OFF")
            self._db.execute(f"PRAGMA cache_size={_READ_CACHE_KIB}")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from exc
        self._local = threading.local()  # a thread's reading() connection, while it reads
        self._made = threading.local()  # the version a thread's transaction made (bumped)

    def _use_wal(self) -> None:
        """Put the file in WAL mode (a setting kept in the file: once per file). Switching
        needs the file to itself: while another connection is writing (an older kolmatch's
        load, a blocked writer) this connection keeps the file's rollback journal, and a
        later open switches it."""
        mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() == "wal":
            return
        self._db.execute("PRAGMA busy_timeout=100")
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        finally:
            self._db.execute(f"PRAGMA busy_timeout={_BUSY_MS}")

    @property
    def _target(self) -> str | Path:
        """What connections open: the file, or, where this process may not write it or its
        folder (WAL's ``-wal`` and ``-shm`` files are made beside it), a read-only URI: on a
        read-only file system the file as it is (``immutable``: nobody can change it), else
        (another user's store, which its owner may write) ``mode=ro``. A write then fails
        with SQLite's "readonly database", naming the file."""
        path = self.path.absolute()
        if not path.exists() or (os.access(path.parent, os.W_OK) and os.access(path, os.W_OK)):
            return self.path
        frozen = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
        wal = path.with_name(path.name + "-wal").exists()
        return f"{path.as_uri()}?{'immutable=1' if frozen and not wal else 'mode=ro'}"

    def _connect(self) -> sqlite3.Connection:
        target = self._target
        return sqlite3.connect(
            target, isolation_level=None, check_same_thread=False, uri=isinstance(target, str)
        )

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Reads of this thread inside see one snapshot of the graph, whatever commits meanwhile.

        A connection of its own for the thread, in one read transaction (WAL: it holds its
        snapshot without blocking writers, and writers do not wait for it). Writes through
        the store's connection go on meanwhile, from this thread or another; they are not
        seen inside. Nested, the outer snapshot holds.

        Raises
        ------
        StoreUnavailable
            If the file cannot be opened again.
        """
        if getattr(self._local, "db", None) is not None:
            yield
            return
        db: sqlite3.Connection | None = None
        try:
            db = self._connect()
            db.execute(f"PRAGMA cache_size={_READ_CACHE_KIB}")
            db.execute("BEGIN")
            db.execute("SELECT user_version FROM pragma_user_version").fetchone()  # the snapshot
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise StoreUnavailable(f"cannot read SQLite store {self.path}: {exc}") from exc
        self._local.db = db
        try:
            yield
        finally:
            self._local.db = None
            with suppress(sqlite3.Error):
                db.execute("COMMIT")
            db.close()

    @property
    def _rdb(self) -> sqlite3.Connection:
        """The connection reads go through: the thread's :meth:`reading` one, else the store's."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        return db if db is not None else self._db

    def ensure_schema(self) -> None:
        """Create the tables, migrate an older format (columns the model added since), and
        record :data:`STORE_FORMAT`; one transaction.

        Raises
        ------
        StoreError
            If the store was written by a newer kolmatch.
        """
        found = self.format()
        if found is not None and found > STORE_FORMAT:
            raise StoreError(self._newer(found))
        try:
            # IMMEDIATE: the write lock first (waiting for it as any write does). A deferred
            # transaction reads the tables' columns first, and in WAL a write committed by
            # another connection after that read makes its own first write fail at once
            # ("database is locked", no busy wait): a load beside a serving worker's writes
            self._db.execute("BEGIN IMMEDIATE")
            for n in NODES:
                self._db.execute(_node_ddl(n))
                self._add_missing_columns(_ntab(n.label), n.fields)
            for r in RELATIONSHIPS:
                for ddl in _rel_ddl(r):
                    self._db.execute(ddl)
                self._add_missing_columns(_rtab(r.type), r.fields)
            self._db.execute("CREATE TABLE IF NOT EXISTS kolmatch_graph (uid TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS kolmatch_format (format INTEGER)")
            self._db.execute("DELETE FROM kolmatch_format")
            self._db.execute("INSERT INTO kolmatch_format (format) VALUES (?)", (STORE_FORMAT,))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreUnavailable(f"cannot create schema in {self.path}: {exc}") from exc
        self._readable = True

    def _add_missing_columns(self, table: str, fields: Sequence[Any]) -> None:
        have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
        for f in fields:
            if f.name not in have:  # a field the model gained since this store was written
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {f.name} {_SQL_TYPE[f.type]}")

    def format(self) -> int | None:
        """The store format recorded in the file; 1 for kolmatch tables with no record (written
        before formats were recorded); None for a file holding no kolmatch graph."""
        try:
            row = self._db.execute("SELECT format FROM kolmatch_format").fetchone()
            return int(row[0]) if row else 1
        except sqlite3.OperationalError:
            pass
        tables = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'n_talent'"
        ).fetchone()
        return 1 if tables else None

    def _newer(self, found: int) -> str:
        return (
            f"SQLite store {self.path} was written by a newer kolmatch (store format {found}; "
            f"this one reads {STORE_FORMAT}): upgrade kolmatch"
        )

    def _check_readable(self) -> None:
        if getattr(self, "_readable", False):
            return
        found = self.format()
        if found is not None and found < STORE_FORMAT:
            raise StoreError(
                f"SQLite store {self.path} was written by an older kolmatch (store format "
                f"{found}; this one reads {STORE_FORMAT}); run: kolmatch migrate --store {self.uri}"
            )
        if found is not None and found > STORE_FORMAT:
            raise StoreError(self._newer(found))
        self._readable = found is not None

    def _rollback(self, large: bool = False) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        finally:
            if large:
                self._small_cache()

    def missing_ids(self, label: str, ids: Sequence[str]) -> set[str]:
        missing: set[str] = set()
        t = _ntab(label)
        for i in range(0, len(ids), 500):
            chunk = list(ids[i : i + 500])
            marks = ",".join("?" * len(chunk))
            found = {
                r[0] for r in self._db.execute(f"SELECT id FROM {t} WHERE id IN ({marks})", chunk)
            }
            missing.update(x for x in chunk if x not in found)
        return missing

    def write(
        self, batches: Iterable[WriteBatch], *, key: str = "", replace_unfinished: bool = False
    ) -> None:
        """Upsert the batches in one transaction (``key`` and ``replace_unfinished`` are not
        needed: nothing is ever partial). No batch, no new version (the graph's features hold).

        A relationship batch of at least :data:`RID_MAP_MIN_ROWS` rows has its endpoints
        row ids looked up in Python, in a map of the label's ids read once per write (on the
        m market: ~1.8x faster than SQLite's two index lookups per row); smaller batches (the
        service's writes) let SQLite look them up.

        A relationship type with a target index (:data:`DST_INDEXED`) that gets more than one
        batch has it dropped and rebuilt (by one sort) before COMMIT, inside the transaction:
        on the s market that made the load 28% faster than inserting into the index row by
        row. The target index an older store has on another type is dropped by its next load
        of that type, and not rebuilt.
        """
        seen: dict[str, int] = {}
        dropped: list[str] = []
        rids: dict[str, dict[str, int]] = {}  # label -> id -> row id, read once per write
        wrote = False
        with self._transaction("written", large=True):
            for b in batches:
                wrote = True
                if isinstance(b, NodeBatch):
                    self._write_nodes(b)
                    rids.pop(b.label, None)
                    continue
                n = seen[b.rel_type] = seen.get(b.rel_type, 0) + 1
                if n == 2:
                    self._db.execute(f"DROP INDEX IF EXISTS {_rtab(b.rel_type)}_dst")
                    dropped.append(b.rel_type)
                if len(b) >= RID_MAP_MIN_ROWS:
                    self._write_rels_by_rid(b, rids)
                else:
                    self._write_rels(b)
            for rel_type in dropped:  # an older store's index of another type is not rebuilt
                for ddl in _rel_ddl(rel_spec(rel_type))[1:]:
                    self._db.execute(ddl)
            if wrote:  # (no batch, no new version: a folder of header-only files)
                self._bump_version()

    @contextmanager
    def _transaction(self, what: str, *, large: bool = False) -> Iterator[None]:
        """One write transaction: ``BEGIN IMMEDIATE`` (SQLite's write lock, taken before
        anything is read), COMMIT at the end, and on any failure a ROLLBACK and, for SQLite's
        own errors, a typed one saying nothing was ``what`` (written, booked, released).

        ``large``: with the page cache a load's index updates need, freed when it ends (not
        held by a process that goes on serving, or reading the whole graph)."""
        try:
            if large:
                self._db.execute(f"PRAGMA cache_size={_WRITE_CACHE_KIB}")
            self._made.bumped = self._made.written = None
            self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
            self._made.written = self._made.bumped
        except sqlite3.OperationalError as exc:
            self._rollback(large)
            why = (
                f" (another connection held SQLite's write lock for over {_BUSY_MS / 1000:g} s:"
                " a load into this store, or another server's write; retry once it ends)"
                if str(exc) == "database is locked"
                else ""
            )
            raise StoreUnavailable(
                f"SQLite store {self.path}: {exc}{why}; nothing was {what}"
            ) from exc
        except sqlite3.Error as exc:
            self._rollback(large)
            raise StoreError(f"SQLite store {self.path}: {exc}; nothing was {what}") from exc
        except BaseException:
            self._rollback(large)
            raise
        if large:  # after the COMMIT, outside the try: nothing can un-write what was written
            self._small_cache()

    def _small_cache(self) -> None:
        with suppress(sqlite3.Error):
            self._db.execute(f"PRAGMA cache_size={_READ_CACHE_KIB}")
            self._db.execute("PRAGMA shrink_memory")

    def _bump_version(self) -> None:
        """Raise the version (and name the graph on its first write), inside the transaction."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        self._db.execute(f"PRAGMA user_version = {int(version) + 1}")
        self._made.bumped = int(version) + 1  # read under the write lock: this write's own
        self._db.execute(
            "INSERT INTO kolmatch_graph (uid) SELECT ? "
            "WHERE NOT EXISTS (SELECT 1 FROM kolmatch_graph)",
            (uuid.uuid4().hex,),
        )

    def book(self, bookings: Sequence[Booking]) -> list[str]:
        """Record ``bookings`` all or nothing, checked in the writing transaction.

        ``BEGIN IMMEDIATE`` takes SQLite's write lock before the check reads anything, so
        workers booking the same slot at once are serialised: one succeeds, the others
        see its booking and are refused.

        Returns
        -------
        list of str
            The ids written (ids already held with the same values are no-ops, not listed).

        Raises
        ------
        BookingRefused
            If any booking finds no free slot or a competitor's booking (nothing written).
        Conflict
            If a booking id is held with different values.
        UnknownId
            If a talent or merchant is not in the graph.
        """
        for b in bookings:
            check_window(b)
        talents = sorted({b.talent for b in bookings})
        merchants = sorted({b.merchant for b in bookings})
        t, m = _ntab("Talent"), _ntab("Merchant")
        booked, rivalry = _rtab("BOOKED"), _rtab("COMPETES_WITH")
        with self._transaction("booked"):
            cap = dict(self._in(f"SELECT id, capacity FROM {t} WHERE id IN", talents))
            known_m = {r[0] for r in self._in(f"SELECT id FROM {m} WHERE id IN", merchants)}
            for label, want, have in (
                ("Talent", talents, cap),
                ("Merchant", merchants, known_m),
            ):
                missing = [x for x in want if x not in have]
                if missing:
                    raise UnknownId(label, missing[0])
            select = (
                f"SELECT r.booking_id, s.id, d.id, r.start, r.end, r.campaign FROM {booked} r "
                f"JOIN {t} s ON s.rid = r.src JOIN {m} d ON d.rid = r.dst "
            )
            same = {
                r[0]: Booking(*r)
                for r in self._in(
                    select + "WHERE r.booking_id IN", [b.booking_id for b in bookings]
                )
            }
            new = not_yet_held(bookings, same)
            held = [HeldBooking(*r[:5]) for r in self._in(select + "WHERE s.id IN", talents)]
            rivals: dict[str, set[str]] = {x: set() for x in merchants}
            for a, b2 in self._in(
                f"SELECT a.id, b.id FROM {rivalry} r JOIN {m} a ON a.rid = r.src "
                f"JOIN {m} b ON b.rid = r.dst WHERE a.id IN",
                merchants,
            ) + self._in(
                f"SELECT b.id, a.id FROM {rivalry} r JOIN {m} a ON a.rid = r.src "
                f"JOIN {m} b ON b.rid = r.dst WHERE b.id IN",
                merchants,
            ):
                rivals[a].add(b2)
            problems = booking_problems(new, held, cap, rivals)
            if problems:
                raise BookingRefused(problems)
            if new:
                rows = [relationship_row(b) for b in new]
                self._write_rels(RelBatch.of("BOOKED", "Talent", rows))
                self._bump_version()
        return [b.booking_id for b in new]

    def add_collaboration(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write one collaboration unless its id is held: the id is read under SQLite's write
        lock (``BEGIN IMMEDIATE``), so of two connections sending it at once one writes and
        the other reads what it wrote.

        Returns
        -------
        dict or None
            None if written; else the held collaboration (``talent``, ``product`` and the
            ``PROMOTED`` fields), nothing written.

        Raises
        ------
        UnknownId
            If the talent or the product is not in the graph (nothing written).
        """
        key = "collab_id"  # PROMOTED's key (kolmatch/graph/model.py)
        promoted = RelBatch.of("PROMOTED", "Talent", [dict(row)])
        fields = [f for f in rel_spec("PROMOTED").field_names if f != key]
        t, p = _ntab("Talent"), _ntab("Product")
        return self._write_unless_held(
            f"SELECT s.id, d.id{''.join(', r.' + f for f in fields)} "
            f"FROM {_rtab('PROMOTED')} r JOIN {t} s ON s.rid = r.src "
            f"JOIN {p} d ON d.rid = r.dst WHERE r.{key} = ?",
            row[key],
            ["talent", "product", *fields],
            rel_ends([promoted]),
            [promoted],
        )

    def add_node(
        self, label: str, row: Mapping[str, Any], rels: Sequence[RelBatch] = ()
    ) -> dict[str, Any] | None:
        """Write one new node and its relationships unless a node of ``label`` holds its id,
        read under SQLite's write lock (as :meth:`add_collaboration`).

        Raises
        ------
        UnknownId
            If another end of a relationship is not in the graph (nothing written).
        """
        fields = node_spec(label).field_names or ("id",)
        return self._write_unless_held(
            f"SELECT {', '.join(fields)} FROM {_ntab(label)} WHERE id = ?",
            row["id"],
            list(fields),
            rel_ends(rels, new=(label, row["id"])),
            [NodeBatch.of(label, [dict(row)]), *rels],
        )

    def _write_unless_held(
        self,
        held_sql: str,
        key: Any,
        columns: list[str],
        ends: list[tuple[str, list[str]]],
        batches: list[WriteBatch],
    ) -> dict[str, Any] | None:
        """One transaction: the row ``held_sql`` finds for ``key`` (as ``columns``), or, if
        none, ``batches`` written after checking the nodes ``ends`` ((label, ids)) exist."""
        with self._transaction("written"):
            held = self._db.execute(held_sql, (key,)).fetchone()
            if held is not None:
                return dict(zip(columns, held, strict=True))
            for label, ids in ends:
                missing = sorted(self.missing_ids(label, ids))
                if missing:
                    raise UnknownId(label, missing[0])
            for b in batches:
                if isinstance(b, NodeBatch):
                    self._write_nodes(b)
                else:
                    self._write_rels(b)
            self._bump_version()
        return None

    def release(self, booking_ids: Sequence[str], *, merchant: str | None = None) -> list[str]:
        """Delete the named bookings (``merchant``'s only, if given); returns the ids deleted.

        Ids not held (or another merchant's) are left out of the answer, not an error, so
        a release sent twice is a no-op the second time.
        """
        m = _ntab("Merchant")
        where = f" AND dst = (SELECT rid FROM {m} WHERE id = ?)" if merchant is not None else ""
        gone: list[str] = []
        with self._transaction("released"):
            for bid in dict.fromkeys(booking_ids):
                args = (bid, merchant) if merchant is not None else (bid,)
                cur = self._db.execute(
                    f"DELETE FROM {_rtab('BOOKED')} WHERE booking_id = ?{where}", args
                )
                if cur.rowcount:
                    gone.append(bid)
            if gone:
                self._bump_version()
        return gone

    def _in(self, sql: str, values: Sequence[str]) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` ending in ``... IN`` over ``values``, in chunks under SQLite's limit."""
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(values), 900):
            chunk = list(values[i : i + 900])
            marks = ",".join("?" * len(chunk))
            out += self._db.execute(f"{sql} ({marks})", chunk).fetchall()
        return out

    def _write_nodes(self, b: NodeBatch) -> None:
        spec = node_spec(b.label)
        cols = ("id", *spec.field_names)
        upd = (
            ", ".join(f"{c} = COALESCE(excluded.{c}, {c})" for c in spec.field_names)
            or "id = excluded.id"
        )
        sql = (
            f"INSERT INTO {_ntab(b.label)} ({', '.join(cols)}) "
            f"VALUES ({', '.join('?' * len(cols))}) ON CONFLICT(id) DO UPDATE SET {upd}"
        )
        self._db.executemany(sql, zip(*(b.column(c) for c in cols), strict=True))

    def _write_rels(self, b: RelBatch) -> None:
        spec = rel_spec(b.rel_type)
        names = spec.field_names
        key = ["src_label", "src", "dst"] + ([spec.key] if spec.key else [])
        upd = ", ".join(f"{c} = COALESCE(excluded.{c}, {c})" for c in names if c != spec.key)
        conflict = f"DO UPDATE SET {upd}" if upd else "DO NOTHING"
        extra = "".join(f", ?{i + 4}" for i in range(len(names)))
        sql = (
            f"INSERT INTO {_rtab(b.rel_type)} (src_label, src, dst"
            f"{''.join(', ' + c for c in names)}) "
            f"SELECT ?1, s.rid, d.rid{extra} FROM {_ntab(b.src_label)} s, {_ntab(spec.dst)} d "
            f"WHERE s.id = ?2 AND d.id = ?3 "
            f"ON CONFLICT({', '.join(key)}) {conflict}"
        )
        cols = [b.column(c) for c in ("src", "dst", *names)]
        self._db.executemany(sql, zip(itertools.repeat(b.src_label), *cols))

    def _write_rels_by_rid(self, b: RelBatch, rids: dict[str, dict[str, int]]) -> None:
        spec = rel_spec(b.rel_type)
        names = spec.field_names
        key = ["src_label", "src", "dst"] + ([spec.key] if spec.key else [])
        upd = ", ".join(f"{c} = COALESCE(excluded.{c}, {c})" for c in names if c != spec.key)
        conflict = f"DO UPDATE SET {upd}" if upd else "DO NOTHING"
        sql = (
            f"INSERT INTO {_rtab(b.rel_type)} (src_label, src, dst"
            f"{''.join(', ' + c for c in names)}) "
            f"VALUES ({', '.join('?' * (3 + len(names)))}) "
            f"ON CONFLICT({', '.join(key)}) {conflict}"
        )
        ends = []
        for col, label in (("src", b.src_label), ("dst", spec.dst)):
            if label not in rids:
                rids[label] = dict(self._db.execute(f"SELECT id, rid FROM {_ntab(label)}"))
            try:
                ends.append(list(map(rids[label].__getitem__, b.column(col))))
            except KeyError as exc:  # the loader checked every endpoint: a caller's mistake
                raise StoreError(
                    f"{b.rel_type}: {col} {exc} is not a {label} of the store"
                ) from exc
        cols = [b.column(c) for c in names]
        self._db.executemany(sql, zip(itertools.repeat(b.src_label), *ends, *cols))

    def version(self) -> int:
        return int(self._rdb.execute("PRAGMA user_version").fetchone()[0])

    def advance(self, expected: int) -> bool:
        """Raise the version if it is ``expected``: checked and raised under SQLite's write
        lock (``BEGIN IMMEDIATE``), so no other process writes in between."""
        with self._transaction("written"):
            now = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if now != expected:
                return False
            self._bump_version()
        return True

    def written_version(self) -> int | None:
        """The version this thread's latest write transaction made (SQLite's write lock held
        from its ``BEGIN IMMEDIATE``: nobody wrote between its read and its raise)."""
        return getattr(self._made, "written", None)

    def graph_id(self) -> str:
        try:
            row = self._rdb.execute("SELECT uid FROM kolmatch_graph").fetchone()
        except sqlite3.OperationalError:  # no schema yet: nothing was ever written
            return ""
        return str(row[0]) if row else ""

    def identity(self) -> tuple[str, int]:
        try:  # one statement: the id and the version of the same snapshot
            row = self._rdb.execute(
                "SELECT (SELECT uid FROM kolmatch_graph), user_version FROM pragma_user_version"
            ).fetchone()
        except sqlite3.OperationalError:  # no schema yet: nothing was ever written
            return "", self.version()
        return str(row[0] or ""), int(row[1])

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            for n in NODES:
                out[n.label] = self._db.execute(
                    f"SELECT COUNT(*) FROM {_ntab(n.label)}"
                ).fetchone()[0]
            for r in RELATIONSHIPS:
                out[r.type] = self._db.execute(f"SELECT COUNT(*) FROM {_rtab(r.type)}").fetchone()[
                    0
                ]
        except sqlite3.OperationalError as exc:
            raise StoreError(f"SQLite store {self.path} has no kolmatch schema: {exc}") from exc
        return out

    def node_rows(self, label: str, fields: Sequence[str]) -> NodeRows:
        self._check_readable()
        spec = node_spec(label)
        bad = [f for f in fields if f not in spec.field_names]
        if bad:
            raise StoreError(f"{label} has no properties {bad}")
        cols = ", ".join(("rid", "id", *fields))
        rows = self._rdb.execute(f"SELECT {cols} FROM {_ntab(label)}").fetchall()
        return NodeRows(
            [r[1] for r in rows],
            {f: [r[i + 2] for r in rows] for i, f in enumerate(fields)},
            np.fromiter((r[0] for r in rows), np.int64, len(rows)),
        )

    def node_rows_of(self, label: str, ids: Sequence[str], fields: Sequence[str]) -> NodeRows:
        self._check_readable()
        spec = node_spec(label)
        bad = [f for f in fields if f not in spec.field_names]
        if bad:
            raise StoreError(f"{label} has no properties {bad}")
        cols = ", ".join(f"n.{f}" for f in ("rid", "id", *fields))
        # the ids as one JSON parameter, each looked up by the id index (as edge_rows_from)
        sql = f"SELECT {cols} FROM json_each(?) j CROSS JOIN {_ntab(label)} n ON n.id = j.value"
        unique = list(dict.fromkeys(ids))
        rows = [
            r
            for lo in range(0, len(unique), _CHUNK)
            for r in self._rdb.execute(sql, (json.dumps(unique[lo : lo + _CHUNK]),))
        ]
        return NodeRows(
            [r[1] for r in rows],
            {f: [r[i + 2] for r in rows] for i, f in enumerate(fields)},
            np.fromiter((r[0] for r in rows), np.int64, len(rows)),
        )

    def _checked_rel(self, rel_type: str, src_label: str, fields: Sequence[str]) -> RelSpec:
        self._check_readable()
        spec = rel_spec(rel_type)
        bad = [f for f in fields if f not in spec.field_names]
        if bad or src_label not in spec.src:
            raise StoreError(f"{rel_type} from {src_label} has no properties {bad}")
        return spec

    def _chunks(self, sql: str, src_label: str) -> Iterator[list[Any]]:
        cur = self._rdb.execute(sql, (src_label,))
        while rows := cur.fetchmany(_CHUNK):
            yield rows

    def _chunks_from(self, sql: str, sources: list[Any], src_label: str) -> Iterator[list[Any]]:
        """``sql``'s rows, its ``?`` parameters a JSON list of (up to ``_CHUNK``) sources and
        ``src_label``, for one chunk of ``sources`` after another."""
        for lo in range(0, len(sources), _CHUNK):
            cur = self._rdb.execute(sql, (json.dumps(sources[lo : lo + _CHUNK]), src_label))
            while rows := cur.fetchmany(_CHUNK):
                yield rows

    def edge_rows(self, rel_type: str, src_label: str, fields: Sequence[str]) -> Iterator[EdgeRows]:
        spec = self._checked_rel(rel_type, src_label, fields)
        extra = "".join(f", r.{f}" for f in fields)
        sql = (
            f"SELECT s.id, d.id{extra} FROM {_rtab(rel_type)} r "
            f"JOIN {_ntab(src_label)} s ON s.rid = r.src JOIN {_ntab(spec.dst)} d ON d.rid = r.dst "
            f"WHERE r.src_label = ?"
        )
        for rows in self._chunks(sql, src_label):
            yield _id_rows(rows, fields)

    def edge_rows_from(
        self, rel_type: str, src_label: str, ids: Sequence[str], fields: Sequence[str]
    ) -> Iterator[EdgeRows]:
        spec = self._checked_rel(rel_type, src_label, fields)
        extra = "".join(f", r.{f}" for f in fields)
        # the ids as one JSON parameter: each looked up by the id index, its relationships by
        # the table's key (src_label, src, ...). CROSS JOIN keeps this order: left to choose,
        # the planner scanned every relationship of the type and probed the ids (minutes at m)
        sql = (
            f"SELECT s.id, d.id{extra} FROM json_each(?) j "
            f"CROSS JOIN {_ntab(src_label)} s ON s.id = j.value "
            f"CROSS JOIN {_rtab(rel_type)} r ON r.src_label = ? AND r.src = s.rid "
            f"CROSS JOIN {_ntab(spec.dst)} d ON d.rid = r.dst"
        )
        for rows in self._chunks_from(sql, list(ids), src_label):
            yield _id_rows(rows, fields)

    def edge_keys(self, rel_type: str, src_label: str, fields: Sequence[str]) -> Iterator[EdgeRows]:
        # endpoints as row ids (NodeRows.keys): no join to the node tables, no text ids to
        # match (the m market's FOLLOWS: 14 s here against 44 s by ids)
        spec = self._checked_rel(rel_type, src_label, fields)
        extra = "".join(f", {f}" for f in fields)
        sql = f"SELECT src, dst{extra} FROM {_rtab(rel_type)} WHERE src_label = ?"
        for rows in self._chunks(sql, src_label):
            yield _keyed_rows(rows, spec, fields)

    def edge_keys_from(
        self, rel_type: str, src_label: str, keys: NDArray[np.int64], fields: Sequence[str]
    ) -> Iterator[EdgeRows]:
        # by the table's key (src_label, src, ...) for each row id, as edge_rows_from (CROSS
        # JOIN: the same order forced); at m 105,255 users' 2M rows in ~3 s, ~8 s by ids
        spec = self._checked_rel(rel_type, src_label, fields)
        extra = "".join(f", r.{f}" for f in fields)
        sql = (
            f"SELECT r.src, r.dst{extra} FROM json_each(?) j "
            f"CROSS JOIN {_rtab(rel_type)} r ON r.src_label = ? AND r.src = j.value"
        )
        for rows in self._chunks_from(sql, np.asarray(keys, np.int64).tolist(), src_label):
            yield _keyed_rows(rows, spec, fields)

    def close(self) -> None:
        self._db.close()
