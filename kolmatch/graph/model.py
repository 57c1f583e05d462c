"""The domain model: node labels, relationship types and their typed fields.

This module is the allow-list: every label and relationship type that reaches
a store (a SQLite table name, a Cypher label) comes from here, never from input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from functools import cached_property

__all__ = [
    "CAMPAIGN_GOALS",
    "INT_MAX",
    "MAX_AMOUNT",
    "NODES",
    "NODE_BY_FILE",
    "NUMERIC_TYPES",
    "RELATIONSHIPS",
    "REL_BY_FILE",
    "Field",
    "FieldType",
    "NodeSpec",
    "OrderedFields",
    "RelSpec",
    "node_spec",
    "rel_spec",
    "tier_of",
]


class FieldType(str, Enum):
    """The value types of the import format."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"


#: The types read as numbers (float64, NaN where unset) by the projections and stores.
NUMERIC_TYPES = frozenset({FieldType.INT, FieldType.FLOAT, FieldType.BOOL})


#: The largest whole number a store keeps (SQLite INTEGER, Neo4j long, Arrow int64): the
#: upper bound of every ``int`` field that declares none lower.
INT_MAX = 2**63 - 1

#: The upper bound of every amount of money in the model, in yuan (a fee, a price, a budget, a
#: GMV, a cost, a purchase; a campaign's KPI target, yuan or users, too): above any one
#: collaboration, campaign or merchant (the whole platform sells ~2e12 a year), far below where
#: sums of amounts lose their cents. ``gmv: 1e300`` was recorded through the API, and loaded
#: from ``promoted.csv``, before. Loads refuse a value above it (the reader), and so do the
#: API's writes (:mod:`kolmatch.engine.write_rules` checks a value against the field it is
#: written to): one rule, one limit. Counts keep their type's cap (:data:`INT_MAX`): no
#: plausibility cap is clearly right for followers, views or orders; nor for ``watch_s``, a
#: duration, not money.
MAX_AMOUNT = 1e12


#: The earliest day of an event that has happened (a field declared ``past``): before it there
#: was no interest e-commerce to record (a year-1 date made the growth report run its months
#: from there). A load refuses an earlier one, and so do the API's writes.
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


def past_days(today: date) -> tuple[str, str]:
    """The first and last day a past event may have, as ISO text (ISO days order as text
    does): :data:`EARLIEST_DAY` and ``today``. What :func:`past_day_problem` and the readers'
    fast paths compare a day with.

    Parameters
    ----------
    today
        The last day (:func:`latest_today` when a file's reading began).

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> past_days(date(2026, 12, 5))
    ('2000-01-01', '2026-12-05')
    """
    return EARLIEST_DAY.isoformat(), today.isoformat()


def past_day_problem(value: str, today: date) -> str | None:
    """Why ``value`` (an ISO date or date-time, as the import format writes it) is not the day
    of an event that has happened, from :data:`EARLIEST_DAY` to ``today``; None if it is.

    Parameters
    ----------
    value
        The date or date-time: its first ten characters are its day.
    today
        As :func:`past_days`.

    Returns
    -------
    str or None
        The reason, naming the day and the bound it passes.

    Examples
    --------
    >>> past_day_problem("2026-07-01T20:00:00", date(2026, 12, 5)) is None
    True
    >>> past_day_problem("2031-01-01", date(2026, 12, 5))
    '2031-01-01 is after today, 2026-12-05'
    >>> past_day_problem("1970-01-01", date(2026, 12, 5))
    '1970-01-01 is before 2000-01-01'
    """
    day = value[:10]
    first, last = past_days(today)
    if day > last:
        return f"{day} is after today, {last}"
    if day < first:
        return f"{day} is before {first}"
    return None


