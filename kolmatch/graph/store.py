"""The GraphStore protocol: the one boundary between kolmatch and a graph database."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from kolmatch.graph.model import Field, FieldType, node_spec, rel_spec

if TYPE_CHECKING:
    from kolmatch.graph.booking import Booking

__all__ = [
    "STORE_FORMAT",
    "EdgeRows",
    "GraphStore",
    "NodeBatch",
    "NodeRows",
    "RelBatch",
    "WriteBatch",
    "arrow_type",
    "rel_ends",
]

#: The layout of a store's data, recorded in every store kolmatch writes. Raised when the
#: domain model changes in a way an older store lacks (2: PROMOTED outcomes optional; 3: Talent
#: ``list_price``; 4: campaign briefs, COVERS and IN_CAMPAIGN; 5: the merchant's live room
#: (``room_followers``, LiveSession, HOSTED), service providers' ``list_price`` and
#: engagements (ENGAGED); a store with no record is of
#: format 1). A store of an older format is
#: migrated by ``kolmatch migrate`` (or by the next ``kolmatch load``); reads refuse it with
#: a message saying so. A store of a newer format is refused: upgrade kolmatch.
STORE_FORMAT = 5


class _Columns:
    """Validated rows as typed columns (a :class:`pyarrow.Table` named as the import file's
    columns; a null is a value the row does not set)."""

    table: pa.Table

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def column(self, name: str) -> list[Any]:
        """The column's values as Python objects, None where a row has none (or the batch has
        no such column)."""
        if name in self.table.column_names:
            return self.table.column(name).to_pylist()  # type: ignore[no-any-return]
        return [None] * len(self)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One dict per row, without the values a row does not set."""
        names = self.table.column_names
        cols = [self.table.column(c).to_pylist() for c in names]
        return [
            {c: v for c, v in zip(names, vals, strict=True) if v is not None}
            for vals in zip(*cols, strict=True)
        ]


def arrow_type(t: FieldType) -> pa.DataType:
    """The Arrow type a batch holds a field of type ``t`` in (dates as ISO text)."""
    return _ARROW[t]


_ARROW = {
    FieldType.STR: pa.string(),
    FieldType.INT: pa.int64(),
    FieldType.FLOAT: pa.float64(),
    FieldType.BOOL: pa.bool_(),
    FieldType.DATE: pa.string(),
}


def _table(
    lead: Sequence[str], fields: Sequence[Field], rows: Sequence[dict[str, Any]]
) -> pa.Table:
    names = [*lead, *(f.name for f in fields)]
    types = [pa.string()] * len(lead) + [_ARROW[f.type] for f in fields]
    schema = pa.schema([pa.field(n, t) for n, t in zip(names, types, strict=True)])
    return pa.Table.from_pylist([{c: r.get(c) for c in names} for r in rows], schema=schema)


@dataclass(frozen=True)
class NodeBatch(_Columns):
    """Validated nodes of one label to upsert by id: columns ``id`` and the label's
    properties (those the source has)."""

    label: str
    table: pa.Table

    @classmethod
    def of(cls, label: str, rows: Sequence[dict[str, Any]]) -> NodeBatch:
        """A batch of ``rows`` (dicts by column; a missing or None value sets nothing)."""
        return cls(label, _table(("id",), node_spec(label).fields, rows))


@dataclass(frozen=True)
class RelBatch(_Columns):
    """Validated relationships of one type from one source label to upsert by key: columns
    ``src``, ``dst`` and the type's properties (those the source has)."""

    rel_type: str
    src_label: str
    table: pa.Table

    @classmethod
    def of(cls, rel_type: str, src_label: str, rows: Sequence[dict[str, Any]]) -> RelBatch:
        """A batch of ``rows`` (dicts by column; a missing or None value sets nothing)."""
        return cls(rel_type, src_label, _table(("src", "dst"), rel_spec(rel_type).fields, rows))


WriteBatch = NodeBatch | RelBatch


