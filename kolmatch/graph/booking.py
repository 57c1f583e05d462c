"""Bookings: one talent slot held for a merchant and a window, and the rule a store checks.

A store records a request of bookings all or nothing, inside the transaction that writes
them, so that two clients booking a talent's last slot at once get exactly one success. The
rule is the planners' (kolmatch/matching/availability.py): a booking takes one slot in every
window it overlaps, a talent without capacity has one slot, and a talent booked by a
competitor of the merchant (``COMPETES_WITH``, either direction) in an overlapping window is
not bookable for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from kolmatch.errors import BadArgument, Conflict

__all__ = [
    "Booking",
    "HeldBooking",
    "booking_problems",
    "check_window",
    "iso_day",
    "not_yet_held",
    "relationship_row",
]


@dataclass(frozen=True)
class Booking:
    """A slot of ``talent`` held for ``merchant`` from ``start`` to ``end`` (ISO days, inclusive).

    ``booking_id`` is the caller's idempotency key: the same booking sent again is a no-op.
    """

    booking_id: str
    talent: str
    merchant: str
    start: str
    end: str
    campaign: str | None = None

    def same_as(self, other: Booking) -> list[str]:
        """The fields (names only) where ``other`` differs from this booking."""
        return [
            f
            for f in ("talent", "merchant", "start", "end", "campaign")
            if getattr(self, f) != getattr(other, f)
        ]


@dataclass(frozen=True)
class HeldBooking:
    """A booking the store already holds, as the rule needs it."""

    booking_id: str
    talent: str
    merchant: str
    start: str
    end: str


def iso_day(text: object, where: str) -> str:
    """``text`` if it is a day written YYYY-MM-DD; :class:`BadArgument` naming ``where`` if not.

    Only that form: the stores compare days as text, and Python also reads ``20261205`` and
    ``2026-W49-6`` as dates.

    Examples
    --------
    >>> iso_day("2026-12-05", "start")
    '2026-12-05'
    >>> iso_day("20261205", "start")
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument start: must be a day written YYYY-MM-DD, got '20261205'
    """
    try:
        ok = isinstance(text, str) and date.fromisoformat(text).isoformat() == text
    except ValueError:
        ok = False
    if not ok:
        raise BadArgument(where, f"must be a day written YYYY-MM-DD, got {text!r}")
    return str(text)


def check_window(b: Booking, start: str = "start", end: str = "end") -> None:
    """Raise :class:`BadArgument` unless ``b``'s days are YYYY-MM-DD with ``start <= end``
    (``start`` and ``end``: the arguments' names as the caller wrote them).

    Examples
    --------
    >>> check_window(Booking("b1", "t1", "m1", "2026-12-01", "2026-12-07"))
    >>> check_window(Booking("b1", "t1", "m1", "2026-12-07", "2026-12-01"), "--start", "--end")
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument --end: 2026-12-01 is before the start 2026-12-07
    """
    iso_day(b.start, start)
    iso_day(b.end, end)
    if b.end < b.start:
        raise BadArgument(end, f"{b.end} is before the start {b.start}")


def relationship_row(b: Booking) -> dict[str, object]:
    """The booking as a ``BOOKED`` relationship row (talent -> merchant) of a store write."""
    return {
        "src": b.talent,
        "dst": b.merchant,
        "booking_id": b.booking_id,
        "start": b.start,
        "end": b.end,
        "campaign": b.campaign,
    }


def not_yet_held(asked: Sequence[Booking], held: Mapping[str, Booking]) -> list[Booking]:
    """The bookings of ``asked`` whose ids ``held`` (the store's, by id) does not have yet.

    An id held with the same values is a repeat (left out: the request is idempotent); with
    other values it is refused.

    Raises
    ------
    Conflict
        Naming the id and the fields that differ (and whose booking holds it).

    Examples
    --------
    >>> b = Booking("b1", "t1", "m1", "2026-12-01", "2026-12-07")
    >>> not_yet_held([b], {}) == [b], not_yet_held([b], {"b1": b})
    (True, [])
    """
    out = []
    for b in asked:
        old = held.get(b.booking_id)
        if old is None:
            out.append(b)
        elif old.same_as(b):
            raise Conflict("booking", b.booking_id, old.same_as(b), owner=old.merchant)
    return out


def booking_problems(
    new: Sequence[Booking],
    held: Iterable[HeldBooking],
    capacity: Mapping[str, int | None],
    rivals: Mapping[str, set[str]],
) -> list[str]:
    """Why each of ``new`` cannot be booked on top of ``held`` (empty: every one can).

    The new bookings count against each other in order, so a request for two slots of a
    one-slot talent is refused as a whole.

    Parameters
    ----------
    new
        The bookings asked for (already known not to be held: idempotent repeats removed).
    held
        Every booking the store holds for the talents of ``new``.
    capacity
        Each talent's slots per window (``None``: one).
    rivals
        Each merchant of ``new``: the merchants it competes with.

    Returns
    -------
    list of str
        One line per refused booking: "not available" whether the talent is full or held by a
        competitor (who holds it and how many slots it has are private, kolmatch/policy.py),
        or the merchant's own booking of it in the window.

    Examples
    --------
    >>> held = [HeldBooking("b0", "t1", "m2", "2026-12-01", "2026-12-10")]
    >>> ask = [Booking("b1", "t1", "m1", "2026-12-05", "2026-12-06")]
    >>> booking_problems(ask, held, {"t1": 2}, {"m1": set()})
    []
    >>> booking_problems(ask, held, {"t1": 2}, {"m1": {"m2"}})
    ['b1: t1 is not available in 2026-12-05..2026-12-06']
    >>> booking_problems(ask * 2, held, {"t1": 3}, {"m1": set()})
    ['b1: m1 already holds t1 in 2026-12-05..2026-12-06']
    """
    by_talent: dict[str, list[HeldBooking]] = {}
    for h in held:
        by_talent.setdefault(h.talent, []).append(h)
    out = []
    for b in new:
        # days only: an imported booking may hold a date-time
        taken = [
            h
            for h in by_talent.get(b.talent, [])
            if h.start[:10] <= b.end[:10] and h.end[:10] >= b.start[:10]
        ]
        cap = capacity.get(b.talent)
        cap = 1 if cap is None else int(cap)
        window = f"{b.start}..{b.end}"
        if any(h.merchant == b.merchant for h in taken):
            # its own booking (it sees its own): a second slot would only hold a talent away
            # from others, and repeating it would count the free slots
            out.append(f"{b.booking_id}: {b.merchant} already holds {b.talent} in {window}")
        elif len(taken) >= cap or any(h.merchant in rivals.get(b.merchant, set()) for h in taken):
            # one message for a full talent and a competitor's exclusivity: neither who holds
            # it nor how many slots it has is the asking merchant's business (policy.py)
            out.append(f"{b.booking_id}: {b.talent} is not available in {window}")
        # a refused booking still counts: the request is refused whole, and its later
        # bookings are told what they would have met
        by_talent.setdefault(b.talent, []).append(
            HeldBooking(b.booking_id, b.talent, b.merchant, b.start, b.end)
        )
    return out
