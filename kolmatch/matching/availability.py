"""Who is free when: planning windows, booked slots and competitor exclusivity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

from kolmatch.errors import BadArgument
from kolmatch.matching.features import MarketFeatures

__all__ = [
    "CAMPAIGN_WINDOW",
    "COMING_PERIOD",
    "DATES_WINDOW",
    "PLANNING_DAYS",
    "WINDOW_NAMES",
    "Availability",
    "Window",
    "availability",
    "planning_window",
]

#: Length of the default planning window, which starts the day after the features' reference date.
PLANNING_DAYS = 30
# A window's name in messages (English; kolmatch/cli.py writes it in the reader's language):
COMING_PERIOD = "the coming period"
CAMPAIGN_WINDOW = "campaign {id}"  # a campaign's dates
DATES_WINDOW = "the window"  # dates given (the FACT split's --start/--end)
WINDOW_NAMES = (COMING_PERIOD, CAMPAIGN_WINDOW, DATES_WINDOW)


@dataclass(frozen=True)
class Window:
    """A closed interval of days, as date ordinals, with a name for messages."""

    start: int
    end: int
    name: str

    def __str__(self) -> str:
        a, b = date.fromordinal(self.start), date.fromordinal(self.end)
        return f"{self.name} ({a.isoformat()}..{b.isoformat()})"


@dataclass(frozen=True)
class Availability:
    """Every talent's standing for one merchant in one window, aligned with ``talent_ids``."""

    window: Window
    booked: NDArray[np.int64]  # (T,) bookings overlapping the window, any merchant
    free_slots: NDArray[np.int64]  # (T,) capacity minus booked, at least 0
    competitor_booked: NDArray[np.bool_]  # (T,) booked by a competitor of the merchant
    #: (T,) already booked by the merchant itself in an overlapping window: in hand, not to be
    #: planned or booked again (one slot per merchant, talent and window: graph/booking.py)
    held: NDArray[np.bool_] | None = None

    @property
    def available(self) -> NDArray[np.bool_]:
        ok = (self.free_slots > 0) & ~self.competitor_booked
        return ok if self.held is None else ok & ~self.held


def planning_window(
    f: MarketFeatures, campaign_id: str | None = None, merchant: int | None = None
) -> Window:
    """The window a plan is for: a campaign's dates, else the next :data:`PLANNING_DAYS` days.

    Parameters
    ----------
    f
        Market features.
    campaign_id
        A campaign id, or None for the coming period.
    merchant
        The merchant's row; if given with a campaign, the merchant must have joined it.

    Raises
    ------
    UnknownId
        If the campaign is not in the graph.
    BadArgument
        If the merchant has not joined the campaign.
    """
    if campaign_id is None:
        start = f.today + timedelta(days=1)
        return Window(start.toordinal(), start.toordinal() + PLANNING_DAYS - 1, COMING_PERIOD)
    g = f.campaign_row(campaign_id)
    if merchant is not None and f.merchant_campaigns[merchant, g] == 0:
        raise BadArgument(
            "--campaign",
            f"merchant {f.merchant_ids[merchant]} has not joined campaign {campaign_id}",
        )
    return Window(
        int(f.campaign_start[g]), int(f.campaign_end[g]), CAMPAIGN_WINDOW.format(id=campaign_id)
    )


def availability(f: MarketFeatures, merchant: int | None, window: Window) -> Availability:
    """Free slots and competitor bookings of every talent in ``window``.

    A booking takes one slot in every window it overlaps. A talent booked by a competitor
    of the merchant (``COMPETES_WITH``, either direction) in an overlapping window is out
    for the merchant: the exclusivity brands ask of their talents.
    """
    T = f.n_talents
    overlaps = (f.booking_start <= window.end) & (f.booking_end >= window.start)
    booked = np.bincount(f.booking_talent[overlaps], minlength=T).astype(np.int64)
    capacity = np.nan_to_num(f.talent_capacity, nan=1.0).astype(np.int64)
    competitor = np.zeros(T, dtype=bool)
    held = np.zeros(T, dtype=bool)
    if merchant is not None:
        rivals = f.competitors[merchant].indices
        hit = overlaps & np.isin(f.booking_merchant, rivals)
        competitor[f.booking_talent[hit]] = True
        held[f.booking_talent[overlaps & (f.booking_merchant == merchant)]] = True
    return Availability(window, booked, np.maximum(capacity - booked, 0), competitor, held)