def _number_text(x: float) -> str:
    """A bound as docs/data-format.md writes it: ``5``, ``0.5``, ``1e12`` (not 13 digits).

    Examples
    --------
    >>> _number_text(0), _number_text(0.5), _number_text(1e12), _number_text(1_234_567)
    ('0', '0.5', '1e12', '1234567')
    """
    if not float(x).is_integer():
        return repr(float(x))
    mantissa, _, exponent = f"{float(x):g}".partition("e+")
    if exponent and float(f"{mantissa}e{exponent}") == float(x):
        return f"{mantissa}e{int(exponent)}"
    return str(int(x))


@dataclass(frozen=True)
class Field:
    """One typed property of a node or relationship.

    ``low`` and ``high`` bound a number (an ``int`` or ``float`` field), both inclusive:
    a value outside them is refused at import. Every number declares ``low`` (a test keeps
    it so); ``high`` None means no upper bound but the type's own (:data:`INT_MAX` for an
    ``int``, the largest finite float for a ``float``). ``past`` marks a date of an event that
    has happened (a purchase, a follow, a collaboration): from :data:`EARLIEST_DAY` to today
    (:func:`past_day_problem`); windows (a campaign's, a booking's) may lie ahead.
    """

    name: str
    type: FieldType
    required: bool = False
    doc: str = ""
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    past: bool = False

    def __post_init__(self) -> None:
        if self.past and self.type is not FieldType.DATE:
            raise ValueError(f"{self.name}: only a date field is of the past")
        if (self.low is not None or self.high is not None) and self.type not in (
            FieldType.INT,
            FieldType.FLOAT,
        ):
            raise ValueError(f"{self.name}: only an int or float field has bounds")
        for b in (self.low, self.high):
            if b is not None and self.type is FieldType.INT and not float(b).is_integer():
                raise ValueError(f"{self.name}: an int field's bounds are whole numbers")
        if self.high is not None and self.low is None:
            raise ValueError(f"{self.name}: a field with a high bound declares its low one")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"{self.name}: low {self.low} is above high {self.high}")

    @cached_property  # read per value by the row reader
    def bounds(self) -> tuple[float, float] | None:
        """The inclusive ``(low, high)`` a value must lie in; None if the field declares none.

        An ``int`` field's bounds are ints, capped at :data:`INT_MAX`; an open upper side of
        a ``float`` is ``inf``.

        Examples
        --------
        >>> Field("share", FieldType.FLOAT, low=0, high=1).bounds
        (0.0, 1.0)
        >>> Field("count", FieldType.INT, low=0).bounds
        (0, 9223372036854775807)
        """
        if self.low is None:
            return None
        if self.type is FieldType.INT:
            high = INT_MAX if self.high is None else min(int(self.high), INT_MAX)
            return int(self.low), high
        return float(self.low), math.inf if self.high is None else float(self.high)

    @property
    def range_text(self) -> str:
        """The declared range in words, as docs/data-format.md and import problems say it.

        Examples
        --------
        >>> Field("share", FieldType.FLOAT, low=0, high=1).range_text
        '0 to 1'
        >>> Field("count", FieldType.INT, low=0).range_text
        '0 or more'
        >>> Field("time", FieldType.DATE, past=True).range_text
        '2000-01-01 to today'
        """
        if self.past:
            return f"{EARLIEST_DAY.isoformat()} to today"
        if self.low is None:
            return ""
        if self.high is None:
            return f"{_number_text(self.low)} or more"
        return f"{_number_text(self.low)} to {_number_text(self.high)}"


@dataclass(frozen=True)
class OrderedFields:
    """A rule tying two fields of one row: ``first <= second`` where the row gives both.

    A window's ``start`` and ``end`` (dates; ISO text orders as time does), a merchant's
    ``min_talents`` and ``max_talents``. A row that gives only one of the two is not checked
    against what the store holds for the other (loads are upserts).
    """

    first: str
    second: str

    def broken_text(self, first: object, second: object) -> str:
        """What is wrong with a row where ``second`` is below ``first``, in words.

        Examples
        --------
        >>> OrderedFields("min_talents", "max_talents").broken_text(9, 2)
        'max_talents 2 is less than min_talents 9'
        >>> OrderedFields("start", "end").broken_text("2025-03-10", "2025-03-01")
        'end 2025-03-01 is before start 2025-03-10'
        """
        less = "is before" if isinstance(second, str) else "is less than"
        return f"{self.second} {second} {less} {self.first} {first}"


