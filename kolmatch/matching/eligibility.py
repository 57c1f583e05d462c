"""Compliance eligibility: the one rule of who and what may be recommended, planned or assigned.

A violation *excludes* when it is severe or unresolved (:func:`excludes`); a talent, merchant or
product with an excluding violation has risk 1 (:mod:`kolmatch.matching.features`) and is not
eligible. A product is also not eligible when its seller is not. An agency is *flagged* when a
share of its roster at least :data:`AGENCY_FLAG_SHARE` (and at least :data:`AGENCY_FLAG_MIN`
talents) is excluded: its talents stay eligible but carry a penalty (docs/scoring.md,
"Compliance"). Every output path asks this module: match lists, plans, the market assignment
(every method), leads, similar talents, the CLI and the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from kolmatch.errors import NotEligible

if TYPE_CHECKING:  # features imports this module for the rule's primitives
    from kolmatch.matching.features import MarketFeatures

__all__ = [
    "AGENCY_FLAG_MIN",
    "AGENCY_FLAG_SHARE",
    "AGENCY_PENALTY",
    "FAKE_ENGAGEMENT_DISCOUNT",
    "FAKE_ENGAGEMENT_HALF_LIFE_DAYS",
    "FAKE_ENGAGEMENT_KINDS",
    "Eligibility",
    "agency_eligibility",
    "agency_flagged",
    "agency_note",
    "agency_violation_share",
    "eligible_products",
    "eligible_talents",
    "excludes",
    "fake_engagement_factor",
    "is_fake_engagement",
    "merchant_eligibility",
    "product_eligibility",
    "require_merchant",
    "talent_eligibility",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Mask = NDArray[np.bool_]

#: An agency is flagged when at least this share of its signed talents is excluded ...
AGENCY_FLAG_SHARE = 0.25
#: ... and at least this many are (one bad talent in a roster of two is not a pattern).
AGENCY_FLAG_MIN = 2
#: A flagged agency's talents carry this times the agency's excluded share as a risk penalty.
AGENCY_PENALTY = 0.5
#: Violation kinds (lower case, ``-`` and ``_`` read as spaces) that say the audience is bought.
FAKE_ENGAGEMENT_KINDS = (
    "fake engagement",
    "fake follower",
    "fake fans",
    "fake likes",
    "fake views",
    "bought followers",
    "bot followers",
)
#: Most share of a talent's measured active audience that fake-engagement violations remove.
FAKE_ENGAGEMENT_DISCOUNT = 0.5
#: A resolved fake-engagement violation's weight halves every this many days.
FAKE_ENGAGEMENT_HALF_LIFE_DAYS = 365.0


@dataclass(frozen=True)
class Eligibility:
    """Who of one kind (talents, merchants, products or agencies) is eligible, and why not.

    Attributes
    ----------
    label
        ``Talent``, ``Merchant``, ``Product`` or ``Agency``.
    ids
        The ids, in the features' order.
    ok
        (N,) True where eligible.
    reasons
        Row -> why, for every row that is not eligible (and only those).
    """

    label: str
    ids: NDArray[np.str_]
    ok: Mask
    reasons: Mapping[int, str]

    def reason(self, row: int) -> str:
        """Why row ``row`` is not eligible; empty if it is."""
        return self.reasons.get(row, "")

    def refused(self) -> dict[str, str]:
        """Id -> reason for every row that is not eligible, in id order."""
        return {str(self.ids[i]): self.reasons[i] for i in sorted(self.reasons)}


def excludes(severity: NDArray[np.object_], resolved: Mask) -> Mask:
    """Which violations exclude: severe ones, and any not resolved.

    Examples
    --------
    >>> import numpy as np
    >>> excludes(np.array(["minor", "severe", "major"], dtype=object),
    ...          np.array([True, True, False])).tolist()
    [False, True, True]
    """
    sev = np.array([s == "severe" for s in severity], dtype=bool)
    out: Mask = sev | ~np.asarray(resolved, dtype=bool)
    return out


def _normalised(kind: object) -> str:
    return " ".join(str(kind or "").lower().replace("-", " ").replace("_", " ").split())


def is_fake_engagement(kinds: NDArray[np.object_]) -> Mask:
    """Which violation kinds say the audience or its engagement is bought.

    A kind matches when it contains one of :data:`FAKE_ENGAGEMENT_KINDS` (``fake-engagement``,
    ``Fake followers``, ...); ``fake reviews`` is about products, not the audience.

    Examples
    --------
    >>> import numpy as np
    >>> is_fake_engagement(np.array(["fake-engagement", "Fake_Followers", "fake reviews", None],
    ...                             dtype=object)).tolist()
    [True, True, False, False]
    """
    norm = [_normalised(k) for k in kinds]
    return np.array([any(p in k for p in FAKE_ENGAGEMENT_KINDS) for k in norm], dtype=bool)


def fake_engagement_factor(
    talent_of: I64, fake: Mask, resolved: Mask, age_days: F64, n_talents: int
) -> F64:
    """Each talent's factor on its measured active share, from fake-engagement violations.

    A violation weighs 1 while unresolved, and once resolved halves every
    :data:`FAKE_ENGAGEMENT_HALF_LIFE_DAYS`; the factor is ``1 - FAKE_ENGAGEMENT_DISCOUNT x
    min(sum of weights, 1)``, so at most half of the measured active audience is discounted.

    Parameters
    ----------
    talent_of
        (E,) the talent row of each talent violation (HAS_VIOLATION from Talent, sources).
    fake, resolved, age_days
        (E,) whether each such violation is fake engagement, resolved, and its age in days.
    n_talents
        T.

    Examples
    --------
    >>> import numpy as np
    >>> fake_engagement_factor(np.array([0, 1, 1]), np.array([True, True, False]),
    ...                        np.array([False, True, False]), np.array([0.0, 365.0, 0.0]),
    ...                        3).tolist()
    [0.5, 0.75, 1.0]
    """
    fade = np.power(0.5, np.maximum(age_days, 0) / FAKE_ENGAGEMENT_HALF_LIFE_DAYS)
    w = np.where(resolved, fade, 1.0)
    acc = np.zeros(n_talents)
    np.add.at(acc, talent_of[fake], w[fake])
    return 1.0 - FAKE_ENGAGEMENT_DISCOUNT * np.minimum(acc, 1.0)


def agency_violation_share(
    excluded: Mask, talent_agency: I64, n_agencies: int
) -> tuple[F64, I64, I64]:
    """Each agency's share of signed talents excluded for their own violations.

    Parameters
    ----------
    excluded
        (T,) talents excluded by their own record (risk 1 before any spill-over).
    talent_agency
        (T,) agency row of each talent, -1 if unsigned.
    n_agencies
        A.

    Returns
    -------
    (share, excluded count, roster size)
        Each (A,); the share is 0 for an empty roster.

    Examples
    --------
    >>> import numpy as np
    >>> s, bad, n = agency_violation_share(np.array([True, False, True, True]),
    ...                                    np.array([0, 0, 1, -1]), 2)
    >>> s.tolist(), bad.tolist(), n.tolist()
    ([0.5, 1.0], [1, 1], [2, 1])
    """
    signed = talent_agency >= 0
    roster = np.bincount(talent_agency[signed], minlength=n_agencies).astype(np.int64)
    bad = np.bincount(talent_agency[signed & excluded], minlength=n_agencies).astype(np.int64)
    share = np.divide(bad, roster, out=np.zeros(n_agencies), where=roster > 0)
    return share, bad, roster


def agency_flagged(share: F64, bad: I64) -> Mask:
    """Agencies whose roster keeps violating: share and count at or past the thresholds."""
    return (share >= AGENCY_FLAG_SHARE) & (bad >= AGENCY_FLAG_MIN)


def agency_note(agency_id: str, bad: int, roster: int) -> str:
    """The risk note a flagged agency's talents carry (one wording for features and reasons)."""
    return (
        f"agency {agency_id}: {bad} of {roster} signed talents have severe or unresolved "
        f"violations (flagged at {AGENCY_FLAG_SHARE:.0%} and {AGENCY_FLAG_MIN} talents)"
    )


