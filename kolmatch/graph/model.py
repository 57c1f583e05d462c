"""The domain model: node labels, relationship types and their typed fields.

This module is the allow-list: every label and relationship type that reaches
a store (a SQLite table name, a Cypher label) comes from here, never from input.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "CAMPAIGN_GOALS",
    "NODES",
    "NODE_BY_FILE",
    "NUMERIC_TYPES",
    "RELATIONSHIPS",
    "REL_BY_FILE",
    "Field",
    "FieldType",
    "NodeSpec",
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


@dataclass(frozen=True)
class Field:
    """One typed property of a node or relationship."""

    name: str
    type: FieldType
    required: bool = False
    doc: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    """A node label: its import file stem and its properties (besides ``id``)."""

    label: str
    file: str
    fields: tuple[Field, ...]
    doc: str = ""

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@dataclass(frozen=True)
class RelSpec:
    """A relationship type between labels.

    ``key`` names the property that tells two relationships between the same
    pair apart (an order id for purchases); without one, a pair holds at most
    one relationship of the type and loading it again updates it.
    """

    type: str
    file: str
    src: tuple[str, ...]
    dst: str
    fields: tuple[Field, ...]
    key: str | None = None
    doc: str = ""

    @property
    def polymorphic(self) -> bool:
        """Whether the source label varies per row (a ``src_label`` column says which)."""
        return len(self.src) > 1

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


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
            Field("city_tier", INT, doc="city tier, 1 (largest) to 5"),
        ),
        "A consumer.",
    ),
    NodeSpec(
        "Talent",
        "talent",
        (
            Field("name", S, True, "display name"),
            Field(
                "followers", INT, doc="follower count the platform reports (may include inactive)"
            ),
            Field(
                "fee", F, doc="negotiated fee in yuan for one collaboration (private: docs/api.md)"
            ),
            Field(
                "list_price",
                F,
                doc="the talent's public quote in yuan for one collaboration (its rate card); "
                "shown to merchants in match lists and plans",
            ),
            Field("commission_rate", F, doc="share of GMV the talent takes, 0..1"),
            Field("capacity", INT, doc="collaboration slots per period"),
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
            Field("budget", F, doc="budget in yuan per period for talent fees"),
            Field("min_talents", INT, doc="fewest talents per period"),
            Field("max_talents", INT, doc="most talents per period"),
            Field(
                "room_followers",
                INT,
                doc="followers of the merchant's own account and live room (Field), as the "
                "platform reports them; empty: it has no live room",
            ),
        ),
        "A store or brand.",
    ),
    NodeSpec(
        "Product",
        "product",
        (
            Field("name", S, True, "product name"),
            Field("price", F, True, "unit price in yuan"),
            Field("commission_rate", F, doc="commission offered to talents, 0..1"),
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
                "list_price", F, doc="the provider's public quote in yuan for 30 days of service"
            ),
        ),
        "A service provider to merchants: a live-room operator, an agency that runs stores, "
        "ads, logistics, customer service.",
    ),
    NodeSpec(
        "LiveSession",
        "live_session",
        (
            Field("day", D, True, "the day it ran"),
            Field("duration_s", INT, doc="length in seconds"),
            Field("viewers", INT, doc="users who watched it"),
            Field("orders", INT, doc="orders placed in it"),
            Field("gmv", F, doc="gross merchandise value sold in it, in yuan"),
            Field("cost", F, doc="what it cost the merchant: hosts, crew, paid traffic, in yuan"),
        ),
        "A session of a merchant's own live room (FACT's Field); its sales are the session's "
        "totals, not rows of purchased.csv.",
    ),
    NodeSpec(
        "Content",
        "content",
        (
            Field("kind", S, True, "video or live", choices=("video", "live")),
            Field("published", D, True, "publication date"),
            Field("duration_s", INT, doc="length in seconds"),
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
            Field("kpi_target", F, doc="the goal's target: yuan of GMV, or users"),
            Field("budget", F, doc="the platform's budget for the campaign, in yuan"),
        ),
        "A marketing event with a time window, and its brief: goal, target, budget (its "
        "categories and products are COVERS and IN_CAMPAIGN relationships).",
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
            Field("time", D, True, "when it was recorded"),
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
        (Field("since", D, doc="when the follow started"),),
        doc="A user follows a talent.",
    ),
    RelSpec(
        "ENGAGED_WITH",
        "engaged_with",
        ("User",),
        "Content",
        (
            Field("views", INT, True, "times viewed"),
            Field("likes", INT, doc="likes"),
            Field("comments", INT, doc="comments"),
            Field("shares", INT, doc="shares"),
            Field("watch_s", F, doc="total watch time in seconds"),
            Field("last", D, doc="last engagement date"),
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
            Field("amount", F, True, "amount paid in yuan"),
            Field("time", D, True, "purchase date"),
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
            Field("gmv", F, doc="gross merchandise value in yuan (empty: not known)"),
            Field("orders", INT, doc="orders (empty: not known)"),
            Field("fee", F, doc="fee paid in yuan (empty: not known)"),
            Field("time", D, True, "collaboration date"),
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
            Field("fee", F, doc="fee paid in yuan"),
            Field(
                "gmv_before",
                F,
                doc="the merchant's GMV over as many days before start as the engagement ran",
            ),
            Field(
                "gmv_during",
                F,
                doc="the merchant's GMV over the engagement (empty: still running, not known)",
            ),
        ),
        key="engagement_id",
        doc="A merchant engaged a service provider: the outcome is its GMV before and during.",
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
        (Field("shared_categories", INT, doc="categories both sell in"),),
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
