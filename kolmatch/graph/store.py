"""The GraphStore protocol: the one boundary between kolmatch and a graph database."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

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


@dataclass(frozen=True)
class NodeBatch:
    """Validated rows of one node label to upsert by id."""

    label: str
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class RelBatch:
    """Validated rows of one relationship type from one source label to upsert by key."""

    rel_type: str
    src_label: str
    rows: list[dict[str, Any]]


WriteBatch = NodeBatch | RelBatch


@dataclass(frozen=True)
class NodeRows:
    """All nodes of a label, in the store's order: ids and property columns."""

    ids: list[str]
    columns: dict[str, list[Any]]


@dataclass(frozen=True)
class EdgeRows:
    """All relationships of a type from one source label: endpoint ids and property columns."""

    src: list[str]
    dst: list[str]
    columns: dict[str, list[Any]]


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
        one is unfinished unless ``replace_unfinished`` says to forget it.
        """

    def version(self) -> int:
        """A number every successful write increases: caches of derived data key on it.

        Raises ``IncompleteLoad`` while an unfinished write is recorded.
        """

    def graph_id(self) -> str:
        """Names this graph: a random id made when the graph is first written ('' before).

        A graph deleted and written anew at the same URI gets a new one, so caches
        keyed on (URI, graph id, version) never serve the old graph's data.
        """

    def identity(self) -> tuple[str, int]:
        """``(graph_id(), version())`` read together: one round trip, one consistent pair."""

    def counts(self) -> dict[str, int]:
        """Number of nodes per label and relationships per type (zeros included)."""

    def node_rows(self, label: str, fields: Sequence[str]) -> NodeRows:
        """Every node of ``label`` with the named properties (None where unset)."""

    def edge_rows(self, rel_type: str, src_label: str, fields: Sequence[str]) -> Iterator[EdgeRows]:
        """Every relationship of ``rel_type`` from ``src_label`` nodes, in chunks."""

    def book(self, bookings: Sequence[Booking]) -> list[str]:
        """Record bookings all or nothing, checked against capacity and competitors' bookings
        in the transaction that writes them (kolmatch/graph/booking.py has the rule).

        Returns the ids written; a booking already held with the same values is a no-op.
        Raises ``BookingRefused`` (nothing written), ``Conflict`` (an id held with other
        values), ``UnknownId`` or ``BadArgument`` (a malformed window).
        """

    def release(self, booking_ids: Sequence[str], *, merchant: str | None = None) -> list[str]:
        """Delete the named bookings (only ``merchant``'s, if given) in one transaction and
        return the ids deleted; an id not held is left out, so a repeat is a no-op."""

    def close(self) -> None:
        """Release connections."""