@dataclass(frozen=True)
class NodeRows:
    """All nodes of a label, in the store's order: ids and property columns.

    ``keys``: the store's own integer key of each node, where it has one (SQLite's row id):
    :meth:`GraphStore.edge_keys` names endpoints by them, which spares reading and matching
    every endpoint's text id (the m market's 20M relationships: see docs/scale.md). None
    where the store has no such keys (Neo4j: read :meth:`GraphStore.edge_rows`).
    """

    ids: list[str]
    columns: dict[str, list[Any]]
    keys: NDArray[np.int64] | None = None


@dataclass(frozen=True)
class EdgeRows:
    """Relationships of a type from one source label: endpoints and property columns.

    From :meth:`GraphStore.edge_rows`, endpoints are node ids; from
    :meth:`GraphStore.edge_keys`, integer arrays of the endpoints' :attr:`NodeRows.keys`, and
    columns may be numpy arrays already (numbers as float64 with NaN where unset).
    """

    src: Sequence[str] | NDArray[np.int64]
    dst: Sequence[str] | NDArray[np.int64]
    columns: Mapping[str, Sequence[Any] | NDArray[Any]]


def rel_ends(
    rels: Sequence[RelBatch], *, new: tuple[str, str] | None = None
) -> list[tuple[str, list[str]]]:
    """The (label, ids) at the ends of ``rels``, less the node ``new`` ((label, id)) written
    with them: what a write checks exist before it writes (``add_collaboration``,
    ``add_node``)."""
    out: dict[str, set[str]] = {}
    for b in rels:
        spec = rel_spec(b.rel_type)
        for ends, end_label in ((b.column("src"), b.src_label), (b.column("dst"), spec.dst)):
            ids = {str(x) for x in ends}
            if new is not None and end_label == new[0]:
                ids.discard(new[1])
            out.setdefault(end_label, set()).update(ids)
    return [(k, sorted(v)) for k, v in out.items() if v]