@dataclass(frozen=True)
class NodeSpec:
    """A node label: its import file stem, its properties (besides ``id``) and the rules
    that tie two of a row's properties (``rules``)."""

    label: str
    file: str
    fields: tuple[Field, ...]
    doc: str = ""
    rules: tuple[OrderedFields, ...] = ()

    def __post_init__(self) -> None:
        _check_rules(self.label, self.fields, self.rules)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field_named(self, name: str) -> Field:
        """The property ``name`` (not ``id``); KeyError if the spec has none of that name."""
        return _field_named(self.fields, name)


@dataclass(frozen=True)
class RelSpec:
    """A relationship type between labels.

    ``key`` names the property that tells two relationships between the same
    pair apart (an order id for purchases); without one, a pair holds at most
    one relationship of the type and loading it again updates it. ``rules`` tie two of a
    row's properties.
    """

    type: str
    file: str
    src: tuple[str, ...]
    dst: str
    fields: tuple[Field, ...]
    key: str | None = None
    doc: str = ""
    rules: tuple[OrderedFields, ...] = ()

    def __post_init__(self) -> None:
        _check_rules(self.type, self.fields, self.rules)

    @property
    def polymorphic(self) -> bool:
        """Whether the source label varies per row (a ``src_label`` column says which)."""
        return len(self.src) > 1

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field_named(self, name: str) -> Field:
        """The property ``name`` (not ``id``); KeyError if the spec has none of that name."""
        return _field_named(self.fields, name)


def _field_named(fields: tuple[Field, ...], name: str) -> Field:
    for f in fields:
        if f.name == name:
            return f
    raise KeyError(name)


def _check_rules(name: str, fields: tuple[Field, ...], rules: tuple[OrderedFields, ...]) -> None:
    """Raise ValueError unless each rule ties two fields of the spec of one type."""
    by_name = {f.name: f for f in fields}
    for r in rules:
        a, b = by_name.get(r.first), by_name.get(r.second)
        if a is None or b is None or a.type is not b.type:
            raise ValueError(f"{name}: rule {r} needs two fields of the spec of one type")


S, INT, F, B, D = FieldType.STR, FieldType.INT, FieldType.FLOAT, FieldType.BOOL, FieldType.DATE
GENDERS = ("f", "m", "u")
AGE_BANDS = ("18-23", "24-30", "31-40", "41-50", "50+")
#: What a campaign is run for: GMV, new customers, or reach (awareness).
CAMPAIGN_GOALS = ("gmv", "new_customers", "reach")

NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        "User",
        "user",
        (
            Field("gender", S, doc="f, m or u (unknown)", choices=GENDERS),
            Field("age_band", S, doc="age band", choices=AGE_BANDS),
            Field("city_tier", INT, doc="city tier, 1 (largest) to 5", low=1, high=5),
        ),
        "A consumer.",
    ),
    NodeSpec(
        "Talent",
        "talent",
        (
            Field("name", S, True, "display name"),
            Field(
                "followers",
                INT,
                doc="follower count the platform reports (may include inactive)",
                low=0,
            ),
            Field(
                "fee",
                F,
                doc="negotiated fee in yuan for one collaboration (private: docs/api.md)",
                low=0,
                high=MAX_AMOUNT,
            ),
            Field(
                "list_price",
                F,
                doc="the talent's public quote in yuan for one collaboration (its rate card); "
                "shown to merchants in match lists and plans",
                low=0,
                high=MAX_AMOUNT,
            ),
            Field("commission_rate", F, doc="share of GMV the talent takes, 0..1", low=0, high=1),
            Field("capacity", INT, doc="collaboration slots per period (0: none free)", low=0),
            Field("region", S, doc="home region"),
        ),
        "A KOL, creator or live host; tier (top/mid/micro) is derived from audience size.",
    ),
    NodeSpec(
        "Merchant",
        "merchant",
        (
            Field("name", S, True, "store or brand name"),
            Field("target_gender", S, doc="the merchant's stated target gender", choices=GENDERS),
            Field(
                "target_age_band", S, doc="the merchant's stated target age band", choices=AGE_BANDS
            ),
            Field(
                "budget", F, doc="budget in yuan per period for talent fees", low=0, high=MAX_AMOUNT
            ),
            Field("min_talents", INT, doc="fewest talents per period", low=0),
            Field(
                "max_talents",
                INT,
                doc="most talents per period (0: none this period); at least min_talents",
                low=0,
            ),
            Field(
                "room_followers",
                INT,
                doc="followers of the merchant's own account and live room (Field), as the "
                "platform reports them; empty: it has no live room",
                low=0,
            ),
        ),
        "A store or brand.",
        rules=(OrderedFields("min_talents", "max_talents"),),
    ),
    NodeSpec(
        "Product",
        "product",
        (
            Field("name", S, True, "product name"),
            Field("price", F, True, "unit price in yuan (0: a free gift)", low=0, high=MAX_AMOUNT),
            Field("commission_rate", F, doc="commission offered to talents, 0..1", low=0, high=1),
        ),
        "A product; its category is an IN_CATEGORY relationship.",
    ),
    NodeSpec(
        "Institution", "institution", (Field("name", S, True, "agency name"),), "An MCN agency."
    ),
    NodeSpec(
        "ServiceProvider",
        "service_provider",
        (
            Field("name", S, True, "provider name"),
            Field("kind", S, doc="service kind, e.g. logistics, operations, ads, live-studio"),
            Field(
                "list_price",
                F,
                doc="the provider's public quote in yuan for 30 days of service",
                low=0,
                high=MAX_AMOUNT,
            ),
        ),
        "A service provider to merchants: a live-room operator, an agency that runs stores, "
        "ads, logistics, customer service.",
    ),
    NodeSpec(
        "LiveSession",
        "live_session",
        (
            Field("day", D, True, "the day it ran", past=True),
            Field("duration_s", INT, doc="length in seconds", low=0),
            Field("viewers", INT, doc="users who watched it", low=0),
            Field("orders", INT, doc="orders placed in it", low=0),
            Field(
                "gmv", F, doc="gross merchandise value sold in it, in yuan", low=0, high=MAX_AMOUNT
            ),
            Field(
                "cost",
                F,
                doc="what it cost the merchant: hosts, crew, paid traffic, in yuan",
                low=0,
                high=MAX_AMOUNT,
            ),
        ),
        "A session of a merchant's own live room (FACT's Field); its sales are the session's "
        "totals, not rows of purchased.csv.",
    ),
    NodeSpec(
        "Content",
        "content",
        (
            Field("kind", S, True, "video or live", choices=("video", "live")),
            Field("published", D, True, "publication date", past=True),
            Field("duration_s", INT, doc="length in seconds", low=0),
        ),
        "A short video or a live session.",
    ),
    NodeSpec(
        "Campaign",
        "campaign",
        (
            Field("name", S, True, "campaign name"),
            Field("start", D, True, "first day"),
            Field("end", D, True, "last day"),
            Field("goal", S, doc="what the campaign is run for", choices=CAMPAIGN_GOALS),
            Field(
                "kpi_target",
                F,
                doc="the goal's target: yuan of GMV, or users",
                low=0,
                high=MAX_AMOUNT,
            ),
            Field(
                "budget",
                F,
                doc="the platform's budget for the campaign, in yuan",
                low=0,
                high=MAX_AMOUNT,
            ),
        ),
        "A marketing event with a time window, and its brief: goal, target, budget (its "
        "categories and products are COVERS and IN_CAMPAIGN relationships).",
        rules=(OrderedFields("start", "end"),),
    ),
    NodeSpec(
        "Category",
        "category",
        (Field("name", S, True, "category name"),),
        "A product / content category.",
    ),
    NodeSpec(
        "Violation",
        "violation",
        (
            Field("kind", S, True, "what was violated"),
            Field(
                "severity", S, True, "minor, major or severe", choices=("minor", "major", "severe")
            ),
            Field("time", D, True, "when it was recorded", past=True),
            Field("resolved", B, True, "whether it has been resolved"),
        ),
        "A recorded compliance violation.",
    ),
)

