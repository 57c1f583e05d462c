"""Bookings that hold, on every store: all or nothing, idempotent, and one winner per last slot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kolmatch.errors import BadArgument, BookingRefused, Conflict, UnknownId
from kolmatch.graph.booking import Booking
from kolmatch.graph.store import GraphStore, NodeBatch, RelBatch
from tests.conftest import at_once

WEEK = ("2027-06-01", "2027-06-07")


def _market(store: GraphStore) -> None:
    """t1: one slot; t2: two; m1 and m2 compete; m3 competes with nobody."""
    store.write(
        [
            NodeBatch.of(
                "Talent",
                [
                    {"id": "t1", "name": "One", "capacity": 1},
                    {"id": "t2", "name": "Two", "capacity": 2},
                    {"id": "t3", "name": "Three"},  # no capacity: one slot
                ],
            ),
            NodeBatch.of("Merchant", [{"id": m, "name": m.upper()} for m in ("m1", "m2", "m3")]),
            RelBatch.of(
                "COMPETES_WITH", "Merchant", [{"src": "m1", "dst": "m2", "shared_categories": 1}]
            ),
        ]
    )


@pytest.fixture
def store_and_opener(
    empty_store_and_opener: tuple[GraphStore, Callable[[], Any]],
) -> tuple[GraphStore, Callable[[], Any]]:
    """A store holding :func:`_market`, and a way to open another client of the same graph."""
    _market(empty_store_and_opener[0])
    return empty_store_and_opener


def _held(store: GraphStore) -> dict[str, tuple[str, str, str, str]]:
    out = {}
    for chunk in store.edge_rows("BOOKED", "Talent", ["booking_id", "start", "end"]):
        for s, d, bid, a, b in zip(
            chunk.src,
            chunk.dst,
            *(chunk.columns[f] for f in ("booking_id", "start", "end")),
            strict=True,
        ):
            out[bid] = (s, d, a, b)
    return out


def test_a_whole_plan_books_or_nothing_does(store_and_opener: Any) -> None:
    store, _ = store_and_opener
    v0 = store.version()
    plan = [Booking("p1", "t2", "m1", *WEEK), Booking("p2", "t3", "m1", *WEEK)]
    assert store.book(plan) == ["p1", "p2"]
    assert store.version() == v0 + 1
    assert set(_held(store)) == {"p1", "p2"}
    # the same plan again: a no-op (its ids are the idempotency keys), version unchanged
    assert store.book(plan) == []
    assert store.version() == v0 + 1
    # a plan one of whose talents is taken books none of them
    with pytest.raises(BookingRefused) as refused:
        store.book([Booking("q1", "t2", "m3", *WEEK), Booking("q2", "t3", "m3", *WEEK)])
    assert refused.value.problems == ["q2: t3 is not available in 2027-06-01..2027-06-07"]
    assert set(_held(store)) == {"p1", "p2"}
    assert store.version() == v0 + 1


def test_capacity_counts_overlaps_and_the_request_itself(store_and_opener: Any) -> None:
    store, _ = store_and_opener
    # two slots of t2: two merchants' bookings in one request fit, a third does not
    assert store.book(
        [Booking("a", "t2", "m3", *WEEK), Booking("b", "t2", "m1", "2027-06-07", "2027-06-09")]
    )
    with pytest.raises(BookingRefused, match="c: t2 is not available"):
        store.book([Booking("c", "t2", "m2", "2027-06-06", "2027-06-07")])
    # a window that overlaps neither is free
    assert store.book([Booking("d", "t2", "m2", "2027-07-01", "2027-07-02")]) == ["d"]
    # one request taking t1's single slot twice is refused whole
    with pytest.raises(BookingRefused, match="e2: t1 is not available"):
        store.book([Booking("e1", "t1", "m3", *WEEK), Booking("e2", "t1", "m2", *WEEK)])
    assert "e1" not in _held(store)
    # a merchant holding a talent in a window cannot take a second slot of it there (it
    # would hold the talent away from others, and count its free slots by trying)
    with pytest.raises(BookingRefused, match="f: m3 already holds t2"):
        store.book([Booking("f", "t2", "m3", "2027-06-02", "2027-06-03")])


def test_a_competitors_booking_excludes_and_is_not_named(store_and_opener: Any) -> None:
    store, _ = store_and_opener
    store.book([Booking("x", "t2", "m2", *WEEK)])
    with pytest.raises(BookingRefused) as refused:
        store.book([Booking("y", "t2", "m1", "2027-06-03", "2027-06-04")])
    # the same words as a full talent: neither who holds it nor its slots are told
    assert refused.value.problems == ["y: t2 is not available in 2027-06-03..2027-06-04"]
    # outside the window, and for a merchant that competes with nobody, t2 is free
    assert store.book([Booking("z", "t2", "m1", "2027-06-08", "2027-06-09")]) == ["z"]
    assert store.book([Booking("w", "t2", "m3", *WEEK)]) == ["w"]


def test_bad_requests_name_what_is_wrong_and_write_nothing(store_and_opener: Any) -> None:
    store, _ = store_and_opener
    store.book([Booking("k", "t2", "m3", *WEEK)])
    v = store.version()
    with pytest.raises(Conflict, match="booking 'k' is already recorded with different talent"):
        store.book([Booking("k", "t3", "m3", *WEEK)])
    with pytest.raises(UnknownId, match="unknown Talent id 'nobody'"):
        store.book([Booking("n", "nobody", "m3", *WEEK)])
    with pytest.raises(UnknownId, match="unknown Merchant id 'm9'"):
        store.book([Booking("n", "t2", "m9", *WEEK)])
    with pytest.raises(BadArgument, match="2027-06-01 is before the start 2027-06-07"):
        store.book([Booking("n", "t2", "m3", "2027-06-07", "2027-06-01")])
    with pytest.raises(BadArgument, match="must be a day written YYYY-MM-DD"):
        store.book([Booking("n", "t2", "m3", "June", "2027-06-01")])
    with pytest.raises(BadArgument, match="must be a day written YYYY-MM-DD, got '20270605'"):
        store.book([Booking("n", "t2", "m3", "20270605", "2027-06-06")])  # compact: refused
    assert store.version() == v
    assert set(_held(store)) == {"k"}


def test_release_is_scoped_to_the_merchant_and_idempotent(store_and_opener: Any) -> None:
    store, _ = store_and_opener
    store.book([Booking("r1", "t1", "m3", *WEEK), Booking("r2", "t2", "m1", *WEEK)])
    v = store.version()
    # another merchant cannot release r1; nothing changes, the version stays
    assert store.release(["r1"], merchant="m1") == []
    assert store.version() == v
    assert store.release(["r1", "r1", "nope"], merchant="m3") == ["r1"]
    assert store.version() == v + 1
    assert store.release(["r1"]) == []
    # the slot is free again
    assert store.book([Booking("r3", "t1", "m1", *WEEK)]) == ["r3"]
    assert set(_held(store)) == {"r2", "r3"}


def test_concurrent_clients_after_the_last_slot_get_exactly_one_success(
    store_and_opener: Any,
) -> None:
    """Eight clients, each with its own connection (as eight workers would), book t1's one
    slot at the same moment: one succeeds, seven are refused, one booking is held."""
    store, opener = store_and_opener
    n = 8
    clients = [opener() for _ in range(n)]

    def go(i: int) -> str:
        try:
            clients[i].book([Booking(f"c{i}", "t1", "m3", *WEEK)])
        except BookingRefused:
            return "refused"
        return "booked"

    results = [x if isinstance(x, str) else f"{type(x).__name__}: {x}" for x in at_once(n, go)]
    for c in clients:
        c.close()
    assert sorted(results) == ["booked"] + ["refused"] * (n - 1), results
    held = _held(store)
    assert len(held) == 1
    (bid,) = held
    assert results[int(bid[1:])] == "booked"