def _why(notes: list[str], risk: float) -> str:
    listed = "; ".join(notes)
    return f"{listed} (risk {risk:.2f})" if listed else f"risk {risk:.2f}"


def eligible_talents(f: MarketFeatures) -> Mask:
    """(T,) True where a talent is eligible: :func:`talent_eligibility`'s ``ok`` without its
    reasons (a match list counts the eligible on every page; writing each excluded talent's
    reason took ~4% of a server's time under load at m).

    Parameters
    ----------
    f
        Market features.

    Returns
    -------
    ndarray
        (T,) bool, a new array (the caller may narrow it in place).
    """
    return f.talent_risk < 1.0


def talent_eligibility(f: MarketFeatures) -> Eligibility:
    """Talents: eligible unless excluded for compliance (risk 1: an own severe or unresolved
    violation, or minor ones adding up to 1; spill-over and agency penalties stay below 1).
    """
    ok = eligible_talents(f)
    reasons = {
        int(t): "excluded for compliance: " + _why(f.talent_risk_notes[t], float(f.talent_risk[t]))
        for t in np.nonzero(~ok)[0]
    }
    return Eligibility("Talent", f.talent_ids, ok, reasons)


def merchant_eligibility(f: MarketFeatures) -> Eligibility:
    """Merchants: eligible unless excluded for compliance (risk 1, as for talents)."""
    ok = f.merchant_risk < 1.0
    reasons = {int(m): _merchant_reason(f, int(m)) for m in np.nonzero(~ok)[0]}
    return Eligibility("Merchant", f.merchant_ids, ok, reasons)