@runtime_checkable
class GraphStore(Protocol):
    """What the loaders write through and the projections read from.

    Implementations: :class:`kolmatch.graph.sqlite_store.SQLiteStore` (embedded,
    the default) and :class:`kolmatch.graph.neo4j_store.Neo4jStore`.
    """

    uri: str

    def ensure_schema(self) -> None:
        """Create tables / constraints and indexes if they do not exist, migrate an older
        format (:data:`STORE_FORMAT`) and record the current one."""

    def missing_ids(self, label: str, ids: Sequence[str]) -> set[str]:
        """Return those of ``ids`` that no node of ``label`` has."""

    def write(
        self, batches: Iterable[WriteBatch], *, key: str = "", replace_unfinished: bool = False
    ) -> None:
        """Upsert the batches: nodes by id, relationships by (source, target, key).

        The caller sends node batches before relationship batches. The write is
        atomic where the store allows it (SQLite: one transaction) and
        idempotent everywhere, so a failed write can be run again to completion.
        Where it is not atomic (a Neo4j load), ``key`` names the write among the
        unfinished ones, and :meth:`version` raises ``IncompleteLoad`` until a
        write with the same key completes; a different load is refused while
        one is unfinished unless ``replace_unfinished`` says to forget it. No batch
        writes nothing and makes no version (a load of header-only files: the features
        cached for the version hold).
        """

    def version(self) -> int:
        """A number every successful write of something increases: caches of derived data key
        on it.

        Raises ``IncompleteLoad`` while an unfinished write is recorded.
        """

    def advance(self, expected: int) -> bool:
        """Raise the version by one, writing nothing else, if it is ``expected``: checked and
        raised in one transaction (a compare-and-set). False if it is not, or a load is
        unfinished. What makes a version of a change outside the graph (a recalibration)."""

    def written_version(self) -> int | None:
        """The version the calling thread's latest successful write made, as that write's own
        transaction raised it (None before any, or when the latest changed nothing).

        Read after the write, :meth:`version` may already be another process's (two servers
        writing at once): this is the write's own, so ``written_version() - 1`` is the
        version it was made on, which the change feed records."""

    def graph_id(self) -> str:
        """Names this graph: a random id made when the graph is first written ('' before).

        A graph deleted and written anew at the same URI gets a new one, so caches
        keyed on (URI, graph id, version) never serve the old graph's data.
        """

    def identity(self) -> tuple[str, int]:
        """``(graph_id(), version())`` read together: one round trip, one consistent pair."""

    def counts(self) -> dict[str, int]:
        """Number of nodes per label and relationships per type (zeros included)."""

    def reading(self) -> AbstractContextManager[None]:
        """A context in which this thread's reads see one version of the graph where the store
        can hold one without blocking writers (SQLite's WAL); elsewhere (Neo4j's read-committed
        statements) a no-op: :func:`~kolmatch.graph.market.read_market` checks the identity
        before and after and reads again."""

    def node_rows(self, label: str, fields: Sequence[str]) -> NodeRows:
        """Every node of ``label`` with the named properties (None where unset)."""

    def node_rows_of(self, label: str, ids: Sequence[str], fields: Sequence[str]) -> NodeRows:
        """As :meth:`node_rows`, only the nodes ``ids`` (an id no node has adds nothing, one
        named twice is given once; in no particular order): a delta's new and corrected
        users, without the rest."""

    def edge_rows(self, rel_type: str, src_label: str, fields: Sequence[str]) -> Iterator[EdgeRows]:
        """Every relationship of ``rel_type`` from ``src_label`` nodes, in chunks."""

    def edge_rows_from(
        self, rel_type: str, src_label: str, ids: Sequence[str], fields: Sequence[str]
    ) -> Iterator[EdgeRows]:
        """As :meth:`edge_rows`, only the relationships from the ``src_label`` nodes ``ids``
        (an id no node has adds nothing): what a delta's users hold, without the rest."""

    def edge_keys_from(
        self, rel_type: str, src_label: str, keys: NDArray[np.int64], fields: Sequence[str]
    ) -> Iterator[EdgeRows]:
        """As :meth:`edge_rows_from`, sources named and endpoints given as integer keys (as
        :meth:`edge_keys`; only where ``node_rows`` gives keys, else
        :class:`~kolmatch.errors.StoreError`)."""

    def edge_keys(self, rel_type: str, src_label: str, fields: Sequence[str]) -> Iterator[EdgeRows]:
        """As :meth:`edge_rows`, endpoints as the integer keys :meth:`node_rows` gives
        (:attr:`NodeRows.keys`); only for a store whose ``node_rows`` gives keys (else
        :class:`~kolmatch.errors.StoreError`)."""

    def book(self, bookings: Sequence[Booking]) -> list[str]:
        """Record bookings all or nothing, checked against capacity and competitors' bookings
        in the transaction that writes them (kolmatch/graph/booking.py has the rule).

        Returns the ids written; a booking already held with the same values is a no-op.
        Raises ``BookingRefused`` (nothing written), ``Conflict`` (an id held with other
        values), ``UnknownId`` or ``BadArgument`` (a malformed window).
        """

    def add_collaboration(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write one collaboration (a ``PROMOTED`` relationship row, as
        :meth:`RelBatch.of` takes it) unless its ``collab_id`` is held, checked in the
        transaction that writes it: of two servers sending one id at once, one writes.

        Returns None when it wrote the row (and raised the version); else, writing nothing,
        the held collaboration as ``talent``, ``product`` and its ``PROMOTED`` fields (the
        caller decides whether a repeat is the same one or a conflict).
        """

    def add_node(
        self, label: str, row: Mapping[str, Any], rels: Sequence[RelBatch] = ()
    ) -> dict[str, Any] | None:
        """Write one new node of ``label`` (``row``, as :meth:`NodeBatch.of` takes it) and
        its relationships ``rels`` unless a node of ``label`` holds its ``id``, checked in the
        transaction that writes it, as :meth:`add_collaboration` does (a violation, a
        campaign: one id, one record, however many servers send it at once).

        Returns None when written; else the held node's fields, nothing written. Raises
        ``UnknownId`` if another end of a relationship is not in the graph (nothing written).
        """

    def release(self, booking_ids: Sequence[str], *, merchant: str | None = None) -> list[str]:
        """Delete the named bookings (only ``merchant``'s, if given) in one transaction and
        return the ids deleted; an id not held is left out, so a repeat is a no-op."""

    def close(self) -> None:
        """Release connections."""
