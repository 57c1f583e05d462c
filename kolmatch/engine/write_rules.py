"""What a write through the API or the command line must hold: ids as the import format
writes them, amounts in a plausible range, past events on days that have come."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

from kolmatch.errors import BadArgument
from kolmatch.graph.booking import iso_day

__all__ = [
    "EARLIEST_DAY",
    "MAX_AMOUNT",
    "MAX_COUNT",
    "checked_amount",
    "checked_count",
    "checked_id",
    "checked_past_day",
    "checked_text",
    "latest_today",
]

#: The largest amount a write may carry, in yuan (a GMV, a fee, a campaign's budget or KPI
#: target): above any one collaboration or campaign (the whole platform sells ~2e12 a year),
#: far below where sums of amounts lose their cents. `gmv: 1e300` was recorded before.
MAX_AMOUNT = 1e12
#: The largest count a write may carry (a collaboration's orders).
MAX_COUNT = 10**12
#: The earliest day of a past event a write may record: before it there was no interest
#: e-commerce to record (a year-1 date made the growth report run its months from there).
EARLIEST_DAY = date(2000, 1, 1)
#: Today's date where it is latest (UTC+14): a caller's own today, wherever it is, is never
#: refused as a day to come.
_LATEST_ZONE = timezone(timedelta(hours=14))


def latest_today() -> date:
    """Today's date where it is latest on Earth (UTC+14): the last day a past event may have.

    Examples
    --------
    >>> latest_today() >= datetime.now(timezone.utc).date()
    True
    """
    return datetime.now(_LATEST_ZONE).date()


def checked_id(value: str, argument: str) -> str:
    """``value`` as an id of a new record: not empty, and no white space at either end (the
    import format's rule for ids, docs/data-format.md).

    Parameters
    ----------
    value
        The id as the caller sent it.
    argument
        The argument's name as the caller wrote it.

    Returns
    -------
    str
        ``value`` itself.

    Raises
    ------
    BadArgument
        Naming ``argument`` and the rule.

    Examples
    --------
    >>> checked_id("kT6", "id")
    'kT6'
    >>> checked_id(" kT6 ", "id")
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument id: must not start or end with white space, got ' kT6 '
    """
    if not value.strip():
        raise BadArgument(argument, "must not be empty")
    if value.strip() != value:
        raise BadArgument(argument, f"must not start or end with white space, got {value!r}")
    return value


def checked_text(value: str, argument: str) -> str:
    """``value`` as a required text (a name, a kind): not empty or only white space.

    Raises
    ------
    BadArgument
        Naming ``argument``.

    Examples
    --------
    >>> checked_text("fake reviews", "kind")
    'fake reviews'
    >>> checked_text("  ", "kind")
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument kind: must not be empty
    """
    if not value.strip():
        raise BadArgument(argument, "must not be empty")
    return value


def checked_amount(value: float, argument: str, *, positive: bool = False) -> float:
    """``value`` as an amount of yuan (or users, for a campaign's KPI target): finite, not
    negative (above zero if ``positive``) and at most :data:`MAX_AMOUNT`.

    Raises
    ------
    BadArgument
        Naming ``argument``, the rule and the value.

    Examples
    --------
    >>> checked_amount(250_000, "gmv")
    250000.0
    >>> checked_amount(1e300, "gmv")
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument gmv: must be a finite amount from 0 to 1e+12, got 1e+300
    """
    x = float(value)
    low = "above 0" if positive else "from 0"
    if not math.isfinite(x) or x < 0 or (positive and x == 0) or x > MAX_AMOUNT:
        raise BadArgument(argument, f"must be a finite amount {low} to {MAX_AMOUNT:g}, got {x:g}")
    return x


def checked_count(value: int | float, argument: str) -> int:
    """``value`` as a count (orders): a whole number from 0 to :data:`MAX_COUNT`.

    Raises
    ------
    BadArgument
        Naming ``argument``, the rule and the value.

    Examples
    --------
    >>> checked_count(120, "orders")
    120
    >>> checked_count(-1, "orders")
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument orders: must be a whole number from 0 to 1e+12, got -1
    """
    whole = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        whole, value = True, int(value)
    if not whole or not 0 <= value <= MAX_COUNT:
        raise BadArgument(
            argument, f"must be a whole number from 0 to {float(MAX_COUNT):g}, got {value!r}"
        )
    return int(value)


def checked_past_day(text: str, argument: str, *, today: date | None = None) -> str:
    """``text`` as the day of an event that has happened: written YYYY-MM-DD, from
    :data:`EARLIEST_DAY` to ``today`` (default :func:`latest_today`).

    Raises
    ------
    BadArgument
        Naming ``argument``, the rule and the day.

    Examples
    --------
    >>> checked_past_day("2026-07-01", "time", today=date(2026, 12, 5))
    '2026-07-01'
    >>> checked_past_day("2031-01-01", "time", today=date(2026, 12, 5))
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument time: 2031-01-01 is after today, 2026-12-05
    """
    day = date.fromisoformat(iso_day(text, argument))
    today = today or latest_today()
    if day > today:
        raise BadArgument(argument, f"{text} is after today, {today.isoformat()}")
    if day < EARLIEST_DAY:
        raise BadArgument(argument, f"{text} is before {EARLIEST_DAY.isoformat()}")
    return text