RELATIONSHIPS: tuple[RelSpec, ...] = (
    RelSpec(
        "FOLLOWS",
        "follows",
        ("User",),
        "Talent",
        (Field("since", D, doc="when the follow started", past=True),),
        doc="A user follows a talent.",
    ),
    RelSpec(
        "ENGAGED_WITH",
        "engaged_with",
        ("User",),
        "Content",
        (
            Field("views", INT, True, "times viewed", low=0),
            # not capped by views: a platform counts a like or comment from a feed preview,
            # and a user may comment several times in one view
            Field("likes", INT, doc="likes", low=0),
            Field("comments", INT, doc="comments", low=0),
            Field("shares", INT, doc="shares", low=0),
            Field("watch_s", F, doc="total watch time in seconds", low=0),
            Field("last", D, doc="last engagement date", past=True),
        ),
        doc="A user's aggregated engagement with one content item.",
    ),
    RelSpec(
        "PUBLISHED", "published", ("Talent",), "Content", (), doc="A talent published content."
    ),
    RelSpec("FEATURES", "features", ("Content",), "Product", (), doc="Content features a product."),
    RelSpec(
        "PURCHASED",
        "purchased",
        ("User",),
        "Product",
        (
            Field("order_id", S, True, "order id, unique per purchase"),
            Field(
                "amount",
                F,
                True,
                "amount paid in yuan (0: a free gift or full voucher)",
                low=0,
                high=MAX_AMOUNT,
            ),
            Field("time", D, True, "purchase date", past=True),
            Field("talent", S, doc="id of the talent the sale is attributed to"),
            Field("content", S, doc="id of the content the sale is attributed to"),
        ),
        key="order_id",
        doc="A user bought a product.",
    ),
    RelSpec(
        "PROMOTED",
        "promoted",
        ("Talent",),
        "Product",
        (
            Field("collab_id", S, True, "collaboration id, unique per collaboration"),
            Field(
                "gmv",
                F,
                doc="gross merchandise value in yuan (empty: not known)",
                low=0,
                high=MAX_AMOUNT,
            ),
            Field("orders", INT, doc="orders (empty: not known)", low=0),
            Field("fee", F, doc="fee paid in yuan (empty: not known)", low=0, high=MAX_AMOUNT),
            Field("time", D, True, "collaboration date", past=True),
            Field("campaign", S, doc="id of the campaign it ran in"),
        ),
        key="collab_id",
        doc="A past collaboration: a talent promoted a product.",
    ),
    RelSpec(
        "BOOKED",
        "booked",
        ("Talent",),
        "Merchant",
        (
            Field("booking_id", S, True, "booking id, unique per booking"),
            Field("start", D, True, "first day of the booked window"),
            Field("end", D, True, "last day of the booked window"),
            Field("campaign", S, doc="id of the campaign it is booked for"),
        ),
        key="booking_id",
        doc="A merchant has booked one of a talent's slots for a time window (not yet run).",
        rules=(OrderedFields("start", "end"),),
    ),
    RelSpec("SELLS", "sells", ("Merchant",), "Product", (), doc="A merchant sells a product."),
    RelSpec(
        "SIGNED_WITH",
        "signed_with",
        ("Talent",),
        "Institution",
        (Field("since", D, doc="contract start"),),
        doc="A talent is signed with an agency.",
    ),
    RelSpec(
        "SERVED_BY",
        "served_by",
        ("Merchant",),
        "ServiceProvider",
        (),
        doc="A merchant uses a service provider.",
    ),
    RelSpec(
        "HOSTED",
        "hosted",
        ("Merchant",),
        "LiveSession",
        (),
        doc="A merchant ran a session of its own live room.",
    ),
    RelSpec(
        "ENGAGED",
        "engaged",
        ("Merchant",),
        "ServiceProvider",
        (
            Field("engagement_id", S, True, "engagement id, unique per engagement"),
            Field("start", D, True, "first day of the engagement"),
            Field("end", D, True, "last day of the engagement (agreed, for a running one)"),
            Field("fee", F, doc="fee paid in yuan", low=0, high=MAX_AMOUNT),
            Field(
                "gmv_before",
                F,
                doc="the merchant's GMV over as many days before start as the engagement ran",
                low=0,
                high=MAX_AMOUNT,
            ),
            Field(
                "gmv_during",
                F,
                doc="the merchant's GMV over the engagement (empty: still running, not known)",
                low=0,
                high=MAX_AMOUNT,
            ),
        ),
        key="engagement_id",
        doc="A merchant engaged a service provider: the outcome is its GMV before and during.",
        rules=(OrderedFields("start", "end"),),
    ),
    RelSpec("JOINED", "joined", ("Merchant",), "Campaign", (), doc="A merchant joined a campaign."),
    RelSpec(
        "COVERS",
        "covers",
        ("Campaign",),
        "Category",
        (),
        doc="A campaign's brief covers a category.",
    ),
    RelSpec(
        "IN_CAMPAIGN",
        "in_campaign",
        ("Product",),
        "Campaign",
        (),
        doc="A product is in a campaign's brief.",
    ),
    RelSpec(
        "IN_CATEGORY",
        "in_category",
        ("Product",),
        "Category",
        (),
        doc="A product belongs to a category.",
    ),
    RelSpec(
        "HAS_VIOLATION",
        "has_violation",
        ("Talent", "Merchant", "Product"),
        "Violation",
        (),
        doc="A talent, merchant or product has a violation (column src_label says which).",
    ),
    RelSpec(
        "COMPETES_WITH",
        "competes_with",
        ("Merchant",),
        "Merchant",
        (Field("shared_categories", INT, doc="categories both sell in", low=0),),
        doc="Two merchants compete; derivable from shared categories.",
    ),
)

