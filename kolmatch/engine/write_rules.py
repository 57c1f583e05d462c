"""What a write through the API or the command line must hold: ids as the import format
writes them, amounts and counts in their field's range, past events on days that have come.

Amounts and counts are checked against the domain model's field the value is written to
(:class:`~kolmatch.graph.model.Field` ``bounds``, the range a load checks too), so a write and
a load cannot disagree about what is plausible. Ids and required text follow the import
format's rules (docs/data-format.md). A past event's day is the model's rule too
(:func:`~kolmatch.graph.model.past_day_problem`: from :data:`EARLIEST_DAY` to today, as a load
checks it). The rules the model does not have are the API's additions, kept here: a
campaign's budget and KPI target above 0 (``positive``)."""

from __future__ import annotations

import math
from datetime import date

from kolmatch.errors import BadArgument
from kolmatch.graph.booking import iso_day
from kolmatch.graph.model import (
    EARLIEST_DAY,
    MAX_AMOUNT,
    Field,
    FieldType,
    latest_today,
    past_day_problem,
)

__all__ = [
    "EARLIEST_DAY",
    "MAX_AMOUNT",
    "checked_amount",
    "checked_count",
    "checked_id",
    "checked_past_day",
    "checked_text",
    "latest_today",
]

# MAX_AMOUNT, the cap of every money field, EARLIEST_DAY and latest_today, the range of a past
# event's day, are the model's (kolmatch.graph.model), re-exported.


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


def _bounds(field: Field, kind: FieldType) -> tuple[float, float]:
    bounds = field.bounds
    if field.type is not kind or bounds is None:  # a programming error, not the caller's
        raise TypeError(f"{field.name} is not a {kind.value} field with a range")
    return bounds


def checked_amount(value: float, argument: str, field: Field, *, positive: bool = False) -> float:
    """``value`` as a value of the ``float`` field ``field`` it is written to (an amount of
    yuan, or users for a campaign's KPI target): finite and within the field's range, the one
    a load checks (every money field's is 0 to :data:`MAX_AMOUNT`); above zero if
    ``positive`` (an API addition: a campaign's budget and KPI target).

    Parameters
    ----------
    value
        The amount as the caller sent it.
    argument
        The argument's name as the caller wrote it.
    field
        The model's field the value is written to (``rel_spec("PROMOTED").field_named("gmv")``).

    Returns
    -------
    float
        ``value`` as a float.

    Raises
    ------
    BadArgument
        Naming ``argument``, the rule and the value.

    Examples
    --------
    >>> from kolmatch.graph.model import rel_spec
    >>> gmv = rel_spec("PROMOTED").field_named("gmv")
    >>> checked_amount(250_000, "gmv", gmv)
    250000.0
    >>> checked_amount(1e300, "gmv", gmv)
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument gmv: must be a finite amount from 0 to 1e+12, got 1e+300
    """
    low, high = _bounds(field, FieldType.FLOAT)
    x = float(value)
    if positive:
        low_text, too_low = f"above {max(low, 0):g}", x <= max(low, 0)
    else:
        low_text, too_low = f"from {low:g}", x < low
    if not math.isfinite(x) or too_low or x > high:
        raise BadArgument(argument, f"must be a finite amount {low_text} to {high:g}, got {x:g}")
    return x


def checked_count(value: int | float, argument: str, field: Field) -> int:
    """``value`` as a value of the ``int`` field ``field`` it is written to (a collaboration's
    orders): a whole number within the field's range, the one a load checks (a count's is 0 to
    the largest whole number a store keeps: the model sets no plausibility cap on counts).

    Raises
    ------
    BadArgument
        Naming ``argument``, the rule and the value.

    Examples
    --------
    >>> from kolmatch.graph.model import rel_spec
    >>> orders = rel_spec("PROMOTED").field_named("orders")
    >>> checked_count(120, "orders", orders)
    120
    >>> checked_count(-1, "orders", orders)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument orders: must be a whole number from 0 to ..., got -1
    """
    low, high = _bounds(field, FieldType.INT)
    whole = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        whole, value = True, int(value)
    if not whole or not low <= value <= high:
        raise BadArgument(
            argument, f"must be a whole number from {int(low)} to {int(high)}, got {value!r}"
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
    why = past_day_problem(iso_day(text, argument), today or latest_today())
    if why:
        raise BadArgument(argument, why)
    return text
