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

__all__ = ["Booking", "HeldBooking", "booking_problems", "check_window", "not_yet_held"]


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


def check_window(b: Booking, where: str = "bookings") -> None:
    """Raise :class:`BadArgument` unless ``b``'s days are ISO dates with ``start <= end``.

    Examples
    --------
    >>> check_window(Booking("b1", "t1", "m1", "2026-12-01", "2026-12-07"))
    >>> check_window(Booking("b1", "t1", "m1", "2026-12-07", "2026-12-01"))
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument bookings: b1: end 2026-12-01 is before start 2026-12-07
    """
    try:
        start, end = date.fromisoformat(b.start), date.fromisoformat(b.end)
    except (TypeError, ValueError):
        raise BadArgument(
            where,
            f"{b.booking_id}: start and end must be days (YYYY-MM-DD), got {b.start!r}, {b.end!r}",
        ) from None
    if end < start:
        raise BadArgument(where, f"{b.booking_id}: end {b.end} is before start {b.start}")


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
        One line per refused booking; neither a competitor nor the talent's capacity or
        bookings are told (they are private to the talent's agency, kolmatch/policy.py).

    Examples
    --------
    >>> held = [HeldBooking("b0", "t1", "m2", "2026-12-01", "2026-12-10")]
    >>> ask = [Booking("b1", "t1", "m1", "2026-12-05", "2026-12-06")]
    >>> booking_problems(ask, held, {"t1": 2}, {"m1": set()})
    []
    >>> booking_problems(ask, held, {"t1": 2}, {"m1": {"m2"}})
    ['b1: t1 is booked by a competitor of m1 in 2026-12-05..2026-12-06']
    >>> booking_problems(ask * 2, held, {"t1": 2}, {"m1": set()})
    ['b1: t1 has no free slot in 2026-12-05..2026-12-06']
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
        if any(h.merchant in rivals.get(b.merchant, set()) for h in taken):
            out.append(
                f"{b.booking_id}: {b.talent} is booked by a competitor of {b.merchant} in {window}"
            )
        elif len(taken) >= cap:
            # the count of slots and bookings is the talent's private business (policy.py)
            out.append(f"{b.booking_id}: {b.talent} has no free slot in {window}")
        # a refused booking still counts: the request is refused whole, and its later
        # bookings are told what they would have met
        by_talent.setdefault(b.talent, []).append(
            HeldBooking(b.booking_id, b.talent, b.merchant, b.start, b.end)
        )
    return out