NODE_BY_FILE = {n.file: n for n in NODES}
REL_BY_FILE = {r.file: r for r in RELATIONSHIPS}
_NODE_BY_LABEL = {n.label: n for n in NODES}
_REL_BY_TYPE = {r.type: r for r in RELATIONSHIPS}


def node_spec(label: str) -> NodeSpec:
    """Return the spec of a node label.

    Raises
    ------
    KeyError
        If the label is not in the domain model.
    """
    return _NODE_BY_LABEL[label]


def rel_spec(rel_type: str) -> RelSpec:
    """Return the spec of a relationship type.

    Raises
    ------
    KeyError
        If the type is not in the domain model.
    """
    return _REL_BY_TYPE[rel_type]


#: Audience-size thresholds (engaged or following users) of the tiers.
TIER_THRESHOLDS = {"top": 1_000_000, "mid": 100_000}


def tier_of(audience: int, *, scale: float = 1.0) -> str:
    """Tier of a talent from its audience size.

    Parameters
    ----------
    audience
        Number of followers.
    scale
        Multiplier on the thresholds (a synthetic market with fewer users than
        Douyin's scales them down).

    Examples
    --------
    >>> tier_of(2_000_000), tier_of(150_000), tier_of(900)
    ('top', 'mid', 'micro')
    """
    if audience >= TIER_THRESHOLDS["top"] * scale:
        return "top"
    if audience >= TIER_THRESHOLDS["mid"] * scale:
        return "mid"
    return "micro"