def _merchant_reason(f: MarketFeatures, m: int) -> str:
    return "excluded for compliance: " + _why(f.merchant_risk_notes[m], float(f.merchant_risk[m]))


def _seller(f: MarketFeatures) -> I64:
    out = np.full(len(f.product_ids), -1, dtype=np.int64)
    for m, prods in enumerate(f.merchant_products):
        out[prods] = m
    return out


def product_eligibility(f: MarketFeatures) -> Eligibility:
    """Products: eligible unless excluded for compliance themselves or sold by an excluded
    merchant. A product nobody sells carries no merchant's risk.
    """
    seller = _seller(f)
    merchant_ok = f.merchant_risk < 1.0
    own_ok = f.product_risk < 1.0
    seller_ok = np.where(seller >= 0, merchant_ok[np.maximum(seller, 0)], True)
    reasons: dict[int, str] = {}
    for p in np.nonzero(~own_ok)[0]:
        reasons[int(p)] = "excluded for compliance: " + _why(
            f.product_risk_notes[p], float(f.product_risk[p])
        )
    for p in np.nonzero(own_ok & ~seller_ok)[0]:
        m = int(seller[p])
        reasons[int(p)] = f"sold by merchant {f.merchant_ids[m]}, excluded for compliance"
    return Eligibility("Product", f.product_ids, own_ok & seller_ok, reasons)


def eligible_products(f: MarketFeatures, merchant: int) -> I64:
    """The merchant's products that may be promoted (all of them, or none if it is excluded)."""
    prods = f.merchant_products[merchant]
    if f.merchant_risk[merchant] >= 1.0:
        return prods[:0]
    return prods[f.product_risk[prods] < 1.0]


def agency_eligibility(f: MarketFeatures) -> Eligibility:
    """Agencies: not eligible (flagged) when their roster keeps violating.

    A flagged agency's talents stay individually eligible (each on its own record) but carry
    :data:`AGENCY_PENALTY` x the agency's excluded share as risk, and say so in their notes.
    """
    share, bad, roster = agency_violation_share(
        f.talent_risk >= 1.0, f.talent_agency, len(f.agency_ids)
    )
    ok = ~agency_flagged(share, bad)
    reasons = {
        int(a): agency_note(str(f.agency_ids[a]), int(bad[a]), int(roster[a]))
        for a in np.nonzero(~ok)[0]
    }
    return Eligibility("Agency", f.agency_ids, ok, reasons)


def require_merchant(f: MarketFeatures, merchant: str | int) -> int:
    """The merchant's row if it may be matched or planned; :class:`NotEligible` if not.

    Parameters
    ----------
    f
        Market features.
    merchant
        A merchant id, or its row.

    Raises
    ------
    UnknownId
        If the id is not in the graph.
    NotEligible
        If the merchant is excluded for compliance (the reason names its violations).
    """
    m = f.merchant_row(merchant) if isinstance(merchant, str) else int(merchant)
    if f.merchant_risk[m] >= 1.0:
        raise NotEligible("Merchant", str(f.merchant_ids[m]), _merchant_reason(f, m))
    return m
